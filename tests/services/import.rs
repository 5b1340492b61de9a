//! The CSV product import against real servers: `ecom import` and the Lambda (`lambda-import`,
//! run by a local Lambda Runtime API, `cargo lambda watch`) through `ecom gateway` in front of
//! the real auth and catalog services (SQLite, and PostgreSQL for the main case), with moto for
//! S3 and Secrets Manager.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::prometheus::value;

use crate::on_both_databases;
use crate::support::{Backend, GatewayProcess, Platform};

const SECRET: &str = "the-importer-secret-for-tests";

/// Every item of the behaviour list in one file: a BOM, CRLF, columns in another order and
/// case, an unknown column, quoted commas, quotes and a line break, blank lines (empty and all
/// commas), JPY and KWD exponents, bad prices, a row the catalog refuses, a missing value, and
/// a SKU given twice (the last row wins).
const EDGE_CASES: &str = "\u{feff}Stock_Quantity,SKU,Name,Price,currency,Category,Description,colour\r\n\
5,MUG-1,Blue Mug,12.99,EUR,kitchen,\"Holds tea, coffee and \"\"anything\"\" else\",blue\r\n\
\r\n\
3,LAMP-1,Desk Lamp,45,usd,lighting,\"Two\r\nlines\",white\r\n\
1,TEA-1,Green Tea,1500,JPY,food,,\r\n\
2,KWD-1,Dates,1.250,KWD,food,,\r\n\
1,BAD-PRICE,X,19.999,EUR,k,,\r\n\
1,NEG-PRICE,X,-5.00,EUR,k,,\r\n\
1,bad sku!,X,1.00,EUR,k,,\r\n\
1,NO-NAME,,1.00,EUR,k,,\r\n\
,,,,,,,\r\n\
7,MUG-1,Blue Mug XL,13.50,EUR,kitchen,,\r\n";

/// The importer client in `p`'s auth, and `ecom gateway` in front of `p` with `env`.
async fn gateway(p: &Platform, env: &[(&str, &str)]) -> GatewayProcess {
    auth::ensure_client(&p.auth_db, "importer", SECRET, "catalog:write")
        .await
        .unwrap();
    GatewayProcess::start(p, &[], env).await
}

/// `ecom import SOURCE` against `gateway`, with `env` on top; run off the runtime (the
/// services under test are served by it).
async fn ecom_import(gateway: &str, source: &str, env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ecom"));
    command
        .args(["import", source])
        .env("PRODUCT_API_URL", gateway)
        .env("RUST_LOG", "warn")
        .env_remove("IMPORT_CLIENT_SECRET_ARN")
        .stdin(Stdio::null());
    if !env
        .iter()
        .any(|(name, _)| *name == "IMPORT_CLIENT_SECRET_ARN")
    {
        command.env("IMPORT_CLIENT_SECRET", SECRET);
    } else {
        command.env_remove("IMPORT_CLIENT_SECRET");
    }
    for (name, value) in env {
        command.env(name, value);
    }
    tokio::task::spawn_blocking(move || command.output().expect("ecom import runs"))
        .await
        .unwrap()
}

