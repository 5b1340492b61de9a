//! What every service's API description shares: the schema of the standard error body, and
//! the routes that serve a description (`/openapi.json`) and its docs page (`/docs`, Swagger UI
//! with every asset inside the binary).

use axum::Router;
use serde::Serialize;
use utoipa::ToSchema;

/// The standard error body: `{"error": {"code", "message"}}` (some errors add fields beside
/// `error`, such as ingest's `rejected`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong: a stable code and a message for people.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

/// `/openapi.json` and `/docs` for `doc`.
pub fn router(doc: utoipa::openapi::OpenApi) -> Router {
    Router::new().merge(utoipa_swagger_ui::SwaggerUi::new("/docs").url("/openapi.json", doc))
}
