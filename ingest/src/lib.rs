//! Activity-event ingestion (`ecom ingest`).
//!
//! `POST /api/v1/events` takes one event (a JSON object), a JSON array of events, or NDJSON
//! (`Content-Type: application/x-ndjson`). Every event is validated by the stream engine's own
//! decoder ([`body`]), the valid ones are appended to the event log (any [`EventLog`]: Kafka,
//! or the embedded log of `ecom up`; keyed by `product_id`), and the answer comes only once the
//! log acknowledged all of them:
//!
//! | status | when | body |
//! |---|---|---|
//! | 202 | every valid event acknowledged | `{"accepted": N, "late": L, "rejected": [{"index", "code", "message"}]}` |
//! | 400 | no valid event, or not JSON | `{"error": {...}, "rejected": [...]}` |
//! | 408 | body not received within the read timeout | `{"error": {...}}` |
//! | 413 | body over the limit | `{"error": {...}}` |
//! | 415 | not `application/json` or `application/x-ndjson` | `{"error": {...}}` |
//! | 503 + `Retry-After` | log unreachable, too slow, or producer queue full | `{"error": {...}}` |
//!
//! `late` (where ingest sees the engine's watermarks: [`Lateness`], as in `ecom up`) counts the
//! accepted events whose window had already closed in their partition when they were accepted:
//! the engine will count them as late and send them to the late-events topic, in no window. It
//! is a lower bound (the watermark it reads may be a tick old, and events queued ahead in the
//! same partition can move it further); without a view of the watermarks the field is absent.
//!
//! Invariant: a 202 means every event it counts was acknowledged by the log (for Kafka:
//! `acks=all`, idempotent producer; for the embedded log: synced to disk). A 503 promises nothing about the events of that request:
//! some may have been appended, so a retry can duplicate them (unique-user counts are not
//! affected by a duplicate; event counts are).

pub mod body;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use event_log::{Bytes, EventLog, Record};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde_json::json;
use service_common::docs::{ErrorBody, ErrorDetail};
use service_common::http_metrics::{HttpMetrics, track};
use service_common::{ApiError, Ops, ReadyCheck};
use tracing::Instrument;

use crate::body::{BodyError, Format, Split};

/// The route of the service.
pub const ROUTE: &str = "/api/v1/events";

/// Settings of the ingest service.
#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    pub body: BodyLimits,
}

/// How much of a request body ingest reads, and for how long (every command sets the size).
pub use service_common::rest::BodyLimits;

/// The service: its event log and its metrics.
pub struct Ingest<L> {
    log: L,
    body: BodyLimits,
    lateness: Option<Lateness>,
    metrics: IngestMetrics,
}

/// How ingest tells an event that arrives after its window closed: the engine's watermark of
/// each partition (the engine's own rule: a window `[s, s + 1 min)` is closed once the
/// watermark reaches `s + 1 min + allowed lateness`).
#[derive(Clone)]
pub struct Lateness {
    /// Partitions of the log (the engine's partition of a key is the log's).
    pub partitions: u32,
    pub allowed_lateness_ms: i64,
    /// A partition's current watermark in UTC milliseconds, if it has one.
    pub watermark: Arc<dyn Fn(u32) -> Option<i64> + Send + Sync>,
}

