//! The one token verifier: a JWT is accepted when it is signed (EdDSA or RS256) by a key of
//! the configured JWKS URL, names the configured issuer and audience, and has not expired.
//! Everything that checks tokens (the gateway, and services for ownership rules) uses it; the
//! JWKS may be the `auth` service's or an external provider's (Amazon Cognito: its ID tokens
//! name the app client in `aud`, its access tokens in `client_id`, and both carry groups in
//! `cognito:groups`, read as roles), nothing else changes.
//!
//! Keys are cached; an unknown `kid` refetches the set (at most once per
//! [`REFETCH_INTERVAL`]), so a rotated-in key is picked up at its first use and a rotated-out
//! one stops verifying once it leaves the set.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;

/// The shortest time between two fetches of the key set.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(5);

/// Where the keys are, and what a token must say.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// Such as `http://auth:8081/.well-known/jwks.json`, or a Cognito pool's JWKS.
    pub jwks_url: String,
    pub issuer: String,
    pub audience: String,
}

/// The claims this platform reads from a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// A person's customer id (or the administrator's user id), or a machine client's id.
    pub sub: String,
    pub exp: u64,
    pub iat: u64,
    pub jti: String,
    /// `admin`, `customer`.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Space-separated machine scopes, as OAuth2 has them (`catalog:write analytics:read`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
}

impl Claims {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.split_whitespace().any(|s| s == scope)
    }
}

/// A token's claims as providers write them: ours, and Amazon Cognito's, whose access tokens
/// carry the app client in `client_id` instead of `aud` and groups in `cognito:groups`.
#[derive(Deserialize)]
struct WireClaims {
    iss: String,
    #[serde(default)]
    aud: Option<Audience>,
    sub: String,
    exp: u64,
    #[serde(default)]
    iat: u64,
    #[serde(default)]
    jti: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default, rename = "cognito:groups")]
    groups: Vec<String>,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    client_id: Option<String>,
}

/// `aud` is a string or an array of them (RFC 7519 §4.1.3).
#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl WireClaims {
    /// The claims, when the token is meant for `audience`: in `aud`, or, without one, as the
    /// `client_id` of a Cognito access token.
    fn for_audience(self, audience: &str) -> Result<Claims, AuthError> {
        let meant = match &self.aud {
            Some(Audience::One(aud)) => aud == audience,
            Some(Audience::Many(auds)) => auds.iter().any(|a| a == audience),
            None => self.client_id.as_deref() == Some(audience),
        };
        if !meant {
            return Err(AuthError::Invalid(
                "the token is for another audience".into(),
            ));
        }
        let mut roles = self.roles;
        roles.extend(self.groups);
        Ok(Claims {
            iss: self.iss,
            aud: audience.to_owned(),
            sub: self.sub,
            exp: self.exp,
            iat: self.iat,
            jti: self.jti,
            roles,
            scope: self.scope,
        })
    }
}

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Not signed by a known key, expired, wrong issuer or audience, malformed, `alg: none`...
    #[error("invalid token: {0}")]
    Invalid(String),
    /// The key set could not be fetched, and the token's key is not cached.
    #[error("the token's keys are unavailable: {0}")]
    KeysUnavailable(String),
}

struct Cache {
    keys: HashMap<String, (Algorithm, DecodingKey)>,
    fetched: Option<Instant>,
    /// Why the last fetch failed, if it did.
    failure: Option<String>,
}

/// Verifies tokens against a JWKS URL.
pub struct Verifier {
    config: VerifierConfig,
    http: reqwest::Client,
    cache: RwLock<Cache>,
    /// Held while the key set is fetched: one fetch at a time.
    fetching: tokio::sync::Mutex<()>,
}

