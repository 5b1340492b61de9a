//! Requests by route and status, and their latency, as Prometheus metrics: one middleware for
//! every service's router.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteStatus {
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Route {
    route: String,
}

/// The HTTP metrics of one service; add [`track`] as a middleware layer with it as state.
#[derive(Clone)]
pub struct HttpMetrics {
    requests: Family<RouteStatus, Counter>,
    latency: Family<Route, Histogram>,
}

impl HttpMetrics {
    /// Registers `http_requests_total{route,status}` and
    /// `http_request_duration_seconds{route}` (buckets from 0.5 ms to about 8 s).
    pub fn register(registry: &mut Registry) -> Arc<Self> {
        let metrics = HttpMetrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0005, 2.0, 15))
            }),
        };
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            metrics.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            metrics.latency.clone(),
        );
        Arc::new(metrics)
    }
}

/// Middleware: counts the request and observes its latency under its route pattern (never the
/// raw path, so that ids in paths do not explode the label set).
pub async fn track(
    State(metrics): State<Arc<HttpMetrics>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    metrics
        .latency
        .get_or_create(&Route {
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests
        .get_or_create(&RouteStatus {
            route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}
