//! Composite queries (interface spec, "Composite queries"; "Overview of imports" for the CQ,
//! CRy, CRt and CC modes): a `canister_composite_query` method may call query and composite
//! query methods of canisters on its subnet (a call to another subnet's canister is rejected),
//! and its callbacks run on the state its own
//! execution left. Nothing persists: every canister state in the call graph is a copy.
//!
//! The call graph is evaluated depth first, one call at a time, as the replica does: a node
//! (one call context) runs, then each of its calls is evaluated in order and answered into its
//! callback, until the node replies (its remaining calls are then dropped, since they cannot
//! change the answer) or runs out of calls (CANISTER_ERROR, IC0506). The replica's limits hold:
//! calls may nest [`MAX_QUERY_CALL_DEPTH`] deep, and the whole graph may execute
//! [`MAX_QUERY_CALL_GRAPH_INSTRUCTIONS`], every call costing
//! [`INSTRUCTION_OVERHEAD_PER_QUERY_CALL`] on top of what it executes. Crossing a limit fails
//! the whole query (IC0525, IC0526). The replica's wall-time limit has no counterpart: the
//! simulator has no wall clock.

use std::collections::VecDeque;
use std::sync::Arc;

use candid::Principal;

use crate::errors::{ErrorCode, RejectResponse};
use crate::exec::{execute, Entry, Heap, Outcome};
use crate::memory::{PageMap, StableMemory};
use crate::module::{CanisterModule, MethodKind};
use crate::sim::{callback_trap_reject, trap_reject, Sim};
use crate::system_api::{ApiType, HostTrap, OutgoingCall, Response};

/// Nesting depth of composite query calls (replica: `max_query_call_graph_depth`, 6).
pub const MAX_QUERY_CALL_DEPTH: usize = 6;
/// Instructions a whole call graph may execute (replica: `max_query_call_graph_instructions`,
/// 5B).
pub const MAX_QUERY_CALL_GRAPH_INSTRUCTIONS: u64 = 5_000_000_000;
/// Instructions every call of a graph costs besides its execution (replica:
/// `instruction_overhead_per_query_call`, 50M: at most 100 calls per graph).
pub const INSTRUCTION_OVERHEAD_PER_QUERY_CALL: u64 = 50_000_000;

/// The answer a call gets: reply data or a reject.
type CallResult = Result<Vec<u8>, RejectResponse>;

/// A failure of the whole graph, returned to the user as is.
type GraphError = RejectResponse;

/// One call context of the graph: its canister's working state and the calls it still has to
/// make.
struct Node {
    canister: Principal,
    caller: Principal,
    module: Arc<CanisterModule>,
    heap: Heap,
    stable: Arc<PageMap>,
    stable_pages: u64,
    calls: VecDeque<OutgoingCall>,
    /// Instructions this call context has executed (`ic0.performance_counter` type 1).
    instructions: u64,
}

/// The instructions the graph may still execute.
struct Budget {
    left: u64,
}

impl Budget {
    fn check(&self) -> Result<(), GraphError> {
        if self.left == 0 {
            return Err(RejectResponse::new(
                ErrorCode::QueryCallGraphTotalInstructionLimitExceeded,
                "Composite query calls exceeded the instruction limit.",
            ));
        }
        Ok(())
    }

    fn spend(&mut self, instructions: u64) {
        self.left = self.left.saturating_sub(instructions);
    }
}

fn did_not_reply(canister: &Principal) -> RejectResponse {
    RejectResponse::new(
        ErrorCode::CanisterDidNotReply,
        format!("Canister {canister} did not produce a response"),
    )
}

