//! The HTTP handlers: parse and check, ask the upstreams, call [`crate::repo`], map errors.

use std::collections::HashMap;
use std::sync::Arc;

use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use service_common::ApiError;
use service_common::auth::{Caller, Tokens};
use service_common::docs::{ErrorBody, ErrorDetail};
use service_common::http_metrics::{HttpMetrics, track};
use service_common::rest::money::Money;
use service_common::rest::{
    FieldError, IdempotencyKey, IfMatch, JsonBody, Page, PageRequest, bad_parameter, from_value,
    not_found, precondition_failed, query, tagged, text_parameter,
};
use service_db::Db;
use service_db::idempotency::{Begun, Stored, begin, fingerprint, lookup};

use messaging::contract::reason;

use crate::flow::ApplyError;
use crate::order::{
    Line, LineInput, Order, OrderInput, OrderRequest, Status, StatusChange, TimelineEntry,
};
use crate::repo::{self, Filter, RepoError};
use crate::saga::Event;
use crate::upstream::UpstreamError;
use crate::{ORDERS, Orders};

type Shared = State<Orders>;

impl axum::extract::FromRef<Orders> for Tokens {
    fn from_ref(orders: &Orders) -> Tokens {
        orders.tokens.clone()
    }
}

fn forbidden(message: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
}

pub fn router(orders: Orders, http: Arc<HttpMetrics>) -> Router {
    Router::new()
        .route(ORDERS, post(create).get(list))
        .route("/api/v1/orders/{id}", get(read).patch(patch).delete(cancel))
        .route("/api/v1/orders/{id}/status", post(change_status))
        .with_state(orders)
        .layer(axum::middleware::from_fn_with_state(
            http.for_service("orders"),
            track,
        ))
}

impl From<RepoError> for ApiError {
    fn from(e: RepoError) -> Self {
        match e {
            RepoError::NotFound => ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string()),
            RepoError::Stale { current } => precondition_failed(current),
            RepoError::Db(e) => e.into(),
        }
    }
}

impl From<UpstreamError> for ApiError {
    fn from(e: UpstreamError) -> Self {
        tracing::warn!(error = %e, "an upstream failed while creating an order");
        match e {
            UpstreamError::Unavailable { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream_unavailable",
                e.to_string(),
            )
            .retry_after(1),
            UpstreamError::Timeout { .. } => ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                e.to_string(),
            ),
        }
    }
}

fn unprocessable(code: &'static str, message: String) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
}

