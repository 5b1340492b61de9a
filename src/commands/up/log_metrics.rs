//! The embedded log's metrics on `ecom up`'s `/metrics`, read from the logs at each scrape.

use event_log::embedded::EmbeddedLog;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// The topics of the embedded log, by name.
pub struct LogMetrics {
    pub topics: Vec<(&'static str, EmbeddedLog)>,
}

impl std::fmt::Debug for LogMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.topics.iter().map(|(name, _)| name))
            .finish()
    }
}

impl Collector for LogMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let commits = ConstCounter::new(0u64);
        let mut family = encoder.encode_descriptor(
            "event_log_group_commits",
            "Group commits of the embedded log (one write and sync of every partition file touched, shared by every append queued at the time)",
            None,
            commits.metric_type(),
        )?;
        for (topic, log) in &self.topics {
            ConstCounter::new(log.flushes()).encode(family.encode_family(&[("topic", *topic)])?)?;
        }
        let mut family = encoder.encode_descriptor(
            "event_log_queued_records",
            "Records appended and not yet durable (appends are refused past the queue limit)",
            None,
            ConstGauge::new(0i64).metric_type(),
        )?;
        for (topic, log) in &self.topics {
            ConstGauge::new(log.in_flight() as i64)
                .encode(family.encode_family(&[("topic", *topic)])?)?;
        }
        for (name, help, first) in [
            (
                "event_log_end_offset",
                "The next offset of each partition (records ever appended)",
                false,
            ),
            (
                "event_log_start_offset",
                "The oldest offset retention has kept, per partition",
                true,
            ),
        ] {
            let mut family =
                encoder.encode_descriptor(name, help, None, ConstGauge::new(0i64).metric_type())?;
            for (topic, log) in &self.topics {
                for partition in 0..log.partitions() {
                    let Some((start, end)) = log.bounds(partition) else {
                        continue;
                    };
                    let value = if first { start } else { end };
                    let labels = [
                        ("topic", topic.to_string()),
                        ("partition", partition.to_string()),
                    ];
                    ConstGauge::new(value as i64).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        Ok(())
    }
}
