//! The interface gate of `fleet release publish` and `fleet release check`: a new release must
//! keep the Candid interface of the release it replaces, so that the clients of the user
//! canisters (front ends, other canisters, scripts) keep working once the rollout reaches them.
//!
//! The check is candid's own: the new service must be a subtype of the old one (Candid
//! specification, "Upgrading and subtyping"), as `candid_parser` decides it. It runs on the
//! operator's machine, before anything is uploaded; the manager keeps the service text with the
//! release so that the next release is checked against it.

use std::path::{Path, PathBuf};

use candid_parser::utils::{service_compatibility_report, CandidSource};
use fleet_api::manager::method::{GetReleaseInterface, GetSettings};
use fleet_api::manager::ReleaseInterface;
use serde::Serialize;

use crate::error::CliError;
use crate::manager::{self as mgr, Manager};
use crate::wasm::{WasmModule, GZIP_MAGIC, WASM_HEADER};

/// The metadata section holding a canister's service description.
pub const SERVICE_METADATA: &str = "candid:service";

/// What a new module's interface is checked against: a published release, or a file (a `.did`
/// or a module carrying `candid:service`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Baseline {
    Release(String),
    File(PathBuf),
}

impl Baseline {
    /// `--against`: an existing file, else a version.
    pub fn parse(text: &str) -> Self {
        let path = Path::new(text);
        if path.is_file() {
            Baseline::File(path.to_path_buf())
        } else {
            Baseline::Release(text.to_string())
        }
    }
}

/// The outcome of the check.
#[derive(Debug, Clone, Default, Serialize)]
pub struct InterfaceCheck {
    /// What the interface was checked against ("release 1.2.0", "file app.did"); none when
    /// there was nothing to check against.
    pub against: Option<String>,
    /// Every incompatibility, e.g. `method "get" > return type: ...`.
    pub incompatible: Vec<String>,
    /// The methods with at least one incompatibility, by name.
    pub methods: Vec<String>,
    /// Why the check did not run, or what it could not see.
    pub warnings: Vec<String>,
}

impl InterfaceCheck {
    pub fn breaking(&self) -> bool {
        !self.incompatible.is_empty()
    }

    /// The refusal of a breaking release, naming its incompatible methods.
    pub fn refusal(&self, what: &str) -> CliError {
        CliError::Refused(format!(
            "{what} breaks the interface of {}: {} incompatible method{} ({})\n  {}\npublish it anyway with --allow-breaking \"<reason>\"; the reason is kept with the release",
            self.against.as_deref().unwrap_or("the previous release"),
            self.methods.len(),
            if self.methods.len() == 1 { "" } else { "s" },
            self.methods.join(", "),
            self.incompatible.join("\n  ")
        ))
    }

    /// Text lines for a report.
    pub fn text(&self) -> String {
        let mut lines = self
            .warnings
            .iter()
            .map(|w| format!("warning: {w}"))
            .collect::<Vec<_>>();
        if let Some(against) = &self.against {
            lines.push(if self.breaking() {
                format!("interface: breaks {against} in {}", self.methods.join(", "))
            } else {
                format!("interface: compatible with {against}")
            });
        }
        lines.join("\n")
    }
}

/// The module's service description, if it carries one.
pub fn service_of(module: &WasmModule, shown: &str) -> Result<Option<String>, CliError> {
    module
        .metadata(SERVICE_METADATA)
        .map(|bytes| {
            String::from_utf8(bytes).map_err(|_| {
                CliError::Refused(format!(
                    "{shown}: its {SERVICE_METADATA} metadata is not UTF-8"
                ))
            })
        })
        .transpose()
}

/// Checks `new_service` (none: the module has no `candid:service`) against `against`, or, when
/// no baseline is named, against the manager's default release: the one new canisters get and
/// the one a rollout replaces.
pub fn check(
    new_service: Option<&str>,
    against: Option<&Baseline>,
    manager: Option<&Manager>,
) -> Result<InterfaceCheck, CliError> {
    let mut report = InterfaceCheck::default();
    let Some(new_service) = new_service else {
        report.warnings.push(format!(
            "the module has no {SERVICE_METADATA} metadata: its interface is not checked and none is kept with the release"
        ));
        return Ok(report);
    };
    let baseline = match against {
        Some(b) => Some(b.clone()),
        None => match manager {
            Some(m) => m
                .call::<GetSettings>(())?
                .default_release
                .map(|r| Baseline::Release(r.version)),
            None => None,
        },
    };
    let (name, old_service) = match &baseline {
        None => {
            report
                .warnings
                .push("no release to check against (the manager has no default release)".into());
            return Ok(report);
        }
        Some(Baseline::File(path)) => (format!("file {}", path.display()), read_service(path)?),
        Some(Baseline::Release(version)) => {
            let m = manager.ok_or_else(|| {
                CliError::Usage(format!(
                    "checking against release {version} needs --manager"
                ))
            })?;
            (format!("release {version}"), release_service(m, version)?)
        }
    };
    let Some(old_service) = old_service else {
        report.warnings.push(format!(
            "{name} has no interface on record: the new one is not checked"
        ));
        return Ok(report);
    };
    let incompatibilities = service_compatibility_report(
        CandidSource::Text(new_service),
        CandidSource::Text(&old_service),
    )
    .map_err(|e| CliError::Refused(format!("the interfaces do not parse as Candid: {e}")))?;
    for i in &incompatibilities {
        // A changed method is the first segment of the path; a removed one is named in the
        // message of a service-level incompatibility.
        let method = method_named(i.path.first().unwrap_or(&i.message))
            .unwrap_or_else(|| "(service)".into());
        if !report.methods.contains(&method) {
            report.methods.push(method);
        }
        report.incompatible.push(i.to_string());
    }
    report.methods.sort();
    report.against = Some(name);
    Ok(report)
}

