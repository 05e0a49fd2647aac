//! Where a scenario's deployment comes from: the configured target (the reference, a live DIVE,
//! or a dry-run rehearsal of either), or a reference of a chosen profile for a self-check. The one
//! module above both the deployment layer and the reference deployment.

use std::sync::Arc;

use crate::deployment::live::control::{LiveControl, Store};
use crate::deployment::rehearsal::Rehearsal;
use crate::deployment::{Deployment, Shape};
use crate::infra::config::{Config, Profile, Runtime, Target, must_config};
use crate::infra::dive::Dive;
use crate::infra::os::docker_daemon_answers;
use crate::infra::os::random_hex;
use crate::reference;
use crate::reference::behaviour::Behaviour;
use crate::reference::live_shaped::{Form, LiveShaped};
use crate::vocab::finding::{Defect, Finding};

impl Deployment {
    /// The hub of the deployment the configuration names.
    pub async fn from_config() -> Result<Deployment, Finding> {
        configured(Shape::HUB).await
    }

    /// The hub and the configured spokes (`DIVE_SPOKES`) of the deployment the configuration names.
    pub async fn federation() -> Result<Deployment, Finding> {
        configured(Shape::FEDERATION).await
    }

    /// The deployment the configuration names, with Prometheus and AlertManager (phase 4.3).
    pub async fn from_config_monitored() -> Result<Deployment, Finding> {
        configured(Shape::MONITORED).await
    }

    /// The live hub described by `config` (which need not be this process's configuration).
    pub async fn live_with(config: &Config) -> Result<Deployment, Finding> {
        match &config.target {
            Target::Live(live) => Deployment::live(config, live, false).await,
            Target::Reference(_) => Err(Finding::precondition("not a live configuration")),
        }
    }

    /// A reference hub of `profile`, whatever the configured target (for self-checks).
    pub async fn reference(profile: Profile) -> Result<Deployment, Finding> {
        Deployment::reference_with_defects(profile, &[]).await
    }

    /// A monitored reference hub of `profile`, whatever the configured target (for self-checks).
    pub async fn reference_monitored(profile: Profile) -> Result<Deployment, Finding> {
        reference_behaving(behaviour_with(profile, &[]), Shape::MONITORED).await
    }

    /// A monitored reference hub of `profile` with defects added (for self-checks).
    pub async fn reference_monitored_with(profile: Profile, defects: &[Defect]) -> Result<Deployment, Finding> {
        reference_behaving(behaviour_with(profile, defects), Shape::MONITORED).await
    }

    /// A reference hub of `profile` with reference-only defects added (for self-checks).
    pub async fn reference_with_defects(profile: Profile, defects: &[Defect]) -> Result<Deployment, Finding> {
        reference_behaving(behaviour_with(profile, defects), Shape::HUB).await
    }

    /// A reference hub and the configured spokes, of `profile` plus reference-only defects.
    pub async fn reference_federation(profile: Profile, defects: &[Defect]) -> Result<Deployment, Finding> {
        reference_behaving(behaviour_with(profile, defects), Shape::FEDERATION).await
    }
}

async fn configured(shape: Shape) -> Result<Deployment, Finding> {
    let config = must_config();
    if config.dry_run {
        return rehearsal(config, shape).await;
    }
    match &config.target {
        Target::Reference(r) => {
            let runtime = r.runtime.unwrap_or_else(|| {
                if docker_daemon_answers(&config.docker_socket) {
                    Runtime::Docker
                } else {
                    Runtime::Local
                }
            });
            let behaviour = Behaviour::of(r.profile, config.reference_scale());
            reference::deploy::deployment(behaviour, runtime, shape).await
        }
        Target::Live(live) => Deployment::live(config, live, shape.spokes).await,
    }
}

/// `DIVE_DRY_RUN=1`: the scenario runs on a private reference deployment, and every fault shows
/// the command it would run on the configured target instead of running it there.
async fn rehearsal(config: &Config, shape: Shape) -> Result<Deployment, Finding> {
    let (target, live) = match &config.target {
        Target::Live(live) => (
            format!("live DIVE at {}", live.hub_backend),
            Some(LiveControl::new(
                &live.container_runtime,
                Dive::new(&live.root, &config.dive_leaky_vars),
                Store {
                    container: "<the revocation store the hub backend names>".to_string(),
                    tls: false,
                },
                config.time_scale,
            )),
        ),
        Target::Reference(r) => (format!("the reference deployment ({})", r.profile.name()), None),
    };
    let behaviour = Behaviour::of(Profile::Intended, config.reference_scale());
    let mut deployment = reference::deploy::deployment(behaviour, Runtime::Local, shape).await?;
    let rehearsal = Arc::new(Rehearsal { live });
    for inst in &mut deployment.instances {
        inst.rehearsal = Some(rehearsal.clone());
    }
    deployment.target = format!(
        "DRY RUN of {target}: nothing is done to it; each step is rehearsed on a private reference deployment at time scale {}",
        deployment.time_scale
    );
    Ok(deployment)
}

async fn reference_behaving(behaviour: Behaviour, shape: Shape) -> Result<Deployment, Finding> {
    let runtime = match &must_config().target {
        Target::Reference(r) => r.runtime.unwrap_or(Runtime::Local),
        Target::Live(_) => Runtime::Local,
    };
    reference::deploy::deployment(behaviour, runtime, shape).await
}

fn behaviour_with(profile: Profile, defects: &[Defect]) -> Behaviour {
    defects
        .iter()
        .fold(Behaviour::of(profile, must_config().reference_scale()), |b, d| {
            b.with(*d)
        })
}

impl Deployment {
    /// The reference posing as a live DIVE of `form` (see [`LiveShaped`]), seen through the live
    /// target's code exactly as an operator's DIVE would be: hub and spokes, monitored. `adjust`
    /// changes the form first (a reference defect, a broken CLI command).
    pub async fn live_shaped(form: &str, adjust: impl FnOnce(&mut Form)) -> Result<Deployment, Finding> {
        Deployment::live_shaped_with(form, adjust, &[]).await
    }

    /// [`Deployment::live_shaped`], with more variables in the live configuration
    /// (`DIVE_LIVE_DEPLOY=1`, a user).
    pub async fn live_shaped_with(
        form: &str,
        adjust: impl FnOnce(&mut Form),
        extra: &[(&str, &str)],
    ) -> Result<Deployment, Finding> {
        let config = must_config();
        let scale = config.reference_scale();
        let mut form =
            Form::named(form, scale).ok_or_else(|| Finding::precondition(format!("no live-shaped form {form}")))?;
        adjust(&mut form);
        let dir = config.state_dir.join("live-shaped").join(random_hex());
        let spokes: Vec<&str> = config.spokes.iter().map(String::as_str).collect();
        let shaped = LiveShaped::start(form, &spokes, scale, &dir)
            .await
            .map_err(Finding::precondition)?;
        let mut vars = shaped.vars(&dir.join("state"));
        vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let live_config = Config::from_vars(&vars).map_err(|e| Finding::precondition(e.to_string()))?;
        let Target::Live(live) = &live_config.target else {
            return Err(Finding::precondition("a live-shaped DIVE yields a live configuration"));
        };
        let mut deployment = Deployment::live(&live_config, live, true).await?;
        deployment.target = format!(
            "{} (the reference posing as live DIVE, {})",
            deployment.target, shaped.form.name
        );
        deployment.keep_also(Box::new(shaped));
        Ok(deployment)
    }
}
