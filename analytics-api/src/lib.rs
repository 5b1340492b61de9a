//! The analytics API (`ecom analytics`, and inside `ecom up`): queries over the window results
//! and the live stream of results as windows fire.
//!
//! | route | answer |
//! |---|---|
//! | `GET /api/v1/analytics/products/{product_id}/windows?limit=&before=` | the product's latest windows, newest first, and the `before` of the next page |
//! | `GET /api/v1/analytics/top?window_start=&limit=` | the products with the most unique users in a window (default: the latest window every partition has fired) |
//! | `GET /api/v1/analytics/windows?from=&to=&limit=&cursor=` | every result in a time range, by window then `product_id`, paged |
//! | `GET /api/v1/analytics/stream` | Server-Sent Events: one `window` event per result as windows fire |
//!
//! The store is any [`ResultQuery`] (DynamoDB deployed, SQLite in `ecom up`); the stream is a
//! [`Feed`] that [`feed::tail`] fills from the results topic (Kafka, or the embedded log).
//! Bad parameters get 400 with the standard error body; an unknown product, an empty list.

pub mod feed;
mod params;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::Stream;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use result_store::ResultQuery;
use serde::Serialize;
use service_common::docs::{ErrorBody, ErrorDetail};
use service_common::http_metrics::{HttpMetrics, track};
use service_common::{ApiError, Ops, ReadyCheck};
use stream_engine::WindowResult;
use stream_engine::core::time::{MINUTE_MS, format_rfc3339_ms};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use utoipa::{OpenApi, ToSchema};

pub use feed::Feed;
use params::{Params, bad_parameter};

/// Settings of the analytics API.
#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    /// Live-stream clients at once; more get 503.
    pub max_stream_clients: usize,
}

/// The limits of the query parameters.
pub const DEFAULT_WINDOWS: usize = 10;
pub const DEFAULT_TOP: usize = 10;
pub const DEFAULT_RANGE: usize = 100;
pub const MAX_LIMIT: usize = 1000;
/// The longest time range one `windows` request may span: 31 days.
pub const MAX_RANGE_MS: i64 = 31 * 24 * 60 * 60 * 1000;

struct App<Q> {
    store: Arc<Q>,
    feed: Feed,
    max_stream_clients: usize,
    stream_slots: Arc<tokio::sync::Semaphore>,
    metrics: Metrics,
}

#[derive(Clone, Default)]
struct Metrics {
    stream_clients: Gauge,
    stream_dropped: Counter,
}

impl Metrics {
    fn register(registry: &mut Registry) -> Self {
        let m = Metrics::default();
        registry.register(
            "analytics_stream_clients",
            "Clients connected to the live stream of results",
            m.stream_clients.clone(),
        );
        registry.register(
            "analytics_stream_dropped",
            "Live-stream clients closed because they fell too far behind",
            m.stream_dropped.clone(),
        );
        m
    }
}

/// A product's latest windows, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductWindows {
    pub product_id: String,
    /// Newest first, each in the window-result contract's JSON.
    pub windows: Vec<WindowResult>,
    /// The `before` of the next page; `null` on the last page.
    pub next: Option<String>,
}

/// A product's place in a window.
#[derive(Debug, Serialize, ToSchema)]
pub struct TopProduct {
    pub product_id: String,
    pub unique_user_count: u64,
    pub event_count: u64,
}

/// The products with the most unique users in a window.
#[derive(Debug, Serialize, ToSchema)]
pub struct Top {
    /// `null` when no window has fired yet.
    pub window_start: Option<String>,
    pub window_end: Option<String>,
    pub products: Vec<TopProduct>,
}

/// Results in a time range.
#[derive(Debug, Serialize, ToSchema)]
pub struct Windows {
    /// In the window-result contract's JSON.
    pub windows: Vec<WindowResult>,
    /// The `cursor` of the next page; `null` once the range is exhausted.
    pub next: Option<String>,
}

fn store_failed(e: result_store::StoreError) -> ApiError {
    tracing::warn!(error = %e, "store query failed");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        e.to_string(),
    )
    .retry_after(1)
}

