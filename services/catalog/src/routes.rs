//! The HTTP handlers: parse and check, call [`crate::repo`], map its errors.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use service_common::ApiError;
use service_common::docs::{ErrorBody, ErrorDetail};
use service_common::http_metrics::{HttpMetrics, track};
use service_common::rest::{
    FieldError, IdempotencyKey, IfMatch, Invalid, JsonBody, Page, PageRequest, from_value,
    merge_patch, not_found, precondition_failed, query, tagged, text_parameter,
};
use service_db::idempotency::{Begun, Outcome, Stored, begin, fingerprint};
use service_db::{Db, DbError};
use tokio::sync::Notify;
use utoipa::ToSchema;

use crate::PRODUCTS;
use crate::product::{ItemResult, ItemStatus, Product, ProductFields, ProductInput};
use crate::repo::{self, Filter, RepoError};
use crate::stock::stage_set;

/// The most items of one batch.
pub const MAX_BATCH: usize = 1_000;

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct Catalog {
    pub db: Db,
    /// The relay's waker: a write staged `ProductStockSet`.
    pub relay: Arc<Notify>,
}

impl axum::extract::FromRef<Catalog> for Db {
    fn from_ref(catalog: &Catalog) -> Db {
        catalog.db.clone()
    }
}

pub(crate) fn router(catalog: Catalog, http: Arc<HttpMetrics>) -> Router {
    Router::new()
        .route(PRODUCTS, post(create).get(list))
        .route("/api/v1/products/batch", post(batch))
        .route(
            "/api/v1/products/{id}",
            get(read).patch(patch).delete(delete),
        )
        .with_state(catalog)
        .layer(axum::middleware::from_fn_with_state(
            http.for_service("catalog"),
            track,
        ))
}

impl From<RepoError> for ApiError {
    fn from(e: RepoError) -> Self {
        match e {
            RepoError::NotFound => ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string()),
            RepoError::Stale { current } => precondition_failed(current),
            RepoError::SkuTaken(_) => {
                ApiError::new(StatusCode::CONFLICT, "sku_taken", e.to_string())
            }
            RepoError::Db(e) => e.into(),
        }
    }
}

fn parse_input(value: serde_json::Value) -> Result<ProductFields, ApiError> {
    let input: ProductInput = from_value(value)?;
    Ok(ProductFields::parse(input)?)
}

/// Creates a product.
#[utoipa::path(
    operation_id = "create_product",
    post,
    path = "/api/v1/products",
    request_body = ProductInput,
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeating a request with the same key and body answers the same, and creates once")),
    responses(
        (status = 201, description = "Created; `Location` and `ETag` are set. Its stock is sent to the inventory (`ProductStockSet`)", body = Product),
        (status = 400, description = "Not JSON, or a field is invalid (`fields` lists them)", body = ErrorBody),
        (status = 409, description = "The SKU belongs to another product (`sku_taken`)", body = ErrorBody),
        (status = 413, description = "The body is over 1 MiB", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "The Idempotency-Key was used with another body", body = ErrorBody),
        (status = 503, description = "The database did not answer", body = ErrorBody),
    ),
    tag = "products"
)]
async fn create(
    State(catalog): State<Catalog>,
    key: Option<IdempotencyKey>,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> Result<Response, ApiError> {
    let print = fingerprint(PRODUCTS, &body);
    let fields = parse_input(body)?;
    let mut once = match begin(&catalog.db, key.as_ref().map(|k| k.0.as_str()), &print).await? {
        Begun::New(once) => once,
        Begun::Done(outcome) => return outcome.respond(PRODUCTS),
    };
    let product = repo::insert(once.tx(), &service_db::new_id(), &fields).await?;
    stage_set(once.tx(), &product.id, product.stock_quantity).await?;
    let answer = Stored {
        status: 201,
        body: serde_json::to_string(&product).unwrap_or_default(),
        resource_id: product.id,
    };
    let outcome = once.finish(answer).await?;
    catalog.relay.notify_one();
    outcome.respond(PRODUCTS)
}

/// A product by id.
#[utoipa::path(
    operation_id = "get_product",
    get,
    path = "/api/v1/products/{id}",
    params(("id" = String, Path, description = "The product's id")),
    responses(
        (status = 200, description = "The product; `ETag` is its version", body = Product),
        (status = 404, description = "No such product", body = ErrorBody),
        (status = 503, description = "The database did not answer", body = ErrorBody),
    ),
    tag = "products"
)]
async fn read(State(db): State<Db>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let product = find(&db, &id).await?;
    Ok(tagged(product.version, &product))
}

