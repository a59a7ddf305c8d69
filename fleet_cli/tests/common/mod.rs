//! Shared setup of the CLI's end-to-end tests: the `fleet` command tree run against `ic_sim`
//! with the real canister wasm, every identity signing through the simulator.
#![allow(dead_code)]

use std::cell::Cell;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use candid::{decode_one, encode_args, encode_one, Principal};
use clap::Parser;
use fleet_api::endpoint::{CallKind, Endpoint};
use fleet_api::user::method::{List, Put, Version};
use fleet_api::user::{ListNotesArg, PutNoteArg, UserCanisterArg, UserInitArg};
use fleet_cli::backend::sim::SimIc;
use fleet_cli::backend::{CallError, Ic};
use fleet_cli::cli::Cli;
use fleet_cli::commands::{run, Output};
use fleet_cli::dashboard::Dashboard;
use fleet_cli::error::CliError;
use fleet_cli::phrase::RecoveryPhrase;
use ic_sim::management_canister::CanisterSettings;
use ic_sim::IcSim;
use sha2::{Digest, Sha256};

/// A valid 12-word phrase (BIP39 test vector: all-zero entropy).
pub const PHRASE: &str =
    "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";
/// Twelve valid words whose checksum is wrong.
pub const BAD_CHECKSUM_PHRASE: &str =
    "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon";
/// Another valid phrase: a principal that controls nothing.
pub const STRANGER_PHRASE: &str =
    "legal winner thank year wave sausage worth useful legal winner thank yellow";

pub const CYCLES: u128 = 100_000_000_000_000;

/// A self-authenticating-shaped test principal.
pub fn user(n: u8) -> Principal {
    let mut bytes = [n; 29];
    bytes[28] = 0x02;
    Principal::from_slice(&bytes)
}

pub fn principal_of(phrase: &str) -> Principal {
    RecoveryPhrase::parse(phrase).unwrap().principal().unwrap()
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

pub fn user_wasm(features: &[&str]) -> Vec<u8> {
    wasm_build::wasm("user_canister", features)
}

/// `wasm` with a custom section of `extra` bytes appended: the same code, spanning several
/// 1 MiB chunks. Runtimes ignore unknown custom sections.
pub fn padded(wasm: &[u8], extra: usize) -> Vec<u8> {
    wasm_build::with_custom_section(wasm, "fleet_test_padding", &vec![0xAB; extra])
}

/// A folder removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "fleet-cli-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    /// Writes `bytes` to `name` in this folder and returns its path as text.
    pub fn file(&self, name: &str, bytes: &[u8]) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).unwrap();
        path.to_str().unwrap().to_string()
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A simulated IC and a folder for the files commands read.
pub struct World {
    pub sim: Rc<IcSim>,
    pub dir: TempDir,
}

impl World {
    pub fn new() -> Self {
        World {
            sim: Rc::new(IcSim::new()),
            dir: TempDir::new(),
        }
    }

    /// A simulated IC of `subnets` application subnets.
    pub fn with_subnets(subnets: usize) -> Self {
        let builder = (0..subnets).fold(ic_sim::IcSimBuilder::new(), |b, _| {
            b.with_application_subnet()
        });
        World {
            sim: Rc::new(builder.build()),
            dir: TempDir::new(),
        }
    }

    /// Runs `fleet ARGS...` as the binary would (same parser, same command code), connecting
    /// every identity to this simulator. Confirmation prompts are answered "no".
    pub fn fleet(&self, args: &[&str]) -> Result<Output, CliError> {
        self.fleet_via(args, |ic| Box::new(ic))
    }

    /// Like [`World::fleet`], with the connection wrapped by `wrap` (to inject failures).
    pub fn fleet_via(
        &self,
        args: &[&str],
        wrap: impl Fn(SimIc) -> Box<dyn Ic>,
    ) -> Result<Output, CliError> {
        let cli = Cli::try_parse_from(std::iter::once("fleet").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("fleet {args:?} does not parse: {e}"));
        let sim = Rc::clone(&self.sim);
        let connector = move |_: &fleet_cli::backend::agent::Network,
                              id: &fleet_cli::identity::Identity|
              -> Result<Box<dyn Ic>, CliError> {
            Ok(wrap(SimIc::new(Rc::clone(&sim), id.principal())))
        };
        run(&cli, &connector, &mut |_| Ok(false))
    }

    /// Like [`World::fleet`], expecting an error; returns it with its exit code.
    pub fn fleet_err(&self, args: &[&str]) -> (i32, CliError) {
        match self.fleet(args) {
            Ok(out) => panic!("fleet {args:?} succeeded: {}", out.text),
            Err(e) => (e.exit_code(), e),
        }
    }

    /// Calls `E` on `canister` as `sender` (a query or an update, as `E` is declared); a
    /// reject or an undecodable reply fails the test.
    pub fn call<E: Endpoint>(
        &self,
        canister: Principal,
        sender: Principal,
        args: E::Args,
    ) -> E::Reply {
        let method = E::NAME;
        let arg = encode_args(args).unwrap();
        let reply = match E::KIND {
            CallKind::Query => self.sim.query_call(canister, sender, method, arg),
            CallKind::Update => self.sim.update_call(canister, sender, method, arg),
        }
        .unwrap_or_else(|e| panic!("{method}: {e}"));
        decode_one(&reply).unwrap_or_else(|e| panic!("decoding {method}: {e}"))
    }

