//! The windowing engine: event-time one-minute tumbling windows of unique users per product,
//! with watermarks, late-event handling and checkpoints for exact recovery by replay.
//!
//! - [`core`]: the pure state machine (no I/O, no clock), re-exported at the crate root.
//! - [`offline`]: the file runtime of `ecom window`: NDJSON in, results out.
//! - `runtime` (feature `runtime`): the Kafka and DynamoDB runtime of `ecom stream-engine`.
//! - [`sample`]: a deterministic generator of realistic activity streams for demos, tests
//!   and benchmarks.

pub mod core;
pub mod offline;
#[cfg(feature = "runtime")]
pub mod runtime;
pub mod sample;

pub use crate::core::*;
