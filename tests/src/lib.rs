//! Shared helpers of the end-to-end tests: a simulated IC with the fleet manager installed, and
//! typed calls to it and to the user canisters. A call names its method by its `fleet_api`
//! endpoint type ([`Fleet::ask`], [`call_on`], [`submit`]), which fixes the method's name, its
//! kind (query or update), its arguments and its reply.
//!
//! The tests are written against the PocketIc-shaped API of `ic_sim`. The scenarios that need
//! nothing only the simulator has run on either backend through [`backend::Backend`] and
//! [`e2e::Deployment`] (`tests/e2e.rs`; `FLEET_TEST_BACKEND=pocket-ic` runs them on PocketIC).

use candid::{encode_one, Principal};
use fleet_api::endpoint::{CallKind, Endpoint};
use fleet_api::manager::method::{SetDefaultRelease, UserCanisterCount};
use fleet_api::manager::{ManagerInitArg, RateLimit, ReleaseMeta};
use ic_sim::{IcSim, RawMessageId, RejectResponse};
use sha2::{Digest, Sha256};

pub use fleet_api;
pub use ic_sim;

pub mod backend;
pub mod chaos;
pub mod e2e;

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

/// Open admission with a budget no test reaches: for tests about something else that create
/// many canisters.
pub fn unbounded_admission() -> fleet_api::governance::Admission {
    fleet_api::governance::Admission {
        mode: fleet_api::governance::AdmissionMode::Open,
        budget: fleet_api::governance::ProvisioningBudget {
            cycles_per_window: u128::MAX,
            window_secs: 60,
        },
    }
}

pub fn sha256(bytes: &[u8]) -> Vec<u8> {
    Sha256::digest(bytes).to_vec()
}

/// The store canister's wasm: the module the manager installs in each added subnet's store.
pub fn store_wasm() -> Vec<u8> {
    wasm_build::wasm("store_canister", &[])
}

/// The user canister's wasm (`v2` selects the second app version).
pub fn user_wasm(v2: bool) -> Vec<u8> {
    if v2 {
        wasm_build::wasm("user_canister", &["v2"])
    } else {
        wasm_build::wasm("user_canister", &[])
    }
}

/// A `sim_probe` canister controlled by `controller`, with cycles: a canister that relays any
/// call (`call_raw`) or answers as an approver, for tests that need a canister as the caller.
pub fn install_probe(sim: &IcSim, controller: Principal) -> Principal {
    let probe = sim.create_canister_with_settings(Some(controller), None);
    sim.add_cycles(probe, 50_000_000_000_000);
    sim.install_canister(
        probe,
        wasm_build::wasm("sim_probe", &[]),
        encode_one(None::<u64>).unwrap(),
        Some(controller),
    );
    probe
}

/// `wasm` with a custom section of `extra` bytes appended: a valid module of the same code that
/// is large enough to span several 1 MiB chunks. Runtimes ignore unknown custom sections.
pub fn padded(wasm: &[u8], extra: usize) -> Vec<u8> {
    wasm_build::with_custom_section(wasm, "fleet_test_padding", &vec![0xAB; extra])
}

/// Calls `E` on `canister` as `sender`, as a query or an update as `E::KIND` says; a reject is
/// returned. Panics on a reply that does not decode as `E::Reply`.
pub fn try_call_on<E: Endpoint>(
    sim: &IcSim,
    canister: Principal,
    sender: Principal,
    args: E::Args,
) -> Result<E::Reply, RejectResponse> {
    let payload = encode::<E>(args);
    let reply = match E::KIND {
        CallKind::Query => sim.query_call(canister, sender, E::NAME, payload),
        CallKind::Update => sim.update_call(canister, sender, E::NAME, payload),
    }?;
    Ok(decode_reply::<E>(&reply))
}

/// Calls `E` on `canister` as `sender` and decodes its reply; panics on a reject.
pub fn call_on<E: Endpoint>(
    sim: &IcSim,
    canister: Principal,
    sender: Principal,
    args: E::Args,
) -> E::Reply {
    try_call_on::<E>(sim, canister, sender, args)
        .unwrap_or_else(|e| panic!("{} on {canister} rejected: {e:?}", E::NAME))
}

