//! The reference deployment posing as a live DIVE of one generation, so the live code runs in CI:
//! a hub and spokes with Prometheus and AlertManager (HTTPS at HEAD), behind DIVE's container names
//! through a fake container runtime, with a DIVE checkout holding a fake `./dive` of that
//! generation's grammar, its CA and its rule files where DIVE keeps them. A live configuration
//! ([`LiveShaped::vars`]) points the suite at it like at any DIVE on this machine.

pub mod control;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::deployment::monitors::DIVE_RULES_DIR;
use crate::infra::config::Runtime;
use crate::infra::os::random_hex;
use crate::reference::Reference;
use crate::reference::behaviour::{Behaviour, Generation};
use crate::reference::monitoring::{RULE_FIXTURES, ReferenceMonitoring, fixture, scale_rules};
use crate::reference::server::ControlledServer;
use crate::vocab::coalition::HUB;
use control::ControlState;

/// A DIVE of one generation, as the plan intends it or as shipped.
#[derive(Debug, Clone)]
pub struct Form {
    pub name: &'static str,
    pub generation: Generation,
    pub behaviour: Behaviour,
    /// Subcommands of its `./dive` that print the help and exit 0 instead (`spoke down`).
    pub broken_cli: Vec<&'static str>,
}

impl Form {
    /// `head-intended` (HEAD's interfaces, the plan's behaviour), `dive-head` or `dive-v15a` (as
    /// shipped), at `time_scale`.
    pub fn named(name: &str, time_scale: f64) -> Option<Form> {
        use crate::infra::config::Profile;
        let (name, generation, profile) = match name {
            "head-intended" => ("head-intended", Generation::Head, Profile::Intended),
            "dive-head" => ("dive-head", Generation::Head, Profile::DiveHead),
            "dive-v15a" => ("dive-v15a", Generation::V15a, Profile::DiveV15a),
            _ => return None,
        };
        Some(Form {
            name,
            generation,
            behaviour: Behaviour::of(profile, time_scale).shaped_as(generation, time_scale),
            broken_cli: Vec::new(),
        })
    }

    /// The forms the suite poses as.
    pub const NAMES: [&'static str; 3] = ["head-intended", "dive-head", "dive-v15a"];
}

pub struct LiveShaped {
    pub form: Form,
    pub time_scale: f64,
    reference: Arc<Reference>,
    monitoring: ReferenceMonitoring,
    control: Arc<ControlState>,
    _control_server: Arc<ControlledServer>,
    /// The DIVE checkout: `./dive`, the CA, the rule files.
    pub root: PathBuf,
    /// The fake container runtime.
    pub runtime: PathBuf,
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn executable(path: &Path, text: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("{}: {e}", path.display()))
}

impl LiveShaped {
    /// Starts the hub and `spokes` of `form`, monitored, with the fake runtime and checkout under
    /// `dir`.
    pub async fn start(form: Form, spokes: &[&str], time_scale: f64, dir: &Path) -> Result<LiveShaped, String> {
        let reference = Reference::start(
            form.behaviour.clone(),
            time_scale,
            Runtime::Local,
            spokes,
            dir.join("reference"),
        )
        .await?;
        let monitoring = reference.start_monitoring().await?;
        let reference = Arc::new(reference);
        let control = Arc::new(ControlState::new(reference.clone(), form.generation, random_hex()));
        let state = control.clone();
        let control_server = ControlledServer::start(
            "live-shaped control",
            None,
            Arc::new(move || control::router(state.clone())),
            reference.handle()?,
        )?;
        let url = format!("http://127.0.0.1:{}", control_server.addr().port());
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/live-shaped");
        let home = dir.join(format!("live-shaped-{}-{}", form.name, random_hex()));
        let root = home.join("DIVE-V3");
        let runtime = home.join("bin/docker");
        executable(
            &runtime,
            &format!(
                "#!/bin/sh\nexec python3 '{}' --control '{url}' \"$@\"\n",
                fixtures.join("docker.py").display()
            ),
        )?;
        let broken: String = form.broken_cli.iter().map(|b| format!(" --broken '{b}'")).collect();
        let generation = match form.generation {
            Generation::Head => "head",
            Generation::V15a => "v15a",
        };
        executable(
            &root.join("dive"),
            &format!(
                "#!/usr/bin/env bash\nexec python3 '{}' --control '{url}' --generation {generation}{broken} \"$@\"\n",
                fixtures.join("dive.py").display()
            ),
        )?;
        // DIVE's CA where each generation keeps it (so the suite finds it unasked).
        let ca = match form.generation {
            Generation::Head => "certs/ca-bundle/rootCA.pem",
            Generation::V15a => "instances/hub/certs/rootCA.pem",
        };
        write(&root.join(ca), &reference.ca_pem)?;
        // The runbook those rules link, in the checkout: DIVE's rules name files of its repository.
        write(&root.join("fixtures/runbook.md"), &fixture("fixtures/runbook.md")?)?;
        // The rule files where DIVE keeps them, as this Prometheus runs them.
        for fixture_path in RULE_FIXTURES {
            let name = Path::new(fixture_path)
                .file_name()
                .ok_or("rule fixture without a name")?;
            let text = scale_rules(&fixture(fixture_path)?, time_scale);
            write(&root.join(DIVE_RULES_DIR).join(name), &text)?;
        }
        Ok(LiveShaped {
            form,
            time_scale,
            reference,
            monitoring,
            control,
            _control_server: control_server,
            root,
            runtime,
        })
    }

    /// The environment of a live run against this DIVE: the same variables an operator sets.
    /// Prometheus and AlertManager are given on plain HTTP; at HEAD they answer HTTPS only.
    pub fn vars(&self, state_dir: &Path) -> HashMap<String, String> {
        let hub = &self.reference.instances[0];
        let plain = |url: &reqwest::Url| {
            let mut url = url.clone();
            let _ = url.set_scheme("http");
            url.to_string()
        };
        let mut vars: HashMap<String, String> = [
            ("DIVE_TARGET", "live".to_string()),
            ("DIVE_ROOT", self.root.display().to_string()),
            ("DIVE_TIME_SCALE", self.time_scale.to_string()),
            ("HUB_BACKEND_URL", hub.backend_url().to_string()),
            ("HUB_KEYCLOAK_URL", hub.keycloak_url().to_string()),
            ("DIVE_CONTAINER_RUNTIME", self.runtime.display().to_string()),
            ("PROMETHEUS_URL", plain(&self.monitoring.prometheus)),
            ("ALERTMANAGER_URL", plain(&self.monitoring.alertmanager)),
            ("DIVE_STATE_DIR", state_dir.display().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let spokes: Vec<&str> = self
            .reference
            .instances
            .iter()
            .filter(|i| i.code != HUB)
            .map(|i| i.code.as_str())
            .collect();
        if !spokes.is_empty() {
            vars.insert("DIVE_SPOKES".to_string(), spokes.join(","));
        }
        for spoke in self.reference.instances.iter().filter(|i| i.code != HUB) {
            vars.insert(
                format!("DIVE_SPOKE_{}_BACKEND_URL", spoke.code),
                spoke.backend_url().to_string(),
            );
        }
        vars
    }

    /// Every command the fake runtime and `./dive` ran, in order.
    pub fn calls(&self) -> Vec<String> {
        self.control.calls()
    }

    /// The reference behind the names (for a test that checks an effect directly).
    pub fn reference(&self) -> &Reference {
        &self.reference
    }
}
