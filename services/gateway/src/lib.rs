//! The gateway (`ecom gateway`, port 8080): the platform's one public entry. Every
//! `/api/v1/...` path (and `/.well-known/jwks.json`) goes, unchanged, to the service that owns
//! it ([`access::route`]), after, in this order:
//!
//! 1. the access rules of the design brief: a route that needs a token gets 401 `unauthorized`
//!    (with `WWW-Authenticate: Bearer`) for a missing or invalid one (expired, badly signed,
//!    `alg: none`, wrong issuer or audience), 403 `forbidden` for a valid one without the role
//!    or scope. Ownership (a customer's own orders) is the service's check;
//! 2. the rate limit of the caller (token subject, else client address) on the route's class
//!    ([`limits`]): 429 `rate_limited` with `Retry-After`; every limited answer carries the
//!    `RateLimit-Policy` and `RateLimit` headers;
//! 3. the request body, read whole within its size and time limits (413 `body_too_large`,
//!    408 `body_timeout`), so that a slow client holds neither a slot toward the service nor
//!    the service's time, and so that an idempotent request can be sent again;
//! 4. the upstream's breaker and bulkhead ([`upstream`]): 503 `upstream_unavailable` at once
//!    while the service is failing or has too many requests in flight.
//!
//! Then the request is forwarded with the caller's `X-Request-Id` (or a new one),
//! `X-Forwarded-For` and `X-Real-IP` (the client, as judged through the trusted proxies). No
//! answer is 503 `upstream_unavailable`, no answer within the timeout 504 `upstream_timeout`;
//! an idempotent request (GET, HEAD, OPTIONS, DELETE, PUT) is retried once on either failure
//! or a 502/503 answer, within the retry budget; a POST or PATCH never is. Answers stream back
//! (the analytics event stream passes through) with security headers added.
//!
//! The gateway also serves the merged API description at `/api/v1/openapi.json` and its docs
//! page at `/docs` ([`openapi`]).

pub mod access;
pub mod dashboard;
pub mod limits;
pub mod openapi;
pub mod status;
pub mod upstream;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use prometheus_client::registry::Registry;
use service_common::auth::{AuthError, Claims, Verifier, VerifierConfig, bearer};
use service_common::http_metrics::{HttpMetrics, RouteLabel};
use service_common::rest::{BodyLimits, read_body};
use service_common::{ApiError, Ops, ReadyCheck, telemetry};
use tracing::Instrument;

use crate::access::{Access, Class, Route, Upstream, route};
use crate::limits::{Decision, Limiter, RateLimits, RedisConfig, Who, address_principal};
use crate::upstream::{Refusal, Resilience, Service};

/// The services' base URLs (`AUTH_URL`, `CATALOG_URL`, ...).
#[derive(Debug, Clone)]
pub struct UpstreamUrls {
    pub auth: String,
    pub catalog: String,
    pub customers: String,
    pub orders: String,
    pub ingest: String,
    pub analytics: String,
    pub inventory: String,
    pub payments: String,
}

impl UpstreamUrls {
    fn of(&self, upstream: Upstream) -> &str {
        match upstream {
            Upstream::Gateway => "",
            Upstream::Auth => &self.auth,
            Upstream::Catalog => &self.catalog,
            Upstream::Customers => &self.customers,
            Upstream::Orders => &self.orders,
            Upstream::Ingest => &self.ingest,
            Upstream::Analytics => &self.analytics,
            Upstream::Inventory => &self.inventory,
            Upstream::Payments => &self.payments,
        }
    }
}

/// Settings of the gateway.
#[derive(Clone)]
pub struct Config {
    pub addr: SocketAddr,
    pub upstreams: UpstreamUrls,
    /// How tokens are checked (the auth service's JWKS, or an external provider's).
    pub verifier: VerifierConfig,
    /// Timeouts, retries, breakers and bulkheads toward the services.
    pub resilience: Resilience,
    pub rate_limits: RateLimits,
    /// Shares the rate limits with every replica (`REDIS_URL`).
    pub redis: Option<RedisConfig>,
    /// Request bodies: the largest forwarded, and how long one may take to arrive.
    pub body: BodyLimits,
    /// Header read timeout and connection bound of the listener.
    pub server: service_common::Limits,
    /// Proxies in front of the gateway (a load balancer: 1) whose `X-Forwarded-For` entries
    /// are trusted to name the client.
    pub trusted_proxies: usize,
    /// The description served at `/api/v1/openapi.json` (see [`openapi::describe`]).
    pub api: Option<utoipa::openapi::OpenApi>,
    /// Whether callers on this machine read the analytics API without a token (`ecom up`,
    /// whose dashboard needs no login on loopback).
    pub local_analytics: bool,
    /// The parts `GET /api/v1/status` reads (by default ingest and analytics at their
    /// upstream URLs; the stream engine only when given).
    pub status: status::StatusSources,
}

