//! The fleet before the rollout: the modules, the manager on a fresh simulator with the
//! starting release published, every owner's canister, and their data.

use std::rc::Rc;

use candid::{encode_one, Principal};
use fleet_api::endpoint::Endpoint;
use fleet_api::governance::{Admission, AdmissionMode, ProvisioningBudget};
use fleet_api::manager::method::{
    AddSubnet, CreateUserCanister, SetDefaultRelease, SetPlacement, SetStoreModule,
};
use fleet_api::manager::{
    AddSubnetArg, CreateUserCanisterArg, CreateUserCanisterError, ManagerInitArg, Placement,
    RateLimit,
};
use fleet_api::user::method::{GetFleetHealth, Put};
use fleet_api::user::{FleetHealth, PutNoteArg};
use ic_sim::{IcSim, IcSimBuilder};

use super::sim::{refused, Rehearsal};
use super::{operator, owner, recovery, RehearseArgs};
use crate::backend::sim::SimIc;
use crate::backend::Endpoints;
use crate::error::CliError;
use crate::manager::{self as mgr, Manager};
use crate::progress::Bars;
use crate::wasm::WasmModule;

/// Cycles each user canister receives at creation: above the rollout's default minimum.
const USER_CYCLES: u128 = 1_000_000_000_000;

/// The releases rehearsed and the manager's module.
pub(super) struct Modules {
    pub from: WasmModule,
    pub to: WasmModule,
    pub manager_wasm: Vec<u8>,
}

/// A simulated IC with the manager installed.
pub(super) struct Installed {
    pub sim: Rc<IcSim>,
    /// The operator who installed the manager, its controller.
    pub admin: Principal,
    pub manager: Principal,
}

/// The fleet as the rollout finds it: provisioned, then given its data.
pub(super) struct Fleet {
    pub admin: Principal,
    pub manager: Principal,
    /// Every user's canister, in user order.
    pub canisters: Vec<Principal>,
    pub provision_rounds: u64,
    /// Notes each owner wrote (set by [`write_data`]).
    pub notes_per_user: u32,
    /// Every canister's `fleet_health` before the rollout, `None` where it did not answer (set
    /// by [`write_data`]).
    pub before: Vec<Option<FleetHealth>>,
}

/// The modules `build.rs` built and embedded, by variant name (`user_canister-v2`): the
/// rehearsal needs neither cargo nor this source tree at run time.
const BUNDLED: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/bundled.rs"));

fn embedded(name: &str) -> Result<&'static [u8], CliError> {
    BUNDLED
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, bytes)| *bytes)
        .ok_or_else(|| CliError::Io(format!("this build of fleet bundles no {name} module")))
}

/// The store canister's module bundled in this build (`fleet subnets add` and `--subnets`).
pub fn bundled_store_module() -> Result<&'static [u8], CliError> {
    embedded("store_canister")
}

fn bundled(name: &str) -> Result<WasmModule, CliError> {
    Ok(WasmModule::from_bytes(
        embedded(name)?.to_vec(),
        name,
        None,
    )?)
}

/// Reads the releases given, or takes the bundled ones, and the bundled manager. With `switch`, the bundled releases
/// are the `fault_switch` builds, whose release faults are set per canister.
pub(super) fn load_modules(args: &RehearseArgs, switch: bool) -> Result<Modules, CliError> {
    let from = match &args.from {
        Some(path) => WasmModule::read(path, None)?,
        None if switch => bundled("user_canister-fault_switch")?,
        None => bundled("user_canister")?,
    };
    let to = match &args.to {
        Some(path) => WasmModule::read(path, None)?,
        None if switch => bundled("user_canister-fault_switch+v2")?,
        None => bundled("user_canister-v2")?,
    };
    if from.sha256 == to.sha256 {
        return Err(CliError::Usage(
            "the starting and the target release are the same module".into(),
        ));
    }
    let manager_wasm = embedded("fleet_manager")?.to_vec();
    Ok(Modules {
        from,
        to,
        manager_wasm,
    })
}

/// A fresh simulator with the manager, cycles for every canister, and a creation rate limit
/// that lets every user create their canister at once: provisioning is not what is rehearsed.
pub(super) fn install_manager(
    args: &RehearseArgs,
    manager_wasm: &[u8],
) -> Result<Installed, CliError> {
    let builder = (0..args.subnets)
        .fold(IcSimBuilder::new().with_logs(args.canister_logs), |b, _| {
            b.with_application_subnet()
        });
    let sim = Rc::new(builder.build());
    let admin = operator();
    let manager = sim.create_canister_with_settings(Some(admin), None);
    sim.add_cycles(
        manager,
        u128::from(args.users) * 2 * USER_CYCLES
            + 100 * USER_CYCLES
            + u128::from(args.subnets) * 2 * STORE_CYCLES,
    );
    let init = ManagerInitArg {
        admins: None,
        user_canister_cycles: Some(USER_CYCLES),
        creation_limit: Some(RateLimit {
            capacity: args.users.max(10),
            refill_period_secs: 1,
        }),
        // The rehearsal creates every canister at once: a budget for all of them.
        admission: Some(Admission {
            mode: AdmissionMode::Open,
            budget: ProvisioningBudget {
                cycles_per_window: u128::from(args.users) * 2 * USER_CYCLES,
                window_secs: 86_400,
            },
        }),
        release_policy: None,
    };
    sim.install_canister(
        manager,
        manager_wasm.to_vec(),
        encode_one(Some(init)).map_err(|e| CliError::Io(e.to_string()))?,
        Some(admin),
    );
    Ok(Installed {
        sim,
        admin,
        manager,
    })
}

