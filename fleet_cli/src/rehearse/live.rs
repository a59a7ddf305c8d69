//! `fleet rehearse --from-canister` and `--from-snapshot`: one upgrade rehearsed on a real
//! canister's state. The migration a synthetic fleet cannot show (a trap, or more instructions
//! than the IC allows, on one user's real data) shows here before the rollout.
//!
//! The live canister's state is taken as `recovery backup` takes it (a snapshot taken,
//! downloaded and deleted: nothing else changes on the canister), as its controller or, with
//! `--manager`, through its manager as an admin. The state is uploaded into a canister of the
//! embedded simulator and loaded there (interface spec, "IC method
//! `upload_canister_snapshot_metadata`", "`load_canister_snapshot`"), then upgraded to `--to`
//! under the IC's instruction limit for an upgrade (`pre_upgrade` and `post_upgrade` together,
//! 300B; interface spec, "Resource limits") or a lower one given.

use std::path::Path;
use std::rc::Rc;
use std::time::Instant;

use candid::Principal;
use fleet_api::user::FleetHealth;
use ic_sim::{IcSimBuilder, SimLimits};
use serde::Serialize;

use crate::backend::managed::ThroughManager;
use crate::backend::sim::SimIc;
use crate::backend::Ic;
use crate::commands::{connect_as, Connector};
use crate::error::CliError;
use crate::recovery::backup;
use crate::wasm::WasmModule;

use super::RehearseArgs;

/// The replica's instructions per slice of a long `install_code` (deterministic time slicing):
/// an upgrade of N instructions spans `ceil(N / slice)` rounds.
const INSTALL_SLICE: u64 = 2_000_000_000;
/// Cycles of the simulated canister: enough for any upgrade under the limit.
const CYCLES: u128 = 100_000_000_000_000;

/// `fleet_health` as the report shows it.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct HealthView {
    pub ok: bool,
    pub version: String,
    pub schema_version: u32,
    pub records: u64,
    /// sha256 over the records, hex.
    pub checksum: String,
}

impl From<FleetHealth> for HealthView {
    fn from(h: FleetHealth) -> Self {
        HealthView {
            ok: h.ok,
            version: h.version,
            schema_version: h.schema_version,
            records: h.records,
            checksum: hex::encode(h.checksum),
        }
    }
}

/// The upgrade on the simulator.
#[derive(Serialize, Debug, Clone)]
pub struct UpgradeRun {
    pub succeeded: bool,
    /// Instructions of the upgrade (`pre_upgrade`, `post_upgrade` and the start function), as
    /// the simulator metered them, including an upgrade that failed.
    pub instructions: u64,
    /// The limit it ran under.
    pub instruction_limit: u64,
    /// Rounds the upgrade spans under deterministic time slicing (2B instructions a slice).
    pub slices: u64,
    /// True when the upgrade stopped at the instruction limit.
    pub exceeded_instruction_limit: bool,
    /// Why it failed, as the simulator rejected it.
    pub error: Option<String>,
}

#[derive(Serialize, Debug, Clone)]
pub struct LiveRehearsal {
    /// Where the state came from.
    pub source: String,
    /// The canister the state was taken from.
    pub canister: String,
    pub module_hash_before: Option<String>,
    pub target_sha256: String,
    /// What the rehearsal changed on the live canister.
    pub live_canister_changes: String,
    pub stable_memory_before: u64,
    pub stable_memory_after: Option<u64>,
    pub health_before: Option<HealthView>,
    pub health_after: Option<HealthView>,
    pub upgrade: UpgradeRun,
    /// Wall time of the whole rehearsal, download included, in seconds.
    pub wall_secs: f64,
}

impl LiveRehearsal {
    /// True when the upgrade succeeded and the data reads the same afterwards.
    pub fn passed(&self) -> bool {
        self.upgrade.succeeded
            && match (&self.health_before, &self.health_after) {
                (Some(b), Some(a)) => a.ok && a.records == b.records && a.checksum == b.checksum,
                (None, _) => true,
                (Some(_), None) => false,
            }
    }
}

/// Rehearses the upgrade to `--to` on the state `--from-canister` or `--from-snapshot` names.
pub fn run(args: &RehearseArgs, connector: &Connector) -> Result<LiveRehearsal, CliError> {
    let to_path = args.to.as_ref().ok_or_else(|| {
        CliError::Usage(
            "--from-canister and --from-snapshot need --to, the module to rehearse".into(),
        )
    })?;
    let to = WasmModule::read(to_path, None)?;
    let started = Instant::now();
    let (file, source, changes, downloaded) = match (&args.from_snapshot, args.from_canister) {
        (Some(path), _) => (
            path.clone(),
            format!("file {}", path.display()),
            "none: the state was read from a file".to_string(),
            false,
        ),
        (None, Some(canister)) => {
            let file = std::env::temp_dir().join(format!(
                "fleet-rehearse-{}-{canister}.bin",
                std::process::id()
            ));
            download(args, connector, canister, &file)?;
            let changes =
                "a snapshot was taken, downloaded and deleted; nothing else changed".to_string();
            (
                file,
                format!("canister {canister} on {}", args.network.name()),
                changes,
                true,
            )
        }
        (None, None) => {
            return Err(CliError::Usage(
                "give --from-canister or --from-snapshot".into(),
            ))
        }
    };
    let rehearsed = rehearse(&file, &to, args.max_upgrade_instructions);
    if downloaded {
        let _ = std::fs::remove_file(&file);
    }
    let mut report = rehearsed?;
    report.source = source;
    report.live_canister_changes = changes;
    report.wall_secs = (started.elapsed().as_secs_f64() * 100.0).round() / 100.0;
    Ok(report)
}

