//! A deterministic generator of realistic activity streams.
//!
//! Products are drawn with Zipf-skewed popularity (a few products get most of the traffic),
//! users uniformly; event time advances at a steady rate with bounded disorder (each event's
//! timestamp is pulled back by up to `disorder_ms`); timestamps come in mixed RFC 3339 forms
//! (`Z`, `+02:00`, `-05:30`, with and without milliseconds). Optionally a fraction of events is
//! late (pulled back by minutes) and a fraction of lines is malformed. The same seed gives the
//! same stream, byte for byte.

use std::borrow::Cow;
use std::io::Write;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};

use crate::core::decode::Event;
use crate::core::time::write_rfc3339_ms;

/// Shape of a generated stream.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleConfig {
    pub events: u64,
    pub products: u32,
    pub users: u32,
    /// Zipf exponent of product popularity (0 = uniform).
    pub product_skew: f64,
    /// Event-time rate: events per second of event time.
    pub events_per_second: u32,
    /// Maximum backward jitter of an on-time event, in milliseconds (timestamps written in whole
    /// seconds are floored, which can add up to 999 ms more).
    pub disorder_ms: u32,
    /// Fraction of events pulled back by one to three minutes (late once their window fired).
    pub late_fraction: f64,
    /// Fraction of lines replaced by a malformed one (NDJSON output only).
    pub malformed_fraction: f64,
    /// Event time of the first event, UTC milliseconds.
    pub start_ms: i64,
    pub seed: u64,
}

impl Default for SampleConfig {
    fn default() -> Self {
        SampleConfig {
            events: 1_000_000,
            products: 10_000,
            users: 100_000,
            product_skew: 1.1,
            events_per_second: 20_000,
            disorder_ms: 8_000,
            late_fraction: 0.0,
            malformed_fraction: 0.0,
            start_ms: 1_704_110_400_000, // 2024-01-01T12:00:00Z
            seed: 42,
        }
    }
}

const EVENT_TYPES: [&str; 5] = [
    "VIEW_PRODUCT",
    "VIEW_PRODUCT",
    "ADD_TO_CART",
    "REMOVE_FROM_CART",
    "PURCHASE",
];

const MALFORMED: [&str; 8] = [
    "{\"user_id\":\"u1\",\"product_id\":",
    "not json at all",
    "[\"an\",\"array\"]",
    "{\"user_id\":\"u1\",\"event_type\":\"VIEW_PRODUCT\",\"timestamp\":\"2024-01-01T12:00:00Z\"}",
    "{\"user_id\":\"u1\",\"product_id\":\"p1\",\"event_type\":\"VIEW_PRODUCT\",\"timestamp\":\"yesterday\"}",
    "{\"user_id\":\"\",\"product_id\":\"p1\",\"event_type\":\"VIEW_PRODUCT\",\"timestamp\":\"2024-01-01T12:00:00Z\"}",
    "{\"user_id\":\"u1\",\"product_id\":42,\"event_type\":\"VIEW_PRODUCT\",\"timestamp\":\"2024-01-01T12:00:00Z\"}",
    "{\"user_id\":\"u1\",\"product_id\":\"p1\",\"event_type\":\"view\",\"timestamp\":\"2024-01-01T12:00:00Z\"}",
];

/// One generated event, before rendering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleEvent {
    pub user: u32,
    pub product: u32,
    pub event_type: &'static str,
    pub timestamp_ms: i64,
    /// UTC offset the timestamp is written in, minutes.
    pub offset_minutes: i32,
    pub session: u32,
}

impl SampleEvent {
    pub fn user_id(&self) -> String {
        format!("u{}", self.user)
    }

    pub fn product_id(&self) -> String {
        format!("p{}", self.product)
    }

    /// The decoded form, as the engine sees it.
    pub fn to_event(&self) -> Event<'static> {
        Event {
            user_id: Cow::Owned(self.user_id()),
            product_id: Cow::Owned(self.product_id()),
            event_type: Cow::Borrowed(self.event_type),
            timestamp_ms: self.timestamp_ms,
        }
    }

    /// The event as one NDJSON line (with the trailing newline).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let mut ts = String::with_capacity(32);
        let local = self.timestamp_ms + i64::from(self.offset_minutes) * 60_000;
        write_rfc3339_ms(local, &mut ts);
        ts.pop(); // the `Z`
        if self.offset_minutes == 0 {
            ts.push('Z');
        } else {
            let sign = if self.offset_minutes < 0 { '-' } else { '+' };
            let abs = self.offset_minutes.abs();
            ts.push_str(&format!("{sign}{:02}:{:02}", abs / 60, abs % 60));
        }
        // Writing to a Vec cannot fail.
        let _ = writeln!(
            out,
            "{{\"user_id\":\"u{}\",\"product_id\":\"p{}\",\"event_type\":\"{}\",\"timestamp\":\"{ts}\",\"metadata\":{{\"session_id\":\"s{}\",\"source\":\"web\"}}}}",
            self.user, self.product, self.event_type, self.session
        );
    }
}

