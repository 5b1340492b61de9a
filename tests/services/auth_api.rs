//! Identity: registration, the two grants, failed-login throttling, and the one verifier
//! refusing every kind of bad token and following key rotation.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::{Value, json};
use service_common::auth::{AuthError, Claims, Verifier, VerifierConfig};

use crate::on_both_databases;
use crate::support::{AUDIENCE, Answer, Backend, ISSUER, Platform};

fn verifier(p: &Platform) -> Verifier {
    Verifier::new(VerifierConfig {
        jwks_url: format!("{}/.well-known/jwks.json", p.auth.base),
        issuer: ISSUER.to_owned(),
        audience: AUDIENCE.to_owned(),
    })
}

async fn token_form(p: &Platform, form: &[(&str, &str)]) -> Answer {
    let r = p
        .http
        .post(format!("{}/api/v1/auth/token", p.auth.base))
        .form(form)
        .send()
        .await
        .unwrap();
    Answer::read(r, "token").await
}

async fn register(p: &Platform, email: &str, password: &str) -> Answer {
    p.post(
        &format!("{}/api/v1/auth/register", p.auth.base),
        &json!({"email": email, "password": password, "name": "Ann"}),
    )
    .await
}

async fn a_customer_registers_and_gets_a_token_every_service_can_verify(backend: Backend) {
    let p = Platform::start(backend).await;
    let registered = register(&p, "Ann@Example.com", "blue-kettle-on-saturday").await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{}",
        registered.body
    );
    let customer_id = registered.body["customer_id"].as_str().unwrap().to_owned();
    // The customer record exists in the customers service.
    let record = p.get(&format!("{}/{customer_id}", p.customers_url())).await;
    assert_eq!(record.body["email"], "Ann@Example.com");

    let issued = token_form(
        &p,
        &[
            ("grant_type", "password"),
            ("username", "ann@example.com"),
            ("password", "blue-kettle-on-saturday"),
        ],
    )
    .await;
    assert_eq!(issued.status, StatusCode::OK, "{}", issued.body);
    assert_eq!(issued.header("cache-control"), "no-store");
    assert_eq!(issued.body["token_type"], "Bearer");
    assert_eq!(issued.body["expires_in"], 600);
    let claims = verifier(&p)
        .verify(issued.body["access_token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(claims.sub, customer_id, "the subject is the customer id");
    assert_eq!(claims.roles, ["customer"]);
    assert_eq!(
        (claims.iss.as_str(), claims.aud.as_str()),
        (ISSUER, AUDIENCE)
    );
    assert!(claims.exp > claims.iat && !claims.jti.is_empty());

    // Taken, weak, and malformed registrations.
    let again = register(&p, "ANN@example.com", "another-long-password").await;
    assert_eq!(
        (again.status, again.code()),
        (StatusCode::CONFLICT, "email_taken")
    );
    for weak in ["short", "Password1234", "aaaaaaaaaaaaaaa"] {
        let a = register(&p, "bo@example.com", weak).await;
        assert_eq!(
            (a.status, a.code()),
            (StatusCode::BAD_REQUEST, "validation_failed"),
            "{weak}"
        );
        assert_eq!(a.body["fields"][0]["field"], "password");
    }
    let bad_email = register(&p, "not-an-email", "blue-kettle-on-saturday").await;
    assert_eq!(
        bad_email.body["fields"][0]["field"], "email",
        "{}",
        bad_email.body
    );
    let extra = p
        .post(
            &format!("{}/api/v1/auth/register", p.auth.base),
            &json!({"email": "c@example.com", "password": "blue-kettle-on-saturday", "name": "C", "role": "admin"}),
        )
        .await;
    assert_eq!(extra.body["fields"][0]["code"], "unknown_field");
}

async fn machines_get_scoped_tokens_with_client_credentials(backend: Backend) {
    let p = Platform::start(backend).await;
    auth::ensure_client(
        &p.auth_db,
        "importer",
        "importer-secret-1234",
        "catalog:write analytics:read",
    )
    .await
    .unwrap();
    auth::ensure_admin(&p.auth_db, "admin-password-5678")
        .await
        .unwrap();
    let v = verifier(&p);

    let by_form = token_form(
        &p,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "importer"),
            ("client_secret", "importer-secret-1234"),
            ("scope", "catalog:write"),
        ],
    )
    .await;
    assert_eq!(by_form.status, StatusCode::OK, "{}", by_form.body);
    assert_eq!(by_form.body["scope"], "catalog:write");
    let claims = v
        .verify(by_form.body["access_token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(claims.sub, "importer");
    assert!(claims.has_scope("catalog:write") && !claims.has_scope("analytics:read"));
    assert!(claims.roles.is_empty());

    // HTTP Basic, and JSON.
    let r = p
        .http
        .post(format!("{}/api/v1/auth/token", p.auth.base))
        .basic_auth("importer", Some("importer-secret-1234"))
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    let basic = Answer::read(r, "basic").await;
    assert_eq!(basic.body["scope"], "catalog:write analytics:read");

    let admin = p
        .post(
            &format!("{}/api/v1/auth/token", p.auth.base),
            &json!({"grant_type": "password", "username": "admin", "password": "admin-password-5678"}),
        )
        .await;
    let claims = v
        .verify(admin.body["access_token"].as_str().unwrap())
        .await
        .unwrap();
    assert!(claims.has_role("admin"));

    let wrong = token_form(
        &p,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "importer"),
            ("client_secret", "nope"),
        ],
    )
    .await;
    assert_eq!(
        (wrong.status, wrong.code()),
        (StatusCode::UNAUTHORIZED, "invalid_client")
    );
    let unknown = token_form(
        &p,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "ghost"),
            ("client_secret", "x"),
        ],
    )
    .await;
    assert_eq!(unknown.code(), "invalid_client");
    let scope = token_form(
        &p,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "importer"),
            ("client_secret", "importer-secret-1234"),
            ("scope", "orders:write"),
        ],
    )
    .await;
    assert_eq!(
        (scope.status, scope.code()),
        (StatusCode::BAD_REQUEST, "invalid_scope")
    );
    let grant = token_form(&p, &[("grant_type", "implicit")]).await;
    assert_eq!(grant.code(), "unsupported_grant_type");
    let missing = token_form(&p, &[("grant_type", "password"), ("username", "admin")]).await;
    assert_eq!(missing.code(), "invalid_request");
}

