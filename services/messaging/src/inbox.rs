//! The consumer's side of a participant's database: the `inbox` of envelope ids it has
//! handled and the `consumer_positions` it reads its topics from, both written in the
//! transaction of the effect (so the three commit, or none does).

use service_db::{Db, DbError, now_us};
use sqlx::Row;

use crate::Tx;

/// The `inbox` and `consumer_positions` tables of a participant's migrations.
pub const TABLES: &str = "\
CREATE TABLE inbox (
    id TEXT PRIMARY KEY,
    consumer TEXT NOT NULL,
    kind TEXT NOT NULL,
    handled_at BIGINT NOT NULL
);
CREATE INDEX inbox_handled ON inbox (handled_at);
CREATE TABLE consumer_positions (
    consumer TEXT NOT NULL,
    topic TEXT NOT NULL,
    part BIGINT NOT NULL,
    next_offset BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (consumer, topic, part)
);";

/// Handled ids are forgotten after this long: far beyond how late a duplicate can come (the
/// relay resends within seconds of a crash; positions keep a replay from reaching further back).
pub const KEEP_US: i64 = 7 * 24 * 3600 * 1_000_000;

/// Records `id` as handled by `consumer`; `false` when it was already (a duplicate).
pub async fn first_time(
    tx: &mut Tx,
    consumer: &str,
    id: &str,
    kind: &str,
) -> Result<bool, DbError> {
    let done = sqlx::query(
        "INSERT INTO inbox (id, consumer, kind, handled_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(consumer)
    .bind(kind)
    .bind(now_us())
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Stores where `consumer` resumes `topic`'s `partition`.
pub async fn store_position(
    tx: &mut Tx,
    consumer: &str,
    topic: &str,
    partition: u32,
    next_offset: u64,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO consumer_positions (consumer, topic, part, next_offset, updated_at) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (consumer, topic, part) DO UPDATE \
         SET next_offset = excluded.next_offset, updated_at = excluded.updated_at",
    )
    .bind(consumer)
    .bind(topic)
    .bind(i64::from(partition))
    .bind(next_offset as i64)
    .bind(now_us())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Where `consumer` resumes each partition of `topic` it has stored.
pub async fn load_positions(
    db: &Db,
    consumer: &str,
    topic: &str,
) -> Result<Vec<(u32, u64)>, DbError> {
    let rows = sqlx::query(
        "SELECT part, next_offset FROM consumer_positions WHERE consumer = $1 AND topic = $2",
    )
    .bind(consumer)
    .bind(topic)
    .fetch_all(db.pool())
    .await?;
    let mut positions = Vec::with_capacity(rows.len());
    for row in &rows {
        let part: i64 = row.try_get("part")?;
        let next: i64 = row.try_get("next_offset")?;
        positions.push((part as u32, next as u64));
    }
    Ok(positions)
}

/// Forgets handled ids older than [`KEEP_US`].
pub async fn purge(db: &Db) -> Result<u64, DbError> {
    let done = sqlx::query("DELETE FROM inbox WHERE handled_at < $1")
        .bind(now_us() - KEEP_US)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected())
}
