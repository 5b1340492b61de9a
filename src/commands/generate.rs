//! `ecom gen`: a realistic NDJSON activity stream, deterministic by seed.

use std::io::Write;
use std::path::PathBuf;

use stream_engine::sample::{Sample, SampleConfig};

use super::{create_output, parse_duration};

#[derive(clap::Args)]
pub struct Args {
    /// Number of events.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Number of distinct products (Zipf-skewed popularity).
    #[arg(long, default_value_t = 10_000)]
    products: u32,
    /// Number of distinct users.
    #[arg(long, default_value_t = 100_000)]
    users: u32,
    /// Zipf exponent of product popularity; 0 for uniform.
    #[arg(long, default_value_t = 1.1)]
    skew: f64,
    /// Events per second of event time.
    #[arg(long, default_value_t = 20_000)]
    rate: u32,
    /// Largest backward jitter of on-time events.
    #[arg(long, default_value = "8s", value_parser = parse_duration)]
    disorder: std::time::Duration,
    /// Fraction of events pulled back by minutes (late).
    #[arg(long, default_value_t = 0.0)]
    late_fraction: f64,
    /// Fraction of lines that are malformed.
    #[arg(long, default_value_t = 0.0)]
    malformed_fraction: f64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Output file, or `-` for standard output.
    #[arg(long, short, default_value = "-")]
    output: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    for (name, value) in [
        ("--late-fraction", args.late_fraction),
        ("--malformed-fraction", args.malformed_fraction),
    ] {
        anyhow::ensure!(
            (0.0..=1.0).contains(&value),
            "{name} must be between 0 and 1"
        );
    }
    anyhow::ensure!(
        args.skew >= 0.0 && args.skew.is_finite(),
        "--skew must be 0 or more"
    );
    let mut sample = Sample::new(SampleConfig {
        events: args.events,
        products: args.products.max(1),
        users: args.users.max(1),
        product_skew: args.skew,
        events_per_second: args.rate.max(1),
        disorder_ms: u32::try_from(args.disorder.as_millis()).unwrap_or(u32::MAX),
        late_fraction: args.late_fraction,
        malformed_fraction: args.malformed_fraction,
        seed: args.seed,
        ..SampleConfig::default()
    });
    let mut out = create_output(&args.output)?;
    let mut line = Vec::with_capacity(1 << 16);
    while sample.write_line(&mut line) {
        if line.len() >= 1 << 15 {
            out.write_all(&line)?;
            line.clear();
        }
    }
    out.write_all(&line)?;
    out.flush()?;
    Ok(())
}
