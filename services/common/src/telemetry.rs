//! Logs and traces for every ecom process.
//!
//! - **Logs** go to stderr, filtered by `RUST_LOG`, as text or, with `ECOM_LOG_FORMAT=json`, one
//!   JSON object per line (`timestamp`, `level`, `message`, the event's fields, and the current
//!   span's: a request's `request_id` and `trace_id`), the shape Fluent Bit ships
//!   (observability/fluent-bit/).
//! - **Traces** are exported over OTLP/HTTP (protobuf) when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//!   `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, with the standard `OTEL_*` variables
//!   (`OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER`, `OTEL_BSP_*`, ...). When it is not set no
//!   exporter, no OpenTelemetry layer and no propagation run: a request costs one `tracing`
//!   span, as before.
//! - **Propagation** is W3C Trace Context: [`server_span`] continues the caller's `traceparent`,
//!   [`inject`] hands the current span's to the next HTTP hop, [`current_traceparent`] gives it
//!   to a log record (Kafka header or the embedded log's), and [`span_context`] reads one back
//!   (the stream engine links its batch spans to the producers').
//!
//! [`init`] returns a guard that flushes the spans still buffered when dropped: hold it for the
//! life of `main`.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::FilterExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The W3C Trace Context header (and the Kafka record header of the same name).
pub const TRACEPARENT: &str = "traceparent";
/// The request id header: the gateway's, or one made up by the first service a request meets.
pub const REQUEST_ID: &str = "x-request-id";

static ENABLED: AtomicBool = AtomicBool::new(false);

fn propagator() -> &'static TraceContextPropagator {
    static PROPAGATOR: OnceLock<TraceContextPropagator> = OnceLock::new();
    PROPAGATOR.get_or_init(TraceContextPropagator::new)
}

/// Whether spans are exported (and so contexts propagated).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Flushes and stops the exporter when dropped.
#[must_use = "hold the guard until the process ends, or buffered spans are lost"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("exporting", &self.provider.is_some())
            .finish()
    }
}

impl Telemetry {
    /// Exports the spans still buffered now (a Lambda invocation's, before the runtime
    /// freezes the process).
    pub fn flush(&self) {
        if let Some(provider) = &self.provider
            && let Err(e) = provider.force_flush()
        {
            tracing::warn!(error = %e, "could not export the spans");
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("could not flush the last spans: {e}");
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    fn parse(value: &str) -> Result<LogFormat, TelemetryError> {
        match value {
            "" | "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(TelemetryError::LogFormat(other.to_owned())),
        }
    }
}

/// Telemetry could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TelemetryError {
    #[error("ECOM_LOG_FORMAT must be `text` or `json` (got {0:?})")]
    LogFormat(String),
    #[error("cannot set up the OTLP exporter: {0}")]
    Exporter(String),
}

/// The spans whose fields every log line inside them shows: a request's (`request_id`,
/// `trace_id`, ...), a Lambda invocation's, an import's. Their child spans (calls to other
/// services, appends) are traces' business, not the logs': a line inside one still shows the
/// request's fields, in JSON as the `span` object.
const LOGGED_SPANS: [&str; 3] = ["http.server", "invocation", "import"];

/// The log lines: `filter` chooses the events; the spans shown are [`LOGGED_SPANS`], whatever
/// the level (a span is not a line; it costs nothing unless a line is written inside it).
fn log_layer<S, W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
) -> impl Layer<S> + Send + Sync + 'static
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let layer = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer().with_writer(writer).boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(writer)
            .boxed(),
    };
    let events = filter.and(tracing_subscriber::filter::filter_fn(|meta| {
        meta.is_event()
    }));
    let spans = tracing_subscriber::filter::filter_fn(|meta| {
        meta.is_span() && LOGGED_SPANS.contains(&meta.name())
    });
    layer.with_filter(events.or(spans))
}

