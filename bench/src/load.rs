//! Closed-loop and fixed-rate drivers: one task per connection, each running
//! its worker's step again and again until the phase ends.

use std::future::Future;
use std::time::{Duration, Instant};

/// One connection's work.
pub trait Worker: Send + 'static {
    /// One request (or one flow); `Some(units)` done, `None` when nothing is left to do.
    fn step(&mut self) -> impl Future<Output = anyhow::Result<Option<u64>>> + Send;
}

#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Steps that succeeded.
    pub steps: u64,
    /// Units done (requests, decisions, events, jobs).
    pub units: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    pub latencies: Vec<Duration>,
}

impl Outcome {
    pub fn per_second(&self) -> f64 {
        self.units as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `q` quantile of the latencies, in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        quantile_ms(&self.latencies, q)
    }

    fn merge(&mut self, other: Outcome) {
        self.steps += other.steps;
        self.units += other.units;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.latencies.extend(other.latencies);
    }
}

pub fn quantile_ms(latencies: &[Duration], q: f64) -> f64 {
    if latencies.is_empty() {
        return f64::NAN;
    }
    let mut sorted = latencies.to_vec();
    sorted.sort_unstable();
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1000.0
}

async fn step_once<W: Worker>(worker: &mut W, from: Instant, outcome: &mut Outcome) -> bool {
    match worker.step().await {
        Ok(Some(units)) => {
            outcome.steps += 1;
            outcome.units += units;
            outcome.latencies.push(from.elapsed());
            true
        }
        Ok(None) => false,
        Err(error) => {
            outcome.errors += 1;
            if outcome.first_error.is_none() {
                outcome.first_error = Some(format!("{error:#}"));
            }
            // A failing worker must not spin: it backs off a little.
            tokio::time::sleep(Duration::from_millis(10)).await;
            true
        }
    }
}

/// Every worker runs its steps back to back for `duration`.
pub async fn closed_loop<W: Worker>(workers: Vec<W>, duration: Duration) -> Outcome {
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = workers
        .into_iter()
        .map(|mut worker| {
            tokio::spawn(async move {
                let mut outcome = Outcome::default();
                while Instant::now() < deadline {
                    let from = Instant::now();
                    if !step_once(&mut worker, from, &mut outcome).await {
                        break;
                    }
                }
                outcome
            })
        })
        .collect();
    finish(tasks, started).await
}

/// The workers together start `rate` steps per second on a fixed schedule;
/// latency counts from the scheduled start, so a late answer also delays the
/// requests queued behind it (no coordinated omission).
pub async fn fixed_rate<W: Worker>(workers: Vec<W>, rate: f64, duration: Duration) -> Outcome {
    let started = Instant::now();
    let count = workers.len().max(1) as f64;
    let interval = Duration::from_secs_f64(count / rate.max(1e-3));
    let tasks: Vec<_> = workers
        .into_iter()
        .enumerate()
        .map(|(i, mut worker)| {
            let offset = Duration::from_secs_f64(i as f64 / rate.max(1e-3));
            tokio::spawn(async move {
                let mut outcome = Outcome::default();
                let mut next = started + offset;
                while next < started + duration {
                    tokio::time::sleep_until(next.into()).await;
                    if !step_once(&mut worker, next, &mut outcome).await {
                        break;
                    }
                    next += interval;
                }
                outcome
            })
        })
        .collect();
    finish(tasks, started).await
}

async fn finish(tasks: Vec<tokio::task::JoinHandle<Outcome>>, started: Instant) -> Outcome {
    let mut total = Outcome::default();
    for task in tasks {
        match task.await {
            Ok(outcome) => total.merge(outcome),
            Err(error) => {
                total.errors += 1;
                total.first_error.get_or_insert_with(|| error.to_string());
            }
        }
    }
    total.elapsed = started.elapsed();
    total
}