impl Config {
    /// The defaults around `addr`, `upstreams` and `verifier`.
    pub fn new(addr: SocketAddr, upstreams: UpstreamUrls, verifier: VerifierConfig) -> Config {
        Config {
            addr,
            verifier,
            resilience: Resilience::default(),
            rate_limits: RateLimits::default(),
            redis: None,
            body: BodyLimits {
                max_bytes: 4 << 20,
                read_timeout: Duration::from_secs(30),
            },
            server: service_common::Limits::default(),
            trusted_proxies: 0,
            api: None,
            local_analytics: false,
            status: status::StatusSources {
                ingest: Some(upstreams.ingest.clone()),
                stream_engine: None,
                analytics: Some(upstreams.analytics.clone()),
            },
            upstreams,
        }
    }
}

struct Gateway {
    services: Vec<Service>,
    status: status::StatusReader,
    verifier: Verifier,
    limiter: Arc<Limiter>,
    http: reqwest::Client,
    body: BodyLimits,
    trusted_proxies: usize,
    local_analytics: bool,
}

impl Gateway {
    fn service(&self, upstream: Upstream) -> &Service {
        self.services
            .iter()
            .find(|s| s.upstream == upstream)
            .expect("a service per upstream")
    }
}

/// The request id header.
pub const REQUEST_ID: &str = "x-request-id";
/// The client's address as the gateway determined it, set on every forwarded request.
pub const CLIENT_IP: &str = "x-real-ip";

/// The gateway cannot be put together.
#[derive(Debug, thiserror::Error)]
pub enum PartError {
    #[error(transparent)]
    Redis(#[from] limits::BadRedisUrl),
    #[error("cannot make the HTTP client toward the services: {0}")]
    Client(String),
}

/// The gateway's routes: what [`build`] serves. Registers its upstream and rate-limit metrics
/// in `registry`; its HTTP metrics are `http_metrics`' families, labelled
/// `service="gateway"` (in a process that also runs the services, beside theirs). Errors for
/// a malformed `REDIS_URL`.
pub fn part(
    config: &Config,
    registry: &mut Registry,
    http_metrics: Arc<HttpMetrics>,
) -> Result<(Router, ReadyCheck), PartError> {
    let metrics = upstream::Metrics::register(registry);
    let services = Upstream::ALL
        .into_iter()
        .map(|u| {
            Service::new(
                u,
                config.upstreams.of(u).to_owned(),
                config.resilience,
                metrics.clone(),
            )
        })
        .collect();
    let limiter = Limiter::new(config.rate_limits.clone(), config.redis.clone(), registry)?;
    let gateway = Arc::new(Gateway {
        services,
        status: status::StatusReader::new(config.status.clone()),
        verifier: Verifier::new(config.verifier.clone()),
        limiter,
        // Answers, redirects included, go back to the caller as they are; no proxy from the
        // environment stands between the gateway and the services.
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(config.resilience.timeout.min(Duration::from_secs(2)))
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(256)
            .build()
            .map_err(|e| PartError::Client(e.to_string()))?,
        body: config.body,
        trusted_proxies: config.trusted_proxies,
        local_analytics: config.local_analytics,
    });
    let mut router = Router::new();
    if let Some(api) = &config.api {
        router = router.merge(
            utoipa_swagger_ui::SwaggerUi::new("/docs").url("/api/v1/openapi.json", api.clone()),
        );
    }
    let router = router
        .merge(dashboard::router())
        .fallback(proxy)
        .with_state(gateway)
        .layer(axum::middleware::from_fn(security_headers))
        .layer(axum::middleware::from_fn_with_state(
            http_metrics.for_service("gateway"),
            service_common::http_metrics::track,
        ))
        .layer(axum::middleware::from_fn(route_label));
    // Ready whatever the services' state: one service down must not take the entry away.
    let ready: ReadyCheck = Arc::new(|| Box::pin(async { Ok(()) }));
    Ok((router, ready))
}

/// The gateway on `config.addr` until `shutdown` resolves.
pub async fn build(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, impl Future<Output = std::io::Result<()>>)> {
    let mut registry = Registry::default();
    let http = HttpMetrics::register(&mut registry);
    let (router, ready) = part(&config, &mut registry, http).map_err(std::io::Error::other)?;
    service_common::serve_with(
        config.addr,
        router,
        Ops::new(registry, ready),
        config.server,
        shutdown,
    )
    .await
}

/// Names a proxied request's route for the metrics and the span: the prefix its service owns
/// (`/api/v1/products`; the path itself would hold ids).
async fn route_label(mut request: Request, next: axum::middleware::Next) -> Response {
    if let Some(route) = route(request.method(), request.uri().path()) {
        request.extensions_mut().insert(RouteLabel(route.pattern));
    }
    next.run(request).await
}

/// The security headers of every answer, where the service did not set its own.
async fn security_headers(request: Request, next: axum::middleware::Next) -> Response {
    let docs = request.uri().path().starts_with("/docs");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let policy = if docs {
        // Swagger UI: its own scripts and styles, inline styles, data: images.
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
         frame-ancestors 'none'"
    } else {
        "default-src 'none'; frame-ancestors 'none'"
    };
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("content-security-policy", policy),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
    ] {
        if !headers.contains_key(name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    response
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

/// Headers that belong to one connection, never forwarded (RFC 9110 §7.6.1). The length goes
/// through: bodies stream unchanged.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
    )
}

fn request_id(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(REQUEST_ID)
        .filter(|v| telemetry::valid_request_id(v.as_bytes()))
        .cloned()
        .unwrap_or_else(telemetry::new_request_id)
}

/// The client's address: the peer's, or with `trusted` proxies in front, the entry they
/// appended to `X-Forwarded-For` (the last `trusted` entries are theirs; the one before is
/// what the first of them saw).
fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted: usize) -> IpAddr {
    if trusted == 0 {
        return peer.ip();
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    hops.len()
        .checked_sub(trusted)
        .and_then(|i| hops.get(i))
        .and_then(|hop| parse_hop(hop))
        .unwrap_or(peer.ip())
}

/// An `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5678`,
/// `[2001:db8::1]:443`) or in brackets, as some balancers write them.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            hop.strip_prefix('[')?
                .strip_suffix(']')?
                .parse::<IpAddr>()
                .ok()
        })
}

