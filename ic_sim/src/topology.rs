//! The simulated IC's topology in the shapes of pocket-ic's `Topology`, `SubnetConfig`,
//! `SubnetKind` and `CanisterIdRange` (pocket-ic's `common/rest.rs`), and creation of a canister
//! on a chosen subnet.
//!
//! The simulator runs one application subnet by default, or up to [`MAX_APPLICATION_SUBNETS`]
//! of them. A single subnet holds every canister id the IC allocates (eight bytes and
//! `0x01 0x01`, interface spec, "Principals"), so its one canister range is that whole space;
//! with several, subnet i holds the i-th block of 2^20 ids. Every subnet signs with the
//! instance's root key itself (no delegation). Subnets of other kinds are refused when the
//! simulator is built.

use std::collections::BTreeMap;

use candid::Principal;

use crate::errors::{ErrorCode, RejectResponse};
use crate::management_canister::CanisterSettings;
use crate::sim::canister_id_from_u64;
use crate::{CanisterId, IcSim};

pub type SubnetId = Principal;

/// The kinds of subnet pocket-ic can create.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SubnetKind {
    Application,
    Bitcoin,
    Fiduciary,
    II,
    NNS,
    SNS,
    System,
    VerifiedApplication,
}

/// Instruction limits of a subnet (pocket-ic's `SubnetInstructionConfig`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SubnetInstructionConfig {
    Production,
    Benchmarking,
}

/// A canister id as raw bytes (pocket-ic's `RawCanisterId`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RawCanisterId {
    pub canister_id: Vec<u8>,
}

impl From<Principal> for RawCanisterId {
    fn from(p: Principal) -> Self {
        RawCanisterId {
            canister_id: p.as_slice().to_vec(),
        }
    }
}

impl From<RawCanisterId> for Principal {
    fn from(raw: RawCanisterId) -> Self {
        Principal::from_slice(&raw.canister_id)
    }
}

/// An inclusive range of canister ids of one subnet.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CanisterIdRange {
    pub start: RawCanisterId,
    pub end: RawCanisterId,
}

impl CanisterIdRange {
    /// Whether the range holds `canister_id` (compared as pocket-ic compares principals).
    pub fn contains(&self, canister_id: Principal) -> bool {
        Principal::from_slice(&self.start.canister_id) <= canister_id
            && canister_id <= Principal::from_slice(&self.end.canister_id)
    }
}

/// One subnet of the topology.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SubnetConfig {
    pub subnet_kind: SubnetKind,
    /// The seed the subnet's keys derive from (here: the instance's root key).
    pub subnet_seed: [u8; 32],
    pub instruction_config: SubnetInstructionConfig,
    pub canister_ranges: Vec<CanisterIdRange>,
}

/// The subnets of an instance and the canister id that addresses the default subnet.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Topology {
    pub subnet_configs: BTreeMap<SubnetId, SubnetConfig>,
    pub default_effective_canister_id: RawCanisterId,
}

impl Topology {
    /// The subnet whose ranges hold `canister_id`.
    pub fn get_subnet(&self, canister_id: Principal) -> Option<SubnetId> {
        self.subnet_configs
            .iter()
            .find(|(_, c)| c.canister_ranges.iter().any(|r| r.contains(canister_id)))
            .map(|(id, _)| *id)
    }

    /// The application subnets.
    pub fn get_app_subnets(&self) -> Vec<SubnetId> {
        self.subnets_of(SubnetKind::Application)
    }

    /// The subnets of one kind, in the order of their canister id ranges (so the default
    /// subnet comes first).
    pub fn subnets_of(&self, kind: SubnetKind) -> Vec<SubnetId> {
        let mut subnets: Vec<_> = self
            .subnet_configs
            .iter()
            .filter(|(_, c)| c.subnet_kind == kind)
            .map(|(id, c)| (c.canister_ranges.first().map(|r| r.start.clone()), *id))
            .collect();
        subnets.sort();
        subnets.into_iter().map(|(_, id)| id).collect()
    }

