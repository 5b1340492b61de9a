//! The transactional outbox: an order's `PURCHASE` events are rows of the `outbox` table,
//! written in the order's own transaction ([`stage_purchases`]); the [`Relay`] appends unsent
//! rows to the event log and only then marks them sent.
//!
//! Invariant: an event whose order committed is appended at least once. A crash after the
//! append and before the mark sends the rows again on the next pass; a duplicate `PURCHASE`
//! does not change a window's unique users (it adds to its event count). Rows carry an
//! `event_id` (`<order id>:<line>`) so that a consumer can drop duplicates.
//!
//! On PostgreSQL several relays (one per orders replica) share the table: each takes its
//! rows with `FOR UPDATE SKIP LOCKED` and holds them until marked. On SQLite (`ecom up`) there
//! is one relay per database file.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use event_log::{EventLog, Record};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use service_common::retry::Backoff;
use service_db::{Backend, Db, DbError, now_us};
use sqlx::{Any, Row, Transaction};
use stream_engine::ActivityEvent;
use tokio::sync::Notify;

use crate::order::Line;

/// Rows appended per pass.
pub const BATCH: i64 = 500;
/// Sent rows are deleted after this long.
const KEEP_SENT_US: i64 = 24 * 3600 * 1_000_000;

/// Writes one `PURCHASE` event per line of a new order into the outbox, in its transaction.
pub async fn stage_purchases(
    tx: &mut Transaction<'static, Any>,
    topic: &str,
    order_id: &str,
    customer_id: &str,
    lines: &[Line],
    created_at_us: i64,
) -> Result<(), DbError> {
    // The order's request: the engine's batch that counts these purchases links to it.
    let trace = service_common::telemetry::current_traceparent();
    for (no, line) in lines.iter().enumerate() {
        let mut metadata = serde_json::Map::new();
        metadata.insert("order_id".into(), order_id.into());
        metadata.insert("quantity".into(), line.quantity.into());
        let event = ActivityEvent {
            event_id: Some(format!("{order_id}:{no}")),
            user_id: customer_id.to_owned(),
            product_id: line.product_id.clone(),
            event_type: "PURCHASE".to_owned(),
            timestamp_ms: created_at_us.div_euclid(1000),
            metadata: Some(metadata),
        };
        sqlx::query(
            "INSERT INTO outbox (id, topic, record_key, payload, created_at, traceparent) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(service_db::new_id())
        .bind(topic)
        .bind(&line.product_id)
        .bind(event.to_json())
        .bind(created_at_us)
        .bind(trace.as_deref())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Why a pass of the relay did not finish.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("the event log did not take the events: {0}")]
    Log(#[from] event_log::AppendError),
}

impl From<sqlx::Error> for RelayError {
    fn from(e: sqlx::Error) -> Self {
        RelayError::Db(e.into())
    }
}

/// The relay's metrics.
#[derive(Debug, Clone, Default)]
pub struct RelayMetrics {
    pub sent: Counter,
    pub errors: Counter,
    pub backlog: Gauge,
}

impl RelayMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = RelayMetrics::default();
        registry.register(
            "outbox_sent",
            "Outbox events appended to the event log",
            metrics.sent.clone(),
        );
        registry.register(
            "outbox_relay_errors",
            "Relay passes that failed (the rows are sent again)",
            metrics.errors.clone(),
        );
        registry.register(
            "outbox_backlog",
            "Outbox events not yet appended to the event log",
            metrics.backlog.clone(),
        );
        metrics
    }
}

/// Moves outbox rows to the event log.
pub struct Relay<L> {
    db: Db,
    log: L,
    wake: Arc<Notify>,
    metrics: RelayMetrics,
}

impl<L: EventLog> Relay<L> {
    pub fn new(db: Db, log: L, metrics: RelayMetrics) -> Self {
        Relay {
            db,
            log,
            wake: Arc::new(Notify::new()),
            metrics,
        }
    }

    /// What wakes the relay at once (an order just committed) rather than at its next poll.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// One pass: appends up to [`BATCH`] unsent rows, in id order, then marks them sent.
    /// Returns how many were sent.
    pub async fn pass(&self) -> Result<usize, RelayError> {
        let mut tx = match self.db.backend() {
            Backend::Postgres => Some(self.db.begin_write().await?),
            Backend::Sqlite => None,
        };
        let select = match self.db.backend() {
            Backend::Postgres => {
                "SELECT id, record_key, payload, traceparent FROM outbox WHERE sent_at IS NULL \
                 ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED"
            }
            Backend::Sqlite => {
                "SELECT id, record_key, payload, traceparent FROM outbox WHERE sent_at IS NULL \
                 ORDER BY id LIMIT $1"
            }
        };
        let query = sqlx::query(select).bind(BATCH);
        let rows = match tx.as_mut() {
            Some(tx) => query.fetch_all(&mut **tx).await?,
            None => query.fetch_all(self.db.pool()).await?,
        };
        if rows.is_empty() {
            return Ok(0);
        }
        let mut ids = Vec::with_capacity(rows.len());
        let mut records = Vec::with_capacity(rows.len());
        for row in &rows {
            ids.push(row.try_get::<String, _>("id")?);
            let key: String = row.try_get("record_key")?;
            let payload: String = row.try_get("payload")?;
            let trace: Option<String> = row.try_get("traceparent")?;
            records.push(Record {
                key: Bytes::from(key),
                value: Bytes::from(payload),
                trace: trace.map(Bytes::from),
            });
        }
        self.log.append(records).await?;
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
    /// again with backoff.
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
                () = &mut stop => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}
