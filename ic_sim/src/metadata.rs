//! Canister metadata and subnet information.
//!
//! Metadata are a module's custom sections named `icp:public <name>` or `icp:private <name>`
//! (interface spec, "Canister module format"): anyone may read public ones, only controllers
//! private ones, through the management method `canister_metadata` (interface spec, "IC method
//! canister_metadata") or the state tree path `/canister/<id>/metadata/<name>` (interface spec,
//! "Canister information"), which [`crate::IcSim::canister_metadata`] stands for.
//! `subnet_info` (interface spec, "IC method subnet_info") reports [`REPLICA_VERSION`].

use std::collections::BTreeMap;

use candid::Principal;
use ic_management_canister_types as mgmt;

use crate::errors::{ErrorCode, RejectResponse};
use crate::management::rejected;
use crate::module::write_uleb;
use crate::sim::Sim;

/// The replica version `subnet_info` reports: the simulator's name and crate version, since it
/// runs no replica release.
pub const REPLICA_VERSION: &str = concat!("ic_sim-", env!("CARGO_PKG_VERSION"));
/// The registry version `subnet_info` reports: the simulated subnet's registry never changes.
pub const REGISTRY_VERSION: u64 = 1;

/// Custom sections the spec allows a canister module (interface spec, "Canister module
/// format": at most 16 `icp:` sections, together at most 1 MiB).
const MAX_SECTIONS: usize = 16;
const MAX_SECTIONS_BYTES: usize = 1 << 20;

/// Whether a metadata section is readable by everyone or only by controllers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Visibility {
    Public,
    Private,
}

/// A module's metadata sections by name (without the `icp:public `/`icp:private ` prefix).
pub(crate) type Sections = BTreeMap<String, (Visibility, Vec<u8>)>;

/// The `icp:` custom sections of `wasm`, checked as the spec requires (no other `icp:` names,
/// no name both public and private, within the count and size bounds).
pub(crate) fn sections(wasm: &[u8]) -> Result<Sections, String> {
    use wasmparser::{Parser, Payload};
    let mut out = Sections::new();
    let mut bytes = 0;
    for payload in Parser::new(0).parse_all(wasm) {
        let Payload::CustomSection(reader) = payload.map_err(|e| e.to_string())? else {
            continue;
        };
        let full = reader.name();
        if !full.starts_with("icp:") {
            continue;
        }
        let (visibility, name) = if let Some(name) = full.strip_prefix("icp:public ") {
            (Visibility::Public, name)
        } else if let Some(name) = full.strip_prefix("icp:private ") {
            (Visibility::Private, name)
        } else {
            return Err(format!(
                "Invalid custom section: name {full} starts with icp: but is neither icp:public nor icp:private"
            ));
        };
        if out.contains_key(name) {
            return Err(format!(
                "Invalid custom section: name {name} is declared more than once"
            ));
        }
        bytes += full.len() + reader.data().len();
        out.insert(name.to_string(), (visibility, reader.data().to_vec()));
    }
    if out.len() > MAX_SECTIONS {
        return Err(format!(
            "Wasm module has {} icp: custom sections, at most {MAX_SECTIONS} are allowed",
            out.len()
        ));
    }
    if bytes > MAX_SECTIONS_BYTES {
        return Err(format!(
            "Wasm module's icp: custom sections take {bytes} bytes, at most {MAX_SECTIONS_BYTES} are allowed"
        ));
    }
    Ok(out)
}

/// `wasm` with a custom section `name` holding `data` appended (custom sections may come
/// anywhere in a module), e.g. to give a test module `icp:public <name>` metadata.
pub fn with_custom_section(wasm: &[u8], name: &str, data: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(name.len() + data.len() + 5);
    write_uleb(&mut body, name.len() as u64);
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(data);
    let mut out = wasm.to_vec();
    out.push(0);
    write_uleb(&mut out, body.len() as u64);
    out.extend_from_slice(&body);
    out
}

impl Sim {
    /// The content of metadata section `name` of `canister`, if `sender` may read it.
    pub(crate) fn canister_metadata(
        &self,
        sender: Principal,
        canister: &Principal,
        name: &str,
    ) -> Result<Vec<u8>, RejectResponse> {
        let c = self.canister(canister)?;
        let module = c.module.as_ref().ok_or_else(|| {
            rejected(format!(
                "The canister {canister} has no Wasm module and hence no metadata is available."
            ))
        })?;
        match module.metadata.get(name) {
            None => Err(rejected(format!(
                "The canister {canister} has no metadata section with the name {name}."
            ))),
            Some((Visibility::Private, _)) if !c.settings.controllers.contains(&sender) => Err(
                rejected("The caller is not authorized to call this method."),
            ),
            Some((_, value)) => Ok(value.clone()),
        }
    }

    /// `subnet_info` for the simulated subnet.
    pub(crate) fn subnet_info(
        &self,
        args: &mgmt::SubnetInfoArgs,
    ) -> Result<mgmt::SubnetInfoResult, RejectResponse> {
        if !self.subnets.iter().any(|s| s.id == args.subnet_id) {
            return Err(RejectResponse::new(
                ErrorCode::SubnetNotFound,
                format!("Subnet {} not found", args.subnet_id),
            ));
        }
        Ok(mgmt::SubnetInfoResult {
            replica_version: REPLICA_VERSION.to_string(),
            registry_version: REGISTRY_VERSION,
        })
    }
}
