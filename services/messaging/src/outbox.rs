//! The transactional outbox: a service's outgoing records are rows of its `outbox` table,
//! written in the transaction of the change they announce ([`stage`], [`send`]); the [`Relay`]
//! appends unsent rows to their topics' logs and only then marks them sent.
//!
//! Invariants:
//! - a record whose transaction committed is appended at least once: a crash after the append
//!   and before the mark sends the rows again on the next pass (consumers drop the duplicate
//!   by its envelope id, the stream by its `event_id`);
//! - rows are appended in id order, which is commit order within a process; so one order's
//!   messages (one key) reach their partition in the order they were staged. On PostgreSQL
//!   several relays share the table, each taking its rows `FOR UPDATE SKIP LOCKED`; two
//!   replicas' relays can then append a later row of a key first, which is why every consumer
//!   is written to tolerate reordering.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use event_log::{EventLog, Record};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use service_common::retry::Backoff;
use service_db::{Backend, Db, DbError, now_us};
use sqlx::Row;
use tokio::sync::Notify;

use crate::Tx;
use crate::contract::Message;
use crate::envelope::Envelope;

/// The `outbox` table of a participant's migrations (the orders service's has the same shape,
/// from its own migrations).
pub const TABLE: &str = "\
CREATE TABLE outbox (
    id TEXT PRIMARY KEY,
    topic TEXT NOT NULL,
    record_key TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    sent_at BIGINT,
    traceparent TEXT
);
CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL;
CREATE INDEX outbox_sent ON outbox (sent_at) WHERE sent_at IS NOT NULL;";

/// Rows appended per pass.
pub const BATCH: i64 = 500;
/// Sent rows are deleted after this long.
const KEEP_SENT_US: i64 = 24 * 3600 * 1_000_000;

/// Writes a record for `topic` into the outbox, in `tx`.
pub async fn stage(
    tx: &mut Tx,
    topic: &str,
    key: &str,
    payload: &str,
    traceparent: Option<&str>,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO outbox (id, topic, record_key, payload, created_at, traceparent) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(service_db::new_id())
    .bind(topic)
    .bind(key)
    .bind(payload)
    .bind(now_us())
    .bind(traceparent)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Stages `envelope` on its message's topic, keyed by its subject (the order id).
pub async fn send(tx: &mut Tx, envelope: &Envelope) -> Result<(), DbError> {
    let topic = crate::contract::topic_of(&envelope.kind).unwrap_or(crate::contract::DEAD_LETTERS);
    stage(
        tx,
        topic,
        &envelope.subject,
        &envelope.to_json(),
        envelope.traceparent.as_deref(),
    )
    .await
}

/// Stages a new message from `source` about `subject`; returns its envelope.
pub async fn send_new(
    tx: &mut Tx,
    source: &str,
    subject: &str,
    message: &Message,
) -> Result<Envelope, DbError> {
    let envelope = Envelope::new(source, subject, message);
    send(tx, &envelope).await?;
    Ok(envelope)
}

/// Where each topic's records go: a log per topic (the embedded log's topics, or a Kafka
/// producer per topic).
pub struct Topics<L> {
    logs: HashMap<String, L>,
}

impl<L: EventLog> Default for Topics<L> {
    fn default() -> Self {
        Topics {
            logs: HashMap::new(),
        }
    }
}

impl<L: EventLog> Topics<L> {
    pub fn with(mut self, topic: &str, log: L) -> Self {
        self.logs.insert(topic.to_owned(), log);
        self
    }

    pub fn get(&self, topic: &str) -> Option<&L> {
        self.logs.get(topic)
    }

    fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.logs.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}

/// Why a pass of the relay did not finish.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("the event log did not take the records of {topic}: {error}")]
    Log {
        topic: String,
        error: event_log::AppendError,
    },
}

impl From<sqlx::Error> for RelayError {
    fn from(e: sqlx::Error) -> Self {
        RelayError::Db(e.into())
    }
}

/// One relay's metrics: its series of the process's [`RelayFamilies`].
#[derive(Debug, Clone, Default)]
pub struct RelayMetrics {
    pub sent: Counter,
    pub errors: Counter,
    pub backlog: Gauge,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabel {
    service: &'static str,
}

/// The relays' metrics of a process, a family each labelled `service`, registered once (in
/// `ecom up` every service's relay shares one registry, and a family is registered only once).
#[derive(Debug, Clone, Default)]
pub struct RelayFamilies {
    sent: Family<ServiceLabel, Counter>,
    errors: Family<ServiceLabel, Counter>,
    backlog: Family<ServiceLabel, Gauge>,
}

impl RelayFamilies {
    pub fn register(registry: &mut Registry) -> Self {
        let families = RelayFamilies::default();
        registry.register(
            "outbox_sent",
            "Outbox records appended to the event log",
            families.sent.clone(),
        );
        registry.register(
            "outbox_relay_errors",
            "Relay passes that failed (the rows are sent again)",
            families.errors.clone(),
        );
        registry.register(
            "outbox_backlog",
            "Outbox records not yet appended to the event log",
            families.backlog.clone(),
        );
        families
    }

