//! The HTTP handlers of identity.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde::{Deserialize, Serialize};
use service_common::ApiError;
use service_common::auth::Claims;
use service_common::docs::{ErrorBody, ErrorDetail};
use service_common::http_metrics::{HttpMetrics, track};
use service_common::rest::{BodyLimits, FieldError, Invalid, JsonBody, parse_json, read_body};
use sqlx::Row;
use utoipa::ToSchema;

use crate::{Identity, passwords};

type Shared = State<Arc<Identity>>;

pub fn router(identity: Arc<Identity>, http: Arc<HttpMetrics>) -> Router {
    Router::new()
        .route("/api/v1/auth/register", post(register))
        .route("/api/v1/auth/token", post(token))
        .route("/.well-known/jwks.json", get(jwks))
        .with_state(identity)
        .layer(axum::middleware::from_fn_with_state(
            http.for_service("auth"),
            track,
        ))
}

/// `POST /api/v1/auth/register`'s body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// The login, unique in any case.
    pub email: String,
    /// At least 12 characters, not on lists of breached passwords.
    pub password: String,
    pub name: String,
}

/// The new account.
#[derive(Debug, Serialize, ToSchema)]
pub struct Registered {
    /// The customer record's id: the `sub` of this account's tokens.
    pub customer_id: String,
    pub email: String,
    pub name: String,
}

fn upstream(e: reqwest::Error) -> ApiError {
    tracing::warn!(error = %e, "the customers service failed during a registration");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "upstream_unavailable",
        "the customers service did not answer; retry",
    )
    .retry_after(1)
}

/// Creates a customer account: the customer record (in the customers service) and the login.
#[utoipa::path(
    post,
    path = "/api/v1/auth/register",
    operation_id = "register",
    request_body = Registration,
    responses(
        (status = 201, description = "Registered; get a token with the password grant", body = Registered),
        (status = 400, description = "A weak password, or a field is invalid (`fields` lists them)", body = ErrorBody),
        (status = 409, description = "The email has an account (`email_taken`)", body = ErrorBody),
        (status = 503, description = "The customers service or the database did not answer", body = ErrorBody),
    ),
    tag = "identity"
)]
async fn register(
    State(identity): Shared,
    JsonBody(input): JsonBody<Registration>,
) -> Result<Response, ApiError> {
    if let Some(problem) = passwords::weakness(&input.password) {
        let mut invalid = Invalid::default();
        invalid.push("password", "weak_password", problem);
        return Err(invalid.into());
    }
    let username = input.email.trim().to_lowercase();
    if username == "admin" {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "email_taken",
            "this login is taken",
        ));
    }
    // The customer record first, under a key of the email: a retry after a failure below
    // finds the same record instead of a conflict.
    let response = identity
        .http
        .post(format!("{}/api/v1/customers", identity.customers_url))
        .header("idempotency-key", format!("auth-register:{username}"))
        .json(&serde_json::json!({"name": input.name, "email": input.email}))
        .send()
        .await
        .map_err(upstream)?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.map_err(upstream)?;
    let code = body["error"]["code"].as_str().unwrap_or("");
    match status.as_u16() {
        201 => {}
        400 => {
            // The customer's own checks, passed on (field names are the same).
            let fields: Vec<FieldError> = body["fields"]
                .as_array()
                .map(|fields| {
                    fields
                        .iter()
                        .map(|f| {
                            FieldError::new(
                                f["field"].as_str().unwrap_or(""),
                                "invalid_value",
                                f["message"].as_str().unwrap_or("is invalid"),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            return Err(Invalid(fields).into());
        }
        409 | 422 => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "email_taken",
                "this email has an account",
            ));
        }
        _ => {
            tracing::warn!(%status, code, "the customers service refused a registration");
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream_unavailable",
                "the customers service did not take the registration; retry",
            )
            .retry_after(1));
        }
    }
    let customer_id = body["id"].as_str().unwrap_or_default().to_owned();
    let hash = passwords::hash(input.password)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    let inserted = sqlx::query(
        "INSERT INTO users (id, username, name, password_hash, role, subject, created_at) \
         VALUES ($1, $2, $3, $4, 'customer', $5, $6) ON CONFLICT (username) DO NOTHING",
    )
    .bind(service_db::new_id())
    .bind(&username)
    .bind(&input.name)
    .bind(hash)
    .bind(&customer_id)
    .bind(service_db::now_us())
    .execute(identity.db.pool())
    .await
    .map_err(service_db::DbError::from)?;
    if inserted.rows_affected() == 0 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "email_taken",
            "this email has an account",
        ));
    }
    let registered = Registered {
        customer_id: customer_id.clone(),
        email: input.email,
        name: input.name,
    };
    let mut response = (StatusCode::CREATED, Json(registered)).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/api/v1/customers/{customer_id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// A token request, as a form or as JSON (OAuth2, RFC 6749 §4.3 and §4.4).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct TokenRequest {
    /// `password` or `client_credentials`.
    pub grant_type: String,
    /// The email, or `admin` (password grant).
    pub username: Option<String>,
    pub password: Option<String>,
    /// Client credentials (or HTTP Basic).
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// The scopes wanted (client credentials; default: all of the client's).
    pub scope: Option<String>,
}

