//! Amazon MSK's IAM access control over SASL OAUTHBEARER: the token is a SigV4-presigned
//! `GET https://kafka.<region>.amazonaws.com/?Action=kafka-cluster:Connect` (service
//! `kafka-cluster`, valid 15 minutes), base64url-encoded without padding, as AWS's MSK IAM SASL
//! signers make it. The broker checks the signature and then the caller's IAM policy
//! (`kafka-cluster:Connect`, `WriteData`, `ReadData`...), so no Kafka password exists.
//!
//! Credentials and region come from the AWS SDK's default chain on every refresh (environment,
//! web identity from IRSA or a projected token, the container or instance role), so rotated
//! credentials are picked up; librdkafka asks for a new token at 80 % of its lifetime.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// How long a token is valid (the signers' choice; MSK accepts up to 15 minutes).
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(900);
const SERVICE: &str = "kafka-cluster";
const ACTION: &str = "kafka-cluster:Connect";
const USER_AGENT: &str = concat!("ecom/", env!("CARGO_PKG_VERSION"));

/// A signed token and when it expires (milliseconds since the epoch, what librdkafka wants).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub token: String,
    pub expires_at_ms: i64,
}

/// Why no token could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot make an MSK IAM token: {0}")]
pub struct TokenError(String);

/// A token from the AWS SDK's default credentials and region, now.
///
/// Called from librdkafka's refresh (a synchronous callback, possibly on a thread that is
/// inside a Tokio runtime), so the SDK's asynchronous chain runs on a thread of its own.
pub fn token_from_environment() -> Result<Token, TokenError> {
    let loaded = std::thread::spawn(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| TokenError(format!("no runtime for the AWS SDK: {e}")))?;
        runtime.block_on(async {
            let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
            let region = config
                .region()
                .map(|r| r.to_string())
                .ok_or_else(|| TokenError("no AWS region (set AWS_REGION)".into()))?;
            let provider = config
                .credentials_provider()
                .ok_or_else(|| TokenError("no AWS credentials provider".into()))?;
            let credentials = provider
                .provide_credentials()
                .await
                .map_err(|e| TokenError(format!("no AWS credentials: {e}")))?;
            Ok((region, credentials))
        })
    })
    .join()
    .map_err(|_| TokenError("the credentials thread panicked".into()))?;
    let (region, credentials) = loaded?;
    token(&credentials, &region, SystemTime::now())
}

/// The token for `credentials` in `region`, signed at `now`.
pub fn token(
    credentials: &Credentials,
    region: &str,
    now: SystemTime,
) -> Result<Token, TokenError> {
    let host = format!("kafka.{region}.amazonaws.com");
    let action = [("Action", Cow::Borrowed(ACTION))];
    let unsigned = format!("https://{host}/?{}", query(&action));
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(TOKEN_LIFETIME);
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SERVICE)
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| TokenError(e.to_string()))?
        .into();
    let request = SignableRequest::new(
        "GET",
        unsigned.as_str(),
        std::iter::empty(),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| TokenError(e.to_string()))?;
    let (instructions, _) = sign(request, &params)
        .map_err(|e| TokenError(e.to_string()))?
        .into_parts();
    let mut pairs: Vec<(&str, Cow<'_, str>)> = action.to_vec();
    pairs.extend(instructions.params().iter().map(|(k, v)| (*k, v.clone())));
    // After signing, as the signers do: the broker leaves it out of the signature.
    pairs.push(("User-Agent", Cow::Borrowed(USER_AGENT)));
    let signed = format!("https://{host}/?{}", query(&pairs));
    let signed_at = now
        .duration_since(UNIX_EPOCH)
        .map_err(|_| TokenError("the clock is before 1970".into()))?;
    // X-Amz-Date has whole seconds: the token expires 15 minutes after that second.
    let expires_at_ms = (signed_at.as_secs() + TOKEN_LIFETIME.as_secs()) as i64 * 1000;
    Ok(Token {
        token: URL_SAFE_NO_PAD.encode(signed.as_bytes()),
        expires_at_ms,
    })
}

