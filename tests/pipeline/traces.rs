//! Traces across the platform, seen by a real OTLP/HTTP receiver: a small server in the test
//! that decodes what the exporters send (`ExportTraceServiceRequest`, protobuf) and keeps
//! every span.
//!
//! - In `ecom up`: an event POSTed through the gateway with the caller's `traceparent` is one
//!   trace from the gateway's server span, through its call to ingest, ingest's server span and
//!   its append to the embedded log; the stream engine's batch span that counted the event
//!   links to that append. An order is one trace through the gateway, orders and its call to
//!   the catalog, and the batch that counted its purchase links to the order's span (the
//!   outbox row carried it).
//! - On Kafka (`ecom ingest` and `ecom stream-engine` as processes on tansu): the same link
//!   crosses the broker in the records' `traceparent` header.
//! - Logs: with `ECOM_LOG_FORMAT=json` each line is a JSON object with the request's id and
//!   trace id; a bad format is refused at start.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use serde_json::{Value, json};

use super::support::*;

/// One span as received, ids in hex.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    name: String,
    kind: SpanKind,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    attributes: HashMap<String, String>,
    /// (trace id, span id) of each link.
    links: Vec<(String, String)>,
}

/// The OTLP/HTTP receiver: `POST /v1/traces`.
struct Receiver {
    url: String,
    spans: Arc<Mutex<Vec<Received>>>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(value: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        _ => String::new(),
    }
}

async fn export(State(spans): State<Arc<Mutex<Vec<Received>>>>, body: Bytes) -> &'static [u8] {
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP trace export");
    let mut spans = spans.lock().unwrap();
    for resource in request.resource_spans {
        let service = resource
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|a| a.key == "service.name")
            .map(|a| text(&a.value))
            .unwrap_or_default();
        for scope in resource.scope_spans {
            for span in scope.spans {
                spans.push(Received {
                    service: service.clone(),
                    name: span.name.clone(),
                    kind: SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified),
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    attributes: span
                        .attributes
                        .iter()
                        .map(|a| (a.key.clone(), text(&a.value)))
                        .collect(),
                    links: span
                        .links
                        .iter()
                        .map(|l| (hex(&l.trace_id), hex(&l.span_id)))
                        .collect(),
                });
            }
        }
    }
    // An empty ExportTraceServiceResponse.
    b""
}

impl Receiver {
    async fn start() -> Receiver {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .route("/v1/traces", post(export))
            .with_state(spans.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url, spans }
    }

