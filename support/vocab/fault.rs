//! What the suite can do to a DIVE instance, as data: which service, which fault. The fault layer
//! ([`crate::fault`]) applies and undoes these through a target's control; the journal and the
//! ledger record them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A service of one DIVE instance, as the suite can fault it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Service {
    Backend,
    Opa,
    Keycloak,
    Mongodb,
    Kas,
    /// The instance's own cache Redis (`dive-hub-redis`, `dive-spoke-<code>-redis`).
    #[serde(alias = "redis")]
    CacheRedis,
    /// The token revocation store every instance shares: the hub's `redis-blacklist` at 15a319e6,
    /// the monitoring stack's `shared-token-store` at HEAD (contract section 7).
    #[serde(alias = "blacklist-redis")]
    RevocationStore,
    /// The whole instance (`./dive --instance <code> spoke down`).
    Stack,
}

impl Service {
    pub fn name(self) -> &'static str {
        match self {
            Service::Backend => "backend",
            Service::Opa => "opa",
            Service::Keycloak => "keycloak",
            Service::Mongodb => "mongodb",
            Service::Kas => "kas",
            Service::CacheRedis => "cache redis",
            Service::RevocationStore => "revocation store",
            Service::Stack => "whole stack",
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultKind {
    /// Graceful stop (`docker stop`): the port closes.
    Stop,
    /// Abrupt end (`docker kill`): the port closes, connections are cut.
    Kill,
    /// Frozen (`docker pause`): connections are accepted and never answered.
    Pause,
    /// Cut off the network (`docker network disconnect`, as DIVE's own chaos scripts do): the
    /// service keeps running, but its callers cannot reach it.
    Partition,
}

impl FaultKind {
    pub const ALL: [FaultKind; 4] = [FaultKind::Stop, FaultKind::Kill, FaultKind::Pause, FaultKind::Partition];

    /// The verb that applies the fault: the container runtime's own for stop, kill and pause; a
    /// partition is `docker network disconnect` (see the live control).
    pub fn verb(self) -> &'static str {
        match self {
            FaultKind::Stop => "stop",
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::Partition => "partition",
        }
    }

    /// The verb that undoes it: a frozen service is thawed, a stopped or killed one started
    /// again, a partitioned one connected again.
    pub fn undo_verb(self) -> &'static str {
        match self {
            FaultKind::Pause => "unpause",
            FaultKind::Stop | FaultKind::Kill => "start",
            FaultKind::Partition => "reconnect",
        }
    }
}

/// One fault on one service of one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultSpec {
    pub instance: String,
    pub service: Service,
    pub kind: FaultKind,
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.verb())
    }
}

impl fmt::Display for FaultSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} on {}", self.kind.verb(), self.service, self.instance)
    }
}
