//! `ecom window`: the offline engine over an NDJSON file.

use std::fs::File;
use std::io::{self, IsTerminal, Read};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use stream_engine::offline::{self, OfflineConfig, SideOutputs, Summary};
use stream_engine::{Counting, EngineConfig};

use super::{create_output, parse_duration};

#[derive(clap::Args)]
pub struct Args {
    /// NDJSON activity events, or `-` for standard input.
    #[arg(long, short)]
    input: PathBuf,
    /// NDJSON window results, or `-` for standard output.
    #[arg(long, short, default_value = "-")]
    output: PathBuf,
    /// Partitions to split the input into by product (Kafka's partitioner).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4096))]
    partitions: u32,
    /// Count unique users with HyperLogLog++ (about 0.8 % error, at most 16 KiB per window).
    #[arg(long)]
    approx: bool,
    /// Watermark = largest event time seen minus this.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    out_of_orderness: Duration,
    /// Keep fired windows this long and re-fire them on late events.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    allowed_lateness: Duration,
    /// Write late events here (NDJSON).
    #[arg(long)]
    late_output: Option<PathBuf>,
    /// Write rejected lines here with their reason (NDJSON).
    #[arg(long)]
    dead_letter: Option<PathBuf>,
    /// Summary on stderr as `text` or `json`.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    summary: String,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = OfflineConfig {
        engine: EngineConfig {
            out_of_orderness: args.out_of_orderness,
            allowed_lateness: args.allowed_lateness,
            idle_timeout: None,
            counting: if args.approx {
                Counting::Approximate
            } else {
                Counting::Exact
            },
        },
        partitions: args.partitions,
    };
    config.engine.validate()?;

    // The offline runner reads in large chunks of its own: no buffering here.
    let (input, size): (Box<dyn Read>, Option<u64>) = if args.input.as_os_str() == "-" {
        (Box::new(io::stdin().lock()), None)
    } else {
        let file = File::open(&args.input)
            .with_context(|| format!("cannot open {}", args.input.display()))?;
        let size = file.metadata().ok().map(|m| m.len());
        (Box::new(file), size)
    };
    let mut output = create_output(&args.output)?;
    let mut late = args.late_output.as_deref().map(create_output).transpose()?;
    let mut dead_letter = args.dead_letter.as_deref().map(create_output).transpose()?;

    let bar = match size {
        Some(size) if io::stderr().is_terminal() && size > 16 << 20 => {
            let bar = ProgressBar::new(size);
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            Some(bar)
        }
        _ => None,
    };
    let mut progress = |bytes: u64| {
        if let Some(bar) = &bar {
            bar.set_position(bytes);
        }
    };
    let summary = offline::run(
        &config,
        input,
        &mut output,
        SideOutputs {
            late: late.as_mut().map(|w| w as &mut dyn io::Write),
            dead_letter: dead_letter.as_mut().map(|w| w as &mut dyn io::Write),
            progress: Some(&mut progress),
        },
    )?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    match args.summary.as_str() {
        "json" => eprintln!("{}", serde_json::to_string(&summary)?),
        _ => eprint!("{}", render(&summary)),
    }
    Ok(())
}

fn render(s: &Summary) -> String {
    let reasons = if s.rejected_by_reason.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = s
            .rejected_by_reason
            .iter()
            .map(|(code, n)| format!("{code} {n}"))
            .collect();
        format!("  ({})", list.join(", "))
    };
    format!(
        "events read      {}\naccepted         {}\nrejected         {}{reasons}\nlate             {}\nwindows emitted  {}\nelapsed          {:.3} s\nthroughput       {:.0} events/s\n",
        s.events_read,
        s.accepted,
        s.rejected,
        s.late,
        s.windows_emitted,
        s.elapsed.as_secs_f64(),
        s.events_per_second,
    )
}