fn otlp_configured() -> bool {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    !disabled && (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
}

/// Logs at `info` (or `RUST_LOG`), and traces if configured, for the process `service`
/// (the traces' `service.name` unless `OTEL_SERVICE_NAME` says otherwise).
pub fn init(service: &'static str) -> Result<Telemetry, TelemetryError> {
    init_at(service, "info")
}

/// As [`init`], logging at `level` unless `RUST_LOG` is set.
pub fn init_at(service: &'static str, level: &str) -> Result<Telemetry, TelemetryError> {
    init_with(service, level, LogFormat::Text)
}

/// As [`init_at`], in `format` unless `ECOM_LOG_FORMAT` says otherwise (the Lambda logs JSON,
/// which CloudWatch reads).
pub fn init_with(
    service: &'static str,
    level: &str,
    format: LogFormat,
) -> Result<Telemetry, TelemetryError> {
    let format = match std::env::var("ECOM_LOG_FORMAT") {
        Ok(value) if !value.is_empty() => LogFormat::parse(&value)?,
        _ => format,
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let logs = log_layer(format, filter, std::io::stderr);

    let provider = if otlp_configured() {
        Some(provider(service)?)
    } else {
        None
    };
    // Spans at `info` and above whatever RUST_LOG says (a quiet log still traces), and
    // warnings and errors as the spans' events.
    let traces = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("ecom"))
            .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                // The Lambda runtime's own span per invocation would be a second, root trace.
                if meta.target().starts_with("lambda_runtime") {
                    false
                } else if meta.is_span() {
                    *meta.level() <= tracing::Level::INFO
                } else {
                    *meta.level() <= tracing::Level::WARN
                }
            }))
    });
    // A second init in one process (tests) keeps the first.
    let _ = tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init();
    if provider.is_some() {
        ENABLED.store(true, Ordering::Relaxed);
    }
    Ok(Telemetry { provider })
}

fn provider(service: &'static str) -> Result<SdkTracerProvider, TelemetryError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    let name = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| service.to_owned());
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(name)
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

struct HeadersMut<'a>(&'a mut HeaderMap);

impl Injector for HeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// One `traceparent` value, as a carrier.
struct One<'a>(&'a str);

impl Extractor for One<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == TRACEPARENT).then_some(self.0)
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT]
    }
}

struct Capture(Option<String>);

impl Injector for Capture {
    fn set(&mut self, key: &str, value: String) {
        if key == TRACEPARENT {
            self.0 = Some(value);
        }
    }
}

/// Whether a caller's `X-Request-Id` is kept: 1 to 128 visible ASCII characters.
pub fn valid_request_id(id: &[u8]) -> bool {
    !id.is_empty() && id.len() <= 128 && id.iter().all(u8::is_ascii_graphic)
}

/// A new request id: 32 hex digits, random.
pub fn new_request_id() -> HeaderValue {
    HeaderValue::from_str(&uuid::Uuid::new_v4().simple().to_string())
        .expect("hex digits are a valid header value")
}

/// The span of one HTTP request a service serves: `http.server`, named `METHOD route`, with
/// the request id and the trace id (also when spans are not exported: then the caller's, from
/// its `traceparent`), continuing the caller's trace.
pub fn server_span(
    service: &'static str,
    method: &Method,
    route: &str,
    path: &str,
    headers: &HeaderMap,
) -> Span {
    let request_id = headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let span = tracing::info_span!(
        "http.server",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        service,
        http.request.method = %method,
        http.route = route,
        url.path = path,
        http.response.status_code = tracing::field::Empty,
        request_id,
        trace_id = tracing::field::Empty,
    );
    if enabled() {
        let parent = propagator().extract(&Headers(headers));
        let _ = span.set_parent(parent);
        let trace_id = span.context().span().span_context().trace_id();
        span.record("trace_id", tracing::field::display(trace_id));
    } else if let Some(trace_id) = headers
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(trace_id_of)
    {
        span.record("trace_id", trace_id);
    }
    span
}

/// Records the answer's status on a [`server_span`] (a 5xx marks the span as an error).
pub fn record_status(span: &Span, status: u16) {
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
}

/// The trace id of a `traceparent` value (`00-<32 hex>-<16 hex>-<2 hex>`), if well formed.
fn trace_id_of(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.split('-');
    let (_version, trace_id) = (parts.next()?, parts.next()?);
    (trace_id.len() == 32
        && trace_id.bytes().all(|b| b.is_ascii_hexdigit())
        && trace_id.bytes().any(|b| b != b'0'))
    .then_some(trace_id)
}

