//! What each reference profile reproduces: DIVE as the plan intends it, or DIVE as shipped at one
//! of two commits, defects included (contract section 11), plus the reference-only defects that
//! prove a scenario can fail where DIVE happens not to.

use std::time::Duration;

use crate::infra::config::Profile;
use crate::reference::breaker::Quirk;
use crate::reference::standins::{DIVE_SEEDED_RESOURCES, SEEDED_RESOURCES};
use crate::vocab::finding::Defect;

/// The two commits of DIVE the suite knows, where their interfaces differ (contract sections 2,
/// 5, 7, 9): health base, OPA path, listing, decision cache, revocation store, monitoring scheme,
/// CLI grammar, seeding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generation {
    V15a,
    Head,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Behaviour {
    pub profile: Profile,
    pub generation: Generation,
    /// Mount point of the health API (D9: `/api/health` at HEAD).
    pub health_base: &'static str,
    /// OPA decision query path.
    pub opa_decision_path: &'static str,
    /// Keycloak, MongoDB and KAS calls of real requests go through their breakers (not so: D1).
    pub breakers_wired: bool,
    /// Keycloak `down` makes the overall status degraded (not so: D6).
    pub keycloak_down_degrades: bool,
    /// Rejects/transitions counters and DB-pool metrics are written (not so: D2).
    pub resilience_metrics_written: bool,
    /// Revoked tokens are refused on requests (not so: D5).
    pub revocation_enforced: bool,
    /// HEAD's in-process decision cache: per user, resource, clearance and country, for a time
    /// set by the resource's classification (the plan does not forbid it, so `intended` has it).
    pub decision_cache: bool,
    /// How `GET /api/resources` lists: pages at HEAD (and in `intended`), everything at 15a319e6.
    pub listing: Listing,
    /// How long a MongoDB ping keeps trying a stopped server before it reports down.
    pub mongo_ping_patience: Duration,
    /// `up` needs an answer faster than these (MongoDB, OPA, KAS), else `degraded`.
    pub up_within: UpWithin,
    pub breaker_quirk: Quirk,
    /// R1: authorization fails while the cache Redis is down.
    pub cache_outage_fails_authorization: bool,
    /// R3: OPA decisions bypass the opa breaker.
    pub opa_breaker_bypassed: bool,
    /// R4: this spoke keeps its own blacklist store instead of the hub's shared one.
    pub private_blacklist: Option<&'static str>,
    /// R5: the hub's federation health never marks a silent spoke unhealthy.
    pub heartbeats_ignored: bool,
    /// R18: once the hub marks a spoke unhealthy, it ignores that spoke's heartbeats.
    pub unhealthy_spokes_stick: bool,
    /// R17: OPA down leaves the overall status healthy.
    pub opa_down_ignored: bool,
    /// R6: backends fetch JWKS on every verification (no cache), so tokens fail with Keycloak down.
    pub jwks_uncached: bool,
    /// R7: this spoke does not accept tokens of the hub's issuer.
    pub hub_issuer_untrusted_on: Option<&'static str>,
    /// R9: when the opa breaker rejects a call, the backend still waits OPA's client timeout
    /// before it falls back.
    pub open_breaker_waits: bool,
    /// R10: while the opa breaker is not CLOSED, the listing (which never asks OPA) waits OPA's
    /// client timeout too.
    pub failure_slows_listing: bool,
    /// D11: tokens are validated through Keycloak's introspection, whose answer is cached under
    /// the token's first 16 characters and its issuer (refusals too); the issuer's keys are used
    /// only when introspection fails. Otherwise the signature is verified first, as the plan needs.
    pub introspection_cache_by_prefix: bool,
    /// R12: this spoke accepts tokens without verifying their signature while its Keycloak does
    /// not answer.
    pub unverified_while_keycloak_down: Option<&'static str>,
    /// R13: tokens with `alg: none` are accepted unverified.
    pub alg_none_accepted: bool,
    /// R14: a token's `exp` is not checked.
    pub expiry_unchecked: bool,
    /// R15: a token of an issuer the backend does not trust is verified with the key its own
    /// header carries (`jwk`).
    pub header_key_trusted: bool,
    /// Prometheus's `rule_files` glob reaches the rule files (not so: D3).
    pub rules_loaded: bool,
    /// AlertManager has the plan's CircuitBreakerOpen -> HighCircuitBreakerRejects inhibition
    /// (not so: D4).
    pub cb_inhibition: bool,
    /// Prometheus also scrapes spoke jobs on stale ports, where nothing answers (D8).
    pub stale_spoke_targets: bool,
    /// Prometheus and AlertManager serve HTTPS (HEAD's `web-config.yml`).
    pub https_monitoring: bool,
    /// Resources seeded per instance.
    pub seeded_resources: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UpWithin {
    pub mongodb: Duration,
    pub opa: Duration,
    pub kas: Duration,
}

/// How `GET /api/resources` lists (contract section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// `page` and `pageSize` (at most 100); the clearance filter runs after paging (HEAD).
    Paged,
    /// The whole collection, filtered by clearance (15a319e6).
    Whole,
}

