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
//! - the AWS SDK's own (`AWS_REGION`, `AWS_ENDPOINT_URL`, credentials).
//!
//! Build the arm64 zip with `cargo lambda build --profile lambda --arm64 -p lambda-import --output-format zip`
//! (see README.md).

use std::time::Duration;

use aws_lambda_events::event::s3::S3Event;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use product_import::api::{ApiConfig, ProductApi};
use product_import::s3::{Location, import_object, is_csv};
use product_import::{Options, report::Status};
use serde_json::{Value, json};

struct Function {
    s3: aws_sdk_s3::Client,
    api: ProductApi,
    options: Options,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_target(false)
        .without_time()
        .init();
    let function = Function::from_env().await?;
    let function = &function;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<S3Event>| async move {
        function.handle(event.payload).await
    }))
    .await
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
            request_timeout: Duration::from_secs(number("IMPORT_TIMEOUT_SECONDS", 30)?),
            retry_budget: Duration::from_secs(number("IMPORT_RETRY_SECONDS", 120)?),
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
    async fn handle(&self, event: S3Event) -> Result<Value, Error> {
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
            let (report, result) = import_object(&self.s3, &self.api, &at, &self.options).await;
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
