//! The plumbing every ecom service shares, so that each service is only its own logic:
//!
//! - [`serve`]: an axum router on an address until a shutdown signal, with `/healthz`,
//!   `/readyz` and `/metrics` added, and the [`Limits`] that keep slow clients from holding
//!   the server;
//! - [`ApiError`]: the structured error body of every HTTP API,
//!   `{"error": {"code": ..., "message": ...}}`;
//! - [`shutdown_signal`]: SIGTERM or Ctrl-C;
//! - [`telemetry`]: logs (text or JSON) and traces (OTLP, W3C Trace Context);
//! - [`process_metrics`]: the process's own CPU, memory and descriptors;
//! - [`http_metrics`]: requests by route and status and their latency, for every router;
//! - [`retry`]: the one backoff policy of the workspace;
//! - [`docs`]: the error body's schema and the routes of an API description;
//! - [`rest`]: bodies, validation errors, versions, idempotency keys and money for resource APIs;
//! - `auth` (feature `jwt`): the one token verifier (a JWKS URL, an issuer, an audience).

#[cfg(feature = "jwt")]
pub mod auth;
pub mod docs;
pub mod http_metrics;
pub mod process_metrics;
pub mod rest;
/// The one backoff policy of the workspace (the `primitives` crate's).
pub use primitives::retry;
mod server;
pub mod telemetry;

pub use server::Limits;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;
use serde::Serialize;

/// A readiness check: resolves to `Err(reason)` while the service cannot do its job.
pub type ReadyCheck =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// The readiness of several parts served together (`ecom up`): ready once every part is;
/// otherwise the reasons of the parts that are not, each prefixed by the part's name.
pub fn all_ready(checks: Vec<(&'static str, ReadyCheck)>) -> ReadyCheck {
    let checks = Arc::new(checks);
    Arc::new(move || {
        let checks = checks.clone();
        Box::pin(async move {
            let mut failing = Vec::new();
            for (name, check) in checks.iter() {
                if let Err(reason) = check().await {
                    failing.push(format!("{name}: {reason}"));
                }
            }
            if failing.is_empty() {
                Ok(())
            } else {
                Err(failing.join("; "))
            }
        })
    })
}

/// What [`serve`] adds to a service's router.
#[derive(Clone)]
pub struct Ops {
    registry: Arc<Mutex<Registry>>,
    ready: ReadyCheck,
}

impl Ops {
    /// Serves `registry`, plus the process's own metrics ([`process_metrics`]).
    pub fn new(mut registry: Registry, ready: ReadyCheck) -> Self {
        registry.register_collector(Box::<process_metrics::ProcessMetrics>::default());
        Ops {
            registry: Arc::new(Mutex::new(registry)),
            ready,
        }
    }

    /// The same metrics with another readiness: for one process serving several parts on
    /// several listeners (`ecom up`), each listener with its part's readiness.
    pub fn with_ready(&self, ready: ReadyCheck) -> Self {
        Ops {
            registry: self.registry.clone(),
            ready,
        }
    }
}

/// Serves `router` plus `/healthz` (the process is up), `/readyz` (the check passes) and
/// `/metrics` (Prometheus text format) on `addr` until `shutdown` resolves, then finishes the
/// requests in flight, with the default [`Limits`]. Returns once bound with the actual address
/// and the server's future.
pub async fn serve(
    addr: SocketAddr,
    router: Router,
    ops: Ops,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, impl Future<Output = std::io::Result<()>>)> {
    serve_with(addr, router, ops, Limits::default(), shutdown).await
}

/// [`serve`] with other limits.
pub async fn serve_with(
    addr: SocketAddr,
    router: Router,
    ops: Ops,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, impl Future<Output = std::io::Result<()>>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    serve_listener(listener, router, ops, limits, shutdown)
}

/// [`serve_with`] on a listener already bound (when the address must be known before the
/// router is built, as for a service that calls routes served beside it).
pub fn serve_listener(
    listener: tokio::net::TcpListener,
    router: Router,
    ops: Ops,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, impl Future<Output = std::io::Result<()>>)> {
    let app = router.merge(ops_router(ops));
    let local = listener.local_addr()?;
    Ok((local, server::run(listener, app, limits, shutdown)))
}

fn ops_router(ops: Ops) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(ops)
}

async fn readyz(State(ops): State<Ops>) -> Response {
    match (ops.ready)().await {
        Ok(()) => "ready\n".into_response(),
        Err(reason) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", reason).into_response()
        }
    }
}

async fn metrics(State(ops): State<Ops>) -> Response {
    let mut body = String::new();
    let encoded = {
        let registry = ops.registry.lock().unwrap_or_else(|e| e.into_inner());
        encode(&mut body, &registry)
    };
    match encoded {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            )],
            body,
        )
            .into_response(),
        Err(e) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "metrics", e.to_string())
            .into_response(),
    }
}

/// The error body of every HTTP API: `{"error": {"code": ..., "message": ...}}`, plus
/// optional details beside `error`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Extra top-level fields (for example the per-event rejections of a batch).
    pub details: Option<(&'static str, serde_json::Value)>,
    /// Seconds the client should wait before retrying (`Retry-After`).
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    pub fn with_details(mut self, key: &'static str, value: serde_json::Value) -> Self {
        self.details = Some((key, value));
        self
    }

    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::Map::new();
        body.insert(
            "error".into(),
            serde_json::to_value(ErrorBody {
                code: self.code,
                message: &self.message,
            })
            .unwrap_or_default(),
        );
        if let Some((key, value)) = self.details {
            body.insert(key.into(), value);
        }
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// Resolves on SIGTERM (how Kubernetes stops a pod) or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
