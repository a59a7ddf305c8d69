//! The cycles cost model: the IC's published fees for a 13-node application subnet
//! (IC documentation, "Cycles cost formulas"), simplified where noted.

/// Nodes of the simulated subnet (`ic0.subnet_self_node_count`).
pub(crate) const SUBNET_SIZE: u64 = 13;
/// Fee for creating a canister, taken from the cycles sent with `create_canister` (of the
/// management canister or of the CMC, [`crate::cmc`]).
pub const CANISTER_CREATION_FEE: u128 = 500_000_000_000;
/// Base fee of every update message execution.
pub(crate) const UPDATE_MESSAGE_FEE: u128 = 5_000_000;
/// Fee per 10 executed instructions.
pub(crate) const TEN_INSTRUCTIONS_FEE: u128 = 4;
/// Base fee of an inter-canister call.
pub(crate) const XNET_CALL_FEE: u128 = 260_000;
/// Fee per byte of method name and argument of an inter-canister call.
pub(crate) const XNET_BYTE_FEE: u128 = 1_000;
/// Fee the receiving canister pays for every ingress message inducted (after
/// `canister_inspect_message` accepted it).
pub(crate) const INGRESS_MESSAGE_FEE: u128 = 1_200_000;
/// Fee per byte of an inducted ingress message's method name and argument.
pub(crate) const INGRESS_BYTE_FEE: u128 = 2_000;
/// Storage fee per GiB and second, used for the freezing threshold.
pub(crate) const GIB_SECOND_FEE: u128 = 127_000;
/// Threshold signature and key derivation fee (`sign_with_ecdsa`, `sign_with_schnorr`,
/// `vetkd_derive_key`) on a 13-node subnet.
pub(crate) const THRESHOLD_FEE: u128 = 26_153_846_153;

/// Instructions the replica counts for taking or loading a canister snapshot, on top of one
/// per byte of the snapshot (heap, stable memory, module, chunk store), charged to the
/// snapshot's canister as an execution ([`execution_fee`]) and counted against the round
/// (`canister_snapshot_baseline_instructions` of an application subnet's `SchedulerConfig`,
/// dfinity/ic `rs/config/src/subnet_config.rs`; charged in `take_canister_snapshot` and
/// `load_canister_snapshot` of `rs/execution_environment/src/canister_manager.rs`).
pub(crate) const SNAPSHOT_BASELINE_INSTRUCTIONS: u64 = 2_000_000_000;
/// Instructions the replica counts for reading or uploading a slice of a snapshot's data, on
/// top of one per byte moved (`canister_snapshot_data_baseline_instructions`, same source).
pub(crate) const SNAPSHOT_DATA_BASELINE_INSTRUCTIONS: u64 = 5_000_000;

/// Instructions the replica charges on entry to a system API call besides the instructions of
/// the canister's own code (the embedder's system API complexity table, "new" metering, which
/// replicas use): system calls are not free, so two `ic0.performance_counter` reads in a row
/// differ and a message's count is closer to the replica's. Calls that move bytes between
/// the heap and the system pay [`BYTE_COPY_COST`] or [`BYTE_TRANSMISSION_COST`] per byte on
/// top (see the callers).
pub(crate) fn system_api_overhead(name: &str) -> u64 {
    match name {
        "performance_counter" => 200,
        "debug_print" => 100,
        "is_controller" => 1_000,
        "call_new" => 1_500,
        "call_perform" => 5_000,
        "stable64_size" | "stable64_read" | "stable64_write" => 20,
        // Everything else the table lists costs 500; calls it does not list are charged the
        // same.
        _ => 500,
    }
}

