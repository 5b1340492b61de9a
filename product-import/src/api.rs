//! The gateway as the importer sees it: a client-credentials token, and batches of products
//! upserted by SKU, retried through 429s, 5xx and dropped connections.

use std::time::{Duration, Instant};

use primitives::retry::Backoff;
use serde::Deserialize;
use tokio::sync::Mutex;
use tracing::Instrument;

/// The batch route, under [`ApiConfig::base_url`].
pub const BATCH_PATH: &str = "/api/v1/products/batch";
/// The token route.
pub const TOKEN_PATH: &str = "/api/v1/auth/token";
/// The longest `Retry-After` honoured as given; a longer one waits this long.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Where the gateway is and who the importer is.
#[derive(Clone)]
pub struct ApiConfig {
    /// The gateway's base URL (`PRODUCT_API_URL`), such as `https://api.example.com`.
    pub base_url: String,
    pub client_id: String,
    pub client_secret: String,
    /// How long one request may take.
    pub request_timeout: Duration,
    /// How long a request is retried without any success before the import fails.
    pub retry_budget: Duration,
    /// Puts the current span's trace context into a request's headers (the callers pass
    /// `service_common::telemetry::inject`; [`no_trace`] sends none), so the catalog continues
    /// the import's trace without this crate depending on the services' plumbing.
    pub trace: fn(&mut reqwest::header::HeaderMap),
}

/// An [`ApiConfig::trace`] that sends no trace context.
pub fn no_trace(_: &mut reqwest::header::HeaderMap) {}

impl std::fmt::Debug for ApiConfig {
    /// Everything but the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field("base_url", &self.base_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("request_timeout", &self.request_timeout)
            .field("retry_budget", &self.retry_budget)
            .finish()
    }
}

/// Why the gateway could not take a batch.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Still failing once the retry budget was spent.
    #[error("the gateway at {url} did not take the request after retrying for {waited:?}: {last}")]
    Unavailable {
        url: String,
        waited: Duration,
        last: String,
    },
    /// An answer no retry changes: bad credentials, a missing scope, a refused request.
    #[error("the gateway refused {url}: {status} {body}")]
    Refused {
        url: String,
        status: u16,
        body: String,
    },
    #[error("the gateway's answer to {url} is not what was expected: {reason}")]
    Unexpected { url: String, reason: String },
}

/// `POST /api/v1/products/batch`'s answer.
#[derive(Debug, Clone, Deserialize)]
pub struct BatchAnswer {
    pub results: Vec<ItemAnswer>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ItemAnswer {
    pub index: usize,
    pub status: ItemStatus,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub fields: Vec<FieldAnswer>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    Created,
    Updated,
    Unchanged,
    Rejected,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FieldAnswer {
    pub field: String,
    pub message: String,
}

#[derive(Debug, Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: u64,
}

/// The gateway, with the importer's token (fetched on first use, again before it expires or
/// when refused).
pub struct ProductApi {
    http: reqwest::Client,
    config: ApiConfig,
    token: Mutex<Option<(String, Instant)>>,
}

/// What one attempt came to.
enum Attempt<T> {
    Done(T),
    /// Worth another try, after at least the given wait.
    Retry(String, Option<Duration>),
    /// The token was refused: fetch another and try again (once).
    Unauthorized(String),
}

impl ProductApi {
    pub fn new(config: ApiConfig) -> Result<ProductApi, ApiError> {
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| ApiError::Unexpected {
                url: config.base_url.clone(),
                reason: e.to_string(),
            })?;
        Ok(ProductApi {
            http,
            config: ApiConfig {
                base_url: config.base_url.trim_end_matches('/').to_owned(),
                ..config
            },
            token: Mutex::new(None),
        })
    }

    /// Upserts one batch: `body` is `{"items": [...]}`. The idempotency key makes a retry of
    /// a request whose answer was lost answer as the first attempt did. Nothing is tried past
    /// `deadline` (a Lambda invocation's, less the time to write the report).
    pub async fn upsert(
        &self,
        body: Vec<u8>,
        idempotency_key: &str,
        deadline: Option<Instant>,
    ) -> Result<BatchAnswer, ApiError> {
        let url = format!("{}{BATCH_PATH}", self.config.base_url);
        let body = bytes::Bytes::from(body);
        let mut refreshed = false;
        let mut backoff = Backoff::new(self.config.retry_budget);
        let started = Instant::now();
        loop {
            let token = self.token(&mut backoff, deadline).await?;
            // Each attempt as a client span; the catalog continues the trace from it.
            let call = tracing::info_span!(
                "http.client",
                otel.name = "POST products batch",
                otel.kind = "client",
            );
            let mut trace = reqwest::header::HeaderMap::new();
            call.in_scope(|| (self.config.trace)(&mut trace));
            let request = self
                .http
                .post(&url)
                .headers(trace)
                .timeout(self.timeout(&url, started, deadline)?)
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .header("idempotency-key", idempotency_key)
                .body(body.clone());
            match attempt(request, &url).instrument(call).await? {
                Attempt::Done(answer) => return parse(&url, &answer),
                Attempt::Unauthorized(reason) => {
                    if refreshed {
                        return Err(ApiError::Refused {
                            url,
                            status: 401,
                            body: reason,
                        });
                    }
                    refreshed = true;
                    *self.token.lock().await = None;
                }
                Attempt::Retry(reason, retry_after) => {
                    wait(&mut backoff, retry_after, &url, started, deadline, reason).await?;
                }
            }
        }
    }

