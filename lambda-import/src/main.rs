//! `lambda-import`: the CSV product import as an AWS Lambda function (Rust runtime).
//!
//! Triggered by S3 `ObjectCreated:*` notifications: every record of an event whose key ends
//! in `.csv` is imported through the gateway (`product_import::s3::import_object`) and its
//! report written beside it as `<key>.report.json`; other keys (the reports among them) are
//! skipped. The invocation fails when any file fails as a whole, so that Lambda's retries and
//! dead-letter queue apply; re-importing is harmless (upserts by SKU).
//!
//! Configuration (the function's environment):
//! - `PRODUCT_API_URL`: the gateway's base URL;
//! - `IMPORT_CLIENT_ID` (default `importer`) and `IMPORT_CLIENT_SECRET`, or
//!   `IMPORT_CLIENT_SECRET_ARN` naming the secret in AWS Secrets Manager;
//! - `IMPORT_BATCH_ROWS` (default 1,000, the most the catalog takes), `IMPORT_RETRY_SECONDS` (default 120:
//!   how long the gateway is retried without any success), `IMPORT_TIMEOUT_SECONDS` (30, one
//!   request);
//! - the AWS SDK's own (`AWS_REGION`, `AWS_ENDPOINT_URL`, credentials);
//! - `OTEL_EXPORTER_OTLP_ENDPOINT` (and the other `OTEL_*`) to export traces: each invocation
//!   is a span continuing the invocation's own trace (Lambda's X-Ray trace header, whose ids
//!   are W3C's), and the gateway's spans continue it.
//!
//! Build the arm64 zip with `cargo lambda build --profile lambda --arm64 -p lambda-import --output-format zip`
//! (see README.md).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::s3::S3Event;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use product_import::api::{ApiConfig, ProductApi};
use product_import::s3::{Location, import_object, is_csv};
use product_import::{Options, report::Status};
use serde_json::{Value, json};
use service_common::telemetry;
use tracing::Instrument;

struct Function {
    s3: aws_sdk_s3::Client,
    api: ProductApi,
    options: Options,
}

fn main() -> Result<(), Error> {
    // Before the runtime: the exporter's blocking client may not be made inside one.
    let telemetry = telemetry::init_with("lambda-import", "info", telemetry::LogFormat::Json)?;
    tokio::runtime::Runtime::new()?.block_on(run(&telemetry))
}

async fn run(telemetry: &telemetry::Telemetry) -> Result<(), Error> {
    let function = Function::from_env().await?;
    let function = &function;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<S3Event>| async move {
        let deadline = deadline(event.context.deadline);
        let span = tracing::info_span!(
            "invocation",
            otel.name = "lambda-import invocation",
            otel.kind = "server",
            request_id = %event.context.request_id,
        );
        if let Some(parent) = event
            .context
            .xray_trace_id
            .as_deref()
            .and_then(traceparent_of_xray)
        {
            telemetry::set_parent(&span, &parent);
        }
        let answer = function
            .handle(event.payload, deadline)
            .instrument(span)
            .await;
        // Lambda may freeze the process as soon as the answer is sent.
        telemetry.flush();
        answer
    }))
    .await
}

/// The W3C `traceparent` of a Lambda invocation's X-Ray trace header
/// (`Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1`): X-Ray's
/// trace id is the 32 hex digits of its time and random parts, its parent a span id. Only a
/// sampled trace is continued: with active tracing off Lambda sends `Sampled=0`, and following
/// it would drop every span of the import; the invocation then starts a trace of its own.
fn traceparent_of_xray(header: &str) -> Option<String> {
    let field = |name: &str| {
        header
            .split(';')
            .find_map(|part| part.trim().strip_prefix(name)?.strip_prefix('='))
    };
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    let mut root = field("Root")?.split('-');
    let (version, time, random) = (root.next()?, root.next()?, root.next()?);
    let parent = field("Parent")?;
    if version != "1" || !hex(time, 8) || !hex(random, 24) || !hex(parent, 16) {
        return None;
    }
    if field("Sampled") != Some("1") {
        return None;
    }
    Some(format!("00-{time}{random}-{parent}-01").to_ascii_lowercase())
}

/// The most time kept back from the invocation's end to write the reports (a fifth of the
/// time left when that is less: a function with a short timeout still gets to send).
const REPORT_MARGIN: Duration = Duration::from_secs(10);

/// The invocation's deadline (milliseconds since the epoch) as an instant, less the time kept
/// to write the reports; `None` when the runtime gave none, or one already past, which Lambda
/// never does (`cargo lambda watch` sends the timeout itself, 600000, in the field).
fn deadline(epoch_ms: u64) -> Option<Instant> {
    let end = UNIX_EPOCH.checked_add(Duration::from_millis(epoch_ms))?;
    let Ok(left) = end.duration_since(SystemTime::now()) else {
        tracing::warn!(
            deadline_ms = epoch_ms,
            "the invocation's deadline is already past; ignored"
        );
        return None;
    };
    Some(Instant::now() + left.saturating_sub(REPORT_MARGIN.min(left / 5)))
}

