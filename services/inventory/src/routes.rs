//! The HTTP handlers: parse and check, call [`crate::repo`], map its errors.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use service_common::ApiError;
use service_common::auth::{Caller, Tokens};
use service_common::docs::{ErrorBody, ErrorDetail};
use service_common::http_metrics::{HttpMetrics, track};
use service_common::rest::{
    FieldError, IfMatch, Invalid, JsonBody, created, from_value, precondition_failed, query, tagged,
};
use service_db::Db;
use tokio::sync::Notify;
use utoipa::ToSchema;

use crate::INVENTORY;
use crate::repo::{self, Expect, SetError};
use crate::stock::{OnHand, Stock, StockInput, is_product_id};

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct Inventory {
    pub db: Db,
    pub tokens: Tokens,
    pub threshold: i64,
    /// The relay's waker: a change staged `StockChanged` (and maybe `StockLow`).
    pub relay: Arc<Notify>,
}

impl axum::extract::FromRef<Inventory> for Tokens {
    fn from_ref(inventory: &Inventory) -> Tokens {
        inventory.tokens.clone()
    }
}

pub(crate) fn router(inventory: Inventory, http: Arc<HttpMetrics>) -> Router {
    Router::new()
        .route(INVENTORY, get(list))
        .route("/api/v1/inventory/{product_id}", get(read).put(put))
        .with_state(inventory)
        .layer(axum::middleware::from_fn_with_state(
            http.for_service("inventory"),
            track,
        ))
}

const PRODUCT_ID_RULE: &str = "must be 1 to 64 of A-Z, a-z, 0-9, '.', '_' and '-'";

impl From<SetError> for ApiError {
    fn from(e: SetError) -> Self {
        match e {
            SetError::ProductId(_) => {
                let mut invalid = Invalid::default();
                invalid.push("product_id", "invalid_format", PRODUCT_ID_RULE);
                invalid.into()
            }
            SetError::OutOfRange(_) => {
                let mut invalid = Invalid::default();
                invalid.push(
                    "on_hand",
                    "out_of_range",
                    format!("must be from 0 to {}", crate::stock::MAX_ON_HAND),
                );
                invalid.into()
            }
            SetError::PreconditionRequired { .. } => ApiError::new(
                StatusCode::PRECONDITION_REQUIRED,
                "precondition_required",
                e.to_string(),
            ),
            SetError::Stale { current } => precondition_failed(current),
            SetError::NoStock => ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition_failed",
                e.to_string(),
            ),
            SetError::BelowReserved { reserved } => {
                ApiError::new(StatusCode::CONFLICT, "below_reserved", e.to_string())
                    .with_details("reserved", serde_json::json!(reserved))
            }
            SetError::Db(e) => e.into(),
        }
    }
}

fn no_stock(product_id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no stock of product {product_id:?}"),
    )
}

/// The body of a `PUT` for `product_id`, checked.
fn parse_input(product_id: &str, body: serde_json::Value) -> Result<OnHand, ApiError> {
    if !is_product_id(product_id) {
        return Err(SetError::ProductId(product_id.to_owned()).into());
    }
    let input: StockInput = from_value(body)?;
    Ok(OnHand::parse(input)?)
}

/// A product's stock.
#[utoipa::path(
    operation_id = "get_stock",
    get,
    path = "/api/v1/inventory/{product_id}",
    params(("product_id" = String, Path, description = "The product's id")),
    responses(
        (status = 200, description = "The stock; `ETag` is its version", body = Stock),
        (status = 404, description = "The product has no stock row (`not_found`)", body = ErrorBody),
        (status = 503, description = "The database did not answer", body = ErrorBody),
    ),
    tag = "inventory"
)]
async fn read(
    State(inventory): State<Inventory>,
    Path(product_id): Path<String>,
) -> Result<Response, ApiError> {
    if !is_product_id(&product_id) {
        return Err(no_stock(&product_id));
    }
    let stock = repo::get(&inventory.db, &product_id)
        .await?
        .ok_or_else(|| no_stock(&product_id))?;
    Ok(tagged(stock.version, &stock))
}