/// Whether `path` has no dot segments (`.`, `..`, also percent-encoded) and no backslash: the
/// URL the request is forwarded to would resolve them, so that a path matched against one
/// service's prefix could reach another route of that service (its `/metrics`, say).
fn plain_path(path: &str) -> bool {
    path.split('/').all(|segment| {
        let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
        decoded != "." && decoded != ".." && !segment.contains('\\') && !decoded.contains("%5c")
    })
}

async fn proxy(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    // The request's span (its id and trace id on every log line about it) is the metrics
    // layer's, around this handler.
    let id = request_id(request.headers());
    let started = Instant::now();
    let mut response = handle(&gateway, peer, id.clone(), request).await;
    let status = response.status();
    if status.is_server_error() {
        tracing::warn!(status = status.as_u16(), took = ?started.elapsed(), "answered");
    } else {
        tracing::debug!(status = status.as_u16(), took = ?started.elapsed(), "answered");
    }
    response.headers_mut().insert(REQUEST_ID, id);
    response
}

async fn handle(
    gateway: &Gateway,
    peer: SocketAddr,
    id: HeaderValue,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    if !plain_path(parts.uri.path()) {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_path",
            "a path may not hold `.` or `..` segments or backslashes",
        )
        .into_response();
    }
    let Some(route) = route(&parts.method, parts.uri.path()) else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no route {}", parts.uri.path()),
        )
        .into_response();
    };
    let client = client_ip(peer, &parts.headers, gateway.trusted_proxies);
    let access = if gateway.local_analytics
        && route.class == Class::Analytics
        && peer.ip().is_loopback()
        && gateway.trusted_proxies == 0
    {
        Access::Public
    } else {
        route.access
    };

    // Who is calling (a valid token's claims, or nobody), and whether they may: a token that
    // does not verify is refused where one is needed and ignored where none is.
    let unauthenticated = |response| (None, Some(response));
    let (claims, refusal): (Option<Claims>, Option<Response>) =
        match (bearer(&parts.headers), access) {
            (None, Access::Public) => (None, None),
            (None, _) => unauthenticated(unauthorized("this route needs a bearer token", false)),
            (Some(token), access) => match gateway.verifier.verify(token).await {
                Ok(claims) if access.admits(&claims) => (Some(claims), None),
                Ok(claims) => (
                    Some(claims),
                    Some(
                        ApiError::new(
                            StatusCode::FORBIDDEN,
                            "forbidden",
                            "the token does not carry the role or scope this route needs",
                        )
                        .into_response(),
                    ),
                ),
                Err(_) if access == Access::Public => (None, None),
                Err(AuthError::Invalid(reason)) => unauthenticated(unauthorized(&reason, true)),
                Err(e @ AuthError::KeysUnavailable(_)) => {
                    tracing::warn!(error = %e, "cannot check tokens");
                    unauthenticated(
                        ApiError::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "auth_unavailable",
                            e.to_string(),
                        )
                        .retry_after(1)
                        .into_response(),
                    )
                }
            },
        };
    // Every request counts, refused ones too (against the token's subject, else the address),
    // so that bad or insufficient tokens cannot flood the verifier.
    let (who, principal) = match &claims {
        Some(claims) => (who_is(claims), claims.sub.clone()),
        None => (Who::Anonymous, address_principal(client)),
    };
    let decision = gateway.limiter.check(who, route.class, &principal).await;
    if let Some(refused) = decision.as_ref().filter(|d| !d.allowed) {
        return rate_limited(refused);
    }
    if let Some(refusal) = refusal {
        return refusal;
    }
    if route.upstream == Upstream::Gateway {
        let mut response = axum::Json(gateway.status.status().await).into_response();
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(decision) = &decision {
            limit_headers(response.headers_mut(), decision);
        }
        return response;
    }
    let mut response = forward(gateway, route, parts, body, id, peer, client).await;
    if let Some(decision) = &decision {
        limit_headers(response.headers_mut(), decision);
    }
    response
}

