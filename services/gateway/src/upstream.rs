//! What the gateway keeps per upstream service: a bound on requests in flight (a bulkhead, so
//! that one slow service cannot take every connection of the gateway), a circuit breaker and a
//! retry budget, with their metrics.
//!
//! The breaker counts consecutive failures (no answer, a timeout, or a 502/503/504 answer);
//! after [`Resilience::failures_to_open`] it opens and requests fail at once with 503 for
//! [`Resilience::open_for`]; then one probe request at a time goes through (half-open): its
//! success closes the breaker, its failure opens it again.
//!
//! Retries (of idempotent requests without a body only, decided by the caller) draw on a
//! budget that grows by [`Resilience::retry_ratio`] per request and by a few per second, so
//! that retries add at most that fraction of load to a service that is failing.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::access::Upstream;

/// How the gateway treats every upstream.
#[derive(Debug, Clone, Copy)]
pub struct Resilience {
    /// How long a service may take to start answering (all attempts together).
    pub timeout: Duration,
    /// Requests waiting on one service at once; more get 503 at once.
    pub max_in_flight: usize,
    /// Consecutive failures that open the breaker.
    pub failures_to_open: u32,
    /// How long an open breaker refuses before it lets a probe through.
    pub open_for: Duration,
    /// Attempts of a retryable request, the first included.
    pub attempts: u32,
    /// Retries allowed per request, over time (0.2: at most 20 % more load).
    pub retry_ratio: f64,
}

impl Default for Resilience {
    fn default() -> Self {
        Resilience {
            timeout: Duration::from_secs(10),
            max_in_flight: 512,
            failures_to_open: 5,
            open_for: Duration::from_secs(5),
            attempts: 2,
            retry_ratio: 0.2,
        }
    }
}

/// Retries available on top of the ratio, per second, and the most that can be saved up.
const RETRIES_PER_SECOND: f64 = 5.0;
const RETRY_BUDGET_MAX: f64 = 20.0;

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

impl State {
    fn gauge(self) -> i64 {
        match self {
            State::Closed { .. } => 0,
            State::Open { .. } => 1,
            State::HalfOpen { .. } => 2,
        }
    }
}

/// How a request was let through the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Normal,
    /// The one request of a half-open breaker.
    Probe,
}

/// Why a request did not reach the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The breaker is open: retry after this long.
    Open(Duration),
    /// Too many requests in flight.
    Busy,
}

struct Budget {
    balance: f64,
    at: Instant,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabel {
    upstream: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    upstream: &'static str,
    outcome: &'static str,
}

/// The metric families of every upstream.
#[derive(Clone)]
pub struct Metrics {
    requests: Family<OutcomeLabel, Counter>,
    latency: Family<UpstreamLabel, Histogram>,
    retries: Family<UpstreamLabel, Counter>,
    breaker: Family<UpstreamLabel, Gauge>,
    in_flight: Family<UpstreamLabel, Gauge>,
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Metrics {
        let metrics = Metrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0005, 2.0, 15))
            }),
            retries: Family::default(),
            breaker: Family::default(),
            in_flight: Family::default(),
        };
        registry.register(
            "gateway_upstream_requests",
            "Requests toward each upstream by outcome: ok, error (a 5xx answer), unavailable, \
             timeout, breaker_open, busy",
            metrics.requests.clone(),
        );
        registry.register(
            "gateway_upstream_duration_seconds",
            "Time until an upstream's answer starts, retries included",
            metrics.latency.clone(),
        );
        registry.register(
            "gateway_upstream_retries",
            "Retries toward each upstream",
            metrics.retries.clone(),
        );
        registry.register(
            "gateway_breaker_state",
            "Each upstream's circuit breaker: 0 closed, 1 open, 2 half-open",
            metrics.breaker.clone(),
        );
        registry.register(
            "gateway_upstream_in_flight",
            "Requests waiting on each upstream",
            metrics.in_flight.clone(),
        );
        metrics
    }
}

/// One upstream service and its state.
pub struct Service {
    pub upstream: Upstream,
    pub base_url: String,
    config: Resilience,
    permits: std::sync::Arc<Semaphore>,
    state: Mutex<State>,
    budget: Mutex<Budget>,
    metrics: Metrics,
}

