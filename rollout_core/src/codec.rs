//! The encoding of stored values: a format tag, then the value in postcard (a compact,
//! non-self-describing serde format), instead of candid.
//!
//! Candid is the canisters' public contract, and it is expensive to encode and decode: its
//! type tables and subtyping checks cost the manager tens of millions of instructions per
//! upgraded canister when every stored record goes through them. Stored values are private and
//! need none of that. Values written in candid by an earlier layout (they start with `DIDL`)
//! are still read, so an upgraded manager keeps its state; the next write stores them compact.
//!
//! A compact value's shape is fixed by its tag: a stored type that gains or loses a field takes
//! the next tag and a conversion from the previous shape.

use candid::CandidType;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Tag of the first compact shape of every stored type.
pub const COMPACT_V1: u8 = 0xC1;
/// How candid values begin (interface spec, "Candid": the magic number).
const CANDID_MAGIC: &[u8] = b"DIDL";

/// Encodes a stored value.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_extend(value, vec![COMPACT_V1]).expect("encoding a stored value")
}

/// Decodes a stored value, compact or candid. Only bytes this canister wrote are ever decoded:
/// failing here means the layout was broken, and trapping keeps the old state instead of
/// working on garbage.
pub fn decode<T: DeserializeOwned + CandidType>(bytes: &[u8]) -> T {
    match bytes.first() {
        Some(&COMPACT_V1) => postcard::from_bytes(&bytes[1..]).expect("a stored compact value"),
        _ if bytes.starts_with(CANDID_MAGIC) => {
            candid::decode_one(bytes).expect("a stored candid value")
        }
        _ => panic!("a stored value in an unknown format"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{CanisterRecord, Failure, Job, Step};
    use candid::Principal;

    fn record() -> CanisterRecord {
        let mut r = CanisterRecord::new(Job::Upgrade, 3, Principal::from_slice(&[7; 29]));
        r.step = Step::Stopping;
        r.snapshot = Some(vec![1, 2, 3]);
        r.failure = Some(Failure::StopTimedOut { attempts: 2 });
        r.started_at = Some(1_700_000_000_000_000_000);
        r
    }

    #[test]
    fn compact_values_round_trip_and_are_smaller_than_candid() {
        let r = record();
        let bytes = encode(&r);
        assert_eq!(bytes[0], COMPACT_V1);
        assert_eq!(decode::<CanisterRecord>(&bytes), r);
        let candid = candid::encode_one(&r).unwrap();
        assert!(
            bytes.len() * 3 < candid.len(),
            "{} vs {}",
            bytes.len(),
            candid.len()
        );
    }

    #[test]
    fn candid_values_of_an_earlier_layout_are_still_read() {
        let r = record();
        let old = candid::encode_one(&r).unwrap();
        assert_eq!(decode::<CanisterRecord>(&old), r);
    }

    #[test]
    #[should_panic(expected = "unknown format")]
    fn an_unknown_format_is_refused() {
        decode::<CanisterRecord>(&[0x00, 1, 2]);
    }
}
