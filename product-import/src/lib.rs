//! The CSV product import: a file of products, streamed row by row, upserted by SKU through
//! the gateway's `POST /api/v1/products/batch` in batches, with a report of what became of
//! every row. One core for the Lambda (`lambda-import`, an S3 object per event record),
//! `ecom import FILE|s3://BUCKET/KEY`, and `ecom up`'s import folder.
//!
//! - [`records`]: CSV records from any byte stream in bounded memory;
//! - [`rows`]: the header's columns by name, and each row as a product or a [`rows::Rejection`];
//! - [`api`]: the gateway, with the importer's client-credentials token and the retries;
//! - [`report`]: the `<key>.report.json`;
//! - `s3` and `secrets` (feature `aws`): objects in S3, and the client secret from AWS
//!   Secrets Manager.
//!
//! The input is read twice (a [`Source`] opens it again): first to find each SKU's winning
//! row (the last valid one: a file that lists a SKU twice means its later row), then to send
//! the winners; the rows they replace are reported as `superseded`, never sent, so that
//! importing the same file again finds every product `unchanged`.
//!
//! Memory is bounded whatever the file's size: one read buffer, one record (at most
//! [`records::Limits::max_record_bytes`]), two batches (the one in flight and the next being
//! filled), and a map entry (a 128-bit hash and a line number, 24 bytes) per distinct SKU.
//!
//! A malformed row never stops an import: it is reported and the next row read. What fails a
//! file as a whole (an unreadable input, a header without a required column, a gateway that
//! still refuses after the retry budget, an input that changed between the two reads) ends
//! the import with [`Failure`], so that the caller
//! (Lambda's retries and dead-letter queue, an exit status) can act on it. Upserts by SKU make
//! a repeated import harmless: the second reports each row `unchanged`.

pub mod api;
pub mod records;
pub mod report;
pub mod rows;
#[cfg(feature = "aws")]
pub mod s3;
#[cfg(feature = "aws")]
pub mod secrets;

use std::collections::HashMap;
use std::future::Future;
use std::time::{Instant, SystemTime};

use tokio::io::AsyncRead;
use tokio::sync::mpsc;

use api::{ApiError, ItemStatus, ProductApi};
use records::{Limits, Records};
use report::{Duplicate, RejectedRow, Report, Status};
use rows::{Column, Header, HeaderError};

/// The most products per request (the catalog takes 1,000).
pub const MAX_BATCH_ROWS: usize = 1_000;
/// A batch is sent before its body would pass this (the catalog takes 1 MiB). One product is
/// at most a few hundred KiB (its fields are at most [`rows::MAX_FIELD_BYTES`] each), so any
/// batch fits.
pub const MAX_BATCH_BYTES: usize = 512 * 1024;

/// How an import reads and sends.
#[derive(Debug, Clone)]
pub struct Options {
    /// Products per request, 1 to [`MAX_BATCH_ROWS`].
    pub batch_rows: usize,
    pub limits: Limits,
    /// No request is sent or retried past this (a Lambda invocation's end, less the time to
    /// write the report): the import fails instead, and its report says so.
    pub deadline: Option<Instant>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            batch_rows: MAX_BATCH_ROWS,
            limits: Limits::default(),
            deadline: None,
        }
    }
}

