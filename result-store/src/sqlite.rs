//! The stores on SQLite: the embedded store of `ecom up`, one database file.
//!
//! - `window_results`: primary key (`product_id`, `window_start`), and `unique_user_count`,
//!   `event_count`, `approximate`; the index `window_results_by_window` (`window_start`,
//!   `unique_user_count` descending, `product_id`) answers the top of a window, and
//!   `window_results_by_time` (`window_start`, `product_id`) time ranges.
//! - `checkpoints`: primary key (`stream`, `partition`), the checkpoint as JSON, its
//!   `next_offset` and `watermark`.
//!
//! Times are UTC milliseconds. The write rules are DynamoDB's, as conditions on the upserts
//! (`ON CONFLICT ... DO UPDATE ... WHERE`). The database runs in WAL mode with
//! `synchronous = FULL`: a committed transaction is on disk, even after a power loss. The
//! engine commits its log offsets (which the embedded log's retention deletes by) only once a
//! checkpoint is stored, so a checkpoint must not be able to go back to one whose records were
//! deleted.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use stream_engine::{Checkpoint, WindowResult};

use crate::{
    CheckpointStore, RangeCursor, RangePage, ResultQuery, ResultStore, StoreError, Writes, Written,
    ceil_minute, fired_window, latest_per_key, next_offset,
};

const STORE: &str = "sqlite";

fn store_error(e: impl std::fmt::Display) -> StoreError {
    StoreError {
        store: STORE,
        message: e.to_string(),
    }
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS window_results (
        product_id TEXT NOT NULL,
        window_start INTEGER NOT NULL,
        unique_user_count INTEGER NOT NULL,
        event_count INTEGER NOT NULL,
        approximate INTEGER NOT NULL,
        PRIMARY KEY (product_id, window_start)
    ) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS window_results_by_window
        ON window_results (window_start, unique_user_count DESC, product_id)",
    "CREATE INDEX IF NOT EXISTS window_results_by_time
        ON window_results (window_start, product_id)",
    "CREATE TABLE IF NOT EXISTS checkpoints (
        stream TEXT NOT NULL,
        partition INTEGER NOT NULL,
        next_offset INTEGER NOT NULL,
        watermark INTEGER,
        checkpoint TEXT NOT NULL,
        PRIMARY KEY (stream, partition)
    ) WITHOUT ROWID",
];

/// Window results and checkpoints in one SQLite database.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Identifies the stream whose checkpoints these are.
    stream: String,
    writes: Writes,
}

impl SqliteStore {
    /// Opens (or creates) the database at `path` and its tables.
    pub async fn open(path: &Path, stream: &str, writes: Writes) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(store_error)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|e| store_error(format!("cannot open {}: {e}", path.display())))?;
        for statement in SCHEMA {
            sqlx::query(statement)
                .execute(&pool)
                .await
                .map_err(store_error)?;
        }
        Ok(SqliteStore {
            pool,
            stream: stream.to_owned(),
            writes,
        })
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn from_row(row: &sqlx::sqlite::SqliteRow) -> Result<WindowResult, StoreError> {
    let count = |field: &str| -> Result<u64, StoreError> {
        let n: i64 = row.try_get(field).map_err(store_error)?;
        u64::try_from(n).map_err(|_| store_error(format!("a negative {field}")))
    };
    Ok(WindowResult {
        product_id: row
            .try_get::<String, _>("product_id")
            .map_err(store_error)?
            .into(),
        window_start_ms: row.try_get("window_start").map_err(store_error)?,
        unique_users: count("unique_user_count")?,
        events: count("event_count")?,
        approximate: row.try_get("approximate").map_err(store_error)?,
    })
}

const COLUMNS: &str = "product_id, window_start, unique_user_count, event_count, approximate";

impl ResultStore for SqliteStore {
    async fn put_results(&self, results: &[WindowResult]) -> Result<usize, StoreError> {
        let condition = match self.writes {
            Writes::Unconditional => "",
            Writes::Conditional => "WHERE excluded.event_count >= window_results.event_count",
        };
        let upsert = format!(
            "INSERT INTO window_results ({COLUMNS}) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (product_id, window_start) DO UPDATE SET
                unique_user_count = excluded.unique_user_count,
                event_count = excluded.event_count,
                approximate = excluded.approximate
             {condition}"
        );
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let mut superseded = 0;
        for result in latest_per_key(results) {
            let done = sqlx::query(&upsert)
                .bind(&*result.product_id)
                .bind(result.window_start_ms)
                .bind(result.unique_users as i64)
                .bind(result.events as i64)
                .bind(result.approximate)
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
            if done.rows_affected() == 0 {
                superseded += 1;
            }
        }
        tx.commit().await.map_err(store_error)?;
        Ok(superseded)
    }
}