/// Creates an order (`PENDING`): prices from the catalog, then its saga reserves the stock
/// and takes the payment.
#[utoipa::path(
    operation_id = "create_order",
    post,
    path = "/api/v1/orders",
    request_body = OrderInput,
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "Repeating a request with the same key and body answers the same, and creates one order"),
        ("Prefer" = Option<String>, Header, description = "`wait=N` (RFC 7240, N up to 10): answer once the saga has settled (`CONFIRMED` or `CANCELLED`) or N seconds have passed; `Preference-Applied` says it was"),
    ),
    responses(
        (status = 201, description = "Created (`PENDING`, or with `Prefer: wait` where the saga got to), priced at the catalog's current prices; `Location` and `ETag` are set", body = Order,
         headers(("Preference-Applied" = String, description = "`wait=N` when the request asked to wait"))),
        (status = 400, description = "Not JSON, or a field is invalid (`fields` lists them)", body = ErrorBody),
        (status = 413, description = "The body is over 1 MiB", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "`unknown_customer`, `unknown_product` (`product_ids` lists them), `mixed_currencies`, or `idempotency_key_reused`", body = ErrorBody),
        (status = 503, description = "The catalog, the customers service or the database is unavailable; nothing was stored", body = ErrorBody),
        (status = 504, description = "The catalog or the customers service did not answer in time; nothing was stored", body = ErrorBody),
    ),
    tag = "orders"
)]
async fn create(
    State(orders): Shared,
    caller: Caller,
    key: Option<IdempotencyKey>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> Result<Response, ApiError> {
    let wait = prefer_wait(&headers);
    let print = fingerprint(ORDERS, &body);
    let input: OrderInput = from_value(body)?;
    let request = OrderRequest::parse(input)?;
    if !caller.owns(&request.get().customer_id) {
        return Err(forbidden("a customer orders for themselves only"));
    }
    let key = key.as_ref().map(|k| k.0.as_str());
    // A replay answers without asking the other services again.
    if let Some(key) = key
        && let Some(outcome) = lookup(&orders.db, key, &print).await?
    {
        return outcome.respond(ORDERS);
    }
    let (lines, total) = price(&orders, &request).await?;
    let mut once = match begin(&orders.db, key, &print).await? {
        Begun::New(once) => once,
        Begun::Done(outcome) => return outcome.respond(ORDERS),
    };
    let customer_id = &request.get().customer_id;
    let deadline = orders.saga.deadline(service_db::now_us());
    let order = repo::insert(
        once.tx(),
        customer_id,
        lines,
        total,
        request.payment_method(),
        deadline,
    )
    .await?;
    orders.saga.created(once.tx(), &order).await?;
    let answer = Stored {
        status: 201,
        body: serde_json::to_string(&order).unwrap_or_default(),
        resource_id: order.id.clone(),
    };
    let outcome = once.finish(answer).await?;
    orders.saga.committed();
    match wait {
        Some(wait) => {
            let settled = settled(&orders, &order.id, wait).await?;
            let mut response = outcome.respond(ORDERS)?;
            if let Some(settled) = settled {
                *response.body_mut() =
                    axum::body::Body::from(serde_json::to_string(&settled).unwrap_or_default());
                response.headers_mut().insert(
                    axum::http::header::ETAG,
                    service_common::rest::etag(settled.version),
                );
            }
            response.headers_mut().insert(
                "preference-applied",
                axum::http::HeaderValue::from_str(&format!("wait={}", wait.as_secs()))
                    .unwrap_or(axum::http::HeaderValue::from_static("wait")),
            );
            Ok(response)
        }
        None => outcome.respond(ORDERS),
    }
}

/// The longest `Prefer: wait` honoured.
pub const MAX_WAIT: Duration = Duration::from_secs(10);

/// The `wait` preference of a request (RFC 7240), at most [`MAX_WAIT`]; other preferences
/// are ignored, as the RFC asks.
fn prefer_wait(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|p| {
            let (name, value) = p.split_once('=')?;
            (name.trim().eq_ignore_ascii_case("wait"))
                .then(|| value.trim().trim_matches('"').parse::<u64>().ok())
                .flatten()
        })
        .next()
        .map(|secs| Duration::from_secs(secs).min(MAX_WAIT))
}

/// The order once its saga has settled, waiting at most `wait`; `None` if it has not by then.
async fn settled(orders: &Orders, id: &str, wait: Duration) -> Result<Option<Order>, ApiError> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut changes = orders.saga.changes();
    loop {
        let order = repo::get(&orders.db, id).await?;
        if let Some(order) = order.filter(|o| o.status != Status::Pending) {
            return Ok(Some(order));
        }
        // Until this order's change is announced; a short poll covers another replica's
        // changes, which this one hears nothing of.
        let poll = (tokio::time::Instant::now() + Duration::from_millis(250)).min(deadline);
        loop {
            match tokio::time::timeout_at(poll, changes.recv()).await {
                Ok(Ok(changed)) if &*changed != id => continue,
                // This order, or announcements missed (lagged): look again.
                Ok(_) => break,
                Err(_) if tokio::time::Instant::now() >= deadline => return Ok(None),
                Err(_) => break,
            }
        }
    }
}