/// `k=v&...` with RFC 3986 percent-encoding (SigV4's canonical form: only unreserved
/// characters stay as they are).
fn query(pairs: &[(&str, Cow<'_, str>)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};

    use super::*;

    fn decode(token: &str) -> (String, Vec<(String, String)>) {
        let url = String::from_utf8(URL_SAFE_NO_PAD.decode(token).unwrap()).unwrap();
        let (base, query) = url.split_once('?').unwrap();
        let pairs = query
            .split('&')
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap();
                (unescape(k), unescape(v))
            })
            .collect();
        (base.to_owned(), pairs)
    }

    fn unescape(text: &str) -> String {
        let bytes = text.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    }

    fn hmac(key: &[u8], data: &str) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(data.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// SigV4 written out from AWS's specification, independently of aws-sigv4: what the
    /// broker computes from the token's own query string.
    fn expected_signature(secret: &str, region: &str, params: &BTreeMap<String, String>) -> String {
        let canonical_query = params
            .iter()
            .filter(|(k, _)| k.as_str() != "X-Amz-Signature")
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let empty_body = hex(&Sha256::digest(b""));
        let canonical_request = format!(
            "GET\n/\n{canonical_query}\nhost:kafka.{region}.amazonaws.com\n\nhost\n{empty_body}"
        );
        let date_time = &params["X-Amz-Date"];
        let date = &date_time[..8];
        let scope = format!("{date}/{region}/kafka-cluster/aws4_request");
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{date_time}\n{scope}\n{}",
            hex(&Sha256::digest(canonical_request.as_bytes()))
        );
        let key = hmac(format!("AWS4{secret}").as_bytes(), date);
        let key = hmac(&key, region);
        let key = hmac(&key, "kafka-cluster");
        let key = hmac(&key, "aws4_request");
        hex(&hmac(&key, &to_sign))
    }

    #[test]
    fn the_token_is_a_presigned_connect_the_broker_can_verify() {
        let credentials = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            Some("session/token+with=odd chars".into()),
            None,
            "test",
        );
        // 2025-01-02T03:04:05Z
        let now = UNIX_EPOCH + Duration::from_secs(1_735_787_045);
        let token = token(&credentials, "eu-west-1", now).unwrap();
        assert!(
            !token.token.contains(['+', '/', '=']),
            "base64url without padding"
        );
        assert_eq!(token.expires_at_ms, (1_735_787_045 + 900) * 1000);

        let (base, pairs) = decode(&token.token);
        assert_eq!(base, "https://kafka.eu-west-1.amazonaws.com/");
        assert_eq!(pairs[0], ("Action".into(), "kafka-cluster:Connect".into()));
        assert_eq!(pairs.last().unwrap().0, "User-Agent");
        let params: BTreeMap<String, String> = pairs
            .into_iter()
            .filter(|(k, _)| k != "User-Agent")
            .collect();
        assert_eq!(params["X-Amz-Algorithm"], "AWS4-HMAC-SHA256");
        assert_eq!(
            params["X-Amz-Credential"],
            "AKIDEXAMPLE/20250102/eu-west-1/kafka-cluster/aws4_request"
        );
        assert_eq!(params["X-Amz-Date"], "20250102T030405Z");
        assert_eq!(params["X-Amz-Expires"], "900");
        assert_eq!(params["X-Amz-SignedHeaders"], "host");
        assert_eq!(
            params["X-Amz-Security-Token"],
            "session/token+with=odd chars"
        );
        assert_eq!(
            params["X-Amz-Signature"],
            expected_signature(
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                "eu-west-1",
                &params
            )
        );
    }

    #[test]
    fn another_secret_gives_a_signature_the_broker_would_refuse() {
        let credentials = Credentials::new("AKIDEXAMPLE", "right-secret", None, None, "test");
        let now = UNIX_EPOCH + Duration::from_secs(1_735_787_045);
        let (_, pairs) = decode(&token(&credentials, "us-east-1", now).unwrap().token);
        let params: BTreeMap<String, String> = pairs
            .into_iter()
            .filter(|(k, _)| k != "User-Agent")
            .collect();
        assert!(!params.contains_key("X-Amz-Security-Token"));
        assert_ne!(
            params["X-Amz-Signature"],
            expected_signature("wrong-secret", "us-east-1", &params)
        );
        assert_eq!(
            params["X-Amz-Signature"],
            expected_signature("right-secret", "us-east-1", &params)
        );
    }
}