    /// The NNS subnet, if there is one (never here).
    pub fn get_nns(&self) -> Option<SubnetId> {
        self.subnets_of(SubnetKind::NNS).first().copied()
    }
}

/// Application subnets a simulator can have at most.
pub const MAX_APPLICATION_SUBNETS: usize = 8;

/// Checks the subnets a builder asked for: none (the default, one application subnet) or up to
/// [`MAX_APPLICATION_SUBNETS`] application subnets.
pub(crate) fn validate_subnets(kinds: &[SubnetKind]) -> Result<(), String> {
    if let Some(kind) = kinds.iter().find(|k| **k != SubnetKind::Application) {
        return Err(format!(
            "ic_sim simulates application subnets only; a {kind:?} subnet is not supported yet \
             (requested: {kinds:?})"
        ));
    }
    if kinds.len() > MAX_APPLICATION_SUBNETS {
        return Err(format!(
            "ic_sim simulates at most {MAX_APPLICATION_SUBNETS} application subnets; {} requested",
            kinds.len()
        ));
    }
    Ok(())
}

impl IcSim {
    /// The topology (pocket-ic's `topology`): every application subnet with its canister id
    /// range. A single subnet holds every canister id the IC allocates; several hold one block
    /// of 2^20 ids each, in order, as mainnet's routing table allocates them.
    pub fn topology(&self) -> Topology {
        let sim = self.sim.borrow();
        let subnet_configs = sim
            .subnets
            .iter()
            .map(|s| {
                let range = CanisterIdRange {
                    start: canister_id_from_u64(s.range.0).into(),
                    end: canister_id_from_u64(s.range.1).into(),
                };
                let config = SubnetConfig {
                    subnet_kind: SubnetKind::Application,
                    subnet_seed: sim.root_key.seed(),
                    instruction_config: SubnetInstructionConfig::Production,
                    canister_ranges: vec![range],
                };
                (s.id, config)
            })
            .collect();
        Topology {
            subnet_configs,
            default_effective_canister_id: canister_id_from_u64(sim.subnets[0].range.0).into(),
        }
    }

    /// The application subnets, the first (where `create_canister` creates) first.
    pub fn get_app_subnets(&self) -> Vec<SubnetId> {
        self.sim.borrow().subnets.iter().map(|s| s.id).collect()
    }

    /// Creates a canister on `subnet_id` (pocket-ic's `create_canister_on_subnet`), with the
    /// cycles of [`IcSim::create_canister_with_settings`]; its id comes from the subnet's range.
    /// Panics when the subnet does not exist or the creation is rejected, as pocket-ic does;
    /// see [`IcSim::try_create_canister_on_subnet`] for an error instead.
    pub fn create_canister_on_subnet(
        &self,
        sender: Option<Principal>,
        settings: Option<CanisterSettings>,
        subnet_id: SubnetId,
    ) -> CanisterId {
        self.try_create_canister_on_subnet(sender, settings, subnet_id)
            .unwrap_or_else(|e| panic!("create_canister_on_subnet failed: {e}"))
    }

    /// [`IcSim::create_canister_on_subnet`] with an error instead of a panic: an unknown subnet
    /// is IC0404 (`SubnetNotFound`, reject code CANISTER_REJECT), and nothing is created.
    pub fn try_create_canister_on_subnet(
        &self,
        sender: Option<Principal>,
        settings: Option<CanisterSettings>,
        subnet_id: SubnetId,
    ) -> Result<CanisterId, RejectResponse> {
        let index = self
            .sim
            .borrow()
            .subnets
            .iter()
            .position(|s| s.id == subnet_id);
        let Some(index) = index else {
            return Err(RejectResponse::new(
                ErrorCode::SubnetNotFound,
                format!("Subnet {subnet_id} not found"),
            ));
        };
        {
            let mut sim = self.sim.borrow_mut();
            sim.provisional_subnet = index;
            sim.provisional_forced = true;
        }
        let created = self.provisional_create(sender, settings, None);
        let mut sim = self.sim.borrow_mut();
        sim.provisional_subnet = 0;
        sim.provisional_forced = false;
        created
    }
}