/// The spoke that keeps a private blacklist under reference defect R4.
pub const PRIVATE_BLACKLIST_SPOKE: &str = "FRA";

/// The spoke that does not trust the hub's issuer under reference defect R7.
pub const UNTRUSTING_SPOKE: &str = "DEU";

/// The spoke that stops verifying signatures while its Keycloak is down, under reference defect
/// R12.
pub const UNVERIFYING_SPOKE: &str = "TST";

impl Behaviour {
    /// The profile as DIVE has it, at `time_scale`.
    pub fn of(profile: Profile, time_scale: f64) -> Behaviour {
        let ms = Duration::from_millis;
        let v15a_up = UpWithin {
            mongodb: ms(100),
            opa: ms(100),
            kas: ms(200),
        };
        let head_up = UpWithin {
            mongodb: ms(500),
            opa: ms(300),
            kas: ms(200),
        };
        let shipped = profile != Profile::Intended;
        let generation = if profile == Profile::DiveHead {
            Generation::Head
        } else {
            Generation::V15a
        };
        Behaviour {
            profile,
            generation,
            health_base: if profile == Profile::DiveHead {
                "/api/health"
            } else {
                "/health"
            },
            opa_decision_path: if profile == Profile::DiveHead {
                "/v1/data/dive/authz"
            } else {
                "/v1/data/dive/authz/decision"
            },
            breakers_wired: !shipped,
            keycloak_down_degrades: !shipped,
            resilience_metrics_written: !shipped,
            revocation_enforced: profile != Profile::DiveV15a,
            decision_cache: profile != Profile::DiveV15a,
            listing: if profile == Profile::DiveV15a {
                Listing::Whole
            } else {
                Listing::Paged
            },
            mongo_ping_patience: Duration::from_secs(if profile == Profile::DiveV15a { 60 } else { 5 })
                .mul_f64(time_scale),
            up_within: if profile == Profile::DiveV15a { v15a_up } else { head_up },
            breaker_quirk: Quirk::None,
            cache_outage_fails_authorization: false,
            opa_breaker_bypassed: false,
            private_blacklist: None,
            heartbeats_ignored: false,
            unhealthy_spokes_stick: false,
            opa_down_ignored: false,
            jwks_uncached: false,
            hub_issuer_untrusted_on: None,
            open_breaker_waits: false,
            failure_slows_listing: false,
            introspection_cache_by_prefix: shipped,
            unverified_while_keycloak_down: None,
            alg_none_accepted: false,
            expiry_unchecked: false,
            header_key_trusted: false,
            rules_loaded: !shipped,
            cb_inhibition: !shipped,
            stale_spoke_targets: shipped,
            https_monitoring: false,
            seeded_resources: SEEDED_RESOURCES,
        }
    }

    /// The same DIVE with the interfaces of `generation` (for the reference posing as a live DIVE
    /// of that commit): its health base, OPA path, listing, decision cache, health timings, and at
    /// HEAD its HTTPS monitoring.
    pub fn shaped_as(mut self, generation: Generation, time_scale: f64) -> Behaviour {
        let head = generation == Generation::Head;
        let reference = Behaviour::of(if head { Profile::DiveHead } else { Profile::DiveV15a }, time_scale);
        self.generation = generation;
        self.health_base = reference.health_base;
        self.opa_decision_path = reference.opa_decision_path;
        self.listing = reference.listing;
        self.decision_cache = head;
        self.mongo_ping_patience = reference.mongo_ping_patience;
        self.up_within = reference.up_within;
        self.https_monitoring = head;
        // At DIVE's real timers traffic needs as many resources as DIVE seeds to find decisions
        // its cache does not hold (the decision cache keeps one for up to 120 s).
        self.seeded_resources = DIVE_SEEDED_RESOURCES;
        self
    }

