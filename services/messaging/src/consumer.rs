//! An idempotent consumer: reads one topic (its share of the partitions) on a thread of its
//! own and hands each message to a [`Handler`] inside a transaction of the participant's
//! database that also records the envelope id in the inbox and the partition's next offset.
//!
//! Invariants:
//! - effect, replies (outbox rows), inbox entry and position commit together or not at all;
//!   a message redelivered (the relay's at-least-once) or read again after a crash finds its
//!   id in the inbox and has no second effect;
//! - positions live in the participant's database, not in the log: a partition assigned to
//!   this consumer starts from the stored next offset (the log's own commit is only for lag
//!   and retention);
//! - a poll's messages are handled in one transaction; when one of them is poison (not an
//!   envelope, or data that does not fit its type), the batch is redone message by message and
//!   the poison one goes to [`DEAD_LETTERS`] with its error, in the transaction that records
//!   it handled; a transient failure (the database or a provider unavailable) retries the
//!   batch with backoff, holding the partition's order, until it succeeds or the consumer stops.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use event_log::{PartitionListener, PartitionReader, ReadBatch, ReadError, StartAt};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use service_common::retry::Backoff;
use service_db::{Db, DbError};
use tokio::runtime::Handle;
use tokio::sync::Notify;

use crate::contract::{DEAD_LETTERS, Message};
use crate::envelope::Envelope;
use crate::{Tx, inbox, outbox};

/// Why a message was not handled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandleError {
    /// Worth trying again later: the database or a provider is unavailable.
    #[error("{0} (retrying)")]
    Retry(String),
    /// The message can never be handled: it goes to the dead letters.
    #[error("{0}")]
    Poison(String),
}

impl From<DbError> for HandleError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Unavailable(_) => HandleError::Retry(e.to_string()),
            // A constraint or a statement that fails now fails again: a bug or bad data.
            DbError::Duplicate(_) | DbError::Other(_) => HandleError::Poison(e.to_string()),
        }
    }
}

impl From<sqlx::Error> for HandleError {
    fn from(e: sqlx::Error) -> Self {
        DbError::from(e).into()
    }
}

/// What a participant does with a message.
pub trait Handler: Send + Sync + 'static {
    /// Whether the participant handles messages of `kind` (others on its topic are skipped
    /// without an inbox entry).
    fn wants(&self, kind: &str) -> bool;

    /// Applies `message` and stages its replies ([`outbox::send`]) in `tx`, which the consumer
    /// commits with the inbox entry and the position.
    fn handle(
        &self,
        tx: &mut Tx,
        envelope: &Envelope,
        message: Message,
    ) -> impl Future<Output = Result<(), HandleError>> + Send;

    /// Some messages were handled and committed (wake whatever waits on their effects).
    fn committed(&self) {}
}

/// Settings of a [`Consumer`].
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// The consumer's name: its consumer group on the log, its rows in the inbox and the
    /// positions (`inventory`, `payments`, `orders`).
    pub name: &'static str,
    /// The topic it reads.
    pub topic: &'static str,
    /// Messages per transaction, at most.
    pub max_batch: usize,
}

