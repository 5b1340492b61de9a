//! The append side on Kafka: an idempotent producer with `acks=all`.

use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::producer::Producer;

use super::{Cluster, DeliveryErrorKind, Outgoing, ReplaceableProducer, Retries, deliver};
use crate::{AppendError, EventLog, NotReady, Record, TRACEPARENT};

/// Producer settings of [`KafkaLog`].
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    pub cluster: Cluster,
    pub topic: String,
    /// How long an event may wait for the broker's acknowledgement before the append fails.
    pub delivery_timeout: Duration,
    /// Records waiting for acknowledgement above which appends are refused.
    pub max_in_flight: usize,
}

/// Kafka through an idempotent producer with `acks=all`, partitioned by Kafka's murmur2.
pub struct KafkaLog {
    settings: KafkaSettings,
    producer: ReplaceableProducer,
}

impl KafkaLog {
    pub fn new(settings: KafkaSettings) -> Result<Self, KafkaError> {
        let mut config = settings.cluster.client_config();
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set(
                "message.timeout.ms",
                settings.delivery_timeout.as_millis().max(1).to_string(),
            )
            // The Java client's partitioner, which `ecom window --partitions` also uses.
            .set("partitioner", "murmur2_random")
            .set("linger.ms", "2")
            .set(
                "queue.buffering.max.messages",
                (settings.max_in_flight.max(1) * 2).to_string(),
            );
        let producer = ReplaceableProducer::new(config, settings.cluster.context())?;
        Ok(KafkaLog { settings, producer })
    }

    fn queued(&self) -> usize {
        self.producer.get().in_flight_count().max(0) as usize
    }
}

impl EventLog for KafkaLog {
    async fn append(&self, records: Vec<Record>) -> Result<(), AppendError> {
        let in_flight = self.queued();
        let limit = self.settings.max_in_flight;
        if in_flight + records.len() > limit {
            return Err(AppendError::QueueFull { in_flight, limit });
        }
        let messages: Vec<Outgoing<'_>> = records
            .iter()
            .map(|r| Outgoing {
                topic: &self.settings.topic,
                key: &r.key,
                payload: &r.value,
                headers: r
                    .trace
                    .as_ref()
                    .and_then(|t| std::str::from_utf8(t).ok())
                    .map(|t| vec![(TRACEPARENT, t.to_owned())])
                    .unwrap_or_default(),
            })
            .collect();
        deliver(&self.producer, &messages, Retries::None, |_| {})
            .await
            .map_err(|e| match e.kind {
                DeliveryErrorKind::QueueFull => AppendError::QueueFull {
                    in_flight: self.queued(),
                    limit,
                },
                DeliveryErrorKind::Unavailable => AppendError::Unavailable(e.reason),
            })
    }

    async fn ready(&self) -> Result<(), NotReady> {
        let producer = self.producer.get();
        let topic = self.settings.topic.clone();
        let metadata = tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(Some(&topic), Duration::from_secs(2))
        })
        .await
        .map_err(|e| NotReady(e.to_string()))?
        .map_err(|e| NotReady(format!("broker unreachable: {e}")))?;
        match metadata.topics().first() {
            Some(t) if t.error().is_none() && !t.partitions().is_empty() => Ok(()),
            _ => Err(NotReady(format!(
                "topic {} does not exist",
                self.settings.topic
            ))),
        }
    }
}
