//! The order flow's settings and its Kafka plumbing, shared by `ecom up` (which runs it on the
//! embedded log) and the separate `ecom orders`, `ecom inventory` and `ecom payments`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use event_log::ReadError;
use event_log::kafka::{
    Cluster, KafkaLog, KafkaReader, KafkaReaderSettings, KafkaSettings, TopicSpec, ensure_topics,
};
use messaging::Topics;
use messaging::consumer::Positions;

use super::parse_duration;

/// How long a saga step waits for its answer.
#[derive(clap::Args, Debug, Clone)]
pub struct SagaFlags {
    /// A saga step unanswered this long cancels the order (reason `timeout`) and compensates.
    #[arg(long, env = "ECOM_SAGA_STEP_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub saga_step_timeout: Duration,
}

/// The inventory's settings.
#[derive(clap::Args, Debug, Clone)]
pub struct StockFlags {
    /// `StockLow` fires when a product's available stock falls below this.
    #[arg(long, env = "ECOM_LOW_STOCK_THRESHOLD", default_value_t = 5,
          value_parser = clap::value_parser!(i64).range(0..))]
    pub low_stock_threshold: i64,
}

impl StockFlags {
    pub fn settings(&self) -> inventory::Settings {
        inventory::Settings {
            low_stock_threshold: self.low_stock_threshold,
        }
    }
}

/// The payment provider and its settings.
#[derive(clap::Args, Debug, Clone)]
pub struct PaymentFlags {
    /// The payment provider: `sandbox` (a card processor's test mode with Stripe's test
    /// payment methods) is the one shipped.
    #[arg(long, env = "ECOM_PAYMENT_PROVIDER", default_value = "sandbox")]
    pub payment_provider: String,
    /// The sandbox's latency per call, in milliseconds.
    #[arg(long, env = "ECOM_PAYMENT_SANDBOX_LATENCY_MS", default_value_t = 0)]
    pub payment_sandbox_latency_ms: u64,
    /// The share of the sandbox's calls that fail transiently (0 to 1), retried with backoff.
    #[arg(long, env = "ECOM_PAYMENT_SANDBOX_ERROR_RATE", default_value_t = 0.0)]
    pub payment_sandbox_error_rate: f64,
}

impl PaymentFlags {
    /// The sandbox's settings; a provider other than `sandbox`, or a rate outside 0..=1, is
    /// refused.
    pub fn sandbox(&self) -> anyhow::Result<payments::sandbox::SandboxSettings> {
        payments::provider::ProviderName::parse(&self.payment_provider)
            .map_err(|e| anyhow::anyhow!("ECOM_PAYMENT_PROVIDER: {e}"))?;
        payments::sandbox::SandboxSettings::new(
            Duration::from_millis(self.payment_sandbox_latency_ms),
            self.payment_sandbox_error_rate,
        )
        .map_err(|e| anyhow::anyhow!("ECOM_PAYMENT_SANDBOX_ERROR_RATE: {e}"))
    }
}

/// Partitions of the order flow's topics on Kafka (created if missing).
#[derive(clap::Args, Debug, Clone)]
pub struct FlowTopics {
    /// Partitions of `order.events`, `inventory.events` and `payment.events` when this process
    /// creates them.
    #[arg(long, env = "KAFKA_ORDER_FLOW_PARTITIONS", default_value_t = 4,
          value_parser = clap::value_parser!(i32).range(1..=1024))]
    pub order_flow_partitions: i32,
}

impl FlowTopics {
    /// Creates the order flow's topics that do not exist yet.
    pub async fn ensure(&self, cluster: &Cluster) -> anyhow::Result<()> {
        let topics: Vec<TopicSpec> = messaging::contract::TOPICS
            .iter()
            .map(|name| TopicSpec {
                name: (*name).to_owned(),
                partitions: if *name == messaging::contract::DEAD_LETTERS {
                    1
                } else {
                    self.order_flow_partitions
                },
            })
            .collect();
        ensure_topics(cluster, &topics, Duration::from_secs(30))
            .await
            .context("cannot create the order flow's topics")
    }
}

/// A producer per topic in `names`, for a relay.
pub fn kafka_topics(cluster: &Cluster, names: &[&str]) -> anyhow::Result<Topics<KafkaLog>> {
    let mut topics = Topics::default();
    for name in names {
        let log = KafkaLog::new(KafkaSettings {
            cluster: cluster.clone(),
            topic: (*name).to_owned(),
            delivery_timeout: Duration::from_secs(5),
            max_in_flight: 100_000,
        })
        .with_context(|| format!("cannot create the Kafka producer of {name}"))?;
        topics = topics.with(name, log);
    }
    Ok(topics)
}

/// A consumer of `topic` in group `group` (a participant's consumer name), whose positions the
/// participant's database holds.
pub fn kafka_reader(
    cluster: &Cluster,
    topic: &str,
    group: &str,
    listener: Arc<Positions>,
) -> Result<KafkaReader<Positions>, ReadError> {
    KafkaReader::subscribe(
        &KafkaReaderSettings {
            cluster: cluster.clone(),
            topic: topic.to_owned(),
            group_id: group.to_owned(),
            session_timeout: Duration::from_secs(10),
        },
        listener,
    )
}