/// Takes the live canister's state into `file`, as its controller or through `--manager`.
fn download(
    args: &RehearseArgs,
    connector: &Connector,
    canister: Principal,
    file: &Path,
) -> Result<(), CliError> {
    let ic = connect_as(args.network.name(), &args.identity, false, connector)?;
    let through = args
        .manager
        .map(|manager| ThroughManager::new(ic.as_ref(), manager));
    let ic: &dyn Ic = match &through {
        Some(t) => t,
        None => ic.as_ref(),
    };
    backup::backup(ic, canister, file)?;
    Ok(())
}

/// Loads the state in `file` into a fresh simulator and upgrades it to `to`.
fn rehearse(file: &Path, to: &WasmModule, limit: u64) -> Result<LiveRehearsal, CliError> {
    let (header, _) = backup::read_header(file)?;
    let limits = SimLimits {
        install_instructions: limit,
        ..SimLimits::default()
    };
    let sim = Rc::new(IcSimBuilder::new().with_limits(limits).build());
    let operator = super::operator();
    let id = sim.create_canister_with_settings(Some(operator), None);
    sim.add_cycles(id, CYCLES);
    let ops = SimIc::new(Rc::clone(&sim), operator);
    backup::restore(&ops, id, file, true)?;
    let anyone = ops.as_sender(Principal::anonymous());
    let health_before = super::setup::fleet_health(&anyone, id).map(HealthView::from);
    let before = sim.instructions_total(id);
    let arg = candid::encode_args(()).map_err(|e| CliError::Io(e.to_string()))?;
    let result = sim.upgrade_canister(id, to.bytes.clone(), arg, Some(operator));
    let instructions = sim.instructions_total(id) - before;
    let (succeeded, exceeded, error) = match result {
        Ok(()) => (true, false, None),
        Err(e) => (
            false,
            e.error_code == ic_sim::ErrorCode::CanisterInstructionLimitExceeded,
            Some(format!("{}: {}", e.error_code, e.reject_message)),
        ),
    };
    let health_after = if succeeded {
        super::setup::fleet_health(&anyone, id).map(HealthView::from)
    } else {
        None
    };
    Ok(LiveRehearsal {
        source: String::new(),
        canister: header.canister.clone(),
        module_hash_before: header.module_hash.clone(),
        target_sha256: hex::encode(to.sha256),
        live_canister_changes: String::new(),
        stable_memory_before: header.stable_memory_size,
        stable_memory_after: succeeded.then(|| sim.get_stable_memory(id).len() as u64),
        health_before,
        health_after,
        upgrade: UpgradeRun {
            succeeded,
            instructions,
            instruction_limit: limit,
            slices: instructions.div_ceil(INSTALL_SLICE),
            exceeded_instruction_limit: exceeded,
            error,
        },
        wall_secs: 0.0,
    })
}

/// The report as text.
pub fn text(r: &LiveRehearsal) -> String {
    let health = |h: &Option<HealthView>| match h {
        Some(h) => format!(
            "ok {}, version {}, schema {}, {} records, checksum {}",
            h.ok, h.version, h.schema_version, h.records, h.checksum
        ),
        None => "no answer".to_string(),
    };
    let u = &r.upgrade;
    let outcome = if u.succeeded {
        "succeeded".to_string()
    } else if u.exceeded_instruction_limit {
        format!(
            "FAILED: exceeds the instruction limit of {}",
            u.instruction_limit
        )
    } else {
        format!("FAILED: {}", u.error.as_deref().unwrap_or("unknown"))
    };
    format!(
        "rehearsed the upgrade of {} ({}) to {}\n\
         upgrade:        {outcome}\n\
         instructions:   {} of {} ({:.2}%), {} slice(s) of 2B\n\
         stable memory:  {} bytes before, {} after\n\
         health before:  {}\n\
         health after:   {}\n\
         live canister:  {}\n\
         wall time:      {:.2} s",
        r.canister,
        r.source,
        r.target_sha256,
        u.instructions,
        u.instruction_limit,
        u.instructions as f64 * 100.0 / u.instruction_limit.max(1) as f64,
        u.slices,
        r.stable_memory_before,
        r.stable_memory_after
            .map_or("-".to_string(), |b| b.to_string()),
        health(&r.health_before),
        health(&r.health_after),
        r.live_canister_changes,
        r.wall_secs
    )
}
