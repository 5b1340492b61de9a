//! The pure core: bytes and events in, window results, late events and checkpoints out.
//!
//! Invariant: nothing in this module performs I/O, reads a clock, spawns a thread or
//! allocates a global. Processing time enters only as an argument of
//! [`PartitionEngine::tick`]. That is what lets the property tests compare it with a
//! brute-force oracle and the benchmarks measure it alone.

pub mod activity;
pub mod checkpoint;
pub mod config;
pub mod decode;
pub mod engine;
pub mod hash;
pub mod hll;
pub mod ids;
pub mod intern;
pub mod partitioner;
pub mod prefetch;
pub mod result;
pub mod time;

pub use activity::ActivityEvent;
pub use checkpoint::{Checkpoint, CheckpointError, EngineStats};
pub use config::{ConfigError, Counting, EngineConfig};
pub use decode::{Event, RejectReason, Rejection, decode_event, decode_with_serde};
pub use engine::{PartitionEngine, RestoreError};
pub use result::{LateEvent, Output, WindowResult};
