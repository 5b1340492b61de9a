//! Objects in S3: the CSV streamed from `GetObject` (never held whole), the report written
//! beside it with `PutObject`.

use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use tokio::io::AsyncRead;

use crate::api::ProductApi;
use crate::report::Report;
use crate::{Failure, Options};

/// The report's key: the input's key with `.report.json` appended.
pub const REPORT_SUFFIX: &str = ".report.json";

/// An object: `s3://BUCKET/KEY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub bucket: String,
    pub key: String,
}

impl Location {
    /// `s3://BUCKET/KEY`, or `None` when `url` is not one.
    pub fn parse(url: &str) -> Option<Location> {
        let (bucket, key) = url.strip_prefix("s3://")?.split_once('/')?;
        (!bucket.is_empty() && !key.is_empty()).then(|| Location {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        })
    }

    /// The object named in an S3 event record, whose keys are URL-encoded (`+` for a space).
    pub fn from_event(bucket: &str, encoded_key: &str) -> Location {
        Location {
            bucket: bucket.to_owned(),
            key: url_decode(encoded_key),
        }
    }

    pub fn report(&self) -> Location {
        Location {
            bucket: self.bucket.clone(),
            key: format!("{}{REPORT_SUFFIX}", self.key),
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// Whether an event's key names a CSV file (`.csv`, any case); reports and anything else are
/// not imported.
pub fn is_csv(key: &str) -> bool {
    let key = key.as_bytes();
    key.len() > 4 && key[key.len() - 4..].eq_ignore_ascii_case(b".csv")
}

/// A client configured the AWS SDK's way (`AWS_REGION`, the default credentials chain,
/// `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_S3`). A local endpoint (moto, MinIO) is addressed
/// path-style, and checksums are computed only where S3 requires them.
pub async fn client_from_env() -> Client {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(60))
        .build();
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(timeouts)
        .load()
        .await;
    let local = config.endpoint_url().is_some()
        || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some_and(|v| !v.is_empty());
    let mut s3 = aws_sdk_s3::config::Builder::from(&config);
    if local {
        s3 = s3
            .force_path_style(true)
            .request_checksum_calculation(
                aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
            )
            .response_checksum_validation(
                aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired,
            );
    }
    Client::from_conf(s3.build())
}

/// An object, read as it arrives; the second read asks for the same version (`If-Match` its
/// ETag), so that an object replaced in between fails the import instead of mixing two files.
pub struct ObjectSource<'a> {
    client: &'a Client,
    at: Location,
    etag: Option<String>,
}

impl<'a> ObjectSource<'a> {
    pub fn new(client: &'a Client, at: Location) -> Self {
        ObjectSource {
            client,
            at,
            etag: None,
        }
    }
}

impl crate::Source for ObjectSource<'_> {
    type Reader = Box<dyn AsyncRead + Unpin + Send>;

    fn name(&self) -> String {
        self.at.to_string()
    }

    async fn open(&mut self) -> Result<Self::Reader, Failure> {
        let mut request = self
            .client
            .get_object()
            .bucket(&self.at.bucket)
            .key(&self.at.key);
        if let Some(etag) = &self.etag {
            request = request.if_match(etag);
        }
        let object = request.send().await.map_err(|e| Failure::Unreadable {
            source_name: self.at.to_string(),
            reason: if self.etag.is_some()
                && e.raw_response().is_some_and(|r| r.status().as_u16() == 412)
            {
                "the object was replaced while it was being imported".to_owned()
            } else {
                describe(&e)
            },
        })?;
        if self.etag.is_none() {
            self.etag = object.e_tag().map(str::to_owned);
        }
        Ok(Box::new(object.body.into_async_read()))
    }
}

/// Writes `report` beside the input, as `<key>.report.json`.
pub async fn write_report(client: &Client, at: &Location, report: &Report) -> Result<(), Failure> {
    let target = at.report();
    client
        .put_object()
        .bucket(&target.bucket)
        .key(&target.key)
        .content_type("application/json")
        .body(ByteStream::from(report.to_json()))
        .send()
        .await
        .map_err(|e| Failure::Unreadable {
            source_name: target.to_string(),
            reason: format!("cannot write the report: {}", describe(&e)),
        })?;
    Ok(())
}

/// Imports one object and writes its report beside it (a failed import's report too, with
/// the reason). A report that cannot be written fails the import: whoever uploaded the file
/// would otherwise never learn its outcome.
pub async fn import_object(
    client: &Client,
    api: &ProductApi,
    at: &Location,
    options: &Options,
) -> (Report, Result<(), Failure>) {
    let (report, result) =
        crate::import(&mut ObjectSource::new(client, at.clone()), api, options).await;
    let written = write_report(client, at, &report).await;
    (report, result.and(written))
}

/// An SDK error in one line: S3's code and message (`NoSuchKey: The specified key does not
/// exist.`), or else the chain of causes (a connection refused).
pub(crate) fn describe<E>(error: &E) -> String
where
    E: ProvideErrorMetadata + std::error::Error,
{
    match (error.code(), error.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => crate::api::error_chain(error),
    }
}

/// `%XX` escapes and `+` (a space) decoded, as S3 event notifications encode keys; an invalid
/// escape is kept as it is.
fn url_decode(encoded: &str) -> String {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_and_event_keys() {
        let at = Location::parse("s3://bucket/in/products 1.csv").unwrap();
        assert_eq!(
            (at.bucket.as_str(), at.key.as_str()),
            ("bucket", "in/products 1.csv")
        );
        assert_eq!(
            at.report().to_string(),
            "s3://bucket/in/products 1.csv.report.json"
        );
        assert_eq!(Location::parse("s3://bucket/"), None);
        assert_eq!(Location::parse("s3:///key"), None);
        assert_eq!(Location::parse("/tmp/x.csv"), None);
        let event = Location::from_event("b", "in/summer+sale%C3%A9%2B.csv");
        assert_eq!(event.key, "in/summer saleé+.csv");
        assert_eq!(Location::from_event("b", "a%zz%4").key, "a%zz%4");
        assert!(is_csv("a/b.CSV") && is_csv("x.csv"));
        assert!(!is_csv("x.csv.report.json") && !is_csv(".csv") && !is_csv("csv"));
        assert!(!is_csv("x.日本") && !is_csv("日本") && is_csv("日本.csv"));
    }
}
