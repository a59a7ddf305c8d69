//! Shared helpers of the end-to-end tests: a simulated IC with the fleet manager installed, and
//! typed calls to it.
//!
//! The tests are written against the PocketIc-shaped API of `ic_sim` so that they read the same
//! on a PocketIC server.

use candid::utils::{ArgumentDecoder, ArgumentEncoder};
use candid::{decode_args, encode_args, encode_one, CandidType, Principal};
use fleet_api::manager::{
    BeginUpload, ManagerInitArg, RateLimit, ReleaseMeta, UploadReleaseChunkArg,
};
use ic_sim::IcSim;
use sha2::{Digest, Sha256};

pub use fleet_api;
pub use ic_sim;

/// Cycles given to the manager: enough for dozens of canister creations (500B each) plus the
/// cycles each new canister receives.
pub const MANAGER_CYCLES: u128 = 100_000_000_000_000;

/// Size of a release chunk in the manager's store and the IC chunk store.
pub const CHUNK: usize = 1024 * 1024;

/// A distinct, non-anonymous principal for test identities (self-authenticating shape: 29 bytes
/// ending in 0x02).
pub fn user(n: u8) -> Principal {
    let mut bytes = [n; 29];
    bytes[28] = 0x02;
    Principal::from_slice(&bytes)
}

pub fn sha256(bytes: &[u8]) -> Vec<u8> {
    Sha256::digest(bytes).to_vec()
}

/// The user canister's wasm (`v2` selects the second app version).
pub fn user_wasm(v2: bool) -> Vec<u8> {
    if v2 {
        wasm_build::wasm("user_canister", &["v2"])
    } else {
        wasm_build::wasm("user_canister", &[])
    }
}

/// `wasm` with a custom section of `extra` bytes appended: a valid module of the same code that
/// is large enough to span several 1 MiB chunks. Runtimes ignore unknown custom sections.
pub fn padded(wasm: &[u8], extra: usize) -> Vec<u8> {
    let name = b"fleet_test_padding";
    let mut payload = Vec::with_capacity(extra + name.len() + 1);
    leb128(&mut payload, name.len() as u64);
    payload.extend_from_slice(name);
    payload.resize(payload.len() + extra, 0xAB);
    let mut out = wasm.to_vec();
    out.push(0); // custom section id
    leb128(&mut out, payload.len() as u64);
    out.extend_from_slice(&payload);
    out
}

fn leb128(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// A simulated IC with the fleet manager installed and controlled by `controller`.
pub struct Fleet {
    pub sim: IcSim,
    pub manager: Principal,
    /// The manager's controller: holds every role.
    pub controller: Principal,
}

impl Fleet {
    pub fn new() -> Self {
        Self::with_arg(None)
    }

    pub fn with_arg(arg: Option<ManagerInitArg>) -> Self {
        let sim = IcSim::new();
        let controller = user(200);
        let manager = sim.create_canister_with_settings(Some(controller), None);
        sim.add_cycles(manager, MANAGER_CYCLES);
        let wasm = wasm_build::wasm("fleet_manager", &[]);
        sim.install_canister(
            manager,
            wasm,
            encode_one(arg).expect("encoding the manager init arg"),
            Some(controller),
        );
        Fleet {
            sim,
            manager,
            controller,
        }
    }

    /// A manager whose creation limit does not get in the way of tests creating many canisters.
    pub fn unlimited() -> Self {
        Self::with_arg(Some(ManagerInitArg {
            creation_limit: Some(RateLimit {
                capacity: 1_000,
                refill_period_secs: 1,
            }),
            ..Default::default()
        }))
    }

    /// Calls an update method of the manager and decodes its reply; panics on a reject, which
    /// the manager's typed endpoints never produce for bad input.
    pub fn update<A, R>(&self, sender: Principal, method: &str, args: A) -> R
    where
        A: ArgumentEncoder,
        R: for<'a> ArgumentDecoder<'a>,
    {
        let payload = encode_args(args).expect("encoding call arguments");
        let reply = self
            .sim
            .update_call(self.manager, sender, method, payload)
            .unwrap_or_else(|e| panic!("{method} rejected: {e:?}"));
        decode_args(&reply).unwrap_or_else(|e| panic!("decoding {method} reply: {e}"))
    }

    pub fn query<A, R>(&self, sender: Principal, method: &str, args: A) -> R
    where
        A: ArgumentEncoder,
        R: for<'a> ArgumentDecoder<'a>,
    {
        let payload = encode_args(args).expect("encoding query arguments");
        let reply = self
            .sim
            .query_call(self.manager, sender, method, payload)
            .unwrap_or_else(|e| panic!("{method} rejected: {e:?}"));
        decode_args(&reply).unwrap_or_else(|e| panic!("decoding {method} reply: {e}"))
    }

    /// Shorthand for single-argument, single-result calls.
    pub fn call<A: CandidType, R>(&self, sender: Principal, method: &str, arg: A) -> R
    where
        R: for<'a> candid::Deserialize<'a> + CandidType,
    {
        let (r,): (R,) = self.update(sender, method, (arg,));
        r
    }

    pub fn read<A: CandidType, R>(&self, sender: Principal, method: &str, arg: A) -> R
    where
        R: for<'a> candid::Deserialize<'a> + CandidType,
    {
        let (r,): (R,) = self.query(sender, method, (arg,));
        r
    }

    /// Publishes `wasm` as `version` through the release endpoints, one 1 MiB chunk per
    /// message, as the CLI does, and returns the finalized release.
    pub fn publish(&self, sender: Principal, version: &str, wasm: &[u8]) -> ReleaseMeta {
        let begin: Result<fleet_api::manager::UploadStatus, fleet_api::manager::BeginReleaseError> =
            self.call(
                sender,
                "begin_release",
                BeginUpload {
                    version: version.to_string(),
                    total_size: wasm.len() as u64,
                    sha256: sha256(wasm),
                    notes: format!("release {version}"),
                },
            );
        begin.expect("begin_release");
        for (index, chunk) in wasm.chunks(CHUNK).enumerate() {
            let put: Result<(), fleet_api::manager::UploadReleaseChunkError> = self.call(
                sender,
                "upload_release_chunk",
                UploadReleaseChunkArg {
                    version: version.to_string(),
                    index: index as u32,
                    bytes: chunk.to_vec(),
                },
            );
            put.expect("upload_release_chunk");
        }
        let done: Result<
            fleet_api::manager::FinalizedRelease,
            fleet_api::manager::FinalizeReleaseError,
        > = self.call(sender, "finalize_release", version.to_string());
        let done = done.expect("finalize_release");
        assert_eq!(done.mirror_error, None, "mirroring {version}");
        done.release
    }

    /// Publishes `wasm` as `version` and makes it the default release.
    pub fn publish_default(&self, version: &str, wasm: &[u8]) -> ReleaseMeta {
        let meta = self.publish(self.controller, version, wasm);
        let set: Result<fleet_api::manager::Settings, fleet_api::manager::SetDefaultReleaseError> =
            self.call(self.controller, "set_default_release", version.to_string());
        set.expect("set_default_release");
        meta
    }

    pub fn user_canister_count(&self) -> u64 {
        self.read(Principal::anonymous(), "user_canister_count", ())
    }
}

impl Default for Fleet {
    fn default() -> Self {
        Self::new()
    }
}
