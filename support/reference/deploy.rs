//! The reference deployment as the layers below see it: a [`Deployment`] whose instances are the
//! reference's processes, faulted through the [`Control`] the reference implements.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::deployment::instance::{Credentials, Instance};
use crate::deployment::monitors::Monitors;
use crate::deployment::{Deployment, Shape, ask_each, sweep_ledger};
use crate::fault::ledger::{Change, Ledger};
use crate::fault::{Control, FaultError, Fut};
use crate::infra::config::{Runtime, Secret, must_config};
use crate::infra::http::Http;
use crate::infra::poll::eventually;
use crate::reference::Reference;
use crate::reference::behaviour::Behaviour;
use crate::vocab::fault::FaultSpec;
use crate::vocab::finding::Finding;
use crate::vocab::health::Overall;
use crate::vocab::units::secs;

impl Control for Reference {
    fn apply<'a>(&'a self, fault: &'a FaultSpec) -> Fut<'a, Result<(), FaultError>> {
        Box::pin(async move { Reference::apply(self, fault).await.map_err(FaultError::Failed) })
    }

    fn restore<'a>(&'a self, fault: &'a FaultSpec) -> Fut<'a, Result<(), String>> {
        Box::pin(Reference::restore(self, fault))
    }

    fn answers<'a>(&'a self, fault: &'a FaultSpec) -> Fut<'a, Result<(), String>> {
        Box::pin(Reference::answers(self, fault))
    }

    fn restore_deadline(&self, _: &FaultSpec) -> Duration {
        Duration::from_secs(120)
    }

    fn undo_commands(&self, _: &Change) -> Option<Vec<Vec<String>>> {
        // Every process of the reference is a child of the test process and dies with it.
        None
    }

    fn lift_lockout<'a>(&'a self, user: &'a str) -> Fut<'a, Result<(), String>> {
        Box::pin(self.clear_user_revocation(user))
    }
}

/// Starts a reference deployment of `behaviour` in `shape` and waits until every instance is
/// healthy (and its monitoring ready).
pub async fn deployment(behaviour: Behaviour, runtime: Runtime, shape: Shape) -> Result<Deployment, Finding> {
    let config = must_config();
    sweep_ledger(config).await;
    let started = Instant::now();
    let scale = config.reference_scale();
    // Name the reference-only defects a self-check added, so its journal says what it ran.
    let added: Vec<String> = behaviour
        .defects()
        .iter()
        .filter(|d| d.reference_only())
        .map(|d| format!(" + {d}"))
        .collect();
    let profile = format!("{}{}", behaviour.profile.name(), added.concat());
    let spokes: Vec<&str> = if shape.spokes {
        config.spokes.iter().map(String::as_str).collect()
    } else {
        Vec::new()
    };
    let reference = Reference::start(behaviour, scale, runtime, &spokes, config.state_dir.join("reference"))
        .await
        .map_err(Finding::precondition)?;
    let http = Http::trusting(reference.ca_pem.as_bytes()).map_err(Finding::precondition)?;
    let health_base = reference.behaviour.health_base.to_string();
    let monitors = if shape.monitored {
        let started = reference.start_monitoring().await.map_err(Finding::precondition)?;
        let (prometheus, alertmanager, rules) = (
            started.prometheus.clone(),
            started.alertmanager.clone(),
            started.rule_files.clone(),
        );
        Some(Monitors::started(
            prometheus,
            alertmanager,
            http.clone(),
            rules,
            scale,
            Box::new(started),
        ))
    } else {
        None
    };
    let ca_pem = reference.ca_pem.clone();
    let sites: Vec<_> = reference
        .instances
        .iter()
        .map(|i| (i.code.clone(), i.backend_url(), i.keycloak_url(), i.realm.clone()))
        .collect();
    let reference = Arc::new(reference);
    let control: Arc<dyn Control> = reference.clone();
    let ledger = Ledger::new(&config.state_dir);
    let instances = sites
        .into_iter()
        .map(|(code, backend, keycloak, realm)| Instance {
            credentials: Credentials {
                realm: realm.realm.clone(),
                client_id: realm.client_id.clone(),
                client_secret: Secret::new(realm.client_secret.clone()),
                user: format!("{}1", realm.user_prefix),
                password: Secret::new(realm.password.clone()),
            },
            code,
            backend,
            keycloak,
            health_base: health_base.clone(),
            time_scale: scale,
            http: http.clone(),
            decisions: Default::default(),
            control: control.clone(),
            ledger: ledger.clone(),
            rehearsal: None,
        })
        .collect();
    let deployment = Deployment {
        target: format!("reference ({profile}, {runtime:?} runtime, time scale {scale})"),
        time_scale: scale,
        instances,
        monitors,
        ca_pem: Some(ca_pem),
        cli: None,
        live: false,
        dive_root: None,
        keep: vec![Box::new(reference)],
        coalition: Vec::new(),
    };
    let instances: Vec<&Instance> = deployment.instances().iter().collect();
    let healthy = ask_each(&instances, |inst| async move {
        let what = format!("{} backend healthy", inst.code);
        eventually(&what, Duration::from_millis(50), Duration::from_secs(30), || async {
            match inst.detailed().await {
                Ok(d) if d.status == Overall::Healthy => Ok(()),
                Ok(d) => Err(d.summary()),
                Err(e) => Err(e.to_string()),
            }
        })
        .await
    });
    for up in healthy.await {
        up.map_err(|t| Finding::precondition(format!("the reference deployment did not come up: {t}")))?;
    }
    if let Ok(m) = deployment.monitors() {
        m.wait_ready().await?;
    }
    eprintln!("started {} in {}", deployment.target, secs(started.elapsed()));
    Ok(deployment)
}
