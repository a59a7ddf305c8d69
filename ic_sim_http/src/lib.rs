//! The Internet Computer's HTTPS interface (interface spec, "HTTPS Interface") served from an
//! embedded [`ic_sim::IcSim`] on 127.0.0.1, so that agents in any language talk to the
//! simulator as to a local replica.
//!
//! Served: `GET /api/v2/status` (CBOR with the root key); calls at
//! `/api/v2/canister/<ecid>/call` (asynchronous), `/api/v3/canister/<ecid>/call` and
//! `/api/v4/canister/<ecid>/call` (synchronous, answered with a certificate of the request
//! status) and `/api/v4/subnet/<esid>/call` (canister creation only); queries at
//! `/api/v2/canister/<ecid>/query`, `/api/v3/canister/<ecid>/query` and
//! `/api/v3/subnet/<esid>/query` (`list_canisters` only), each reply signed by the one
//! simulated node; read_state at `/api/v2|v3/canister/<ecid>/read_state` and
//! `/api/v2|v3/subnet/<esid>/read_state`.
//!
//! Requests are authenticated ([`auth`]) and their ingress expiry checked against the
//! simulator's time. While serving, the simulator runs in live mode (as PocketIC's): its time
//! follows the wall clock and rounds run by themselves between requests, so certificates are
//! fresh and expiries mean what they say.
//!
//! The simulator is single-threaded; the server owns it on one thread and handles one request
//! at a time.

pub mod auth;
mod server;
mod tree;

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use ic_sim::IcSim;

pub use server::NodeKey;

/// How the server runs.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Time between rounds while no request asks for one.
    pub round_interval: Duration,
    /// How long a synchronous call waits for its outcome before it is answered 202 (spec,
    /// "Request: Call": an implementation-specific timeout).
    pub sync_call_timeout: Duration,
    /// At most this many rounds for one synchronous call.
    pub sync_call_max_rounds: u32,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            port: 0,
            round_interval: Duration::from_millis(20),
            sync_call_timeout: Duration::from_secs(10),
            sync_call_max_rounds: 2_000,
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on 127.0.0.1:{port}: {reason}")]
    Bind { port: u16, reason: String },
    #[error("setting up the simulator failed: {0}")]
    Setup(String),
    #[error("the server thread ended before it was ready")]
    Ended,
}

/// A running server; stopping it (or dropping the handle) ends its thread.
pub struct ServerHandle {
    url: String,
    root_key: Vec<u8>,
    stop: Arc<AtomicBool>,
    http: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl ServerHandle {
    /// `http://127.0.0.1:<port>`, the URL agents are given.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The simulator's DER-encoded root key, which `/api/v2/status` serves too.
    pub fn root_key(&self) -> &[u8] {
        &self.root_key
    }

    /// Stops serving and waits for the server thread to end.
    pub fn stop(mut self) {
        self.shutdown();
    }

    /// Blocks until the server ends (after [`ServerHandle::stop`] from elsewhere, e.g. the
    /// stopper of [`ServerHandle::stopper`]).
    pub fn wait(mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// A function that stops the server from another thread (a Ctrl-C handler).
    pub fn stopper(&self) -> impl Fn() + Send + Sync + 'static {
        let stop = Arc::clone(&self.stop);
        let http = Arc::clone(&self.http);
        move || {
            stop.store(true, Ordering::SeqCst);
            http.unblock();
        }
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.http.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Starts serving. `setup` runs on the server thread (the simulator is not `Send`) and returns
/// the simulator to serve and a value handed back to the caller (e.g. the ids of canisters it
/// installed); the call returns once setup is done and the server listens.
pub fn start<T, F>(config: ServeConfig, setup: F) -> Result<(ServerHandle, T), ServeError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<(Rc<IcSim>, T), String> + Send + 'static,
{
    let http =
        tiny_http::Server::http(("127.0.0.1", config.port)).map_err(|e| ServeError::Bind {
            port: config.port,
            reason: e.to_string(),
        })?;
    let port = http
        .server_addr()
        .to_ip()
        .map(|a| a.port())
        .ok_or_else(|| ServeError::Bind {
            port: config.port,
            reason: "not an IP socket".into(),
        })?;
    let http = Arc::new(http);
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(Vec<u8>, T), String>>();
    let thread = {
        let http = Arc::clone(&http);
        let stop = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("ic_sim_http".into())
            .spawn(move || {
                let (sim, value) = match setup() {
                    Ok(ready) => ready,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let mut live = server::Live::new(sim, config);
                let _ = ready_tx.send(Ok((live.root_key().to_vec(), value)));
                live.serve(&http, &stop);
            })
            .map_err(|e| ServeError::Setup(e.to_string()))?
    };
    let (root_key, value) = match ready_rx.recv() {
        Ok(Ok(ready)) => ready,
        Ok(Err(e)) => {
            let _ = thread.join();
            return Err(ServeError::Setup(e));
        }
        Err(_) => {
            let _ = thread.join();
            return Err(ServeError::Ended);
        }
    };
    Ok((
        ServerHandle {
            url: format!("http://127.0.0.1:{port}"),
            root_key,
            stop,
            http,
            thread: Some(thread),
        },
        value,
    ))
}