/// Why a file failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The input could not be read (a missing object, a dropped stream).
    #[error("cannot read {source_name}: {reason}")]
    Unreadable { source_name: String, reason: String },
    /// The file's header is not one this import understands; retrying changes nothing.
    #[error(transparent)]
    Header(#[from] HeaderError),
    /// The gateway did not take a batch.
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl Failure {
    /// Whether importing the same file again could succeed (a read or gateway problem), or
    /// only a corrected file would (its header).
    pub fn is_transient(&self) -> bool {
        match self {
            Failure::Unreadable { .. } => true,
            Failure::Header(_) => false,
            // Credentials or scopes: fixed by configuration, not by another file.
            Failure::Api(ApiError::Refused {
                status: 401 | 403, ..
            }) => true,
            Failure::Api(ApiError::Refused { .. }) => false,
            Failure::Api(_) => true,
        }
    }
}

/// A batch on its way to the gateway: the request body and, per item, its line and SKU.
struct Batch {
    body: Vec<u8>,
    rows: Vec<(u64, String)>,
}

impl Batch {
    fn new() -> Self {
        let mut body = Vec::with_capacity(16 * 1024);
        body.extend_from_slice(b"{\"items\":[");
        Batch {
            body,
            rows: Vec::new(),
        }
    }

    fn push(&mut self, line: u64, sku: String, item: &[u8]) {
        if !self.rows.is_empty() {
            self.body.push(b',');
        }
        self.body.extend_from_slice(item);
        self.rows.push((line, sku));
    }

    fn finish(mut self) -> Batch {
        self.body.extend_from_slice(b"]}");
        self
    }
}

/// Where a CSV comes from. It is read twice: once to find, for each SKU, the row that wins
/// (the last valid one), then to send the rows. Each open must give the same bytes; an input
/// that changed in between fails the import (transiently: the next try reads the new one).
pub trait Source {
    type Reader: AsyncRead + Unpin + Send;
    /// The name in the report: a path, or `s3://bucket/key`.
    fn name(&self) -> String;
    /// The input from its first byte.
    fn open(&mut self) -> impl Future<Output = Result<Self::Reader, Failure>> + Send;
}

/// A local file.
pub struct FileSource {
    path: std::path::PathBuf,
    /// Its length and modification time when first opened.
    seen: Option<(u64, Option<SystemTime>)>,
}

impl FileSource {
    pub fn new(path: impl Into<std::path::PathBuf>) -> Self {
        FileSource {
            path: path.into(),
            seen: None,
        }
    }
}

impl Source for FileSource {
    type Reader = tokio::fs::File;

    fn name(&self) -> String {
        self.path.display().to_string()
    }

    async fn open(&mut self) -> Result<tokio::fs::File, Failure> {
        let unreadable = |e: std::io::Error| Failure::Unreadable {
            source_name: self.path.display().to_string(),
            reason: e.to_string(),
        };
        let file = tokio::fs::File::open(&self.path)
            .await
            .map_err(unreadable)?;
        let meta = file.metadata().await.map_err(unreadable)?;
        let now = (meta.len(), meta.modified().ok());
        match self.seen {
            None => self.seen = Some(now),
            Some(seen) if seen != now => {
                return Err(Failure::Unreadable {
                    source_name: self.name(),
                    reason: "the file changed while it was being imported".to_owned(),
                });
            }
            Some(_) => {}
        }
        Ok(file)
    }
}

/// Imports the CSV `source` through `api`. Always returns the report; it says `failed`, with
/// the reason, when the second value is `Err`.
pub async fn import<S: Source>(
    source: &mut S,
    api: &ProductApi,
    options: &Options,
) -> (Report, Result<(), Failure>) {
    let started = Instant::now();
    let name = source.name();
    let mut report = Report {
        source: name.clone(),
        started_at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        ..Report::default()
    };
    let finish = |mut report: Report, result: Result<(), Failure>| {
        if let Err(failure) = &result {
            report.status = Status::Failed;
            report.error = Some(failure.to_string());
        }
        report.finished_at = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        report.duration_ms = started.elapsed().as_millis() as u64;
        (report, result)
    };
    let winners = match source.open().await {
        Ok(input) => winning_rows(&name, input, options).await,
        Err(failure) => Err(failure),
    };
    let winners = match winners {
        Ok(winners) => winners,
        Err(failure) => return finish(report, Err(failure)),
    };
    let input = match source.open().await {
        Ok(input) => input,
        Err(failure) => return finish(report, Err(failure)),
    };
    // One batch being filled while the previous one is sent.
    let (batches, mut to_send) = mpsc::channel::<Batch>(1);
    let run = uuid::Uuid::now_v7().simple().to_string();
    let read = read_rows(&name, input, options, &winners, batches);
    let send = async {
        let mut sent = SendReport::default();
        let mut number = 0u64;
        while let Some(batch) = to_send.recv().await {
            number += 1;
            let key = format!("import-{run}-{number}");
            let answer = match api.upsert(batch.body, &key, options.deadline).await {
                Ok(answer) => answer,
                Err(e) => {
                    // Stops the reader: its next send fails.
                    to_send.close();
                    return (sent, Err(Failure::from(e)));
                }
            };
            if let Err(e) = sent.apply(&batch.rows, answer) {
                to_send.close();
                return (sent, Err(Failure::from(e)));
            }
        }
        (sent, Ok(()))
    };
    let (read, (sent, sent_result)) = tokio::join!(read, send);
    let (read_report, read_result) = read;
    report.rows_read = read_report.rows_read;
    report.superseded = read_report.superseded;
    report.duplicates = read_report.duplicates;
    report.duplicates_omitted = read_report.duplicates_omitted;
    report.created = sent.created;
    report.updated = sent.updated;
    report.unchanged = sent.unchanged;
    let mut rejected = read_report.rejected_rows;
    rejected.extend(sent.rejected_rows);
    rejected.sort_by_key(|r| r.line);
    report.rejected = read_report.rejected + sent.rejected;
    report.rejected_rows_omitted = read_report.rejected_rows_omitted + sent.rejected_rows_omitted;
    let listed = rejected.len().min(report::MAX_LISTED);
    report.rejected_rows_omitted += (rejected.len() - listed) as u64;
    rejected.truncate(listed);
    report.rejected_rows = rejected;
    // A reader stopped because the sender failed reports the sender's reason.
    finish(report, sent_result.and(read_result))
}

/// Each SKU's winning row: the last valid one. Keyed by the SKU's 128-bit hash (no two SKUs
/// of any real file share one: a collision would be a row wrongly superseded, so 64 bits,
/// with a chance of about 1 in 10^5 among 10 million SKUs, are not enough), so that memory
/// grows by one 24-byte entry per distinct SKU, whatever the SKUs' length.
type Winners = HashMap<[u64; 2], u64>;

fn sku_key(sku: &str) -> [u64; 2] {
    let hash = xxhash_rust::xxh3::xxh3_128(sku.as_bytes());
    [hash as u64, (hash >> 64) as u64]
}

/// The first pass: the header checked, and each SKU's winning row found.
async fn winning_rows<R: AsyncRead + Unpin>(
    source_name: &str,
    input: R,
    options: &Options,
) -> Result<Winners, Failure> {
    let mut records = Records::new(input, options.limits);
    let header = read_header(source_name, &mut records).await?;
    let mut winners = Winners::new();
    while let Some(record) = records.next().await.map_err(unreadable(source_name))? {
        if record.is_blank() {
            continue;
        }
        if let Ok(product) = header.product(record) {
            winners.insert(sku_key(&product.sku), record.line);
        }
    }
    Ok(winners)
}

async fn read_header<R: AsyncRead + Unpin>(
    source_name: &str,
    records: &mut Records<R>,
) -> Result<Header, Failure> {
    // The first record that is not blank.
    loop {
        match records.next().await.map_err(unreadable(source_name))? {
            Some(record) if record.is_blank() => continue,
            Some(record) => return Ok(Header::parse(record)?),
            None => return Err(HeaderError::Empty.into()),
        }
    }
}

fn unreadable(source_name: &str) -> impl Fn(std::io::Error) -> Failure + '_ {
    move |e| Failure::Unreadable {
        source_name: source_name.to_owned(),
        reason: e.to_string(),
    }
}

