//! Chaos schedules: a bounded sequence of faults on services of the hub and spokes, with start
//! times, durations and overlaps, generated from a seed so a failing run replays exactly. A
//! schedule is data: shown before it runs, kept in the journal, and reduced by the shrinker.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::rng::Rng;
use crate::vocab::fault::{FaultKind, Service};
use crate::vocab::units::secs;

/// What a schedule may contain. Kept with the schedule, so the shrinker keeps its reductions
/// inside the same bounds and the journal shows what the seed was drawn against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Instance codes (`USA`, `FRA`, ...).
    pub instances: Vec<String>,
    pub services: Vec<Service>,
    /// How faults may disrupt their service (stop, kill, pause, partition).
    pub kinds: Vec<FaultKind>,
    pub max_faults: usize,
    /// The most faults active at any one time.
    pub max_concurrent: usize,
    pub min_duration: Duration,
    pub max_duration: Duration,
    /// Every fault ends by then.
    pub total: Duration,
    /// Lets OPA and MongoDB of one instance (the services that make DIVE unhealthy) be down at once.
    pub allow_all_critical: bool,
}

/// One fault of a schedule; times are relative to the start of the schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledFault {
    /// Stable through shrinking, so a reduced schedule still names the faults of the original.
    pub id: usize,
    pub instance: String,
    pub service: Service,
    pub kind: FaultKind,
    pub start: Duration,
    pub duration: Duration,
}

impl ScheduledFault {
    pub fn end(&self) -> Duration {
        self.start + self.duration
    }

    /// True while the fault is applied: from its start, up to but not including its end.
    pub fn active_at(&self, t: Duration) -> bool {
        self.start <= t && t < self.end()
    }

    pub fn overlaps(&self, other: &ScheduledFault) -> bool {
        self.start < other.end() && other.start < self.end()
    }

    /// True when both faults disrupt the same service. Every instance uses the hub's token
    /// blacklist, so a blacklist fault on any instance is a fault on the one shared store.
    pub fn same_target(&self, other: &ScheduledFault) -> bool {
        self.service == other.service && (self.instance == other.instance || self.service == Service::RevocationStore)
    }

    /// The critical services (OPA = 1, MongoDB = 2) this fault takes down; the whole stack takes
    /// both.
    fn critical_mask(&self) -> u8 {
        match self.service {
            Service::Opa => OPA,
            Service::Mongodb => MONGODB,
            Service::Stack => ALL_CRITICAL,
            _ => 0,
        }
    }
}

const OPA: u8 = 1;
const MONGODB: u8 = 2;
const ALL_CRITICAL: u8 = OPA | MONGODB;

impl fmt::Display for ScheduledFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "#{} {} {} on {} from {} to {}",
            self.id,
            self.kind,
            self.service,
            self.instance,
            secs(self.start),
            secs(self.end())
        )
    }
}

impl Limits {
    /// True when `candidate` can join `faults` without breaking a limit.
    pub fn admits(&self, faults: &[ScheduledFault], candidate: &ScheduledFault) -> bool {
        if candidate.duration.is_zero() || candidate.end() > self.total {
            return false;
        }
        let overlapping: Vec<&ScheduledFault> = faults.iter().filter(|f| f.overlaps(candidate)).collect();
        if overlapping.iter().any(|f| f.same_target(candidate)) {
            return false;
        }
        // The set of active faults only grows at a start, so checking the candidate's start and
        // every start inside it covers each moment the candidate is active.
        let mut moments = vec![candidate.start];
        moments.extend(overlapping.iter().map(|f| f.start).filter(|&s| s > candidate.start));
        moments.into_iter().all(|t| {
            let active: Vec<&&ScheduledFault> = overlapping.iter().filter(|f| f.active_at(t)).collect();
            let critical = active
                .iter()
                .filter(|f| f.instance == candidate.instance)
                .fold(candidate.critical_mask(), |mask, f| mask | f.critical_mask());
            active.len() < self.max_concurrent && (self.allow_all_critical || critical != ALL_CRITICAL)
        })
    }