impl Verifier {
    pub fn new(config: VerifierConfig) -> Self {
        Verifier {
            config,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            cache: RwLock::new(Cache {
                keys: HashMap::new(),
                fetched: None,
                failure: None,
            }),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    /// The token's claims, if it is valid now.
    pub async fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let header = decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
        // Only asymmetric signatures: `none` never parses, and an HMAC "signed" with a public
        // key is refused here.
        if !matches!(header.alg, Algorithm::EdDSA | Algorithm::RS256) {
            return Err(AuthError::Invalid(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| AuthError::Invalid("the token names no key (kid)".into()))?;
        let (alg, key) = self.key(&kid).await?;
        if alg != header.alg {
            return Err(AuthError::Invalid(
                "the token's algorithm is not its key's".into(),
            ));
        }
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[&self.config.issuer]);
        // The audience is checked below: a Cognito access token names it in `client_id`.
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = 30;
        decode::<WireClaims>(token, &key, &validation)
            .map_err(|e| AuthError::Invalid(e.to_string()))?
            .claims
            .for_audience(&self.config.audience)
    }

    async fn key(&self, kid: &str) -> Result<(Algorithm, DecodingKey), AuthError> {
        if let Some(found) = self.cache.read().await.keys.get(kid) {
            return Ok(found.clone());
        }
        // One fetch at a time, outside the cache's lock: tokens whose keys are cached keep
        // verifying while a slow key server is asked.
        let _fetching = self.fetching.lock().await;
        {
            let cache = self.cache.read().await;
            if let Some(found) = cache.keys.get(kid) {
                return Ok(found.clone());
            }
            // An attempt counts, failed or not: tokens with unknown keys must not turn into a
            // stream of fetches against a key server that is down. Until the next attempt, a
            // failure is the answer (the key may well exist), not "unknown key".
            if cache
                .fetched
                .is_some_and(|at| at.elapsed() < REFETCH_INTERVAL)
            {
                return Err(match &cache.failure {
                    Some(reason) => AuthError::KeysUnavailable(reason.clone()),
                    None => AuthError::Invalid(format!("unknown key {kid:?}")),
                });
            }
        }
        let fetched = self.fetch().await;
        let mut cache = self.cache.write().await;
        cache.fetched = Some(Instant::now());
        match fetched {
            Ok(keys) => {
                cache.keys = keys;
                cache.failure = None;
            }
            Err(e) => {
                cache.failure = Some(match &e {
                    AuthError::KeysUnavailable(reason) | AuthError::Invalid(reason) => {
                        reason.clone()
                    }
                });
                return Err(e);
            }
        }
        cache
            .keys
            .get(kid)
            .cloned()
            .ok_or_else(|| AuthError::Invalid(format!("unknown key {kid:?}")))
    }

    async fn fetch(&self) -> Result<HashMap<String, (Algorithm, DecodingKey)>, AuthError> {
        let unavailable = |e: reqwest::Error| AuthError::KeysUnavailable(e.to_string());
        let set: JwkSet = self
            .http
            .get(&self.config.jwks_url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(unavailable)?
            .json()
            .await
            .map_err(unavailable)?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let (Some(kid), Ok(key)) = (jwk.common.key_id.clone(), DecodingKey::from_jwk(jwk))
            else {
                continue;
            };
            let alg = match &jwk.algorithm {
                jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
                jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Algorithm::RS256,
                _ => continue,
            };
            keys.insert(kid, (alg, key));
        }
        Ok(keys)
    }
}

/// The bearer token of an `Authorization` header.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Who is calling a service, for its ownership rules. Services sit behind the gateway, which
/// lets no request without a valid token reach a route that needs one; a request without a
/// token is therefore another service's (registration creating a customer record, orders
/// asking for a customer) and is trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// Another service (no token).
    Service,
    /// The bearer of a valid token.
    Token(Claims),
}

impl Caller {
    /// The caller of a request: a token is verified (401 `unauthorized` when invalid).
    pub async fn of(
        verifier: Option<&Verifier>,
        headers: &axum::http::HeaderMap,
    ) -> Result<Caller, crate::ApiError> {
        let (Some(verifier), Some(token)) = (verifier, bearer(headers)) else {
            return Ok(Caller::Service);
        };
        match verifier.verify(token).await {
            Ok(claims) => Ok(Caller::Token(claims)),
            Err(AuthError::Invalid(reason)) => Err(crate::ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "unauthorized",
                reason,
            )),
            Err(e @ AuthError::KeysUnavailable(_)) => Err(crate::ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "auth_unavailable",
                e.to_string(),
            )
            .retry_after(1)),
        }
    }

    /// The customer this caller is limited to: `Some(id)` for a customer's token, `None` for
    /// an administrator or another service (no limit).
    pub fn customer(&self) -> Option<&str> {
        match self {
            Caller::Token(claims) if !claims.has_role("admin") => Some(&claims.sub),
            _ => None,
        }
    }

    /// Whether the caller may see or change what belongs to `customer_id`.
    pub fn owns(&self, customer_id: &str) -> bool {
        self.customer().is_none_or(|own| own == customer_id)
    }

    /// An administrator or another service.
    pub fn is_privileged(&self) -> bool {
        self.customer().is_none()
    }
}

/// The verifier a service checks callers' tokens with (none: every caller is trusted, as in
/// tests of a service alone). Put it in the router's state (`FromRef`) to extract [`Caller`].
#[derive(Clone, Default)]
pub struct Tokens(pub Option<std::sync::Arc<Verifier>>);

impl Tokens {
    pub fn new(config: Option<VerifierConfig>) -> Self {
        Tokens(config.map(|c| std::sync::Arc::new(Verifier::new(c))))
    }
}

impl<S> axum::extract::FromRequestParts<S> for Caller
where
    S: Send + Sync,
    Tokens: axum::extract::FromRef<S>,
{
    type Rejection = crate::ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, crate::ApiError> {
        let tokens = <Tokens as axum::extract::FromRef<S>>::from_ref(state);
        Caller::of(tokens.0.as_deref(), &parts.headers).await
    }
}