/// The order's lines at the catalog's prices, and their total; the customer must exist.
async fn price(orders: &Orders, request: &OrderRequest) -> Result<(Vec<Line>, Money), ApiError> {
    let input = request.get();
    let mut ids: Vec<&str> = input.lines.iter().map(|l| l.product_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let (customer, prices) = tokio::join!(
        orders.upstreams.customer_exists(&input.customer_id),
        orders.upstreams.prices(&ids)
    );
    if !customer? {
        return Err(unprocessable(
            "unknown_customer",
            format!("no customer with id {:?}", input.customer_id),
        ));
    }
    let prices: HashMap<String, Money> = prices?.map_err(|unknown| {
        unprocessable(
            "unknown_product",
            format!("the catalog has no product {}", unknown.join(", ")),
        )
        .with_details("product_ids", serde_json::json!(unknown))
    })?;
    let mut currencies: Vec<&str> = prices.values().map(|p| p.currency.code()).collect();
    currencies.sort_unstable();
    currencies.dedup();
    let Some(currency) = prices.values().next().map(|p| p.currency) else {
        return Err(unprocessable(
            "unknown_product",
            "the order has no product".into(),
        ));
    };
    if currencies.len() > 1 {
        return Err(unprocessable(
            "mixed_currencies",
            format!(
                "the products are priced in {}; an order has one currency",
                currencies.join(", ")
            ),
        ));
    }
    let mut total: i64 = 0;
    let lines: Vec<Line> = input
        .lines
        .iter()
        .map(
            |LineInput {
                 product_id,
                 quantity,
             }| Line {
                product_id: product_id.clone(),
                quantity: *quantity,
                unit_price: prices[product_id],
            },
        )
        .collect();
    for line in &lines {
        total = line
            .unit_price
            .amount
            .checked_mul(line.quantity)
            .and_then(|amount| total.checked_add(amount))
            .ok_or_else(|| unprocessable("total_too_large", "the total does not fit".into()))?;
    }
    Ok((
        lines,
        Money {
            amount: total,
            currency,
        },
    ))
}

/// The order `id`, if the caller may see it (another customer's is not found).
async fn find(db: &Db, caller: &Caller, id: &str) -> Result<Order, ApiError> {
    if !service_db::is_id(id) {
        return Err(not_found("order", id));
    }
    repo::get(db, id)
        .await?
        .filter(|order| caller.owns(&order.customer_id))
        .ok_or_else(|| not_found("order", id))
}

/// An order by id.
#[utoipa::path(
    operation_id = "get_order",
    get,
    path = "/api/v1/orders/{id}",
    params(("id" = String, Path, description = "The order's id")),
    responses(
        (status = 200, description = "The order; `ETag` is its version", body = Order),
        (status = 404, description = "No such order", body = ErrorBody),
        (status = 503, description = "The database did not answer", body = ErrorBody),
    ),
    tag = "orders"
)]
async fn read(
    State(orders): Shared,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let order = find(&orders.db, &caller, &id).await?;
    Ok(tagged(order.version, &order))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    customer_id: Option<String>,
    status: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// Orders in id order, a page at a time.
#[utoipa::path(
    operation_id = "list_orders",
    get,
    path = "/api/v1/orders",
    params(
        ("customer_id" = Option<String>, Query, description = "Only this customer's orders"),
        ("status" = Option<Status>, Query, description = "Only orders in this status"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "Rows per page, 1 to 200 (default 50)"),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "One page; every order that existed when the walk started appears exactly once across the pages", body = Page<Order>),
        (status = 400, description = "A parameter is invalid", body = ErrorBody),
        (status = 503, description = "The database did not answer", body = ErrorBody),
    ),
    tag = "orders"
)]
async fn list(
    State(orders): Shared,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<Page<Order>>, ApiError> {
    let params: ListQuery = query(raw.as_deref())?;
    let page = PageRequest::parse(params.limit.as_deref(), params.cursor.as_deref())?;
    let status = params
        .status
        .map(|s| {
            Status::parse(&s).ok_or_else(|| {
                bad_parameter(
                    "status",
                    "must be PENDING, CONFIRMED, SHIPPED, DELIVERED or CANCELLED",
                )
            })
        })
        .transpose()?;
    let mut filter = Filter {
        customer_id: text_parameter("customer_id", params.customer_id, 128)?,
        status,
    };
    // A customer's list holds their own orders only.
    if let Some(own) = caller.customer() {
        if filter
            .customer_id
            .as_deref()
            .is_some_and(|asked| asked != own)
        {
            return Ok(Json(Page {
                items: Vec::new(),
                next_cursor: None,
            }));
        }
        filter.customer_id = Some(own.to_owned());
    }
    let rows = repo::list(&orders.db, &filter, &page).await?;
    Ok(Json(page.page(rows, |o| &o.id)))
}

/// Moves the order to `to`, under `if_match`. A customer may only cancel their own orders;
/// a cancellation goes through the saga (which compensates), `PENDING → CONFIRMED` is the
/// saga's alone.
async fn transition(
    orders: &Orders,
    caller: &Caller,
    id: &str,
    if_match: &IfMatch,
    to: Status,
) -> Result<Order, ApiError> {
    if !caller.is_privileged() && to != Status::Cancelled {
        return Err(forbidden("a customer can only cancel an order"));
    }
    if to == Status::Cancelled {
        return cancel_order(orders, caller, id, if_match).await;
    }
    let db = &orders.db;
    for _ in 0..5 {
        let current = find(db, caller, id).await?;
        if !if_match.matches(current.version) {
            return Err(precondition_failed(current.version));
        }
        if current.status == Status::Pending && to == Status::Confirmed {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "saga_in_progress",
                "a pending order is confirmed by its saga once its stock is reserved and its \
                 payment taken",
            ));
        }
        if !current.status.can_become(to) {
            return Err(invalid_transition(current.status, to));
        }
        match repo::set_status(db, id, current.version, current.status, to).await {
            Ok(order) => return Ok(order),
            Err(RepoError::Stale { .. }) if !if_match.names_versions() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "conflict",
        "the order kept changing; retry",
    ))
}

