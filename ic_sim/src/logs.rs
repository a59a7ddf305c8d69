//! Canister logs (interface spec, "IC method fetch_canister_logs"): what replicated executions
//! print with `ic0.debug_print`, and their traps, kept per canister as records with an index
//! and a timestamp, bounded by the canister's `log_memory_limit` (oldest records go first).
//! Non-replicated executions (queries called as queries, `canister_inspect_message`) add
//! nothing, as the spec says; reinstall and uninstall purge the log, upgrades keep it.

use std::collections::VecDeque;

use candid::Principal;
use ic_management_canister_types::{
    CanisterLogFilter, CanisterLogRecord, FetchCanisterLogsArgs, LogVisibility,
};

use crate::errors::{ErrorCode, RejectResponse};
use crate::sim::Sim;
use crate::system_api::HostTrap;

/// Bytes a record takes from the log memory: its content plus its index and timestamp (two
/// 64-bit numbers).
const RECORD_OVERHEAD: usize = 16;

/// One canister's log.
#[derive(Clone, Debug, Default)]
pub(crate) struct CanisterLog {
    records: VecDeque<CanisterLogRecord>,
    next_idx: u64,
    bytes: usize,
}

impl CanisterLog {
    /// Appends a record, then drops the oldest records until the log fits `limit` bytes. A
    /// record larger than the whole limit is cut to fit.
    pub fn push(&mut self, timestamp_nanos: u64, mut content: Vec<u8>, limit: usize) {
        content.truncate(limit.saturating_sub(RECORD_OVERHEAD));
        self.bytes += content.len() + RECORD_OVERHEAD;
        self.records.push_back(CanisterLogRecord {
            idx: self.next_idx,
            timestamp_nanos,
            content,
        });
        self.next_idx += 1;
        while self.bytes > limit {
            let Some(old) = self.records.pop_front() else {
                break;
            };
            self.bytes -= old.content.len() + RECORD_OVERHEAD;
        }
    }

    /// The index the next record gets.
    pub fn next_idx(&self) -> u64 {
        self.next_idx
    }

    /// Drops the records before index `idx` (a reinstall keeps only what its `canister_init`
    /// printed); indices keep counting.
    pub fn purge_before(&mut self, idx: u64) {
        while self.records.front().is_some_and(|r| r.idx < idx) {
            let old = self.records.pop_front().expect("checked");
            self.bytes -= old.content.len() + RECORD_OVERHEAD;
        }
    }

    /// Bytes the log holds (reported as `log_memory_store_size` by `canister_status`).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn select(&self, filter: Option<&CanisterLogFilter>) -> Vec<CanisterLogRecord> {
        self.records
            .iter()
            .filter(|r| match filter {
                None => true,
                Some(CanisterLogFilter::ByIdx { start, end }) => (*start..=*end).contains(&r.idx),
                Some(CanisterLogFilter::ByTimestampNanos { start, end }) => {
                    (*start..=*end).contains(&r.timestamp_nanos)
                }
            })
            .cloned()
            .collect()
    }
}

/// The content of a trap's record, as the replica writes it.
fn trap_record(trap: &HostTrap) -> Vec<u8> {
    let message = if trap.message.is_empty() {
        "(no message)"
    } else {
        &trap.message
    };
    format!("[TRAP]: {message}").into_bytes()
}

impl Sim {
    /// Records what a replicated execution of canister `id` printed, and its trap if it
    /// trapped (printing both to stderr unless logs are silenced).
    pub(crate) fn record_logs(
        &mut self,
        id: &Principal,
        lines: &[Vec<u8>],
        trap: Option<&HostTrap>,
    ) {
        let trap = trap.map(trap_record);
        let time = self.time;
        let print = self.print_logs;
        let Some(c) = self.canisters.get_mut(id) else {
            return;
        };
        let limit = usize::try_from(c.settings.log_memory_limit).unwrap_or(usize::MAX);
        for line in lines.iter().chain(trap.as_ref()) {
            if print {
                eprintln!("[Canister {id}] {}", String::from_utf8_lossy(line));
            }
            c.log.push(time, line.clone(), limit);
        }
    }

    /// `fetch_canister_logs` as a query (interface spec: callable only by users, through
    /// non-replicated calls), for the principals the canister's `log_visibility` admits.
    pub(crate) fn fetch_canister_logs(
        &self,
        sender: Principal,
        args: &FetchCanisterLogsArgs,
    ) -> Result<Vec<CanisterLogRecord>, RejectResponse> {
        let c = self.canister(&args.canister_id)?;
        let controller = c.settings.controllers.contains(&sender);
        let allowed = match &c.settings.log_visibility {
            LogVisibility::Public => true,
            LogVisibility::Controllers => controller,
            LogVisibility::AllowedViewers(viewers) => controller || viewers.contains(&sender),
        };
        if !allowed {
            return Err(RejectResponse::new(
                ErrorCode::CanisterRejectedMessage,
                format!("Caller {sender} is not allowed to query ic00 method fetch_canister_logs"),
            ));
        }
        Ok(c.log.select(args.filter.as_ref()))
    }
}
