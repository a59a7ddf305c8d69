//! A fleet manager deployed on any [`Backend`]: the calls of the end-to-end scenarios that run
//! on both ic_sim and PocketIC. [`crate::Fleet`] (ic_sim only) uses the same functions.

use std::time::Duration;

use candid::{decode_one, encode_args, encode_one, Principal};
use fleet_api::endpoint::{CallKind, Endpoint};
use fleet_api::manager::method::{
    BeginRelease, CreateUserCanister, FinalizeRelease, SetDefaultRelease, UploadReleaseChunk,
};
use fleet_api::manager::{
    BeginUpload, CreateUserCanisterArg, ManagerInitArg, RateLimit, ReleaseMeta,
    UploadReleaseChunkArg, UserCanister,
};
use fleet_api::rollout::method::GetRolloutStatus;
use fleet_api::rollout::{Phase, RolloutStatus};

use crate::backend::{self, Backend, MessageId, Mode, Reject};
use crate::{sha256, user, CHUNK, MANAGER_CYCLES};

/// Simulated time per round: the driver's timer interval.
pub const ROUND: Duration = Duration::from_secs(1);

/// Calls `E` on `canister` as `sender`, as a query or an update as `E::KIND` says; a reject is
/// returned. Panics on a reply that does not decode as `E::Reply`.
pub fn call<E: Endpoint>(
    ic: &dyn Backend,
    canister: Principal,
    sender: Principal,
    args: E::Args,
) -> Result<E::Reply, Reject> {
    let reply = ic.call(E::KIND, canister, sender, E::NAME, encode::<E>(args))?;
    Ok(decode::<E>(&reply))
}

/// Submits `E` to `canister` as an ingress message from `sender`; it runs in the next rounds.
pub fn submit<E: Endpoint>(
    ic: &dyn Backend,
    canister: Principal,
    sender: Principal,
    args: E::Args,
) -> MessageId {
    ic.submit(canister, sender, E::NAME, encode::<E>(args))
        .unwrap_or_else(|e| panic!("submitting {} to {canister}: {e}", E::NAME))
}

/// The encoded arguments of `E`; panics on arguments candid cannot encode.
pub fn encode<E: Endpoint>(args: E::Args) -> Vec<u8> {
    encode_args(args).unwrap_or_else(|e| panic!("encoding {} arguments: {e}", E::NAME))
}

/// `E`'s reply from its bytes; panics on bytes that are not one.
pub fn decode<E: Endpoint>(bytes: &[u8]) -> E::Reply {
    decode_one(bytes).unwrap_or_else(|e| panic!("decoding {} reply: {e}", E::NAME))
}

/// One round, one timer interval later.
pub fn step(ic: &dyn Backend) {
    ic.advance_time(ROUND);
    ic.tick();
}

/// Runs rounds until every message of `E` has answered; returns the replies in the order of
/// `messages`. Panics on a reject or when `max_rounds` did not suffice.
pub fn run_all<E: Endpoint>(
    ic: &dyn Backend,
    messages: &[MessageId],
    max_rounds: u64,
) -> Vec<E::Reply> {
    let mut replies: Vec<Option<Vec<u8>>> = vec![None; messages.len()];
    for _ in 0..max_rounds {
        let mut pending = false;
        for (i, m) in messages.iter().enumerate() {
            if replies[i].is_none() {
                match ic.ingress_status(m) {
                    Some(Ok(bytes)) => replies[i] = Some(bytes),
                    Some(Err(e)) => panic!("{} message {i} rejected: {e}", E::NAME),
                    None => pending = true,
                }
            }
        }
        if !pending {
            return replies
                .into_iter()
                .map(|r| decode::<E>(&r.expect("answered")))
                .collect();
        }
        step(ic);
    }
    panic!("messages still pending after {max_rounds} rounds");
}

/// Publishes `wasm` as `version` on `manager` through the release endpoints, one 1 MiB chunk
/// per message, as the CLI does, and returns the finalized release.
pub fn publish(
    ic: &dyn Backend,
    manager: Principal,
    sender: Principal,
    version: &str,
    wasm: &[u8],
) -> ReleaseMeta {
    let ask = |payload: Vec<u8>, method: &str| {
        ic.call(CallKind::Update, manager, sender, method, payload)
            .unwrap_or_else(|e| panic!("{method}: {e}"))
    };
    let begin = BeginUpload {
        version: version.to_string(),
        total_size: wasm.len() as u64,
        sha256: sha256(wasm),
        notes: format!("release {version}"),
        interface: None,
    };
    let reply = ask(encode::<BeginRelease>((begin,)), BeginRelease::NAME);
    decode::<BeginRelease>(&reply)
        .into_result()
        .expect("begin_release");
    for (index, chunk) in wasm.chunks(CHUNK).enumerate() {
        let arg = UploadReleaseChunkArg {
            version: version.to_string(),
            index: index as u32,
            bytes: chunk.to_vec(),
        };
        let reply = ask(
            encode::<UploadReleaseChunk>((arg,)),
            UploadReleaseChunk::NAME,
        );
        decode::<UploadReleaseChunk>(&reply)
            .into_result()
            .expect("upload_release_chunk");
    }
    let reply = ask(
        encode::<FinalizeRelease>((version.to_string(),)),
        FinalizeRelease::NAME,
    );
    let done = decode::<FinalizeRelease>(&reply)
        .into_result()
        .expect("finalize_release");
    assert_eq!(done.mirror_error, None, "mirroring {version}");
    done.release
}

