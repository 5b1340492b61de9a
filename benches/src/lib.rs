//! Shared fixtures of the benchmarks: the streams every bench measures, stated once.

use stream_engine::Event;
use stream_engine::sample::{Sample, SampleConfig};

/// The hot-path workload of issue #2: 10k products with Zipf(1.1) popularity, 100k users,
/// 20k events per second of event time (1.2 M events per minute), disorder up to 8 s.
pub fn workload(events: u64) -> SampleConfig {
    SampleConfig {
        events,
        products: 10_000,
        users: 100_000,
        product_skew: 1.1,
        events_per_second: 20_000,
        disorder_ms: 8_000,
        ..SampleConfig::default()
    }
}

/// Decoded events, as the engine sees them after the decoder.
pub fn decoded(config: SampleConfig) -> Vec<Event<'static>> {
    Sample::new(config).map(|e| e.to_event()).collect()
}

/// The same stream as NDJSON bytes.
pub fn ndjson(config: SampleConfig) -> Vec<u8> {
    let mut out = Vec::new();
    let mut sample = Sample::new(config);
    while sample.write_line(&mut out) {}
    out
}
