//! Each method of the canisters' interfaces as a type: its name, its argument tuple and its
//! reply. A client names a method through its type ([`Endpoint`]), so it can neither mistype the
//! name nor decode the reply into the wrong type; the canister's handler returns the same reply
//! type, and the checked-in `.did` files name every reply (no anonymous `Result_N`).

use candid::utils::ArgumentEncoder;
use candid::CandidType;
use serde::de::DeserializeOwned;

/// How a method is called (interface spec, "Overview of canister calling": query calls are not
/// replicated and change nothing; update calls go through consensus).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum CallKind {
    Query,
    Update,
}

/// One method of a canister's interface.
pub trait Endpoint {
    /// The method's name, as exported in the `.did` file.
    const NAME: &'static str;
    const KIND: CallKind;
    /// The candid argument tuple: `()` for none, `(A,)` for one.
    type Args: ArgumentEncoder;
    type Reply: CandidType + DeserializeOwned;
}

/// A named reply that can fail: `variant { Ok : T; Err : E }`, the `Result` it stands for.
pub trait Reply {
    type Ok;
    type Err;
    fn into_result(self) -> Result<Self::Ok, Self::Err>;
}

/// Declares one unit type per method, implementing [`Endpoint`], and `METHODS`: every method's
/// name and kind, which the canisters' tests compare with the interface they export.
macro_rules! endpoints {
    ($(
        $(#[$doc:meta])*
        $kind:ident $name:ident = $method:literal ($($arg:ty),*) -> $reply:ty;
    )*) => {
        /// Every method declared here: name and kind.
        pub const METHODS: &[(&str, $crate::endpoint::CallKind)] =
            &[$(($method, $crate::endpoint::endpoints!(@kind $kind))),*];

        /// Whether `arg` decodes as the argument of the method named `method`, or `None` when
        /// no method of that name is declared here. A canister's `canister_inspect_message`
        /// drops an ingress message whose argument would not decode before it is paid for.
        pub fn decodes(method: &str, arg: &[u8]) -> Option<bool> {
            match method {
                $($method => Some(candid::decode_args::<($($arg,)*)>(arg).is_ok()),)*
                _ => None,
            }
        }
        $(
        $(#[$doc])*
        #[derive(Clone, Copy, Debug)]
        pub struct $name;
        impl $crate::endpoint::Endpoint for $name {
            const NAME: &'static str = $method;
            const KIND: $crate::endpoint::CallKind = $crate::endpoint::endpoints!(@kind $kind);
            type Args = ($($arg,)*);
            type Reply = $reply;
        }
    )*};
    (@kind query) => { $crate::endpoint::CallKind::Query };
    (@kind update) => { $crate::endpoint::CallKind::Update };
}
pub(crate) use endpoints;

/// Declares a named reply: `variant { Ok : T; Err : E }` on the wire, exactly as a `Result`,
/// but named in the `.did` file. Converts from and into `Result<T, E>`.
macro_rules! reply {
    ($(
        $(#[$doc:meta])*
        $name:ident($ok:ty, $err:ty);
    )*) => {$(
        $(#[$doc])*
        #[derive(candid::CandidType, serde::Serialize, serde::Deserialize, Clone, Debug)]
        // Like the `Result` it stands for on the wire: built once per call and encoded.
        #[allow(clippy::large_enum_variant)]
        pub enum $name {
            Ok($ok),
            Err($err),
        }
        impl $name {
            pub fn into_result(self) -> Result<$ok, $err> {
                match self {
                    $name::Ok(v) => Ok(v),
                    $name::Err(e) => Err(e),
                }
            }
        }
        impl $crate::endpoint::Reply for $name {
            type Ok = $ok;
            type Err = $err;
            fn into_result(self) -> Result<$ok, $err> {
                <$name>::into_result(self)
            }
        }
        impl From<Result<$ok, $err>> for $name {
            fn from(r: Result<$ok, $err>) -> Self {
                match r {
                    Ok(v) => $name::Ok(v),
                    Err(e) => $name::Err(e),
                }
            }
        }
    )*};
}
pub(crate) use reply;

/// The methods of the service in a `.did` text as `export_candid!` writes it (one method a line),
/// sorted by name: what the canisters' tests compare with their `METHODS`.
pub fn service_methods(did: &str) -> Vec<(String, CallKind)> {
    let Some(service) = did.find("\nservice ") else {
        return Vec::new();
    };
    // The body between the service's braces, without comments; a method may span lines.
    let body: String = did[service..]
        .lines()
        .skip(2)
        .map(str::trim)
        .filter(|l| !l.starts_with("//") && *l != "}")
        .collect::<Vec<_>>()
        .join(" ");
    let mut methods: Vec<(String, CallKind)> = body
        .split(';')
        .filter_map(|m| {
            let (name, signature) = m.split_once(" : (")?;
            let signature = signature.trim_end();
            let kind = if signature.ends_with(" query") || signature.ends_with(" composite_query") {
                CallKind::Query
            } else {
                CallKind::Update
            };
            Some((name.trim().trim_matches('"').to_string(), kind))
        })
        .collect();
    methods.sort();
    methods
}

#[cfg(test)]
mod tests {
    use candid::{Decode, Encode};

    reply! {
        /// A test reply.
        Probe(u64, String);
        UnitProbe((), String);
    }

    /// A named reply is the same candid value as the `Result` it replaces, both ways, so
    /// clients built against the older interface still decode it.
    #[test]
    fn a_named_reply_is_wire_compatible_with_result() {
        let named = Encode!(&Probe::Ok(7)).unwrap();
        assert_eq!(Decode!(&named, Result<u64, String>).unwrap(), Ok(7));
        let result = Encode!(&Result::<u64, String>::Err("no".into())).unwrap();
        let back = Decode!(&result, Probe).unwrap().into_result();
        assert_eq!(back, Err("no".to_string()));
        let unit = Encode!(&UnitProbe::Ok(())).unwrap();
        assert_eq!(Decode!(&unit, Result<(), String>).unwrap(), Ok(()));
        let unit = Encode!(&Result::<(), String>::Ok(())).unwrap();
        assert_eq!(Decode!(&unit, UnitProbe).unwrap().into_result(), Ok(()));
    }
}
