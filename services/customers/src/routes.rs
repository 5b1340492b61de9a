//! The HTTP handlers: parse and check, call [`crate::repo`], map its errors.

use std::sync::Arc;

use axum::extract::{FromRef, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use service_common::ApiError;
use service_common::auth::{Caller, Tokens};
use service_common::docs::{ErrorBody, ErrorDetail};
use service_common::http_metrics::{HttpMetrics, track};
use service_common::rest::{
    FieldError, IdempotencyKey, IfMatch, JsonBody, Page, PageRequest, from_value, merge_patch,
    not_found, precondition_failed, query, tagged, text_parameter,
};
use service_db::Db;
use service_db::idempotency::{Begun, Stored, begin, fingerprint};

use crate::CUSTOMERS;
use crate::customer::{Customer, CustomerFields, CustomerInput, fold_email};
use crate::repo::{self, RepoError};

/// The handlers' state: the database, and how callers' tokens are checked.
#[derive(Clone)]
pub struct Shared {
    pub db: Db,
    pub tokens: Tokens,
}

impl FromRef<Shared> for Db {
    fn from_ref(shared: &Shared) -> Db {
        shared.db.clone()
    }
}

impl FromRef<Shared> for Tokens {
    fn from_ref(shared: &Shared) -> Tokens {
        shared.tokens.clone()
    }
}

pub fn router(shared: Shared, http: Arc<HttpMetrics>) -> Router {
    Router::new()
        .route(CUSTOMERS, post(create).get(list))
        .route(
            "/api/v1/customers/{id}",
            get(read).patch(patch).delete(delete),
        )
        .with_state(shared)
        .layer(axum::middleware::from_fn_with_state(
            http.for_service("customers"),
            track,
        ))
}

impl From<RepoError> for ApiError {
    fn from(e: RepoError) -> Self {
        match e {
            RepoError::NotFound => ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string()),
            RepoError::Stale { current } => precondition_failed(current),
            RepoError::EmailTaken(_) => {
                ApiError::new(StatusCode::CONFLICT, "email_taken", e.to_string())
            }
            RepoError::Db(e) => e.into(),
        }
    }
}

fn parse_input(value: serde_json::Value) -> Result<CustomerFields, ApiError> {
    let input: CustomerInput = from_value(value)?;
    Ok(CustomerFields::parse(input)?)
}

