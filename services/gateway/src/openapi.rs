//! The platform's one API description: every service's document merged, with what the gateway
//! adds to each operation taken from the same table that enforces it ([`route`]): the token a
//! route needs (`security`, with 401 and 403), and the answers the gateway itself may give
//! (429, 503, 504; 408 and 413 where there is a body, and the 415 of the services' common body
//! reader).

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{
    ClientCredentials, Flow, Http, HttpAuthScheme, OAuth2, Password, Scopes, SecurityRequirement,
    SecurityScheme,
};
use utoipa::openapi::{
    ContentBuilder, HttpMethod, OpenApi, Ref, RefOr, Response, ResponseBuilder, header::Header,
};

use crate::access::{Access, route};

/// The token endpoint, relative to the gateway.
const TOKEN_URL: &str = "/api/v1/auth/token";

/// `docs` merged into one description, as the gateway serves it.
pub fn describe(docs: impl IntoIterator<Item = OpenApi>) -> OpenApi {
    let mut docs = docs.into_iter();
    let mut doc = docs.next().unwrap_or_else(|| {
        utoipa::openapi::OpenApiBuilder::new()
            .info(utoipa::openapi::Info::new(
                "ecom",
                env!("CARGO_PKG_VERSION"),
            ))
            .build()
    });
    for other in docs {
        doc.merge(other);
    }
    doc.info.title = "ecom".to_owned();
    doc.info.description = Some(
        "Every public API of the platform, as the gateway serves it. Routes marked with a lock \
         need a bearer token from `POST /api/v1/auth/token`; every route is rate-limited per \
         caller (`429` with `Retry-After` and the `RateLimit` headers)."
            .to_owned(),
    );
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            Http::builder()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some("A token from POST /api/v1/auth/token"))
                .build(),
        ),
    );
    let scopes = || {
        Scopes::from_iter([
            ("catalog:write", "Change the catalog (machine clients)"),
            ("analytics:read", "Read the analytics API (machine clients)"),
        ])
    };
    components.add_security_scheme(
        "oauth2",
        SecurityScheme::OAuth2(OAuth2::new([
            Flow::Password(Password::new(TOKEN_URL, Scopes::new())),
            Flow::ClientCredentials(ClientCredentials::new(TOKEN_URL, scopes())),
        ])),
    );
    if !components.schemas.contains_key("ErrorBody") {
        use service_common::docs::{ErrorBody, ErrorDetail};
        use utoipa::{PartialSchema, ToSchema};
        components
            .schemas
            .insert(ErrorBody::name().into_owned(), ErrorBody::schema());
        components
            .schemas
            .insert(ErrorDetail::name().into_owned(), ErrorDetail::schema());
    }

    for (path, item) in doc.paths.paths.iter_mut() {
        let operations = [
            (HttpMethod::Get, &mut item.get),
            (HttpMethod::Put, &mut item.put),
            (HttpMethod::Post, &mut item.post),
            (HttpMethod::Delete, &mut item.delete),
            (HttpMethod::Options, &mut item.options),
            (HttpMethod::Head, &mut item.head),
            (HttpMethod::Patch, &mut item.patch),
        ];
        for (method, operation) in operations {
            let Some(operation) = operation else { continue };
            let method = method_of(&method);
            let Some(route) = route(&method, path) else {
                continue;
            };
            if let Access::AnyOf { roles, scopes } = route.access {
                operation.security = Some(vec![
                    SecurityRequirement::new("bearer", Vec::<String>::new()),
                    SecurityRequirement::new("oauth2", scopes.iter().copied()),
                ]);
                let who: Vec<&str> = roles.iter().chain(scopes).copied().collect();
                add(
                    operation,
                    "401",
                    error("A token is missing, expired or invalid"),
                );
                add(
                    operation,
                    "403",
                    error(&format!("The token carries none of: {}", who.join(", "))),
                );
            }
            if operation.request_body.is_some() {
                add(operation, "408", error("The body did not arrive in time"));
                add(operation, "413", error("The body is too large"));
                // Every service reads bodies through service-common's extractor, which
                // refuses other media types.
                add(
                    operation,
                    "415",
                    error(
                        "The body is not of a media type the route reads (`unsupported_media_type`)",
                    ),
                );
            }
            add(operation, "429", rate_limited());
            add(
                operation,
                "503",
                error("The service is unavailable (its circuit breaker may be open) or busy"),
            );
            add(
                operation,
                "504",
                error("The service did not answer within the gateway's timeout"),
            );
        }
    }
    doc
}

fn method_of(method: &HttpMethod) -> axum::http::Method {
    use axum::http::Method;
    match method {
        HttpMethod::Get => Method::GET,
        HttpMethod::Put => Method::PUT,
        HttpMethod::Post => Method::POST,
        HttpMethod::Delete => Method::DELETE,
        HttpMethod::Options => Method::OPTIONS,
        HttpMethod::Head => Method::HEAD,
        HttpMethod::Patch => Method::PATCH,
        HttpMethod::Trace => Method::TRACE,
    }
}

fn add(operation: &mut Operation, status: &str, response: Response) {
    operation
        .responses
        .responses
        .entry(status.to_owned())
        .or_insert(RefOr::T(response));
}

fn error_builder(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorBody")))
            .build(),
    )
}

fn error(description: &str) -> Response {
    error_builder(description).build()
}

fn rate_limited() -> Response {
    let text = || {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .build()
    };
    let seconds = || {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::Integer)
            .minimum(Some(1))
            .build()
    };
    let mut retry = Header::new(seconds());
    retry.description = Some("Seconds until a request would be admitted".to_owned());
    let mut policy = Header::new(text());
    policy.description = Some("The policy: `\"<who>-<class>\";q=<burst>;w=<seconds>`".to_owned());
    let mut state = Header::new(text());
    state.description =
        Some("What is left: `\"<who>-<class>\";r=<remaining>;t=<seconds>`".to_owned());
    error_builder("Too many requests from this caller on this class of routes (`rate_limited`)")
        .header("Retry-After", retry)
        .header("RateLimit-Policy", policy)
        .header("RateLimit", state)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_and_gateway_answers_follow_the_access_table() {
        let doc: OpenApi = serde_json::from_value(serde_json::json!({
            "openapi": "3.1.0",
            "info": {"title": "t", "version": "1"},
            "paths": {
                "/api/v1/products/{id}": {
                    "get": {"responses": {"200": {"description": "ok"}}},
                    "patch": {
                        "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}},
                        "responses": {"200": {"description": "ok"}}
                    }
                }
            }
        }))
        .unwrap();
        let out = serde_json::to_value(describe([doc])).unwrap();
        let get = &out["paths"]["/api/v1/products/{id}"]["get"];
        assert!(get.get("security").is_none(), "reading products is public");
        assert!(get["responses"]["429"]["headers"]["Retry-After"].is_object());
        assert!(get["responses"].get("401").is_none());
        let patch = &out["paths"]["/api/v1/products/{id}"]["patch"];
        assert_eq!(patch["security"][0], serde_json::json!({"bearer": []}));
        assert_eq!(
            patch["security"][1],
            serde_json::json!({"oauth2": ["catalog:write"]})
        );
        for status in ["401", "403", "408", "413", "415", "429", "503", "504"] {
            assert!(patch["responses"][status].is_object(), "{status}");
        }
        assert!(out["components"]["securitySchemes"]["bearer"].is_object());
        assert!(out["components"]["schemas"]["ErrorBody"].is_object());
    }
}
