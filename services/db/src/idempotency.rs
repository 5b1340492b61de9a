//! `Idempotency-Key` records: the first request with a key creates, and every later request
//! with the same key and the same body gets the first one's answer again.
//!
//! Each service keeps them in its own `idempotency_keys` table. [`claim`] runs first in the
//! creating transaction and [`complete`] stores the answer in the same transaction, so the
//! resource and its record commit together: a concurrent request with the key waits on the
//! key's row (PostgreSQL) or the write lock (SQLite) and then finds the answer; a request that
//! failed left no record, so a retry creates.

use sqlx::{Any, Row, Transaction};

use crate::{Db, Result, now_us};

/// A stored answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub status: u16,
    pub resource_id: String,
    pub body: String,
}

/// What a key means for this request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First use: go on and create, then [`complete`].
    New,
    /// Used before with the same request: answer this again.
    Replay(Stored),
    /// Used before with another request.
    Reused,
}

/// The fingerprint of a request: its route and its body as canonical JSON, hashed.
pub fn fingerprint(route: &str, body: &serde_json::Value) -> String {
    let text = format!("{route}\n{body}");
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(text.as_bytes()))
}

/// Claims `key` for the request with `fingerprint`; the first statement of the transaction.
pub async fn claim(
    tx: &mut Transaction<'static, Any>,
    key: &str,
    fingerprint: &str,
) -> Result<Claim> {
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (key, fingerprint, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (key) DO NOTHING",
    )
    .bind(key)
    .bind(fingerprint)
    .bind(now_us())
    .execute(&mut **tx)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(Claim::New);
    }
    let row = sqlx::query(
        "SELECT fingerprint, status, resource_id, body FROM idempotency_keys WHERE key = $1",
    )
    .bind(key)
    .fetch_one(&mut **tx)
    .await?;
    let stored: String = row.try_get("fingerprint")?;
    if stored != fingerprint {
        return Ok(Claim::Reused);
    }
    Ok(Claim::Replay(Stored {
        status: u16::try_from(row.try_get::<i64, _>("status")?).unwrap_or(200),
        resource_id: row.try_get("resource_id")?,
        body: row.try_get("body")?,
    }))
}

/// What `key` already means, read outside any transaction: lets a replay skip work that
/// precedes [`begin`] (such as asking other services). `None` when the key is unused.
pub async fn lookup(db: &Db, key: &str, fingerprint: &str) -> Result<Option<Outcome>> {
    let row = sqlx::query(
        "SELECT fingerprint, status, resource_id, body FROM idempotency_keys WHERE key = $1",
    )
    .bind(key)
    .fetch_optional(db.pool())
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let stored: String = row.try_get("fingerprint")?;
    if stored != fingerprint {
        return Ok(Some(Outcome::Reused));
    }
    Ok(Some(Outcome::Replayed(Stored {
        status: u16::try_from(row.try_get::<i64, _>("status")?).unwrap_or(200),
        resource_id: row.try_get("resource_id")?,
        body: row.try_get("body")?,
    })))
}

/// Stores the answer to the request that claimed `key`, in the same transaction.
pub async fn complete(
    tx: &mut Transaction<'static, Any>,
    key: &str,
    answer: &Stored,
) -> Result<()> {
    sqlx::query(
        "UPDATE idempotency_keys SET status = $2, resource_id = $3, body = $4 WHERE key = $1",
    )
    .bind(key)
    .bind(i64::from(answer.status))
    .bind(&answer.resource_id)
    .bind(&answer.body)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Forgets keys older than `max_age_us`.
pub async fn purge(db: &Db, max_age_us: i64) -> Result<u64> {
    let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
        .bind(now_us() - max_age_us)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected())
}

/// How long a key is remembered.
pub const KEEP: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Forgets keys older than [`KEEP`] every hour, in the background, until the pool closes.
pub fn spawn_purge(db: Db) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            every.tick().await;
            if db.pool().is_closed() {
                return;
            }
            match purge(&db, KEEP.as_micros() as i64).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(keys = n, "forgot old idempotency keys"),
                Err(e) => tracing::warn!(error = %e, "idempotency keys not purged"),
            }
        }
    });
}

/// The table's DDL, for each service's first migration.
pub const TABLE: &str = "CREATE TABLE idempotency_keys (
    key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    status BIGINT NOT NULL DEFAULT 0,
    resource_id TEXT NOT NULL DEFAULT '',
    body TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
";

/// How a creating request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Created now.
    Created(Stored),
    /// Created by an earlier request with the same key and body: its answer.
    Replayed(Stored),
    /// The key was used with another body; nothing was done.
    Reused,
}

/// A creating request under way: its write transaction, with its key claimed.
pub struct Once {
    tx: Transaction<'static, Any>,
    key: Option<String>,
}

/// What [`begin`] found.
pub enum Begun {
    /// Go on: create in [`Once::tx`], then [`Once::finish`].
    New(Once),
    /// The key was used before: nothing to do but answer this.
    Done(Outcome),
}

/// Starts a creating request: a write transaction that claims `key` (when given) first, so
/// that the record of the key and whatever is created commit together, or neither does.
pub async fn begin(db: &Db, key: Option<&str>, fingerprint: &str) -> Result<Begun> {
    let mut tx = db.begin_write().await?;
    if let Some(key) = key {
        match claim(&mut tx, key, fingerprint).await? {
            Claim::New => {}
            Claim::Replay(stored) => return Ok(Begun::Done(Outcome::Replayed(stored))),
            Claim::Reused => return Ok(Begun::Done(Outcome::Reused)),
        }
    }
    Ok(Begun::New(Once {
        tx,
        key: key.map(str::to_owned),
    }))
}

impl Once {
    /// The transaction to create in.
    pub fn tx(&mut self) -> &mut Transaction<'static, Any> {
        &mut self.tx
    }

    /// Stores the answer under the key and commits.
    pub async fn finish(mut self, answer: Stored) -> Result<Outcome> {
        if let Some(key) = &self.key {
            complete(&mut self.tx, key, &answer).await?;
        }
        self.tx.commit().await?;
        Ok(Outcome::Created(answer))
    }
}

impl Outcome {
    /// The HTTP answer: the stored one for [`Outcome::Created`] and [`Outcome::Replayed`]
    /// (with `Location` = `collection/<id>`), 422 `idempotency_key_reused` for
    /// [`Outcome::Reused`].
    pub fn respond(
        self,
        collection: &str,
    ) -> Result<axum::response::Response, service_common::ApiError> {
        match self {
            Outcome::Created(stored) | Outcome::Replayed(stored) => {
                let location = format!("{collection}/{}", stored.resource_id);
                Ok(service_common::rest::created(
                    stored.status,
                    &location,
                    stored.body,
                ))
            }
            Outcome::Reused => Err(service_common::rest::idempotency_key_reused()),
        }
    }
}