/// An issued token.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// The machine scopes granted (client credentials).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

fn invalid_grant() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "the username or password is wrong",
    )
}

fn invalid_client() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "the client id or secret is wrong",
    )
}

/// Issues a token: the password grant for people, client credentials for machines.
#[utoipa::path(
    post,
    path = "/api/v1/auth/token",
    operation_id = "token",
    request_body(content(
        (TokenRequest = "application/x-www-form-urlencoded"),
        (TokenRequest = "application/json"),
    )),
    responses(
        (status = 200, description = "A token (`Cache-Control: no-store`)", body = TokenResponse),
        (status = 400, description = "`invalid_grant` (wrong username or password), `unsupported_grant_type`, `invalid_scope`, or a malformed request", body = ErrorBody),
        (status = 401, description = "`invalid_client`: wrong client id or secret", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`: too many failures for this account or address; `Retry-After` says when to try again", body = ErrorBody),
        (status = 503, description = "The database did not answer", body = ErrorBody),
    ),
    tag = "identity"
)]
async fn token(
    State(identity): Shared,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_body(
        &headers,
        body,
        BodyLimits {
            max_bytes: 16 << 10,
            ..BodyLimits::default()
        },
    )
    .await?;
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    let mut request: TokenRequest = if form {
        serde_urlencoded::from_bytes(&bytes).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("the form cannot be read: {e}"),
            )
        })?
    } else {
        parse_json(&bytes)?
    };
    if let Some((id, secret)) = basic_credentials(&headers) {
        request.client_id = Some(id);
        request.client_secret = Some(secret);
    }
    let (claims, scope) = match request.grant_type.as_str() {
        "password" => (
            password_grant(&identity, &request, &client_address(&headers, peer)).await?,
            None,
        ),
        "client_credentials" => {
            let (claims, scope) = client_grant(&identity, &request).await?;
            (claims, Some(scope))
        }
        other => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                format!("grant_type {other:?} is not password or client_credentials"),
            ));
        }
    };
    let access_token = identity.keys.sign(&claims).await?;
    let answer = TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: identity.tokens.ttl.as_secs(),
        scope,
    };
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(answer)).into_response())
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let (id, secret) = String::from_utf8(decoded)
        .ok()?
        .split_once(':')
        .map(|(a, b)| (a.to_owned(), b.to_owned()))?;
    Some((id, secret))
}

fn claims(identity: &Identity, sub: String, roles: Vec<String>, scope: String) -> Claims {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Claims {
        iss: identity.tokens.issuer.clone(),
        aud: identity.tokens.audience.clone(),
        sub,
        exp: now + identity.tokens.ttl.as_secs(),
        iat: now,
        jti: uuid::Uuid::new_v4().simple().to_string(),
        roles,
        scope,
    }
}

/// The caller's address for counting failures: the gateway's `X-Real-IP` (the service is
/// reached only through the gateway, which always sets it and drops the caller's), else the
/// peer (a direct call, as in tests of the service alone).
fn client_address(headers: &HeaderMap, peer: SocketAddr) -> String {
    headers
        .get("x-real-ip")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<std::net::IpAddr>().ok())
        .unwrap_or(peer.ip())
        .to_string()
}

async fn password_grant(
    identity: &Identity,
    request: &TokenRequest,
    address: &str,
) -> Result<Claims, ApiError> {
    let (Some(username), Some(password)) = (&request.username, &request.password) else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "username and password are required",
        ));
    };
    let account = username.trim().to_lowercase();
    if let Some(seconds) = identity.throttle.refused(&account, address) {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            "too many failed logins; try again later",
        )
        .retry_after(seconds as u32));
    }
    let row = sqlx::query("SELECT password_hash, role, subject FROM users WHERE username = $1")
        .bind(&account)
        .fetch_optional(identity.db.pool())
        .await
        .map_err(service_db::DbError::from)?;
    let user = match &row {
        Some(row) => {
            let get = |name: &str| {
                row.try_get::<String, _>(name)
                    .map_err(service_db::DbError::from)
            };
            let (hash, role, subject) = (get("password_hash")?, get("role")?, get("subject")?);
            passwords::verify(password.clone(), hash)
                .await
                .then_some((role, subject))
        }
        // An unknown account costs a hash too, so that timing does not tell accounts apart.
        None => {
            passwords::verify_nothing(password.clone()).await;
            None
        }
    };
    match user {
        Some((role, subject)) => {
            identity.throttle.succeeded(&account);
            Ok(claims(identity, subject, vec![role], String::new()))
        }
        _ => {
            tokio::time::sleep(identity.throttle.failed(&account, address)).await;
            Err(invalid_grant())
        }
    }
}

async fn client_grant(
    identity: &Identity,
    request: &TokenRequest,
) -> Result<(Claims, String), ApiError> {
    let (Some(id), Some(secret)) = (&request.client_id, &request.client_secret) else {
        return Err(invalid_client());
    };
    let row = sqlx::query("SELECT secret_hash, scopes FROM clients WHERE id = $1")
        .bind(id)
        .fetch_optional(identity.db.pool())
        .await
        .map_err(service_db::DbError::from)?;
    let Some(row) = row else {
        passwords::verify_nothing(secret.clone()).await;
        return Err(invalid_client());
    };
    let hash: String = row
        .try_get("secret_hash")
        .map_err(service_db::DbError::from)?;
    let allowed: String = row.try_get("scopes").map_err(service_db::DbError::from)?;
    if !passwords::verify(secret.clone(), hash).await {
        return Err(invalid_client());
    }
    let scope = match &request.scope {
        None => allowed.clone(),
        Some(wanted) => {
            let granted: Vec<&str> = wanted.split_whitespace().collect();
            if let Some(extra) = granted
                .iter()
                .find(|s| !allowed.split_whitespace().any(|a| a == **s))
            {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    format!("the client may not have {extra:?}"),
                ));
            }
            granted.join(" ")
        }
    };
    Ok((
        claims(identity, id.clone(), Vec::new(), scope.clone()),
        scope,
    ))
}

/// The keys that verify tokens.
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    operation_id = "jwks",
    responses((status = 200, description = "A JSON Web Key Set (RFC 7517): Ed25519 keys, each with its `kid`", body = serde_json::Value)),
    tag = "identity"
)]
async fn jwks(State(identity): Shared) -> Response {
    // A key another replica rotated in is published within seconds, so that a verifier that
    // meets its first token finds it.
    if let Err(e) = identity.keys.reload_if_older(Duration::from_secs(2)).await {
        tracing::warn!(error = %e, "signing keys not reloaded; serving the last ones read");
    }
    let mut response = Json(identity.keys.jwks().await).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    response
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "ecom auth", description = "Accounts and tokens."),
    paths(register, token, jwks),
    components(schemas(Registration, Registered, TokenRequest, TokenResponse, FieldError, ErrorBody, ErrorDetail)),
    tags((name = "identity", description = "Accounts and tokens"))
)]
struct ApiDoc;

/// The service's API description.
pub fn openapi() -> utoipa::openapi::OpenApi {
    <ApiDoc as utoipa::OpenApi>::openapi()
}
