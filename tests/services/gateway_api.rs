//! The gateway in front of the real services: routing, the access rules of the brief, request
//! ids, and upstreams that are down or silent.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::{Method, StatusCode};
use serde_json::json;
use service_common::auth::{Claims, VerifierConfig};

use crate::on_both_databases;
use crate::support::{AUDIENCE, Answer, Backend, ISSUER, Platform};

struct Gateway {
    base: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// A gateway in front of `p`; ingest at a closed port, analytics at one that never answers.
async fn gateway(p: &Platform, silent: &str) -> Gateway {
    let closed = format!("http://127.0.0.1:{}", testkit::free_port());
    let mut config = gateway::Config::new(
        ([127, 0, 0, 1], 0).into(),
        gateway::UpstreamUrls {
            auth: p.auth.base.clone(),
            catalog: p.catalog.base.clone(),
            customers: p.customers.base.clone(),
            orders: p.orders.base.clone(),
            ingest: closed.clone(),
            analytics: silent.to_owned(),
            inventory: closed.clone(),
            payments: closed,
        },
        VerifierConfig {
            jwks_url: format!("{}/.well-known/jwks.json", p.auth.base),
            issuer: ISSUER.to_owned(),
            audience: AUDIENCE.to_owned(),
        },
    );
    config.resilience.timeout = Duration::from_secs(1);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (addr, server) = gateway::build(config, async {
        let _ = stopped.await;
    })
    .await
    .unwrap();
    tokio::spawn(server);
    Gateway {
        base: format!("http://{addr}"),
        _stop: stop,
    }
}

async fn call(
    p: &Platform,
    method: Method,
    url: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> Answer {
    let mut request = p.http.request(method, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    Answer::read(request.send().await.unwrap(), url).await
}

async fn token(g: &Gateway, p: &Platform, form: &[(&str, &str)]) -> String {
    let r = p
        .http
        .post(format!("{}/api/v1/auth/token", g.base))
        .form(form)
        .send()
        .await
        .unwrap();
    let a = Answer::read(r, "token").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    a.body["access_token"].as_str().unwrap().to_owned()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn the_gateway_routes_and_enforces_the_access_rules(backend: Backend) {
    let p = Platform::start(backend).await;
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            open.push(stream);
        }
    });
    let g = gateway(&p, &silent_url).await;
    auth::ensure_admin(&p.auth_db, "admin-password-5678")
        .await
        .unwrap();
    auth::ensure_client(
        &p.auth_db,
        "importer",
        "importer-secret-1234",
        "catalog:write",
    )
    .await
    .unwrap();
    auth::ensure_client(
        &p.auth_db,
        "dashboard",
        "dashboard-secret-1234",
        "analytics:read",
    )
    .await
    .unwrap();

    // Registration and tokens through the gateway; the JWKS too.
    let registered = call(&p, Method::POST, &format!("{}/api/v1/auth/register", g.base), None,
        Some(json!({"email": "ann@example.com", "password": "blue-kettle-on-saturday", "name": "Ann"}))).await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{}",
        registered.body
    );
    let jwks = call(
        &p,
        Method::GET,
        &format!("{}/.well-known/jwks.json", g.base),
        None,
        None,
    )
    .await;
    assert!(jwks.body["keys"].as_array().is_some_and(|k| !k.is_empty()));
    let customer = token(
        &g,
        &p,
        &[
            ("grant_type", "password"),
            ("username", "ann@example.com"),
            ("password", "blue-kettle-on-saturday"),
        ],
    )
    .await;
    let admin = token(
        &g,
        &p,
        &[
            ("grant_type", "password"),
            ("username", "admin"),
            ("password", "admin-password-5678"),
        ],
    )
    .await;
    let importer = token(
        &g,
        &p,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "importer"),
            ("client_secret", "importer-secret-1234"),
        ],
    )
    .await;
    let dashboard = token(
        &g,
        &p,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "dashboard"),
            ("client_secret", "dashboard-secret-1234"),
        ],
    )
    .await;

    let products = format!("{}/api/v1/products", g.base);
    let product = json!({"sku": "GW-1", "name": "Mug", "category": "kitchen", "price": {"amount": 100, "currency": "EUR"}, "stock_quantity": 1});
    // Reading the catalog needs nothing; writing it needs admin or catalog:write.
    assert_eq!(
        call(&p, Method::GET, &products, None, None).await.status,
        StatusCode::OK
    );
    let anonymous = call(&p, Method::POST, &products, None, Some(product.clone())).await;
    assert_eq!(
        (anonymous.status, anonymous.code()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    assert_eq!(anonymous.header("www-authenticate"), "Bearer");
    let as_customer = call(
        &p,
        Method::POST,
        &products,
        Some(&customer),
        Some(product.clone()),
    )
    .await;
    assert_eq!(
        (as_customer.status, as_customer.code()),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    let created = call(
        &p,
        Method::POST,
        &products,
        Some(&importer),
        Some(product.clone()),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(
        created.header("location"),
        format!("/api/v1/products/{}", created.body["id"].as_str().unwrap())
    );
    let mut other = product.clone();
    other["sku"] = json!("GW-2");
    assert_eq!(
        call(&p, Method::POST, &products, Some(&admin), Some(other))
            .await
            .status,
        StatusCode::CREATED
    );

    // Customers and orders need a person; analytics needs admin or analytics:read.
    let customers = format!("{}/api/v1/customers", g.base);
    assert_eq!(
        call(&p, Method::GET, &customers, None, None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&p, Method::GET, &customers, Some(&importer), None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(&p, Method::GET, &customers, Some(&customer), None)
            .await
            .status,
        StatusCode::OK
    );
    let orders = format!("{}/api/v1/orders", g.base);
    assert_eq!(
        call(&p, Method::GET, &orders, Some(&admin), None)
            .await
            .status,
        StatusCode::OK
    );
    let analytics = format!("{}/api/v1/analytics/top", g.base);
    assert_eq!(
        call(&p, Method::GET, &analytics, Some(&customer), None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    // The analytics upstream never answers: 504 within the timeout, for an allowed caller.
    let started = std::time::Instant::now();
    let slow = call(&p, Method::GET, &analytics, Some(&dashboard), None).await;
    assert_eq!(
        (slow.status, slow.code()),
        (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout")
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // Ingest is down: 503, and events need no token.
    let events = call(
        &p,
        Method::POST,
        &format!("{}/api/v1/events", g.base),
        None,
        Some(json!({})),
    )
    .await;
    assert_eq!(
        (events.status, events.code()),
        (StatusCode::SERVICE_UNAVAILABLE, "upstream_unavailable")
    );

    // Tokens that must not pass: none, garbage, expired, another issuer or audience, `alg: none`.
    let keys = auth::Keys::open(p.auth_db.clone(), Duration::from_secs(600))
        .await
        .unwrap();
    let claims = |exp: u64, iss: &str, aud: &str| Claims {
        iss: iss.into(),
        aud: aud.into(),
        sub: "x".into(),
        exp,
        iat: now(),
        jti: "j".into(),
        roles: vec!["admin".into()],
        scope: String::new(),
    };
    let expired = keys
        .sign(&claims(now() - 300, ISSUER, AUDIENCE))
        .await
        .unwrap();
    let issuer = keys
        .sign(&claims(now() + 300, "http://evil", AUDIENCE))
        .await
        .unwrap();
    let audience = keys
        .sign(&claims(now() + 300, ISSUER, "other"))
        .await
        .unwrap();
    let unsigned = {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.",
            b64.encode(r#"{"alg":"none","typ":"JWT"}"#),
            b64.encode(serde_json::to_vec(&claims(now() + 300, ISSUER, AUDIENCE)).unwrap())
        )
    };
    for bad in [
        expired.as_str(),
        issuer.as_str(),
        audience.as_str(),
        unsigned.as_str(),
        "garbage",
    ] {
        let a = call(&p, Method::GET, &orders, Some(bad), None).await;
        assert_eq!(
            (a.status, a.code()),
            (StatusCode::UNAUTHORIZED, "unauthorized"),
            "{bad}"
        );
        assert_eq!(
            a.header("www-authenticate"),
            "Bearer error=\"invalid_token\""
        );
    }

    // Ownership, checked by the services: Ann sees and changes only what is hers.
    let bob_registered = call(&p, Method::POST, &format!("{}/api/v1/auth/register", g.base), None,
        Some(json!({"email": "bob@example.com", "password": "green-teapot-on-sunday", "name": "Bob"}))).await;
    let bob_id = bob_registered.body["customer_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ann_id = registered.body["customer_id"].as_str().unwrap().to_owned();
    let bob = token(
        &g,
        &p,
        &[
            ("grant_type", "password"),
            ("username", "bob@example.com"),
            ("password", "green-teapot-on-sunday"),
        ],
    )
    .await;
    let product_id = created.body["id"].as_str().unwrap().to_owned();
    let order_of = |customer: &str| json!({"customer_id": customer, "lines": [{"product_id": product_id, "quantity": 1}]});
    let bobs = call(
        &p,
        Method::POST,
        &orders,
        Some(&bob),
        Some(order_of(&bob_id)),
    )
    .await;
    assert_eq!(bobs.status, StatusCode::CREATED, "{}", bobs.body);
    let bobs_url = format!("{orders}/{}", bobs.body["id"].as_str().unwrap());
    let anns = call(
        &p,
        Method::POST,
        &orders,
        Some(&customer),
        Some(order_of(&ann_id)),
    )
    .await;
    assert_eq!(anns.status, StatusCode::CREATED, "{}", anns.body);
    let anns_url = format!("{orders}/{}", anns.body["id"].as_str().unwrap());
    let for_bob = call(
        &p,
        Method::POST,
        &orders,
        Some(&customer),
        Some(order_of(&bob_id)),
    )
    .await;
    assert_eq!(
        (for_bob.status, for_bob.code()),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    assert_eq!(
        call(&p, Method::GET, &bobs_url, Some(&customer), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&p, Method::DELETE, &bobs_url, Some(&customer), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&p, Method::GET, &bobs_url, Some(&admin), None)
            .await
            .status,
        StatusCode::OK
    );
    let mine = call(&p, Method::GET, &orders, Some(&customer), None).await;
    let ids: Vec<&str> = mine.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["customer_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [ann_id.as_str()]);
    let asked = call(
        &p,
        Method::GET,
        &format!("{orders}?customer_id={bob_id}"),
        Some(&customer),
        None,
    )
    .await;
    assert!(asked.body["items"].as_array().unwrap().is_empty());
    let all = call(&p, Method::GET, &orders, Some(&admin), None).await;
    assert_eq!(all.body["items"].as_array().unwrap().len(), 2);
    let confirm = call(
        &p,
        Method::POST,
        &format!("{anns_url}/status"),
        Some(&customer),
        Some(json!({"status": "CONFIRMED"})),
    )
    .await;
    assert_eq!(
        confirm.status,
        StatusCode::FORBIDDEN,
        "only an administrator confirms"
    );
    assert_eq!(
        call(&p, Method::DELETE, &anns_url, Some(&customer), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let bobs_record = format!("{customers}/{bob_id}");
    assert_eq!(
        call(&p, Method::GET, &bobs_record, Some(&customer), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let patch = p
        .http
        .patch(&bobs_record)
        .bearer_auth(&customer)
        .json(&json!({"name": "Mallory"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patch.status(), StatusCode::NOT_FOUND);
    let own = call(&p, Method::GET, &customers, Some(&customer), None).await;
    let listed: Vec<&str> = own.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [ann_id.as_str()]);
    let create = call(
        &p,
        Method::POST,
        &customers,
        Some(&customer),
        Some(json!({"name": "X", "email": "x@example.com"})),
    )
    .await;
    assert_eq!(create.status, StatusCode::FORBIDDEN);

    // Request ids: kept when given, made when not, on errors too.
    let r = p
        .http
        .get(&products)
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-me-42");
    let r = p
        .http
        .get(format!("{}/api/v1/nowhere", g.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(!r.headers()["x-request-id"].is_empty());
    held.abort();
}

on_both_databases!(the_gateway_routes_and_enforces_the_access_rules);