    /// A valid token: the cached one, or a new one from the token endpoint.
    async fn token(
        &self,
        backoff: &mut Backoff,
        deadline: Option<Instant>,
    ) -> Result<String, ApiError> {
        let mut cached = self.token.lock().await;
        if let Some((token, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let url = format!("{}{TOKEN_PATH}", self.config.base_url);
        let started = Instant::now();
        loop {
            let request = self
                .http
                .post(&url)
                .timeout(self.timeout(&url, started, deadline)?)
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", &self.config.client_id),
                    ("client_secret", &self.config.client_secret),
                ]);
            match attempt(request, &url).await? {
                Attempt::Done(answer) => {
                    let answer: TokenAnswer = parse(&url, &answer)?;
                    // Renewed a minute early (or halfway, for short-lived tokens).
                    let life = Duration::from_secs(answer.expires_in.min(24 * 3600));
                    let until = Instant::now()
                        + (life / 2).max(life.saturating_sub(Duration::from_secs(60)));
                    *cached = Some((answer.access_token.clone(), until));
                    return Ok(answer.access_token);
                }
                Attempt::Unauthorized(body) => {
                    return Err(ApiError::Refused {
                        url,
                        status: 401,
                        body: format!("{body} (check the importer's client id and secret)"),
                    });
                }
                Attempt::Retry(reason, retry_after) => {
                    wait(backoff, retry_after, &url, started, deadline, reason).await?;
                }
            }
        }
    }
}

impl ProductApi {
    /// One request's time: the configured limit, or what is left before the deadline.
    fn timeout(
        &self,
        url: &str,
        started: Instant,
        deadline: Option<Instant>,
    ) -> Result<Duration, ApiError> {
        let Some(deadline) = deadline else {
            return Ok(self.config.request_timeout);
        };
        match deadline.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => Ok(left.min(self.config.request_timeout)),
            _ => Err(ApiError::Unavailable {
                url: url.to_owned(),
                waited: started.elapsed(),
                last: "no time was left before the deadline".to_owned(),
            }),
        }
    }
}

/// Sends one request: 2xx is done; 401 asks for a new token; 408, 429, 5xx and transport
/// errors are retried; any other status is refused for good.
async fn attempt(
    request: reqwest::RequestBuilder,
    url: &str,
) -> Result<Attempt<Vec<u8>>, ApiError> {
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) => return Ok(Attempt::Retry(error_chain(&e), None)),
    };
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
    let body = match response.bytes().await {
        Ok(body) => body.to_vec(),
        Err(e) => return Ok(Attempt::Retry(error_chain(&e), retry_after)),
    };
    let text = || String::from_utf8_lossy(&body[..body.len().min(2048)]).into_owned();
    Ok(match status.as_u16() {
        200..=299 => Attempt::Done(body),
        401 => Attempt::Unauthorized(text()),
        408 | 429 | 500..=599 => Attempt::Retry(format!("{status} {}", text()), retry_after),
        code => {
            return Err(ApiError::Refused {
                url: url.to_owned(),
                status: code,
                body: text(),
            });
        }
    })
}

/// Waits before the next attempt: the backoff's delay, or the server's `Retry-After` when
/// longer; fails once the budget is spent, or when the wait would end past the deadline.
async fn wait(
    backoff: &mut Backoff,
    retry_after: Option<Duration>,
    url: &str,
    started: Instant,
    deadline: Option<Instant>,
    last: String,
) -> Result<(), ApiError> {
    let give_up = |last: String| ApiError::Unavailable {
        url: url.to_owned(),
        waited: started.elapsed(),
        last,
    };
    let Some(delay) = backoff.next_delay() else {
        return Err(give_up(last));
    };
    let delay = delay.max(retry_after.unwrap_or_default());
    if deadline.is_some_and(|d| Instant::now() + delay >= d) {
        return Err(give_up(format!("{last}; no time left before the deadline")));
    }
    tracing::debug!(url, ?delay, reason = %last, "retrying");
    tokio::time::sleep(delay).await;
    Ok(())
}

fn parse<T: serde::de::DeserializeOwned>(url: &str, body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::Unexpected {
        url: url.to_owned(),
        reason: e.to_string(),
    })
}

/// An error and its causes, each after a colon.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A closed port: every attempt is refused at once and retried, until the deadline.
    #[tokio::test]
    async fn nothing_is_tried_past_the_deadline() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let api = ProductApi::new(ApiConfig {
            base_url: format!("http://127.0.0.1:{port}/"),
            client_id: "importer".into(),
            client_secret: "secret".into(),
            request_timeout: Duration::from_secs(30),
            retry_budget: Duration::from_secs(600),
            trace: no_trace,
        })
        .unwrap();
        let started = Instant::now();
        let deadline = Instant::now() + Duration::from_millis(500);
        let error = api
            .upsert(b"{\"items\":[]}".to_vec(), "key", Some(deadline))
            .await
            .unwrap_err();
        assert!(matches!(error, ApiError::Unavailable { .. }), "{error}");
        assert!(error.to_string().contains("deadline"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(
            !format!("{:?}", api.config).contains("\"secret\""),
            "the secret is not shown"
        );
    }
}