fn invalid_transition(from: Status, to: Status) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "invalid_transition",
        format!(
            "an order cannot go from {} to {}",
            from.as_str(),
            to.as_str()
        ),
    )
}

/// Cancels the order through the saga (reason `customer` for a customer's token, else
/// `admin`), in one transaction with its `OrderCancelled`.
async fn cancel_order(
    orders: &Orders,
    caller: &Caller,
    id: &str,
    if_match: &IfMatch,
) -> Result<Order, ApiError> {
    // Visible to the caller at all (another customer's order is not found).
    find(&orders.db, caller, id).await?;
    let reason = if caller.customer().is_some() {
        reason::CUSTOMER
    } else {
        reason::ADMIN
    };
    let mut tx = orders.db.begin_write().await?;
    let Some((current, _)) = repo::lock(&mut tx, orders.db.backend(), id).await? else {
        return Err(not_found("order", id));
    };
    if !if_match.matches(current.version) {
        return Err(precondition_failed(current.version));
    }
    match orders
        .saga
        .apply(&mut tx, id, &Event::Cancel { reason }, None)
        .await
    {
        Ok(_) => {}
        Err(ApplyError::NotCancellable(status)) => {
            return Err(invalid_transition(status, Status::Cancelled));
        }
        Err(ApplyError::Db(e)) => return Err(e.into()),
    }
    tx.commit().await.map_err(service_db::DbError::from)?;
    orders.saga.committed();
    repo::get(&orders.db, id)
        .await?
        .ok_or_else(|| not_found("order", id))
}

