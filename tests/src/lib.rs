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

pub mod chaos;

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

// ---------------------------------------------------------------------------------------------
// Fleets of user canisters and rollouts
// ---------------------------------------------------------------------------------------------

pub mod rollout {
    //! Helpers for rollout scenarios: provisioning hundreds of canisters concurrently, driving
    //! rounds, and reading the manager's rollout status, results and logs from outside.

    use super::*;
    use candid::decode_one;
    use fleet_api::manager::{CreateUserCanisterArg, CreateUserCanisterError, UserCanister};
    use fleet_api::rollout::*;
    use fleet_api::user::{Note, NoteError};
    use ic_sim::RawMessageId;
    use std::collections::BTreeMap;
    use std::time::Duration;

    /// Simulated time per round: the driver's timer interval.
    pub const ROUND: Duration = Duration::from_secs(1);
    /// Cycles each user canister gets: above the default precheck minimum (500B).
    pub const USER_CYCLES: u128 = 1_000_000_000_000;

    /// The `n`-th end user (owner) and their recovery principal; distinct for every `n`.
    pub fn owner(n: u32) -> Principal {
        let mut bytes = [0x11u8; 29];
        bytes[..4].copy_from_slice(&n.to_be_bytes());
        bytes[28] = 0x02;
        Principal::from_slice(&bytes)
    }

    pub fn recovery(n: u32) -> Principal {
        let mut bytes = [0x22u8; 29];
        bytes[..4].copy_from_slice(&n.to_be_bytes());
        bytes[28] = 0x02;
        Principal::from_slice(&bytes)
    }

    /// A manager ready for fleets of `n` canisters: no creation limit in the way, and cycles
    /// for every creation.
    pub fn fleet_for(n: u32) -> Fleet {
        let fleet = Fleet::with_arg(Some(ManagerInitArg {
            creation_limit: Some(RateLimit {
                capacity: n.max(10),
                refill_period_secs: 1,
            }),
            user_canister_cycles: Some(USER_CYCLES),
            ..Default::default()
        }));
        fleet
            .sim
            .add_cycles(fleet.manager, n as u128 * 2 * USER_CYCLES);
        fleet
    }

    impl Fleet {
        /// One round, one timer interval later.
        pub fn step(&self) {
            self.sim.advance_time(ROUND);
            self.sim.tick();
        }

        /// Submits every message and runs rounds until all have answered; returns the replies.
        pub fn run_all(&self, messages: Vec<RawMessageId>, max_rounds: u64) -> Vec<Vec<u8>> {
            let mut replies: Vec<Option<Vec<u8>>> = vec![None; messages.len()];
            for _ in 0..max_rounds {
                let mut pending = false;
                for (i, m) in messages.iter().enumerate() {
                    if replies[i].is_none() {
                        match self.sim.ingress_status(m) {
                            Some(Ok(bytes)) => replies[i] = Some(bytes),
                            Some(Err(e)) => panic!("message {i} rejected: {e:?}"),
                            None => pending = true,
                        }
                    }
                }
                if !pending {
                    return replies.into_iter().map(|r| r.expect("answered")).collect();
                }
                self.step();
            }
            panic!("messages still pending after {max_rounds} rounds");
        }

        /// Creates the canisters of owners `first..first + n` concurrently, as their owners
        /// would, and returns their records in owner order.
        pub fn provision(&self, first: u32, n: u32) -> Vec<UserCanister> {
            let messages = (first..first + n)
                .map(|i| {
                    let arg = CreateUserCanisterArg {
                        recovery_principal: recovery(i),
                    };
                    self.sim
                        .submit_call(
                            self.manager,
                            owner(i),
                            "create_user_canister",
                            encode_one(arg).unwrap(),
                        )
                        .expect("submitting create_user_canister")
                })
                .collect();
            self.run_all(messages, 10_000)
                .into_iter()
                .map(|bytes| {
                    decode_one::<Result<UserCanister, CreateUserCanisterError>>(&bytes)
                        .unwrap()
                        .expect("create_user_canister")
                })
                .collect()
        }

        /// Owners `0..n` each create their canister and write `notes` notes into it; returns
        /// (owner number, canister id) in owner order.
        pub fn provision_with_notes(&self, n: u32, notes: u32) -> Vec<(u32, Principal)> {
            let canisters: Vec<(u32, Principal)> = self
                .provision(0, n)
                .into_iter()
                .enumerate()
                .map(|(i, c)| (i as u32, c.canister_id))
                .collect();
            self.write_notes(&canisters, notes);
            canisters
        }