/// Cycles of each store canister the manager creates on another subnet.
const STORE_CYCLES: u128 = 1_000_000_000_000;

/// Has the manager use every other subnet of the simulator (a store canister on each, which
/// the starting release is mirrored into) and spread new canisters over all of them, as an
/// operator does with `fleet subnets add` and `fleet subnets placement spread`.
pub(super) fn add_subnets(installed: &Installed, m: &Manager) -> Result<(), CliError> {
    let own = installed.sim.get_subnet(installed.manager);
    let others: Vec<Principal> = installed
        .sim
        .get_app_subnets()
        .into_iter()
        .filter(|s| Some(*s) != own)
        .collect();
    if others.is_empty() {
        return Ok(());
    }
    let store_module = bundled_store_module()?.to_vec();
    m.call_ok::<SetStoreModule>((serde_bytes::ByteBuf::from(store_module),))?;
    for subnet in others {
        m.call_ok::<AddSubnet>((AddSubnetArg {
            subnet,
            store_cycles: STORE_CYCLES,
        },))?;
    }
    m.call_ok::<SetPlacement>((Placement::Spread,))?;
    Ok(())
}

/// Publishes the starting release through the code of `release publish` and makes it the
/// default, so that new canisters get it.
pub(super) fn publish_start(
    m: &Manager,
    from: &WasmModule,
    version: &str,
    bars: &mut Bars,
) -> Result<(), CliError> {
    mgr::publish(m, from, version, "rehearsal: starting release", None, bars)?;
    m.call::<SetDefaultRelease>((version.to_string(),))?
        .into_result()
        .map_err(refused(SetDefaultRelease::NAME))?;
    Ok(())
}

/// Owners creating their canister at the same time, at most: the manager takes at most 200
/// creations at once (each holds a call to the management canister, whose queue from one
/// canister holds 500) and refuses the others as `Busy`.
const CONCURRENT_CREATIONS: u32 = 200;
/// Attempts per owner when the manager answers `Busy`.
const BUSY_ATTEMPTS: u32 = 10;

/// Every owner creates their canister through the manager, each with its own recovery
/// principal, [`CONCURRENT_CREATIONS`] at a time; an owner told `Busy` tries again in a later
/// batch, as a client should.
pub(super) fn provision(
    r: &mut Rehearsal,
    installed: &Installed,
    users: u32,
) -> Result<Fleet, CliError> {
    let manager = installed.manager;
    let mut created: Vec<Option<Principal>> = vec![None; users as usize];
    let mut waiting: std::collections::VecDeque<(u32, u32)> = (0..users).map(|i| (i, 1)).collect();
    while !waiting.is_empty() {
        let batch: Vec<(u32, u32)> = waiting
            .drain(..waiting.len().min(CONCURRENT_CREATIONS as usize))
            .collect();
        let messages = batch
            .iter()
            .map(|&(i, _)| {
                let arg = CreateUserCanisterArg {
                    recovery_principal: recovery(i),
                    invite: None,
                };
                r.submit::<CreateUserCanister>(manager, owner(i), (arg,))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let replies = r.run_all(&messages, Some("creating canisters"))?;
        for ((i, attempt), reply) in batch.into_iter().zip(replies) {
            match reply.into_result() {
                Ok(c) => created[i as usize] = Some(c.canister_id),
                Err(CreateUserCanisterError::Busy { .. }) if attempt < BUSY_ATTEMPTS => {
                    waiting.push_back((i, attempt + 1))
                }
                Err(e) => {
                    return Err(refused(&format!("create_user_canister for user {i}"))(e));
                }
            }
        }
    }
    let canisters = created.into_iter().flatten().collect();
    Ok(Fleet {
        admin: installed.admin,
        manager,
        canisters,
        provision_rounds: r.rounds,
        notes_per_user: 0,
        before: Vec::new(),
    })
}

/// Every owner writes `notes` notes into their canister, concurrently; then every
/// canister's `fleet_health` is recorded, for the checks after the rollout.
pub(super) fn write_data(r: &mut Rehearsal, fleet: Fleet, notes: u32) -> Result<Fleet, CliError> {
    if notes > 0 {
        let mut messages = Vec::new();
        for (i, id) in fleet.canisters.iter().enumerate() {
            for k in 0..notes {
                let arg = PutNoteArg {
                    key: format!("note-{k}"),
                    text: format!("user {i} wrote note {k} before the upgrade"),
                };
                messages.push(r.submit::<Put>(*id, owner(i as u32), (arg,))?);
            }
        }
        for reply in r.run_all(&messages, Some("writing notes"))? {
            reply.into_result().map_err(refused(Put::NAME))?;
        }
    }
    let anyone = SimIc::new(Rc::clone(&r.sim), Principal::anonymous());
    let before = fleet
        .canisters
        .iter()
        .map(|id| fleet_health(&anyone, *id))
        .collect();
    Ok(Fleet {
        notes_per_user: notes,
        before,
        ..fleet
    })
}

/// A canister's `fleet_health`, as `anyone` asks for it; `None` when it does not answer.
pub(super) fn fleet_health(anyone: &SimIc, id: Principal) -> Option<FleetHealth> {
    anyone.call::<GetFleetHealth>(id, ()).ok()
}