impl Sim {
    /// A query call from `user` to a composite query method: the root of a call graph.
    pub(crate) fn composite_query(
        &mut self,
        (canister, user): (Principal, Principal),
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Vec<u8>, RejectResponse> {
        let mut budget = Budget {
            left: MAX_QUERY_CALL_GRAPH_INSTRUCTIONS,
        };
        self.query_node(&mut budget, canister, user, method, arg, 0)?
    }

    /// Evaluates a query call to `canister` at depth `depth` of the graph (the user's call is
    /// at depth 0). The outer error fails the whole graph; the inner result is the call's
    /// answer.
    fn query_node(
        &mut self,
        budget: &mut Budget,
        canister: Principal,
        caller: Principal,
        method: &str,
        arg: Vec<u8>,
        depth: usize,
    ) -> Result<CallResult, GraphError> {
        let c = match self.canister(&canister) {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        let module = match c.executable_module(canister) {
            Ok(m) => m,
            Err(e) => return Ok(Err(e)),
        };
        let (export, api) = match module.methods.get(method) {
            Some(MethodKind::Query) => (
                format!("canister_query {method}"),
                ApiType::NonReplicatedQuery,
            ),
            Some(MethodKind::CompositeQuery) => (
                format!("canister_composite_query {method}"),
                ApiType::CompositeQuery,
            ),
            _ => {
                return Ok(Err(RejectResponse::new(
                    ErrorCode::CanisterMethodNotFound,
                    format!(
                        "Error from Canister {canister}: Canister has no query method '{method}'."
                    ),
                )))
            }
        };
        let mut node = Node {
            canister,
            caller,
            module,
            heap: c.heap.clone(),
            stable: c.stable.clone(),
            stable_pages: c.stable_pages,
            calls: VecDeque::new(),
            instructions: 0,
        };
        let mut host = self.host_for(c, api, caller);
        host.arg = arg;
        if depth == 0 {
            host.data_certificate = self.query_call_certificate(&canister, &node.module);
        }
        let out = self.run_in_node(budget, &mut node, &Entry::Export(export), host);
        let mut answer = match self.settle_in_node(&mut node, out) {
            Err(trap) => return Ok(Err(trap_reject(&canister, &trap))),
            Ok(response) => response,
        };
        let mut last_trap = None;
        loop {
            if let Some(result) = answer {
                return Ok(result);
            }
            if depth >= MAX_QUERY_CALL_DEPTH {
                return Err(RejectResponse::new(
                    ErrorCode::QueryCallGraphTooDeep,
                    "Composite query calls exceeded the maximum call depth.",
                ));
            }
            budget.check()?;
            let Some(call) = node.calls.pop_front() else {
                return Ok(Err(last_trap.unwrap_or_else(|| did_not_reply(&canister))));
            };
            budget.spend(INSTRUCTION_OVERHEAD_PER_QUERY_CALL);
            let result = self.query_callee(budget, canister, &call, depth + 1)?;
            budget.check()?;
            answer = match self.query_callback(budget, &mut node, &call, result) {
                Ok(response) => response,
                Err(reject) => {
                    last_trap = Some(reject);
                    None
                }
            };
        }
    }

    /// The answer to a call made inside the graph.
    fn query_callee(
        &mut self,
        budget: &mut Budget,
        caller: Principal,
        call: &OutgoingCall,
        depth: usize,
    ) -> Result<CallResult, GraphError> {
        if call.callee == Principal::management_canister() {
            return Ok(Err(RejectResponse::new(
                ErrorCode::CanisterRejectedMessage,
                format!(
                    "Management canister method {} cannot be called from a composite query in ic_sim",
                    call.method
                ),
            )));
        }
        // A node has only its own subnet's canisters: a call to another subnet's is rejected
        // with CANISTER_REJECT, as the replica rejects it.
        if self.subnet_of(&call.callee) != self.subnet_of(&caller) {
            return Ok(Err(RejectResponse::new(
                ErrorCode::CanisterRejectedMessage,
                format!(
                    "Canister {} is not on the subnet of canister {caller}: a composite query calls canisters of its own subnet only",
                    call.callee
                ),
            )));
        }
        self.query_node(
            budget,
            call.callee,
            caller,
            &call.method,
            call.arg.clone(),
            depth,
        )
    }

    /// Runs the callback of `call` with `result` in `node`; a trapping callback runs its
    /// cleanup and yields its reject. `Ok(Some(_))`: the node answered.
    fn query_callback(
        &mut self,
        budget: &mut Budget,
        node: &mut Node,
        call: &OutgoingCall,
        result: CallResult,
    ) -> Result<Option<CallResult>, RejectResponse> {
        let ((fun, env), api) = match &result {
            Ok(_) => (call.reply, ApiType::CompositeReplyCallback),
            Err(_) => (call.reject, ApiType::CompositeRejectCallback),
        };
        if fun == u32::MAX {
            // A one-way call: no callback runs.
            return Ok(None);
        }
        let mut host = self.node_host(node, api);
        match result {
            Ok(bytes) => host.arg = bytes,
            Err(r) => {
                host.reject_code = r.reject_code as u32;
                host.reject_message = r.reject_message;
            }
        }
        let out = self.run_in_node(budget, node, &Entry::Table { index: fun, env }, host);
        let trap = match self.settle_in_node(node, out) {
            Ok(response) => return Ok(response),
            Err(trap) => trap,
        };
        let cleanup_trap = call.cleanup.and_then(|(fun, env)| {
            let host = self.node_host(node, ApiType::CompositeCleanup);
            let out = self.run_in_node(budget, node, &Entry::Table { index: fun, env }, host);
            self.settle_in_node(node, out).err()
        });
        Err(callback_trap_reject(
            &node.canister,
            &trap,
            cleanup_trap.as_ref(),
        ))
    }

    /// The host of an execution in `node`'s call context, on the node's working state.
    fn node_host(&self, node: &Node, api: ApiType) -> crate::system_api::Host {
        let c = &self.canisters[&node.canister];
        let mut host = self.host_for(c, api, node.caller);
        host.stable = StableMemory::new(node.stable.clone(), node.stable_pages);
        host.context_instructions = node.instructions;
        host
    }

    /// Executes `entry` on the node's working state within the graph's budget.
    fn run_in_node(
        &mut self,
        budget: &mut Budget,
        node: &mut Node,
        entry: &Entry,
        host: crate::system_api::Host,
    ) -> Outcome {
        let limit = self.limits.query_instructions.min(budget.left);
        let out = execute(
            &mut self.instances,
            node.canister,
            &node.module,
            &node.heap,
            entry,
            host,
            limit,
            true,
        );
        budget.spend(out.instructions);
        node.instructions += out.instructions;
        if let Some(c) = self.canisters.get_mut(&node.canister) {
            c.instructions_total += out.instructions;
        }
        out
    }

    /// Keeps a successful execution's state in the node and queues its calls; returns its
    /// response, or its trap (whose state is dropped).
    fn settle_in_node(
        &self,
        node: &mut Node,
        mut out: Outcome,
    ) -> Result<Option<CallResult>, HostTrap> {
        self.print(&node.canister, &out.host.logs);
        if let Err(trap) = &out.result {
            return Err(trap.clone());
        }
        node.stable_pages = out.commit_memory(&mut node.heap, &mut node.stable);
        node.calls.extend(out.host.calls.drain(..));
        Ok(out.host.response.take().map(|r| match r {
            Response::Reply(bytes) => Ok(bytes),
            Response::Reject(message) => Err(RejectResponse::canister_reject(message)),
        }))
    }
}
