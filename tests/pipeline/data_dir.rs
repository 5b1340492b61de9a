//! `ecom up`'s data directory has one owner: a second process is refused before it touches
//! anything, a killed owner's lock dies with it, and every refused start (a bad flag, a busy
//! address, a file in the directory's place) says why in one line and leaves nothing behind.
//! Its stop is orderly even when its terminal has gone.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use result_store::CheckpointStore;
use result_store::sqlite::SqliteStore;
use stream_engine::sample::SampleEvent;
use testkit::free_port;

use crate::support::*;

/// `n` events of one product (so one partition), stamped now.
fn live_events(n: u32, first_user: u32) -> Vec<SampleEvent> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    (0..n)
        .map(|i| SampleEvent {
            user: first_user + i,
            product: 7,
            event_type: "VIEW_PRODUCT",
            timestamp_ms: now,
            offset_minutes: 0,
            session: 0,
        })
        .collect()
}

async fn post_accepted(up: &Service, events: &[SampleEvent]) {
    let (status, body) = up.post_events(events).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["accepted"], events.len(), "{body}");
}

/// The events the input topic holds: the sum of its partitions' end offsets.
async fn durable_events(up: &Service) -> u64 {
    let metrics = up.metrics().await;
    metrics
        .lines()
        .filter(|l| l.starts_with("event_log_end_offset{topic=\"ecom-raw-events\""))
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap() as u64)
        .sum()
}

/// Every path under `dir`, sorted.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(at) = todo.pop() {
        for entry in std::fs::read_dir(&at).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path.clone());
            }
            paths.push(path);
        }
    }
    paths.sort();
    paths
}

/// `ecom up` run to its exit: (exit code, standard error).
fn up_to_exit(data_dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_ecom"))
        .arg("up")
        .arg("--no-demo")
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("ecom up runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A second `ecom up` on `data_dir` (held by `holder`) is refused at once, in one line, with
/// nothing in the directory made, and its address never served.
fn assert_refused(data_dir: &Path, holder: &Service) {
    let before = tree(data_dir);
    let port = free_port();
    let (code, stderr) = up_to_exit(data_dir, &["--addr", &format!("127.0.0.1:{port}")]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        format!(
            "error: {} is in use by ecom up (pid {}); stop it or choose another --data-dir",
            data_dir.display(),
            holder.pid()
        )
    );
    assert_eq!(
        tree(data_dir),
        before,
        "the refused start touched the directory"
    );
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_ecom_up_on_a_data_directory_in_use_is_refused_and_the_first_loses_nothing() {
    let _serial = serial().await;
    let data = tempfile::tempdir().unwrap();
    let mut first = up(data.path(), free_port(), &[]);
    first.wait_ready().await;
    post_accepted(&first, &live_events(1_000, 0)).await;

    assert_refused(data.path(), &first);

    // The first goes on as if nothing happened, and keeps everything after a restart.
    post_accepted(&first, &live_events(1_000, 1_000)).await;
    assert_eq!(durable_events(&first).await, 2_000);
    assert!(first.terminate().success());
    let again = up(data.path(), free_port(), &[]);
    again.wait_ready().await;
    assert_eq!(durable_events(&again).await, 2_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_of_an_ecom_up_killed_with_sigkill_is_free_again() {
    let _serial = serial().await;
    let data = tempfile::tempdir().unwrap();
    let mut first = up(data.path(), free_port(), &[]);
    first.wait_ready().await;
    post_accepted(&first, &live_events(500, 0)).await;
    assert_refused(data.path(), &first);

    first.kill9();
    // The lock file stays behind; the lock itself died with its holder.
    assert!(data.path().join("LOCK").exists());
    let second = up(data.path(), free_port(), &[]);
    second.wait_ready().await;
    assert_eq!(durable_events(&second).await, 500);
    post_accepted(&second, &live_events(10, 500)).await;
    assert_eq!(durable_events(&second).await, 510);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_with_the_terminal_gone_stops_in_order_and_checkpoints() {
    let _serial = serial().await;
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut command = up_command(data.path(), port, &[]);
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut up = Service::spawn(command, port);
    up.wait_ready().await;
    post_accepted(&up, &live_events(100, 0)).await;
    up.wait_processing().await;
    // `ecom up 2>&1 | tee up.log`, and Ctrl-C stopped tee first: both pipes have no reader.
    drop(up.take_stdout());
    drop(up.take_stderr());
    let status = up.signal_and_wait("INT");
    assert_eq!(status.code(), Some(0), "{status}");

    let store = SqliteStore::open(
        &data.path().join("store.db"),
        "ecom-stream-engine/ecom-raw-events",
        result_store::Writes::Unconditional,
    )
    .await
    .unwrap();
    let mut processed = 0;
    for partition in 0..PARTITIONS {
        if let Some(checkpoint) = store.load_checkpoint(partition).await.unwrap() {
            processed += checkpoint.highest_offset.map_or(0, |h| h + 1);
        }
    }
    assert_eq!(processed, 100, "every event processed is checkpointed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_start_says_why_in_one_line_and_makes_no_directory() {
    let root = tempfile::tempdir().unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = busy.local_addr().unwrap().to_string();
    let a_file = root.path().join("a-file");
    std::fs::write(&a_file, "not a directory").unwrap();

    let missing = root.path().join("ecom-data");
    let cases: [(&Path, Vec<&str>, &str); 6] = [
        (
            &missing,
            vec!["--addr", &busy],
            "is another ecom up running? choose --addr",
        ),
        (
            &missing,
            vec!["--addr", "10.255.255.1:80"],
            "cannot listen on",
        ),
        (&missing, vec!["--partitions", "0"], "--partitions"),
        (&missing, vec!["--partitions", "many"], "--partitions"),
        (
            &missing,
            vec!["--out-of-orderness", "100000d"],
            "out_of_orderness",
        ),
        (&a_file, vec![], "is a file, not a directory"),
    ];
    for (data_dir, args, says) in cases {
        let (code, stderr) = up_to_exit(data_dir, &args);
        assert!(
            code.is_some_and(|c| c != 0 && c != 101),
            "{args:?}: {code:?} {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        // clap adds a hint after its one line ("For more information, try '--help'.").
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
            .collect();
        assert_eq!(lines.len(), 1, "{args:?}: {stderr}");
        assert!(lines[0].starts_with("error: "), "{args:?}: {stderr}");
        assert!(lines[0].contains(says), "{args:?}: {stderr}");
        assert!(!missing.exists(), "{args:?} made the data directory");
    }
    assert_eq!(std::fs::read_to_string(&a_file).unwrap(), "not a directory");
}