    /// The series of `service`'s relay.
    pub fn for_service(&self, service: &'static str) -> RelayMetrics {
        let label = ServiceLabel { service };
        RelayMetrics {
            sent: self.sent.get_or_create(&label).clone(),
            errors: self.errors.get_or_create(&label).clone(),
            backlog: self.backlog.get_or_create(&label).clone(),
        }
    }
}

/// Moves outbox rows to their topics.
pub struct Relay<L> {
    db: Db,
    topics: Arc<Topics<L>>,
    wake: Arc<Notify>,
    metrics: RelayMetrics,
}

impl<L: EventLog> Relay<L> {
    /// A relay of the rows whose topic is one of `topics` (others wait for a relay that has
    /// their topic).
    pub fn new(db: Db, topics: Topics<L>, metrics: RelayMetrics) -> Self {
        Relay {
            db,
            topics: Arc::new(topics),
            wake: Arc::new(Notify::new()),
            metrics,
        }
    }

    /// What wakes the relay at once (a transaction with outbox rows just committed) rather
    /// than at its next poll.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// One pass: appends up to [`BATCH`] unsent rows, in id order, then marks them sent.
    /// Returns how many were sent.
    pub async fn pass(&self) -> Result<usize, RelayError> {
        let names = self.topics.names();
        if names.is_empty() {
            return Ok(0);
        }
        let mut tx = match self.db.backend() {
            Backend::Postgres => Some(self.db.begin_write().await?),
            Backend::Sqlite => None,
        };
        let topics: Vec<String> = (2..names.len() + 2).map(|i| format!("${i}")).collect();
        let lock = match self.db.backend() {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let select = format!(
            "SELECT id, topic, record_key, payload, traceparent FROM outbox \
             WHERE sent_at IS NULL AND topic IN ({}) ORDER BY id LIMIT $1{lock}",
            topics.join(", ")
        );
        let mut query = sqlx::query(&select).bind(BATCH);
        for name in &names {
            query = query.bind(*name);
        }
        let rows = match tx.as_mut() {
            Some(tx) => query.fetch_all(&mut **tx).await?,
            None => query.fetch_all(self.db.pool()).await?,
        };
        if rows.is_empty() {
            return Ok(0);
        }
        let mut ids = Vec::with_capacity(rows.len());
        // Per topic, in id order.
        let mut records: Vec<(String, Vec<Record>)> = Vec::new();
        for row in &rows {
            ids.push(row.try_get::<String, _>("id")?);
            let topic: String = row.try_get("topic")?;
            let key: String = row.try_get("record_key")?;
            let payload: String = row.try_get("payload")?;
            let trace: Option<String> = row.try_get("traceparent")?;
            let record = Record {
                key: Bytes::from(key),
                value: Bytes::from(payload),
                trace: trace.map(Bytes::from),
            };
            match records.iter_mut().find(|(t, _)| *t == topic) {
                Some((_, of_topic)) => of_topic.push(record),
                None => records.push((topic, vec![record])),
            }
        }
        for (topic, of_topic) in records {
            let Some(log) = self.topics.get(&topic) else {
                continue;
            };
            log.append(of_topic)
                .await
                .map_err(|error| RelayError::Log { topic, error })?;
        }
        // A crash here sends these rows again: at least once.
        let placeholders: Vec<String> = (2..ids.len() + 2).map(|i| format!("${i}")).collect();
        let sql = format!(
            "UPDATE outbox SET sent_at = $1 WHERE id IN ({})",
            placeholders.join(", ")
        );
        let mut mark = sqlx::query(&sql).bind(now_us());
        for id in &ids {
            mark = mark.bind(id);
        }
        match tx {
            Some(mut tx) => {
                mark.execute(&mut *tx).await?;
                tx.commit().await?;
            }
            None => {
                mark.execute(self.db.pool()).await?;
            }
        }
        self.metrics.sent.inc_by(ids.len() as u64);
        Ok(ids.len())
    }

    /// Unsent rows now.
    pub async fn backlog(&self) -> Result<i64, DbError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM outbox WHERE sent_at IS NULL")
            .fetch_one(self.db.pool())
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Deletes rows sent more than a day ago.
    async fn purge(&self) -> Result<u64, DbError> {
        let done = sqlx::query("DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < $1")
            .bind(now_us() - KEEP_SENT_US)
            .execute(self.db.pool())
            .await?;
        Ok(done.rows_affected())
    }

    /// Relays until `stop` resolves: at once when woken, else every `poll`; after a failure,
    /// again with backoff. Before returning it sends what is committed by then, so that an
    /// orderly stop leaves nothing for the next start.
    pub async fn run(self, poll: Duration, stop: impl std::future::Future<Output = ()>) {
        let mut stop = std::pin::pin!(stop);
        // Retries for ever: the rows wait in the outbox, and the backlog metric shows them.
        let mut backoff = Backoff::new(Duration::from_secs(u64::from(u32::MAX)));
        let mut last_purge = tokio::time::Instant::now();
        loop {
            let wait = match self.pass().await {
                Ok(n) => {
                    backoff.progressed();
                    if n as i64 == BATCH {
                        Duration::ZERO
                    } else {
                        poll
                    }
                }
                Err(e) => {
                    self.metrics.errors.inc();
                    tracing::warn!(error = %e, "outbox relay pass failed; retrying");
                    backoff.next_delay().unwrap_or(service_common::retry::MAX)
                }
            };
            if let Ok(n) = self.backlog().await {
                self.metrics.backlog.set(n);
            }
            if last_purge.elapsed() > Duration::from_secs(3600) {
                last_purge = tokio::time::Instant::now();
                if let Err(e) = self.purge().await {
                    tracing::warn!(error = %e, "outbox purge failed");
                }
            }
            if wait.is_zero() {
                continue;
            }
            tokio::select! {
                () = &mut stop => {
                    let _ = self.pass().await;
                    return;
                }
                () = self.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}