impl Lateness {
    /// Whether an event of `key` at `event_time_ms` falls in a window already closed.
    pub fn is_late(&self, key: &[u8], event_time_ms: i64) -> bool {
        use stream_engine::core::time::{MINUTE_MS, window_start};
        let start = window_start(event_time_ms);
        let partition = event_log::partition_for(key, self.partitions);
        (self.watermark)(partition)
            .is_some_and(|wm| start + MINUTE_MS + self.allowed_lateness_ms <= wm)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Kind {
    kind: String,
}

#[derive(Clone, Default)]
struct IngestMetrics {
    accepted: Counter,
    rejected: Family<Reason, Counter>,
    queue_depth: Gauge,
    delivery_errors: Family<Kind, Counter>,
}

impl IngestMetrics {
    fn register(registry: &mut Registry) -> Self {
        let m = IngestMetrics::default();
        registry.register(
            "ingest_events_accepted",
            "Events acknowledged by the log",
            m.accepted.clone(),
        );
        registry.register(
            "ingest_events_rejected",
            "Events refused by validation, by reason",
            m.rejected.clone(),
        );
        registry.register(
            "ingest_producer_queue_depth",
            "Events handed to the log and not acknowledged yet",
            m.queue_depth.clone(),
        );
        registry.register(
            "ingest_delivery_errors",
            "Requests answered 503 because the log did not take their events, by kind",
            m.delivery_errors.clone(),
        );
        m
    }
}

impl<L: EventLog> Ingest<L> {
    /// The service over `log`, its metrics registered in `registry`; with `lateness`, its
    /// answers count the events that arrive late.
    pub fn new(
        log: L,
        body: BodyLimits,
        lateness: Option<Lateness>,
        registry: &mut Registry,
    ) -> Arc<Self> {
        Arc::new(Ingest {
            log,
            body,
            lateness,
            metrics: IngestMetrics::register(registry),
        })
    }

    pub fn log(&self) -> &L {
        &self.log
    }

    /// Validates and appends the events of one body.
    pub async fn accept(
        &self,
        format: Format,
        body: axum::body::Bytes,
    ) -> Result<Accepted, ApiError> {
        let Split {
            records,
            event_times_ms,
            rejected,
        } = body::split(format, &body).map_err(|e| {
            if let BodyError::InvalidJson(_) = e {
                self.metrics
                    .rejected
                    .get_or_create(&Reason {
                        reason: e.code().into(),
                    })
                    .inc();
            }
            ApiError::new(StatusCode::BAD_REQUEST, e.code(), e.to_string())
        })?;
        for r in &rejected {
            self.metrics
                .rejected
                .get_or_create(&Reason {
                    reason: r.code.into(),
                })
                .inc();
        }
        if records.is_empty() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "no_valid_events",
                format!("none of the {} events is valid", rejected.len()),
            )
            .with_details("rejected", json!(rejected)));
        }
        let accepted = records.len();
        // Judged before the append, against the watermarks as they are now.
        let late = self.lateness.as_ref().map(|lateness| {
            records
                .iter()
                .zip(&event_times_ms)
                .filter(|(r, t)| lateness.is_late(&r.key, **t))
                .count()
        });
        // Counted here rather than asked of the log, whose own count may lag the
        // acknowledgement it just gave; uncounted even if the request is dropped meanwhile.
        let waiting = Waiting::new(&self.metrics.queue_depth, accepted);
        // The append as a producer span, whose context every record carries to the stream
        // engine (a Kafka header, or in the embedded log's frame).
        let append = tracing::info_span!(
            "append",
            otel.name = "events append",
            otel.kind = "producer",
            events = accepted,
        );
        let records = match append.in_scope(service_common::telemetry::current_traceparent) {
            Some(trace) => {
                let trace = Bytes::from(trace);
                records
                    .into_iter()
                    .map(|r| Record {
                        trace: Some(trace.clone()),
                        ..r
                    })
                    .collect()
            }
            None => records,
        };
        let appended = self.log.append(records).instrument(append).await;
        drop(waiting);
        match appended {
            Ok(()) => {
                self.metrics.accepted.inc_by(accepted as u64);
                Ok(Accepted {
                    accepted,
                    late,
                    rejected,
                })
            }
            Err(e) => {
                self.metrics
                    .delivery_errors
                    .get_or_create(&Kind {
                        kind: e.code().into(),
                    })
                    .inc();
                tracing::warn!(error = %e, events = accepted, "events not acknowledged");
                Err(
                    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.code(), e.to_string())
                        .retry_after(1),
                )
            }
        }
    }
}

/// Events waiting for the log's acknowledgement, counted in a gauge while alive.
struct Waiting<'a> {
    gauge: &'a Gauge,
    events: i64,
}

impl<'a> Waiting<'a> {
    fn new(gauge: &'a Gauge, events: usize) -> Self {
        let events = events as i64;
        gauge.inc_by(events);
        Waiting { gauge, events }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.gauge.dec_by(self.events);
    }
}

/// The answer to a body whose valid events were all acknowledged.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Accepted {
    pub accepted: usize,
    /// Of the accepted, those whose window had already closed (counted as late by the engine,
    /// in no window); absent where ingest does not see the engine's watermarks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub late: Option<usize>,
    pub rejected: Vec<body::Rejected>,
}

impl IntoResponse for Accepted {
    fn into_response(self) -> Response {
        (StatusCode::ACCEPTED, axum::Json(self)).into_response()
    }
}

/// The `POST /api/v1/events` router (without the operational routes
/// [`service_common::serve`] adds).
pub fn router<L: EventLog>(ingest: Arc<Ingest<L>>, http: Arc<HttpMetrics>) -> Router {
    Router::new()
        .route(ROUTE, post(post_events::<L>))
        // The limit is enforced in the handler, with the structured error.
        .layer(DefaultBodyLimit::disable())
        .with_state(ingest)
        .layer(axum::middleware::from_fn_with_state(
            http.for_service("ingest"),
            track,
        ))
}