        /// Each owner writes `notes` notes into their canister.
        pub fn write_notes(&self, canisters: &[(u32, Principal)], notes: u32) {
            let mut messages = Vec::new();
            for (n, id) in canisters {
                for k in 0..notes {
                    messages.push(
                        self.sim
                            .submit_call(
                                *id,
                                owner(*n),
                                "put",
                                encode_one(fleet_api::user::PutNoteArg {
                                    key: note_key(k),
                                    text: note_text(*n, k),
                                })
                                .unwrap(),
                            )
                            .expect("submitting put"),
                    );
                }
            }
            for bytes in self.run_all(messages, 1_000) {
                decode_one::<Result<(), NoteError>>(&bytes)
                    .unwrap()
                    .expect("put");
            }
        }

        /// Asserts that owner `n`'s notes read back as written.
        pub fn assert_notes(&self, n: u32, canister: Principal, notes: u32) {
            for k in 0..notes {
                let reply = self
                    .sim
                    .query_call(canister, owner(n), "get", encode_one(note_key(k)).unwrap())
                    .unwrap_or_else(|e| panic!("get on {canister}: {e:?}"));
                let note = decode_one::<Result<Option<Note>, NoteError>>(&reply)
                    .unwrap()
                    .expect("get");
                assert_eq!(
                    note.map(|n| n.text),
                    Some(note_text(n, k)),
                    "note {k} of {canister}"
                );
            }
        }

        pub fn start_rollout(
            &self,
            plan: RolloutPlanArg,
        ) -> Result<RolloutStarted, StartRolloutError> {
            self.call(self.controller, "start_rollout", plan)
        }

        pub fn rollout_status(&self) -> RolloutStatus {
            let s: Result<Option<RolloutStatus>, fleet_api::manager::QueryError> =
                self.read(self.controller, "rollout_status", ());
            s.expect("rollout_status").expect("a rollout exists")
        }

        pub fn control(&self, method: &str) -> Result<RolloutStatus, RolloutControlError> {
            self.update::<_, (Result<RolloutStatus, RolloutControlError>,)>(
                self.controller,
                method,
                (),
            )
            .0
        }

        /// Runs rounds until `done` holds for the status; returns the rounds it took.
        pub fn run_until(&self, max_rounds: u64, done: impl Fn(&RolloutStatus) -> bool) -> u64 {
            for round in 0..max_rounds {
                if done(&self.rollout_status()) {
                    return round;
                }
                self.step();
            }
            panic!(
                "rollout did not get there in {max_rounds} rounds: {:?}",
                self.rollout_status()
            );
        }

        /// Runs rounds until the rollout completed, aborted or halted.
        pub fn run_to_rest(&self, max_rounds: u64) -> u64 {
            self.run_until(max_rounds, |s| {
                s.phase.is_finished()
                    || (matches!(s.phase, Phase::Halted(_)) && s.counts.in_flight == 0)
            })
        }

        /// Every per-canister result of the current rollout, page by page.
        pub fn rollout_results(&self) -> Vec<RolloutCanisterResult> {
            let mut out = Vec::new();
            let mut after = None;
            loop {
                let page: Result<Option<RolloutResultsPage>, fleet_api::manager::QueryError> = self
                    .read(
                        self.controller,
                        "rollout_results",
                        RolloutResultsArg {
                            start_after: after,
                            limit: Some(100),
                        },
                    );
                let page = page.unwrap().expect("a rollout exists");
                out.extend(page.results);
                match page.next {
                    Some(n) => after = Some(n),
                    None => return out,
                }
            }
        }

        pub fn rollout_events(&self) -> Vec<Event> {
            let mut out = Vec::new();
            let mut from = 0;
            loop {
                let page: Result<Option<RolloutEventsPage>, fleet_api::manager::QueryError> = self
                    .read(
                        self.controller,
                        "rollout_events",
                        LogPageArg {
                            from,
                            limit: Some(MAX_ROLLOUT_PAGE),
                        },
                    );
                let page = page.unwrap().expect("a rollout exists");
                if page.events.is_empty() {
                    return out;
                }
                from = page.events.last().unwrap().0 + 1;
                out.extend(page.events.into_iter().map(|(_, e)| e));
            }
        }

