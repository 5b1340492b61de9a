//! The bottom of the workspace: small types and policies that any crate may use without
//! pulling in a server, a telemetry pipeline or the engine.
//!
//! - [`retry`]: the one backoff policy (every client that retries uses it);
//! - [`money`]: integer minor units of an ISO 4217 currency.
//!
//! Invariant: this crate depends on nothing of the workspace, and on no HTTP, Kafka, AWS or
//! OpenTelemetry crate; `service-common` re-exports it for the services.

pub mod money;
pub mod retry;
