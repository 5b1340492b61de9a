//! The gateway as its own process (`ecom gateway`, as deployed) in front of the real services
//! on SQLite: rate limits in process and shared by two gateways through a real Redis (which is
//! then killed), the circuit breaker around a stopped service, timeouts, which requests are
//! retried, slow clients, and an external provider's (Cognito-shaped) tokens.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use serde_json::json;
use testkit::prometheus::value;

use crate::support::{Answer, Backend, GatewayProcess, Platform};

async fn machine_token(p: &Platform, id: &str, scopes: &str) -> String {
    let secret = "a-long-machine-secret-for-tests";
    auth::ensure_client(&p.auth_db, id, secret, scopes)
        .await
        .unwrap();
    let r = p
        .http
        .post(format!("{}/api/v1/auth/token", p.auth.base))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
        ])
        .send()
        .await
        .unwrap();
    let a = Answer::read(r, "token").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    a.body["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_gets_429_with_retry_after_and_the_rate_limit_headers() {
    let p = Platform::start(Backend::Sqlite).await;
    let g = GatewayProcess::start(
        &p,
        &[],
        &[("RATE_LIMITS", "anonymous.read=5/s:5,client.read=3/min:3")],
    )
    .await;

    for remaining in (0..5).rev() {
        let a = g.get("/api/v1/products", None).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        assert_eq!(a.header("ratelimit-policy"), "\"anonymous-read\";q=5;w=1");
        assert!(
            a.header("ratelimit")
                .starts_with(&format!("\"anonymous-read\";r={remaining};t=")),
            "{}",
            a.header("ratelimit")
        );
        // The gateway's own headers, on every answer.
        assert_eq!(a.header("x-content-type-options"), "nosniff");
        assert_eq!(a.header("x-frame-options"), "DENY");
        assert!(!a.header("x-request-id").is_empty());
    }
    let refused = g.get("/api/v1/products", None).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.code(), "rate_limited");
    assert_eq!(refused.header("retry-after"), "1");
    assert_eq!(
        refused.header("ratelimit-policy"),
        "\"anonymous-read\";q=5;w=1"
    );
    assert!(
        refused
            .header("ratelimit")
            .starts_with("\"anonymous-read\";r=0;")
    );
    // Another route class keeps its own allowance: the token endpoint answers (its 400 is the
    // auth service's: the form is empty).
    let other = p
        .http
        .post(format!("{}/api/v1/auth/token", g.base))
        .form(&[("grant_type", "password")])
        .send()
        .await
        .unwrap();
    assert_ne!(other.status(), StatusCode::TOO_MANY_REQUESTS);
    // A machine client is limited by its own subject, not the address.
    let token = machine_token(&p, "load-test", "catalog:write").await;
    for _ in 0..3 {
        let a = g.get("/api/v1/products", Some(&token)).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        assert_eq!(a.header("ratelimit-policy"), "\"client-read\";q=3;w=60");
    }
    let refused = g.get("/api/v1/products", Some(&token)).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = refused.header("retry-after").parse().unwrap();
    assert!((15..=20).contains(&wait), "one request per 20 s: {wait}");
    // A path the service would resolve to another of its routes never reaches it (sent raw:
    // an HTTP client would resolve the dots itself).
    let addr: SocketAddr = g.base.trim_start_matches("http://").parse().unwrap();
    let sneaky = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /api/v1/auth/%2e%2e/%2e%2e/metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer
    })
    .await
    .unwrap();
    assert!(sneaky.starts_with("HTTP/1.1 400"), "{sneaky}");
    assert!(sneaky.contains("invalid_path"), "{sneaky}");
    // After Retry-After, admitted again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(g.get("/api/v1/products", None).await.status, StatusCode::OK);
    let metrics = g.metrics().await;
    assert_eq!(
        value(
            &metrics,
            r#"gateway_rate_limited_total{policy="anonymous-read"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &metrics,
            r#"gateway_rate_limited_total{policy="client-read"}"#
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_share_one_limit_on_redis_and_keep_serving_when_it_dies() {
    let p = Platform::start(Backend::Sqlite).await;
    let mut redis = testkit::Redis::start();
    // Ten requests a minute, so that refilling during the test does not blur the count.
    let env = [
        ("REDIS_URL", redis.url()),
        ("RATE_LIMITS", "anonymous.read=10/min:10".to_owned()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let a = GatewayProcess::start(&p, &[], &env).await;
    let b = GatewayProcess::start(&p, &[], &env).await;
    a.wait_for_redis(true).await;
    b.wait_for_redis(true).await;
    // Waiting spent some: whatever is left, the two gateways together admit exactly that.
    let first = a.get("/api/v1/products", None).await;
    assert_eq!(first.status, StatusCode::OK);
    let left: usize = first
        .header("ratelimit")
        .split(";r=")
        .nth(1)
        .and_then(|r| r.split(';').next())
        .and_then(|r| r.parse().ok())
        .unwrap();
    assert!(left >= 2, "{}", first.header("ratelimit"));
    let mut admitted = 0;
    for i in 0..left + 3 {
        let g = if i % 2 == 0 { &a } else { &b };
        let answer = g.get("/api/v1/products", None).await;
        match answer.status {
            StatusCode::OK => admitted += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("{other}: {}", answer.body),
        }
    }
    assert_eq!(admitted, left, "one limit across both gateways");
    assert_eq!(
        value(&a.metrics().await, "gateway_rate_limit_fallbacks_total"),
        0.0
    );

    // Redis dies: requests are still served, limited per process, and the metric says so.
    redis.kill();
    let answer = a.get("/api/v1/products", None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let answer = b.get("/api/v1/products", None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    a.wait_for_redis(false).await;
    assert!(value(&a.metrics().await, "gateway_rate_limit_fallbacks_total") >= 1.0);
    // Back on the same port, empty: the gateways share it again.
    redis.restart();
    a.wait_for_redis(true).await;
    b.wait_for_redis(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_service_opens_the_breaker_and_recovers_after_restart() {
    let mut p = Platform::start(Backend::Sqlite).await;
    let g = GatewayProcess::start(
        &p,
        &[],
        &[
            ("RATE_LIMITS", "off"),
            ("ECOM_BREAKER_FAILURES", "3"),
            ("ECOM_BREAKER_OPEN_FOR", "1s"),
        ],
    )
    .await;
    assert_eq!(g.get("/api/v1/products", None).await.status, StatusCode::OK);
    let catalog_addr = p.stop_catalog().await;

    // Three failures (each tried twice) open the breaker; then 503 at once, without calling.
    for _ in 0..3 {
        let a = g.get("/api/v1/products", None).await;
        assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.body);
        assert_eq!(a.code(), "upstream_unavailable");
        assert!(
            a.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("unavailable")
        );
    }
    let before = g.metrics().await;
    assert_eq!(
        value(&before, r#"gateway_breaker_state{upstream="catalog"}"#),
        1.0
    );
    let fast = Instant::now();
    let a = g.get("/api/v1/products", None).await;
    let took = fast.elapsed();
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        a.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("stopped calling"),
        "{}",
        a.body
    );
    assert_eq!(a.header("retry-after"), "1");
    assert!(took < Duration::from_millis(500), "{took:?}");
    let after = g.metrics().await;
    let outcome = |m: &str, o: &str| {
        value(
            m,
            &format!(r#"gateway_upstream_requests_total{{upstream="catalog",outcome="{o}"}}"#),
        )
    };
    assert_eq!(
        outcome(&after, "breaker_open"),
        outcome(&before, "breaker_open") + 1.0
    );
    assert_eq!(outcome(&after, "unavailable"), 3.0);
    // The other services are not affected.
    let r = g.get("/.well-known/jwks.json", None).await;
    assert_eq!(r.status, StatusCode::OK);

    // The catalog comes back on its address: after the open period, a probe closes the breaker.
    let stop = p.restart_catalog(catalog_addr).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let a = g.get("/api/v1/products", None).await;
        if a.status == StatusCode::OK {
            break;
        }
        assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(Instant::now() < deadline, "the breaker never closed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        value(
            &g.metrics().await,
            r#"gateway_breaker_state{upstream="catalog"}"#
        ),
        0.0
    );
    drop(stop);
}

/// An upstream that drops the first request of each method without answering (after reading
/// it whole, so the service may well have acted on it), and answers `{}` to later ones.
struct Flaky {
    base: String,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Flaky {
    fn start() -> Flaky {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let log = log.clone();
                std::thread::spawn(move || {
                    loop {
                        let Some((method, _)) = read_request(&mut stream) else {
                            return;
                        };
                        let first = {
                            let mut log = log.lock().unwrap();
                            let first = !log.contains(&method);
                            log.push(method);
                            first
                        };
                        if first {
                            return; // closes the connection unanswered
                        }
                        let _ = stream.write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
                        );
                    }
                });
            }
        });
        Flaky { base, seen }
    }

    fn count(&self, method: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|m| *m == method)
            .count()
    }
}

/// One HTTP/1.1 request's method and body (by `content-length`), or `None` at the end.
fn read_request(stream: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let method = head.split(' ').next()?.to_owned();
    let length = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0; length];
    stream.read_exact(&mut body).ok()?;
    Some((method, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_get_is_retried_and_a_post_never_is() {
    let p = Platform::start(Backend::Sqlite).await;
    let flaky = Flaky::start();
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let g = GatewayProcess::start(
        &p,
        &[
            ("CATALOG_URL", flaky.base.as_str()),
            ("INGEST_URL", flaky.base.as_str()),
            ("CUSTOMERS_URL", silent_url.as_str()),
        ],
        &[("RATE_LIMITS", "off"), ("ECOM_UPSTREAM_TIMEOUT", "1s")],
    )
    .await;

    // The GET's first attempt is dropped; the gateway tries again and the caller sees 200.
    let a = g.get("/api/v1/products", None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(flaky.count("GET"), 2);
    // The POST's is dropped too, but it may have been acted on: never sent twice.
    let r = p
        .http
        .post(format!("{}/api/v1/events", g.base))
        .json(&json!({"user_id": "u", "product_id": "p", "event_type": "VIEW_PRODUCT", "timestamp": "2026-01-01T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    let a = Answer::read(r, "events").await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.body);
    assert_eq!(a.code(), "upstream_unavailable");
    assert_eq!(flaky.count("POST"), 1);
    // A body declared over the gateway's limit (4 MiB) is refused at once, before it is sent
    // (read raw: an HTTP client would rather fail writing the body than read the answer).
    let addr: SocketAddr = g.base.trim_start_matches("http://").parse().unwrap();
    let answer = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        let head = format!(
            "POST /api/v1/events HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            (4 << 20) + 1
        );
        s.write_all(head.as_bytes()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut answer = vec![0u8; 4096];
        let n = s.read(&mut answer).unwrap();
        String::from_utf8_lossy(&answer[..n]).to_string()
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("body_too_large"), "{answer}");
    assert_eq!(flaky.count("POST"), 1);
    let metrics = g.metrics().await;
    assert_eq!(
        value(
            &metrics,
            r#"gateway_upstream_retries_total{upstream="catalog"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &metrics,
            r#"gateway_upstream_retries_total{upstream="ingest"}"#
        ),
        0.0
    );

    // A service that accepts and never answers: 504 within the timeout (not retried).
    let admin = "an-admin-password-for-tests";
    auth::ensure_admin(&p.auth_db, admin).await.unwrap();
    let r = p
        .http
        .post(format!("{}/api/v1/auth/token", g.base))
        .form(&[
            ("grant_type", "password"),
            ("username", "admin"),
            ("password", admin),
        ])
        .send()
        .await
        .unwrap();
    let login = Answer::read(r, "token").await;
    let admin_token = login.body["access_token"].as_str().unwrap().to_owned();
    let started = Instant::now();
    let a = g.get("/api/v1/customers", Some(&admin_token)).await;
    let took = started.elapsed();
    assert_eq!(a.status, StatusCode::GATEWAY_TIMEOUT, "{}", a.body);
    assert_eq!(a.code(), "upstream_timeout");
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_secs(3),
        "{took:?}"
    );
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_half_sent_requests_are_closed_while_others_are_served() {
    let p = Platform::start(Backend::Sqlite).await;
    let g = GatewayProcess::start(
        &p,
        &[],
        &[
            ("RATE_LIMITS", "off"),
            ("ECOM_HEADER_TIMEOUT", "2s"),
            ("ECOM_BODY_TIMEOUT", "2s"),
        ],
    )
    .await;
    let addr: SocketAddr = g.base.trim_start_matches("http://").parse().unwrap();

    // A thousand connections that send half a request's headers and stop. (From 127.0.0.2,
    // so that their thousand ports are not taken from the address other tests bind on.)
    let opened = Instant::now();
    let mut stalled = Vec::new();
    for _ in 0..1000 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let mut s = socket.connect(addr).await.unwrap().into_std().unwrap();
        s.set_nonblocking(false).unwrap();
        s.write_all(b"GET /api/v1/products HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        stalled.push(s);
    }
    // And a few whose body stops half-way.
    let bodies: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(
                b"POST /api/v1/auth/register HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"email\":",
            )
            .unwrap();
            s
        })
        .collect();

    // Meanwhile, normal requests are served, while the stalled ones are still open.
    for _ in 0..20 {
        let a = g.get("/api/v1/products", None).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    }
    let last = stalled.last().unwrap();
    last.set_nonblocking(true).unwrap();
    let still_open = matches!(
        (&*last).read(&mut [0u8; 16]),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
    );
    assert!(still_open, "served before the stalled requests timed out");
    last.set_nonblocking(false).unwrap();

    // Each stalled connection is closed after the header timeout: reading sees its end.
    let check = tokio::task::spawn_blocking(move || {
        for mut s in stalled {
            s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
            let mut buf = [0u8; 512];
            match s.read(&mut buf) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
                Err(e) => panic!("a stalled connection stayed open: {e}"),
            }
        }
        // A stalled body is answered 408 after the body timeout.
        for mut s in bodies {
            s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer);
            assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
            assert!(answer.contains("body_timeout"), "{answer}");
        }
    });
    check.await.unwrap();
    let closed_after = opened.elapsed();
    assert!(
        closed_after >= Duration::from_secs(2) && closed_after < Duration::from_secs(15),
        "{closed_after:?}"
    );
    // And the gateway is still serving.
    let a = g.get("/api/v1/products", None).await;
    assert_eq!(a.status, StatusCode::OK);
}

/// An external provider's key set (a Cognito user pool's JWKS is a static document; this is
/// one, with an RSA key whose private half is a test fixture).
async fn serve_jwks(pool: &str) -> (String, tokio::sync::oneshot::Sender<()>) {
    let jwks: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/cognito-test-jwks.json")).unwrap();
    let app = axum::Router::new().route(
        &format!("/{pool}/.well-known/jwks.json"),
        axum::routing::get(move || async move { axum::Json(jwks) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    (base, stop)
}

fn cognito_token(claims: serde_json::Value) -> String {
    cognito_token_with_kid(claims, "cognito-test-1")
}

fn cognito_token_with_kid(claims: serde_json::Value, kid: &str) -> String {
    let key =
        jsonwebtoken::EncodingKey::from_rsa_der(include_bytes!("fixtures/cognito-test-key.der"));
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_provider_s_tokens_work_by_configuration_alone() {
    let p = Platform::start(Backend::Sqlite).await;
    let pool = "us-east-1_TESTPOOL";
    let (provider, stop_provider) = serve_jwks(pool).await;
    let issuer = format!("{provider}/{pool}");
    let client = "7app0client0id";
    let g = GatewayProcess::start(
        &p,
        &[],
        &[
            ("JWKS_URL", &format!("{issuer}/.well-known/jwks.json")),
            ("ECOM_TOKEN_ISSUER", &issuer),
            ("ECOM_TOKEN_AUDIENCE", client),
        ],
    )
    .await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let post = |token: String, sku: &str| {
        let url = format!("{}/api/v1/products", g.base);
        let body = json!({"sku": sku, "name": "Mug", "category": "kitchen",
            "price": {"amount": 1200, "currency": "EUR"}, "stock_quantity": 1});
        async move {
            let r = reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            Answer::read(r, "products").await
        }
    };

    // An ID token of a user in the pool's `admin` group: `aud` is the app client.
    let id_token = cognito_token(json!({
        "iss": issuer, "aud": client, "sub": "3f1c-user", "exp": now + 600, "iat": now,
        "token_use": "id", "cognito:groups": ["admin"], "email": "ops@example.com"
    }));
    let a = post(id_token, "COG-1").await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    // An access token of a machine client (client credentials): no `aud`, the app client in
    // `client_id`, the scope granted.
    let access = cognito_token(json!({
        "iss": issuer, "client_id": client, "sub": client, "exp": now + 600, "iat": now,
        "token_use": "access", "scope": "catalog:write", "jti": "j1"
    }));
    let a = post(access, "COG-2").await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    // A customer of the pool may not write the catalog; another app client's token, an expired
    // one and one of another issuer are not accepted.
    let customer = cognito_token(json!({
        "iss": issuer, "aud": client, "sub": "u2", "exp": now + 600, "iat": now,
        "cognito:groups": ["customer"]
    }));
    assert_eq!(post(customer, "COG-3").await.status, StatusCode::FORBIDDEN);
    for claims in [
        json!({"iss": issuer, "client_id": "another-app", "sub": "x", "exp": now + 600, "scope": "catalog:write"}),
        json!({"iss": issuer, "aud": client, "sub": "x", "exp": now - 120, "cognito:groups": ["admin"]}),
        json!({"iss": format!("{provider}/other-pool"), "aud": client, "sub": "x", "exp": now + 600, "cognito:groups": ["admin"]}),
        json!({"iss": issuer, "sub": "x", "exp": now + 600, "cognito:groups": ["admin"]}),
    ] {
        let a = post(cognito_token(claims.clone()), "COG-4").await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{claims}: {}", a.body);
        assert_eq!(
            a.header("www-authenticate"),
            "Bearer error=\"invalid_token\""
        );
    }
    // The platform's own auth service is not the key set now: its tokens are refused.
    let own = machine_token(&p, "importer", "catalog:write").await;
    assert_eq!(post(own, "COG-5").await.status, StatusCode::UNAUTHORIZED);

    // The provider goes away. Cached keys still verify; a token naming a key the gateway has
    // not seen cannot be judged: 503 `auth_unavailable` (not 401: the key may well exist),
    // also when asked again before the next fetch is due.
    drop(stop_provider);
    // (Past the refetch interval: the last fetch, for the auth service's key, succeeded.)
    tokio::time::sleep(service_common::auth::REFETCH_INTERVAL + Duration::from_millis(200)).await;
    let admin = |kid: &str| {
        cognito_token_with_kid(
            json!({"iss": issuer, "aud": client, "sub": "3f1c-user", "exp": now + 600,
                   "cognito:groups": ["admin"]}),
            kid,
        )
    };
    let a = post(admin("cognito-test-1"), "COG-6").await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    for _ in 0..2 {
        let a = post(admin("cognito-test-2"), "COG-7").await;
        assert_eq!(
            (a.status, a.code()),
            (StatusCode::SERVICE_UNAVAILABLE, "auth_unavailable"),
            "{}",
            a.body
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_counted_per_client_address_behind_the_gateway() {
    let p = Platform::start(Backend::Sqlite).await;
    // Behind a load balancer: the client is the address it appended.
    let g = GatewayProcess::start(
        &p,
        &[],
        &[
            ("RATE_LIMITS", "off"),
            ("ECOM_TRUSTED_PROXIES", "1"),
            // Fifty password hashes at once on two cores (and slowed answers) take a while.
            ("ECOM_UPSTREAM_TIMEOUT", "60s"),
        ],
    )
    .await;
    let login = |from: &'static str, user: String, password: String| {
        let url = format!("{}/api/v1/auth/token", g.base);
        async move {
            let r = reqwest::Client::new()
                .post(url)
                .header("x-forwarded-for", from)
                // A caller cannot choose the address it is counted under.
                .header("x-real-ip", "198.51.100.1")
                .form(&[
                    ("grant_type", "password"),
                    ("username", user.as_str()),
                    ("password", password.as_str()),
                ])
                .send()
                .await
                .unwrap();
            Answer::read(r, "token").await
        }
    };
    // Fifty failures from one address, each against another account (so that no account
    // reaches its own limit), at once: each answer is slowed, not the whole run.
    let failures = futures_util::future::join_all((0..50).map(|i| {
        login(
            "203.0.113.5",
            format!("nobody{i}@example.com"),
            "wrong-password-x".into(),
        )
    }))
    .await;
    for a in &failures {
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    }
    let admin = "an-admin-password-for-tests";
    auth::ensure_admin(&p.auth_db, admin).await.unwrap();
    // That address is refused now, even with the right password; another is not.
    let refused = login("203.0.113.5", "admin".into(), admin.into()).await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts")
    );
    let other = login("203.0.113.6", "admin".into(), admin.into()).await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.body);
}
