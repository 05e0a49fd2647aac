//! The generator's own performance, on real time: it must not be the bottleneck at the rates it
//! allows. Ignored by default (it takes about half a minute and wants an idle machine); run it
//! with `cargo test --lib load::capacity -- --ignored --nocapture`.

use std::time::Duration;

use tokio::sync::watch;

use super::generator::{Plan, Run, run};
use super::outcome::Outcome;
use super::summary::millis;

/// Rates tried for the highest held rate, each for [`STEP`]: all of them, since on a shared
/// machine one rate may miss by chance and a higher one hold; about 30 s in all.
const RAMP: [f64; 8] = [
    500.0, 1_000.0, 2_000.0, 5_000.0, 10_000.0, 20_000.0, 50_000.0, 100_000.0,
];
const STEP: Duration = Duration::from_secs(2);
const CPU_RUN: Duration = Duration::from_secs(5);

/// User plus system CPU time of this process so far.
fn cpu_time() -> Duration {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage only writes the struct it is given, which lives for the call.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(rc, 0, "getrusage failed");
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// Runs `rate` for `duration` against a target that answers at once; returns the run and the
/// CPU it took, as a share of one core.
async fn measure(rate: f64, duration: Duration) -> (Run, f64) {
    let plan = Plan {
        rate,
        duration,
        max_in_flight: 10_000,
        timeout: Duration::from_secs(1),
    };
    let (_keep_running, stop) = watch::channel(false);
    let before = cpu_time();
    let run = run(&plan, stop, |_| async { Outcome::Decided { status: 200 } })
        .await
        .expect("a valid plan");
    let cpu = (cpu_time() - before).as_secs_f64() / duration.as_secs_f64();
    (run, cpu)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measures the generator on real time for about half a minute; run on an idle machine"]
/// Measures the highest constant rate the generator holds with its schedule lag under 1 ms at
/// p99, and its CPU at 20 and 200 requests per second, against an in-process target answering at
/// once.
async fn generator_capacity() {
    for rate in [20.0, 200.0] {
        let (run, cpu) = measure(rate, CPU_RUN).await;
        println!("{rate} req/s: CPU {:.2} % of a core; {}", cpu * 100.0, run.lag);
    }
    let mut held = None;
    for rate in RAMP {
        let (run, cpu) = measure(rate, STEP).await;
        let holds = run.lag.p99 < Duration::from_millis(1);
        println!(
            "{rate} req/s: {} requests, lag p50 {}, p99 {}, max {}, CPU {:.0} % of a core: {}",
            run.lag.steps,
            millis(run.lag.p50),
            millis(run.lag.p99),
            millis(run.lag.max),
            cpu * 100.0,
            if holds { "held" } else { "fell behind" }
        );
        if holds {
            held = Some(rate);
        }
    }
    match held {
        Some(rate) => println!("highest rate held with schedule lag p99 under 1 ms: {rate} req/s"),
        None => println!("no rate of the ramp held schedule lag p99 under 1 ms"),
    }
}
