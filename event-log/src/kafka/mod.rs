//! Kafka (feature `kafka`): the [`EventLog`](crate::EventLog) as an idempotent producer
//! ([`KafkaLog`]), the [`PartitionReader`](crate::PartitionReader) as a consumer group
//! ([`KafkaReader`]), and what every Kafka client of the platform shares: client settings,
//! topic creation, the replaceable producer and the one delivery loop ([`deliver`]).

mod append;
mod reader;

pub use append::{KafkaLog, KafkaSettings};
pub use reader::{KafkaReader, KafkaReaderSettings};

use std::sync::{Arc, RwLock};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use service_common::retry::Backoff;

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

/// A topic could not be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TopicError(String);

/// Creates the topics that do not exist yet; existing ones are left as they are.
pub async fn ensure_topics(
    bootstrap_servers: &str,
    topics: &[TopicSpec],
    timeout: Duration,
) -> Result<(), TopicError> {
    let admin: AdminClient<DefaultClientContext> = client_config(bootstrap_servers)
        .create()
        .map_err(|e| TopicError(format!("cannot create a Kafka admin client: {e}")))?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(&t.name, t.partitions, TopicReplication::Fixed(1)))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(timeout));
    let results = admin
        .create_topics(new.iter(), &options)
        .await
        .map_err(|e| TopicError(format!("cannot create topics on {bootstrap_servers}: {e}")))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(TopicError(format!("cannot create topic {topic}: {code}")));
            }
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

/// A message to deliver.
#[derive(Debug, Clone)]
pub struct Outgoing<'a> {
    pub topic: &'a str,
    pub key: &'a [u8],
    pub payload: &'a [u8],
    pub headers: Vec<(&'static str, String)>,
}

/// Why messages were not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{failed} messages not delivered: {reason}")]
pub struct DeliveryError {
    pub failed: usize,
    pub kind: DeliveryErrorKind,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryErrorKind {
    /// The producer's local queue is full.
    QueueFull,
    /// The broker did not acknowledge (timeout, unreachable, refused).
    Unavailable,
}

impl DeliveryErrorKind {
    pub fn code(self) -> &'static str {
        match self {
            DeliveryErrorKind::QueueFull => "queue_full",
            DeliveryErrorKind::Unavailable => "unavailable",
        }
    }
}

/// How long [`deliver`] goes on after failures.
#[derive(Debug, Clone, Copy)]
pub enum Retries {
    /// One attempt per message: the caller answers its own client (ingest's 503).
    None,
    /// Failed messages are sent again with [`Backoff`] until this budget passes without any
    /// delivery succeeding.
    For(Duration),
}

/// The delivery loop of every Kafka producer of the platform: hands every message to the
/// producer, waits for each acknowledgement (even after one was refused, so that none is left
/// unaccounted for), replaces a fenced producer, and retries the failures as `retries` says.
/// `on_failure` is told the kind of every failed attempt (for metrics).
pub async fn deliver(
    producer: &ReplaceableProducer,
    messages: &[Outgoing<'_>],
    retries: Retries,
    mut on_failure: impl FnMut(DeliveryErrorKind),
) -> Result<(), DeliveryError> {
    let mut todo: Vec<&Outgoing<'_>> = messages.iter().collect();
    let mut backoff = match retries {
        Retries::None => None,
        Retries::For(budget) => Some(Backoff::new(budget)),
    };
    loop {
        let attempted = todo.len();
        let current = producer.get();
        let mut deliveries = Vec::with_capacity(todo.len());
        let mut failed = Vec::new();
        let mut last_error = None;
        for message in todo {
            let mut headers = OwnedHeaders::new_with_capacity(message.headers.len());
            for (name, value) in &message.headers {
                headers = headers.insert(Header {
                    key: name,
                    value: Some(value.as_bytes()),
                });
            }
            let record = FutureRecord::to(message.topic)
                .key(message.key)
                .payload(message.payload)
                .headers(headers);
            match current.send_result(record) {
                Ok(delivery) => deliveries.push((message, delivery)),
                Err((e, _)) => {
                    failed.push(message);
                    last_error = Some(e);
                }
            }
        }
        let mut fenced = false;
        for (message, delivery) in deliveries {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => {
                    fenced |= needs_new_producer(&e);
                    failed.push(message);
                    last_error = Some(e);
                }
                Err(_) => failed.push(message),
            }
        }
        if fenced {
            producer.replace(&current);
        }
        if failed.is_empty() {
            return Ok(());
        }
        let kind = match &last_error {
            Some(KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)) => {
                DeliveryErrorKind::QueueFull
            }
            _ => DeliveryErrorKind::Unavailable,
        };
        on_failure(kind);
        let error = || DeliveryError {
            failed: failed.len(),
            kind,
            reason: last_error
                .as_ref()
                .map_or_else(|| "the producer was dropped".to_owned(), |e| e.to_string()),
        };
        let Some(backoff) = backoff.as_mut() else {
            return Err(error());
        };
        if failed.len() < attempted {
            backoff.progressed();
        }
        tracing::warn!(
            messages = failed.len(),
            kind = kind.code(),
            "retrying deliveries"
        );
        if !backoff.wait().await {
            return Err(error());
        }
        todo = failed;
    }
}
