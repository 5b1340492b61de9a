//! The gateway (`ecom gateway`, port 8080): the platform's one public entry. Every
//! `/api/v1/...` path (and `/.well-known/jwks.json`) goes, unchanged, to the service that owns
//! it ([`access::route`]), after the access rules of the design brief: a route that needs a
//! token gets 401 `unauthorized` (with `WWW-Authenticate: Bearer`) for a missing or invalid one
//! (expired, badly signed, `alg: none`, wrong issuer or audience), 403 `forbidden` for a valid
//! one without the role or scope. Ownership (a customer's own orders) is the service's check.
//!
//! Every request carries an `X-Request-Id` (the caller's, or a new one) to the service and
//! back. An upstream that cannot be reached is 503 `upstream_unavailable`; one that does not
//! start answering within the timeout, 504 `upstream_timeout`. Bodies stream both ways (the
//! analytics event stream passes through).
//!
//! Still to come (issue #10): rate limits (in process and through Redis), retries, circuit
//! breakers and concurrency bounds per upstream, the merged API description, and `ecom up`
//! behind the gateway.

pub mod access;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use prometheus_client::registry::Registry;
use service_common::auth::{AuthError, Verifier, VerifierConfig, bearer};
use service_common::http_metrics::HttpMetrics;
use service_common::{ApiError, Ops, ReadyCheck};

use crate::access::{Access, Upstream, route};

/// The services' base URLs (`AUTH_URL`, `CATALOG_URL`, ...).
#[derive(Debug, Clone)]
pub struct UpstreamUrls {
    pub auth: String,
    pub catalog: String,
    pub customers: String,
    pub orders: String,
    pub ingest: String,
    pub analytics: String,
}

/// Settings of the gateway.
#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    pub upstreams: UpstreamUrls,
    /// How tokens are checked (the auth service's JWKS, or an external provider's).
    pub verifier: VerifierConfig,
    /// How long an upstream may take to start answering.
    pub timeout: Duration,
}

struct Gateway {
    urls: HashMap<Upstream, String>,
    verifier: Verifier,
    http: reqwest::Client,
    timeout: Duration,
}

/// The request id header.
pub const REQUEST_ID: &str = "x-request-id";

/// The gateway's routes: what [`build`] serves.
pub fn part(config: &Config, http: Arc<HttpMetrics>) -> (Router, ReadyCheck) {
    let u = &config.upstreams;
    let trim = |url: &str| url.trim_end_matches('/').to_owned();
    let urls = HashMap::from([
        (Upstream::Auth, trim(&u.auth)),
        (Upstream::Catalog, trim(&u.catalog)),
        (Upstream::Customers, trim(&u.customers)),
        (Upstream::Orders, trim(&u.orders)),
        (Upstream::Ingest, trim(&u.ingest)),
        (Upstream::Analytics, trim(&u.analytics)),
    ]);
    let gateway = Arc::new(Gateway {
        urls,
        verifier: Verifier::new(config.verifier.clone()),
        http: reqwest::Client::builder()
            .connect_timeout(config.timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default(),
        timeout: config.timeout,
    });
    let router = Router::new().fallback(proxy).with_state(gateway).layer(
        axum::middleware::from_fn_with_state(http, service_common::http_metrics::track),
    );
    let ready: ReadyCheck = Arc::new(|| Box::pin(async { Ok(()) }));
    (router, ready)
}

/// The gateway on `config.addr` until `shutdown` resolves.
pub async fn build(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, impl Future<Output = std::io::Result<()>>)> {
    let mut registry = Registry::default();
    let http = HttpMetrics::register(&mut registry);
    let (router, ready) = part(&config, http);
    service_common::serve(config.addr, router, Ops::new(registry, ready), shutdown).await
}

fn unauthorized(message: &str, token_given: bool) -> Response {
    let mut response =
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    let challenge = if token_given {
        "Bearer error=\"invalid_token\""
    } else {
        "Bearer"
    };
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    response
}

/// Headers that belong to one connection, never forwarded (RFC 9110 §7.6.1).
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "content-length"
    )
}

fn request_id(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(REQUEST_ID)
        .filter(|v| {
            let v = v.as_bytes();
            !v.is_empty() && v.len() <= 128 && v.iter().all(u8::is_ascii_graphic)
        })
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&uuid::Uuid::new_v4().simple().to_string())
                .expect("hex is a valid header")
        })
}

async fn proxy(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let id = request_id(request.headers());
    let mut response = forward(&gateway, peer, id.clone(), request).await;
    response.headers_mut().insert(REQUEST_ID, id);
    response
}

async fn forward(
    gateway: &Gateway,
    peer: SocketAddr,
    id: HeaderValue,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let Some((upstream, access)) = route(&parts.method, parts.uri.path()) else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no route {}", parts.uri.path()),
        )
        .into_response();
    };
    if access != Access::Public {
        let Some(token) = bearer(&parts.headers) else {
            return unauthorized("this route needs a bearer token", false);
        };
        match gateway.verifier.verify(token).await {
            Ok(claims) if access.admits(&claims) => {}
            Ok(_) => {
                return ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "the token does not carry the role or scope this route needs",
                )
                .into_response();
            }
            Err(AuthError::Invalid(reason)) => return unauthorized(&reason, true),
            Err(e @ AuthError::KeysUnavailable(_)) => {
                tracing::warn!(error = %e, "cannot check tokens");
                return ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "auth_unavailable",
                    e.to_string(),
                )
                .retry_after(1)
                .into_response();
            }
        }
    }

    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let url = format!("{}{path}", gateway.urls[&upstream]);
    let mut headers = HeaderMap::with_capacity(parts.headers.len() + 2);
    for (name, value) in &parts.headers {
        if !hop_by_hop(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    headers.insert(REQUEST_ID, id);
    let forwarded = match parts
        .headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
    {
        Some(before) => format!("{before}, {}", peer.ip()),
        None => peer.ip().to_string(),
    };
    if let Ok(value) = HeaderValue::from_str(&forwarded) {
        headers.insert("x-forwarded-for", value);
    }
    let body = reqwest::Body::wrap_stream(body.into_data_stream());
    let sent = gateway
        .http
        .request(parts.method, url)
        .headers(headers)
        .body(body)
        .send();
    let answered = match tokio::time::timeout(gateway.timeout, sent).await {
        Err(_) => {
            return ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                format!(
                    "{} did not answer within {:?}",
                    upstream.name(),
                    gateway.timeout
                ),
            )
            .into_response();
        }
        Ok(Err(e)) => {
            tracing::warn!(upstream = upstream.name(), error = %e, "upstream failed");
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream_unavailable",
                format!("{} is unavailable", upstream.name()),
            )
            .retry_after(1)
            .into_response();
        }
        Ok(Ok(answered)) => answered,
    };
    let mut response = Response::builder().status(answered.status());
    if let Some(headers) = response.headers_mut() {
        for (name, value) in answered.headers() {
            if !hop_by_hop(name) {
                headers.append(name.clone(), value.clone());
            }
        }
    }
    let stream = answered.bytes_stream().map_err(std::io::Error::other);
    response
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}