    /// A user canister controlled by exactly `[manager, recovery]`, running user_canister v1
    /// installed by `installer` (one of them) for `owner`.
    pub fn user_canister(
        &self,
        manager: Principal,
        recovery: Principal,
        owner: Principal,
        installer: Principal,
    ) -> Principal {
        self.user_canister_on(None, manager, recovery, owner, installer)
    }

    /// [`World::user_canister`] on `subnet` (`None`: the first application subnet).
    pub fn user_canister_on(
        &self,
        subnet: Option<Principal>,
        manager: Principal,
        recovery: Principal,
        owner: Principal,
        installer: Principal,
    ) -> Principal {
        let settings = Some(CanisterSettings {
            controllers: Some(vec![manager, recovery]),
            ..Default::default()
        });
        let canister = match subnet {
            Some(subnet) => self
                .sim
                .create_canister_on_subnet(Some(installer), settings, subnet),
            None => self
                .sim
                .create_canister_with_settings(Some(installer), settings),
        };
        self.sim.add_cycles(canister, CYCLES);
        let v1 = user_wasm(&[]);
        let arg = UserCanisterArg::Init(UserInitArg {
            owner,
            recovery_principal: recovery,
            manager,
            release_sha256: sha256(&v1).to_vec(),
        });
        self.sim
            .install_canister(canister, v1, encode_one(arg).unwrap(), Some(installer));
        canister
    }

    pub fn put_note(&self, canister: Principal, owner: Principal, key: &str, text: &str) {
        let arg = PutNoteArg {
            key: key.to_string(),
            text: text.to_string(),
        };
        self.call::<Put>(canister, owner, (arg,))
            .into_result()
            .unwrap();
    }

    /// The notes as (key, text), read by the owner.
    pub fn notes(&self, canister: Principal, owner: Principal) -> Vec<(String, String)> {
        let arg = ListNotesArg {
            start_after: None,
            limit: 100,
        };
        self.call::<List>(canister, owner, (arg,))
            .into_result()
            .unwrap()
            .into_iter()
            .map(|e| (e.key, e.note.text))
            .collect()
    }

    pub fn version(&self, canister: Principal) -> String {
        self.call::<Version>(canister, Principal::anonymous(), ())
    }

    pub fn module_hash(&self, canister: Principal) -> Option<[u8; 32]> {
        self.sim.module_hash(canister)
    }

    /// Snapshot ids of `canister`, read as `controller`.
    pub fn snapshot_count(&self, canister: Principal, controller: Principal) -> usize {
        self.sim
            .list_canister_snapshots(canister, Some(controller))
            .unwrap()
            .len()
    }
}

/// Fails the `n`-th call (1-based) of `method` as a lost connection would; the other calls go
/// through.
pub struct FailsNth {
    pub inner: SimIc,
    pub method: &'static str,
    pub n: u32,
    pub seen: Cell<u32>,
}

impl FailsNth {
    pub fn boxed(inner: SimIc, method: &'static str, n: u32) -> Box<dyn Ic> {
        Box::new(FailsNth {
            inner,
            method,
            n,
            seen: Cell::new(0),
        })
    }
}

impl Ic for FailsNth {
    fn update(&self, c: Principal, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, CallError> {
        if method == self.method {
            self.seen.set(self.seen.get() + 1);
            if self.seen.get() == self.n {
                return Err(CallError::Transport("connection reset".into()));
            }
        }
        self.inner.update(c, method, arg)
    }
    fn query(&self, c: Principal, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, CallError> {
        self.inner.query(c, method, arg)
    }
    fn sender(&self) -> Principal {
        self.inner.sender()
    }
}

/// An HTTP/1.1 GET of `path` from `host`, closing the connection after the answer.
pub fn get_request(path: &str, host: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
}

/// Sends `request` to `host` (`127.0.0.1:PORT`) and returns the status code and the body. The
/// server must be served meanwhile, by another thread than this one.
pub fn http_exchange(host: &str, request: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(host)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.write_all(request.as_bytes())?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let status = raw
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = raw.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    Ok((status, body))
}

/// `fleet dashboard`'s server: one HTTP/1.1 exchange with the dashboard from another thread
/// while this one serves it; returns the status code and the body.
pub fn dashboard_exchange(d: &Dashboard, request: String) -> (u16, String) {
    let host = dashboard_host(d);
    let client = std::thread::spawn(move || http_exchange(&host, &request).unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    while !client.is_finished() {
        assert!(Instant::now() < deadline, "no answer from the dashboard");
        d.serve_for(Duration::from_millis(20));
    }
    client.join().unwrap()
}

pub fn dashboard_get(d: &Dashboard, path: &str, host: &str) -> (u16, String) {
    dashboard_exchange(d, get_request(path, host))
}

pub fn dashboard_post(
    d: &Dashboard,
    path: &str,
    host: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    let token = token
        .map(|t| format!("X-Fleet-Token: {t}\r\n"))
        .unwrap_or_default();
    dashboard_exchange(
        d,
        format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\n{token}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

/// The page's token, which actions must carry.
pub fn dashboard_token(d: &Dashboard) -> String {
    let (code, page) = dashboard_get(d, "/", &dashboard_host(d));
    assert_eq!(code, 200, "{page}");
    page.split("name=\"fleet-token\" content=\"")
        .nth(1)
        .and_then(|t| t.split('"').next())
        .unwrap()
        .to_string()
}

/// `127.0.0.1:PORT`, the only hosts the server answers besides `localhost:PORT`.
pub fn dashboard_host(d: &Dashboard) -> String {
    d.url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string()
}

/// A JSON body, or the test fails naming it.
pub fn json_of(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}