/// The gateway's verdicts, counted.
#[derive(Default)]
struct SendReport {
    created: u64,
    updated: u64,
    unchanged: u64,
    rejected: u64,
    rejected_rows: Vec<RejectedRow>,
    rejected_rows_omitted: u64,
}

impl SendReport {
    /// Counts one batch's answer: exactly one result per item sent, or the answer is refused
    /// (the counts would no longer add up).
    fn apply(&mut self, rows: &[(u64, String)], answer: api::BatchAnswer) -> Result<(), ApiError> {
        let mut seen = vec![false; rows.len()];
        for item in &answer.results {
            match seen.get_mut(item.index) {
                Some(seen) if !*seen => *seen = true,
                _ => {
                    return Err(ApiError::Unexpected {
                        url: api::BATCH_PATH.to_owned(),
                        reason: format!("a result for item {} of {}", item.index, rows.len()),
                    });
                }
            }
        }
        if seen.iter().any(|s| !s) {
            return Err(ApiError::Unexpected {
                url: api::BATCH_PATH.to_owned(),
                reason: format!("{} results for {} items", answer.results.len(), rows.len()),
            });
        }
        for item in answer.results {
            let (line, sku) = &rows[item.index];
            match item.status {
                ItemStatus::Created => self.created += 1,
                ItemStatus::Updated => self.updated += 1,
                ItemStatus::Unchanged => self.unchanged += 1,
                ItemStatus::Rejected => {
                    self.rejected += 1;
                    let field = item.fields.first();
                    let row = RejectedRow {
                        line: *line,
                        sku: Some(rows::clip(sku)),
                        column: field
                            .and_then(|f| Column::of_field(&f.field))
                            .map(|c| c.name().to_owned()),
                        reason: rows::clip_to(
                            500,
                            &field
                                .map(|f| f.message.clone())
                                .or(item.message)
                                .or(item.code)
                                .unwrap_or_else(|| "rejected by the catalog".to_owned()),
                        ),
                    };
                    if self.rejected_rows.len() < report::MAX_LISTED {
                        self.rejected_rows.push(row);
                    } else {
                        self.rejected_rows_omitted += 1;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The second pass: sends each SKU's winning row on in batches, and reports the others.
async fn read_rows<R: AsyncRead + Unpin>(
    source_name: &str,
    input: R,
    options: &Options,
    winners: &Winners,
    batches: mpsc::Sender<Batch>,
) -> (Report, Result<(), Failure>) {
    let mut report = Report::default();
    let batch_rows = options.batch_rows.clamp(1, MAX_BATCH_ROWS);
    let mut records = Records::new(input, options.limits);
    let header = match read_header(source_name, &mut records).await {
        Ok(header) => header,
        Err(failure) => return (report, Err(failure)),
    };
    let mut batch = Batch::new();
    let mut item = Vec::with_capacity(1024);
    loop {
        let record = match records.next().await {
            Ok(Some(record)) => record,
            Ok(None) => break,
            Err(e) => return (report, Err(unreadable(source_name)(e))),
        };
        if record.is_blank() {
            continue;
        }
        report.rows_read += 1;
        let line = record.line;
        let product = match header.product(record) {
            Ok(product) => product,
            Err(rejection) => {
                let sku = header.sku(record);
                report.reject(RejectedRow {
                    line,
                    sku,
                    column: rejection.column.map(|c| c.name().to_owned()),
                    reason: rejection.reason,
                });
                continue;
            }
        };
        match winners.get(&sku_key(&product.sku)) {
            Some(&winner) if winner == line => {}
            Some(&winner) => {
                report.supersede(Duplicate {
                    sku: rows::clip(&product.sku),
                    line,
                    superseded_by: winner,
                });
                continue;
            }
            None => {
                // Not in the first pass: the input changed in between.
                let failure = Failure::Unreadable {
                    source_name: source_name.to_owned(),
                    reason: "the input changed while it was being imported".to_owned(),
                };
                return (report, Err(failure));
            }
        }
        item.clear();
        if let Err(e) = serde_json::to_writer(&mut item, &product) {
            // Not seen with these plain fields; reported rather than dropped all the same.
            report.reject(RejectedRow {
                line,
                sku: Some(rows::clip(&product.sku)),
                column: None,
                reason: format!("cannot be encoded as JSON: {e}"),
            });
            continue;
        }
        if !batch.rows.is_empty()
            && (batch.rows.len() >= batch_rows
                || batch.body.len() + item.len() + 2 > MAX_BATCH_BYTES)
        {
            let full = std::mem::replace(&mut batch, Batch::new());
            if batches.send(full.finish()).await.is_err() {
                // The sender failed; it reports why.
                return (report, Ok(()));
            }
        }
        batch.push(line, product.sku, &item);
    }
    if !batch.rows.is_empty() {
        let _ = batches.send(batch.finish()).await;
    }
    (report, Ok(()))
}