/// A machine client's token carries scopes and no role; any other (a person's, or an external
/// provider's user in no group) is limited as a person's.
fn who_is(claims: &Claims) -> Who {
    if claims.roles.is_empty() && !claims.scope.trim().is_empty() {
        Who::Client
    } else {
        Who::Person
    }
}

fn limit_headers(headers: &mut HeaderMap, decision: &Decision) {
    for (name, value) in [
        ("ratelimit-policy", decision.policy_header()),
        ("ratelimit", decision.state_header()),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
}

fn rate_limited(decision: &Decision) -> Response {
    let mut response = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!(
            "too many requests ({} allows {}/s, bursts of {}); retry in {} s",
            decision.policy,
            decision.rate.per_second,
            decision.rate.burst,
            decision.retry_after_secs
        ),
    )
    .retry_after(u32::try_from(decision.retry_after_secs).unwrap_or(u32::MAX))
    .into_response();
    limit_headers(response.headers_mut(), decision);
    response
}

fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
    )
}

async fn forward(
    gateway: &Gateway,
    route: Route,
    parts: axum::http::request::Parts,
    body: Body,
    id: HeaderValue,
    peer: SocketAddr,
    client: IpAddr,
) -> Response {
    // Read whole before the request takes a slot toward the service (step 3 above).
    let body = match read_body(&parts.headers, body, gateway.body).await {
        Ok(body) => body,
        Err(refused) => return refused.into_response(),
    };
    let service = gateway.service(route.upstream);
    let name = route.upstream.name();
    let attempt = match service.admit() {
        Ok(attempt) => attempt,
        Err(Refusal::Open(wait)) => {
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream_unavailable",
                format!("{name} is failing; the gateway stopped calling it for a moment"),
            )
            .retry_after(u32::try_from(wait.as_secs().max(1)).unwrap_or(1))
            .into_response();
        }
        Err(Refusal::Busy) => {
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream_unavailable",
                format!(
                    "{name} has {} requests in flight already",
                    service.config().max_in_flight
                ),
            )
            .retry_after(1)
            .into_response();
        }
    };

    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let url = format!("{}{path}", service.base_url);
    let mut headers = HeaderMap::with_capacity(parts.headers.len() + 2);
    for (name, value) in &parts.headers {
        if !hop_by_hop(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    headers.insert(REQUEST_ID, id);
    // The call to the service, as a span of its own; the service continues the trace from it
    // (the caller's `traceparent` is replaced by this span's, or forwarded as it came when
    // spans are not exported).
    let call = tracing::info_span!(
        "http.client",
        otel.name = %format_args!("{} {name}", parts.method),
        otel.kind = "client",
        upstream = name,
    );
    call.in_scope(|| telemetry::inject(&mut headers));
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
    // The client as the gateway judged it (through trusted proxies), replacing any the
    // caller sent: what services count per address (failed logins).
    if let Ok(value) = HeaderValue::from_str(&client.to_string()) {
        headers.insert(CLIENT_IP, value);
    }

    let retryable = idempotent(&parts.method);
    let deadline = Instant::now() + service.config().timeout;
    let mut attempts = 0;
    let answered = async {
        loop {
            attempts += 1;
            let sent = gateway
                .http
                .request(parts.method.clone(), &url)
                .headers(headers.clone())
                .body(body.clone())
                .send();
            let outcome = tokio::time::timeout_at(deadline.into(), sent).await;
            let again = retryable
                && attempts < service.config().attempts
                && Instant::now() + Duration::from_millis(50) < deadline;
            match outcome {
                Err(_) => {
                    attempt.finish("timeout", true);
                    return Err(ApiError::new(
                        StatusCode::GATEWAY_TIMEOUT,
                        "upstream_timeout",
                        format!(
                            "{name} did not answer within {:?}",
                            service.config().timeout
                        ),
                    )
                    .into_response());
                }
                Ok(Err(e)) => {
                    if again && service.take_retry() {
                        tracing::debug!(upstream = name, error = %e, "retrying");
                        tokio::time::sleep(jitter()).await;
                        continue;
                    }
                    tracing::warn!(upstream = name, error = %e, "upstream failed");
                    attempt.finish("unavailable", true);
                    return Err(ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "upstream_unavailable",
                        format!("{name} is unavailable"),
                    )
                    .retry_after(1)
                    .into_response());
                }
                Ok(Ok(answered)) => {
                    let status = answered.status();
                    let failing = matches!(status.as_u16(), 502..=504);
                    if failing && again && service.take_retry() {
                        tokio::time::sleep(jitter()).await;
                        continue;
                    }
                    let outcome = if status.is_server_error() {
                        "error"
                    } else {
                        "ok"
                    };
                    attempt.finish(outcome, failing);
                    break Ok(answered);
                }
            }
        }
    }
    .instrument(call)
    .await;

    let answered = match answered {
        Ok(answered) => answered,
        Err(refused) => return refused,
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

/// 10 to 30 ms: a retry soon, but not in step with every other retrying request.
fn jitter() -> Duration {
    let spread = uuid::Uuid::new_v4().as_u128() % 20_000;
    Duration::from_micros(10_000 + spread as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_address_through_trusted_proxies() {
        let peer: SocketAddr = "10.0.0.9:5000".parse().unwrap();
        let mut headers = HeaderMap::new();
        assert_eq!(client_ip(peer, &headers, 1), peer.ip());
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("1.1.1.1, 203.0.113.7"),
        );
        assert_eq!(client_ip(peer, &headers, 0), peer.ip());
        assert_eq!(
            client_ip(peer, &headers, 1),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_ip(peer, &headers, 2),
            "1.1.1.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_ip(peer, &headers, 3), peer.ip());
        for (hop, ip) in [
            ("203.0.113.7:5678", "203.0.113.7"),
            ("[2001:db8::1]:443", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("2001:db8::1", "2001:db8::1"),
        ] {
            assert_eq!(parse_hop(hop), Some(ip.parse().unwrap()), "{hop}");
        }
        assert_eq!(parse_hop("unknown"), None);
    }

    #[test]
    fn dot_segments_are_refused() {
        assert!(plain_path("/api/v1/products/abc"));
        assert!(plain_path("/api/v1/products/a.b..c"));
        for bad in [
            "/api/v1/auth/../metrics",
            "/api/v1/auth/%2e%2e/metrics",
            "/api/v1/auth/%2E./metrics",
            "/api/v1/products/./x",
            "/api/v1/auth/..%5cmetrics",
        ] {
            assert!(!plain_path(bad), "{bad}");
        }
    }

    #[test]
    fn only_idempotent_methods_are_retried() {
        assert!(idempotent(&Method::GET));
        assert!(idempotent(&Method::DELETE));
        assert!(!idempotent(&Method::POST));
        assert!(!idempotent(&Method::PATCH));
    }
}
