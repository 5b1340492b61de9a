//! `ecom window` end to end: a generated file with malformed lines through the real binary,
//! checked against a brute-force count and the summary it prints.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use stream_engine::core::time::format_rfc3339_ms;
use stream_engine::sample::{Sample, SampleConfig};

const MALFORMED: [(&str, &str); 6] = [
    ("{\"user_id\":\"u1\",", "invalid_json"),
    ("[1,2,3]", "not_an_object"),
    (
        "{\"product_id\":\"p1\",\"event_type\":\"VIEW_PRODUCT\",\"timestamp\":\"2024-01-01T12:00:00Z\"}",
        "missing_field",
    ),
    (
        "{\"user_id\":\"u1\",\"product_id\":\"p1\",\"event_type\":\"VIEW_PRODUCT\",\"timestamp\":\"2024-13-01T12:00:00Z\"}",
        "bad_timestamp",
    ),
    (
        "{\"user_id\":\"u1\",\"product_id\":\"\",\"event_type\":\"VIEW_PRODUCT\",\"timestamp\":\"2024-01-01T12:00:00Z\"}",
        "empty_id",
    ),
    ("\u{1}\u{2}garbage", "invalid_json"),
];

struct Fixture {
    dir: tempfile::TempDir,
    /// (product, window start) -> (users, events), by brute force over the generated events.
    expected: BTreeMap<(String, String), (BTreeSet<String>, u64)>,
    valid: u64,
    rejected: BTreeMap<&'static str, u64>,
}

/// 60,000 events over about three minutes of event time, disorder within 8 s, and a malformed
/// line after every 997th event, plus blank lines (ignored) and a final line without newline.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut file = Vec::new();
    let mut expected: BTreeMap<(String, String), (BTreeSet<String>, u64)> = BTreeMap::new();
    let mut rejected = BTreeMap::new();
    let sample = Sample::new(SampleConfig {
        events: 60_000,
        products: 300,
        users: 2_000,
        events_per_second: 300,
        ..SampleConfig::default()
    });
    let mut valid = 0;
    for (i, event) in sample.enumerate() {
        event.write_json(&mut file);
        valid += 1;
        let start = event.timestamp_ms.div_euclid(60_000) * 60_000;
        let w = expected
            .entry((event.product_id(), format_rfc3339_ms(start)))
            .or_default();
        w.0.insert(event.user_id());
        w.1 += 1;
        if i % 997 == 996 {
            let (line, code) = MALFORMED[(i / 997) % MALFORMED.len()];
            file.extend_from_slice(line.as_bytes());
            file.push(b'\n');
            *rejected.entry(code).or_insert(0) += 1;
        }
        if i % 5000 == 0 {
            file.extend_from_slice(b"   \n");
        }
    }
    file.extend_from_slice(b"{\"truncated\":");
    *rejected.entry("invalid_json").or_insert(0) += 1;
    std::fs::write(dir.path().join("events.ndjson"), file).unwrap();
    Fixture {
        dir,
        expected,
        valid,
        rejected,
    }
}

fn ecom(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ecom"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn summary(output: &Output) -> Value {
    let stderr = String::from_utf8_lossy(&output.stderr);
    serde_json::from_str(stderr.trim()).unwrap_or_else(|e| panic!("summary {stderr:?}: {e}"))
}

fn results(path: &Path) -> BTreeMap<(String, String), (u64, u64)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut map = BTreeMap::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let key = (
            v["product_id"].as_str().unwrap().to_owned(),
            v["window_start"].as_str().unwrap().to_owned(),
        );
        let start = stream_engine::core::time::parse_rfc3339_ms(&key.1).unwrap();
        assert_eq!(v["window_end"], format_rfc3339_ms(start + 60_000));
        assert_eq!(v["approximate"], false);
        let counts = (
            v["unique_user_count"].as_u64().unwrap(),
            v["event_count"].as_u64().unwrap(),
        );
        assert!(
            map.insert(key, counts).is_none(),
            "a window emitted twice: {line}"
        );
    }
    map
}

