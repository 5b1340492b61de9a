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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header;
    use axum::response::IntoResponse;
    use serde_json::{Value, json};
    use service_db::DbError;

    /// The status, `Retry-After` and JSON body `error` answers.
    async fn render(error: ApiError) -> (StatusCode, Option<String>, Value) {
        let response = error.into_response();
        let status = response.status();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, retry_after, serde_json::from_slice(&bytes).unwrap())
    }

    async fn repo_error(e: RepoError) -> (StatusCode, Option<String>, Value) {
        render(ApiError::from(e)).await
    }

    fn valid() -> Value {
        json!({
            "name": "Ann Example",
            "email": "ann@example.com",
            "phone": "+1 555 0100",
            "address": "1 Main Street",
        })
    }

    /// `valid()` with `patch` merged in (`null` removes a field).
    fn with(patch: Value) -> Value {
        let mut body = valid();
        merge_patch(&mut body, &patch);
        body
    }

    /// The rendered refusal of `parse_input(value)`: its status, and its body.
    async fn refused(value: Value) -> (StatusCode, Value) {
        let error = parse_input(value).expect_err("refused");
        let (status, retry_after, body) = render(error).await;
        assert_eq!(retry_after, None);
        (status, body)
    }

    /// The one field a refusal names, as (field, code), after checking it is a 400
    /// `validation_failed`.
    async fn refused_field(value: Value) -> (String, String) {
        let (status, body) = refused(value).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["code"], "validation_failed");
        let fields = body["fields"].as_array().expect("a fields list");
        assert_eq!(fields.len(), 1, "{body}");
        (
            fields[0]["field"].as_str().unwrap().to_owned(),
            fields[0]["code"].as_str().unwrap().to_owned(),
        )
    }

    fn field(name: &str, code: &str) -> (String, String) {
        (name.to_owned(), code.to_owned())
    }

    #[tokio::test]
    async fn not_found_is_a_404_not_found() {
        let (status, retry_after, body) = repo_error(RepoError::NotFound).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(retry_after, None);
        assert_eq!(body["error"]["code"], "not_found");
        assert_eq!(body["error"]["message"], "no customer with this id");
    }

    #[tokio::test]
    async fn a_stale_version_is_a_412_precondition_failed_naming_the_current_one() {
        let (status, retry_after, body) = repo_error(RepoError::Stale { current: 4 }).await;
        assert_eq!(status, StatusCode::PRECONDITION_FAILED);
        assert_eq!(retry_after, None);
        assert_eq!(body["error"]["code"], "precondition_failed");
        assert_eq!(
            body["error"]["message"],
            "If-Match does not name the current version (4)"
        );
    }

    #[tokio::test]
    async fn a_taken_email_is_a_409_email_taken_naming_the_email() {
        let e = RepoError::EmailTaken("Ann@Example.com".to_owned());
        let (status, retry_after, body) = repo_error(e).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(retry_after, None);
        assert_eq!(body["error"]["code"], "email_taken");
        assert_eq!(
            body["error"]["message"],
            "the email \"Ann@Example.com\" belongs to another customer"
        );
    }

    #[tokio::test]
    async fn an_unavailable_database_is_a_503_retried_after_a_second() {
        let e = RepoError::Db(DbError::Unavailable("connection refused".to_owned()));
        let (status, retry_after, body) = repo_error(e).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry_after.as_deref(), Some("1"));
        assert_eq!(body["error"]["code"], "database_unavailable");
        assert_eq!(
            body["error"]["message"],
            "the database did not answer; retry later"
        );
    }

    #[tokio::test]
    async fn another_unique_violation_is_a_409_conflict() {
        let e = RepoError::Db(DbError::Duplicate("customers_pkey".to_owned()));
        let (status, retry_after, body) = repo_error(e).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(retry_after, None);
        assert_eq!(body["error"]["code"], "conflict");
    }

    #[tokio::test]
    async fn any_other_database_error_is_a_500_that_does_not_leak_the_reason() {
        let e = RepoError::Db(DbError::Other("no such column: email_folded".to_owned()));
        let (status, retry_after, body) = repo_error(e).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(retry_after, None);
        assert_eq!(body["error"]["code"], "internal");
        assert_eq!(
            body["error"]["message"],
            "the request failed inside the service"
        );
        assert!(!body.to_string().contains("email_folded"), "{body}");
    }

    #[tokio::test]
    async fn a_forbidden_creation_is_a_403_forbidden() {
        let (status, retry_after, body) =
            render(forbidden("customer records are created by registration")).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(retry_after, None);
        assert_eq!(body["error"]["code"], "forbidden");
        assert_eq!(
            body["error"]["message"],
            "customer records are created by registration"
        );
    }

    #[test]
    fn a_valid_body_is_parsed_into_its_fields_with_the_email_trimmed() {
        let fields = parse_input(with(json!({"email": "  Ann@Example.com "}))).expect("valid");
        let c = fields.get();
        assert_eq!(c.name, "Ann Example");
        assert_eq!(c.email, "Ann@Example.com");
        assert_eq!(c.phone.as_deref(), Some("+1 555 0100"));
        assert_eq!(c.address.as_deref(), Some("1 Main Street"));
        assert_eq!(fields.email_folded(), "ann@example.com");
    }

    #[test]
    fn a_body_without_a_phone_or_an_address_is_parsed() {
        let fields = parse_input(with(json!({"phone": null, "address": null}))).expect("valid");
        assert_eq!((&fields.get().phone, &fields.get().address), (&None, &None));
    }

    #[tokio::test]
    async fn a_body_that_is_not_an_object_is_an_invalid_type() {
        for value in [
            json!([valid()]),
            json!(null),
            json!("ann@example.com"),
            json!(true),
        ] {
            let (status, body) = refused(value.clone()).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{value}");
            assert_eq!(body["error"]["code"], "validation_failed", "{value}");
            assert_eq!(body["fields"][0]["field"], "", "{value}");
            assert_eq!(body["fields"][0]["code"], "invalid_type", "{value}");
        }
    }

    #[tokio::test]
    async fn an_unknown_field_is_refused() {
        assert_eq!(
            refused_field(with(json!({"password": "hunter2"}))).await,
            field("password", "unknown_field")
        );
    }

    #[tokio::test]
    async fn a_missing_email_is_required() {
        assert_eq!(
            refused_field(with(json!({"email": null}))).await,
            field("email", "required")
        );
    }

    #[tokio::test]
    async fn a_missing_name_is_required() {
        assert_eq!(
            refused_field(with(json!({"name": null}))).await,
            field("name", "required")
        );
    }

    #[tokio::test]
    async fn an_email_that_is_a_list_is_an_invalid_type() {
        assert_eq!(
            refused_field(with(json!({"email": ["ann@example.com"]}))).await,
            field("email", "invalid_type")
        );
    }

    #[tokio::test]
    async fn a_phone_that_is_a_number_is_an_invalid_type() {
        assert_eq!(
            refused_field(with(json!({"phone": 5_550_100}))).await,
            field("phone", "invalid_type")
        );
    }

    #[tokio::test]
    async fn an_address_that_is_an_object_is_an_invalid_type() {
        assert_eq!(
            refused_field(with(json!({"address": {"street": "Main"}}))).await,
            field("address", "invalid_type")
        );
    }

    #[tokio::test]
    async fn a_well_typed_body_with_invalid_fields_lists_them_all() {
        let (status, body) = refused(with(json!({
            "name": "",
            "email": "ann",
            "phone": "call me",
        })))
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["code"], "validation_failed");
        assert_eq!(
            body["error"]["message"],
            "name: must not be empty; email: must be an address such as name@example.com; \
             phone: must be up to 32 of 0-9 + - ( ) . and spaces"
        );
        let fields: Vec<(&str, &str)> = body["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f["field"].as_str().unwrap(), f["code"].as_str().unwrap()))
            .collect();
        assert_eq!(
            fields,
            [
                ("name", "required"),
                ("email", "invalid_format"),
                ("phone", "invalid_format"),
            ]
        );
    }
}