/// Sets a product's on-hand stock (an administrator or another service).
#[utoipa::path(
    operation_id = "put_stock",
    put,
    path = "/api/v1/inventory/{product_id}",
    request_body = StockInput,
    params(
        ("product_id" = String, Path, description = "The product's id"),
        ("If-Match" = Option<String>, Header, description = "The `ETag` last read: required when the stock exists; the change applies only to that version"),
    ),
    responses(
        (status = 200, description = "Changed; `ETag` is the new version. `StockChanged` is sent, and `StockLow` when available stock fell below the low-stock threshold", body = Stock),
        (status = 201, description = "Created (the product had no stock row); `Location` and `ETag` are set; `StockChanged` is sent", body = Stock),
        (status = 400, description = "Not JSON, an unknown field, `on_hand` not from 0 to 1,000,000,000, or a path that cannot be a product id (`validation_failed`)", body = ErrorBody),
        (status = 403, description = "A customer's token (`forbidden`)", body = ErrorBody),
        (status = 409, description = "`on_hand` is below the units reserved by orders (`below_reserved`; `reserved` says how many)", body = ErrorBody),
        (status = 412, description = "`If-Match` does not name the current version, or names one of stock that does not exist (`precondition_failed`)", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 428, description = "The stock exists and `If-Match` is missing (`precondition_required`)", body = ErrorBody),
        (status = 503, description = "The database did not answer", body = ErrorBody),
    ),
    tag = "inventory"
)]
async fn put(
    State(inventory): State<Inventory>,
    caller: Caller,
    Path(product_id): Path<String>,
    if_match: IfMatch,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> Result<Response, ApiError> {
    if !caller.is_privileged() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only an administrator sets stock",
        ));
    }
    let on_hand = parse_input(&product_id, body)?;
    let expect = match if_match {
        IfMatch::Absent => Expect::NoRow,
        IfMatch::Any => Expect::AnyVersion,
        IfMatch::Versions(versions) => Expect::Versions(versions),
    };
    let (stock, was_created) = repo::set(
        &inventory.db,
        &product_id,
        on_hand.get(),
        &expect,
        inventory.threshold,
    )
    .await?;
    inventory.relay.notify_one();
    if was_created {
        let location = format!("{INVENTORY}/{product_id}");
        return Ok(created(
            201,
            &location,
            serde_json::to_string(&stock).unwrap_or_default(),
        ));
    }
    Ok(tagged(stock.version, &stock))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    low: Option<bool>,
}

/// `GET /api/v1/inventory`'s answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StockList {
    /// In product id order, at most 1,000.
    pub items: Vec<Stock>,
}

/// Every product's stock, or only the low ones (for the dashboard).
#[utoipa::path(
    operation_id = "list_stock",
    get,
    path = "/api/v1/inventory",
    params(("low" = Option<bool>, Query, description = "`true`: only products whose available stock is below the low-stock threshold")),
    responses(
        (status = 200, description = "Up to 1,000 rows in product id order", body = StockList),
        (status = 400, description = "`low` is not `true` or `false` (`invalid_parameter`)", body = ErrorBody),
        (status = 503, description = "The database did not answer", body = ErrorBody),
    ),
    tag = "inventory"
)]
async fn list(
    State(inventory): State<Inventory>,
    RawQuery(raw): RawQuery,
) -> Result<Json<StockList>, ApiError> {
    let params: ListQuery = query(raw.as_deref())?;
    let below = params.low.unwrap_or(false).then_some(inventory.threshold);
    let items = repo::list(&inventory.db, below).await?;
    Ok(Json(StockList { items }))
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "ecom inventory", description = "Stock: the one source of truth for what can be sold."),
    paths(read, put, list),
    components(schemas(Stock, StockInput, StockList, FieldError, ErrorBody, ErrorDetail)),
    tags((name = "inventory", description = "Stock per product"))
)]
struct ApiDoc;