/// Sends `E` to `canister` as an ingress message from `sender` and asserts that the canister's
/// `canister_inspect_message` dropped it: refused with IC0406 before it was inducted, so it
/// never ran and cost the canister nothing (interface spec, "Ingress message inspection").
pub fn refused_at_ingress<E: Endpoint>(
    sim: &IcSim,
    canister: Principal,
    sender: Principal,
    args: E::Args,
) {
    let before = sim.cycle_balance(canister);
    match try_call_on::<E>(sim, canister, sender, args) {
        Err(e) => assert_eq!(
            e.error_code,
            ic_sim::ErrorCode::CanisterRejectedMessage,
            "{} from {sender}: {e:?}",
            E::NAME
        ),
        Ok(_) => panic!("{} from {sender} was executed", E::NAME),
    }
    assert_eq!(sim.cycle_balance(canister), before, "{}", E::NAME);
}

/// Submits a call of `E` to `canister` as `sender` as an ingress message, which runs in the
/// next round; its reply decodes with [`decode_reply`].
pub fn submit<E: Endpoint>(
    sim: &IcSim,
    canister: Principal,
    sender: Principal,
    args: E::Args,
) -> RawMessageId {
    sim.submit_call(canister, sender, E::NAME, encode::<E>(args))
        .unwrap_or_else(|e| panic!("submitting {} to {canister}: {e:?}", E::NAME))
}

use e2e::encode;