/// The name in `method "<name>"` at the start of `text`.
fn method_named(text: &str) -> Option<String> {
    let rest = text.strip_prefix("method \"")?;
    rest.split_once('"').map(|(name, _)| name.to_string())
}

/// The interface `version` was published with (`None`: published without one).
fn release_service(m: &Manager, version: &str) -> Result<Option<String>, CliError> {
    match m.call::<GetReleaseInterface>((version.to_string(),))? {
        Some(ReleaseInterface { service, .. }) => Ok(service),
        None if mgr::get_release(m, version)?.is_none() => Err(CliError::NotFound(format!(
            "manager {} has no release {version}",
            m.id
        ))),
        None => Ok(None),
    }
}

/// A baseline file: a module (plain or gzipped) with `candid:service`, or a `.did`.
fn read_service(path: &Path) -> Result<Option<String>, CliError> {
    let bytes = std::fs::read(path)
        .map_err(|e| CliError::Io(format!("reading {}: {e}", path.display())))?;
    let shown = path.display().to_string();
    if bytes.starts_with(&WASM_HEADER[..4]) || bytes.starts_with(&GZIP_MAGIC) {
        let module = WasmModule::from_bytes(bytes, &shown, None)?;
        return service_of(&module, &shown);
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| CliError::Usage(format!("{shown} is neither a module nor a UTF-8 .did")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = r#"
        type Note = record { id : nat64; text : text };
        service : {
            get : (nat64) -> (opt Note) query;
            put : (text) -> (nat64);
            count : () -> (nat64) query;
        }"#;

    fn against_text(new: &str, old: &str) -> InterfaceCheck {
        let dir = std::env::temp_dir().join(format!("fleet-iface-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.join(format!("old-{n}.did"));
        std::fs::write(&path, old).unwrap();
        let report = check(Some(new), Some(&Baseline::File(path.clone())), None).unwrap();
        std::fs::remove_file(path).unwrap();
        report
    }

    #[test]
    fn additions_and_optional_fields_are_compatible() {
        let new = r#"
            type Note = record { id : nat64; text : text; tags : opt vec text };
            service : {
                get : (nat64) -> (opt Note) query;
                put : (text, opt text) -> (nat64);
                count : () -> (nat64) query;
                search : (text) -> (vec Note) query;
            }"#;
        let report = against_text(new, OLD);
        assert!(!report.breaking(), "{:?}", report.incompatible);
        assert!(report.against.unwrap().starts_with("file "));
    }

    #[test]
    fn removed_methods_and_changed_types_are_listed_by_method() {
        let new = r#"
            type Note = record { id : nat64; text : text };
            service : {
                get : (nat64) -> (opt Note) query;
                put : (text, nat64) -> (nat64);
            }"#;
        let report = against_text(new, OLD);
        assert!(report.breaking());
        assert_eq!(
            report.methods,
            ["count", "put"],
            "{:?}",
            report.incompatible
        );
        let refusal = report.refusal("release 2.0.0").to_string();
        assert!(refusal.contains("--allow-breaking"), "{refusal}");
    }

    #[test]
    fn a_module_without_metadata_is_a_warning_not_a_check() {
        let report = check(None, None, None).unwrap();
        assert!(!report.breaking());
        assert_eq!(report.against, None);
        assert!(report.warnings[0].contains(SERVICE_METADATA));
    }

    #[test]
    fn unparseable_candid_is_refused() {
        let dir = std::env::temp_dir();
        let path = dir.join(format!("fleet-iface-bad-{}.did", std::process::id()));
        std::fs::write(&path, OLD).unwrap();
        let err = check(
            Some("service : {"),
            Some(&Baseline::File(path.clone())),
            None,
        );
        std::fs::remove_file(path).unwrap();
        assert!(matches!(err, Err(CliError::Refused(_))), "{err:?}");
    }

    #[test]
    fn the_user_canisters_interface_parses_and_is_compatible_with_itself() {
        let did = include_str!("../../user_canister/user_canister.did");
        let report = against_text(did, did);
        assert!(!report.breaking(), "{:?}", report.incompatible);
    }
}