#[test]
fn windows_a_file_with_malformed_lines_exactly_for_any_partition_count() {
    let f = fixture();
    let want: BTreeMap<(String, String), (u64, u64)> = f
        .expected
        .iter()
        .map(|(k, (users, n))| (k.clone(), (users.len() as u64, *n)))
        .collect();
    for partitions in ["1", "3", "8"] {
        let out = ecom(
            &[
                "window",
                "--input",
                "events.ndjson",
                "--output",
                "results.ndjson",
                "--partitions",
                partitions,
                "--dead-letter",
                "rejected.ndjson",
                "--summary",
                "json",
            ],
            f.dir.path(),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            results(&f.dir.path().join("results.ndjson")),
            want,
            "partitions {partitions}"
        );

        let s = summary(&out);
        let rejected: u64 = f.rejected.values().sum();
        assert_eq!(s["events_read"], f.valid + rejected);
        assert_eq!(s["accepted"], f.valid);
        assert_eq!(s["rejected"], rejected);
        assert_eq!(s["late"], 0);
        assert_eq!(s["windows_emitted"], want.len() as u64);
        let by_reason: BTreeMap<String, u64> =
            serde_json::from_value(s["rejected_by_reason"].clone()).unwrap();
        let expected: BTreeMap<String, u64> = f
            .rejected
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        assert_eq!(by_reason, expected);
        assert!(s["events_per_second"].as_f64().unwrap() > 0.0);

        let dead = std::fs::read_to_string(f.dir.path().join("rejected.ndjson")).unwrap();
        assert_eq!(dead.lines().count() as u64, rejected);
        let first: Value = serde_json::from_str(dead.lines().next().unwrap()).unwrap();
        assert!(first["line"].as_u64().unwrap() > 0);
        assert!(first["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
}

#[test]
fn late_events_are_counted_and_written_to_the_late_output() {
    let dir = tempfile::tempdir().unwrap();
    let lines = [
        ("p1", "u1", "2024-01-01T12:00:30Z"),
        ("p1", "u2", "2024-01-01T12:01:15Z"), // watermark 12:01:05: the 12:00 window fires
        ("p1", "u3", "2024-01-01T12:00:59+00:00"), // late
        ("p1", "u4", "2024-01-01T13:00:59+01:00"), // the same instant, written in +01:00: late
        ("p2", "u1", "2024-01-01T12:01:20Z"),
    ];
    let mut file = String::new();
    for (p, u, ts) in lines {
        file.push_str(&format!(
            "{{\"user_id\":\"{u}\",\"product_id\":\"{p}\",\"event_type\":\"VIEW_PRODUCT\",\"timestamp\":\"{ts}\"}}\n"
        ));
    }
    std::fs::write(dir.path().join("in.ndjson"), file).unwrap();
    let out = ecom(
        &[
            "window",
            "-i",
            "in.ndjson",
            "-o",
            "out.ndjson",
            "--late-output",
            "late.ndjson",
            "--summary",
            "json",
        ],
        dir.path(),
    );
    assert!(out.status.success());
    assert_eq!(summary(&out)["late"], 2);
    let late = std::fs::read_to_string(dir.path().join("late.ndjson")).unwrap();
    let late: Vec<Value> = late
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(late.len(), 2);
    assert_eq!(late[0]["user_id"], "u3");
    assert_eq!(late[1]["timestamp"], "2024-01-01T12:00:59Z");
    assert_eq!(late[1]["watermark"], "2024-01-01T12:01:05Z");

    // With a minute of allowed lateness the same events correct the window instead.
    let out = ecom(
        &[
            "window",
            "-i",
            "in.ndjson",
            "-o",
            "out.ndjson",
            "--allowed-lateness",
            "1m",
            "--summary",
            "json",
        ],
        dir.path(),
    );
    assert_eq!(summary(&out)["late"], 0);
    let text = std::fs::read_to_string(dir.path().join("out.ndjson")).unwrap();
    let last_p1_1200 = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .rfind(|v| v["product_id"] == "p1" && v["window_start"] == "2024-01-01T12:00:00Z")
        .unwrap();
    assert_eq!(last_p1_1200["unique_user_count"], 3);
}

#[test]
fn reads_stdin_writes_stdout_and_prints_a_readable_summary() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ecom"))
        .args(["window", "--input", "-", "--approx"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"user_id\":\"u\",\"product_id\":\"p\",\"event_type\":\"PURCHASE\",\"timestamp\":\"2024-01-01T12:00:00Z\"}\nnope\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout,
        "{\"product_id\":\"p\",\"window_start\":\"2024-01-01T12:00:00Z\",\"window_end\":\"2024-01-01T12:01:00Z\",\"unique_user_count\":1,\"event_count\":1,\"approximate\":true}\n"
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("events read      2"), "{stderr}");
    assert!(
        stderr.contains("rejected         1  (invalid_json 1)"),
        "{stderr}"
    );
    assert!(stderr.contains("events/s"), "{stderr}");
}

#[test]
fn bad_arguments_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let out = ecom(&["window", "--input", "missing.ndjson"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open missing.ndjson"));

    let out = ecom(
        &["window", "--input", "-", "--out-of-orderness", "ten"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--out-of-orderness"));

    let out = ecom(&["window", "--input", "-", "--partitions", "0"], dir.path());
    assert_eq!(out.status.code(), Some(2));

    let out = ecom(
        &["window", "--input", "-", "--allowed-lateness", "30d"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("allowed_lateness must be at most one week")
    );
}

#[test]
fn gen_output_feeds_window() {
    let dir = tempfile::tempdir().unwrap();
    let out = ecom(
        &[
            "gen",
            "--events",
            "5000",
            "--products",
            "50",
            "--malformed-fraction",
            "0.01",
            "-o",
            "g.ndjson",
        ],
        dir.path(),
    );
    assert!(out.status.success());
    let out = ecom(
        &[
            "window",
            "-i",
            "g.ndjson",
            "-o",
            "r.ndjson",
            "--summary",
            "json",
        ],
        dir.path(),
    );
    let s = summary(&out);
    assert_eq!(s["events_read"], 5000);
    assert!(s["rejected"].as_u64().unwrap() > 0);
    assert_eq!(
        s["accepted"].as_u64().unwrap() + s["rejected"].as_u64().unwrap(),
        5000
    );
}
