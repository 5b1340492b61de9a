//! `ecom up`: the platform on embedded defaults.
//!
//! The services (ingest, gateway, the Kafka and DynamoDB runtimes) come with their issues;
//! until then `up` runs the main job end to end in-process: a generated activity stream
//! through the offline engine, printing each minute's windows.

use std::collections::BTreeMap;
use std::io::Write;

use stream_engine::core::time::format_rfc3339_ms;
use stream_engine::offline::{self, OfflineConfig, SideOutputs};
use stream_engine::sample::{Sample, SampleConfig};
use stream_engine::{Counting, EngineConfig};

#[derive(clap::Args)]
pub struct Args {
    /// Events in the generated stream.
    #[arg(long, default_value_t = 300_000)]
    events: u64,
    /// Products shown per window.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// Count unique users with HyperLogLog++.
    #[arg(long)]
    approx: bool,
}

#[derive(serde::Deserialize)]
struct Row {
    product_id: String,
    window_start: String,
    unique_user_count: u64,
    event_count: u64,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let sample = SampleConfig {
        events: args.events,
        products: 1_000,
        users: 20_000,
        events_per_second: 1_000,
        late_fraction: 0.001,
        malformed_fraction: 0.001,
        ..SampleConfig::default()
    };
    eprintln!(
        "generating {} events: {} products (Zipf 1.1), {} users, {} events/s of event time from {}",
        sample.events,
        sample.products,
        sample.users,
        sample.events_per_second,
        format_rfc3339_ms(sample.start_ms)
    );
    let mut input = Vec::new();
    let mut stream = Sample::new(sample);
    while stream.write_line(&mut input) {}

    let config = OfflineConfig {
        engine: EngineConfig {
            counting: if args.approx {
                Counting::Approximate
            } else {
                Counting::Exact
            },
            ..EngineConfig::default()
        },
        partitions: 4,
    };
    let mut results = Vec::new();
    let summary = offline::run(
        &config,
        input.as_slice(),
        &mut results,
        SideOutputs::default(),
    )?;

    let mut windows: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    for line in results.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let row: Row = serde_json::from_slice(line)?;
        windows
            .entry(row.window_start.clone())
            .or_default()
            .push(row);
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for (start, mut rows) in windows {
        rows.sort_by(|a, b| {
            b.unique_user_count
                .cmp(&a.unique_user_count)
                .then(a.product_id.cmp(&b.product_id))
        });
        let events: u64 = rows.iter().map(|r| r.event_count).sum();
        writeln!(
            out,
            "window {start}  products {:>5}  events {:>7}",
            rows.len(),
            events
        )?;
        for row in rows.iter().take(args.top) {
            writeln!(
                out,
                "    {:<8} unique users {:>6}  events {:>6}",
                row.product_id, row.unique_user_count, row.event_count
            )?;
        }
    }
    writeln!(
        out,
        "\n{} events read, {} rejected {:?}, {} late, {} windows, {:.0} events/s",
        summary.events_read,
        summary.rejected,
        summary.rejected_by_reason,
        summary.late,
        summary.windows_emitted,
        summary.events_per_second
    )?;
    Ok(())
}
