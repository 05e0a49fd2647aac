//! Layer 4, the deployment under test and what watches it: its instances (hub first) as API
//! clients, the traffic that moves DIVE's breakers, the live target's controls, the dry run, and
//! the monitoring pair with its pipeline checks. Tests talk to [`Deployment`] and
//! [`instance::Instance`]; who starts a deployment (the reference, or a live DIVE through its
//! configuration) is decided above this layer, in `scenario::start`.

pub mod instance;
pub mod live;
pub mod load;
pub mod monitors;
pub mod promtool;
pub mod rehearsal;
pub mod silences;
pub mod traffic;

use std::any::Any;
use std::future::Future;

use futures_util::StreamExt;
use tokio::sync::OnceCell;

use crate::fault::ledger::{Ledger, restore_on_signal};
use crate::infra::config::Config;
use crate::infra::dive::Dive;
use crate::vocab::finding::Finding;
use instance::Instance;
use monitors::Monitors;

/// At most this many instances are asked at once: a coalition of 31 spokes then costs about what
/// three do, and a live deployment never sees a burst of the suite's requests.
pub const AT_ONCE: usize = 8;

/// `ask` of every instance in `instances`, up to [`AT_ONCE`] at a time; the answers in their order.
pub async fn ask_each<'a, T, F>(instances: &[&'a Instance], ask: impl FnMut(&'a Instance) -> F) -> Vec<T>
where
    F: Future<Output = T>,
{
    futures_util::stream::iter(instances.iter().copied())
        .map(ask)
        .buffered(AT_ONCE)
        .collect()
        .await
}

/// What a deployment is started with, beyond the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub spokes: bool,
    pub monitored: bool,
}

impl Shape {
    pub const HUB: Shape = Shape {
        spokes: false,
        monitored: false,
    };
    pub const FEDERATION: Shape = Shape {
        spokes: true,
        monitored: false,
    };
    pub const MONITORED: Shape = Shape {
        spokes: false,
        monitored: true,
    };
}

/// The deployment under test.
pub struct Deployment {
    /// What it is, for reports: `reference (intended, Local runtime, time scale 0.1)`.
    pub target: String,
    /// DIVE's timers on this deployment, relative to DIVE's own (1 on a live DIVE).
    pub time_scale: f64,
    pub(crate) instances: Vec<Instance>,
    /// What starting the deployment found wrong with its coalition (`DIVE_SPOKES=all`: a spoke
    /// running but not registered with the hub, or registered but not running); 5.1-deploy
    /// reports them.
    pub(crate) coalition: Vec<Finding>,
    /// Prometheus and AlertManager: always for live, on request for the reference.
    pub(crate) monitors: Option<Monitors>,
    /// The reference deployment's CA certificate (PEM), to point other clients at it.
    pub(crate) ca_pem: Option<String>,
    /// `./dive`, when the user allowed a clean-slate deploy through it (`DIVE_LIVE_DEPLOY=1`).
    pub(crate) cli: Option<Dive>,
    /// A live DIVE (not the reference, nor a rehearsal on one).
    pub(crate) live: bool,
    /// A live DIVE's checkout (`DIVE_ROOT`).
    pub(crate) dive_root: Option<std::path::PathBuf>,
    /// Whatever must live as long as the deployment: the reference's processes, the live lock.
    pub(crate) keep: Vec<Box<dyn Any + Send + Sync>>,
}

static SWEPT: OnceCell<()> = OnceCell::const_new();

/// Undoes what a killed earlier run left behind; once per process, before anything else.
pub async fn sweep_ledger(config: &Config) {
    SWEPT
        .get_or_init(|| async {
            let ledger = Ledger::new(&config.state_dir);
            if config.dry_run {
                for entry in ledger.orphans() {
                    eprintln!(
                        "DRY RUN: the ledger lists {} left behind; a real run restores it first",
                        entry.change
                    );
                }
                return;
            }
            for line in ledger.sweep().await {
                eprintln!("{line}");
            }
            restore_on_signal(ledger);
        })
        .await;
}

impl Deployment {
    pub fn hub(&self) -> &Instance {
        &self.instances[0]
    }

    /// What starting the deployment found wrong with its coalition (see `DIVE_SPOKES=all`).
    pub fn coalition_findings(&self) -> &[Finding] {
        &self.coalition
    }

    pub fn spokes(&self) -> &[Instance] {
        &self.instances[1..]
    }

    pub fn instances(&self) -> &[Instance] {
        &self.instances
    }

    /// The instance with this code, as a precondition failure when there is none.
    pub fn instance(&self, code: &str) -> Result<&Instance, Finding> {
        self.instances
            .iter()
            .find(|i| i.code.eq_ignore_ascii_case(code))
            .ok_or_else(|| {
                Finding::precondition(format!("no instance {code} in this deployment; add it to DIVE_SPOKES"))
            })
    }

    /// A live DIVE's checkout (`DIVE_ROOT`), where its rules, runbooks and CLI are.
    pub fn dive_root(&self) -> Option<&std::path::Path> {
        self.dive_root.as_deref()
    }

    /// Whether this is a live DIVE: reference-only defects are never named on one.
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// The reference deployment's CA certificate (PEM), to point other clients at it.
    pub fn reference_ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// Keeps `more` alive as long as the deployment (what a deployment stands on).
    pub fn keep_also(&mut self, more: Box<dyn Any + Send + Sync>) {
        self.keep.push(more);
    }

    /// Something this deployment stands on, of type `T` (a test reads what its target did).
    pub fn kept<T: 'static>(&self) -> Option<&T> {
        self.keep.iter().find_map(|k| k.downcast_ref::<T>())
    }

    /// Prometheus and AlertManager of this deployment; a reference deployment has them only when
    /// it was started monitored.
    pub fn monitors(&self) -> Result<&Monitors, Finding> {
        self.monitors.as_ref().ok_or_else(|| {
            Finding::precondition(
                "this deployment was started without monitoring; use Deployment::from_config_monitored",
            )
        })
    }
}