async fn find(db: &Db, id: &str) -> Result<Product, ApiError> {
    if !service_db::is_id(id) {
        return Err(not_found("product", id));
    }
    repo::get(db, id)
        .await?
        .ok_or_else(|| not_found("product", id))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    category: Option<String>,
    q: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// Products in id order, a page at a time.
#[utoipa::path(
    operation_id = "list_products",
    get,
    path = "/api/v1/products",
    params(
        ("category" = Option<String>, Query, description = "Only this category"),
        ("q" = Option<String>, Query, description = "Only names containing this, in any case"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "Rows per page, 1 to 200 (default 50)"),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "One page; every product that existed when the walk started appears exactly once across the pages", body = Page<Product>),
        (status = 400, description = "A parameter is invalid", body = ErrorBody),
        (status = 503, description = "The database did not answer", body = ErrorBody),
    ),
    tag = "products"
)]
async fn list(
    State(db): State<Db>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Page<Product>>, ApiError> {
    let params: ListQuery = query(raw.as_deref())?;
    let page = PageRequest::parse(params.limit.as_deref(), params.cursor.as_deref())?;
    let filter = Filter {
        category: text_parameter("category", params.category, 200)?,
        q: text_parameter("q", params.q, 200)?,
    };
    let rows = repo::list(&db, &filter, &page).await?;
    Ok(Json(page.page(rows, |p| &p.id)))
}

/// Changes a product with a JSON merge patch (RFC 7396).
#[utoipa::path(
    operation_id = "patch_product",
    patch,
    path = "/api/v1/products/{id}",
    params(
        ("id" = String, Path, description = "The product's id"),
        ("If-Match" = Option<String>, Header, description = "The `ETag` last read: the change applies only to that version"),
    ),
    request_body(content = serde_json::Value, content_type = "application/merge-patch+json", description = "The fields to change; `null` removes an optional field"),
    responses(
        (status = 200, description = "The changed product; `ETag` is its new version. A patch naming `stock_quantity` sends it to the inventory (`ProductStockSet`)", body = Product),
        (status = 400, description = "Not JSON, or the result is invalid", body = ErrorBody),
        (status = 404, description = "No such product", body = ErrorBody),
        (status = 409, description = "The new SKU belongs to another product", body = ErrorBody),
        (status = 412, description = "`If-Match` does not name the current version", body = ErrorBody),
        (status = 503, description = "The database did not answer", body = ErrorBody),
    ),
    tag = "products"
)]
async fn patch(
    State(catalog): State<Catalog>,
    Path(id): Path<String>,
    if_match: IfMatch,
    JsonBody(patch): JsonBody<serde_json::Value>,
) -> Result<Response, ApiError> {
    // Naming the stock sets it (even to the value shown: that is the inventory's available
    // stock, which may not be its on-hand); otherwise the stored reading is left alone.
    let sets_stock = patch.get("stock_quantity").is_some();
    // Without If-Match a concurrent change is merged into again; with it, it is a 412.
    for _ in 0..5 {
        let current = find(&catalog.db, &id).await?;
        if !if_match.matches(current.version) {
            return Err(precondition_failed(current.version));
        }
        let mut merged = serde_json::to_value(current.input()).unwrap_or_default();
        merge_patch(&mut merged, &patch);
        let fields = parse_input(merged)?;
        let mut tx = catalog.db.begin_write().await?;
        match repo::update(&mut tx, &id, current.version, &fields, sets_stock).await {
            Ok(product) => {
                if sets_stock {
                    stage_set(&mut tx, &product.id, product.stock_quantity).await?;
                }
                tx.commit().await.map_err(DbError::from)?;
                if sets_stock {
                    catalog.relay.notify_one();
                }
                return Ok(tagged(product.version, &product));
            }
            Err(RepoError::Stale { .. }) if !if_match.names_versions() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "conflict",
        "the product kept changing; retry",
    ))
}

