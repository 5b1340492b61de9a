//! The OpenAPI schema of [`WindowResult`], beside the type whose `Serialize` writes the
//! contract's JSON, so that the JSON and its description are defined in one place (feature
//! `openapi`; the core itself knows nothing of HTTP).

use std::borrow::Cow;

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};

use crate::core::result::WindowResult;

impl utoipa::PartialSchema for WindowResult {
    fn schema() -> RefOr<Schema> {
        let string = |description: &str| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some(description))
        };
        let time = |description: &str| {
            string(description).format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
        };
        let count = |description: &str| {
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                .minimum(Some(0))
                .description(Some(description))
        };
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "The unique users of a product in a one-minute window of event time (the window-result contract)",
            ))
            .property("product_id", string("The product"))
            .property("window_start", time("RFC 3339, UTC: the window is [window_start, window_end)"))
            .property("window_end", time("RFC 3339, UTC: window_start + 1 minute"))
            .property("unique_user_count", count("Distinct user_id in the window"))
            .property("event_count", count("Events counted in the window"))
            .property(
                "approximate",
                ObjectBuilder::new()
                    .schema_type(Type::Boolean)
                    .description(Some("`true` when unique_user_count is a HyperLogLog++ estimate")),
            )
            .required("product_id")
            .required("window_start")
            .required("window_end")
            .required("unique_user_count")
            .required("event_count")
            .required("approximate")
            .into()
    }
}

impl utoipa::ToSchema for WindowResult {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("WindowResult")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The description names exactly the fields the `Serialize` writes, all required.
    #[test]
    fn the_schema_describes_exactly_the_serialized_fields() {
        let result = WindowResult {
            product_id: "42".into(),
            window_start_ms: 0,
            unique_users: 1,
            events: 2,
            approximate: false,
        };
        let json = serde_json::to_value(&result).unwrap();
        let mut written: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        written.sort_unstable();
        let RefOr::T(Schema::Object(schema)) = <WindowResult as utoipa::PartialSchema>::schema()
        else {
            panic!("an object schema");
        };
        let mut described: Vec<&str> = schema.properties.keys().map(String::as_str).collect();
        described.sort_unstable();
        assert_eq!(written, described);
        let mut required: Vec<&str> = schema.required.iter().map(String::as_str).collect();
        required.sort_unstable();
        assert_eq!(written, required);
    }
}