/// The `n`-th end user (owner) and their recovery principal; distinct for every `n`.
pub fn owner(n: u32) -> Principal {
    numbered(0x11, n)
}

pub fn recovery(n: u32) -> Principal {
    numbered(0x22, n)
}

fn numbered(fill: u8, n: u32) -> Principal {
    let mut bytes = [fill; 29];
    bytes[..4].copy_from_slice(&n.to_be_bytes());
    bytes[28] = 0x02;
    Principal::from_slice(&bytes)
}

/// Owners `first..first + n` create their canisters through `manager` concurrently, as their
/// owners would; returns their records in owner order.
pub fn provision(ic: &dyn Backend, manager: Principal, first: u32, n: u32) -> Vec<UserCanister> {
    let messages: Vec<MessageId> = (first..first + n)
        .map(|i| {
            let arg = CreateUserCanisterArg {
                recovery_principal: recovery(i),
                invite: None,
            };
            submit::<CreateUserCanister>(ic, manager, owner(i), (arg,))
        })
        .collect();
    run_all::<CreateUserCanister>(ic, &messages, 10_000)
        .into_iter()
        .map(|reply| reply.into_result().expect("create_user_canister"))
        .collect()
}

/// Cycles each user canister gets: above the default precheck minimum (500B).
pub const USER_CYCLES: u128 = 1_000_000_000_000;

/// The init argument of a manager ready for fleets of `n` canisters: no creation limit in the
/// way, [`USER_CYCLES`] for each.
pub fn init_for(n: u32) -> ManagerInitArg {
    ManagerInitArg {
        creation_limit: Some(RateLimit {
            capacity: n.max(10),
            refill_period_secs: 1,
        }),
        user_canister_cycles: Some(USER_CYCLES),
        admission: Some(crate::unbounded_admission()),
        ..Default::default()
    }
}

/// The fleet manager installed on a backend, controlled by `controller`.
pub struct Deployment {
    pub ic: Box<dyn Backend>,
    pub manager: Principal,
    /// The manager's controller: holds every role.
    pub controller: Principal,
}

impl Deployment {
    /// The manager on the backend the environment chooses ([`backend::for_test`]), ready for
    /// `n` user canisters.
    pub fn for_fleet(n: u32) -> Self {
        let d = Self::on(backend::for_test(), Some(init_for(n)));
        d.ic.add_cycles(d.manager, u128::from(n) * 2 * USER_CYCLES);
        d
    }

    /// Installs the manager (the `canister` build) on `ic` with `arg`.
    pub fn on(ic: Box<dyn Backend>, arg: Option<ManagerInitArg>) -> Self {
        let controller = user(200);
        let manager = ic.create_canister(controller);
        ic.add_cycles(manager, MANAGER_CYCLES);
        let wasm = wasm_build::wasm("fleet_manager", &[]);
        let arg = encode_one(arg).expect("encoding the manager init arg");
        ic.install_code(Mode::Install, manager, wasm, arg, controller)
            .unwrap_or_else(|e| panic!("installing the manager on {}: {e}", ic.name()));
        Deployment {
            ic,
            manager,
            controller,
        }
    }

    /// Calls `E` on the manager as `sender` and decodes its reply; panics on a reject.
    pub fn ask<E: Endpoint>(&self, sender: Principal, args: E::Args) -> E::Reply {
        self.call::<E>(self.manager, sender, args)
            .unwrap_or_else(|e| panic!("{} on the manager rejected: {e}", E::NAME))
    }

    /// Calls `E` on any canister as `sender`; a reject is returned.
    pub fn call<E: Endpoint>(
        &self,
        canister: Principal,
        sender: Principal,
        args: E::Args,
    ) -> Result<E::Reply, Reject> {
        call::<E>(self.ic.as_ref(), canister, sender, args)
    }

    /// Publishes `wasm` as `version` as the controller, and with `default` makes it the
    /// release new canisters get.
    pub fn publish(&self, version: &str, wasm: &[u8], default: bool) -> ReleaseMeta {
        let meta = publish(
            self.ic.as_ref(),
            self.manager,
            self.controller,
            version,
            wasm,
        );
        if default {
            self.ask::<SetDefaultRelease>(self.controller, (version.to_string(),))
                .into_result()
                .expect("set_default_release");
        }
        meta
    }

    /// Owners `first..first + n` create their canisters; their records in owner order.
    pub fn provision(&self, first: u32, n: u32) -> Vec<UserCanister> {
        provision(self.ic.as_ref(), self.manager, first, n)
    }

    pub fn step(&self) {
        step(self.ic.as_ref())
    }

    pub fn rollout_status(&self) -> RolloutStatus {
        self.ask::<GetRolloutStatus>(self.controller, ())
            .into_result()
            .expect("rollout_status")
            .expect("a rollout exists")
    }

    /// Runs rounds until the rollout completed, aborted or halted with nothing in flight;
    /// returns the rounds it took.
    pub fn run_to_rest(&self, max_rounds: u64) -> u64 {
        for round in 0..max_rounds {
            let s = self.rollout_status();
            if s.phase.is_finished()
                || (matches!(s.phase, Phase::Halted(_)) && s.counts.in_flight == 0)
            {
                return round;
            }
            self.step();
        }
        panic!(
            "rollout did not come to rest in {max_rounds} rounds on {}: {:?}",
            self.ic.name(),
            self.rollout_status()
        );
    }

    /// A canister's controllers, sorted.
    pub fn controllers_sorted(&self, canister: Principal) -> Vec<Principal> {
        let mut c = self.ic.controllers(canister);
        c.sort();
        c
    }
}