/// Deletes a product.
#[utoipa::path(
    operation_id = "delete_product",
    delete,
    path = "/api/v1/products/{id}",
    params(
        ("id" = String, Path, description = "The product's id"),
        ("If-Match" = Option<String>, Header, description = "Delete only this version"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such product", body = ErrorBody),
        (status = 412, description = "`If-Match` does not name the current version", body = ErrorBody),
        (status = 503, description = "The database did not answer", body = ErrorBody),
    ),
    tag = "products"
)]
async fn delete(
    State(db): State<Db>,
    Path(id): Path<String>,
    if_match: IfMatch,
) -> Result<StatusCode, ApiError> {
    let current = find(&db, &id).await?;
    if !if_match.matches(current.version) {
        return Err(precondition_failed(current.version));
    }
    // Under If-Match, only the version it named (which may have changed since the read).
    let version = if_match.names_versions().then_some(current.version);
    repo::delete(&db, &id, version).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/products/batch`'s body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchInput {
    /// At most 1,000 products; each is checked on its own.
    #[schema(value_type = Vec<ProductInput>)]
    pub items: Vec<serde_json::Value>,
}

/// `POST /api/v1/products/batch`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResult {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub rejected: usize,
    /// One per item, in order.
    pub results: Vec<ItemResult>,
}

/// Creates or updates products by SKU, for the CSV importer: re-sending a batch creates
/// nothing twice.
#[utoipa::path(
    operation_id = "upsert_products",
    post,
    path = "/api/v1/products/batch",
    request_body = BatchInput,
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeating a request with the same key and body answers the same")),
    responses(
        (status = 200, description = "Every item's result; invalid items are `rejected` with the reason, the others are applied. The stock of each item `created`, or `updated` with another `stock_quantity`, is sent to the inventory (`ProductStockSet`)", body = BatchResult),
        (status = 400, description = "Not JSON, no `items`, or more than 1,000 of them", body = ErrorBody),
        (status = 413, description = "The body is over 1 MiB", body = ErrorBody),
        (status = 422, description = "The Idempotency-Key was used with another body", body = ErrorBody),
        (status = 503, description = "The database did not answer; nothing was applied", body = ErrorBody),
    ),
    tag = "products"
)]
async fn batch(
    State(catalog): State<Catalog>,
    key: Option<IdempotencyKey>,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> Result<Response, ApiError> {
    let print = fingerprint("/api/v1/products/batch", &body);
    let input: BatchInput = from_value(body)?;
    if input.items.len() > MAX_BATCH {
        let mut invalid = Invalid::default();
        invalid.push("items", "too_long", format!("at most {MAX_BATCH} items"));
        return Err(invalid.into());
    }
    let mut results: Vec<Option<ItemResult>> = vec![None; input.items.len()];
    let mut valid: Vec<(usize, ProductFields)> = Vec::with_capacity(results.len());
    for (index, item) in input.items.into_iter().enumerate() {
        match check_item(index, item) {
            Ok(fields) => valid.push((index, fields)),
            Err(rejected) => results[index] = Some(*rejected),
        }
    }
    // In SKU order, so that two batches holding the same SKUs lock them in the same order
    // (PostgreSQL would abort one of two batches that lock them crosswise). The sort is
    // stable: a SKU repeated in a batch is applied in the batch's order.
    valid.sort_by(|a, b| a.1.get().sku.cmp(&b.1.get().sku));
    let mut once = match begin(&catalog.db, key.as_ref().map(|k| k.0.as_str()), &print).await? {
        Begun::New(once) => once,
        Begun::Done(outcome) => return batch_answer(outcome),
    };
    let mut stock_set = false;
    for (index, fields) in valid {
        let upserted = repo::upsert(once.tx(), &fields).await?;
        let product = upserted.product;
        if upserted.stock_set {
            stage_set(once.tx(), &product.id, product.stock_quantity).await?;
            stock_set = true;
        }
        results[index] = Some(ItemResult {
            index,
            sku: Some(product.sku),
            status: upserted.status,
            id: Some(product.id),
            code: None,
            message: None,
            fields: Vec::new(),
        });
    }
    let mut result = BatchResult {
        created: 0,
        updated: 0,
        unchanged: 0,
        rejected: 0,
        results: results.into_iter().flatten().collect(),
    };
    for item in &result.results {
        match item.status {
            ItemStatus::Created => result.created += 1,
            ItemStatus::Updated => result.updated += 1,
            ItemStatus::Unchanged => result.unchanged += 1,
            ItemStatus::Rejected => result.rejected += 1,
        }
    }
    let answer = Stored {
        status: 200,
        resource_id: String::new(),
        body: serde_json::to_string(&result).unwrap_or_default(),
    };
    let outcome = once.finish(answer).await?;
    if stock_set {
        catalog.relay.notify_one();
    }
    batch_answer(outcome)
}

/// One item of a batch, checked on its own: a problem rejects the item, not the batch.
fn check_item(index: usize, item: serde_json::Value) -> Result<ProductFields, Box<ItemResult>> {
    let sku = item.get("sku").and_then(|s| s.as_str()).map(str::to_owned);
    let rejected = |invalid: Invalid| {
        Box::new(ItemResult {
            index,
            sku: sku.clone(),
            status: ItemStatus::Rejected,
            id: None,
            code: Some("validation_failed"),
            message: Some(ApiError::from(invalid.clone()).message),
            fields: invalid.0,
        })
    };
    let input: ProductInput = from_value(item).map_err(rejected)?;
    ProductFields::parse(input).map_err(rejected)
}

fn batch_answer(outcome: Outcome) -> Result<Response, ApiError> {
    match outcome {
        Outcome::Reused => Err(service_common::rest::idempotency_key_reused()),
        Outcome::Created(stored) | Outcome::Replayed(stored) => Ok((
            StatusCode::OK,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            stored.body,
        )
            .into_response()),
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "ecom catalog", description = "The product catalog."),
    paths(create, read, list, patch, delete, batch),
    components(schemas(Product, ProductInput, BatchInput, BatchResult, ItemResult, ItemStatus, FieldError, ErrorBody, ErrorDetail)),
    tags((name = "products", description = "The product catalog"))
)]
struct ApiDoc;

/// The catalog's API description.
pub fn openapi() -> utoipa::openapi::OpenApi {
    <ApiDoc as utoipa::OpenApi>::openapi()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header;
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
            "sku": "MUG-001",
            "name": "Coffee mug",
            "description": "A mug.",
            "category": "kitchen",
            "price": {"amount": 1299, "currency": "EUR"},
            "stock_quantity": 12,
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
        assert_eq!(body["error"]["message"], "no product with this id");
    }

    #[tokio::test]
    async fn a_stale_version_is_a_412_precondition_failed_naming_the_current_one() {
        let (status, retry_after, body) = repo_error(RepoError::Stale { current: 7 }).await;
        assert_eq!(status, StatusCode::PRECONDITION_FAILED);
        assert_eq!(retry_after, None);
        assert_eq!(body["error"]["code"], "precondition_failed");
        assert_eq!(
            body["error"]["message"],
            "If-Match does not name the current version (7)"
        );
    }

    #[tokio::test]
    async fn a_taken_sku_is_a_409_sku_taken_naming_the_sku() {
        let (status, retry_after, body) =
            repo_error(RepoError::SkuTaken("MUG-001".to_owned())).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(retry_after, None);
        assert_eq!(body["error"]["code"], "sku_taken");
        assert_eq!(
            body["error"]["message"],
            "the SKU \"MUG-001\" belongs to another product"
        );
    }

    #[tokio::test]
    async fn an_unavailable_database_is_a_503_retried_after_a_second() {
        let e = RepoError::Db(DbError::Unavailable("pool timed out".to_owned()));
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
        let e = RepoError::Db(DbError::Duplicate("products_pkey".to_owned()));
        let (status, retry_after, body) = repo_error(e).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(retry_after, None);
        assert_eq!(body["error"]["code"], "conflict");
    }

    #[tokio::test]
    async fn any_other_database_error_is_a_500_that_does_not_leak_the_reason() {
        let e = RepoError::Db(DbError::Other(
            "relation \"products\" does not exist".to_owned(),
        ));
        let (status, retry_after, body) = repo_error(e).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(retry_after, None);
        assert_eq!(body["error"]["code"], "internal");
        assert_eq!(
            body["error"]["message"],
            "the request failed inside the service"
        );
        assert!(!body.to_string().contains("relation"), "{body}");
    }

    #[test]
    fn a_valid_body_is_parsed_into_its_fields() {
        let fields = parse_input(valid()).expect("valid");
        let p = fields.get();
        assert_eq!(p.sku, "MUG-001");
        assert_eq!(p.name, "Coffee mug");
        assert_eq!(p.description.as_deref(), Some("A mug."));
        assert_eq!(p.category, "kitchen");
        assert_eq!((p.price.amount, p.price.currency.code()), (1299, "EUR"));
        assert_eq!(p.stock_quantity, 12);
    }

    #[test]
    fn a_body_without_a_description_is_parsed() {
        let fields = parse_input(with(json!({"description": null}))).expect("valid");
        assert_eq!(fields.get().description, None);
    }

    #[tokio::test]
    async fn a_body_that_is_not_an_object_is_an_invalid_type() {
        for value in [json!([valid()]), json!(null), json!("MUG-001"), json!(12)] {
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
            refused_field(with(json!({"colour": "blue"}))).await,
            field("colour", "unknown_field")
        );
    }

    #[tokio::test]
    async fn an_unknown_field_of_the_price_is_refused() {
        assert_eq!(
            refused_field(with(json!({"price": {"tax": 20}}))).await,
            field("price.tax", "unknown_field")
        );
    }

    #[tokio::test]
    async fn a_missing_sku_is_required() {
        assert_eq!(
            refused_field(with(json!({"sku": null}))).await,
            field("sku", "required")
        );
    }

    #[tokio::test]
    async fn a_missing_currency_is_required() {
        assert_eq!(
            refused_field(with(json!({"price": {"currency": null}}))).await,
            field("price.currency", "required")
        );
    }

    #[tokio::test]
    async fn a_stock_quantity_in_a_string_is_an_invalid_type() {
        assert_eq!(
            refused_field(with(json!({"stock_quantity": "12"}))).await,
            field("stock_quantity", "invalid_type")
        );
    }

    #[tokio::test]
    async fn a_fractional_amount_is_an_invalid_type() {
        assert_eq!(
            refused_field(with(json!({"price": {"amount": 12.99}}))).await,
            field("price.amount", "invalid_type")
        );
    }

    #[tokio::test]
    async fn a_name_that_is_a_number_is_an_invalid_type() {
        assert_eq!(
            refused_field(with(json!({"name": 42}))).await,
            field("name", "invalid_type")
        );
    }

    #[tokio::test]
    async fn a_stock_quantity_beyond_64_bits_is_an_invalid_value() {
        assert_eq!(
            refused_field(with(json!({"stock_quantity": u64::MAX}))).await,
            field("stock_quantity", "invalid_value")
        );
    }

    #[tokio::test]
    async fn a_lower_case_or_unknown_currency_is_an_invalid_value() {
        for currency in ["eur", "EURO", "XAU", ""] {
            assert_eq!(
                refused_field(with(json!({"price": {"currency": currency}}))).await,
                field("price.currency", "invalid_value"),
                "{currency:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_currency_that_is_a_number_is_an_invalid_type() {
        assert_eq!(
            refused_field(with(json!({"price": {"currency": 978}}))).await,
            field("price.currency", "invalid_type")
        );
    }

    #[tokio::test]
    async fn a_well_typed_body_with_invalid_fields_lists_them_all() {
        let (status, body) = refused(with(json!({
            "sku": "",
            "name": "",
            "stock_quantity": -1,
        })))
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["code"], "validation_failed");
        assert_eq!(
            body["error"]["message"],
            "sku: must be 1 to 64 characters; name: must not be empty; \
             stock_quantity: must be from 0 to 1000000000"
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
                ("sku", "invalid_format"),
                ("name", "required"),
                ("stock_quantity", "out_of_range"),
            ]
        );
    }

    #[test]
    fn a_valid_batch_item_is_accepted() {
        let fields = check_item(0, valid()).expect("valid");
        assert_eq!(fields.get().sku, "MUG-001");
    }

    #[test]
    fn an_invalid_batch_item_is_rejected_with_its_index_sku_and_fields() {
        let rejected = check_item(3, with(json!({"name": ""}))).expect_err("rejected");
        assert_eq!(rejected.index, 3);
        assert_eq!(rejected.sku.as_deref(), Some("MUG-001"));
        assert_eq!(rejected.status, ItemStatus::Rejected);
        assert_eq!(rejected.id, None);
        assert_eq!(rejected.code, Some("validation_failed"));
        assert_eq!(rejected.message.as_deref(), Some("name: must not be empty"));
        assert_eq!(
            rejected.fields,
            [FieldError::new("name", "required", "must not be empty")]
        );
    }

    #[test]
    fn a_batch_item_with_an_unknown_field_is_rejected() {
        let rejected = check_item(0, with(json!({"colour": "blue"}))).expect_err("rejected");
        assert_eq!(rejected.code, Some("validation_failed"));
        assert_eq!(rejected.fields.len(), 1);
        assert_eq!(
            (rejected.fields[0].field.as_str(), rejected.fields[0].code),
            ("colour", "unknown_field")
        );
    }

    #[test]
    fn a_batch_item_that_is_not_an_object_is_rejected_without_a_sku() {
        let rejected = check_item(1, json!("MUG-001")).expect_err("rejected");
        assert_eq!(rejected.index, 1);
        assert_eq!(rejected.sku, None);
        assert_eq!(rejected.status, ItemStatus::Rejected);
        assert_eq!(
            (rejected.fields[0].field.as_str(), rejected.fields[0].code),
            ("", "invalid_type")
        );
    }

    #[test]
    fn a_batch_item_whose_sku_is_not_a_string_is_rejected_without_a_sku() {
        let rejected = check_item(0, with(json!({"sku": 7}))).expect_err("rejected");
        assert_eq!(rejected.sku, None);
        assert_eq!(
            (rejected.fields[0].field.as_str(), rejected.fields[0].code),
            ("sku", "invalid_type")
        );
    }
}
