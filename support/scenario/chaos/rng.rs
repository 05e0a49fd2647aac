//! The chaos phase's random numbers: a small deterministic generator, so that one printed seed
//! replays a schedule exactly, on any machine. SplitMix64 (Steele, Lea and Flood, 2014) keeps one
//! `u64` of state and mixes well enough to pick faults; it is not cryptographic and need not be.

use std::ops::Range;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// SplitMix64's increment, the golden ratio in 64 bits.
const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// A seeded generator: the same seed always yields the same sequence.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        mix(self.state)
    }

    /// A number in `0..n`, or 0 when `n` is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        // Multiply-shift maps 64 bits onto 0..n without a division; the bias is at most n / 2^64.
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A duration in `range`, in whole milliseconds (schedules are read by people); `range.start`
    /// when the range is empty.
    pub fn range(&mut self, range: Range<Duration>) -> Duration {
        let span_ms = range.end.saturating_sub(range.start).as_millis();
        let span_ms = u64::try_from(span_ms).unwrap_or(u64::MAX);
        range.start + Duration::from_millis(self.below(span_ms))
    }

    /// One element of `items`, or `None` when there is none.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        let index = self.below(items.len() as u64);
        items.get(usize::try_from(index).ok()?)
    }

    /// True with probability `p` (clamped to 0..=1).
    pub fn chance(&mut self, p: f64) -> bool {
        // The top 53 bits give a uniform f64 in [0, 1).
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        unit < p
    }
}

/// SplitMix64's output function: a bijection on `u64`, so distinct states give distinct outputs.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seed for a run that was given none: different across runs and across processes started in
/// the same nanosecond. Printed with the run, so it can be replayed.
pub fn fresh_seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    mix(nanos ^ u64::from(std::process::id()).rotate_left(32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_sequence() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let first: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        assert!(first.iter().all(|&x| x == b.next_u64()));
        assert_ne!(first, (0..5).map(|_| Rng::new(8).next_u64()).collect::<Vec<_>>());
    }

    #[test]
    fn splitmix64_matches_its_published_first_output() {
        // The reference implementation's first output for seed 1234567.
        assert_eq!(Rng::new(1234567).next_u64(), 6457827717110365317);
    }

    #[test]
    fn draws_stay_in_their_bounds() {
        let mut rng = Rng::new(42);
        let (lo, hi) = (Duration::from_millis(300), Duration::from_secs(2));
        for _ in 0..1000 {
            assert!(rng.below(10) < 10);
            let d = rng.range(lo..hi);
            assert!(lo <= d && d < hi, "{d:?}");
        }
        assert_eq!(rng.below(0), 0);
        assert_eq!(rng.range(hi..lo), hi);
        assert_eq!(rng.pick::<u8>(&[]), None);
        assert_eq!(rng.pick(&[3]), Some(&3));
        assert!(!rng.chance(0.0) && rng.chance(1.0));
    }
}
