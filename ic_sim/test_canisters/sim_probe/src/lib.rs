//! Test canister of ic_sim: exercises the system API, calls, upgrades and timers from inside
//! real wasm built with ic-cdk.

use std::cell::{Cell, RefCell};
use std::time::Duration;

use candid::{CandidType, Principal};
use ic_cdk::call::{Call, CallFailed};
use ic_management_canister_types::{
    CanisterInstallMode, EcdsaCurve, EcdsaKeyId, EcdsaPublicKeyArgs, EcdsaPublicKeyResult,
    HttpRequestArgs, HttpRequestResult, InstallCodeArgs, SchnorrAlgorithm, SchnorrAux,
    SchnorrKeyId, SchnorrPublicKeyArgs, SchnorrPublicKeyResult, SignWithEcdsaArgs,
    SignWithEcdsaResult, SignWithSchnorrArgs, SignWithSchnorrResult, TransformArgs, UpgradeFlags,
};
use serde::de::DeserializeOwned;

#[cfg(feature = "certification")]
mod certification;

thread_local! {
    static COUNTER: Cell<u64> = const { Cell::new(0) };
    static TIMER_FIRED: Cell<u64> = const { Cell::new(0) };
    static CLEANED: Cell<u64> = const { Cell::new(0) };
    static TRAP_PRE_UPGRADE: Cell<bool> = const { Cell::new(false) };
    static LOG: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    static HEARTBEATS: Cell<u64> = const { Cell::new(0) };
    static BALLAST: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

#[cfg(not(feature = "v2"))]
const VERSION: &str = "v1";
#[cfg(feature = "v2")]
const VERSION: &str = "v2";

/// The counter is kept in the first 8 bytes of stable memory across upgrades.
fn save_counter() {
    if ic_cdk::stable::stable_size() == 0 {
        ic_cdk::stable::stable_grow(1).expect("stable grow");
    }
    ic_cdk::stable::stable_write(0, &COUNTER.get().to_le_bytes());
}

fn load_counter() {
    if ic_cdk::stable::stable_size() > 0 {
        let mut buf = [0u8; 8];
        ic_cdk::stable::stable_read(0, &mut buf);
        COUNTER.set(u64::from_le_bytes(buf));
    }
}

#[ic_cdk::init]
fn init(start: Option<u64>) {
    COUNTER.set(start.unwrap_or(0));
}

#[ic_cdk::pre_upgrade]
fn pre_upgrade() {
    if TRAP_PRE_UPGRADE.get() {
        ic_cdk::trap("pre_upgrade refuses");
    }
    save_counter();
}

#[ic_cdk::post_upgrade]
fn post_upgrade() {
    load_counter();
    if cfg!(feature = "trap_post_upgrade") {
        ic_cdk::trap("post_upgrade refuses");
    }
}

#[ic_cdk::inspect_message]
fn inspect_message() {
    let method = ic_cdk::api::msg_method_name();
    // `caller_info_required` takes only ingress messages that carry caller info.
    let missing_info =
        method == "caller_info_required" && ic_cdk::api::msg_caller_info_data().is_empty();
    if method != "forbidden" && !missing_info {
        ic_cdk::api::accept_message();
    }
}

#[ic_cdk::query]
fn version() -> String {
    VERSION.to_string()
}

#[ic_cdk::update]
fn inc() -> u64 {
    COUNTER.set(COUNTER.get() + 1);
    COUNTER.get()
}

/// Grows the heap by `kib` KiB of non-zero data kept for the canister's lifetime, so that
/// benchmarks run on a canister whose heap holds real state. Returns the heap size in bytes.
#[ic_cdk::update]
fn ballast(kib: u64) -> u64 {
    BALLAST.with_borrow_mut(|b| {
        let start = b.len();
        b.resize(start + (kib as usize) * 1024, 0);
        for (i, byte) in b[start..].iter_mut().enumerate() {
            *byte = (i % 251) as u8 + 1;
        }
    });
    heap_bytes()
}

/// The ballast's length and the sum of its bytes.
#[ic_cdk::query]
fn ballast_sum() -> (u64, u64) {
    BALLAST.with_borrow(|b| (b.len() as u64, b.iter().map(|&x| u64::from(x)).sum()))
}

/// A digest of the whole linear memory (from byte 8 on): equal for equal committed heaps, since
/// the query's own writes are the same each time.
#[ic_cdk::query]
fn memory_digest() -> u64 {
    #[cfg(target_arch = "wasm32")]
    {
        let end = core::arch::wasm32::memory_size(0) * 65536;
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut addr = 8usize;
        while addr < end {
            // SAFETY: every address below the memory size is readable in wasm32.
            let word = unsafe { core::ptr::read_volatile(addr as *const u64) };
            h = (h ^ word).wrapping_mul(0x0100_0000_01b3);
            addr += 8;
        }
        h
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        0
    }
}

/// The size of the wasm heap in bytes.
#[ic_cdk::query]
fn heap_bytes() -> u64 {
    #[cfg(target_arch = "wasm32")]
    {
        core::arch::wasm32::memory_size(0) as u64 * 65536
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        0
    }
}

#[ic_cdk::query]
fn get() -> u64 {
    COUNTER.get()
}

/// A query that changes the counter: the change must not persist.
#[ic_cdk::query]
fn inc_in_query() -> u64 {
    COUNTER.set(COUNTER.get() + 1);
    COUNTER.get()
}

#[ic_cdk::update]
fn forbidden() {}

/// Changes heap and stable memory, then traps: nothing may persist.
#[ic_cdk::update]
fn write_then_trap(data: Vec<u8>) {
    COUNTER.set(COUNTER.get() + 1000);
    if ic_cdk::stable::stable_size() == 0 {
        ic_cdk::stable::stable_grow(1).expect("stable grow");
    }
    ic_cdk::stable::stable_write(8, &data);
    ic_cdk::trap("write_then_trap");
}

#[ic_cdk::update]
fn stable_put(offset: u64, data: Vec<u8>) {
    let end = offset + data.len() as u64;
    let pages = end.div_ceil(65536);
    let size = ic_cdk::stable::stable_size();
    if pages > size {
        ic_cdk::stable::stable_grow(pages - size).expect("stable grow");
    }
    ic_cdk::stable::stable_write(offset, &data);
}

#[ic_cdk::query]
fn stable_get(offset: u64, len: u64) -> Vec<u8> {
    let mut buf = vec![0u8; len as usize];
    ic_cdk::stable::stable_read(offset, &mut buf);
    buf
}

#[ic_cdk::update]
fn set_trap_pre_upgrade(on: bool) {
    TRAP_PRE_UPGRADE.set(on);
}

#[ic_cdk::update(manual_reply = true)]
fn reply_twice() {
    ic_cdk::api::msg_reply(candid::encode_one(1u8).unwrap());
    ic_cdk::api::msg_reply(candid::encode_one(2u8).unwrap());
}

#[ic_cdk::update(manual_reply = true)]
fn no_reply() {
    COUNTER.set(COUNTER.get() + 1);
}

#[ic_cdk::update(manual_reply = true)]
fn reject_with(message: String) {
    ic_cdk::api::msg_reject(message);
}

/// Loops `n` times and returns the instruction counter before and after.
#[ic_cdk::update]
fn spin(n: u64) -> (u64, u64) {
    let before = ic_cdk::api::instruction_counter();
    let mut x = 0u64;
    for i in 0..n {
        x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
    }
    std::hint::black_box(x);
    (before, ic_cdk::api::instruction_counter())
}

/// Facts the system API reports.
#[ic_cdk::update]
fn facts() -> (Principal, Principal, u64, u128, u64, bool, u32) {
    (
        ic_cdk::api::canister_self(),
        ic_cdk::api::msg_caller(),
        ic_cdk::api::time(),
        ic_cdk::api::canister_cycle_balance(),
        ic_cdk::api::canister_version(),
        ic_cdk::api::is_controller(&ic_cdk::api::msg_caller()),
        ic_cdk::api::subnet_self_node_count(),
    )
}

#[ic_cdk::query]
fn query_time() -> u64 {
    ic_cdk::api::time()
}

fn call_error(e: CallFailed) -> (u32, String) {
    match e {
        CallFailed::CallRejected(r) => (r.raw_reject_code(), r.reject_message().to_string()),
        other => (0, other.to_string()),
    }
}

/// Calls `method` on `canister` with a raw argument and optional cycles.
#[ic_cdk::update]
async fn call_raw(
    canister: Principal,
    method: String,
    arg: Vec<u8>,
    cycles: u128,
) -> Result<Vec<u8>, (u32, String)> {
    Call::unbounded_wait(canister, &method)
        .with_raw_args(&arg)
        .with_cycles(cycles)
        .await
        .map(|r| r.into_bytes())
        .map_err(call_error)
}

/// Same as `call_raw` with a best-effort (bounded-wait) call.
#[ic_cdk::update]
async fn call_bounded(
    canister: Principal,
    method: String,
    arg: Vec<u8>,
) -> Result<Vec<u8>, (u32, String)> {
    Call::bounded_wait(canister, &method)
        .with_raw_args(&arg)
        .await
        .map(|r| r.into_bytes())
        .map_err(call_error)
}

/// Accepts up to `max` of the attached cycles.
#[ic_cdk::update]
fn accept_cycles(max: u128) -> u128 {
    ic_cdk::api::msg_cycles_accept(max)
}

fn upgrade_args(wasm: Vec<u8>) -> InstallCodeArgs {
    InstallCodeArgs {
        mode: CanisterInstallMode::Upgrade(Some(UpgradeFlags {
            skip_pre_upgrade: None,
            wasm_memory_persistence: None,
        })),
        canister_id: ic_cdk::api::canister_self(),
        wasm_module: wasm,
        arg: candid::encode_one(()).unwrap(),
        sender_canister_version: None,
    }
}

/// Upgrades this canister through a regular call: the response arrives at the new module.
#[ic_cdk::update]
async fn self_upgrade(wasm: Vec<u8>) -> String {
    let result = Call::unbounded_wait(Principal::management_canister(), "install_code")
        .with_arg(upgrade_args(wasm))
        .await;
    format!("callback ran: {:?}", result.is_ok())
}

/// Upgrades this canister through a one-way call: no callback runs.
#[ic_cdk::update]
fn self_upgrade_notify(wasm: Vec<u8>) -> bool {
    Call::unbounded_wait(Principal::management_canister(), "install_code")
        .with_arg(upgrade_args(wasm))
        .oneway()
        .is_ok()
}

struct CleanupGuard;

impl Drop for CleanupGuard {
    fn drop(&mut self) {
        CLEANED.set(CLEANED.get() + 1);
    }
}

/// Holds a guard across a call and traps in the callback: only the cleanup callback can drop
/// the guard.
#[ic_cdk::update]
async fn trap_in_callback(canister: Principal) {
    let _guard = CleanupGuard;
    let _ = Call::unbounded_wait(canister, "version").await;
    ic_cdk::trap("callback traps");
}

/// Traps in the callback, and its cleanup callback traps too: dropping the future's guard
/// traps.
#[ic_cdk::update]
async fn trap_in_callback_and_cleanup(canister: Principal) {
    struct TrappingGuard;
    impl Drop for TrappingGuard {
        fn drop(&mut self) {
            ic_cdk::trap("cleanup traps too");
        }
    }
    let _guard = TrappingGuard;
    let _ = Call::unbounded_wait(canister, "version").await;
    ic_cdk::trap("callback traps");
}

/// Two reads of the message's instruction counter in a row.
#[ic_cdk::query]
fn performance_counter_twice() -> (u64, u64) {
    let first = ic_cdk::api::performance_counter(0);
    let second = ic_cdk::api::performance_counter(0);
    (first, second)
}

#[ic_cdk::query]
fn cleaned() -> u64 {
    CLEANED.get()
}

#[ic_cdk::update]
fn start_timer(delay_seconds: u64) {
    ic_cdk_timers::set_timer(Duration::from_secs(delay_seconds), async {
        TIMER_FIRED.set(TIMER_FIRED.get() + 1);
    });
}

#[ic_cdk::query]
fn timer_fired() -> u64 {
    TIMER_FIRED.get()
}

#[ic_cdk::update]
fn log(line: String) {
    LOG.with_borrow_mut(|l| l.push(line));
}

#[cfg(feature = "v2")]
#[ic_cdk::update]
async fn v2_only(canister: Principal) -> Vec<String> {
    let mut out = Vec::new();
    for m in ["version", "get"] {
        if let Ok(r) = Call::unbounded_wait(canister, m).await {
            out.push(format!("{m}: {} bytes", r.into_bytes().len()));
        }
    }
    out
}

#[cfg(feature = "heartbeat")]
#[ic_cdk::heartbeat]
fn heartbeat() {
    HEARTBEATS.set(HEARTBEATS.get() + 1);
}

#[ic_cdk::query]
fn heartbeats() -> u64 {
    HEARTBEATS.get()
}

/// The canister's environment variables as the system API lists them, and whether `probe`
/// names one.
#[ic_cdk::update]
fn env_vars(probe: String) -> (Vec<(String, String)>, bool) {
    let vars = (0..ic_cdk::api::env_var_count())
        .map(|i| {
            let name = ic_cdk::api::env_var_name(i);
            let value = ic_cdk::api::env_var_value(&name);
            (name, value)
        })
        .collect();
    (vars, ic_cdk::api::env_var_name_exists(probe))
}

fn deadline_now() -> u64 {
    ic_cdk::api::msg_deadline().map_or(0, |d| d.get())
}

/// The deadline of the message being executed (0: none).
#[ic_cdk::update]
fn deadline() -> u64 {
    deadline_now()
}

/// Calls `deadline` on `canister` (best-effort when `bounded`) and returns what the callee saw
/// and what this canister's callback sees.
#[ic_cdk::update]
async fn call_deadline(canister: Principal, bounded: bool) -> (u64, u64) {
    let call = if bounded {
        Call::bounded_wait(canister, "deadline")
    } else {
        Call::unbounded_wait(canister, "deadline")
    };
    let seen: u64 = call.await.expect("deadline call").candid().expect("u64");
    (seen, deadline_now())
}

/// Prints `line` with `ic0.debug_print`, then traps if `trap` is set.
#[ic_cdk::update]
fn print(line: String, trap: bool) {
    ic_cdk::api::debug_print(&line);
    if trap {
        ic_cdk::trap("print then trap");
    }
}

/// Prints `line` from a query: recorded only when the query runs replicated.
#[ic_cdk::query]
fn print_in_query(line: String) {
    ic_cdk::api::debug_print(&line);
}

/// A composite query: this canister's counter plus `get` of each canister in `canisters`,
/// queried one after another. A failed call reports its reject code and message.
#[ic_cdk::query(composite = true)]
async fn sum_counters(canisters: Vec<Principal>) -> Result<u64, (u32, String)> {
    let mut total = COUNTER.get();
    for canister in canisters {
        let reply = Call::unbounded_wait(canister, "get")
            .await
            .map_err(call_error)?;
        total += reply
            .candid::<u64>()
            .map_err(|e| (0, format!("decoding get: {e}")))?;
    }
    Ok(total)
}

/// A composite query that changes its own state, calls `method` on `canister`, and returns
/// the callee's raw reply (or reject) with the counter its callback sees: the change made
/// before the call is still there, within the query.
#[ic_cdk::query(composite = true)]
async fn composite_call(
    canister: Principal,
    method: String,
    arg: Vec<u8>,
) -> (Result<Vec<u8>, (u32, String)>, u64) {
    COUNTER.set(COUNTER.get() + 1000);
    let result = Call::unbounded_wait(canister, &method)
        .with_raw_args(&arg)
        .await
        .map(|r| r.into_bytes())
        .map_err(call_error);
    (result, COUNTER.get())
}

/// Follows `path` through composite queries: each canister calls `chain` on the next one with
/// the rest of the path. Returns how many calls deep the path went.
#[ic_cdk::query(composite = true)]
async fn chain(path: Vec<Principal>) -> Result<u64, (u32, String)> {
    let Some((next, rest)) = path.split_first() else {
        return Ok(0);
    };
    let reply = Call::unbounded_wait(*next, "chain")
        .with_arg(rest.to_vec())
        .await
        .map_err(call_error)?;
    let inner: Result<u64, (u32, String)> = reply
        .candid()
        .map_err(|e| (0, format!("decoding chain: {e}")))?;
    inner.map(|depth| depth + 1)
}

/// Replies with `n` zero bytes through `ic0.msg_reply_data_append` (a manual reply).
#[ic_cdk::update(manual_reply = true)]
fn reply_bytes(n: u64) {
    ic_cdk::api::msg_reply(vec![0u8; n as usize]);
}

/// Calls `ic0.time` `n` times and returns the instructions counted around the loop.
#[ic_cdk::update]
fn time_calls(n: u64) -> u64 {
    let before = ic_cdk::api::instruction_counter();
    for _ in 0..n {
        std::hint::black_box(ic_cdk::api::time());
    }
    ic_cdk::api::instruction_counter() - before
}

#[cfg(target_arch = "wasm32")]
#[link(wasm_import_module = "ic0")]
extern "C" {
    fn call_new(
        callee_src: usize,
        callee_size: usize,
        name_src: usize,
        name_size: usize,
        reply_fun: usize,
        reply_env: usize,
        reject_fun: usize,
        reject_env: usize,
    );
    fn call_data_append(src: usize, size: usize);
    fn call_perform() -> u32;
}

/// Makes `n` one-way calls of `method` (no argument) to `callee` within this one message, with
/// the system API directly, and returns how many `ic0.call_perform` accepted and the non-zero
/// codes it returned for the others.
#[ic_cdk::update]
fn fan_out(callee: Principal, method: String, n: u32) -> (u32, Vec<u32>) {
    let arg = candid::encode_args(()).expect("encoding ()");
    let callee = callee.as_slice().to_vec();
    let mut accepted = 0;
    let mut failed = Vec::new();
    for _ in 0..n {
        #[cfg(target_arch = "wasm32")]
        // SAFETY: the pointers and lengths describe live buffers; an invalid table index as
        // reply and reject function makes a one-way call (no callback runs).
        let code = unsafe {
            call_new(
                callee.as_ptr() as usize,
                callee.len(),
                method.as_ptr() as usize,
                method.len(),
                usize::MAX,
                0,
                usize::MAX,
                0,
            );
            call_data_append(arg.as_ptr() as usize, arg.len());
            call_perform()
        };
        #[cfg(not(target_arch = "wasm32"))]
        let code: u32 = {
            let _ = (&callee, &method, &arg);
            0
        };
        if code == 0 {
            accepted += 1;
        } else {
            failed.push(code);
        }
    }
    (accepted, failed)
}

/// Calls the management canister's `method` with `cycles` attached and decodes its reply.
async fn management<A, R>(method: &str, arg: &A, cycles: u128) -> Result<R, (u32, String)>
where
    A: CandidType,
    R: CandidType + DeserializeOwned,
{
    Call::unbounded_wait(Principal::management_canister(), method)
        .with_arg(arg)
        .with_cycles(cycles)
        .await
        .map_err(call_error)?
        .candid()
        .map_err(|e| (0, e.to_string()))
}

/// The public key, chain code and a signature of `message_hash` for ECDSA key `key` and
/// `path`, paying what `ic0.cost_sign_with_ecdsa` quotes.
#[ic_cdk::update]
async fn ecdsa_sign(
    key: String,
    path: Vec<Vec<u8>>,
    message_hash: Vec<u8>,
) -> Result<(Vec<u8>, Vec<u8>, Vec<u8>), (u32, String)> {
    let key_id = EcdsaKeyId {
        curve: EcdsaCurve::Secp256k1,
        name: key,
    };
    let cycles = ic_cdk::api::cost_sign_with_ecdsa(&key_id.name, EcdsaCurve::Secp256k1.into())
        .map_err(|e| (0, e.to_string()))?;
    let public: EcdsaPublicKeyResult = management(
        "ecdsa_public_key",
        &EcdsaPublicKeyArgs {
            canister_id: None,
            derivation_path: path.clone(),
            key_id: key_id.clone(),
        },
        0,
    )
    .await?;
    let signed: SignWithEcdsaResult = management(
        "sign_with_ecdsa",
        &SignWithEcdsaArgs {
            message_hash,
            derivation_path: path,
            key_id,
        },
        cycles,
    )
    .await?;
    Ok((public.public_key, public.chain_code, signed.signature))
}

/// The public key, chain code and a signature of `message` for Schnorr key `key` of
/// `algorithm` and `path`, paying what `ic0.cost_sign_with_schnorr` quotes.
#[ic_cdk::update]
async fn schnorr_sign(
    algorithm: SchnorrAlgorithm,
    key: String,
    path: Vec<Vec<u8>>,
    message: Vec<u8>,
    aux: Option<SchnorrAux>,
) -> Result<(Vec<u8>, Vec<u8>, Vec<u8>), (u32, String)> {
    let key_id = SchnorrKeyId {
        algorithm,
        name: key,
    };
    let cycles = ic_cdk::api::cost_sign_with_schnorr(&key_id.name, algorithm.into())
        .map_err(|e| (0, e.to_string()))?;
    let public: SchnorrPublicKeyResult = management(
        "schnorr_public_key",
        &SchnorrPublicKeyArgs {
            canister_id: None,
            derivation_path: path.clone(),
            key_id: key_id.clone(),
        },
        0,
    )
    .await?;
    let signed: SignWithSchnorrResult = management(
        "sign_with_schnorr",
        &SignWithSchnorrArgs {
            message,
            derivation_path: path,
            key_id,
            aux,
        },
        cycles,
    )
    .await?;
    Ok((public.public_key, public.chain_code, signed.signature))
}

/// Makes the HTTP outcall `arg`, paying what `ic0.cost_http_request` quotes.
#[ic_cdk::update]
async fn http_outcall(arg: HttpRequestArgs) -> Result<HttpRequestResult, (u32, String)> {
    let headers: usize = arg
        .headers
        .iter()
        .map(|h| h.name.len() + h.value.len())
        .sum();
    let transform = arg
        .transform
        .as_ref()
        .map_or(0, |t| t.function.0.method.len() + t.context.len());
    let request_size = arg.url.len() + headers + arg.body.as_ref().map_or(0, Vec::len) + transform;
    let cycles = ic_cdk::api::cost_http_request(
        request_size as u64,
        arg.max_response_bytes.unwrap_or(2_000_000),
    );
    management("http_request", &arg, cycles).await
}

/// An HTTP outcall transform: drops the headers and appends the context to the body, so that a
/// test sees that it ran, with its context. The context `trap` makes it trap.
#[ic_cdk::query]
fn transform(args: TransformArgs) -> HttpRequestResult {
    if args.context == b"trap" {
        ic_cdk::trap("transform refuses");
    }
    let mut body = args.response.body;
    body.extend_from_slice(&args.context);
    HttpRequestResult {
        status: args.response.status,
        headers: Vec::new(),
        body,
    }
}

type CallerInfo = (Vec<u8>, Option<Principal>);

fn caller_info_now() -> CallerInfo {
    (
        ic_cdk::api::msg_caller_info_data(),
        ic_cdk::api::msg_caller_info_signer(),
    )
}

/// The caller info of this call, read before and after an inter-canister call: the info
/// belongs to the call context, so the callback sees it too.
#[ic_cdk::update]
async fn caller_info() -> (CallerInfo, CallerInfo) {
    let before = caller_info_now();
    let _ = Call::unbounded_wait(ic_cdk::api::canister_self(), "version").await;
    (before, caller_info_now())
}

/// Accepted by `canister_inspect_message` only with caller info; returns its data.
#[ic_cdk::update]
fn caller_info_required() -> Vec<u8> {
    ic_cdk::api::msg_caller_info_data()
}

thread_local! {
    static ADMITTED: RefCell<Vec<Principal>> = const { RefCell::new(Vec::new()) };
}

/// Sets the principals `fleet_admit` says yes to: the probe stands in for an app's own
/// admission canister.
#[ic_cdk::update]
fn set_admitted(principals: Vec<Principal>) {
    ADMITTED.with(|a| *a.borrow_mut() = principals);
}

/// The fleet manager's approver interface: whether `principal` may get a canister.
#[ic_cdk::update]
fn fleet_admit(principal: Principal) -> bool {
    ADMITTED.with(|a| a.borrow().contains(&principal))
}
