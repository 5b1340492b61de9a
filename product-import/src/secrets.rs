//! The importer's client secret from AWS Secrets Manager, by ARN.

use aws_sdk_secretsmanager::error::ProvideErrorMetadata;

/// Why the secret could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Secrets Manager refused or could not be reached (its error code and message).
    #[error("cannot read the secret {arn}: {why}")]
    Unreadable { arn: String, why: String },
    /// The secret is binary.
    #[error("the secret {arn} holds no string")]
    NotAString { arn: String },
}

/// The secret's value: the `client_secret` field when the secret is a JSON object (as the
/// console's key/value secrets are), or else the whole string.
pub async fn client_secret(arn: &str) -> Result<String, SecretError> {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let client = aws_sdk_secretsmanager::Client::new(&config);
    let value = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| {
            let why = match (e.code(), e.message()) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                _ => crate::api::error_chain(&e),
            };
            SecretError::Unreadable {
                arn: arn.to_owned(),
                why,
            }
        })?;
    let text = value
        .secret_string()
        .ok_or_else(|| SecretError::NotAString {
            arn: arn.to_owned(),
        })?;
    Ok(from_secret_string(text))
}

fn from_secret_string(text: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(fields)) => match fields.get("client_secret") {
            Some(serde_json::Value::String(secret)) => secret.clone(),
            _ => text.to_owned(),
        },
        _ => text.trim().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_plain_or_a_key_value_secret() {
        assert_eq!(super::from_secret_string("s3cr3t\n"), "s3cr3t");
        assert_eq!(super::from_secret_string(r#"{"client_secret":"x"}"#), "x");
    }
}
