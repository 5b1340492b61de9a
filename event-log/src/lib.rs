//! The event log: an append-only, partitioned log of keyed records, behind one pair of traits.
//!
//! - [`EventLog`], the append side: [`EventLog::append`] resolves `Ok` only once every record
//!   is durable (acknowledged = durable). Ingest answers 202 on it.
//! - [`PartitionReader`], the read side the stream engine is driven through: partitions are
//!   assigned to and revoked from a [`PartitionListener`] (which says where to start each),
//!   batches are polled, and offsets committed once the reader's own checkpoints are stored.
//!
//! Two implementations, one behaviour:
//! - [`embedded`]: a log on segment files in a data directory, inside the process (`ecom up`):
//!   group-committed appends, torn tails cut at start, retention that keeps what a committed
//!   offset still needs;
//! - `kafka` (feature `kafka`): an idempotent producer and a consumer group (production).
//!
//! Records are partitioned by Kafka's partitioner (murmur2 of the key), so a product's events
//! land in the same partition on both, and `ecom window --partitions` splits a file the same way.

pub mod embedded;
#[cfg(feature = "kafka")]
pub mod kafka;
mod read;

use std::future::Future;

pub use bytes::Bytes;
pub use read::{
    FixedStart, PartitionListener, PartitionReader, ReadBatch, ReadError, ReadRecord, StartAt,
};

/// The name of the Kafka record header that carries a record's [`Record::trace`].
pub const TRACEPARENT: &str = "traceparent";

/// A record to append: its key chooses the partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub key: Bytes,
    pub value: Bytes,
    /// The W3C `traceparent` of the span appending it, carried to its readers (Kafka: a
    /// record header `traceparent`; the embedded log: in the frame). `None` when not traced.
    pub trace: Option<Bytes>,
}

impl Record {
    /// An untraced record.
    pub fn new(key: impl Into<Bytes>, value: impl Into<Bytes>) -> Record {
        Record {
            key: key.into(),
            value: value.into(),
            trace: None,
        }
    }
}

/// Why records could not be appended. Nothing is ever reported appended that was not.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// The log did not acknowledge in time, or cannot be reached or written: retry later.
    #[error("the event log is unavailable: {0}")]
    Unavailable(String),
    /// Too many records are waiting for acknowledgement: retry later.
    #[error("the log's queue is full ({in_flight} records waiting, limit {limit})")]
    QueueFull { in_flight: usize, limit: usize },
    /// A record is larger than the log takes (nothing of the append was written).
    #[error("a record of {bytes} bytes is over the log's limit of {limit} bytes")]
    TooLarge { bytes: usize, limit: usize },
}

impl AppendError {
    /// The error code of the 503 answer, also the `kind` label of the delivery-error metric.
    pub fn code(&self) -> &'static str {
        match self {
            AppendError::Unavailable(_) => "log_unavailable",
            AppendError::QueueFull { .. } => "queue_full",
            AppendError::TooLarge { .. } => "record_too_large",
        }
    }
}

/// Why the log cannot take records now (a readiness check's reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotReady(pub String);

/// The append side of a partitioned log of keyed records.
pub trait EventLog: Send + Sync + 'static {
    /// Appends every record; resolves `Ok` only once the log has durably acknowledged all of
    /// them. On `Err`, some of them may have been appended (a retry may then duplicate them).
    fn append(&self, records: Vec<Record>) -> impl Future<Output = Result<(), AppendError>> + Send;

    /// Whether the log can take records.
    fn ready(&self) -> impl Future<Output = Result<(), NotReady>> + Send;
}

/// The partition of a key among `partitions`: Kafka's default partitioner.
pub fn partition_for(key: &[u8], partitions: u32) -> u32 {
    stream_engine::core::partitioner::partition_for(key, partitions)
}
