//! Rounds as the replica's scheduler runs them (dfinity/ic
//! `rs/execution_environment/src/scheduler.rs`, `execute_round` and `inner_round`), reduced to
//! what a test can observe.
//!
//! A round (one `tick`) first moves time, then continues long installations, then repeats inner
//! rounds: management (subnet) messages within their own budget, then canister messages on the
//! scheduler cores, then induction of the messages canisters sent each other in that inner round,
//! so that a call and its response between two canisters can complete within one round. Inner
//! rounds end when the canisters' budget is spent or nothing executed. Messages to and from the
//! management canister, and whatever the last inner round produced, are delivered in the next
//! round (they take the path through message routing on the replica).
//!
//! With several subnets, a tick runs this round on each subnet in turn, each with its own
//! budgets, queues and long executions. A message to a canister of another subnet (XNet) is
//! never inducted within the round: it waits for the next round, as the replica's stream
//! between two subnets carries only what a finalized block of the sender produced, so a request
//! sent in round r runs in round r+1 at the earliest and its response reaches the caller in
//! round r+2 (interface spec, "Abstract behavior": only the order of messages between two
//! canisters is guaranteed, not their timing). A management call runs on the subnet of the
//! canister its argument names, otherwise on the caller's (`create_canister` creates there).
//!
//! Simplifications, each chosen because a test cannot tell the difference:
//! - Cores run one after the other, each with the budget that is left for the round; the round's
//!   budget then goes down by what the busiest core used, as the replica accounts for its
//!   parallel threads.
//! - A long execution (deterministic time slicing) runs at once, in full, when it starts. Its
//!   result (state, calls, response) is held back and committed after its last slice: the
//!   canister is busy for `ceil(instructions / slice) - 1` further rounds, each of which counts
//!   one slice against a core (against the subnet messages' budget for `install_code`). No other
//!   message, and no management message about the canister, runs meanwhile; queries see the
//!   state from before the execution, as on the replica.
//! - Long executions above `max_paused_executions` wait without progress, where the replica
//!   aborts them and runs them again later.
//! - Canister order: long executions first, then the canisters that executed least recently
//!   (the replica orders by accumulated priority, which equals this for canisters without compute
//!   allocation), then by the order of their first message. Within a canister, messages run in
//!   the order they arrived.
//! - Heap delta limits and wasm compilation costs are not modelled.

use std::collections::{BTreeMap, HashMap, VecDeque};

use candid::Principal;

use crate::exec::Outcome;
use crate::management::{
    counts_toward_round_limit, effective_canister, installs_code, InstallWork,
};
use crate::sim::{empty_reply, Message, ReplyTo, Sim, Status};

/// The time a PocketIC round adds when time was not moved since the previous round:
/// `StateMachine::EXECUTE_ROUND_TIME_INCREMENT`, 1 ns (dfinity/ic
/// `rs/state_machine_tests/src/lib.rs`; PocketIC's `tick` executes one such round).
pub(crate) const POCKET_IC_ROUND_NANOS: u64 = 1;

/// A long canister execution whose result waits for its last slice.
pub(crate) struct Held {
    ctx_id: u64,
    outcome: Outcome,
    cleanup: Option<(u32, u32)>,
    /// Instructions of the slices still to run.
    remaining: u64,
    /// The round it started in: earlier ones progress first.
    started: u64,
}

/// A long `install_code` whose result (and response) waits for its last slice.
pub(crate) struct HeldInstall {
    work: InstallWork,
    reply_to: ReplyTo,
    cycles: u128,
    remaining: u64,
}

impl HeldInstall {
    /// `work` ran one slice of `slice` instructions so far.
    pub(crate) fn new(work: InstallWork, reply_to: ReplyTo, cycles: u128, slice: u64) -> Self {
        let remaining = work.instructions.saturating_sub(slice);
        HeldInstall {
            work,
            reply_to,
            cycles,
            remaining,
        }
    }
}

fn receiver(m: &Message) -> Principal {
    match m {
        Message::Request(r) => r.receiver,
        Message::Response(r) => r.receiver,
    }
}