/// A product's latest windows, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/analytics/products/{product_id}/windows",
    params(
        ("product_id" = String, Path, description = "The product"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "Windows per page, 1 to 1000 (default 10)"),
        ("before" = Option<String>, Query, description = "Only windows starting before this RFC 3339 time (the `next` of the previous page)"),
    ),
    responses(
        (status = 200, description = "The windows, newest first (empty for an unknown product)", body = ProductWindows),
        (status = 400, description = "A bad parameter", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    ),
    tag = "analytics"
)]
async fn product_windows<Q: ResultQuery>(
    State(app): State<Arc<App<Q>>>,
    Path(product_id): Path<String>,
    params: Params,
) -> Result<axum::Json<ProductWindows>, ApiError> {
    params::check_product_id(&product_id)?;
    let limit = params.limit("limit", DEFAULT_WINDOWS)?;
    let before = params.time("before")?;
    let mut results = app
        .store
        .product_windows(&product_id, before, limit + 1)
        .await
        .map_err(store_failed)?;
    let more = results.len() > limit;
    results.truncate(limit);
    let next = more
        .then(|| results.last().map(|r| format_rfc3339_ms(r.window_start_ms)))
        .flatten();
    Ok(axum::Json(ProductWindows {
        product_id,
        windows: results,
        next,
    }))
}

/// The products with the most unique users in a window, ties by `product_id`.
#[utoipa::path(
    get,
    path = "/api/v1/analytics/top",
    params(
        ("window_start" = Option<String>, Query, description = "The window's start, RFC 3339, on a whole minute (default: the latest window every partition has fired)"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "Products, 1 to 1000 (default 10)"),
    ),
    responses(
        (status = 200, description = "The window's top products", body = Top),
        (status = 400, description = "A bad parameter", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    ),
    tag = "analytics"
)]
async fn top<Q: ResultQuery>(
    State(app): State<Arc<App<Q>>>,
    params: Params,
) -> Result<axum::Json<Top>, ApiError> {
    let limit = params.limit("limit", DEFAULT_TOP)?;
    let window = match params.time("window_start")? {
        Some(start) if start.rem_euclid(MINUTE_MS) != 0 => {
            return Err(bad_parameter(
                "window_start",
                "must be the start of a minute (seconds and milliseconds zero)",
            ));
        }
        Some(start) => Some(start),
        None => app.store.latest_fired().await.map_err(store_failed)?,
    };
    let Some(start) = window else {
        return Ok(axum::Json(Top {
            window_start: None,
            window_end: None,
            products: Vec::new(),
        }));
    };
    let results = app.store.top(start, limit).await.map_err(store_failed)?;
    Ok(axum::Json(Top {
        window_start: Some(format_rfc3339_ms(start)),
        window_end: Some(format_rfc3339_ms(start + MINUTE_MS)),
        products: results
            .iter()
            .map(|r| TopProduct {
                product_id: r.product_id.to_string(),
                unique_user_count: r.unique_users,
                event_count: r.events,
            })
            .collect(),
    }))
}

/// Every result of the windows starting in `[from, to)`, by window start, then `product_id`.
#[utoipa::path(
    get,
    path = "/api/v1/analytics/windows",
    params(
        ("from" = String, Query, description = "RFC 3339: windows starting at or after this"),
        ("to" = String, Query, description = "RFC 3339: windows starting before this; at most 31 days after `from`"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "Results per page, 1 to 1000 (default 100); a page may hold fewer and still have a next one"),
        ("cursor" = Option<String>, Query, description = "The `next` of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of results", body = Windows),
        (status = 400, description = "A bad parameter", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    ),
    tag = "analytics"
)]
async fn windows<Q: ResultQuery>(
    State(app): State<Arc<App<Q>>>,
    params: Params,
) -> Result<axum::Json<Windows>, ApiError> {
    let from = params
        .time("from")?
        .ok_or_else(|| bad_parameter("from", "is required (RFC 3339)"))?;
    let to = params
        .time("to")?
        .ok_or_else(|| bad_parameter("to", "is required (RFC 3339)"))?;
    if to <= from {
        return Err(bad_parameter("to", "must be after `from`"));
    }
    if to - from > MAX_RANGE_MS {
        return Err(bad_parameter(
            "to",
            "must be at most 31 days after `from` (ask for longer ranges a month at a time)",
        ));
    }
    let limit = params.limit("limit", DEFAULT_RANGE)?;
    let cursor = params.cursor()?;
    let page = app
        .store
        .windows(from, to, cursor, limit)
        .await
        .map_err(store_failed)?;
    Ok(axum::Json(Windows {
        windows: page.results,
        next: page.next.as_ref().map(params::encode_cursor),
    }))
}