impl Function {
    async fn from_env() -> Result<Function, Error> {
        let variable = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let number = |name: &str, default: u64| -> Result<u64, Error> {
            match variable(name) {
                None => Ok(default),
                Some(v) => v
                    .parse()
                    .map_err(|_| format!("{name}={v:?} is not a whole number").into()),
            }
        };
        let base_url = variable("PRODUCT_API_URL")
            .ok_or("PRODUCT_API_URL (the gateway's base URL) is not set")?;
        let client_secret = match (
            variable("IMPORT_CLIENT_SECRET"),
            variable("IMPORT_CLIENT_SECRET_ARN"),
        ) {
            (Some(secret), _) => secret,
            (None, Some(arn)) => product_import::secrets::client_secret(&arn).await?,
            (None, None) => {
                return Err("set IMPORT_CLIENT_SECRET or IMPORT_CLIENT_SECRET_ARN".into());
            }
        };
        let api = ProductApi::new(ApiConfig {
            base_url,
            client_id: variable("IMPORT_CLIENT_ID").unwrap_or_else(|| "importer".to_owned()),
            client_secret,
            request_timeout: Duration::from_secs(number("IMPORT_TIMEOUT_SECONDS", 30)?.max(1)),
            retry_budget: Duration::from_secs(number("IMPORT_RETRY_SECONDS", 120)?),
            trace: service_common::telemetry::inject,
        })?;
        Ok(Function {
            s3: product_import::s3::client_from_env().await,
            api,
            options: Options {
                batch_rows: number("IMPORT_BATCH_ROWS", 1000)? as usize,
                ..Options::default()
            },
        })
    }

    /// Imports each `.csv` object of the event, in order; fails when any failed as a whole.
    /// Nothing is sent past `deadline`, so that a slow gateway fails the import with its
    /// report written rather than letting Lambda end the invocation mid-batch.
    async fn handle(&self, event: S3Event, deadline: Option<Instant>) -> Result<Value, Error> {
        let options = Options {
            deadline,
            ..self.options.clone()
        };
        let mut reports = Vec::new();
        let mut failed = Vec::new();
        for record in event.records {
            let created = record
                .event_name
                .as_deref()
                .is_some_and(|name| name.starts_with("ObjectCreated:"));
            let (Some(bucket), Some(key)) = (record.s3.bucket.name, record.s3.object.key) else {
                continue;
            };
            let at = Location::from_event(&bucket, &key);
            if !created || !is_csv(&at.key) {
                tracing::info!(object = %at, event = ?record.event_name, "skipped: not a created .csv object");
                continue;
            }
            let (report, result) = import_object(&self.s3, &self.api, &at, &options).await;
            match &result {
                Ok(()) => tracing::info!(
                    object = %at,
                    rows = report.rows_read,
                    created = report.created,
                    updated = report.updated,
                    unchanged = report.unchanged,
                    rejected = report.rejected,
                    duration_ms = report.duration_ms,
                    "imported"
                ),
                Err(e) => {
                    tracing::error!(object = %at, error = %e, "import failed");
                    failed.push(format!("{at}: {e}"));
                }
            }
            reports.push(json!({
                "object": at.to_string(),
                "report": at.report().to_string(),
                "status": if report.status == Status::Completed { "completed" } else { "failed" },
                "rows_read": report.rows_read,
                "created": report.created,
                "updated": report.updated,
                "unchanged": report.unchanged,
                "rejected": report.rejected,
            }));
        }
        if failed.is_empty() {
            Ok(json!({ "imports": reports }))
        } else {
            Err(failed.join("; ").into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_xray_header_becomes_a_traceparent() {
        assert_eq!(
            traceparent_of_xray(
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
            )
            .as_deref(),
            Some("00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01")
        );
        assert_eq!(
            traceparent_of_xray(
                "Root=1-5759E988-BD862E3FE1BE46A994272793;Parent=53995C3F42CD8AD8;Sampled=1"
            )
            .as_deref(),
            Some("00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01")
        );
        // Not sampled (active tracing off): not continued.
        assert_eq!(
            traceparent_of_xray(
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0"
            ),
            None
        );
        // No parent (the function is the first span), or damaged: no parent taken.
        assert_eq!(
            traceparent_of_xray("Root=1-5759e988-bd862e3fe1be46a994272793"),
            None
        );
        assert_eq!(
            traceparent_of_xray("Root=1-xyz-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8"),
            None
        );
        assert_eq!(traceparent_of_xray(""), None);
    }

    #[test]
    fn the_deadline_keeps_time_for_the_reports() {
        let now_ms = |ahead: Duration| {
            (SystemTime::now() + ahead)
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64
        };
        let left = |d: Option<Instant>| d.map(|d| d.saturating_duration_since(Instant::now()));
        let fifteen_minutes = left(deadline(now_ms(Duration::from_secs(900)))).unwrap();
        assert!(
            fifteen_minutes > Duration::from_secs(885)
                && fifteen_minutes <= Duration::from_secs(890)
        );
        let three_seconds = left(deadline(now_ms(Duration::from_secs(3)))).unwrap();
        assert!(
            three_seconds > Duration::from_millis(2000)
                && three_seconds <= Duration::from_millis(2400)
        );
        assert_eq!(
            deadline(600_000),
            None,
            "cargo lambda watch's timeout, not a time"
        );
        assert_eq!(deadline(0), None);
    }
}
