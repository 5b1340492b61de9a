//! The README's quick start, run as written against a fresh `ecom up` (its defaults, demo
//! traffic included, in a directory of its own): every `curl` in the section's shell blocks is
//! followed by a `# → <status>` comment, and each must answer that status, in order.

use std::process::{Command, Stdio};

use testkit::free_port;

use crate::support::*;

/// The section's shell blocks, and the statuses their comments promise.
fn quick_start() -> (String, Vec<u16>) {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let start = readme
        .find("\n## Quick start\n")
        .expect("a Quick start section");
    let section = &readme[start + 1..];
    let section = &section[..section[3..]
        .find("\n## ")
        .map_or(section.len(), |end| end + 3)];
    let mut script = String::new();
    let mut block = None::<String>;
    for line in section.lines() {
        match (&mut block, line) {
            (None, "```sh") => block = Some(String::new()),
            (Some(text), "```") => {
                script.push_str(text);
                block = None;
            }
            (Some(text), line) => {
                text.push_str(line);
                text.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(block.is_none(), "an unclosed block");
    let statuses = script
        .lines()
        .filter_map(|l| l.strip_prefix("# → "))
        .map(|rest| rest[..3].parse().expect("a status after →"))
        .collect();
    (script, statuses)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_quick_start_runs_as_written_against_a_fresh_ecom_up() {
    let _serial = serial().await;
    let (script, expected) = quick_start();
    assert!(
        expected.len() >= 10 && script.matches("curl ").count() == expected.len(),
        "every curl has its `# → status` comment:\n{script}"
    );
    let cwd = tempfile::tempdir().expect("a directory");
    let port = free_port();
    // `cargo run --release -- up` as the README starts it, on another port.
    let mut command = Command::new(env!("CARGO_BIN_EXE_ecom"));
    command
        .args(["up", "--addr", &format!("127.0.0.1:{port}")])
        .current_dir(cwd.path())
        .env_remove("ECOM_DATA_DIR")
        .env_remove("ECOM_ADMIN_PASSWORD")
        .env_remove("ECOM_IMPORTER_SECRET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let up = Service::spawn(command, port);
    up.wait_ready().await;

    // Each curl reports its status on standard error, after its body.
    let prelude = "set -euo pipefail\n\
        curl() { command curl -w '%{stderr}README-STATUS %{http_code}\\n' \"$@\"; }\n";
    let script = script.replace("localhost:8080", &format!("localhost:{port}"));
    let output = Command::new("bash")
        .arg("-c")
        .arg(format!("{prelude}{script}"))
        .current_dir(cwd.path())
        .output()
        .expect("bash runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let statuses: Vec<u16> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("README-STATUS "))
        .map(|s| s.parse().expect("a status"))
        .collect();
    assert!(
        output.status.success(),
        "the quick start failed ({}):\n{stderr}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout)
    );
    assert_eq!(
        statuses,
        expected,
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    // The ones that hold regardless of the demo traffic's timing.
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(r#"{"accepted":1,"late":0,"rejected":[]}"#),
        "{stdout}"
    );
    assert!(
        stdout.contains(r#""total":{"amount":2598,"currency":"EUR"}"#),
        "{stdout}"
    );
}
