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
use tracing::Instrument;

use crate::telemetry;

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

/// The route of a request whose router has no pattern for it (the gateway's proxy): a layer
/// outside [`track`] puts it in the request's extensions, and [`track`] labels the request
/// with it instead of `unmatched`.
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
/// raw path, so that ids in paths do not explode the label set), and serves it inside its
/// [`telemetry::server_span`] (the caller's trace continued, the request id and trace id on
/// every log line about it). A request without an `X-Request-Id` gets one, echoed in the answer.
pub async fn track(
    State(metrics): State<Arc<HttpMetrics>>,
    mut request: Request,
    next: Next,
) -> Response {
    let route = match (
        request.extensions().get::<RouteLabel>(),
        request.extensions().get::<MatchedPath>(),
    ) {
        (Some(label), _) => label.0.to_owned(),
        (None, Some(matched)) => matched.as_str().to_owned(),
        (None, None) => "unmatched".to_owned(),
    };
    let method = method_label(request.method());
    let request_id = match request.headers().get(telemetry::REQUEST_ID) {
        Some(id) if telemetry::valid_request_id(id.as_bytes()) => id.clone(),
        _ => {
            let id = telemetry::new_request_id();
            request
                .headers_mut()
                .insert(telemetry::REQUEST_ID, id.clone());
            id
        }
    };
    let span = telemetry::server_span(
        metrics.service,
        request.method(),
        &route,
        request.uri().path(),
        request.headers(),
    );
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    telemetry::record_status(&span, status);
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
            status,
        })
        .inc();
    response
        .headers_mut()
        .entry(telemetry::REQUEST_ID)
        .or_insert(request_id);
    response
}