    /// Adds a defect: a reference-only one, or one of DIVE's on its own (so a self-check can show
    /// that defect's evidence without the others of its profile in the way).
    pub fn with(mut self, defect: Defect) -> Behaviour {
        match defect {
            Defect::D1 => self.breakers_wired = false,
            Defect::D2 => self.resilience_metrics_written = false,
            Defect::D3 => self.rules_loaded = false,
            Defect::D4 => self.cb_inhibition = false,
            Defect::D5 => self.revocation_enforced = false,
            Defect::D6 => self.keycloak_down_degrades = false,
            Defect::D8 => self.stale_spoke_targets = true,
            Defect::D11 => self.introspection_cache_by_prefix = true,
            Defect::R1 => self.cache_outage_fails_authorization = true,
            Defect::R2 => self.breaker_quirk = Quirk::StuckHalfOpen,
            Defect::R8 => self.breaker_quirk = Quirk::ClosesOnTimer,
            Defect::R11 => self.breaker_quirk = Quirk::SticksOpen,
            Defect::R16 => self.breaker_quirk = Quirk::OffDivesNumbers,
            Defect::R17 => self.opa_down_ignored = true,
            Defect::R18 => self.unhealthy_spokes_stick = true,
            Defect::R3 => self.opa_breaker_bypassed = true,
            Defect::R4 => self.private_blacklist = Some(PRIVATE_BLACKLIST_SPOKE),
            Defect::R5 => self.heartbeats_ignored = true,
            Defect::R6 => self.jwks_uncached = true,
            Defect::R7 => self.hub_issuer_untrusted_on = Some(UNTRUSTING_SPOKE),
            Defect::R9 => self.open_breaker_waits = true,
            Defect::R10 => self.failure_slows_listing = true,
            Defect::R12 => self.unverified_while_keycloak_down = Some(UNVERIFYING_SPOKE),
            Defect::R13 => self.alg_none_accepted = true,
            Defect::R14 => self.expiry_unchecked = true,
            Defect::R15 => self.header_key_trusted = true,
            other => panic!("{other} is a trait of a DIVE generation: pick the profile that ships it"),
        }
        self
    }

    /// The defects of DIVE this behaviour reproduces.
    pub fn defects(&self) -> Vec<Defect> {
        let mut out = Vec::new();
        if !self.breakers_wired {
            out.push(Defect::D1);
        }
        if !self.resilience_metrics_written {
            out.push(Defect::D2);
        }
        if !self.rules_loaded {
            out.push(Defect::D3);
        }
        if !self.cb_inhibition {
            out.push(Defect::D4);
        }
        if !self.revocation_enforced {
            out.push(Defect::D5);
        }
        if !self.keycloak_down_degrades {
            out.push(Defect::D6);
        }
        if self.stale_spoke_targets {
            out.push(Defect::D8);
        }
        if self.health_base == "/api/health" {
            out.push(Defect::D9);
        }
        if self.introspection_cache_by_prefix {
            out.push(Defect::D11);
        }
        if self.cache_outage_fails_authorization {
            out.push(Defect::R1);
        }
        if self.breaker_quirk == Quirk::StuckHalfOpen {
            out.push(Defect::R2);
        }
        if self.breaker_quirk == Quirk::ClosesOnTimer {
            out.push(Defect::R8);
        }
        if self.breaker_quirk == Quirk::SticksOpen {
            out.push(Defect::R11);
        }
        if self.breaker_quirk == Quirk::OffDivesNumbers {
            out.push(Defect::R16);
        }
        if self.opa_down_ignored {
            out.push(Defect::R17);
        }
        if self.unhealthy_spokes_stick {
            out.push(Defect::R18);
        }
        if self.opa_breaker_bypassed {
            out.push(Defect::R3);
        }
        if self.private_blacklist.is_some() {
            out.push(Defect::R4);
        }
        if self.heartbeats_ignored {
            out.push(Defect::R5);
        }
        if self.jwks_uncached {
            out.push(Defect::R6);
        }
        if self.hub_issuer_untrusted_on.is_some() {
            out.push(Defect::R7);
        }
        if self.open_breaker_waits {
            out.push(Defect::R9);
        }
        if self.failure_slows_listing {
            out.push(Defect::R10);
        }
        if self.unverified_while_keycloak_down.is_some() {
            out.push(Defect::R12);
        }
        if self.alg_none_accepted {
            out.push(Defect::R13);
        }
        if self.expiry_unchecked {
            out.push(Defect::R14);
        }
        if self.header_key_trusted {
            out.push(Defect::R15);
        }
        out
    }
}