/// Creates a customer.
#[utoipa::path(
    operation_id = "create_customer",
    post,
    path = "/api/v1/customers",
    request_body = CustomerInput,
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeating a request with the same key and body answers the same, and creates once")),
    responses(
        (status = 201, description = "Created; `Location` and `ETag` are set", body = Customer),
        (status = 400, description = "Not JSON, or a field is invalid (`fields` lists them)", body = ErrorBody),
        (status = 409, description = "The email belongs to another customer (`email_taken`)", body = ErrorBody),
        (status = 413, description = "The body is over 1 MiB", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "The Idempotency-Key was used with another body", body = ErrorBody),
        (status = 503, description = "The database did not answer", body = ErrorBody),
    ),
    tag = "customers"
)]
async fn create(
    State(db): State<Db>,
    caller: Caller,
    key: Option<IdempotencyKey>,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> Result<Response, ApiError> {
    if !caller.is_privileged() {
        return Err(forbidden("customer records are created by registration"));
    }
    let print = fingerprint(CUSTOMERS, &body);
    let fields = parse_input(body)?;
    let mut once = match begin(&db, key.as_ref().map(|k| k.0.as_str()), &print).await? {
        Begun::New(once) => once,
        Begun::Done(outcome) => return outcome.respond(CUSTOMERS),
    };
    let customer = repo::insert(once.tx(), &service_db::new_id(), &fields).await?;
    let answer = Stored {
        status: 201,
        body: serde_json::to_string(&customer).unwrap_or_default(),
        resource_id: customer.id,
    };
    once.finish(answer).await?.respond(CUSTOMERS)
}

fn forbidden(message: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
}

/// The customer `id`, if the caller may see it (another customer's is not found).
async fn find(db: &Db, caller: &Caller, id: &str) -> Result<Customer, ApiError> {
    if !service_db::is_id(id) || !caller.owns(id) {
        return Err(not_found("customer", id));
    }
    repo::get(db, id)
        .await?
        .ok_or_else(|| not_found("customer", id))
}

/// A customer by id.
#[utoipa::path(
    operation_id = "get_customer",
    get,
    path = "/api/v1/customers/{id}",
    params(("id" = String, Path, description = "The customer's id")),
    responses(
        (status = 200, description = "The customer; `ETag` is its version", body = Customer),
        (status = 404, description = "No such customer", body = ErrorBody),
        (status = 503, description = "The database did not answer", body = ErrorBody),
    ),
    tag = "customers"
)]
async fn read(
    State(db): State<Db>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let customer = find(&db, &caller, &id).await?;
    Ok(tagged(customer.version, &customer))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    email: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// Customers in id order, a page at a time.
#[utoipa::path(
    operation_id = "list_customers",
    get,
    path = "/api/v1/customers",
    params(
        ("email" = Option<String>, Query, description = "Only the customer with this email, in any case"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "Rows per page, 1 to 200 (default 50)"),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "One page; every customer that existed when the walk started appears exactly once across the pages", body = Page<Customer>),
        (status = 400, description = "A parameter is invalid", body = ErrorBody),
        (status = 503, description = "The database did not answer", body = ErrorBody),
    ),
    tag = "customers"
)]
async fn list(
    State(db): State<Db>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<Page<Customer>>, ApiError> {
    let params: ListQuery = query(raw.as_deref())?;
    let page = PageRequest::parse(params.limit.as_deref(), params.cursor.as_deref())?;
    let email = text_parameter("email", params.email, 254)?;
    // A customer's list is their own record (when it matches the filter), on one page.
    if let Some(own) = caller.customer() {
        let mine = repo::get(&db, own).await?.filter(|c| {
            email
                .as_deref()
                .is_none_or(|e| fold_email(e) == fold_email(&c.email))
        });
        let items = if page.after.is_some() {
            Vec::new()
        } else {
            mine.into_iter().collect()
        };
        return Ok(Json(Page {
            items,
            next_cursor: None,
        }));
    }
    let rows = repo::list(&db, email.as_deref(), &page).await?;
    Ok(Json(page.page(rows, |c| &c.id)))
}

/// Changes a customer with a JSON merge patch (RFC 7396).
#[utoipa::path(
    operation_id = "patch_customer",
    patch,
    path = "/api/v1/customers/{id}",
    params(
        ("id" = String, Path, description = "The customer's id"),
        ("If-Match" = Option<String>, Header, description = "The `ETag` last read: the change applies only to that version"),
    ),
    request_body(content = serde_json::Value, content_type = "application/merge-patch+json", description = "The fields to change; `null` removes an optional field"),
    responses(
        (status = 200, description = "The changed customer; `ETag` is its new version", body = Customer),
        (status = 400, description = "Not JSON, or the result is invalid", body = ErrorBody),
        (status = 404, description = "No such customer", body = ErrorBody),
        (status = 409, description = "The new email belongs to another customer", body = ErrorBody),
        (status = 412, description = "`If-Match` does not name the current version", body = ErrorBody),
        (status = 503, description = "The database did not answer", body = ErrorBody),
    ),
    tag = "customers"
)]
async fn patch(
    State(db): State<Db>,
    caller: Caller,
    Path(id): Path<String>,
    if_match: IfMatch,
    JsonBody(patch): JsonBody<serde_json::Value>,
) -> Result<Response, ApiError> {
    // Without If-Match a concurrent change is merged into again; with it, it is a 412.
    for _ in 0..5 {
        let current = find(&db, &caller, &id).await?;
        if !if_match.matches(current.version) {
            return Err(precondition_failed(current.version));
        }
        let mut merged = serde_json::to_value(current.input()).unwrap_or_default();
        merge_patch(&mut merged, &patch);
        let fields = parse_input(merged)?;
        match repo::update(&db, &id, current.version, &fields).await {
            Ok(customer) => return Ok(tagged(customer.version, &customer)),
            Err(RepoError::Stale { .. }) if !if_match.names_versions() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "conflict",
        "the customer kept changing; retry",
    ))
}

/// Deletes a customer (their orders are kept).
#[utoipa::path(
    operation_id = "delete_customer",
    delete,
    path = "/api/v1/customers/{id}",
    params(
        ("id" = String, Path, description = "The customer's id"),
        ("If-Match" = Option<String>, Header, description = "Delete only this version"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such customer", body = ErrorBody),
        (status = 412, description = "`If-Match` does not name the current version", body = ErrorBody),
        (status = 503, description = "The database did not answer", body = ErrorBody),
    ),
    tag = "customers"
)]
async fn delete(
    State(db): State<Db>,
    caller: Caller,
    Path(id): Path<String>,
    if_match: IfMatch,
) -> Result<StatusCode, ApiError> {
    let current = find(&db, &caller, &id).await?;
    if !if_match.matches(current.version) {
        return Err(precondition_failed(current.version));
    }
    // Under If-Match, only the version it named (which may have changed since the read).
    let version = if_match.names_versions().then_some(current.version);
    repo::delete(&db, &id, version).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "ecom customers", description = "Customer records."),
    paths(create, read, list, patch, delete),
    components(schemas(Customer, CustomerInput, FieldError, ErrorBody, ErrorDetail)),
    tags((name = "customers", description = "Customer records"))
)]
struct ApiDoc;

/// The service's API description.
pub fn openapi() -> utoipa::openapi::OpenApi {
    <ApiDoc as utoipa::OpenApi>::openapi()
}