/// A request in flight: holds its slot and reports to the breaker when dropped unreported.
pub struct Attempt<'a> {
    service: &'a Service,
    admission: Admission,
    _permit: OwnedSemaphorePermit,
    started: Instant,
    reported: bool,
}

impl Service {
    pub fn new(upstream: Upstream, base_url: String, config: Resilience, metrics: Metrics) -> Self {
        let service = Service {
            upstream,
            base_url: base_url.trim_end_matches('/').to_owned(),
            config,
            permits: std::sync::Arc::new(Semaphore::new(config.max_in_flight.max(1))),
            state: Mutex::new(State::Closed { failures: 0 }),
            budget: Mutex::new(Budget {
                balance: RETRY_BUDGET_MAX / 2.0,
                at: Instant::now(),
            }),
            metrics,
        };
        service
            .metrics
            .breaker
            .get_or_create(&service.label())
            .set(0);
        service
    }

    fn label(&self) -> UpstreamLabel {
        UpstreamLabel {
            upstream: self.upstream.name(),
        }
    }

    pub fn config(&self) -> &Resilience {
        &self.config
    }

    /// Lets a request through, or says why not.
    pub fn admit(&self) -> Result<Attempt<'_>, Refusal> {
        let admission = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let admission = match *state {
                State::Closed { .. } => Ok(Admission::Normal),
                State::Open { until } if now < until => Err(Refusal::Open(until - now)),
                State::Open { .. } | State::HalfOpen { probing: false } => {
                    *state = State::HalfOpen { probing: true };
                    Ok(Admission::Probe)
                }
                State::HalfOpen { probing: true } => Err(Refusal::Open(Duration::from_secs(1))),
            };
            self.publish(*state);
            admission
        };
        let admission = match admission {
            Ok(admission) => admission,
            Err(refusal) => {
                self.count("breaker_open");
                return Err(refusal);
            }
        };
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            if admission == Admission::Probe {
                self.settle(Admission::Probe, None);
            }
            self.count("busy");
            return Err(Refusal::Busy);
        };
        self.metrics.in_flight.get_or_create(&self.label()).inc();
        Ok(Attempt {
            service: self,
            admission,
            _permit: permit,
            started: Instant::now(),
            reported: false,
        })
    }

    /// Whether a retry fits in the budget (and takes it).
    pub fn take_retry(&self) -> bool {
        let mut budget = self.budget.lock().unwrap_or_else(|e| e.into_inner());
        if budget.balance >= 1.0 {
            budget.balance -= 1.0;
            drop(budget);
            self.metrics.retries.get_or_create(&self.label()).inc();
            true
        } else {
            false
        }
    }

    fn deposit(&self) {
        let mut budget = self.budget.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let earned = (now - budget.at).as_secs_f64() * RETRIES_PER_SECOND + self.config.retry_ratio;
        budget.balance = (budget.balance + earned).min(RETRY_BUDGET_MAX);
        budget.at = now;
    }

    fn count(&self, outcome: &'static str) {
        self.metrics
            .requests
            .get_or_create(&OutcomeLabel {
                upstream: self.upstream.name(),
                outcome,
            })
            .inc();
    }

    fn publish(&self, state: State) {
        self.metrics
            .breaker
            .get_or_create(&self.label())
            .set(state.gauge());
    }

    /// Moves the breaker on a request's outcome: `Some(true)` success, `Some(false)` failure,
    /// `None` abandoned (the caller went away; a probe then lets the next one through).
    fn settle(&self, admission: Admission, success: Option<bool>) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let before = *state;
        let now = Instant::now();
        let open = State::Open {
            until: now + self.config.open_for,
        };
        *state = match (before, admission, success) {
            (State::Closed { .. }, _, Some(true)) => State::Closed { failures: 0 },
            (State::Closed { failures }, _, Some(false)) => {
                if failures + 1 >= self.config.failures_to_open {
                    open
                } else {
                    State::Closed {
                        failures: failures + 1,
                    }
                }
            }
            (State::HalfOpen { .. }, Admission::Probe, Some(true)) => State::Closed { failures: 0 },
            (State::HalfOpen { .. }, Admission::Probe, Some(false)) => open,
            (State::HalfOpen { .. }, Admission::Probe, None) => State::HalfOpen { probing: false },
            // Outcomes of requests let through before the last change say nothing new.
            (unchanged, _, _) => unchanged,
        };
        if *state != before {
            match *state {
                State::Open { .. } => tracing::warn!(
                    upstream = self.upstream.name(),
                    "circuit breaker open: failing fast for {:?}",
                    self.config.open_for
                ),
                State::Closed { .. } if !matches!(before, State::Closed { .. }) => {
                    tracing::info!(upstream = self.upstream.name(), "circuit breaker closed");
                }
                _ => {}
            }
        }
        self.publish(*state);
    }
}

