//! [`Ic`] over HTTPS through ic-agent, driven by a private current-thread tokio runtime so the
//! command code stays synchronous.

use candid::Principal;
use ic_agent::{Agent, AgentError};

use super::mgmt::effective_canister_id;
use super::{CallError, Ic};
use crate::identity::Identity;

/// The IC mainnet API boundary.
pub const MAINNET_URL: &str = "https://icp-api.io";
/// dfx's default local replica address.
pub const LOCAL_URL: &str = "http://127.0.0.1:4943";

/// Which IC to talk to, as given to `--network`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Network {
    /// Mainnet; its root key is compiled into ic-agent.
    Ic,
    /// A local replica (dfx's default address).
    Local,
    /// Any other replica or boundary node.
    Url(String),
}

impl Network {
    /// Parses `ic`, `local` or an `http(s)://` URL.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "ic" => Ok(Network::Ic),
            "local" => Ok(Network::Local),
            url if url.starts_with("http://") || url.starts_with("https://") => {
                Ok(Network::Url(url.trim_end_matches('/').to_string()))
            }
            other => Err(format!(
                "network must be `ic`, `local` or an http(s) URL, not `{other}`"
            )),
        }
    }

    pub fn url(&self) -> &str {
        match self {
            Network::Ic => MAINNET_URL,
            Network::Local => LOCAL_URL,
            Network::Url(url) => url,
        }
    }

    /// Whether the root key must be fetched from the network. Only off mainnet: on mainnet a
    /// fetched key would let a man in the middle forge certified replies (IC interface spec,
    /// "Certification": the root key is known to the client in advance).
    pub fn fetches_root_key(&self) -> bool {
        match self {
            Network::Ic => false,
            Network::Local => true,
            Network::Url(url) => !is_mainnet_host(url),
        }
    }
}

fn is_mainnet_host(url: &str) -> bool {
    let host = url
        .split("://")
        .nth(1)
        .unwrap_or(url)
        .split(['/', ':'])
        .next()
        .unwrap_or("");
    ["ic0.app", "icp0.io", "icp-api.io"]
        .iter()
        .any(|d| host == *d || host.ends_with(&format!(".{d}")))
}

/// ic-agent backend.
pub struct AgentIc {
    agent: Agent,
    runtime: tokio::runtime::Runtime,
    sender: Principal,
}

impl AgentIc {
    /// Connects as `identity`. Fetches the root key first when the network needs it.
    pub fn connect(network: &Network, identity: &Identity) -> Result<Self, CallError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CallError::Transport(format!("starting the async runtime: {e}")))?;
        let agent = Agent::builder()
            .with_url(network.url())
            .with_arc_identity(identity.signer())
            .build()
            .map_err(transport)?;
        if network.fetches_root_key() {
            runtime.block_on(agent.fetch_root_key()).map_err(convert)?;
        }
        Ok(Self {
            agent,
            runtime,
            sender: identity.principal(),
        })
    }
}

fn effective(canister: Principal, arg: &[u8]) -> Principal {
    if canister == Principal::management_canister() {
        effective_canister_id(arg).unwrap_or(canister)
    } else {
        canister
    }
}

fn transport(e: impl std::fmt::Display) -> CallError {
    CallError::Transport(e.to_string())
}

fn convert(e: AgentError) -> CallError {
    match e {
        AgentError::CertifiedReject { reject, .. }
        | AgentError::UncertifiedReject { reject, .. } => CallError::reject(
            reject.reject_code as u32,
            reject.reject_message,
            reject.error_code,
        ),
        other => transport(other),
    }
}

impl Ic for AgentIc {
    fn update(
        &self,
        canister: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Vec<u8>, CallError> {
        let eff = effective(canister, &arg);
        self.runtime
            .block_on(
                self.agent
                    .update(&canister, method)
                    .with_effective_canister_id(eff)
                    .with_arg(arg)
                    .call_and_wait(),
            )
            .map_err(convert)
    }

    fn query(&self, canister: Principal, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, CallError> {
        let eff = effective(canister, &arg);
        self.runtime
            .block_on(
                self.agent
                    .query(&canister, method)
                    .with_effective_canister_id(eff)
                    .with_arg(arg)
                    .call(),
            )
            .map_err(convert)
    }

    fn sender(&self) -> Principal {
        self.sender
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_parse_and_fetch_the_root_key_only_off_mainnet() {
        assert_eq!(Network::parse("ic").unwrap(), Network::Ic);
        assert!(!Network::Ic.fetches_root_key());
        assert!(Network::Local.fetches_root_key());
        let url = Network::parse("http://localhost:8080/").unwrap();
        assert_eq!(url.url(), "http://localhost:8080");
        assert!(url.fetches_root_key());
        assert!(!Network::parse("https://icp0.io")
            .unwrap()
            .fetches_root_key());
        assert!(!Network::parse("https://abc.raw.icp0.io")
            .unwrap()
            .fetches_root_key());
        assert!(Network::parse("https://icp0.io.evil.example")
            .unwrap()
            .fetches_root_key());
        assert!(Network::parse("mainnet").is_err());
    }
}
