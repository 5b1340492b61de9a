//! The one retry policy of the workspace: exponential backoff with jitter, within a time
//! budget that restarts whenever the operation makes progress.
//!
//! Every client that waits between attempts (DynamoDB writes, Kafka deliveries, the embedded
//! log's readers, the CSV import's calls to the gateway) uses [`Backoff`] or [`with_retries`],
//! so that the constants live here only. The gateway's retry of an idempotent request is
//! another policy, not a loop over this one: one more attempt at once, inside the caller's own
//! timeout, drawn from a retry budget proportional to the load (`gateway::upstream`), because a
//! proxy that sleeps holds its caller's connection for nothing.

use std::future::Future;
use std::time::{Duration, Instant};

/// The first wait after a failure.
pub const INITIAL: Duration = Duration::from_millis(20);
/// The longest wait between two attempts.
pub const MAX: Duration = Duration::from_secs(2);

/// Whether an error is worth retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    Yes,
    No,
}

/// Waits between attempts: [`INITIAL`], doubling up to [`MAX`], each wait jittered to between
/// half and all of it so that many clients backing off do not retry in step. Gives up once the
/// next wait would end past the budget, counted from the start or from the last progress.
#[derive(Debug, Clone)]
pub struct Backoff {
    budget: Duration,
    started: Instant,
    next: Duration,
}

impl Backoff {
    pub fn new(budget: Duration) -> Self {
        Backoff {
            budget,
            started: Instant::now(),
            next: INITIAL,
        }
    }

    /// Some attempts succeeded: the budget is for an operation that makes no progress at all.
    pub fn progressed(&mut self) {
        self.started = Instant::now();
        self.next = INITIAL;
    }

    /// The wait before the next attempt, or `None` when the budget is spent.
    pub fn next_delay(&mut self) -> Option<Duration> {
        let delay = self.next;
        if self.started.elapsed() + delay > self.budget {
            return None;
        }
        self.next = (self.next * 2).min(MAX);
        Some(jitter(delay))
    }

    /// Sleeps before the next attempt; `false` when the budget is spent (do not retry).
    pub async fn wait(&mut self) -> bool {
        match self.next_delay() {
            Some(delay) => {
                tokio::time::sleep(delay).await;
                true
            }
            None => false,
        }
    }
}

/// Runs `op` until it succeeds, fails with an error `classify` says not to retry, or the
/// budget is spent (then the last error is returned).
pub async fn with_retries<T, E, F, Fut>(
    budget: Duration,
    mut classify: impl FnMut(&E) -> Retry,
    mut op: F,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut backoff = Backoff::new(budget);
    loop {
        match op().await {
            Ok(value) => return Ok(value),
            Err(e) => {
                if classify(&e) == Retry::No || !backoff.wait().await {
                    return Err(e);
                }
            }
        }
    }
}

/// Between half and all of `d`.
fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| t.subsec_nanos());
    d / 2 + d.mul_f64(f64::from(nanos % 1000) / 2000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_to_the_cap_and_stop_at_the_budget() {
        let mut backoff = Backoff::new(Duration::from_secs(3600));
        let mut last = Duration::ZERO;
        for _ in 0..20 {
            let d = backoff.next_delay().expect("within the budget");
            assert!(d <= MAX && d >= INITIAL / 2, "{d:?}");
            last = d;
        }
        assert!(last >= MAX / 2);
        let mut spent = Backoff::new(Duration::ZERO);
        assert_eq!(spent.next_delay(), None);
    }

    #[test]
    fn progress_restarts_the_waits() {
        let mut backoff = Backoff::new(Duration::from_secs(3600));
        for _ in 0..10 {
            backoff.next_delay();
        }
        backoff.progressed();
        assert!(backoff.next_delay().expect("within the budget") <= INITIAL);
    }

    #[tokio::test]
    async fn permanent_errors_are_not_retried() {
        let mut calls = 0;
        let out: Result<(), &str> = with_retries(
            Duration::from_secs(10),
            |_| Retry::No,
            || {
                calls += 1;
                async { Err("permanent") }
            },
        )
        .await;
        assert_eq!(out, Err("permanent"));
        assert_eq!(calls, 1);
    }

    #[tokio::test]
    async fn transient_errors_are_retried_until_success() {
        let mut calls = 0;
        let out: Result<u32, &str> = with_retries(
            Duration::from_secs(10),
            |_| Retry::Yes,
            || {
                calls += 1;
                let n = calls;
                async move { if n < 3 { Err("transient") } else { Ok(n) } }
            },
        )
        .await;
        assert_eq!(out, Ok(3));
    }
}