/// `E`'s reply from its bytes; panics on bytes that are not one.
pub fn decode_reply<E: Endpoint>(bytes: &[u8]) -> E::Reply {
    e2e::decode::<E>(bytes)
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
        Self::on(IcSim::new(), arg)
    }

    /// The manager installed on `sim`, on its first application subnet.
    pub fn on(sim: IcSim, arg: Option<ManagerInitArg>) -> Self {
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
            admission: Some(unbounded_admission()),
            ..Default::default()
        }))
    }

    /// Calls `E` on the manager as `sender` and decodes its reply; panics on a reject, which
    /// the manager's typed endpoints never produce for bad input.
    pub fn ask<E: Endpoint>(&self, sender: Principal, args: E::Args) -> E::Reply {
        call_on::<E>(&self.sim, self.manager, sender, args)
    }

    /// Calls `E` on the manager as `sender`; a reject (a frozen or stopped manager) is returned.
    pub fn try_ask<E: Endpoint>(
        &self,
        sender: Principal,
        args: E::Args,
    ) -> Result<E::Reply, RejectResponse> {
        try_call_on::<E>(&self.sim, self.manager, sender, args)
    }

    /// [`refused_at_ingress`] on the manager.
    pub fn refused_at_ingress<E: Endpoint>(&self, sender: Principal, args: E::Args) {
        refused_at_ingress::<E>(&self.sim, self.manager, sender, args);
    }

    /// Publishes `wasm` as `version` through the release endpoints, one 1 MiB chunk per
    /// message, as the CLI does, and returns the finalized release.
    pub fn publish(&self, sender: Principal, version: &str, wasm: &[u8]) -> ReleaseMeta {
        e2e::publish(&self.sim, self.manager, sender, version, wasm)
    }

    /// Publishes `wasm` as `version` and makes it the default release.
    pub fn publish_default(&self, version: &str, wasm: &[u8]) -> ReleaseMeta {
        let meta = self.publish(self.controller, version, wasm);
        self.ask::<SetDefaultRelease>(self.controller, (version.to_string(),))
            .into_result()
            .expect("set_default_release");
        meta
    }

    pub fn user_canister_count(&self) -> u64 {
        self.ask::<UserCanisterCount>(Principal::anonymous(), ())
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
    use fleet_api::manager::UserCanister;
    use fleet_api::rollout::method::{
        GetRolloutStatus, HttpRequestQuery, Metrics, PipelineLog, RolloutEvents, RolloutResults,
        StartRollout,
    };
    use fleet_api::rollout::*;
    use fleet_api::user::method::{Get, Put};
    use fleet_api::user::PutNoteArg;
    use std::collections::BTreeMap;

    pub use crate::e2e::{owner, recovery, ROUND, USER_CYCLES};

    /// A rollout run to its end by [`Fleet::roll`].
    pub struct Rolled {
        pub id: u64,
        pub status: RolloutStatus,
        /// Rounds from the start to the end.
        pub rounds: u64,
        /// The manager's instructions for `start_rollout` (cohort selection, queues).
        pub start_instructions: u64,
        /// Rounds after the start until the first wave opened: the ticks that write the
        /// records a large cohort's start staged (0 when it wrote them all).
        pub load_rounds: u64,
        /// The manager's most instructions in one of those rounds.
        pub load_round_max_instructions: u64,
        /// The manager's instructions once the cohort's records are written (after the start
        /// and [`Rolled::load_instructions`]), status polls left out: what upgrading costs.
        pub instructions: u64,
        /// The manager's instructions in the rounds that wrote the records the start staged.
        pub load_instructions: u64,
    }

    /// A manager ready for fleets of `n` canisters: no creation limit in the way, and cycles
    /// for every creation.
    pub fn fleet_for(n: u32) -> Fleet {
        let fleet = Fleet::with_arg(Some(crate::e2e::init_for(n)));
        fleet
            .sim
            .add_cycles(fleet.manager, n as u128 * 2 * USER_CYCLES);
        fleet
    }

    impl Fleet {
        /// One round, one timer interval later.
        pub fn step(&self) {
            crate::e2e::step(&self.sim);
        }

        /// Runs rounds until every submitted call of `E` has answered; returns the replies in
        /// the order of `messages`. Panics on a reject.
        pub fn run_all<E: Endpoint>(
            &self,
            messages: Vec<RawMessageId>,
            max_rounds: u64,
        ) -> Vec<E::Reply> {
            let messages: Vec<_> = messages.into_iter().map(Into::into).collect();
            crate::e2e::run_all::<E>(&self.sim, &messages, max_rounds)
        }

        /// Creates the canisters of owners `first..first + n` concurrently, as their owners
        /// would, and returns their records in owner order.
        pub fn provision(&self, first: u32, n: u32) -> Vec<UserCanister> {
            crate::e2e::provision(&self.sim, self.manager, first, n)
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
                    let arg = PutNoteArg {
                        key: note_key(k),
                        text: note_text(*n, k),
                    };
                    messages.push(submit::<Put>(&self.sim, *id, owner(*n), (arg,)));
                }
            }
            for reply in self.run_all::<Put>(messages, 1_000) {
                reply.into_result().expect("put");
            }
        }

        /// Asserts that owner `n`'s notes read back as written.
        pub fn assert_notes(&self, n: u32, canister: Principal, notes: u32) {
            for k in 0..notes {
                let note = call_on::<Get>(&self.sim, canister, owner(n), (note_key(k),))
                    .into_result()
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
            self.ask::<StartRollout>(self.controller, (plan,))
                .into_result()
        }

        /// Starts `plan` and runs rounds until the rollout finishes, as the benchmarks do;
        /// panics unless it completes. The status polled every round runs on the manager too:
        /// its instructions are left out of [`Rolled::instructions`].
        pub fn roll(&self, plan: RolloutPlanArg) -> Rolled {
            let before = self.sim.instructions_total(self.manager);
            let started = self.start_rollout(plan).expect("start_rollout");
            let instr0 = self.sim.instructions_total(self.manager);
            let mut polls = 0;
            let mut rounds = 0;
            let mut loading = true;
            let (mut load_rounds, mut load_round_max_instructions) = (0, 0);
            let mut load_instructions = 0;
            let status = loop {
                let polled = self.sim.instructions_total(self.manager);
                let status = self.rollout_status();
                polls += self.sim.instructions_total(self.manager) - polled;
                if status.phase.is_finished() {
                    break status;
                }
                if loading && status.waves.first().is_some_and(|w| w.opened_at.is_some()) {
                    loading = false;
                    load_rounds = rounds;
                    // Printed now: a benchmark's rollout may run for an hour after this.
                    eprintln!(
                        "rollout {}: {} canisters, start_rollout {} instructions, records \
                         written {load_rounds} rounds later (at most {load_round_max_instructions} \
                         instructions a round)",
                        started.id,
                        started.canisters,
                        instr0 - before
                    );
                }
                let stepped = self.sim.instructions_total(self.manager);
                self.step();
                if loading {
                    let round = self.sim.instructions_total(self.manager) - stepped;
                    load_instructions += round;
                    load_round_max_instructions = load_round_max_instructions.max(round);
                }
                rounds += 1;
            };
            assert_eq!(status.phase, Phase::Completed, "{status:?}");
            Rolled {
                id: started.id,
                status,
                rounds,
                start_instructions: instr0 - before,
                load_rounds,
                load_round_max_instructions,
                instructions: self.sim.instructions_total(self.manager)
                    - instr0
                    - polls
                    - load_instructions,
                load_instructions,
            }
        }

        pub fn rollout_status(&self) -> RolloutStatus {
            self.ask::<GetRolloutStatus>(self.controller, ())
                .into_result()
                .expect("rollout_status")
                .expect("a rollout exists")
        }

        /// Pauses, resumes or aborts the rollout as the controller.
        pub fn control<E>(&self) -> Result<RolloutStatus, RolloutControlError>
        where
            E: Endpoint<Args = (), Reply = RolloutControlReply>,
        {
            self.ask::<E>(self.controller, ()).into_result()
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
                let arg = RolloutResultsArg {
                    start_after: after,
                    limit: Some(100),
                };
                let page = self
                    .ask::<RolloutResults>(self.controller, (arg,))
                    .into_result()
                    .unwrap()
                    .expect("a rollout exists");
                out.extend(page.results);
                match page.next {
                    Some(n) => after = Some(n),
                    None => return out,
                }
            }
        }

        pub fn rollout_events(&self) -> Vec<Event> {
            read_log(|arg| {
                let page = self.ask::<RolloutEvents>(self.controller, (arg,));
                page.into_result()
                    .unwrap()
                    .expect("a rollout exists")
                    .events
            })
        }

        /// The manager's pipeline log entries of rollout `id`.
        pub fn pipeline_log(&self, id: u64) -> Vec<PipelineLogEntry> {
            let log = read_log(|arg| {
                let page = self.ask::<PipelineLog>(self.controller, (arg,));
                page.into_result().unwrap().entries
            });
            log.into_iter().filter(|e| e.rollout_id == id).collect()
        }

        /// The manager's aggregate metrics, as anyone reads them.
        pub fn metrics(&self) -> FleetMetrics {
            self.ask::<Metrics>(Principal::anonymous(), ())
        }

        /// `GET /metrics` through the manager's `http_request`, as a scraper reads it.
        pub fn metrics_text(&self) -> String {
            let request = HttpRequest {
                method: "GET".into(),
                url: "/metrics".into(),
                headers: vec![],
                body: vec![],
            };
            let reply = self.ask::<HttpRequestQuery>(Principal::anonymous(), (request,));
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

    /// Every entry of a numbered log, read page by page from the start: `page` reads the
    /// entries from `arg.from` on, none past the end.
    fn read_log<T>(mut page: impl FnMut(LogPageArg) -> Vec<(u64, T)>) -> Vec<T> {
        let mut out = Vec::new();
        let mut from = 0;
        loop {
            let entries = page(LogPageArg {
                from,
                limit: Some(MAX_ROLLOUT_PAGE),
            });
            let Some(&(last, _)) = entries.last() else {
                return out;
            };
            from = last + 1;
            out.extend(entries.into_iter().map(|(_, e)| e));
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
            per_subnet: None,
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