    /// The environment that points an `ecom` process's exporter here, exporting every 100 ms.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", self.url.clone()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
        ]
    }

    fn spans(&self) -> Vec<Received> {
        self.spans.lock().unwrap().clone()
    }

    /// Waits until `found` finds what it looks for among the spans received.
    async fn wait_for<T>(&self, what: &str, found: impl Fn(&[Received]) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(t) = found(&self.spans()) {
                return t;
            }
            if Instant::now() > deadline {
                let seen: Vec<String> = self
                    .spans()
                    .iter()
                    .map(|s| {
                        format!(
                            "{} {} {} <- {}",
                            s.service, s.name, s.span_id, s.parent_span_id
                        )
                    })
                    .collect();
                panic!(
                    "no {what} within 60 s; spans received:\n{}",
                    seen.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Receiver {
    /// Waits for the consumer span (the stream engine's batch) linked to span `span_id` of
    /// trace `trace_id`.
    async fn batch_linked_to(&self, what: &str, trace_id: &str, span_id: &str) -> Received {
        let link = (trace_id.to_owned(), span_id.to_owned());
        self.wait_for(what, |spans| {
            find(spans, |s| {
                s.kind == SpanKind::Consumer && s.links.contains(&link)
            })
            .cloned()
        })
        .await
    }
}

/// A caller's own trace: a random trace id and span id, sampled.
fn caller_trace(seed: u64) -> (String, String, String) {
    let trace_id = format!(
        "{:016x}{:016x}",
        0x7ace_0000_0000_0000 | seed,
        seed.wrapping_mul(0x9e37_79b9)
    );
    let span_id = format!("{:016x}", 0x5ba0_0000_0000_0000 | seed);
    let header = format!("00-{trace_id}-{span_id}-01");
    (trace_id, span_id, header)
}

fn find(spans: &[Received], test: impl Fn(&Received) -> bool) -> Option<&Received> {
    spans.iter().find(|s| test(s))
}

/// An event with the current time, for a window that is open.
fn live_event(user: &str, product: &str) -> Value {
    json!({
        "user_id": user,
        "product_id": product,
        "event_type": "VIEW_PRODUCT",
        "timestamp": humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_is_one_trace_from_the_gateway_to_the_stream_engine_in_ecom_up() {
    let _serial = serial().await;
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let port = testkit::free_port();
    let env = receiver.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let up = up_with_env(dir.path(), port, &[], &env);
    up.wait_ready().await;
    let http = reqwest::Client::new();
    let base = up.url().to_owned();

    // An event, with the caller's trace and request id.
    let (trace_id, caller_span, traceparent) = caller_trace(1);
    let answer = http
        .post(format!("{base}/api/v1/events"))
        .header("traceparent", &traceparent)
        .header("x-request-id", "trace-test-event")
        .json(&live_event("u1", "traced-product"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
    assert_eq!(answer.headers()["x-request-id"], "trace-test-event");

    let (gateway, call, ingest, append) = receiver
        .wait_for("gateway → ingest → append spans", |spans| {
            let gateway = find(spans, |s| {
                s.trace_id == trace_id
                    && s.parent_span_id == caller_span
                    && s.attributes.get("service").map(String::as_str) == Some("gateway")
            })?;
            let call = find(spans, |s| {
                s.parent_span_id == gateway.span_id && s.kind == SpanKind::Client
            })?;
            let ingest = find(spans, |s| {
                s.parent_span_id == call.span_id
                    && s.attributes.get("service").map(String::as_str) == Some("ingest")
            })?;
            let append = find(spans, |s| {
                s.parent_span_id == ingest.span_id && s.kind == SpanKind::Producer
            })?;
            Some((
                gateway.clone(),
                call.clone(),
                ingest.clone(),
                append.clone(),
            ))
        })
        .await;
    assert_eq!(gateway.name, "POST /api/v1/events");
    assert_eq!(gateway.kind, SpanKind::Server);
    assert_eq!(gateway.attributes["request_id"], "trace-test-event");
    assert_eq!(gateway.attributes["http.response.status_code"], "202");
    assert_eq!(call.name, "POST ingest");
    assert_eq!(ingest.kind, SpanKind::Server);
    assert_eq!(ingest.attributes["request_id"], "trace-test-event");
    for span in [&call, &ingest, &append] {
        assert_eq!(
            span.trace_id, trace_id,
            "{} is in the caller's trace",
            span.name
        );
    }
    // The engine's batch that read the event links to the append that wrote it.
    let batch = receiver
        .batch_linked_to(
            "the stream engine's batch span linked to the append",
            &trace_id,
            &append.span_id,
        )
        .await;
    assert_eq!(batch.name, "events process");
    assert_eq!(batch.service, "ecom");

    // An order: gateway → orders → catalog in one trace; its purchase reaches the engine
    // through the outbox with the order's span.
    let admin = std::fs::read_to_string(dir.path().join("admin-password")).unwrap();
    let token = |form: Vec<(&'static str, String)>| {
        let http = http.clone();
        let base = base.clone();
        async move {
            let answer: Value = http
                .post(format!("{base}/api/v1/auth/token"))
                .form(&form)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            answer["access_token"].as_str().expect("a token").to_owned()
        }
    };
    let admin = token(vec![
        ("grant_type", "password".into()),
        ("username", "admin".into()),
        ("password", admin.trim().to_owned()),
    ])
    .await;
    let product: Value = http
        .post(format!("{base}/api/v1/products"))
        .bearer_auth(&admin)
        .json(
            &json!({"sku": "TRACE-1", "name": "Traced", "category": "tests",
            "price": {"amount": 1000, "currency": "EUR"}, "stock_quantity": 10}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let product_id = product["id"].as_str().expect("a product id").to_owned();
    let password = "a traced customer's password";
    let customer: Value = http
        .post(format!("{base}/api/v1/auth/register"))
        .json(&json!({"email": "traced@example.com", "password": password, "name": "Traced"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let customer_id = customer["customer_id"]
        .as_str()
        .expect("a customer")
        .to_owned();
    let customer_token = token(vec![
        ("grant_type", "password".into()),
        ("username", "traced@example.com".into()),
        ("password", password.into()),
    ])
    .await;
    let (order_trace, order_caller, traceparent) = caller_trace(2);
    let answer = http
        .post(format!("{base}/api/v1/orders"))
        .bearer_auth(&customer_token)
        .header("traceparent", &traceparent)
        .json(&json!({"customer_id": customer_id, "lines": [{"product_id": product_id, "quantity": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 201, "{:?}", answer.text().await);
    let orders = receiver
        .wait_for("gateway → orders → catalog spans", |spans| {
            let gateway = find(spans, |s| {
                s.trace_id == order_trace && s.parent_span_id == order_caller
            })?;
            let call = find(spans, |s| s.parent_span_id == gateway.span_id)?;
            let orders = find(spans, |s| {
                s.parent_span_id == call.span_id
                    && s.attributes.get("service").map(String::as_str) == Some("orders")
            })?;
            let catalog_call = find(spans, |s| {
                s.parent_span_id == orders.span_id
                    && s.kind == SpanKind::Client
                    && s.name == "GET catalog"
            })?;
            find(spans, |s| {
                s.parent_span_id == catalog_call.span_id
                    && s.trace_id == order_trace
                    && s.attributes.get("service").map(String::as_str) == Some("catalog")
            })?;
            Some(orders.clone())
        })
        .await;
    assert_eq!(orders.name, "POST /api/v1/orders");
    receiver
        .batch_linked_to(
            "the batch that counted the purchase, linked to the order",
            &order_trace,
            &orders.span_id,
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trace_crosses_kafka_in_the_records_headers() {
    let _serial = serial().await;
    let receiver = Receiver::start().await;
    let stack = Stack::start();
    let env = receiver.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let engine = stack.engine(&env);
    let ingest = stack.ingest(&env);
    ingest.wait_ready().await;
    engine.wait_healthy().await;

    let (trace_id, caller_span, traceparent) = caller_trace(3);
    let http = reqwest::Client::new();
    // The engine may still be joining the group: the record waits on the topic meanwhile.
    let answer = http
        .post(format!("{}/api/v1/events", ingest.url()))
        .header("traceparent", &traceparent)
        .json(&live_event("u1", "kafka-traced"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
    let append = receiver
        .wait_for("ingest's append span", |spans| {
            let server = find(spans, |s| {
                s.trace_id == trace_id && s.parent_span_id == caller_span
            })?;
            find(spans, |s| {
                s.parent_span_id == server.span_id && s.kind == SpanKind::Producer
            })
            .cloned()
        })
        .await;
    assert_eq!(append.service, "ingest");
    let batch = receiver
        .batch_linked_to(
            "the engine's batch span linked across the broker",
            &trace_id,
            &append.span_id,
        )
        .await;
    assert_eq!(batch.service, "stream-engine");
    assert_eq!(batch.kind, SpanKind::Consumer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_request_id_and_trace_id_and_a_bad_format_is_refused() {
    let _serial = serial().await;
    let dir = tempfile::tempdir().unwrap();

    // A format nobody reads is a configuration error, said at start.
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_ecom"))
        .args(["up", "--no-demo", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("refused"))
        .env("ECOM_LOG_FORMAT", "xml")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("ECOM_LOG_FORMAT must be `text` or `json`"),
        "{stderr}"
    );

    // Spans not exported: the trace id in the logs is the caller's.
    let port = testkit::free_port();
    let mut up = up_logging(
        dir.path(),
        port,
        &[
            ("ECOM_LOG_FORMAT", "json"),
            ("RUST_LOG", "warn,gateway=debug"),
        ],
    );
    up.wait_ready().await;
    let (trace_id, _, traceparent) = caller_trace(4);
    let answer = reqwest::Client::new()
        .get(format!("{}/api/v1/products", up.url()))
        .header("traceparent", &traceparent)
        .header("x-request-id", "json-log-test")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    up.terminate();
    let lines = up.stderr_lines();
    let answered: Vec<Value> = lines
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["message"] == "answered")
        .collect();
    let line = answered
        .iter()
        .find(|line| line["span"]["request_id"] == "json-log-test")
        .unwrap_or_else(|| panic!("no JSON line for the request among:\n{}", lines.join("\n")));
    assert_eq!(line["span"]["trace_id"], trace_id.as_str());
    assert_eq!(line["level"], "DEBUG");
    assert_eq!(line["status"], 200);
    assert!(line["timestamp"].is_string());
    // Every log line is JSON (what `ecom up` says to its terminal, such as "stopping: ...",
    // is not a log line).
    for line in lines
        .iter()
        .filter(|l| l.contains("\"level\"") || l.contains("WARN"))
    {
        assert!(
            serde_json::from_str::<Value>(line).is_ok(),
            "not a JSON line: {line}"
        );
    }
}