impl ConsumerConfig {
    pub fn new(name: &'static str, topic: &'static str) -> Self {
        ConsumerConfig {
            name,
            topic,
            max_batch: 256,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandledLabels {
    consumer: String,
    topic: String,
    r#type: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabels {
    consumer: String,
    topic: String,
    partition: u32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConsumerLabels {
    consumer: String,
    topic: String,
}

/// The consumers' metrics (one set per process, shared by its consumers).
#[derive(Clone, Default)]
pub struct ConsumerMetrics {
    handled: Family<HandledLabels, Counter>,
    lag: Family<PartitionLabels, Gauge>,
    retries: Family<ConsumerLabels, Counter>,
}

impl ConsumerMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = ConsumerMetrics::default();
        registry.register(
            "messages_handled",
            "Order-flow messages by consumer, topic, type and outcome (handled, duplicate, \
             skipped, dead_lettered)",
            metrics.handled.clone(),
        );
        registry.register(
            "consumer_lag",
            "Records between a consumer's position and the end of a partition",
            metrics.lag.clone(),
        );
        registry.register(
            "consumer_retries",
            "Batches a consumer tried again after a transient failure",
            metrics.retries.clone(),
        );
        metrics
    }

    fn count(&self, config: &ConsumerConfig, kind: &str, outcome: &'static str) {
        self.handled
            .get_or_create(&HandledLabels {
                consumer: config.name.to_owned(),
                topic: config.topic.to_owned(),
                r#type: kind.to_owned(),
                outcome,
            })
            .inc();
    }
}

/// The listener of a consumer's reader: starts each assigned partition at the position the
/// database holds.
pub struct Positions {
    db: Db,
    config: ConsumerConfig,
    runtime: Handle,
    metrics: ConsumerMetrics,
}

impl PartitionListener for Positions {
    fn assigned(&self, partitions: &[u32]) -> Option<Vec<(u32, StartAt)>> {
        // On the consumer's own thread, outside the runtime: it may wait for the database.
        let stored = self
            .runtime
            .block_on(inbox::load_positions(
                &self.db,
                self.config.name,
                self.config.topic,
            ))
            .map_err(|e| {
                tracing::warn!(consumer = self.config.name, error = %e, "cannot read the positions; retrying");
            })
            .ok()?;
        Some(
            partitions
                .iter()
                .map(|&p| {
                    let start = stored
                        .iter()
                        .find(|(q, _)| *q == p)
                        .map_or(StartAt::Beginning, |(_, next)| StartAt::Offset(*next));
                    (p, start)
                })
                .collect(),
        )
    }

    fn revoked(&self, _partitions: &[u32]) {
        // Nothing is in flight: a batch commits before the next poll, in which revocations
        // are told.
    }

    fn lag(&self, partition: u32, records: u64) {
        self.metrics
            .lag
            .get_or_create(&PartitionLabels {
                consumer: self.config.name.to_owned(),
                topic: self.config.topic.to_owned(),
                partition,
            })
            .set(records as i64);
    }
}

/// One record read, owned.
struct Item {
    partition: u32,
    offset: u64,
    payload: Vec<u8>,
}

/// What became of a message.
enum Outcome {
    Handled(String),
    Duplicate(String),
    Skipped(String),
}

/// Why a transaction did not commit.
enum Failure {
    Retry(String),
    Poison,
    Stopped,
}

/// A running consumer: its thread, until [`Consumer::stop`].
pub struct Consumer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Worker<H> {
    config: ConsumerConfig,
    db: Db,
    handler: Arc<H>,
    wake: Arc<Notify>,
    metrics: ConsumerMetrics,
    stop: Arc<AtomicBool>,
    runtime: Handle,
}

impl Consumer {
    /// Starts consuming on a thread of its own: `open` makes the reader (the embedded log's
    /// `reader(config.name, listener)`, or a Kafka consumer of group `config.name`) from the
    /// listener given. `wake` is the participant's relay's waker, told after each commit. Call
    /// from inside a Tokio runtime: handlers run on it.
    pub fn start<R, H>(
        config: ConsumerConfig,
        db: Db,
        handler: Arc<H>,
        wake: Arc<Notify>,
        metrics: ConsumerMetrics,
        open: impl FnOnce(Arc<Positions>) -> Result<R, ReadError>,
    ) -> Result<Consumer, ReadError>
    where
        R: PartitionReader + 'static,
        H: Handler,
    {
        let runtime = Handle::current();
        let positions = Arc::new(Positions {
            db: db.clone(),
            config: config.clone(),
            runtime: runtime.clone(),
            metrics: metrics.clone(),
        });
        let reader = open(positions)?;
        let stop = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            config,
            db,
            handler,
            wake,
            metrics,
            stop: stop.clone(),
            runtime,
        };
        let thread = std::thread::Builder::new()
            .name(format!("consume-{}", worker.config.topic))
            .spawn(move || worker.run(reader))
            .map_err(|e| ReadError(format!("cannot start the consumer's thread: {e}")))?;
        Ok(Consumer {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops after the batch in hand commits (or at once if it is waiting to retry).
    pub async fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

impl<H: Handler> Worker<H> {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    fn run<R: PartitionReader>(self, reader: R) {
        while !self.stopping() {
            let items: Vec<Item> = match reader
                .poll(self.config.max_batch, Duration::from_millis(100))
            {
                Ok(Some(batch)) => batch
                    .runs()
                    .into_iter()
                    .flat_map(|(partition, records)| {
                        records.into_iter().map(move |r| Item {
                            partition,
                            offset: r.offset,
                            payload: r.payload.unwrap_or_default().to_vec(),
                        })
                    })
                    .collect(),
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(consumer = self.config.name, topic = self.config.topic, error = %e, "cannot read; retrying");
                    std::thread::sleep(Duration::from_millis(200));
                    continue;
                }
            };
            if items.is_empty() {
                continue;
            }
            if !self.runtime.block_on(self.process(&items)) {
                break;
            }
            let mut ends: Vec<(u32, u64)> = Vec::new();
            for item in &items {
                match ends.iter_mut().find(|(p, _)| *p == item.partition) {
                    Some((_, next)) => *next = (*next).max(item.offset + 1),
                    None => ends.push((item.partition, item.offset + 1)),
                }
            }
            reader.commit(&ends, false);
            self.wake.notify_one();
            self.handler.committed();
        }
        reader.close();
    }

    /// Handles `items` and commits them; `false` when the consumer stopped first (nothing of
    /// what was not committed counts: it is read again on the next start).
    async fn process(&self, items: &[Item]) -> bool {
        let mut backoff = Backoff::new(Duration::from_secs(u64::from(u32::MAX)));
        loop {
            match self.batch(items).await {
                Ok(()) => return true,
                Err(Failure::Stopped) => return false,
                Err(Failure::Poison) => break,
                Err(Failure::Retry(e)) => {
                    if !self.wait_to_retry(&mut backoff, &e).await {
                        return false;
                    }
                }
            }
        }
        // One of them is poison: each on its own, the poison one to the dead letters.
        for item in items {
            let mut backoff = Backoff::new(Duration::from_secs(u64::from(u32::MAX)));
            loop {
                match self.single(item).await {
                    Ok(()) => break,
                    Err(Failure::Stopped) => return false,
                    // `single` sends poison to the dead letters itself.
                    Err(Failure::Poison) => break,
                    Err(Failure::Retry(e)) => {
                        if !self.wait_to_retry(&mut backoff, &e).await {
                            return false;
                        }
                    }
                }
            }
        }
        true
    }

    async fn wait_to_retry(&self, backoff: &mut Backoff, error: &str) -> bool {
        self.metrics
            .retries
            .get_or_create(&ConsumerLabels {
                consumer: self.config.name.to_owned(),
                topic: self.config.topic.to_owned(),
            })
            .inc();
        tracing::warn!(consumer = self.config.name, topic = self.config.topic, %error, "a batch failed; retrying");
        let delay = backoff.next_delay().unwrap_or(service_common::retry::MAX);
        let until = tokio::time::Instant::now() + delay;
        while tokio::time::Instant::now() < until {
            if self.stopping() {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20).min(delay)).await;
        }
        !self.stopping()
    }

    /// Every item in one transaction.
    async fn batch(&self, items: &[Item]) -> Result<(), Failure> {
        if self.stopping() {
            return Err(Failure::Stopped);
        }
        let mut tx = self.db.begin_write().await.map_err(retry)?;
        let mut outcomes = Vec::with_capacity(items.len());
        for item in items {
            match self.apply(&mut tx, item).await {
                Ok(outcome) => outcomes.push(outcome),
                Err(HandleError::Retry(e)) => return Err(Failure::Retry(e)),
                Err(HandleError::Poison(_)) => return Err(Failure::Poison),
            }
        }
        self.store_positions(&mut tx, items).await.map_err(retry)?;
        tx.commit().await.map_err(|e| retry(e.into()))?;
        for outcome in outcomes {
            self.count(outcome);
        }
        Ok(())
    }

    /// One item in its own transaction; poison goes to the dead letters.
    async fn single(&self, item: &Item) -> Result<(), Failure> {
        let mut tx = self.db.begin_write().await.map_err(retry)?;
        match self.apply(&mut tx, item).await {
            Ok(outcome) => {
                self.store_positions(&mut tx, std::slice::from_ref(item))
                    .await
                    .map_err(retry)?;
                tx.commit().await.map_err(|e| retry(e.into()))?;
                self.count(outcome);
                Ok(())
            }
            Err(HandleError::Retry(e)) => Err(Failure::Retry(e)),
            Err(HandleError::Poison(error)) => {
                drop(tx);
                let mut tx = self.db.begin_write().await.map_err(retry)?;
                let kind = self
                    .dead_letter(&mut tx, item, &error)
                    .await
                    .map_err(retry)?;
                self.store_positions(&mut tx, std::slice::from_ref(item))
                    .await
                    .map_err(retry)?;
                tx.commit().await.map_err(|e| retry(e.into()))?;
                tracing::error!(consumer = self.config.name, topic = self.config.topic, partition = item.partition, offset = item.offset, %error, "a message cannot be handled; sent to {DEAD_LETTERS}");
                self.metrics.count(&self.config, &kind, "dead_lettered");
                Ok(())
            }
        }
    }

    async fn apply(&self, tx: &mut Tx, item: &Item) -> Result<Outcome, HandleError> {
        let envelope =
            Envelope::parse(&item.payload).map_err(|e| HandleError::Poison(e.to_string()))?;
        if crate::contract::topic_of(&envelope.kind).is_none()
            || !self.handler.wants(&envelope.kind)
        {
            return Ok(Outcome::Skipped(envelope.kind));
        }
        let message = match envelope.message() {
            Ok(Some(message)) => message,
            Ok(None) => return Ok(Outcome::Skipped(envelope.kind)),
            Err(e) => return Err(HandleError::Poison(e.to_string())),
        };
        if !inbox::first_time(tx, self.config.name, &envelope.id, &envelope.kind).await? {
            return Ok(Outcome::Duplicate(envelope.kind));
        }
        self.handler.handle(tx, &envelope, message).await?;
        Ok(Outcome::Handled(envelope.kind))
    }

    /// Stages the dead letter of `item` (and records its envelope id handled, if it has one).
    /// Returns its type, as far as known.
    async fn dead_letter(&self, tx: &mut Tx, item: &Item, error: &str) -> Result<String, DbError> {
        let parsed = Envelope::parse(&item.payload).ok();
        if let Some(envelope) = &parsed {
            inbox::first_time(tx, self.config.name, &envelope.id, &envelope.kind).await?;
        }
        let letter = serde_json::json!({
            "consumer": self.config.name,
            "topic": self.config.topic,
            "partition": item.partition,
            "offset": item.offset,
            "error": error,
            "record": String::from_utf8_lossy(&item.payload),
        });
        let key = parsed.as_ref().map_or("unknown", |e| e.subject.as_str());
        let trace = parsed.as_ref().and_then(|e| e.traceparent.as_deref());
        outbox::stage(tx, DEAD_LETTERS, key, &letter.to_string(), trace).await?;
        Ok(parsed.map_or_else(|| "unknown".to_owned(), |e| e.kind))
    }

    async fn store_positions(&self, tx: &mut Tx, items: &[Item]) -> Result<(), DbError> {
        let mut ends: Vec<(u32, u64)> = Vec::new();
        for item in items {
            match ends.iter_mut().find(|(p, _)| *p == item.partition) {
                Some((_, next)) => *next = (*next).max(item.offset + 1),
                None => ends.push((item.partition, item.offset + 1)),
            }
        }
        for (partition, next) in ends {
            inbox::store_position(tx, self.config.name, self.config.topic, partition, next).await?;
        }
        Ok(())
    }

    fn count(&self, outcome: Outcome) {
        let (kind, outcome) = match &outcome {
            Outcome::Handled(kind) => (kind, "handled"),
            Outcome::Duplicate(kind) => (kind, "duplicate"),
            Outcome::Skipped(kind) => (kind, "skipped"),
        };
        self.metrics.count(&self.config, kind, outcome);
    }
}

fn retry(e: DbError) -> Failure {
    Failure::Retry(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metrics_are_labelled_by_type_and_outcome() {
        let mut registry = Registry::default();
        let metrics = ConsumerMetrics::register(&mut registry);
        metrics.count(
            &ConsumerConfig::new("inventory", "order.events"),
            "OrderCreated",
            "duplicate",
        );
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(
                r#"messages_handled_total{consumer="inventory",topic="order.events",type="OrderCreated",outcome="duplicate"} 1"#
            ),
            "{text}"
        );
    }
}