async fn failed_logins_are_slowed_then_refused(backend: Backend) {
    let p = Platform::start(backend).await;
    register(&p, "dee@example.com", "blue-kettle-on-saturday").await;
    let wrong = [
        ("grant_type", "password"),
        ("username", "dee@example.com"),
        ("password", "wrong-password-0"),
    ];
    for _ in 0..10 {
        let a = token_form(&p, &wrong).await;
        assert_eq!(
            (a.status, a.code()),
            (StatusCode::BAD_REQUEST, "invalid_grant")
        );
    }
    // Now even the right password waits for the window to pass.
    let right = [
        ("grant_type", "password"),
        ("username", "dee@example.com"),
        ("password", "blue-kettle-on-saturday"),
    ];
    let refused = token_form(&p, &right).await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts")
    );
    assert!(refused.header("retry-after").parse::<u32>().unwrap() > 0);
    // Another account is not affected.
    register(&p, "eve@example.com", "blue-kettle-on-saturday").await;
    let other = token_form(
        &p,
        &[
            ("grant_type", "password"),
            ("username", "eve@example.com"),
            ("password", "blue-kettle-on-saturday"),
        ],
    )
    .await;
    assert_eq!(other.status, StatusCode::OK);
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(exp: u64, iss: &str, aud: &str) -> Claims {
    Claims {
        iss: iss.into(),
        aud: aud.into(),
        sub: "someone".into(),
        exp,
        iat: now(),
        jti: "j".into(),
        roles: vec!["admin".into()],
        scope: String::new(),
    }
}

