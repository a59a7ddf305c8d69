//! Test canister of ic_sim: exercises the system API from inside real wasm.

#[ic_cdk::query]
fn ping() -> String {
    "pong".to_string()
}