    /// A random fault within the limits' instances, services, fault kinds and times, or `None`
    /// when the limits leave nothing to draw from.
    fn draw(&self, rng: &mut Rng) -> Option<ScheduledFault> {
        let instance = rng.pick(&self.instances)?.clone();
        let service = *rng.pick(&self.services)?;
        let kind = *rng.pick(&self.kinds)?;
        let longest = self.max_duration.min(self.total);
        let shortest = self.min_duration.min(longest);
        let duration = rng.range(shortest..longest + Duration::from_millis(1));
        let start = rng.range(Duration::ZERO..self.total - duration + Duration::from_millis(1));
        Some(ScheduledFault {
            id: 0,
            instance,
            service,
            kind,
            start,
            duration,
        })
    }
}

/// A seeded chaos schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub seed: u64,
    pub limits: Limits,
    /// In order of start time when generated; ids are that order.
    pub faults: Vec<ScheduledFault>,
}

/// Draws per wanted fault before generation settles for fewer: tight limits reject many draws.
const DRAWS_PER_FAULT: usize = 20;

impl Schedule {
    /// The schedule for `seed` under `limits`: the same pair always gives the same schedule.
    /// Between one and `max_faults` faults; fewer when the limits reject too many draws.
    pub fn generate(seed: u64, limits: &Limits) -> Schedule {
        let mut rng = Rng::new(seed);
        let wanted = 1 + rng.below(limits.max_faults as u64) as usize;
        let wanted = wanted.min(limits.max_faults);
        let mut faults: Vec<ScheduledFault> = Vec::new();
        for _ in 0..wanted * DRAWS_PER_FAULT {
            if faults.len() == wanted {
                break;
            }
            match limits.draw(&mut rng) {
                Some(fault) if limits.admits(&faults, &fault) => faults.push(fault),
                Some(_) => {}
                None => break,
            }
        }
        faults.sort_by_key(|f| f.start);
        for (id, fault) in faults.iter_mut().enumerate() {
            fault.id = id;
        }
        Schedule {
            seed,
            limits: limits.clone(),
            faults,
        }
    }

    /// The faults applied at `t`.
    pub fn active_at(&self, t: Duration) -> Vec<&ScheduledFault> {
        self.faults.iter().filter(|f| f.active_at(t)).collect()
    }

    /// When the last fault ends; zero for an empty schedule.
    pub fn end(&self) -> Duration {
        self.faults.iter().map(ScheduledFault::end).max().unwrap_or_default()
    }

    pub fn fault(&self, id: usize) -> Option<&ScheduledFault> {
        self.faults.iter().find(|f| f.id == id)
    }

