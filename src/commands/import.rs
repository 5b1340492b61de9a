//! `ecom import FILE|s3://BUCKET/KEY`: the CSV product import for operators, on the Lambda's
//! core (`product_import`). Prints the report and writes it beside the input
//! (`<input>.report.json`); fails (exit status 2) when the file fails as a whole.
//!
//! Also the import folder of `ecom up` ([`watch_folder`]): a `.csv` dropped into
//! `<data-dir>/import/` is imported once it has stopped growing, then moved with its report to
//! `import/done/` (or to `import/failed/` when its header is unusable).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use product_import::api::{ApiConfig, ProductApi};
use product_import::report::Report;
use product_import::{Failure, Options};

#[derive(clap::Args)]
pub struct Args {
    /// The CSV file, or `s3://BUCKET/KEY` (AWS_REGION, AWS_ENDPOINT_URL and credentials the
    /// AWS SDK's way).
    source: String,
    #[command(flatten)]
    importer: ImporterFlags,
    /// The data directory of `ecom up`, whose `importer-secret` is used when no secret is
    /// given.
    #[arg(long, env = "ECOM_DATA_DIR", default_value = "./ecom-data")]
    data_dir: PathBuf,
}

/// Where the gateway is, who the importer is, and how it sends.
#[derive(clap::Args, Clone)]
pub struct ImporterFlags {
    /// The gateway's base URL.
    #[arg(long, env = "PRODUCT_API_URL", default_value = "http://127.0.0.1:8080")]
    pub api_url: String,
    /// The machine client's id.
    #[arg(long, env = "IMPORT_CLIENT_ID", default_value = "importer")]
    pub client_id: String,
    /// The machine client's secret.
    #[arg(long, env = "IMPORT_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,
    /// The ARN of the AWS Secrets Manager secret holding the client's secret (a string, or a
    /// JSON object with `client_secret`).
    #[arg(long, env = "IMPORT_CLIENT_SECRET_ARN")]
    pub client_secret_arn: Option<String>,
    /// Products per request (at most 1,000).
    #[arg(long, env = "IMPORT_BATCH_ROWS", default_value_t = 1000,
          value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub batch_rows: u16,
    /// How long the gateway is retried (429, 5xx, no connection) without any success before
    /// the import fails, in seconds.
    #[arg(long, env = "IMPORT_RETRY_SECONDS", default_value_t = 120)]
    pub retry_seconds: u64,
    /// How long one request may take, in seconds.
    #[arg(long, env = "IMPORT_TIMEOUT_SECONDS", default_value_t = 30)]
    pub timeout_seconds: u64,
}

impl ImporterFlags {
    pub fn options(&self) -> Options {
        Options {
            batch_rows: usize::from(self.batch_rows),
            ..Options::default()
        }
    }