impl CheckpointStore for SqliteStore {
    async fn load_checkpoint(&self, partition: u32) -> Result<Option<Checkpoint>, StoreError> {
        let row =
            sqlx::query("SELECT checkpoint FROM checkpoints WHERE stream = ? AND partition = ?")
                .bind(&self.stream)
                .bind(partition)
                .fetch_optional(&self.pool)
                .await
                .map_err(store_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let text: String = row.try_get("checkpoint").map_err(store_error)?;
        serde_json::from_str(&text).map(Some).map_err(|e| {
            store_error(format!(
                "the checkpoint of partition {partition} is not valid: {e}"
            ))
        })
    }

    async fn save_checkpoint(
        &self,
        partition: u32,
        checkpoint: &Checkpoint,
    ) -> Result<Written, StoreError> {
        let json = serde_json::to_string(checkpoint)
            .map_err(|e| store_error(format!("cannot encode a checkpoint: {e}")))?;
        let done = sqlx::query(
            "INSERT INTO checkpoints (stream, partition, next_offset, watermark, checkpoint)
             VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (stream, partition) DO UPDATE SET
                next_offset = excluded.next_offset,
                watermark = excluded.watermark,
                checkpoint = excluded.checkpoint
             WHERE excluded.next_offset >= checkpoints.next_offset",
        )
        .bind(&self.stream)
        .bind(partition)
        .bind(next_offset(checkpoint) as i64)
        .bind(checkpoint.watermark_ms)
        .bind(json)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(if done.rows_affected() == 0 {
            Written::Superseded
        } else {
            Written::Stored
        })
    }
}

impl ResultQuery for SqliteStore {
    async fn product_windows(
        &self,
        product_id: &str,
        before_ms: Option<i64>,
        limit: usize,
    ) -> Result<Vec<WindowResult>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM window_results
             WHERE product_id = ? AND window_start < ?
             ORDER BY window_start DESC LIMIT ?"
        ))
        .bind(product_id)
        .bind(before_ms.unwrap_or(i64::MAX))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.iter().map(from_row).collect()
    }

    async fn top(
        &self,
        window_start_ms: i64,
        limit: usize,
    ) -> Result<Vec<WindowResult>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM window_results WHERE window_start = ?
             ORDER BY unique_user_count DESC, product_id ASC LIMIT ?"
        ))
        .bind(window_start_ms)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.iter().map(from_row).collect()
    }

    async fn windows(
        &self,
        from_ms: i64,
        to_ms: i64,
        after: Option<RangeCursor>,
        limit: usize,
    ) -> Result<RangePage, StoreError> {
        // By window start, then product, from the cursor on.
        let first = ceil_minute(from_ms);
        let (start, after_product) = match &after {
            Some(c) if c.window_start_ms >= first => (c.window_start_ms, c.product_id.as_str()),
            _ => (first, ""),
        };
        // The rest of the cursor's window after its product, then the following windows.
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM window_results
             WHERE window_start >= ? AND window_start < ?
               AND (window_start > ? OR product_id > ?)
             ORDER BY window_start ASC, product_id ASC LIMIT ?"
        ))
        .bind(start)
        .bind(to_ms)
        .bind(start)
        .bind(after_product)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        let results = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
        let next = (results.len() == limit)
            .then(|| results.last())
            .flatten()
            .map(|last| RangeCursor {
                window_start_ms: last.window_start_ms,
                product_id: last.product_id.to_string(),
            });
        Ok(RangePage { results, next })
    }

    async fn latest_fired(&self) -> Result<Option<i64>, StoreError> {
        let watermark: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(watermark) FROM checkpoints WHERE stream = ? AND watermark IS NOT NULL",
        )
        .bind(&self.stream)
        .fetch_one(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(watermark.map(fired_window))
    }

    async fn ready(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(store_error)
    }
}