    /// The one command that replays this schedule: the seed and the test that drew it.
    pub fn replay_command(&self, test: &str) -> String {
        format!("DIVE_CHAOS_SEED={} cargo test --test chaos {test}", self.seed)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "chaos schedule, seed {}: {} faults, at most {} at once, all over by {}",
            self.seed,
            self.faults.len(),
            self.limits.max_concurrent,
            secs(self.end())
        )?;
        writeln!(
            f,
            "{:>4}  {:>8}  {:>8}  {:<8}  {:<16}  fault",
            "id", "start", "end", "instance", "service"
        )?;
        for fault in &self.faults {
            writeln!(
                f,
                "{:>4}  {:>8}  {:>8}  {:<8}  {:<16}  {}",
                fault.id,
                secs(fault.start),
                secs(fault.end()),
                fault.instance,
                fault.service.to_string(),
                fault.kind
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub fn limits() -> Limits {
        Limits {
            instances: vec!["USA".into(), "FRA".into(), "DEU".into()],
            services: vec![
                Service::Opa,
                Service::Mongodb,
                Service::Keycloak,
                Service::Kas,
                Service::RevocationStore,
            ],
            kinds: FaultKind::ALL.to_vec(),
            max_faults: 8,
            max_concurrent: 3,
            min_duration: Duration::from_secs(1),
            max_duration: Duration::from_secs(10),
            total: Duration::from_secs(30),
            allow_all_critical: false,
        }
    }

    /// A fault for hand-written schedules: starts and durations in seconds.
    pub fn fault(
        id: usize,
        instance: &str,
        service: Service,
        kind: FaultKind,
        start: f64,
        duration: f64,
    ) -> ScheduledFault {
        ScheduledFault {
            id,
            instance: instance.to_string(),
            service,
            kind,
            start: Duration::from_secs_f64(start),
            duration: Duration::from_secs_f64(duration),
        }
    }

    pub fn schedule_of(faults: Vec<ScheduledFault>) -> Schedule {
        Schedule {
            seed: 0,
            limits: limits(),
            faults,
        }
    }

    /// The limits, checked the slow way: at every moment a fault starts, count what is active.
    fn broken_limits(schedule: &Schedule) -> Vec<String> {
        let limits = &schedule.limits;
        let mut broken = Vec::new();
        for fault in &schedule.faults {
            if fault.end() > limits.total || fault.duration < limits.min_duration.min(limits.max_duration) {
                broken.push(format!("{fault} is out of bounds"));
            }
            let active = schedule.active_at(fault.start);
            if active.len() > limits.max_concurrent {
                broken.push(format!("{} faults at {}", active.len(), secs(fault.start)));
            }
            if active
                .iter()
                .any(|other| other.id != fault.id && other.same_target(fault))
            {
                broken.push(format!("{fault} overlaps a fault on the same service"));
            }
            let down = |service| {
                active
                    .iter()
                    .any(|f| f.instance == fault.instance && f.service == service)
            };
            if !limits.allow_all_critical && down(Service::Opa) && down(Service::Mongodb) {
                broken.push(format!(
                    "opa and mongodb of {} down at {}",
                    fault.instance,
                    secs(fault.start)
                ));
            }
        }
        broken
    }

    #[test]
    fn the_same_seed_and_limits_give_the_same_schedule() {
        let a = Schedule::generate(99, &limits());
        assert_eq!(a, Schedule::generate(99, &limits()));
        assert_ne!(a, Schedule::generate(100, &limits()));
        assert!(!a.faults.is_empty());
    }

    #[test]
    fn a_thousand_seeds_respect_every_limit() {
        let mut rng = Rng::new(2024);
        for seed in 0..1000 {
            let mut limits = limits();
            limits.max_concurrent = 1 + rng.below(3) as usize;
            limits.max_faults = rng.below(10) as usize;
            limits.total = rng.range(Duration::from_secs(5)..Duration::from_secs(40));
            let schedule = Schedule::generate(seed, &limits);
            assert!(schedule.faults.len() <= limits.max_faults);
            assert!(schedule.end() <= limits.total);
            let broken = broken_limits(&schedule);
            assert!(broken.is_empty(), "seed {seed}: {broken:?}\n{schedule}");
        }
    }

    #[test]
    fn all_critical_down_only_when_allowed() {
        let mut limits = limits();
        limits.instances = vec!["USA".into()];
        limits.services = vec![Service::Opa, Service::Mongodb];
        limits.max_concurrent = 2;
        let both_down = |s: &Schedule| {
            s.faults
                .iter()
                .any(|a| s.faults.iter().any(|b| a.id != b.id && a.overlaps(b)))
        };
        assert!(!(0..200).any(|seed| both_down(&Schedule::generate(seed, &limits))));
        limits.allow_all_critical = true;
        assert!((0..200).any(|seed| both_down(&Schedule::generate(seed, &limits))));
    }

    #[test]
    fn shows_a_table_and_the_command_that_replays_it() {
        let schedule = Schedule::generate(5, &limits());
        let table = schedule.to_string();
        assert!(table.starts_with("chaos schedule, seed 5:"), "{table}");
        assert_eq!(table.lines().count(), 2 + schedule.faults.len());
        assert_eq!(
            schedule.replay_command("chaos_keeps_dive_correct"),
            "DIVE_CHAOS_SEED=5 cargo test --test chaos chaos_keeps_dive_correct"
        );
        let json = serde_json::to_string(&schedule).expect("a schedule serialises");
        assert_eq!(
            serde_json::from_str::<Schedule>(&json).expect("and reads back"),
            schedule
        );
    }

    #[test]
    fn active_at_includes_the_start_and_excludes_the_end() {
        let schedule = Schedule::generate(11, &limits());
        let first = &schedule.faults[0];
        assert!(schedule.active_at(first.start).contains(&first));
        assert!(!schedule.active_at(first.end()).contains(&first));
        assert!(schedule.active_at(schedule.end()).is_empty());
    }
}