impl Sim {
    /// Makes a message ready to execute on its destination subnet: requests to the management
    /// canister go to the subnet queue, everything else to the canisters' queue; requests to
    /// the CMC execute at once (see `crate::cmc`).
    pub(crate) fn enqueue(&mut self, m: Message) {
        // The CMC executes a request when it arrives, at the start of a round.
        let m = match m {
            Message::Request(r) if r.receiver == crate::cmc::CMC_ID => return self.deliver_cmc(r),
            m => m,
        };
        let dest = self.destination(&m);
        let subnet = &mut self.subnets[dest];
        match m {
            Message::Request(r) if r.receiver == Principal::management_canister() => {
                subnet.subnet_queue.push_back(r)
            }
            m => subnet.queue.push_back(m),
        }
    }

    /// Whether a canister is in the middle of a long execution or installation.
    pub(crate) fn is_busy(&self, id: &Principal) -> bool {
        let subnet = &self.subnets[self.subnet_of(id)];
        subnet.held.contains_key(id) || subnet.held_installs.iter().any(|h| h.work.id == *id)
    }

    /// Settles an execution: at once when it fits in a slice (or is never sliced, as a
    /// replicated query), otherwise after its last slice. Returns the instructions it counts
    /// against the current round.
    pub(crate) fn complete(
        &mut self,
        id: Principal,
        ctx_id: u64,
        out: Outcome,
        persist: bool,
        cleanup: Option<(u32, u32)>,
    ) -> u64 {
        let slice = self.limits.slice_instructions;
        if persist && out.instructions > slice {
            let held = Held {
                ctx_id,
                remaining: out.instructions - slice,
                outcome: out,
                cleanup,
                started: self.round,
            };
            let subnet = self.subnet_of(&id);
            self.subnets[subnet].held.insert(id, held);
            return slice;
        }
        let used = out.instructions;
        self.finish(id, ctx_id, out, persist, cleanup);
        used
    }

    /// One round on every subnet, one subnet after the other; each has its own budgets and
    /// queues, so a busy subnet does not slow another. Messages between subnets reach the
    /// other subnet in the next round (see [`Sim::induct`]), so the order does not matter.
    pub fn tick(&mut self) {
        // PocketIC's rule: a round's time is the current time, or 1 ns (here: the round
        // duration) later when time did not move since the previous round.
        if self.time == self.last_round_time {
            self.time += self.round_nanos;
        }
        self.last_round_time = self.time;
        self.round += 1;
        self.expire_ingress();
        self.release_delayed();
        for subnet in 0..self.subnets.len() {
            self.active = subnet;
            self.subnet_round();
        }
        self.active = 0;
    }

    /// The round of the active subnet.
    fn subnet_round(&mut self) {
        let mut subnet_budget = self.limits.subnet_budget();
        let mut budget = self.limits.round_budget();
        self.advance_long_installs(&mut subnet_budget);
        let finalization = self.limits.overhead_per_canister_for_finalization as i64;
        // With several subnets, the active subnet's canisters are counted once per round.
        let counted = (self.subnets.len() > 1).then(|| self.active_canisters().count());
        let mut first = true;
        for _ in 0..self.limits.max_inner_rounds {
            self.drain_subnet_queue(&mut subnet_budget);
            let consumed = self.execute_canisters(budget, first);
            budget -= consumed;
            let canisters = counted.unwrap_or(self.canisters.len());
            budget -= finalization.saturating_mul(canisters as i64);
            if consumed == 0 || budget <= 0 {
                break;
            }
            self.induct(true);
            first = false;
        }
        self.induct(false);
        self.expire_best_effort();
        self.progress_stops();
        self.induct(false);
    }