/// Changes an order's status.
#[utoipa::path(
    operation_id = "change_order_status",
    post,
    path = "/api/v1/orders/{id}/status",
    request_body = StatusChange,
    params(
        ("id" = String, Path, description = "The order's id"),
        ("If-Match" = Option<String>, Header, description = "The `ETag` last read: the change applies only to that version"),
    ),
    responses(
        (status = 200, description = "The order in its new status; `ETag` is its new version", body = Order),
        (status = 400, description = "Not JSON, or not a status", body = ErrorBody),
        (status = 404, description = "No such order", body = ErrorBody),
        (status = 409, description = "The order cannot go to that status from where it is (`invalid_transition`), or is `PENDING` and only its saga confirms it (`saga_in_progress`)", body = ErrorBody),
        (status = 412, description = "`If-Match` does not name the current version", body = ErrorBody),
        (status = 503, description = "The database did not answer", body = ErrorBody),
    ),
    tag = "orders"
)]
async fn change_status(
    State(orders): Shared,
    caller: Caller,
    Path(id): Path<String>,
    if_match: IfMatch,
    JsonBody(change): JsonBody<StatusChange>,
) -> Result<Response, ApiError> {
    let order = transition(&orders, &caller, &id, &if_match, change.status).await?;
    Ok(tagged(order.version, &order))
}

/// Changes an order with a JSON merge patch: only `status` may change, by the same rules as
/// `POST /api/v1/orders/{id}/status`.
#[utoipa::path(
    operation_id = "patch_order",
    patch,
    path = "/api/v1/orders/{id}",
    params(
        ("id" = String, Path, description = "The order's id"),
        ("If-Match" = Option<String>, Header, description = "The `ETag` last read"),
    ),
    request_body(content = StatusChange, content_type = "application/merge-patch+json", description = "`{\"status\": ...}`; other fields are refused"),
    responses(
        (status = 200, description = "The changed order", body = Order),
        (status = 400, description = "Not JSON, or a field other than `status`", body = ErrorBody),
        (status = 404, description = "No such order", body = ErrorBody),
        (status = 409, description = "`invalid_transition` or `saga_in_progress`", body = ErrorBody),
        (status = 412, description = "`If-Match` does not name the current version", body = ErrorBody),
        (status = 503, description = "The database did not answer", body = ErrorBody),
    ),
    tag = "orders"
)]
async fn patch(
    State(orders): Shared,
    caller: Caller,
    Path(id): Path<String>,
    if_match: IfMatch,
    JsonBody(patch): JsonBody<serde_json::Value>,
) -> Result<Response, ApiError> {
    let change: StatusChange = from_value(patch)?;
    let order = transition(&orders, &caller, &id, &if_match, change.status).await?;
    Ok(tagged(order.version, &order))
}

/// Cancels an order (orders are never deleted).
#[utoipa::path(
    operation_id = "cancel_order",
    delete,
    path = "/api/v1/orders/{id}",
    params(
        ("id" = String, Path, description = "The order's id"),
        ("If-Match" = Option<String>, Header, description = "Cancel only this version"),
    ),
    responses(
        (status = 204, description = "Cancelled (or already cancelled)"),
        (status = 404, description = "No such order", body = ErrorBody),
        (status = 409, description = "Shipped or delivered orders cannot be cancelled", body = ErrorBody),
        (status = 412, description = "`If-Match` does not name the current version", body = ErrorBody),
        (status = 503, description = "The database did not answer", body = ErrorBody),
    ),
    tag = "orders"
)]
async fn cancel(
    State(orders): Shared,
    caller: Caller,
    Path(id): Path<String>,
    if_match: IfMatch,
) -> Result<StatusCode, ApiError> {
    let current = find(&orders.db, &caller, &id).await?;
    if current.status == Status::Cancelled && if_match.matches(current.version) {
        return Ok(StatusCode::NO_CONTENT);
    }
    transition(&orders, &caller, &id, &if_match, Status::Cancelled).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "ecom orders", description = "Orders, priced from the catalog, each carried through the order saga (stock reserved, payment taken, or compensated); each confirmation feeds PURCHASE events to the stream."),
    paths(create, read, list, change_status, patch, cancel),
    components(schemas(Order, OrderInput, LineInput, Line, Status, StatusChange, TimelineEntry, FieldError, ErrorBody, ErrorDetail)),
    tags((name = "orders", description = "Orders"))
)]
struct ApiDoc;

/// The service's API description.
pub fn openapi() -> utoipa::openapi::OpenApi {
    <ApiDoc as utoipa::OpenApi>::openapi()
}