/// Puts the current span's context into `headers` (replacing any `traceparent` there), for the
/// next hop. Does nothing when spans are not exported.
pub fn inject(headers: &mut HeaderMap) {
    if enabled() {
        let context = Span::current().context();
        propagator().inject_context(&context, &mut HeadersMut(headers));
    }
}

/// The current span's context as a `traceparent` value, for a record written to the log;
/// `None` when spans are not exported or there is no span.
pub fn current_traceparent() -> Option<String> {
    if !enabled() {
        return None;
    }
    let context = Span::current().context();
    let mut capture = Capture(None);
    propagator().inject_context(&context, &mut capture);
    capture.0
}

/// The remote span a `traceparent` value names, if it is valid.
pub fn span_context(traceparent: &[u8]) -> Option<SpanContext> {
    let value = std::str::from_utf8(traceparent).ok()?;
    let context = propagator().extract(&One(value));
    let span = context.span().span_context().clone();
    span.is_valid().then_some(span)
}

/// Makes `span` a child of the remote span `traceparent` names (a trace that arrived another
/// way than HTTP headers: a Lambda invocation's, say). Does nothing when spans are not
/// exported or the value is not valid.
pub fn set_parent(span: &Span, traceparent: &str) {
    if enabled() {
        let context = propagator().extract(&One(traceparent));
        if context.span().span_context().is_valid() {
            let _ = span.set_parent(context);
        }
    }
}

/// Links `span` to the spans `traceparents` name (the producers of the records a batch
/// holds): each distinct one once, at most `max`.
pub fn add_links<'a>(span: &Span, traceparents: impl IntoIterator<Item = &'a [u8]>, max: usize) {
    if !enabled() {
        return;
    }
    let mut seen = Vec::new();
    for value in traceparents {
        if seen.len() >= max {
            break;
        }
        if seen.iter().any(|s: &Vec<u8>| s.as_slice() == value) {
            continue;
        }
        seen.push(value.to_vec());
        if let Some(context) = span_context(value) {
            span.add_link(context);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_of_traceparents() {
        let value = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(trace_id_of(value), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert_eq!(trace_id_of("00-0000-00f067aa0ba902b7-01"), None);
        assert_eq!(
            trace_id_of("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            None
        );
        assert_eq!(trace_id_of("garbage"), None);
        let context = span_context(value.as_bytes()).unwrap();
        assert_eq!(
            context.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(context.is_remote() && context.is_sampled());
        assert!(span_context(b"00-zz-00f067aa0ba902b7-01").is_none());
        assert!(span_context(&[0xff, 0xfe]).is_none());
    }

    /// A writer the test reads back.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> tracing_subscriber::fmt::MakeWriter<'w> for Captured {
        type Writer = Captured;

        fn make_writer(&'w self) -> Captured {
            self.clone()
        }
    }

    #[test]
    fn a_json_line_inside_a_call_shows_its_request() {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::registry().with(log_layer(
            LogFormat::Json,
            EnvFilter::new("warn"),
            captured.clone(),
        ));
        tracing::subscriber::with_default(subscriber, || {
            let request = tracing::info_span!("http.server", request_id = "r-1", trace_id = "t-1");
            let _request = request.enter();
            tracing::info!("not logged: under the level");
            let call = tracing::info_span!("http.client", upstream = "catalog");
            let _call = call.enter();
            tracing::warn!(attempt = 2, "upstream failed");
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect();
        assert_eq!(lines.len(), 1, "{text}");
        let line = &lines[0];
        assert_eq!(line["message"], "upstream failed");
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["attempt"], 2);
        assert_eq!(line["span"]["name"], "http.server");
        assert_eq!(line["span"]["request_id"], "r-1");
        assert_eq!(line["span"]["trace_id"], "t-1");
    }

    #[test]
    fn log_formats() {
        assert_eq!(LogFormat::parse(""), Ok(LogFormat::Text));
        assert_eq!(LogFormat::parse("text"), Ok(LogFormat::Text));
        assert_eq!(LogFormat::parse("json"), Ok(LogFormat::Json));
        assert!(
            LogFormat::parse("JSON ")
                .unwrap_err()
                .to_string()
                .contains("ECOM_LOG_FORMAT")
        );
    }
}
