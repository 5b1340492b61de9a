//! Where the engine's window results and checkpoints are kept, and where the analytics API
//! reads them back: one row schema, one set of write rules, two stores.
//!
//! - [`dynamo`] (feature `dynamodb`): the deployed shape. Results keyed (`product_id`,
//!   `window_start`), so a product's latest windows are one Query; the top of a window through
//!   the `by_window` secondary index, never a Scan.
//! - [`sqlite`] (feature `sqlite`): the embedded store of `ecom up`, one file.
//!
//! The write rules, the same on both (a contract test suite runs against both):
//! - a checkpoint never moves backwards: it replaces only one with at most its next offset;
//! - a result replaces a stored one only if it has at least as many events
//!   ([`Writes::Conditional`]), or unconditionally when each window has a single possible value
//!   ([`Writes::Unconditional`]: no allowed lateness and no processing-time watermark).
//!
//! The rank of a result within its window ([`rank`]) orders unique users descending, then
//! `product_id` ascending, as one string: that is the sort key of the top-K index.

#[cfg(feature = "dynamodb")]
pub mod dynamo;
#[cfg(feature = "sqlite")]
pub mod sqlite;

use std::future::Future;

use stream_engine::core::time::MINUTE_MS;
use stream_engine::{Checkpoint, EngineConfig, WindowResult};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A store operation failed (after the retries of transient failures).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{store}: {message}")]
pub struct StoreError {
    /// `dynamodb` or `sqlite`.
    pub store: &'static str,
    pub message: String,
}

/// How a conditional write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Stored,
    /// The store already held something newer (more events, or a further checkpoint): an
    /// older or zombie writer lost, as it should.
    Superseded,
}

/// How results are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writes {
    /// Each window has one possible result, a function of its partition's log: whoever writes
    /// a key writes the same value, so writes need no condition (and may be batched).
    Unconditional,
    /// A window may be re-fired (allowed lateness) or fired by processing time (idle
    /// timeout): a result replaces a stored one only if it has at least as many events.
    Conditional,
}

impl Writes {
    /// Unconditional exactly when the engine emits each window once, with a value that depends
    /// only on the input log.
    pub fn for_engine(config: &EngineConfig) -> Self {
        if config.allowed_lateness.is_zero() && config.idle_timeout.is_none() {
            Writes::Unconditional
        } else {
            Writes::Conditional
        }
    }
}

/// The window results the engine writes.
pub trait ResultStore: Send + Sync + 'static {
    /// Upserts every result under the write rules. Returns how many were superseded.
    fn put_results(&self, results: &[WindowResult]) -> impl Future<Output = Result<usize>> + Send;
}

/// The checkpoints of the engine's input partitions, beside its results.
pub trait CheckpointStore: Send + Sync + 'static {
    /// The stored checkpoint of an input partition, if any.
    fn load_checkpoint(
        &self,
        partition: u32,
    ) -> impl Future<Output = Result<Option<Checkpoint>>> + Send;

    /// Stores a checkpoint unless a further one (a higher next offset) is stored already.
    fn save_checkpoint(
        &self,
        partition: u32,
        checkpoint: &Checkpoint,
    ) -> impl Future<Output = Result<Written>> + Send;
}

/// Where a page of [`ResultQuery::windows`] goes on from: the key of the last row of the
/// previous page. Keys never change (a re-fire changes counts, not keys), so a walk through a
/// range neither skips nor repeats a row whatever is written meanwhile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeCursor {
    pub window_start_ms: i64,
    /// Empty: from the first row of the window.
    pub product_id: String,
}

/// A page of results in a time range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangePage {
    pub results: Vec<WindowResult>,
    /// Where the next page starts; `None` once the range is exhausted.
    pub next: Option<RangeCursor>,
}

