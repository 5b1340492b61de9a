//! Failed logins, counted per account and per client address over a window: each failure is
//! answered more slowly, and past a threshold further attempts are refused until the window
//! passes (in this process; replicas count apart).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// How long failures are remembered.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Failures of one account within the window after which it is refused.
pub const PER_ACCOUNT: u32 = 10;
/// Failures from one address within the window after which it is refused.
pub const PER_ADDRESS: u32 = 50;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: String,
}

pub struct Throttle {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
    logins: Family<Outcome, Counter>,
}

impl Throttle {
    pub fn register(registry: &mut Registry) -> Self {
        let throttle = Throttle {
            failures: Mutex::default(),
            logins: Family::default(),
        };
        registry.register(
            "auth_logins",
            "Token requests by outcome (issued, failed, refused)",
            throttle.logins.clone(),
        );
        throttle
    }

    fn count(&self, key: &str) -> u32 {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures
            .get(key)
            .filter(|(_, since)| since.elapsed() < WINDOW)
            .map_or(0, |(n, _)| *n)
    }

    /// Seconds to wait when `account` or `address` failed too often, else `None`.
    pub fn refused(&self, account: &str, address: &str) -> Option<u64> {
        let over = self.count(&format!("account:{account}")) >= PER_ACCOUNT
            || self.count(&format!("address:{address}")) >= PER_ADDRESS;
        if over {
            self.logins
                .get_or_create(&Outcome {
                    outcome: "refused".into(),
                })
                .inc();
        }
        over.then_some(WINDOW.as_secs())
    }

    /// Counts a failure; returns how long to delay its answer.
    pub fn failed(&self, account: &str, address: &str) -> Duration {
        self.logins
            .get_or_create(&Outcome {
                outcome: "failed".into(),
            })
            .inc();
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() > 100_000 {
            failures.retain(|_, (_, since)| since.elapsed() < WINDOW);
        }
        let mut n = 0;
        for key in [format!("account:{account}"), format!("address:{address}")] {
            let entry = failures.entry(key).or_insert((0, Instant::now()));
            if entry.1.elapsed() >= WINDOW {
                *entry = (0, Instant::now());
            }
            entry.0 += 1;
            n = n.max(entry.0);
        }
        Duration::from_millis(100 * u64::from(n.min(20)))
    }

    /// A success forgets the account's failures.
    pub fn succeeded(&self, account: &str) {
        self.logins
            .get_or_create(&Outcome {
                outcome: "issued".into(),
            })
            .inc();
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.remove(&format!("account:{account}"));
    }
}