    pub fn api(&self, client_secret: String) -> anyhow::Result<ProductApi> {
        Ok(ProductApi::new(ApiConfig {
            base_url: self.api_url.clone(),
            client_id: self.client_id.clone(),
            client_secret,
            request_timeout: Duration::from_secs(self.timeout_seconds.max(1)),
            retry_budget: Duration::from_secs(self.retry_seconds),
            trace: service_common::telemetry::inject,
        })?)
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let _telemetry = service_common::telemetry::init_at("import", "warn")?;
    let runtime = tokio::runtime::Runtime::new()?;
    // One trace per import (its batches' calls are its children), when traces are exported.
    let span = tracing::info_span!("import", otel.name = "import", source = %args.source);
    runtime.block_on(tracing::Instrument::instrument(import(args), span))
}

async fn import(args: Args) -> anyhow::Result<()> {
    let secret = match (
        &args.importer.client_secret,
        &args.importer.client_secret_arn,
    ) {
        (Some(secret), _) => secret.clone(),
        (None, Some(arn)) => product_import::secrets::client_secret(arn).await?,
        (None, None) => {
            let kept = args.data_dir.join("importer-secret");
            std::fs::read_to_string(&kept)
                .map(|s| s.trim().to_owned())
                .with_context(|| {
                    format!(
                        "no client secret: set IMPORT_CLIENT_SECRET or IMPORT_CLIENT_SECRET_ARN \
                         (or run beside `ecom up`'s data directory, whose {} was not readable)",
                        kept.display()
                    )
                })?
        }
    };
    let api = args.importer.api(secret)?;
    let options = args.importer.options();
    let (report, result): (Report, anyhow::Result<()>) =
        match product_import::s3::Location::parse(&args.source) {
            Some(at) => {
                let s3 = product_import::s3::client_from_env().await;
                let (report, result) =
                    product_import::s3::import_object(&s3, &api, &at, &options).await;
                (report, result.map_err(anyhow::Error::from))
            }
            None => {
                let path = PathBuf::from(&args.source);
                let (report, result) = import_file(&path, &api, &options).await;
                let written = write_report(&report_path(&path), &report);
                (report, result.map_err(anyhow::Error::from).and(written))
            }
        };
    println!("{}", String::from_utf8_lossy(&report.to_json()).trim_end());
    match peak_memory_mib() {
        Some(peak) => eprintln!("{} (peak memory {peak:.1} MiB)", report.summary()),
        None => eprintln!("{}", report.summary()),
    }
    result.context("the import failed")
}

/// Imports a local file.
pub async fn import_file(
    path: &Path,
    api: &ProductApi,
    options: &Options,
) -> (Report, Result<(), Failure>) {
    product_import::import(&mut product_import::FileSource::new(path), api, options).await
}

/// This process's peak resident memory (Linux's `VmHWM`).
fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

/// `<file>.report.json` beside `file`.
pub fn report_path(file: &Path) -> PathBuf {
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(".report.json");
    file.with_file_name(name)
}

fn write_report(path: &Path, report: &Report) -> anyhow::Result<()> {
    std::fs::write(path, report.to_json())
        .with_context(|| format!("cannot write the report {}", path.display()))
}

/// How often the folder is looked at; a file is imported once it looked the same twice.
const POLL: Duration = Duration::from_secs(1);
/// How long a file whose import failed for a passing reason waits before the next try.
const RETRY_AFTER: Duration = Duration::from_secs(30);

/// `ecom up`'s import folder: imports each `.csv` in `dir` once its size and modification time
/// have stopped changing, then moves it and its report to `dir/done/` (or `dir/failed/` when
/// only a corrected file could succeed). A failure that may pass (the gateway busy) leaves the
/// file in place for another try.
pub async fn watch_folder(dir: PathBuf, api: ProductApi, options: Options) {
    let done = dir.join("done");
    let failed = dir.join("failed");
    for d in [&dir, &done, &failed] {
        if let Err(e) = std::fs::create_dir_all(d) {
            tracing::error!(dir = %d.display(), error = %e, "cannot create the import folder");
            return;
        }
    }
    let mut last_look: HashMap<PathBuf, (u64, SystemTime)> = HashMap::new();
    let mut retry_at: HashMap<PathBuf, Instant> = HashMap::new();
    let mut tick = tokio::time::interval(POLL);
    loop {
        tick.tick().await;
        let mut looked = HashMap::new();
        for path in csv_files(&dir) {
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            let look = (
                meta.len(),
                meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            );
            looked.insert(path.clone(), look);
            let settled = last_look.get(&path) == Some(&look);
            let waiting = retry_at.get(&path).is_some_and(|at| Instant::now() < *at);
            if !settled || waiting {
                continue;
            }
            let (report, result) = import_file(&path, &api, &options).await;
            let name = path.file_name().unwrap_or_default();
            let to = match &result {
                Ok(()) => &done,
                Err(failure) if !failure.is_transient() => &failed,
                Err(failure) => {
                    outln!(
                        "import: {} (trying again in {}s)",
                        report.summary(),
                        RETRY_AFTER.as_secs()
                    );
                    tracing::warn!(file = %path.display(), error = %failure, "import failed; will retry");
                    retry_at.insert(path.clone(), Instant::now() + RETRY_AFTER);
                    continue;
                }
            };
            // Still the file that was imported? A writer that paused past a poll and went on
            // writing gets its file imported again once it settles (upserts make that
            // harmless), instead of moved away half-read.
            let now = std::fs::metadata(&path)
                .map(|m| (m.len(), m.modified().unwrap_or(SystemTime::UNIX_EPOCH)))
                .ok();
            if now != Some(look) {
                tracing::warn!(file = %path.display(), "changed while it was imported; importing it again once it settles");
                continue;
            }
            let moved = to.join(name);
            let outcome = write_report(&report_path(&moved), &report)
                .and_then(|()| std::fs::rename(&path, &moved).context("cannot move the file"));
            match outcome {
                Ok(()) => {
                    retry_at.remove(&path);
                    outln!(
                        "import: {}  (moved to {})",
                        report.summary(),
                        moved.display()
                    );
                }
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %format!("{e:#}"), "imported, but not moved; trying again later");
                    retry_at.insert(path.clone(), Instant::now() + RETRY_AFTER);
                }
            }
            looked.remove(&path);
        }
        last_look = looked;
    }
}

/// The `.csv` files directly in `dir`.
fn csv_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("csv")))
        .collect();
    files.sort();
    files
}
