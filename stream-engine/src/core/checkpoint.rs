//! What a partition needs to resume exactly where it was.

use serde::{Deserialize, Serialize};

/// Counters of one partition, carried in its checkpoint so that a restored engine keeps
/// counting where it stopped (replayed input is never counted twice).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineStats {
    /// Events aggregated into a window (late ones excluded).
    pub events: u64,
    /// Late events: their window had fired and its state was gone.
    pub late: u64,
    /// Window results emitted, re-fires included.
    pub results: u64,
    /// Of `results`, those that corrected an already-fired window within the allowed lateness.
    pub refires: u64,
}

/// A partition's resume point. Together with the input from `resume_offset` on it rebuilds
/// the state exactly: see [`crate::PartitionEngine::restore`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Format version; see [`Checkpoint::VERSION`].
    pub version: u32,
    /// Where to replay from: the earliest offset still feeding a window in state, or the next
    /// offset when no window is open.
    pub resume_offset: u64,
    /// The highest offset processed; replayed offsets up to it only rebuild state.
    pub highest_offset: Option<u64>,
    /// The largest event time seen, UTC milliseconds.
    pub max_event_time_ms: Option<i64>,
    /// The watermark reached, UTC milliseconds. Windows ending at or before it have fired.
    pub watermark_ms: Option<i64>,
    pub stats: EngineStats,
}

impl Checkpoint {
    pub const VERSION: u32 = 1;

    /// The checkpoint of a partition that has seen nothing.
    pub fn initial() -> Self {
        Checkpoint {
            version: Self::VERSION,
            resume_offset: 0,
            highest_offset: None,
            max_event_time_ms: None,
            watermark_ms: None,
            stats: EngineStats::default(),
        }
    }

    /// Checks what a store handed back before it is trusted.
    pub fn validate(&self) -> Result<(), CheckpointError> {
        if self.version != Self::VERSION {
            return Err(CheckpointError::Version(self.version));
        }
        // Kafka offsets are non-negative i64s.
        let limit = i64::MAX as u64;
        if self.resume_offset > limit || self.highest_offset.is_some_and(|h| h >= limit) {
            return Err(CheckpointError::OffsetOutOfRange);
        }
        let next = self.highest_offset.map_or(0, |h| h + 1);
        if self.resume_offset > next {
            return Err(CheckpointError::ResumeBeyondProgress {
                resume_offset: self.resume_offset,
                highest_offset: self.highest_offset,
            });
        }
        if self.watermark_ms.is_some() && self.max_event_time_ms.is_none() {
            return Err(CheckpointError::WatermarkWithoutEvents);
        }
        Ok(())
    }
}

/// A checkpoint that cannot be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint format version {0} is not supported (this build reads version 1)")]
    Version(u32),
    #[error(
        "checkpoint resume offset {resume_offset} is past its highest offset {highest_offset:?}"
    )]
    ResumeBeyondProgress {
        resume_offset: u64,
        highest_offset: Option<u64>,
    },
    #[error("checkpoint has a watermark but no event time")]
    WatermarkWithoutEvents,
    #[error("checkpoint offsets are beyond the range of Kafka offsets")]
    OffsetOutOfRange,
}
