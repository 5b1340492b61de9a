//! The order flow's messaging, shared by the orders service, its participants (inventory,
//! payments) and the catalog's stock sync:
//!
//! - [`contract`]: the topics and the message types, defined once;
//! - [`envelope`]: the CloudEvents 1.0 JSON envelope every message travels in;
//! - [`outbox`]: outgoing messages staged in the transaction of their change, and the
//!   [`outbox::Relay`] that appends them to their topics;
//! - [`consumer`]: an idempotent consumer, whose effect, replies, inbox entry and read position
//!   commit in one transaction of the participant's database ([`inbox`]).
//!
//! Together they make each step of the saga exactly-once in effect over an at-least-once log:
//! a message is sent at least once (the outbox), and handled at most once (the inbox).

pub mod consumer;
pub mod contract;
pub mod envelope;
pub mod inbox;
pub mod outbox;

pub use consumer::{Consumer, ConsumerConfig, ConsumerMetrics, HandleError, Handler};
pub use contract::Message;
pub use envelope::{BadEnvelope, Envelope};
pub use outbox::{Relay, RelayFamilies, RelayMetrics, Topics};

/// A write transaction of a service's database.
pub type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// Forgets old inbox entries hourly, for as long as the runtime runs.
pub fn spawn_inbox_purge(db: service_db::Db) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            tick.tick().await;
            if let Err(e) = inbox::purge(&db).await {
                tracing::warn!(error = %e, "inbox purge failed");
            }
        }
    });
}