        /// The manager's pipeline log entries of rollout `id`.
        pub fn pipeline_log(&self, id: u64) -> Vec<PipelineLogEntry> {
            let mut out = Vec::new();
            let mut from = 0;
            loop {
                let page: Result<PipelineLogPage, fleet_api::manager::QueryError> = self.read(
                    self.controller,
                    "pipeline_log",
                    LogPageArg {
                        from,
                        limit: Some(MAX_ROLLOUT_PAGE),
                    },
                );
                let page = page.unwrap();
                if page.entries.is_empty() {
                    return out;
                }
                from = page.entries.last().unwrap().0 + 1;
                out.extend(
                    page.entries
                        .into_iter()
                        .map(|(_, e)| e)
                        .filter(|e| e.rollout_id == id),
                );
            }
        }

        /// The manager's aggregate metrics, as anyone reads them.
        pub fn metrics(&self) -> FleetMetrics {
            self.read(Principal::anonymous(), "metrics", ())
        }

        /// `GET /metrics` through the manager's `http_request`, as a scraper reads it.
        pub fn metrics_text(&self) -> String {
            let reply = self
                .sim
                .query_call(
                    self.manager,
                    Principal::anonymous(),
                    "http_request",
                    encode_one(HttpRequest {
                        method: "GET".into(),
                        url: "/metrics".into(),
                        headers: vec![],
                        body: vec![],
                    })
                    .unwrap(),
                )
                .expect("http_request");
            let reply: HttpResponse = decode_one(&reply).unwrap();
            assert_eq!(reply.status_code, 200);
            String::from_utf8(reply.body).expect("metrics are text")
        }

        /// Whether a canister is running, as `canister_status` reports it to a controller.
        pub fn is_running(&self, canister: Principal) -> bool {
            let status = self
                .sim
                .canister_status(canister, Some(self.manager))
                .expect("canister_status");
            status.status == ic_sim::management_canister::CanisterStatusType::Running
        }

        pub fn controllers_sorted(&self, canister: Principal) -> Vec<Principal> {
            let mut c = self.sim.get_controllers(canister);
            c.sort();
            c
        }
    }

    /// A plan to `version` in one wave, no canary, no bake, `in_flight` at once and no binding
    /// rate limit.
    pub fn one_wave_plan(version: &str, in_flight: u32) -> RolloutPlanArg {
        let mut plan = RolloutPlanArg::to(version);
        plan.canary = Some(Canary::None);
        plan.waves_percent = Some(vec![100]);
        plan.bake_secs = Some(0);
        plan.limits = Some(Limits {
            max_in_flight: in_flight,
            starts_per_minute: 1_000_000,
            burst: in_flight,
            max_starts_per_tick: in_flight,
        });
        plan
    }

    pub fn note_key(k: u32) -> String {
        format!("note-{k}")
    }

    pub fn note_text(owner: u32, k: u32) -> String {
        format!("owner {owner} wrote note {k}")
    }

    /// What the pipeline log shows about the limits: the most canisters in flight at once, and
    /// the most pipeline starts in any window of one minute.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct LogFigures {
        pub starts: u64,
        pub max_in_flight: u64,
        pub max_starts_per_minute: u64,
        /// (start, end) times of each pipeline run, in log order.
        pub spans: Vec<(u64, u64)>,
    }

    /// Replays a rollout's pipeline log: every `Started` takes a slot that its `Left` gives
    /// back; a canister never holds two. Panics on an inconsistent log.
    pub fn replay(log: &[PipelineLogEntry]) -> LogFigures {
        let mut holding: BTreeMap<Principal, u64> = BTreeMap::new();
        let mut starts = Vec::new();
        let mut spans = Vec::new();
        let mut max_in_flight = 0u64;
        for e in log {
            match &e.kind {
                PipelineLogKind::Started => {
                    assert!(
                        holding.insert(e.canister_id, e.at).is_none(),
                        "{} started twice at once",
                        e.canister_id
                    );
                    starts.push(e.at);
                    max_in_flight = max_in_flight.max(holding.len() as u64);
                }
                PipelineLogKind::Left { .. } => {
                    let start = holding
                        .remove(&e.canister_id)
                        .unwrap_or_else(|| panic!("{} left without a start", e.canister_id));
                    spans.push((start, e.at));
                }
                PipelineLogKind::Reissued { .. } => {}
            }
        }
        let minute = 60_000_000_000u64;
        let mut max_starts_per_minute = 0;
        for (i, &t) in starts.iter().enumerate() {
            let n = starts[i..].iter().take_while(|&&x| x < t + minute).count();
            max_starts_per_minute = max_starts_per_minute.max(n as u64);
        }
        LogFigures {
            starts: starts.len() as u64,
            max_in_flight,
            max_starts_per_minute,
            spans,
        }
    }
}