fn stdout_report(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|_| {
        panic!(
            "not a report: {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// The counts of a report: (rows_read, created, updated, unchanged, rejected, superseded).
fn counts(report: &Value) -> [u64; 6] {
    [
        "rows_read",
        "created",
        "updated",
        "unchanged",
        "rejected",
        "superseded",
    ]
    .map(|k| {
        report[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k} in {report}"))
    })
}

/// Every product of the catalog, by SKU.
async fn products(p: &Platform) -> std::collections::BTreeMap<String, Value> {
    let mut all = std::collections::BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{}?limit=200", p.products());
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page = p.get(&url).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        for item in page.body["items"].as_array().unwrap() {
            all.insert(item["sku"].as_str().unwrap().to_owned(), item.clone());
        }
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return all,
        }
    }
}

async fn every_edge_case_then_the_same_file_again(backend: Backend) {
    let p = Platform::start(backend).await;
    let g = gateway(&p, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("products.csv");
    std::fs::write(&file, EDGE_CASES).unwrap();

    let output = ecom_import(&g.base, file.to_str().unwrap(), &[]).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = stdout_report(&output);
    assert_eq!(report["status"], "completed");
    // Rows on lines 2, 4 (to 5), 6, 7, 8, 9, 10, 11 and 13.
    assert_eq!(counts(&report), [9, 4, 0, 0, 4, 1], "{report:#}");
    let rejected: Vec<(u64, &str)> = report["rejected_rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["line"].as_u64().unwrap(), r["column"].as_str().unwrap()))
        .collect();
    assert_eq!(
        rejected,
        [(8, "price"), (9, "price"), (10, "sku"), (11, "name")],
        "{report:#}"
    );
    let reasons = report["rejected_rows"].to_string();
    assert!(reasons.contains("more decimals"), "{reasons}");
    assert!(reasons.contains("negative"), "{reasons}");
    assert_eq!(
        report["duplicates"],
        json!([{"sku": "MUG-1", "line": 2, "superseded_by": 13}])
    );
    // The same report beside the file.
    let beside: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("products.csv.report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(beside, report);

    let stored = products(&p).await;
    assert_eq!(
        stored.keys().collect::<Vec<_>>(),
        ["KWD-1", "LAMP-1", "MUG-1", "TEA-1"]
    );
    let mug = &stored["MUG-1"];
    assert_eq!(mug["name"], "Blue Mug XL", "the last row wins");
    assert_eq!(mug["price"], json!({"amount": 1350, "currency": "EUR"}));
    assert_eq!(mug["stock_quantity"], 7);
    assert_eq!(stored["LAMP-1"]["description"], "Two\r\nlines");
    assert_eq!(
        stored["LAMP-1"]["price"],
        json!({"amount": 4500, "currency": "USD"})
    );
    assert_eq!(
        stored["TEA-1"]["price"],
        json!({"amount": 1500, "currency": "JPY"})
    );
    assert_eq!(
        stored["KWD-1"]["price"],
        json!({"amount": 1250, "currency": "KWD"})
    );

    // Again: nothing created twice, every stored row unchanged.
    let again = stdout_report(&ecom_import(&g.base, file.to_str().unwrap(), &[]).await);
    assert_eq!(counts(&again), [9, 0, 0, 4, 4, 1], "{again:#}");
    assert_eq!(products(&p).await.len(), 4);

    // A corrected row updates its product.
    std::fs::write(
        &file,
        "sku,name,price,currency,category,stock_quantity\nTEA-1,Green Tea,1600,JPY,food,1\n",
    )
    .unwrap();
    let fixed = stdout_report(&ecom_import(&g.base, file.to_str().unwrap(), &[]).await);
    assert_eq!(counts(&fixed), [1, 0, 1, 0, 0, 0]);
    assert_eq!(products(&p).await["TEA-1"]["price"]["amount"], 1600);
}

on_both_databases!(every_edge_case_then_the_same_file_again);

/// A file that cannot be imported fails as a whole, with one reason, and stores nothing; a
/// header alone is a completed import of nothing. None of them needs the gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_column_or_an_empty_file_fails_with_one_reason() {
    let dir = tempfile::tempdir().unwrap();
    let nowhere = format!("http://127.0.0.1:{}", testkit::free_port());
    let cases: [(&str, &str, Option<&str>); 5] = [
        (
            "missing.csv",
            "sku,name,category,stock_quantity\nA,a,k,1\n",
            Some("no column price, currency"),
        ),
        ("empty.csv", "", Some("the file is empty")),
        ("blank.csv", "\r\n\n,,\n", Some("the file is empty")),
        (
            "twice.csv",
            "sku,name,price,currency,category,stock_quantity,Price\n",
            Some("more than once"),
        ),
        (
            "header-only.csv",
            "\u{feff}sku,name,price,currency,category,stock_quantity\r\n",
            None,
        ),
    ];
    for (name, text, failure) in cases {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        let output = ecom_import(&nowhere, file.to_str().unwrap(), &[]).await;
        let report = stdout_report(&output);
        match failure {
            Some(reason) => {
                assert!(!output.status.success(), "{name} fails");
                assert_eq!(report["status"], "failed", "{name}");
                let error = report["error"].as_str().unwrap();
                assert!(error.contains(reason), "{name}: {error}");
                assert!(String::from_utf8_lossy(&output.stderr).contains(reason));
            }
            None => {
                assert!(
                    output.status.success(),
                    "{name}: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
                assert_eq!(report["status"], "completed");
                assert_eq!(counts(&report), [0; 6]);
            }
        }
    }
    // A file that is not there.
    let output = ecom_import(
        &nowhere,
        dir.path().join("absent.csv").to_str().unwrap(),
        &[],
    )
    .await;
    assert!(!output.status.success());
    assert!(
        stdout_report(&output)["error"]
            .as_str()
            .unwrap()
            .contains("cannot read")
    );
}

/// A gateway that accepts connections and never answers: each request times out, is
/// retried within the budget, and then the import fails with the reason (no hang).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_gateway_fails_the_import_after_the_retry_budget() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = silent.local_addr().unwrap();
    let held = std::thread::spawn(move || {
        // Accepts and holds every connection, reading nothing.
        let mut connections = Vec::new();
        for connection in silent.incoming().take(64) {
            connections.push(connection);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("one.csv");
    std::fs::write(
        &file,
        "sku,name,price,currency,category,stock_quantity\nA-1,a,1,EUR,k,1\n",
    )
    .unwrap();
    let started = Instant::now();
    let output = ecom_import(
        &format!("http://{address}"),
        file.to_str().unwrap(),
        &[
            ("IMPORT_TIMEOUT_SECONDS", "1"),
            ("IMPORT_RETRY_SECONDS", "3"),
        ],
    )
    .await;
    let took = started.elapsed();
    assert!(!output.status.success());
    let report = stdout_report(&output);
    assert_eq!(report["status"], "failed");
    let error = report["error"].as_str().unwrap();
    assert!(
        error.contains("did not take the request after retrying"),
        "{error}"
    );
    assert!(took < Duration::from_secs(20), "gave up after {took:?}");
    drop(held);
}

/// 429s from the gateway's rate limit and 503s while the catalog is down: the import waits
/// them out (honouring Retry-After) and stores every valid row.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_limits_and_an_unavailable_catalog_are_waited_out() {
    let mut p = Platform::start(Backend::Sqlite).await;
    let g = gateway(
        &p,
        &[
            ("RATE_LIMITS", "client.write=2/s:1"),
            ("ECOM_BREAKER_FAILURES", "2"),
            ("ECOM_BREAKER_OPEN_FOR", "1s"),
        ],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("many.csv");
    let mut text = String::from("sku,name,price,currency,category,stock_quantity\n");
    for i in 0..300 {
        text.push_str(&format!(
            "SKU-{i:04},Product {i},{}.{:02},EUR,things,{i}\n",
            i / 10,
            i % 100
        ));
    }
    text.push_str("SKU-BAD,Bad,1.234,EUR,things,1\n");
    std::fs::write(&file, text).unwrap();

    let catalog_addr = p.stop_catalog().await;
    let import = tokio::spawn({
        let base = g.base.clone();
        let file = file.clone();
        async move {
            ecom_import(
                &base,
                file.to_str().unwrap(),
                &[("IMPORT_BATCH_ROWS", "20"), ("IMPORT_RETRY_SECONDS", "60")],
            )
            .await
        }
    });
    // The catalog comes back after the import has met its 503s.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = g.metrics().await;
        let unavailable = value(
            &m,
            r#"gateway_upstream_requests_total{upstream="catalog",outcome="unavailable"}"#,
        );
        if unavailable >= 2.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the import never reached the catalog"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _stop = p.restart_catalog(catalog_addr).await;

    let output = import.await.unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = stdout_report(&output);
    assert_eq!(counts(&report), [301, 300, 0, 0, 1, 0], "{report:#}");
    let m = g.metrics().await;
    assert!(
        value(&m, r#"gateway_rate_limited_total{policy="client-write"}"#) > 0.0,
        "the rate limit was met"
    );
    let stored = products(&p).await;
    assert_eq!(stored.len(), 300);
    assert_eq!(stored["SKU-0123"]["price"]["amount"], 1223);
}

/// moto's S3 and Secrets Manager, and an S3 client for the test.
struct Aws {
    moto: testkit::Moto,
    s3: aws_sdk_s3::Client,
    env: Vec<(&'static str, String)>,
}

impl Aws {
    async fn start() -> Aws {
        let moto = testkit::Moto::start();
        let env = vec![
            ("AWS_ENDPOINT_URL", moto.endpoint()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ];
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(moto.endpoint())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::for_tests())
            .load()
            .await;
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&config)
                .force_path_style(true)
                .build(),
        );
        s3.create_bucket().bucket("imports").send().await.unwrap();
        Aws { moto, s3, env }
    }

    fn env(&self) -> Vec<(&str, &str)> {
        self.env.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }

    async fn put(&self, key: &str, body: impl Into<Vec<u8>>) {
        self.s3
            .put_object()
            .bucket("imports")
            .key(key)
            .body(body.into().into())
            .send()
            .await
            .unwrap();
    }

    /// The report beside `key`, when there is one.
    async fn report(&self, key: &str) -> Option<Value> {
        let object = self
            .s3
            .get_object()
            .bucket("imports")
            .key(format!("{key}.report.json"))
            .send()
            .await
            .ok()?;
        let bytes = object.body.collect().await.unwrap().into_bytes();
        Some(serde_json::from_slice(&bytes).unwrap())
    }

    /// A secret in Secrets Manager; its ARN.
    async fn secret(&self, name: &str, value: &str) -> String {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(self.moto.endpoint())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::for_tests())
            .load()
            .await;
        let secrets = aws_sdk_secretsmanager::Client::new(&config);
        let made = secrets
            .create_secret()
            .name(name)
            .secret_string(value)
            .send()
            .await
            .unwrap();
        made.arn().unwrap().to_owned()
    }
}

/// `ecom import s3://...`: the object streamed from moto, the secret read from Secrets
/// Manager by ARN, the report written beside the object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_object_with_the_secret_from_secrets_manager() {
    let p = Platform::start(Backend::Sqlite).await;
    let g = gateway(&p, &[]).await;
    let aws = Aws::start().await;
    aws.put("in/products 1.csv", EDGE_CASES).await;
    let arn = aws
        .secret(
            "ecom/importer",
            &json!({ "client_secret": SECRET }).to_string(),
        )
        .await;
    let mut command_env = aws.env();
    command_env.push(("IMPORT_CLIENT_SECRET_ARN", &arn));
    let output = ecom_import(&g.base, "s3://imports/in/products 1.csv", &command_env).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let report = stdout_report(&output);
    assert_eq!(counts(&report), [9, 4, 0, 0, 4, 1]);
    assert_eq!(report["source"], "s3://imports/in/products 1.csv");
    assert_eq!(
        aws.report("in/products 1.csv").await.as_ref(),
        Some(&report)
    );
    assert_eq!(products(&p).await.len(), 4);

    // A missing object fails, with a report saying why.
    let output = ecom_import(&g.base, "s3://imports/in/absent.csv", &command_env).await;
    assert!(!output.status.success());
    let report = aws.report("in/absent.csv").await.expect("a failure report");
    assert_eq!(report["status"], "failed");
    assert!(
        report["error"].as_str().unwrap().contains("cannot read"),
        "{report}"
    );
}

/// The Lambda Runtime API of `cargo lambda watch` (offline, the function not started by it)
/// and the function binary polling it.
struct Lambda {
    watch: std::process::Child,
    function: std::process::Child,
    invoke: String,
}

impl Lambda {
    fn start(env: &[(&str, &str)]) -> Lambda {
        let servers = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/servers");
        let cargo_lambda = std::env::var_os("ECOM_CARGO_LAMBDA_BIN")
            .map_or(servers.join("venv/bin/cargo-lambda"), PathBuf::from);
        assert!(
            cargo_lambda.exists(),
            "{} not found: run `scripts/servers.sh install` (or `scripts/test.sh`)",
            cargo_lambda.display()
        );
        let function = Path::new(env!("CARGO_BIN_EXE_ecom")).with_file_name("lambda-import");
        assert!(
            function.exists(),
            "{} not found: run `cargo build -p lambda-import` first (`scripts/test.sh` does)",
            function.display()
        );
        let port = testkit::free_port();
        let watch = Command::new(&cargo_lambda)
            .args([
                "lambda",
                "watch",
                "--only-lambda-apis",
                "--invoke-address",
                "127.0.0.1",
            ])
            .args(["--invoke-port", &port.to_string()])
            .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("lambda-import"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cargo lambda watch starts");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "cargo lambda watch never listened"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut command = Command::new(function);
        command
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://127.0.0.1:{port}/.rt"),
            )
            .env("AWS_LAMBDA_FUNCTION_NAME", "_")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        for (name, value) in env {
            command.env(name, value);
        }
        let function = command.spawn().expect("the function starts");
        Lambda {
            watch,
            function,
            invoke: format!("http://127.0.0.1:{port}/2015-03-31/functions/_/invocations"),
        }
    }

    /// Invokes the function with `event`: the HTTP status and the answer.
    async fn invoke(&self, event: &Value) -> (StatusCode, Value) {
        let response = reqwest::Client::new()
            .post(&self.invoke)
            .timeout(Duration::from_secs(120))
            .json(event)
            .send()
            .await
            .expect("the runtime API answers");
        let status = response.status();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }
}

impl Drop for Lambda {
    fn drop(&mut self) {
        for child in [&mut self.function, &mut self.watch] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// An S3 notification as S3 sends it: keys URL-encoded.
fn s3_event(records: &[(&str, &str)]) -> Value {
    let records: Vec<Value> = records
        .iter()
        .map(|(event_name, key)| {
            json!({
                "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
                "eventTime": "2026-12-03T10:00:00.000Z", "eventName": event_name,
                "userIdentity": {"principalId": "AWS:TEST"},
                "requestParameters": {"sourceIPAddress": "127.0.0.1"},
                "responseElements": {"x-amz-request-id": "1", "x-amz-id-2": "2"},
                "s3": {
                    "s3SchemaVersion": "1.0", "configurationId": "import",
                    "bucket": {"name": "imports", "ownerIdentity": {"principalId": "TEST"},
                               "arn": "arn:aws:s3:::imports"},
                    "object": {"key": key, "size": 1, "eTag": "0", "sequencer": "1"}
                }
            })
        })
        .collect();
    json!({ "Records": records })
}

/// The function run as a Lambda: an event of several records (a `.csv` with an encoded key,
/// a text file, a deletion) imports the CSV and writes its report; the same event again
/// creates nothing; a file without a required column fails the invocation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lambda_imports_the_csv_objects_of_an_s3_event() {
    let p = Platform::start(Backend::Sqlite).await;
    let g = gateway(&p, &[]).await;
    let aws = Aws::start().await;
    aws.put("in/summer sale.csv", EDGE_CASES).await;
    aws.put("in/notes.txt", "not a CSV").await;
    aws.put("in/broken.csv", "sku,name\nA,a\n").await;
    let mut env = aws.env();
    env.extend([
        ("PRODUCT_API_URL", g.base.as_str()),
        ("IMPORT_CLIENT_SECRET", SECRET),
    ]);
    let lambda = Lambda::start(&env);

    let event = s3_event(&[
        ("ObjectCreated:Put", "in/summer+sale.csv"),
        ("ObjectCreated:Put", "in/notes.txt"),
        ("ObjectRemoved:Delete", "in/gone.csv"),
    ]);
    let (status, answer) = lambda.invoke(&event).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["imports"].as_array().unwrap().len(), 1, "{answer}");
    assert_eq!(
        answer["imports"][0]["object"],
        "s3://imports/in/summer sale.csv"
    );
    let report = aws.report("in/summer sale.csv").await.expect("the report");
    assert_eq!(counts(&report), [9, 4, 0, 0, 4, 1], "{report:#}");
    assert!(aws.report("in/notes.txt").await.is_none());
    assert_eq!(products(&p).await.len(), 4);

    // Delivered again (S3 delivers at least once): nothing created twice.
    let (status, answer) = lambda.invoke(&event).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let report = aws.report("in/summer sale.csv").await.unwrap();
    assert_eq!(counts(&report), [9, 0, 0, 4, 4, 1], "{report:#}");
    assert_eq!(products(&p).await.len(), 4);

    // A file that fails as a whole fails the invocation (Lambda's retries and DLQ apply),
    // and its report says why.
    let (status, answer) = lambda
        .invoke(&s3_event(&[("ObjectCreated:Put", "in/broken.csv")]))
        .await;
    let text = answer.to_string();
    assert!(
        !status.is_success() || answer.get("errorMessage").is_some(),
        "{status} {text}"
    );
    assert!(
        text.contains("no column price, currency, category, stock_quantity"),
        "{text}"
    );
    let report = aws.report("in/broken.csv").await.unwrap();
    assert_eq!(report["status"], "failed");
}

/// 100,000 rows from S3 (about 40 MB) in bounded memory: the import's peak resident memory,
/// as it reports it, grows over that of a one-row import by far less than the file's size
/// (the SKU map, 24 bytes a row, and buffers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_rows_from_s3_in_bounded_memory() {
    let p = Platform::start(Backend::Sqlite).await;
    let g = gateway(&p, &[("RATE_LIMITS", "off")]).await;
    let aws = Aws::start().await;
    let rows = 100_000;
    let csv = big_csv(rows);
    let size = csv.len();
    aws.put("big.csv", csv).await;
    let mut env = aws.env();
    env.push(("IMPORT_BATCH_ROWS", "1000"));
    let output = ecom_import(&g.base, "s3://imports/big.csv", &env).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let report = stdout_report(&output);
    assert_eq!(counts(&report), [rows, rows, 0, 0, 0, 0]);
    let peak = peak_memory(&stderr);
    aws.put("one.csv", big_csv(1)).await;
    let output = ecom_import(&g.base, "s3://imports/one.csv", &env).await;
    assert!(output.status.success());
    let baseline = peak_memory(&String::from_utf8_lossy(&output.stderr));
    let size_mib = size as f64 / (1 << 20) as f64;
    eprintln!(
        "{rows} rows, {size_mib:.1} MiB from S3: peak memory {peak} MiB (one row: {baseline} MiB)"
    );
    assert!(size_mib > 35.0, "the file is {size_mib:.1} MiB");
    assert!(
        peak - baseline < 16.0,
        "peak memory {peak} MiB for a {size_mib:.1} MiB file, {baseline} MiB for one row"
    );
    assert_eq!(products(&p).await.len() as u64, rows);
}

/// The peak memory `ecom import` reports on its last line, in MiB.
fn peak_memory(stderr: &str) -> f64 {
    stderr
        .split("peak memory ")
        .nth(1)
        .and_then(|s| s.split(" MiB").next())
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no peak memory in {stderr}"))
}

/// `rows` products of about 400 bytes each.
pub fn big_csv(rows: u64) -> Vec<u8> {
    use std::fmt::Write;
    let mut text = String::with_capacity(rows as usize * 420);
    text.push_str("sku,name,description,price,currency,category,stock_quantity\n");
    let filler = "Sturdy, dishwasher-safe and made to last; ".repeat(8);
    for i in 0..rows {
        let _ = writeln!(
            text,
            "SKU-{i:07},Product {i},\"{filler}item {i}\",{}.{:02},EUR,category-{},{}",
            i % 500,
            i % 100,
            i % 40,
            i % 1000
        );
    }
    text.into_bytes()
}
