//! The read side: a reader owns some partitions of a log at a time (all of them for the
//! embedded log; its share of the consumer group's for Kafka), and tells a
//! [`PartitionListener`] when that set changes, from inside [`PartitionReader::poll`], before
//! reading on. The listener says where each assigned partition starts; when partitions are
//! revoked it must finish with them (store their output, checkpoint them) before returning,
//! because the next owner starts from what it stored.

use std::time::Duration;

/// One record read, borrowed from its batch.
#[derive(Debug, Clone, Copy)]
pub struct ReadRecord<'a> {
    pub offset: u64,
    pub key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
    /// The W3C `traceparent` of the span that appended it (a Kafka record's header of that
    /// name), if it was traced.
    pub trace: Option<&'a [u8]>,
}

/// Where an assigned partition starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// The oldest record still in the log.
    Beginning,
    /// This offset (a checkpoint's resume offset).
    Offset(u64),
    /// After the last record: only what is appended from now on (a live tail).
    End,
}

/// Told of ownership changes, synchronously, by the reader's polling thread.
pub trait PartitionListener: Send + Sync + 'static {
    /// `partitions` are now this reader's. Returns where to start each of them, or `None` when
    /// they cannot be taken (the reader then gives them up again).
    fn assigned(&self, partitions: &[u32]) -> Option<Vec<(u32, StartAt)>>;

    /// `partitions` are being taken away: finish with them before returning.
    fn revoked(&self, partitions: &[u32]);

    /// Records between the committed offset and the end of a partition, when the log knows.
    fn lag(&self, partition: u32, records: u64) {
        let _ = (partition, records);
    }
}

/// A listener that starts every partition at the same place and keeps no state: for reading
/// a whole topic (`StartAt::Beginning`) or following it live (`StartAt::End`), never
/// committing.
#[derive(Debug, Clone, Copy)]
pub struct FixedStart(pub StartAt);

impl PartitionListener for FixedStart {
    fn assigned(&self, partitions: &[u32]) -> Option<Vec<(u32, StartAt)>> {
        Some(partitions.iter().map(|&p| (p, self.0)).collect())
    }

    fn revoked(&self, _partitions: &[u32]) {}
}

/// Records read together, from one or more partitions.
pub trait ReadBatch: Send {
    /// The records, partition by partition, offsets increasing within each.
    fn runs(&self) -> Vec<(u32, Vec<ReadRecord<'_>>)>;
}

/// The log could not be read (the reader keeps trying; this is for counting and logging).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ReadError(pub String);

/// A reader of the partitions a [`PartitionListener`] is assigned. `poll` and `close` are
/// called from one thread; `commit` may be called from another.
pub trait PartitionReader: Send + Sync {
    type Batch<'a>: ReadBatch
    where
        Self: 'a;

    /// Up to `max` records, waiting at most `timeout` for the first. Assignment changes are
    /// reported to the listener inside this call; records read before a change are not
    /// returned after it, and are read again from the positions the listener gave (a caller
    /// may drop a batch from a poll during which the assignment changed).
    fn poll(&self, max: usize, timeout: Duration) -> Result<Option<Self::Batch<'_>>, ReadError>;

    /// Records the offsets the reader would resume from (for lag monitoring, and for the
    /// embedded log's retention). With `wait`, returns once they are recorded.
    fn commit(&self, offsets: &[(u32, u64)], wait: bool);

    /// Gives every partition up (the listener's `revoked` runs) and leaves.
    fn close(&self);
}