/// Validates the events of the body and appends the valid ones to the event log; answers
/// once the log has acknowledged every one of them.
#[utoipa::path(
    post,
    path = "/api/v1/events",
    request_body(
        content(
            (Vec<stream_engine::ActivityEvent> = "application/json"),
            (stream_engine::ActivityEvent = "application/x-ndjson"),
        ),
        description = "One event (an object), an array of events, or NDJSON (one event per line)"
    ),
    responses(
        (status = 202, description = "Every valid event was acknowledged by the log; the invalid ones are listed", body = Accepted),
        (status = 400, description = "No valid event, or not JSON (`rejected` lists why each event was refused)", body = ErrorBody),
        (status = 408, description = "The body did not arrive in time", body = ErrorBody),
        (status = 413, description = "The body is over the size limit", body = ErrorBody),
        (status = 415, description = "Neither application/json nor application/x-ndjson", body = ErrorBody),
        (status = 503, description = "The log did not acknowledge; retry after `Retry-After` (some events may have been appended)", body = ErrorBody),
    ),
    tag = "events"
)]
async fn post_events<L: EventLog>(
    State(ingest): State<Arc<Ingest<L>>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Accepted, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let format = Format::from_content_type(content_type).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "Content-Type {} is not application/json or application/x-ndjson",
                content_type.unwrap_or("(none)")
            ),
        )
    })?;
    let bytes = service_common::rest::read_body(&headers, body, ingest.body).await?;
    ingest.accept(format, bytes).await
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "ecom ingest", description = "Activity events into the event log."),
    paths(post_events),
    components(schemas(stream_engine::ActivityEvent, Accepted, body::Rejected, ErrorBody, ErrorDetail)),
    tags((name = "events", description = "Activity events"))
)]
struct ApiDoc;

/// The API description (OpenAPI 3.1).
pub fn openapi() -> utoipa::openapi::OpenApi {
    <ApiDoc as utoipa::OpenApi>::openapi()
}

/// The service's routes and readiness over `log`, its metrics registered in `registry`: what
/// [`build`] serves alone, and `ecom up` serves beside the other services.
pub fn part<L: EventLog>(
    log: L,
    body: BodyLimits,
    lateness: Option<Lateness>,
    registry: &mut Registry,
    http: Arc<HttpMetrics>,
) -> (Router, ReadyCheck) {
    let ingest = Ingest::new(log, body, lateness, registry);
    let ready = ingest.clone();
    let check: ReadyCheck = Arc::new(move || {
        let ingest = ready.clone();
        Box::pin(async move { ingest.log().ready().await.map_err(|e| e.to_string()) })
    });
    (router(ingest, http), check)
}

/// The service alone on `config.addr` over `log`, until `shutdown` resolves: the bound address
/// and the server's future.
pub async fn build<L: EventLog>(
    config: Config,
    log: L,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, impl Future<Output = std::io::Result<()>>)> {
    let mut registry = Registry::default();
    let http = HttpMetrics::register(&mut registry);
    let (router, ready) = part(log, config.body, None, &mut registry, http);
    let router = router.merge(service_common::docs::router(openapi()));
    service_common::serve(config.addr, router, Ops::new(registry, ready), shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lateness(watermark: Option<i64>, allowed_lateness_ms: i64) -> Lateness {
        Lateness {
            partitions: 4,
            allowed_lateness_ms,
            watermark: Arc::new(move |_| watermark),
        }
    }

    #[test]
    fn an_event_is_late_once_the_watermark_reaches_its_window_end_plus_the_allowed_lateness() {
        // The window [12:00, 12:01) in milliseconds of the day is enough for the rule.
        let (start, end) = (720 * 60_000, 721 * 60_000);
        let at = start + 30_000;
        assert!(!lateness(None, 0).is_late(b"42", at), "no watermark yet");
        assert!(!lateness(Some(end - 1), 0).is_late(b"42", at));
        assert!(lateness(Some(end), 0).is_late(b"42", at));
        assert!(!lateness(Some(end), 30_000).is_late(b"42", at));
        assert!(lateness(Some(end + 30_000), 30_000).is_late(b"42", at));
        // Before the epoch, windows still start on the minute below.
        assert!(lateness(Some(0), 0).is_late(b"42", -1));
        assert!(!lateness(Some(-1), 0).is_late(b"42", -1));
    }

    #[test]
    fn the_watermark_asked_is_that_of_the_key_s_partition() {
        let key = b"product-7";
        let mine = event_log::partition_for(key, 4);
        let lateness = Lateness {
            partitions: 4,
            allowed_lateness_ms: 0,
            watermark: Arc::new(move |p| (p == mine).then_some(i64::MAX)),
        };
        assert!(lateness.is_late(key, 0));
        let other = (0..1000)
            .map(|i| format!("p{i}"))
            .find(|k| event_log::partition_for(k.as_bytes(), 4) != mine)
            .unwrap();
        assert!(!lateness.is_late(other.as_bytes(), 0));
    }
}
