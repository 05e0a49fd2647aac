//! The controls of a live DIVE: faults through the container runtime by DIVE's container names
//! (the CLI cannot stop one service, contract section 9), whole spokes through `./dive`, every
//! command echoed; the guard verifies each effect.

use std::time::Duration;

use crate::fault::ledger::{Change, UNDO_DEADLINE};
use crate::fault::{Control, Fut};
use crate::infra::dive::Dive;
use crate::infra::exec::Exec;
use crate::vocab::coalition::{HUB, is_hub};
use crate::vocab::fault::{FaultSpec, Service};

/// A single service answers again within this after its container starts.
const SERVICE_RESTORE_DEADLINE: Duration = Duration::from_secs(120);

/// The container runtime and the CLI of a live DIVE.
pub struct LiveControl {
    runtime: String,
    /// `./dive`, for faults on a whole spoke (`spoke down` / `spoke up`) and deploys.
    dive: Dive,
}

/// DIVE's container name of a service (contract section 1).
pub fn container_name(instance: &str, service: Service) -> String {
    let suffix = match service {
        Service::Backend | Service::Stack => "backend",
        Service::Opa => "opa",
        Service::Keycloak => "keycloak",
        Service::Mongodb => "mongodb",
        Service::Kas => "kas",
        Service::CacheRedis => "redis",
        Service::RevocationStore => "redis-blacklist",
    };
    if is_hub(instance) || service == Service::RevocationStore {
        format!("dive-hub-{suffix}")
    } else {
        format!("dive-spoke-{}-{suffix}", instance.to_lowercase())
    }
}

impl LiveControl {
    pub fn new(runtime: &str, dive: Dive) -> LiveControl {
        LiveControl {
            runtime: runtime.to_string(),
            dive,
        }
    }

    /// `./dive [--instance <code>] spoke <verb>`.
    pub fn spoke_command(&self, instance: &str, verb: &str) -> Exec {
        self.dive
            .clone()
            .instance(instance)
            .args(["spoke", verb])
            .deadline(UNDO_DEADLINE)
            .exec()
    }

    /// The commands that apply and undo `spec`.
    pub fn commands(&self, spec: &FaultSpec) -> (Exec, Exec) {
        if spec.service == Service::Stack {
            return (
                self.spoke_command(&spec.instance, "down"),
                self.spoke_command(&spec.instance, "up"),
            );
        }
        let container = container_name(&spec.instance, spec.service);
        (
            Exec::new(&self.runtime).args([spec.kind.verb(), &container]),
            Exec::new(&self.runtime).args([spec.kind.undo_verb(), &container]),
        )
    }

    fn lockout_command(&self, user: &str) -> Exec {
        let store = container_name(HUB, Service::RevocationStore);
        Exec::new(&self.runtime).args(["exec", &store, "redis-cli", "DEL", &format!("user-revoked:{user}")])
    }
}

impl Control for LiveControl {
    fn apply<'a>(&'a self, fault: &'a FaultSpec) -> Fut<'a, Result<(), String>> {
        Box::pin(async move { self.commands(fault).0.must_succeed().await.map(|_| ()) })
    }

    fn restore<'a>(&'a self, fault: &'a FaultSpec) -> Fut<'a, Result<(), String>> {
        Box::pin(async move { self.commands(fault).1.must_succeed().await.map(|_| ()) })
    }

    /// A running (and, where it has a healthcheck, healthy) container.
    fn answers<'a>(&'a self, fault: &'a FaultSpec) -> Fut<'a, Result<(), String>> {
        Box::pin(async move {
            let format = "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}";
            let out = Exec::new(&self.runtime)
                .args(["inspect", "-f", format, &container_name(&fault.instance, fault.service)])
                .deadline(Duration::from_secs(20))
                .must_succeed()
                .await?;
            let state = out.stdout.trim().to_string();
            if state == "running" || state == "running healthy" {
                Ok(())
            } else {
                Err(state)
            }
        })
    }

    fn restore_deadline(&self, fault: &FaultSpec) -> Duration {
        if fault.service == Service::Stack {
            UNDO_DEADLINE
        } else {
            SERVICE_RESTORE_DEADLINE
        }
    }

    fn undo_commands(&self, change: &Change) -> Option<Vec<Vec<String>>> {
        match change {
            Change::Fault(spec) => Some(vec![self.commands(spec).1.argv_vec()]),
            Change::Lockout { user } => Some(vec![self.lockout_command(user).argv_vec()]),
            Change::Container { .. } => None,
        }
    }

    fn lift_lockout<'a>(&'a self, user: &'a str) -> Fut<'a, Result<(), String>> {
        Box::pin(async move { self.lockout_command(user).must_succeed().await.map(|_| ()) })
    }
}