/// The reads of the analytics API.
pub trait ResultQuery: Send + Sync + 'static {
    /// A product's latest `limit` windows starting before `before_ms` (all when `None`),
    /// newest first.
    fn product_windows(
        &self,
        product_id: &str,
        before_ms: Option<i64>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<WindowResult>>> + Send;

    /// The `limit` products with the most unique users in the window starting at
    /// `window_start_ms`, ties by `product_id`.
    fn top(
        &self,
        window_start_ms: i64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<WindowResult>>> + Send;

    /// Results of the windows starting in `[from_ms, to_ms)`, by window start, then `product_id`, at
    /// most `limit` per page. A store may end a page early (DynamoDB looks through at most 31
    /// days per page), so only a `None` next cursor ends the range.
    fn windows(
        &self,
        from_ms: i64,
        to_ms: i64,
        after: Option<RangeCursor>,
        limit: usize,
    ) -> impl Future<Output = Result<RangePage>> + Send;

    /// The start of the latest window that every input partition with a checkpoint has fired
    /// (its watermark passed the window's end), if any.
    fn latest_fired(&self) -> impl Future<Output = Result<Option<i64>>> + Send;

    /// Whether the store answers.
    fn ready(&self) -> impl Future<Output = Result<()>> + Send;
}

/// The sort key of a result within its window: unique users descending, then `product_id`.
pub fn rank(result: &WindowResult) -> String {
    format!(
        "{:020}|{}",
        u64::MAX - result.unique_users,
        result.product_id
    )
}

/// The first whole minute at or after `ms`: the first window a range starting at `ms` holds.
pub fn ceil_minute(ms: i64) -> i64 {
    ms.div_euclid(MINUTE_MS) * MINUTE_MS
        + if ms.rem_euclid(MINUTE_MS) == 0 {
            0
        } else {
            MINUTE_MS
        }
}

/// The start of the latest window a watermark has fired: windows ending at or before it.
pub fn fired_window(watermark_ms: i64) -> i64 {
    (watermark_ms - MINUTE_MS).div_euclid(MINUTE_MS) * MINUTE_MS
}

/// The offset after the last one a checkpoint covers: what decides which checkpoint is further.
pub fn next_offset(checkpoint: &Checkpoint) -> u64 {
    checkpoint.highest_offset.map_or(0, |h| h + 1)
}

/// Keeps, per (`product_id`, `window_start`), only the result with the most events: a re-fire
/// in the same batch supersedes the first emission.
pub fn latest_per_key(results: &[WindowResult]) -> Vec<&WindowResult> {
    let mut latest: Vec<&WindowResult> = results.iter().collect();
    latest.sort_by(|a, b| {
        (&a.product_id, a.window_start_ms, b.events).cmp(&(
            &b.product_id,
            b.window_start_ms,
            a.events,
        ))
    });
    latest.dedup_by(|later, earlier| {
        later.product_id == earlier.product_id && later.window_start_ms == earlier.window_start_ms
    });
    latest
}

#[cfg(test)]
mod tests {
    use testkit::window_result as result;

    use super::*;

    #[test]
    fn rank_orders_by_users_descending_then_product() {
        let mut rows = [
            result("b", 0, 5, 5),
            result("a", 0, 5, 9),
            result("c", 0, 7, 7),
            result("d", 0, 10, 10),
        ];
        rows.sort_by_key(rank);
        let order: Vec<&str> = rows.iter().map(|r| &*r.product_id).collect();
        assert_eq!(order, ["d", "c", "a", "b"]);
    }

    #[test]
    fn the_fired_window_ends_at_or_before_the_watermark() {
        assert_eq!(fired_window(120_000), 60_000);
        assert_eq!(fired_window(119_999), 0);
        assert_eq!(fired_window(60_000), 0);
        assert_eq!(fired_window(59_999), -60_000);
    }

    #[test]
    fn the_result_with_most_events_wins_per_key() {
        let rows = [
            result("a", 0, 1, 1),
            result("a", 0, 2, 3),
            result("a", 60_000, 1, 1),
            result("a", 0, 2, 2),
        ];
        let latest = latest_per_key(&rows);
        assert_eq!(latest.len(), 2);
        assert_eq!(latest[0].events, 3);
        assert_eq!(latest[1].window_start_ms, 60_000);
    }
}
