//! `ecom analytics`: the analytics API over DynamoDB, its live stream from the results topic.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use analytics_api::{Config, Feed};
use anyhow::Context;
use event_log::kafka::{KafkaReader, KafkaReaderSettings};
use result_store::Writes;
use result_store::dynamo::{DynamoSettings, DynamoStore};

#[derive(clap::Args)]
pub struct Args {
    /// Listen address.
    #[arg(long, env = "ECOM_ADDR", default_value = "0.0.0.0:8085")]
    addr: SocketAddr,
    #[command(flatten)]
    kafka: super::Brokers,
    /// The topic of window results the live stream follows.
    #[arg(
        long,
        env = "KAFKA_OUTPUT_TOPIC",
        default_value = "ecom-analytics-results"
    )]
    output_topic: String,
    /// The engine's input topic and group: they name its checkpoints.
    #[arg(long, env = "KAFKA_INPUT_TOPIC", default_value = "ecom-raw-events")]
    input_topic: String,
    #[arg(long, env = "KAFKA_GROUP_ID", default_value = "ecom-stream-engine")]
    group_id: String,
    /// Partitions of the input topic (whose checkpoints say which window fired last).
    #[arg(long, env = "KAFKA_INPUT_PARTITIONS", default_value_t = 4)]
    partitions: u32,
    #[command(flatten)]
    tables: super::DynamoTables,
    /// Live-stream clients at once; more get 503.
    #[arg(long, env = "ECOM_MAX_STREAM_CLIENTS", default_value_t = 256)]
    max_stream_clients: usize,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let _telemetry = service_common::telemetry::init("analytics")?;
    let (table, checkpoint_table) = args.tables.names();
    let settings = DynamoSettings {
        table,
        checkpoint_table,
        stream: super::stream_id(&args.group_id, &args.input_topic),
        retry_for: Duration::from_secs(5),
        concurrency: 8,
        partitions: args.partitions.max(1),
    };
    let config = Config {
        addr: args.addr,
        max_stream_clients: args.max_stream_clients,
    };
    let tail_settings = KafkaReaderSettings {
        cluster: args.kafka.cluster()?,
        topic: args.output_topic,
        // Never joined (the tail is assigned every partition) nor committed: the id only names
        // this reader in the brokers' logs and metrics. In a container the process id is 1
        // everywhere, so the host's name (the pod's) comes first.
        group_id: format!("ecom-analytics-{}-{}", host_name(), std::process::id()),
        session_timeout: Duration::from_secs(10),
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        // Writes is irrelevant to a reader.
        let store = DynamoStore::new(
            DynamoStore::client_from_env().await,
            settings,
            Writes::Conditional,
        );
        let feed = Feed::default();
        let _tail = analytics_api::feed::tail(
            move |listener| KafkaReader::assign_all(&tail_settings, listener),
            feed.clone(),
        )?;
        let (addr, server) = analytics_api::build(
            config.clone(),
            Arc::new(store),
            feed,
            service_common::shutdown_signal(),
        )
        .await
        .with_context(|| format!("cannot listen on {}", config.addr))?;
        tracing::info!(%addr, "analytics API listening");
        server.await?;
        Ok(())
    })
}

/// The host's name (a pod's name in Kubernetes), or `host` where it cannot be read.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "host".to_owned())
}
