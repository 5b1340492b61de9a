//! The windowing engine: event-time one-minute tumbling windows of unique users per product,
//! with watermarks, late-event handling and checkpoints for exact recovery by replay.
//!
//! - [`core`]: the pure state machine (no I/O, no clock), re-exported at the crate root.
//! - [`offline`]: the file runtime of `ecom window`: NDJSON in, results out.
//! - The runtime that drives the core from a log lives in `stream-runtime/`
//!   (the `stream-runtime` crate), so that this crate builds without Kafka, AWS or Tokio.
//! - [`sample`]: a deterministic generator of realistic activity streams for demos, tests
//!   and benchmarks.

pub mod core;
pub mod offline;
#[cfg(feature = "openapi")]
mod openapi;
pub mod sample;

pub use crate::core::*;