/// The stream: an iterator of events, and of NDJSON lines via [`Sample::write_line`].
pub struct Sample {
    config: SampleConfig,
    rng: SmallRng,
    products: Option<Zipf<f64>>,
    emitted: u64,
}

impl Sample {
    pub fn new(config: SampleConfig) -> Self {
        let products = (config.product_skew > 0.0)
            .then(|| Zipf::new(f64::from(config.products.max(1)), config.product_skew).ok())
            .flatten();
        Sample {
            rng: SmallRng::seed_from_u64(config.seed),
            products,
            emitted: 0,
            config,
        }
    }

    /// The next line of NDJSON into `out`: usually an event, a malformed line with
    /// probability `malformed_fraction`. Returns `false` at the end of the stream.
    pub fn write_line(&mut self, out: &mut Vec<u8>) -> bool {
        let malformed = self.config.malformed_fraction > 0.0
            && self
                .rng
                .random_bool(self.config.malformed_fraction.min(1.0));
        let Some(event) = self.next() else {
            return false;
        };
        if malformed {
            out.extend_from_slice(MALFORMED[event.user as usize % MALFORMED.len()].as_bytes());
            out.push(b'\n');
        } else {
            event.write_json(out);
        }
        true
    }
}

impl Iterator for Sample {
    type Item = SampleEvent;

    fn next(&mut self) -> Option<SampleEvent> {
        let c = &self.config;
        if self.emitted >= c.events {
            return None;
        }
        let i = self.emitted;
        self.emitted += 1;
        let rng = &mut self.rng;
        let product = match &self.products {
            Some(zipf) => zipf.sample(rng) as u32 - 1,
            None => rng.random_range(0..c.products.max(1)),
        };
        let user = rng.random_range(0..c.users.max(1));
        let base = c.start_ms + (i as i128 * 1000 / i128::from(c.events_per_second.max(1))) as i64;
        let mut jitter = i64::from(rng.random_range(0..=c.disorder_ms));
        if c.late_fraction > 0.0 && rng.random_bool(c.late_fraction.min(1.0)) {
            jitter += rng.random_range(60_000..180_000);
        }
        let offset_minutes = match rng.random_range(0..10) {
            0 => 120,
            1 => -330,
            _ => 0,
        };
        let timestamp_ms = base - jitter;
        // Whole seconds three times in four, as most producers write them.
        let timestamp_ms = if rng.random_range(0..4) == 0 {
            timestamp_ms
        } else {
            timestamp_ms - timestamp_ms.rem_euclid(1000)
        };
        Some(SampleEvent {
            user,
            product,
            event_type: EVENT_TYPES[rng.random_range(0..EVENT_TYPES.len())],
            timestamp_ms,
            offset_minutes,
            session: rng.random_range(0..1_000_000),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::decode::decode_event;

    #[test]
    fn same_seed_same_stream() {
        let config = SampleConfig {
            events: 1000,
            ..SampleConfig::default()
        };
        let a: Vec<_> = Sample::new(config.clone()).collect();
        let b: Vec<_> = Sample::new(config).collect();
        assert_eq!(a, b);
        assert_eq!(a.len(), 1000);
    }

    #[test]
    fn lines_decode_to_the_generated_events() {
        let config = SampleConfig {
            events: 2000,
            ..SampleConfig::default()
        };
        for event in Sample::new(config) {
            let mut line = Vec::new();
            event.write_json(&mut line);
            let decoded = decode_event(&line).unwrap();
            assert_eq!(decoded, event.to_event());
        }
    }

    #[test]
    fn disorder_stays_within_its_bound() {
        let config = SampleConfig {
            events: 5000,
            disorder_ms: 3000,
            ..SampleConfig::default()
        };
        let mut max = i64::MIN;
        for event in Sample::new(config) {
            assert!(event.timestamp_ms > max.saturating_sub(4000));
            max = max.max(event.timestamp_ms);
        }
    }
}
