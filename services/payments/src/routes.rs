//! The HTTP handlers: read-only views of the payments, by the ownership rules.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use service_common::ApiError;
use service_common::auth::{Caller, Tokens};
use service_common::docs::{ErrorBody, ErrorDetail};
use service_common::http_metrics::{HttpMetrics, track};
use service_common::rest::{not_found, query, text_parameter};
use service_db::Db;

use crate::PAYMENTS;
use crate::payment::{Amount, Payment, Payments, Status};
use crate::repo::{self, Filter};

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct Api {
    pub db: Db,
    pub tokens: Tokens,
}

impl axum::extract::FromRef<Api> for Tokens {
    fn from_ref(api: &Api) -> Tokens {
        api.tokens.clone()
    }
}

pub(crate) fn router(api: Api, http: Arc<HttpMetrics>) -> Router {
    Router::new()
        .route(PAYMENTS, get(list))
        .route("/api/v1/payments/{id}", get(read))
        .with_state(api)
        .layer(axum::middleware::from_fn_with_state(
            http.for_service("payments"),
            track,
        ))
}

/// A payment by id.
#[utoipa::path(
    operation_id = "get_payment",
    get,
    path = "/api/v1/payments/{id}",
    params(("id" = String, Path, description = "The payment's id")),
    responses(
        (status = 200, description = "The payment", body = Payment),
        (status = 401, description = "The token is not valid", body = ErrorBody),
        (status = 404, description = "No such payment (or another customer's)", body = ErrorBody),
        (status = 503, description = "The database did not answer", body = ErrorBody),
    ),
    tag = "payments"
)]
async fn read(
    State(api): State<Api>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Payment>, ApiError> {
    if !service_db::is_id(&id) {
        return Err(not_found("payment", &id));
    }
    repo::get(&api.db, &id)
        .await?
        .filter(|payment| caller.owns(&payment.customer_id))
        .map(Json)
        .ok_or_else(|| not_found("payment", &id))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    order_id: Option<String>,
    customer_id: Option<String>,
}

/// Payments, newest first: an order's, a customer's, or all.
#[utoipa::path(
    operation_id = "list_payments",
    get,
    path = "/api/v1/payments",
    params(
        ("order_id" = Option<String>, Query, description = "Only this order's (it has at most one)"),
        ("customer_id" = Option<String>, Query, description = "Only this customer's (a customer's token sees only their own whatever this says)"),
    ),
    responses(
        (status = 200, description = "At most 100 payments, newest first", body = Payments),
        (status = 400, description = "A parameter is invalid or unknown (`invalid_parameter`)", body = ErrorBody),
        (status = 401, description = "The token is not valid", body = ErrorBody),
        (status = 503, description = "The database did not answer", body = ErrorBody),
    ),
    tag = "payments"
)]
async fn list(
    State(api): State<Api>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<Payments>, ApiError> {
    let params: ListQuery = query(raw.as_deref())?;
    let mut filter = Filter {
        order_id: text_parameter("order_id", params.order_id, 128)?,
        customer_id: text_parameter("customer_id", params.customer_id, 128)?,
    };
    if let Some(own) = caller.customer() {
        if filter
            .customer_id
            .as_deref()
            .is_some_and(|asked| asked != own)
        {
            return Ok(Json(Payments { items: Vec::new() }));
        }
        filter.customer_id = Some(own.to_owned());
    }
    let items = repo::list(&api.db, &filter).await?;
    Ok(Json(Payments { items }))
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "ecom payments", description = "Charges and refunds of the orders through a payment provider, at most one charge per order."),
    paths(read, list),
    components(schemas(Payment, Payments, Amount, Status, ErrorBody, ErrorDetail)),
    tags((name = "payments", description = "Payments"))
)]
struct ApiDoc;

/// The service's API description.
pub fn openapi() -> utoipa::openapi::OpenApi {
    <ApiDoc as utoipa::OpenApi>::openapi()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_description_has_both_routes_and_the_payment_schema() {
        let doc = openapi();
        assert!(doc.paths.paths.contains_key("/api/v1/payments"));
        assert!(doc.paths.paths.contains_key("/api/v1/payments/{id}"));
        let schemas = &doc.components.as_ref().expect("components").schemas;
        for name in [
            "Payment",
            "Payments",
            "Amount",
            "PaymentStatus",
            "ErrorBody",
        ] {
            assert!(schemas.contains_key(name), "{name}");
        }
    }
}
