//! The engine's Prometheus metrics.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabel {
    pub partition: u32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkLabel {
    pub sink: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkErrorLabel {
    pub sink: &'static str,
    pub kind: &'static str,
}

type Seconds = Gauge<f64, AtomicU64>;
type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Everything the engine counts. Counters are per process: a replayed record is counted again
/// in `stream_records`, never in `stream_events` (replay only rebuilds state).
#[derive(Clone)]
pub struct Metrics {
    pub records: Counter,
    pub events: Counter,
    pub rejected: Family<ReasonLabel, Counter>,
    pub late: Counter,
    pub windows_fired: Counter,
    pub superseded: Counter,
    pub watermark_lag: Family<PartitionLabel, Seconds>,
    pub consumer_lag: Family<PartitionLabel, Gauge>,
    pub checkpoint_age: Family<PartitionLabel, Seconds>,
    pub assigned: Gauge,
    pub open_windows: Gauge,
    pub source_errors: Counter,
    pub sink_duration: Histograms<SinkLabel>,
    pub sink_errors: Family<SinkErrorLabel, Counter>,
    pub result_latency: Histogram,
}

fn latency_histogram() -> Histogram {
    // 1 ms to about 33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Metrics {
            records: Counter::default(),
            events: Counter::default(),
            rejected: Family::default(),
            late: Counter::default(),
            windows_fired: Counter::default(),
            superseded: Counter::default(),
            watermark_lag: Family::default(),
            consumer_lag: Family::default(),
            checkpoint_age: Family::default(),
            assigned: Gauge::default(),
            open_windows: Gauge::default(),
            source_errors: Counter::default(),
            sink_duration: Family::new_with_constructor(latency_histogram),
            sink_errors: Family::default(),
            result_latency: latency_histogram(),
        };
        let r = registry;
        r.register(
            "stream_records",
            "Records read from the input topic (replayed ones included)",
            m.records.clone(),
        );
        r.register(
            "stream_events",
            "Events aggregated into a window (each once, replays excluded)",
            m.events.clone(),
        );
        r.register(
            "stream_events_rejected",
            "Records that are not valid events, by reason; each went to the dead-letter topic",
            m.rejected.clone(),
        );
        r.register(
            "stream_events_late",
            "Events whose window had fired and was gone; each went to the late-events topic",
            m.late.clone(),
        );
        r.register(
            "stream_windows_fired",
            "Window results emitted (re-fires within the allowed lateness included)",
            m.windows_fired.clone(),
        );
        r.register(
            "stream_results_superseded",
            "Result writes refused by the store because it held a result with more events",
            m.superseded.clone(),
        );
        r.register(
            "stream_watermark_lag_seconds",
            "Wall-clock time minus the partition's watermark",
            m.watermark_lag.clone(),
        );
        r.register(
            "stream_consumer_lag_records",
            "Records from the committed offset (the oldest record still feeding an open window) to the end of the partition, from the client's statistics",
            m.consumer_lag.clone(),
        );
        r.register(
            "stream_checkpoint_age_seconds",
            "Time since the partition's checkpoint was last stored (it is only stored when it moves, so a quiet partition's age grows)",
            m.checkpoint_age.clone(),
        );
        r.register(
            "stream_assigned_partitions",
            "Input partitions this instance owns",
            m.assigned.clone(),
        );
        r.register(
            "stream_open_windows",
            "Windows held in state over all owned partitions",
            m.open_windows.clone(),
        );
        r.register(
            "stream_source_errors",
            "Errors reported by the input consumer (the client retries them)",
            m.source_errors.clone(),
        );
        r.register(
            "stream_sink_duration_seconds",
            "Time to store or publish one commit's output, by sink",
            m.sink_duration.clone(),
        );
        r.register(
            "stream_sink_errors",
            "Failed sink operations by sink and kind (retried unless the kind is permanent)",
            m.sink_errors.clone(),
        );
        r.register(
            "stream_result_latency_seconds",
            "From a window firing (the watermark passing its end) to its result being stored",
            m.result_latency.clone(),
        );
        m
    }

    pub fn sink_error(&self, sink: &'static str, kind: &'static str) {
        self.sink_errors
            .get_or_create(&SinkErrorLabel { sink, kind })
            .inc();
    }

    pub fn forget_partition(&self, partition: u32) {
        let label = PartitionLabel { partition };
        self.watermark_lag.remove(&label);
        self.consumer_lag.remove(&label);
        self.checkpoint_age.remove(&label);
    }
}
