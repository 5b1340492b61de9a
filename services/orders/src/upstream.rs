//! The services orders asks while creating an order: the catalog for prices, customers for
//! the buyer. Each request has a timeout; a service that is down or slow fails the order
//! (503 / 504) before anything is stored.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt, stream};
use service_common::rest::money::Money;
use tracing::Instrument;

/// Product lookups one order runs at once.
const LOOKUPS_AT_ONCE: usize = 8;

/// Where the other services are.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// The catalog's base URL (`CATALOG_URL`), such as `http://catalog:8082`.
    pub catalog_url: String,
    /// The customers service's base URL (`CUSTOMERS_URL`).
    pub customers_url: String,
    /// How long one request may take.
    pub timeout: Duration,
}

/// Why an upstream could not answer.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("the {service} service is unavailable: {reason}")]
    Unavailable {
        service: &'static str,
        reason: String,
    },
    #[error("the {service} service did not answer within {timeout:?}")]
    Timeout {
        service: &'static str,
        timeout: Duration,
    },
}

/// The HTTP client of the upstreams.
#[derive(Debug, Clone)]
pub struct Upstreams {
    http: reqwest::Client,
    config: UpstreamConfig,
}

impl Upstreams {
    pub fn new(config: UpstreamConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .build()
            .unwrap_or_default();
        let trim = |url: &str| url.trim_end_matches('/').to_owned();
        Upstreams {
            http,
            config: UpstreamConfig {
                catalog_url: trim(&config.catalog_url),
                customers_url: trim(&config.customers_url),
                timeout: config.timeout,
            },
        }
    }

    /// The body of `GET url` as JSON, `None` on 404.
    async fn get(
        &self,
        service: &'static str,
        url: String,
    ) -> Result<Option<serde_json::Value>, UpstreamError> {
        let failed = |e: reqwest::Error| {
            if e.is_timeout() {
                UpstreamError::Timeout {
                    service,
                    timeout: self.config.timeout,
                }
            } else {
                UpstreamError::Unavailable {
                    service,
                    reason: e.to_string(),
                }
            }
        };
        // The call as a client span; the service continues the trace from it.
        let call = tracing::info_span!(
            "http.client",
            otel.name = %format_args!("GET {service}"),
            otel.kind = "client",
            upstream = service,
        );
        let mut headers = reqwest::header::HeaderMap::new();
        call.in_scope(|| service_common::telemetry::inject(&mut headers));
        async {
            let response = self
                .http
                .get(&url)
                .headers(headers)
                .send()
                .await
                .map_err(failed)?;
            match response.status() {
                reqwest::StatusCode::NOT_FOUND => Ok(None),
                s if s.is_success() => response.json().await.map(Some).map_err(failed),
                s => Err(UpstreamError::Unavailable {
                    service,
                    reason: format!("GET {url} answered {s}"),
                }),
            }
        }
        .instrument(call)
        .await
    }

    /// Whether the customer exists.
    pub async fn customer_exists(&self, id: &str) -> Result<bool, UpstreamError> {
        if !service_db::is_id(id) {
            return Ok(false);
        }
        let url = format!("{}/api/v1/customers/{id}", self.config.customers_url);
        Ok(self.get("customers", url).await?.is_some())
    }

    /// The product's current price; `None` when the catalog does not know it.
    async fn price(self, id: String) -> Result<(String, Option<Money>), UpstreamError> {
        if !service_db::is_id(&id) {
            return Ok((id, None));
        }
        let url = format!("{}/api/v1/products/{id}", self.config.catalog_url);
        let Some(product) = self.get("catalog", url).await? else {
            return Ok((id, None));
        };
        let price = product
            .get("price")
            .cloned()
            .and_then(|p| serde_json::from_value::<Money>(p).ok())
            .ok_or_else(|| UpstreamError::Unavailable {
                service: "catalog",
                reason: format!("product {id} has no readable price"),
            })?;
        Ok((id, Some(price)))
    }

    /// The current price of every product, or the ids the catalog does not know.
    pub async fn prices(
        &self,
        ids: &[&str],
    ) -> Result<Result<HashMap<String, Money>, Vec<String>>, UpstreamError> {
        // Owned futures: borrowed ones trip the compiler's proof that the handler is Send.
        let lookups: Vec<_> = ids
            .iter()
            .map(|id| self.clone().price((*id).to_owned()))
            .collect();
        // A few at a time: an order of a hundred products must not take a hundred of the
        // catalog's connections (or, in `ecom up`, of its own server's).
        let found: Vec<(String, Option<Money>)> = stream::iter(lookups)
            .buffer_unordered(LOOKUPS_AT_ONCE)
            .try_collect()
            .await?;
        let unknown: Vec<String> = found
            .iter()
            .filter(|(_, price)| price.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        if !unknown.is_empty() {
            return Ok(Err(unknown));
        }
        Ok(Ok(found
            .into_iter()
            .filter_map(|(id, price)| price.map(|p| (id, p)))
            .collect()))
    }
}
