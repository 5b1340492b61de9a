//! The subcommands: each parses its flags and calls into a library.

/// `println!` that never panics: a line for a terminal that may be gone (`ecom up | tee` after
/// Ctrl-C, a closed pipe) is dropped, and the process goes on with its orderly stop.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `eprintln!` that never panics (see [`outln!`]).
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

pub mod analytics;
pub mod crud;
pub mod generate;
pub mod health;
pub mod import;
pub mod ingest;
pub mod stream_engine;
pub mod up;
pub mod window;

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use std::time::Duration;

use ::stream_engine::{Counting, EngineConfig};
use anyhow::Context;

/// The engine's settings, shared by `ecom stream-engine` and `ecom up`.
#[derive(clap::Args, Debug, Clone)]
pub struct EngineArgs {
    /// Watermark = largest event time seen in the partition minus this.
    #[arg(long, env = "ECOM_OUT_OF_ORDERNESS", default_value = "10s", value_parser = parse_duration)]
    pub out_of_orderness: Duration,
    /// Keep fired windows this long and re-fire them on late events.
    #[arg(long, env = "ECOM_ALLOWED_LATENESS", default_value = "0s", value_parser = parse_duration)]
    pub allowed_lateness: Duration,
    /// After this long without events, a partition's watermark advances with the clock.
    #[arg(long, env = "ECOM_IDLE_TIMEOUT", value_parser = parse_duration)]
    pub idle_timeout: Option<Duration>,
    /// Count unique users with HyperLogLog++ (about 0.8 % error, at most 16 KiB per window).
    #[arg(long, env = "ECOM_APPROX", value_parser = clap::builder::BoolishValueParser::new())]
    pub approx: bool,
}

impl EngineArgs {
    pub fn config(&self) -> EngineConfig {
        EngineConfig {
            out_of_orderness: self.out_of_orderness,
            allowed_lateness: self.allowed_lateness,
            idle_timeout: self.idle_timeout,
            counting: if self.approx {
                Counting::Approximate
            } else {
                Counting::Exact
            },
        }
    }
}

/// The Kafka brokers (`ecom ingest`, `ecom stream-engine`, `ecom analytics`, `ecom orders`).
#[derive(clap::Args, Debug, Clone)]
pub struct Brokers {
    /// Kafka bootstrap servers (`host:port,...`).
    #[arg(
        long,
        env = "KAFKA_BOOTSTRAP_SERVERS",
        default_value = "127.0.0.1:9092"
    )]
    pub bootstrap_servers: String,
    /// `plaintext`, `ssl` (TLS), or `sasl_ssl` (TLS and SASL: Amazon MSK with IAM).
    #[arg(long, env = "KAFKA_SECURITY_PROTOCOL", default_value = "plaintext")]
    pub security_protocol: String,
    /// With `sasl_ssl`: `AWS_MSK_IAM` (tokens signed with the AWS SDK's default credentials).
    #[arg(long, env = "KAFKA_SASL_MECHANISM")]
    pub sasl_mechanism: Option<String>,
    /// Replicas of the topics this process creates (3 on MSK, whose brokers refuse writes to
    /// a topic with fewer replicas than `min.insync.replicas`).
    #[arg(long, env = "KAFKA_REPLICATION_FACTOR", default_value_t = 1,
          value_parser = clap::value_parser!(i32).range(1..))]
    pub replication_factor: i32,
}

impl Brokers {
    /// The cluster every Kafka client of the process uses; a bad security setting is refused
    /// here, at start.
    pub fn cluster(&self) -> anyhow::Result<event_log::kafka::Cluster> {
        let security = event_log::kafka::Security::parse(
            &self.security_protocol,
            self.sasl_mechanism.as_deref(),
        )
        .map_err(|e| anyhow::anyhow!("KAFKA_SECURITY_PROTOCOL/KAFKA_SASL_MECHANISM: {e}"))?;
        Ok(event_log::kafka::Cluster {
            bootstrap_servers: self.bootstrap_servers.clone(),
            security,
            replication_factor: self.replication_factor,
        })
    }
}

/// The DynamoDB tables of the results and checkpoints (`ecom stream-engine`, `ecom analytics`).
#[derive(clap::Args, Debug, Clone)]
pub struct DynamoTables {
    /// DynamoDB table of the window results.
    #[arg(long, env = "DYNAMODB_TABLE", default_value = "ecom-analytics")]
    pub table: String,
    /// DynamoDB table of the checkpoints (default: the results table's name + `-checkpoints`).
    #[arg(long, env = "DYNAMODB_CHECKPOINT_TABLE")]
    pub checkpoint_table: Option<String>,
}

impl DynamoTables {
    /// (results table, checkpoint table).
    pub fn names(self) -> (String, String) {
        let checkpoints = self
            .checkpoint_table
            .unwrap_or_else(|| format!("{}-checkpoints", self.table));
        (self.table, checkpoints)
    }
}

/// The name of the engine's checkpoint stream: its consumer group and input topic.
pub fn stream_id(group_id: &str, input_topic: &str) -> String {
    format!("{group_id}/{input_topic}")
}

/// A duration flag such as `10s`, `1m30s` or `250ms`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 10s, 1m, 500ms)"))
}

/// `-` is standard output, anything else a file created (or truncated).
pub fn create_output(path: &Path) -> anyhow::Result<Box<dyn Write>> {
    Ok(if path == Path::new("-") {
        Box::new(BufWriter::with_capacity(1 << 16, io::stdout().lock()))
    } else {
        let file =
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        Box::new(BufWriter::with_capacity(1 << 16, file))
    })
}