async fn the_verifier_refuses_bad_tokens_and_follows_key_rotation(backend: Backend) {
    let p = Platform::start(backend).await;
    let keys = auth::Keys::open(p.auth_db.clone(), Duration::from_secs(600))
        .await
        .unwrap();
    let v = verifier(&p);
    let good = keys
        .sign(&claims(now() + 600, ISSUER, AUDIENCE))
        .await
        .unwrap();
    assert!(v.verify(&good).await.is_ok());

    let invalid = |r: Result<Claims, AuthError>| matches!(r, Err(AuthError::Invalid(_)));
    let expired = keys
        .sign(&claims(now() - 120, ISSUER, AUDIENCE))
        .await
        .unwrap();
    assert!(invalid(v.verify(&expired).await), "expired");
    let issuer = keys
        .sign(&claims(now() + 600, "http://elsewhere", AUDIENCE))
        .await
        .unwrap();
    assert!(invalid(v.verify(&issuer).await), "wrong issuer");
    let audience = keys
        .sign(&claims(now() + 600, ISSUER, "other"))
        .await
        .unwrap();
    assert!(invalid(v.verify(&audience).await), "wrong audience");

    // A changed payload under the same signature.
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    payload["sub"] = json!("admin-impostor");
    parts[1] = URL_SAFE_NO_PAD.encode(payload.to_string());
    assert!(invalid(v.verify(&parts.join(".")).await), "tampered");

    // `alg: none`, and HS256 keyed with the published public key.
    let kid = serde_json::from_slice::<Value>(
        &URL_SAFE_NO_PAD
            .decode(good.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap()["kid"]
        .clone();
    let none_header =
        URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "JWT", "kid": kid}).to_string());
    assert!(
        invalid(v.verify(&format!("{none_header}.{}.", parts[1])).await),
        "alg none"
    );
    let jwks: Value = p
        .http
        .get(format!("{}/.well-known/jwks.json", p.auth.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let public = jwks["keys"][0]["x"].as_str().unwrap().to_owned();
    let mut hs = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs.kid = kid.as_str().map(str::to_owned);
    let forged = jsonwebtoken::encode(
        &hs,
        &claims(now() + 600, ISSUER, AUDIENCE),
        &jsonwebtoken::EncodingKey::from_secret(public.as_bytes()),
    )
    .unwrap();
    assert!(
        invalid(v.verify(&forged).await),
        "HS256 with the public key"
    );
    assert!(invalid(v.verify("not.a.token").await));
    assert!(invalid(v.verify("").await));

    // Rotation: the old key still verifies its tokens; the new one is fetched at first sight.
    let new_kid = keys.rotate().await.unwrap();
    let fresh = keys
        .sign(&claims(now() + 600, ISSUER, AUDIENCE))
        .await
        .unwrap();
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(fresh.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["kid"], new_kid.as_str());
    // The verifier refetches the set for the unknown key (no sooner than its refetch interval
    // after the last fetch), and the service publishes the key rotated in beside it.
    tokio::time::sleep(service_common::auth::REFETCH_INTERVAL).await;
    assert!(v.verify(&fresh).await.is_ok(), "the new key is found");
    assert!(v.verify(&good).await.is_ok(), "old tokens still verify");
    let published: Value = p
        .http
        .get(format!("{}/.well-known/jwks.json", p.auth.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        published["keys"].as_array().unwrap().len(),
        2,
        "both published"
    );
}

on_both_databases!(
    a_customer_registers_and_gets_a_token_every_service_can_verify,
    machines_get_scoped_tokens_with_client_credentials,
    failed_logins_are_slowed_then_refused,
    the_verifier_refuses_bad_tokens_and_follows_key_rotation,
);