/// The live stream of results: one `window` event per result as windows fire (the contract
/// JSON). A client too slow to keep up gets a `close` event with the reason, and the stream
/// ends; reconnecting resumes with the results fired from then on.
#[utoipa::path(
    get,
    path = "/api/v1/analytics/stream",
    responses(
        (status = 200, description = "text/event-stream of `window` events", content_type = "text/event-stream", body = WindowResult),
        (status = 503, description = "Too many stream clients", body = ErrorBody),
    ),
    tag = "analytics"
)]
async fn stream<Q: ResultQuery>(State(app): State<Arc<App<Q>>>) -> Response {
    let Ok(slot) = app.stream_slots.clone().try_acquire_owned() else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_stream_clients",
            format!(
                "{} clients are connected to the stream, the limit",
                app.max_stream_clients
            ),
        )
        .retry_after(5)
        .into_response();
    };
    let guard = ClientGuard::new(app.metrics.clone(), slot);
    let events = live_events(BroadcastStream::new(app.feed.subscribe()), guard);
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// A stream client's slot, held (and counted) while it is connected.
struct ClientGuard {
    metrics: Metrics,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl ClientGuard {
    fn new(metrics: Metrics, slot: tokio::sync::OwnedSemaphorePermit) -> Self {
        metrics.stream_clients.inc();
        ClientGuard {
            metrics,
            _slot: slot,
        }
    }
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.metrics.stream_clients.dec();
    }
}

fn live_events(
    results: BroadcastStream<Arc<str>>,
    guard: ClientGuard,
) -> impl Stream<Item = Result<Event, std::convert::Infallible>> {
    let mut closed = false;
    // A comment first, so that the answer's first bytes leave at once: some clients (Firefox's
    // fetch) report a stream open only once a byte of its body has arrived.
    let hello = tokio_stream::once(Ok(Event::default().comment("connected")));
    let live = results
        .map_while(move |item| {
            if closed {
                return None;
            }
            Some(match item {
                Ok(json) => Event::default().event("window").data(&*json),
                Err(BroadcastStreamRecvError::Lagged(missed)) => {
                    closed = true;
                    guard.metrics.stream_dropped.inc();
                    let body = serde_json::json!({"error": {
                        "code": "slow_consumer",
                        "message": format!("the client fell {missed} results behind the stream and was disconnected; reconnect to go on"),
                    }});
                    Event::default().event("close").data(body.to_string())
                }
            })
        })
        .map(Ok);
    hello.chain(live)
}

#[derive(OpenApi)]
#[openapi(
    info(title = "ecom analytics", description = "Unique users per product and one-minute window of event time: queries and the live stream."),
    paths(product_windows, top, windows, stream),
    components(schemas(ProductWindows, Top, TopProduct, Windows, WindowResult, ErrorBody, ErrorDetail)),
    tags((name = "analytics", description = "Window results"))
)]
struct ApiDoc;

/// The API description (OpenAPI 3.1).
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The service's routes and readiness over `store` and `feed`, its metrics registered in
/// `registry`: what [`build`] serves alone, and `ecom up` serves beside the other services.
pub fn part<Q: ResultQuery>(
    store: Arc<Q>,
    feed: Feed,
    max_stream_clients: usize,
    registry: &mut Registry,
    http: Arc<HttpMetrics>,
) -> (Router, ReadyCheck) {
    let app = Arc::new(App {
        store: store.clone(),
        feed,
        max_stream_clients,
        stream_slots: Arc::new(tokio::sync::Semaphore::new(max_stream_clients)),
        metrics: Metrics::register(registry),
    });
    let router = Router::new()
        .route(
            "/api/v1/analytics/products/{product_id}/windows",
            get(product_windows::<Q>),
        )
        .route("/api/v1/analytics/top", get(top::<Q>))
        .route("/api/v1/analytics/windows", get(windows::<Q>))
        .route("/api/v1/analytics/stream", get(stream::<Q>))
        .with_state(app)
        .layer(axum::middleware::from_fn_with_state(
            http.for_service("analytics"),
            track,
        ));
    let ready: ReadyCheck = Arc::new(move || {
        let store = store.clone();
        Box::pin(async move { store.ready().await.map_err(|e| e.to_string()) })
    });
    (router, ready)
}

/// The service alone on `config.addr`, until `shutdown` resolves: the bound address and the
/// server's future.
pub async fn build<Q: ResultQuery>(
    config: Config,
    store: Arc<Q>,
    feed: Feed,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, impl Future<Output = std::io::Result<()>>)> {
    let mut registry = Registry::default();
    let http = HttpMetrics::register(&mut registry);
    let (router, ready) = part(store, feed, config.max_stream_clients, &mut registry, http);
    let router = router.merge(service_common::docs::router(openapi()));
    service_common::serve(config.addr, router, Ops::new(registry, ready), shutdown).await
}

/// A [`RangeCursor`] as the opaque `cursor` parameter, and back.
pub use params::{decode_cursor, encode_cursor};