/// Inventory's API description.
pub fn openapi() -> utoipa::openapi::OpenApi {
    <ApiDoc as utoipa::OpenApi>::openapi()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::response::IntoResponse;
    use serde_json::{Value, json};
    use service_db::DbError;

    async fn render(error: ApiError) -> (StatusCode, Value) {
        let response = error.into_response();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    async fn set_error(e: SetError) -> (StatusCode, Value) {
        render(ApiError::from(e)).await
    }

    /// The (field, code) pairs of a 400 `validation_failed`.
    async fn refused(product_id: &str, body: Value) -> Vec<(String, String)> {
        let (status, body) = render(parse_input(product_id, body).expect_err("refused")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["code"], "validation_failed");
        body["fields"]
            .as_array()
            .expect("a fields list")
            .iter()
            .map(|f| {
                (
                    f["field"].as_str().unwrap().to_owned(),
                    f["code"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    fn one(field: &str, code: &str) -> Vec<(String, String)> {
        vec![(field.to_owned(), code.to_owned())]
    }

    #[test]
    fn a_valid_body_is_its_on_hand() {
        assert_eq!(parse_input("p1", json!({"on_hand": 12})).unwrap().get(), 12);
        assert_eq!(parse_input("p1", json!({"on_hand": 0})).unwrap().get(), 0);
    }

    #[tokio::test]
    async fn a_negative_on_hand_is_out_of_range() {
        assert_eq!(
            refused("p1", json!({"on_hand": -1})).await,
            one("on_hand", "out_of_range")
        );
    }

    #[tokio::test]
    async fn an_on_hand_over_a_billion_is_out_of_range() {
        assert_eq!(
            refused("p1", json!({"on_hand": 1_000_000_001})).await,
            one("on_hand", "out_of_range")
        );
    }

    #[tokio::test]
    async fn an_unknown_field_is_refused() {
        assert_eq!(
            refused("p1", json!({"on_hand": 3, "reserved": 1})).await,
            one("reserved", "unknown_field")
        );
    }

    #[tokio::test]
    async fn a_missing_on_hand_is_required() {
        assert_eq!(refused("p1", json!({})).await, one("on_hand", "required"));
    }

    #[tokio::test]
    async fn an_on_hand_in_a_string_or_with_a_fraction_is_an_invalid_type() {
        for value in [json!("3"), json!(2.5)] {
            assert_eq!(
                refused("p1", json!({ "on_hand": value })).await,
                one("on_hand", "invalid_type"),
                "{value}"
            );
        }
    }

    #[tokio::test]
    async fn a_body_that_is_not_an_object_is_an_invalid_type() {
        assert_eq!(refused("p1", json!([3])).await, one("", "invalid_type"));
    }

    #[tokio::test]
    async fn a_product_id_with_a_space_is_an_invalid_format() {
        assert_eq!(
            refused("a b", json!({"on_hand": 3})).await,
            one("product_id", "invalid_format")
        );
    }

    #[tokio::test]
    async fn an_existing_stock_without_if_match_is_a_428() {
        let (status, body) = set_error(SetError::PreconditionRequired { current: 3 }).await;
        assert_eq!(status, StatusCode::PRECONDITION_REQUIRED);
        assert_eq!(body["error"]["code"], "precondition_required");
        assert_eq!(
            body["error"]["message"],
            "the stock exists (version 3): changing it needs If-Match"
        );
    }

    #[tokio::test]
    async fn a_stale_version_is_a_412_naming_the_current_one() {
        let (status, body) = set_error(SetError::Stale { current: 7 }).await;
        assert_eq!(status, StatusCode::PRECONDITION_FAILED);
        assert_eq!(body["error"]["code"], "precondition_failed");
        assert_eq!(
            body["error"]["message"],
            "If-Match does not name the current version (7)"
        );
    }

    #[tokio::test]
    async fn if_match_on_stock_that_does_not_exist_is_a_412() {
        let (status, body) = set_error(SetError::NoStock).await;
        assert_eq!(status, StatusCode::PRECONDITION_FAILED);
        assert_eq!(body["error"]["code"], "precondition_failed");
    }

    #[tokio::test]
    async fn on_hand_below_the_reserved_is_a_409_saying_how_many_are_reserved() {
        let (status, body) = set_error(SetError::BelowReserved { reserved: 4 }).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(body["error"]["code"], "below_reserved");
        assert_eq!(
            body["error"]["message"],
            "4 units are reserved by orders: on_hand cannot go below that"
        );
        assert_eq!(body["reserved"], 4);
    }

    #[tokio::test]
    async fn an_out_of_range_on_hand_from_another_caller_is_a_400() {
        let (status, body) = set_error(SetError::OutOfRange(-5)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["fields"][0]["field"], "on_hand");
        assert_eq!(body["fields"][0]["code"], "out_of_range");
    }

    #[tokio::test]
    async fn an_unavailable_database_is_a_503() {
        let (status, body) = set_error(SetError::Db(DbError::Unavailable("gone".into()))).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["error"]["code"], "database_unavailable");
    }

    #[test]
    fn the_description_has_every_route() {
        let doc = openapi();
        let paths: Vec<&String> = doc.paths.paths.keys().collect();
        assert_eq!(
            paths,
            ["/api/v1/inventory", "/api/v1/inventory/{product_id}"]
        );
        let item = &doc.paths.paths["/api/v1/inventory/{product_id}"];
        assert!(item.get.is_some() && item.put.is_some());
    }
}