    /// Responses held back by fault injection whose round has come.
    fn release_delayed(&mut self) {
        let round = self.round;
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.delayed)
            .into_iter()
            .partition(|(at, _)| *at <= round);
        self.delayed = later;
        for (_, m) in due {
            self.enqueue(m);
        }
    }

    /// Moves the messages the active subnet produced to the queues: only those between its
    /// canisters when `within_round`, all at the end of its round. A message to another subnet
    /// (XNet: a request, or the response to one) waits for the next round: the replica's
    /// message routing inducts a stream from another subnet only after the sending subnet has
    /// certified the block that produced it, so a call between subnets takes a round each way
    /// at least, where one within a subnet can complete in one round.
    pub(crate) fn induct(&mut self, within_round: bool) {
        let mut kept = Vec::new();
        for (src, local, m) in std::mem::take(&mut self.outbox) {
            if src != self.active {
                kept.push((src, local, m));
            } else if crate::cmc::is_cmc_request(&m) || self.destination(&m) != src {
                if !within_round {
                    self.delayed.push((self.round + 1, m));
                } else {
                    kept.push((src, local, m));
                }
            } else if local || !within_round {
                self.enqueue(m);
            } else {
                kept.push((src, local, m));
            }
        }
        self.outbox = kept;
    }

    /// Runs one slice of each long installation in progress (the replica does so before the
    /// inner rounds, from the subnet messages' budget) and commits those that are done.
    fn advance_long_installs(&mut self, budget: &mut i64) {
        let active = self.active;
        let held_installs = &mut self.subnets[active].held_installs;
        if held_installs.is_empty() {
            return;
        }
        let slice = self.limits.install_slice_instructions;
        let progressing = held_installs.len().min(self.limits.max_paused_install_code);
        for h in &mut held_installs[..progressing] {
            let step = h.remaining.min(slice);
            h.remaining -= step;
            *budget -= step as i64;
        }
        let (done, rest): (Vec<_>, Vec<_>) = std::mem::take(held_installs)
            .into_iter()
            .partition(|h| h.remaining == 0);
        self.subnets[active].held_installs = rest;
        for h in done {
            let result = self.commit_install(h.work).map(|()| empty_reply());
            self.respond(
                Principal::management_canister(),
                h.reply_to,
                result,
                h.cycles,
            );
        }
        // Other subnet messages that need no instructions may still run this round.
        *budget = (*budget).max(0);
    }

    /// Executes management messages in order while the subnet messages' budget lasts. A message
    /// waits when it needs instructions and the budget is spent, when it installs code while a
    /// long installation is in progress, or when its canister is busy with a long execution
    /// (`can_execute_subnet_msg` in the replica's scheduler).
    fn drain_subnet_queue(&mut self, budget: &mut i64) {
        let active = self.active;
        let mut waiting = VecDeque::new();
        while let Some(req) = self.subnets[active].subnet_queue.pop_front() {
            let blocked = (counts_toward_round_limit(&req.method) && *budget <= 0)
                || (installs_code(&req.method)
                    && self.subnets[active].held_installs.len()
                        >= self.limits.max_paused_install_code)
                || effective_canister(&req).is_some_and(|c| self.is_busy(&c));
            if blocked {
                waiting.push_back(req);
                continue;
            }
            self.mgmt_instructions = 0;
            self.deliver_management(req);
            *budget -= self.mgmt_instructions as i64;
            if *budget <= 0 {
                break;
            }
        }
        let subnet = &mut self.subnets[active];
        waiting.extend(subnet.subnet_queue.drain(..));
        subnet.subnet_queue = waiting;
    }

    /// Heartbeats and due global timers of running, idle canisters of the active subnet, from
    /// the canisters that may have either ([`Sim::system_tasks`]); those that have neither any
    /// more are dropped from it.
    fn due_system_tasks(&mut self) -> BTreeMap<Principal, (bool, bool)> {
        let now = self.time;
        let mut due = BTreeMap::new();
        let mut none = Vec::new();
        for id in self.system_tasks.range(self.active_range()) {
            let Some(c) = self.canisters.get(id) else {
                none.push(*id);
                continue;
            };
            let heartbeat = c
                .module
                .as_ref()
                .is_some_and(|m| m.exports("canister_heartbeat"));
            if !heartbeat && c.global_timer == 0 {
                none.push(*id);
                continue;
            }
            let timer = c.global_timer != 0 && c.global_timer <= now;
            if c.module.is_some()
                && (heartbeat || timer)
                && c.status == Status::Running
                && !self.is_busy(id)
            {
                due.insert(*id, (heartbeat, timer));
            }
        }
        for id in none {
            self.system_tasks.remove(&id);
        }
        due
    }

    /// Runs a canister's heartbeat and global timer; returns their instructions and executions.
    fn run_system_tasks(&mut self, id: Principal, heartbeat: bool, timer: bool) -> (u64, u64) {
        let mut used = 0;
        let mut executions = 0;
        if heartbeat {
            used += self.run_system_task(id, "canister_heartbeat");
            executions += 1;
        }
        if timer && !self.is_busy(&id) {
            // The timer is deactivated before its handler runs (interface spec, "Global
            // timer").
            let Some(c) = self.canisters.get_mut(&id) else {
                return (used, executions);
            };
            c.global_timer = 0;
            if c.module
                .as_ref()
                .is_some_and(|m| m.exports("canister_global_timer"))
            {
                used += self.run_system_task(id, "canister_global_timer");
                executions += 1;
            }
        }
        (used, executions)
    }

    fn deliver(&mut self, m: Message) -> u64 {
        match m {
            Message::Request(r) => self.deliver_request(r),
            Message::Response(r) => self.deliver_response(r),
        }
    }

    /// Runs one slice of a canister's long execution; commits it after the last one.
    fn continue_long_execution(&mut self, id: Principal) -> u64 {
        let slice = self.limits.slice_instructions;
        let held = &mut self.subnets[self.active].held;
        let Some(h) = held.get_mut(&id) else {
            return 0;
        };
        let step = h.remaining.min(slice);
        h.remaining -= step;
        if h.remaining == 0 {
            let h = held.remove(&id).expect("present");
            self.finish(id, h.ctx_id, h.outcome, true, h.cleanup);
        }
        step
    }

    /// One inner round of canister executions: canisters are spread over the cores in order,
    /// each core executes its canisters' messages while its budget is positive. Returns the
    /// instructions of the busiest core.
    fn execute_canisters(&mut self, budget: i64, first: bool) -> i64 {
        let cores = self.limits.scheduler_cores.max(1);
        let per_execution = self.limits.overhead_per_execution as i64;
        let per_canister = self.limits.overhead_per_canister as i64;

        // Messages by receiver, in arrival order; those for busy canisters wait.
        let mut inputs: HashMap<Principal, VecDeque<(usize, Message)>> = HashMap::new();
        let mut arrival: Vec<Principal> = Vec::new();
        let mut waiting: Vec<(usize, Message)> = Vec::new();
        let active = self.active;
        for (i, m) in std::mem::take(&mut self.subnets[active].queue)
            .into_iter()
            .enumerate()
        {
            let to = receiver(&m);
            if !self.canisters.contains_key(&to) {
                // Nothing executes: the reject is produced at once.
                self.deliver(m);
            } else if self.is_busy(&to) {
                waiting.push((i, m));
            } else {
                inputs
                    .entry(to)
                    .or_insert_with(|| {
                        arrival.push(to);
                        VecDeque::new()
                    })
                    .push_back((i, m));
            }
        }
        let tasks = if first {
            self.due_system_tasks()
        } else {
            BTreeMap::new()
        };
        for id in tasks.keys() {
            if !inputs.contains_key(id) {
                arrival.push(*id);
            }
        }
        let round_of =
            |sim: &Sim, id: &Principal| sim.canisters.get(id).map_or(0, |c| c.scheduled_round);
        arrival.sort_by_key(|id| round_of(self, id));
        let mut long: Vec<(u64, Principal)> = if first {
            self.subnets[active]
                .held
                .iter()
                .map(|(id, h)| (h.started, *id))
                .collect()
        } else {
            Vec::new()
        };
        long.sort();
        long.truncate(self.limits.max_paused_executions);
        let long_count = long.len();
        let order: Vec<Principal> = long.into_iter().map(|(_, id)| id).chain(arrival).collect();

        let mut busiest = 0i64;
        for core in 0..cores {
            let mut left = budget;
            for (index, id) in order.iter().enumerate().skip(core).step_by(cores) {
                if left <= 0 {
                    break;
                }
                let mut used = 0u64;
                if index < long_count {
                    used += self.continue_long_execution(*id);
                    left -= used as i64 + per_execution;
                } else {
                    if let Some((heartbeat, timer)) = tasks.get(id) {
                        let (instructions, executions) =
                            self.run_system_tasks(*id, *heartbeat, *timer);
                        used += instructions;
                        left -= instructions as i64 + executions as i64 * per_execution;
                    }
                    if let Some(queue) = inputs.get_mut(id) {
                        while left > 0 && !self.is_busy(id) {
                            let Some((_, m)) = queue.pop_front() else {
                                break;
                            };
                            let instructions = self.deliver(m);
                            used += instructions;
                            left -= instructions as i64 + per_execution;
                        }
                    }
                }
                if used > 0 {
                    left -= per_canister;
                    let round = self.round;
                    if let Some(c) = self.canisters.get_mut(id) {
                        c.scheduled_round = round;
                    }
                }
            }
            busiest = busiest.max(budget - left);
        }

        // What did not run waits for the next inner round, in arrival order.
        waiting.extend(inputs.into_values().flatten());
        waiting.sort_by_key(|(i, _)| *i);
        let subnet = &mut self.subnets[active];
        let newer = std::mem::take(&mut subnet.queue);
        subnet.queue = waiting.into_iter().map(|(_, m)| m).chain(newer).collect();
        busiest
    }
}
