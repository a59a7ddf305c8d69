//! The cycles cost model: the IC's published fees for a 13-node application subnet
//! (IC documentation, "Cycles cost formulas"), simplified where noted.

/// Nodes of the simulated subnet (`ic0.subnet_self_node_count`).
pub(crate) const SUBNET_SIZE: u64 = 13;
/// Fee for creating a canister, taken from the cycles sent with `create_canister`.
pub(crate) const CANISTER_CREATION_FEE: u128 = 500_000_000_000;
/// Base fee of every update message execution.
pub(crate) const UPDATE_MESSAGE_FEE: u128 = 5_000_000;
/// Fee per 10 executed instructions.
pub(crate) const TEN_INSTRUCTIONS_FEE: u128 = 4;
/// Base fee of an inter-canister call.
pub(crate) const XNET_CALL_FEE: u128 = 260_000;
/// Fee per byte of method name and argument of an inter-canister call.
pub(crate) const XNET_BYTE_FEE: u128 = 1_000;
/// Storage fee per GiB and second, used for the freezing threshold.
pub(crate) const GIB_SECOND_FEE: u128 = 127_000;
/// Threshold signature and key derivation fee (`sign_with_ecdsa`, `sign_with_schnorr`,
/// `vetkd_derive_key`) on a 13-node subnet.
pub(crate) const THRESHOLD_FEE: u128 = 26_153_846_153;

/// Instructions the replica charges for each `ic0.performance_counter` call, on entry (its
/// system API overhead table, `overhead::PERFORMANCE_COUNTER`): two reads in a row differ.
pub(crate) const PERFORMANCE_COUNTER_OVERHEAD: u64 = 200;

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
    matches!(key_name, "dfx_test_key" | "test_key_1" | "key_1").then_some(THRESHOLD_FEE)
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
    }
}
