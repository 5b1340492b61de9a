//! `ecom stream-engine`: the windowing engine on Kafka, storing results in DynamoDB.

use std::net::SocketAddr;
use std::time::Duration;

use event_log::kafka::KafkaReaderSettings;
use result_store::dynamo::DynamoSettings;
use stream_runtime::Settings;
use stream_runtime::kafka::OutputTopics;

use super::parse_duration;

#[derive(clap::Args)]
pub struct Args {
    /// Listen address of `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, env = "ECOM_ADDR", default_value = "0.0.0.0:8086")]
    addr: SocketAddr,
    #[command(flatten)]
    kafka: super::Brokers,
    /// Topic of the activity events, keyed by `product_id`.
    #[arg(long, env = "KAFKA_INPUT_TOPIC", default_value = "ecom-raw-events")]
    input_topic: String,
    /// Topic the window results are published to, keyed `product_id|window_start`.
    #[arg(
        long,
        env = "KAFKA_OUTPUT_TOPIC",
        default_value = "ecom-analytics-results"
    )]
    output_topic: String,
    /// Topic of the late events (their window had fired).
    #[arg(long, env = "KAFKA_LATE_TOPIC", default_value = "ecom-late-events")]
    late_topic: String,
    /// Topic of the records that are not valid events, with the reason in headers.
    #[arg(
        long,
        env = "KAFKA_DEAD_LETTER_TOPIC",
        default_value = "ecom-dead-letters"
    )]
    dead_letter_topic: String,
    /// Consumer group: instances in one group share the input partitions.
    #[arg(long, env = "KAFKA_GROUP_ID", default_value = "ecom-stream-engine")]
    group_id: String,
    /// A silent instance loses its partitions to the others after this long.
    #[arg(long, env = "KAFKA_SESSION_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    session_timeout: Duration,
    /// Partitions of the input and results topics when the engine creates them.
    #[arg(long, env = "KAFKA_INPUT_PARTITIONS", default_value_t = 4)]
    partitions: i32,
    #[command(flatten)]
    tables: super::DynamoTables,
    #[command(flatten)]
    engine: super::EngineArgs,
    /// How often output is stored and partitions checkpointed.
    #[arg(long, env = "ECOM_COMMIT_INTERVAL", default_value = "200ms", value_parser = parse_duration)]
    commit_interval: Duration,
    /// How long a failing sink is retried before the engine stops (to be restarted).
    #[arg(long, env = "ECOM_SINK_RETRY_FOR", default_value = "60s", value_parser = parse_duration)]
    sink_retry_for: Duration,
    /// DynamoDB writes in flight at once.
    #[arg(long, env = "ECOM_DYNAMODB_CONCURRENCY", default_value_t = 32)]
    dynamodb_concurrency: usize,
    /// Do not create missing topics and tables.
    #[arg(long, env = "ECOM_NO_CREATE", value_parser = clap::builder::BoolishValueParser::new())]
    no_create: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let _telemetry = service_common::telemetry::init("stream-engine")?;
    let (table, checkpoint_table) = args.tables.names();
    let settings = Settings {
        addr: args.addr,
        dynamo: DynamoSettings {
            table,
            checkpoint_table,
            stream: super::stream_id(&args.group_id, &args.input_topic),
            retry_for: args.sink_retry_for,
            concurrency: args.dynamodb_concurrency,
            partitions: args.partitions.max(1) as u32,
        },
        source: KafkaReaderSettings {
            cluster: args.kafka.cluster()?,
            topic: args.input_topic,
            group_id: args.group_id,
            session_timeout: args.session_timeout,
        },
        outputs: OutputTopics {
            results: args.output_topic,
            late: args.late_topic,
            dead_letter: args.dead_letter_topic,
        },
        engine: args.engine.config(),
        commit_interval: args.commit_interval,
        create: (!args.no_create).then_some(args.partitions),
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime
        .block_on(stream_runtime::run(
            settings,
            service_common::shutdown_signal(),
        ))
        .map_err(anyhow::Error::from)
}
