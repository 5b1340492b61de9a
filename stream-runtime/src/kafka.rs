//! The output topics on Kafka: results, late events and dead letters, through an idempotent
//! producer (`acks=all`) and the workspace's one delivery loop.

use std::time::Duration;

use event_log::kafka::{Cluster, Outgoing, ReplaceableProducer, Retries, deliver};
use rdkafka::error::KafkaError;

use crate::metrics::Metrics;
use crate::sink::{Commit, ResultLog, SinkError};

/// The topics the engine writes.
#[derive(Debug, Clone)]
pub struct OutputTopics {
    pub results: String,
    pub late: String,
    pub dead_letter: String,
}

/// Publishes to the output topics, retrying failed deliveries until they succeed or the
/// retry budget passes without progress.
pub struct KafkaResultLog {
    topics: OutputTopics,
    producer: ReplaceableProducer,
    retry_for: Duration,
    metrics: Metrics,
}

const LOG_SINK: &str = "kafka";

impl KafkaResultLog {
    pub fn new(
        cluster: &Cluster,
        topics: OutputTopics,
        retry_for: Duration,
        metrics: Metrics,
    ) -> Result<Self, KafkaError> {
        let mut config = cluster.client_config();
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("partitioner", "murmur2_random")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "10000")
            .set("queue.buffering.max.messages", "1000000");
        Ok(KafkaResultLog {
            topics,
            producer: ReplaceableProducer::new(config, cluster.context())?,
            retry_for,
            metrics,
        })
    }
}

impl ResultLog for KafkaResultLog {
    async fn publish(&self, commit: &Commit) -> Result<(), SinkError> {
        let encoded = crate::sink::encode(commit);
        let topics = &self.topics;
        let messages: Vec<Outgoing<'_>> = encoded
            .iter()
            .map(|record| Outgoing {
                topic: match record.stream {
                    crate::sink::Stream::Results => &topics.results,
                    crate::sink::Stream::Late => &topics.late,
                    crate::sink::Stream::DeadLetters => &topics.dead_letter,
                },
                key: &record.key,
                payload: &record.payload,
                headers: record.headers.clone(),
            })
            .collect();
        deliver(
            &self.producer,
            &messages,
            Retries::For(self.retry_for),
            |kind| self.metrics.sink_error(LOG_SINK, kind.code()),
        )
        .await
        .map_err(|e| SinkError {
            sink: LOG_SINK,
            message: format!("{e} (retried for {:?})", self.retry_for),
        })
    }
}
