//! Where accepted events go: an append-only, partitioned event log. Kafka in production and in
//! the integration tests; the one-command local mode plugs an in-process log in here.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use service_common::kafka::{ReplaceableProducer, needs_new_producer};

use crate::body::Record;

/// Why events could not be appended. Nothing is ever reported appended that was not.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// The log did not acknowledge in time, or cannot be reached: retry later.
    #[error("the event log is unavailable: {0}")]
    Unavailable(String),
    /// Too many events are waiting for acknowledgement: retry later.
    #[error("the producer queue is full ({in_flight} events waiting, limit {limit})")]
    QueueFull { in_flight: usize, limit: usize },
}

impl AppendError {
    /// The error code of the 503 answer, also the `kind` label of the delivery-error metric.
    pub fn code(&self) -> &'static str {
        match self {
            AppendError::Unavailable(_) => "log_unavailable",
            AppendError::QueueFull { .. } => "queue_full",
        }
    }
}

/// An append-only log of events, keyed.
pub trait EventLog: Send + Sync + 'static {
    /// Appends every record; resolves `Ok` only once the log has durably acknowledged all of
    /// them. On `Err`, some of them may have been appended (a retry may then duplicate them).
    fn append(&self, records: Vec<Record>) -> impl Future<Output = Result<(), AppendError>> + Send;

    /// Whether the log can be reached and has the topic.
    fn ready(&self) -> impl Future<Output = Result<(), String>> + Send;

    /// Events handed over and not acknowledged yet.
    fn in_flight(&self) -> usize;
}

/// Producer settings of [`KafkaLog`].
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    pub bootstrap_servers: String,
    pub topic: String,
    /// How long an event may wait for the broker's acknowledgement before the request fails.
    pub delivery_timeout: Duration,
    /// Events waiting for acknowledgement above which requests are refused (503).
    pub max_in_flight: usize,
}

/// Kafka through an idempotent producer with `acks=all`.
pub struct KafkaLog {
    settings: KafkaSettings,
    producer: ReplaceableProducer,
}

impl KafkaLog {
    pub fn new(settings: KafkaSettings) -> Result<Self, KafkaError> {
        let producer = ReplaceableProducer::new(producer_config(&settings))?;
        Ok(KafkaLog { settings, producer })
    }

    fn producer(&self) -> Arc<FutureProducer> {
        self.producer.get()
    }

    fn replace(&self, broken: &Arc<FutureProducer>) {
        self.producer.replace(broken);
    }
}

fn producer_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = service_common::kafka::client_config(&settings.bootstrap_servers);
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
    config
}

impl EventLog for KafkaLog {
    async fn append(&self, records: Vec<Record>) -> Result<(), AppendError> {
        let producer = self.producer();
        let in_flight = producer.in_flight_count().max(0) as usize;
        let limit = self.settings.max_in_flight;
        if in_flight + records.len() > limit {
            return Err(AppendError::QueueFull { in_flight, limit });
        }
        let mut deliveries = Vec::with_capacity(records.len());
        let mut refused = None;
        for record in &records {
            let message = FutureRecord::to(&self.settings.topic)
                .key(&record.key[..])
                .payload(&record.value[..]);
            match producer.send_result(message) {
                Ok(delivery) => deliveries.push(delivery),
                Err((e, _)) => {
                    refused = Some(e);
                    break;
                }
            }
        }
        // Wait for every event handed over, even when one was refused: none is left
        // unaccounted for.
        let mut failed = None;
        let mut fenced = false;
        for delivery in deliveries {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => {
                    fenced |= needs_new_producer(&e);
                    failed = failed.or(Some(e.to_string()));
                }
                Err(_) => failed = failed.or(Some("the producer was dropped".to_owned())),
            }
        }
        if fenced {
            self.replace(&producer);
        }
        match (refused, failed) {
            (Some(KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)), _) => {
                Err(AppendError::QueueFull {
                    in_flight: producer.in_flight_count().max(0) as usize,
                    limit,
                })
            }
            (Some(e), _) => Err(AppendError::Unavailable(e.to_string())),
            (None, Some(reason)) => Err(AppendError::Unavailable(reason)),
            (None, None) => Ok(()),
        }
    }

    async fn ready(&self) -> Result<(), String> {
        let producer = self.producer();
        let topic = self.settings.topic.clone();
        let metadata = tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(Some(&topic), Duration::from_secs(2))
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("broker unreachable: {e}"))?;
        match metadata.topics().first() {
            Some(t) if t.error().is_none() && !t.partitions().is_empty() => Ok(()),
            _ => Err(format!("topic {} does not exist", self.settings.topic)),
        }
    }

    fn in_flight(&self) -> usize {
        self.producer().in_flight_count().max(0) as usize
    }
}