impl Attempt<'_> {
    /// Records the outcome: `ok`, `error` (5xx), `unavailable` or `timeout`. Counts toward the
    /// breaker when `failure`.
    pub fn finish(mut self, outcome: &'static str, failure: bool) {
        self.reported = true;
        let service = self.service;
        service.deposit();
        service.count(outcome);
        service
            .metrics
            .latency
            .get_or_create(&service.label())
            .observe(self.started.elapsed().as_secs_f64());
        service.settle(self.admission, Some(!failure));
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        self.service
            .metrics
            .in_flight
            .get_or_create(&self.service.label())
            .dec();
        if !self.reported {
            self.service.settle(self.admission, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(config: Resilience) -> Service {
        let mut registry = Registry::default();
        Service::new(
            Upstream::Catalog,
            "http://x/".into(),
            config,
            Metrics::register(&mut registry),
        )
    }

    #[test]
    fn opens_after_failures_then_probes_one_at_a_time() {
        let s = service(Resilience {
            failures_to_open: 3,
            open_for: Duration::from_millis(50),
            ..Resilience::default()
        });
        assert_eq!(s.base_url, "http://x");
        for _ in 0..3 {
            s.admit().unwrap().finish("unavailable", true);
        }
        assert!(matches!(s.admit().err(), Some(Refusal::Open(_))));
        std::thread::sleep(Duration::from_millis(60));
        let probe = s.admit().unwrap();
        assert_eq!(probe.admission, Admission::Probe);
        assert!(matches!(s.admit().err(), Some(Refusal::Open(_))));
        probe.finish("unavailable", true);
        assert!(matches!(s.admit().err(), Some(Refusal::Open(_))));
        std::thread::sleep(Duration::from_millis(60));
        // An abandoned probe lets the next request probe.
        drop(s.admit().unwrap());
        let probe = s.admit().unwrap();
        assert_eq!(probe.admission, Admission::Probe);
        probe.finish("ok", false);
        assert_eq!(s.admit().unwrap().admission, Admission::Normal);
    }

    #[test]
    fn a_success_resets_the_count() {
        let s = service(Resilience {
            failures_to_open: 2,
            ..Resilience::default()
        });
        s.admit().unwrap().finish("timeout", true);
        s.admit().unwrap().finish("ok", false);
        s.admit().unwrap().finish("timeout", true);
        assert!(s.admit().is_ok());
    }

    #[test]
    fn the_bulkhead_bounds_requests_in_flight() {
        let s = service(Resilience {
            max_in_flight: 2,
            ..Resilience::default()
        });
        let a = s.admit().unwrap();
        let _b = s.admit().unwrap();
        assert_eq!(s.admit().err(), Some(Refusal::Busy));
        drop(a);
        assert!(s.admit().is_ok());
    }

    #[test]
    fn retries_are_budgeted() {
        let s = service(Resilience::default());
        let mut granted = 0;
        while s.take_retry() {
            granted += 1;
            assert!(granted < 100, "the budget has a bound");
        }
        assert!(granted >= 10);
        // Five requests earn one retry at a ratio of 0.2 (plus what time adds).
        for _ in 0..5 {
            s.admit().unwrap().finish("ok", false);
        }
        assert!(s.take_retry());
    }
}