/// Instructions per byte copied between the heap and the system (`*_copy`, stable memory
/// reads and writes, `call_new`'s names, `certified_data_set`, `is_controller`).
pub(crate) const BYTE_COPY_COST: u64 = 1;
/// Instructions per byte of a payload handed to the system for sending (`msg_reply_data_append`,
/// `msg_reject`, `call_data_append`): the replica's `BYTE_TRANSMISSION_COST_FACTOR`.
pub(crate) const BYTE_TRANSMISSION_COST: u64 = 50;
/// Capacity the replica assumes when charging for log records (`debug_print`, `trap`): twice
/// the bytes kept (the new record and the one it pushes out) plus the transmission cost of the
/// bytes that fit (the replica's canister log capacity, 4 KiB).
pub(crate) const LOG_CAPACITY: u64 = 4096;

/// Instructions for a log record of `len` bytes (`debug_print`, `trap`), besides the overhead.
pub(crate) fn log_record_cost(len: u64) -> u64 {
    let kept = len.min(LOG_CAPACITY);
    2 * kept + BYTE_TRANSMISSION_COST * kept
}

/// What the receiving canister pays when an ingress message is inducted: the replica's
/// `ingress_induction_cost` (`CyclesAccountManagerConfig`, dfinity/ic
/// `rs/config/src/subnet_config.rs`), counting the method name and argument bytes. A message
/// that `canister_inspect_message` refuses is never inducted and costs nothing.
pub(crate) fn ingress_induction_fee(method_name_size: u64, payload_size: u64) -> u128 {
    INGRESS_MESSAGE_FEE + INGRESS_BYTE_FEE * u128::from(method_name_size + payload_size)
}

/// `ic0.cost_call`: what `call_perform` charges for a call (cycles sent on top).
pub(crate) fn call_fee(method_name_size: u64, payload_size: u64) -> u128 {
    XNET_CALL_FEE + XNET_BYTE_FEE * u128::from(method_name_size + payload_size)
}

/// What executing `instructions` costs, on top of the per-message fee.
pub(crate) fn execution_fee(instructions: u64) -> u128 {
    UPDATE_MESSAGE_FEE + u128::from(instructions) * TEN_INSTRUCTIONS_FEE / 10
}

/// `ic0.cost_http_request`: the IC's formula for an n-node subnet.
pub(crate) fn http_request_fee(request_size: u64, max_response_bytes: u64) -> u128 {
    let n = u128::from(SUBNET_SIZE);
    (3_000_000 + 60_000 * n) * n
        + 400 * n * u128::from(request_size)
        + 800 * n * u128::from(max_response_bytes)
}

/// Threshold key names the simulated subnet knows (those of the IC's test and production keys).
pub(crate) fn threshold_fee(key_name: &str) -> Option<u128> {
    crate::threshold::KEY_NAMES
        .contains(&key_name)
        .then_some(THRESHOLD_FEE)
}

/// Cycles a canister must keep so that it can pay `freezing_threshold_seconds` of storage for
/// `memory_bytes` (interface spec, "Canister settings": freezing_threshold). Below this balance
/// the canister is frozen and rejects incoming calls.
pub(crate) fn freezing_reserve(memory_bytes: u64, freezing_threshold_seconds: u64) -> u128 {
    u128::from(memory_bytes) * GIB_SECOND_FEE * u128::from(freezing_threshold_seconds) / (1 << 30)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fees_follow_the_published_formulas() {
        assert_eq!(call_fee(4, 6), 270_000);
        assert_eq!(execution_fee(1_000), 5_000_400);
        // 1 GiB held for one day at 127k cycles per GiB-second.
        assert_eq!(freezing_reserve(1 << 30, 86_400), 127_000 * 86_400);
        assert_eq!(threshold_fee("key_1"), Some(THRESHOLD_FEE));
        assert_eq!(threshold_fee("nope"), None);
        // A snapshot of 1 MiB: 5M + 0.4 x (2B + 1 MiB).
        assert_eq!(
            execution_fee(SNAPSHOT_BASELINE_INSTRUCTIONS + (1 << 20)),
            5_000_000 + 800_000_000 + 419_430
        );
    }
}
