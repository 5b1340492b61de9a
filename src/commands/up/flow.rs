//! The order flow in `ecom up`: its topics on the embedded log, and what runs beside the
//! routes of orders, inventory and payments: each participant's consumers and outbox relay,
//! and the saga's timeout sweep.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use event_log::embedded::{EmbeddedLog, LogConfig};
use messaging::contract::{
    CATALOG_EVENTS, DEAD_LETTERS, INVENTORY_EVENTS, ORDER_EVENTS, PAYMENT_EVENTS,
};
use messaging::{Consumer, Relay};

/// The order flow's topics.
#[derive(Clone)]
pub struct FlowTopics {
    pub orders: EmbeddedLog,
    pub inventory: EmbeddedLog,
    pub payments: EmbeddedLog,
    pub catalog: EmbeddedLog,
    pub dead_letters: EmbeddedLog,
}

impl FlowTopics {
    /// Opens (or creates) them under `log_dir`: the four flow topics with `partitions` and
    /// kept until their consumers have read them, the dead letters with one partition.
    pub fn open(
        log_dir: &Path,
        partitions: u32,
        consumed: &LogConfig,
        kept: &LogConfig,
    ) -> anyhow::Result<FlowTopics> {
        let open = |topic: &str, config: LogConfig| {
            let dir = log_dir.join(topic);
            EmbeddedLog::open(&dir, config)
                .with_context(|| format!("cannot open the event log in {}", dir.display()))
        };
        let consumed = LogConfig {
            partitions,
            ..consumed.clone()
        };
        Ok(FlowTopics {
            orders: open(ORDER_EVENTS, consumed.clone())?,
            inventory: open(INVENTORY_EVENTS, consumed.clone())?,
            payments: open(PAYMENT_EVENTS, consumed.clone())?,
            catalog: open(CATALOG_EVENTS, consumed)?,
            dead_letters: open(
                DEAD_LETTERS,
                LogConfig {
                    partitions: 1,
                    ..kept.clone()
                },
            )?,
        })
    }

    pub fn named(&self) -> Vec<(&'static str, EmbeddedLog)> {
        vec![
            (ORDER_EVENTS, self.orders.clone()),
            (INVENTORY_EVENTS, self.inventory.clone()),
            (PAYMENT_EVENTS, self.payments.clone()),
            (CATALOG_EVENTS, self.catalog.clone()),
            (DEAD_LETTERS, self.dead_letters.clone()),
        ]
    }
}

/// A background task and what stops it.
struct Task {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Task {
    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// The order flow running: consumers, relays, the timeout sweep.
pub struct Flow {
    consumers: Vec<Consumer>,
    sweep: Option<Task>,
    relays: Vec<Task>,
}

impl Flow {
    pub fn new() -> Flow {
        Flow {
            consumers: Vec::new(),
            sweep: None,
            relays: Vec::new(),
        }
    }

    pub fn consumer(&mut self, consumer: Consumer) {
        self.consumers.push(consumer);
    }

    pub fn relay<L: event_log::EventLog>(&mut self, relay: Relay<L>) {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(relay.run(Duration::from_secs(1), async {
            let _ = stopped.await;
        }));
        self.relays.push(Task { stop, task });
    }

    pub fn sweep(&mut self, saga: Arc<orders::Saga>) {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(saga.run_timeouts(async {
            let _ = stopped.await;
        }));
        self.sweep = Some(Task { stop, task });
    }

    /// Stops the consumers (each after the batch in hand commits), the sweep, then the relays
    /// (which send what was committed by then).
    pub async fn stop(self) {
        for consumer in self.consumers {
            consumer.stop().await;
        }
        if let Some(sweep) = self.sweep {
            sweep.stop().await;
        }
        for relay in self.relays {
            relay.stop().await;
        }
    }
}
