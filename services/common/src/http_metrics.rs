//! Requests by service, method, route and status, and their latency, as Prometheus metrics: one
//! middleware for every service's router, with the same names and labels everywhere (the
//! gateway's included), so that one dashboard and one set of rules read them all, whether the
//! services run as separate processes or together in `ecom up`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteStatus {
    service: &'static str,
    method: &'static str,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Route {
    service: &'static str,
    method: &'static str,
    route: String,
}

/// The request method as a label: the standard ones by name, any other as `other` (a client
/// chooses the method, and must not choose the label set's size).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The route a response answered, for handlers whose router has no pattern for it (the
/// gateway's proxy): put it in the response's extensions and [`track`] labels the request with
/// it instead of `unmatched`.
#[derive(Clone, Copy, Debug)]
pub struct RouteLabel(pub &'static str);

/// The HTTP metrics of a process; add [`track`] as a middleware layer with
/// [`HttpMetrics::for_service`] as state.
#[derive(Clone)]
pub struct HttpMetrics {
    service: &'static str,
    requests: Family<RouteStatus, Counter>,
    latency: Family<Route, Histogram>,
}

impl HttpMetrics {
    /// Registers `http_requests_total{service,method,route,status}` and
    /// `http_request_duration_seconds{service,method,route}` (buckets from 0.5 ms to about 8 s).
    pub fn register(registry: &mut Registry) -> Arc<Self> {
        let metrics = HttpMetrics {
            service: "unnamed",
            requests: Family::default(),
            latency: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0005, 2.0, 15))
            }),
        };
        registry.register(
            "http_requests",
            "HTTP requests by service, method, route and status",
            metrics.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by service, method and route",
            metrics.latency.clone(),
        );
        Arc::new(metrics)
    }

    /// The same metrics, labelled `service`: one per router.
    pub fn for_service(&self, service: &'static str) -> Arc<Self> {
        Arc::new(HttpMetrics {
            service,
            ..self.clone()
        })
    }
}

/// Middleware: counts the request and observes its latency under its route pattern (never the
/// raw path, so that ids in paths do not explode the label set).
pub async fn track(
    State(metrics): State<Arc<HttpMetrics>>,
    request: Request,
    next: Next,
) -> Response {
    let matched = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let route = match (response.extensions().get::<RouteLabel>(), matched) {
        (Some(label), _) => label.0.to_owned(),
        (None, Some(matched)) => matched,
        (None, None) => "unmatched".to_owned(),
    };
    metrics
        .latency
        .get_or_create(&Route {
            service: metrics.service,
            method,
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests
        .get_or_create(&RouteStatus {
            service: metrics.service,
            method,
            route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}
