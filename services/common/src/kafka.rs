//! Kafka client settings and topic creation shared by the producers and consumers.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{FutureProducer, Producer};

/// The settings every client of the platform starts from.
pub fn client_config(bootstrap_servers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap_servers)
        // Fail fast on a dead address, and come back quickly once the broker is back.
        .set("socket.connection.setup.timeout.ms", "5000")
        .set("reconnect.backoff.max.ms", "1000");
    config
}

/// A topic the platform needs.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
}

/// Creates the topics that do not exist yet; existing ones are left as they are.
pub async fn ensure_topics(
    bootstrap_servers: &str,
    topics: &[TopicSpec],
    timeout: Duration,
) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> = client_config(bootstrap_servers)
        .create()
        .map_err(|e| format!("cannot create a Kafka admin client: {e}"))?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(&t.name, t.partitions, TopicReplication::Fixed(1)))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(timeout));
    let results = admin
        .create_topics(new.iter(), &options)
        .await
        .map_err(|e| format!("cannot create topics on {bootstrap_servers}: {e}"))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(format!("cannot create topic {topic}: {code}")),
        }
    }
    Ok(())
}

/// An idempotent producer that is replaced by a new one (a new producer id) when it can no
/// longer deliver: after a fatal error, or when the broker fenced or forgot its id.
pub struct ReplaceableProducer {
    config: ClientConfig,
    slot: RwLock<Arc<FutureProducer>>,
}

impl ReplaceableProducer {
    pub fn new(config: ClientConfig) -> Result<Self, KafkaError> {
        let slot = RwLock::new(Arc::new(config.create()?));
        Ok(ReplaceableProducer { config, slot })
    }

    /// The current producer, replaced first if it failed fatally.
    pub fn get(&self) -> Arc<FutureProducer> {
        let current = self.slot.read().unwrap_or_else(|e| e.into_inner()).clone();
        match current.client().fatal_error() {
            Some((code, reason)) => {
                tracing::error!(%code, %reason, "Kafka producer failed fatally");
                self.replace(&current)
            }
            None => current,
        }
    }

    /// Puts a new producer in place of `broken`, unless another caller already did.
    pub fn replace(&self, broken: &Arc<FutureProducer>) -> Arc<FutureProducer> {
        let mut slot = self.slot.write().unwrap_or_else(|e| e.into_inner());
        if !Arc::ptr_eq(&slot, broken) {
            return slot.clone();
        }
        match self.config.create() {
            Ok(fresh) => {
                tracing::warn!("replaced the Kafka producer");
                *slot = Arc::new(fresh);
            }
            Err(e) => tracing::error!(error = %e, "cannot create a Kafka producer"),
        }
        slot.clone()
    }
}

/// Errors after which an idempotent producer's id is no good: the broker lost or fenced its
/// sequence state (tansu fences a producer whose epoch was bumped after a timeout). Only a
/// new producer (a new id) gets through.
pub fn needs_new_producer(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::ProducerFenced
                | RDKafkaErrorCode::InvalidProducerEpoch
                | RDKafkaErrorCode::UnknownProducerId
                | RDKafkaErrorCode::OutOfOrderSequenceNumber
                | RDKafkaErrorCode::InvalidProducerIdMapping
        )
    )
}
