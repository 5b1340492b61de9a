//! The embedded path measured, each figure beside its reference in the same run:
//!
//! 1. storage for the embedded log: the same events appended by 8 concurrent appenders in
//!    batches of 500, each append acknowledged only once durable: the segment-file log
//!    (`event_log::embedded`, group commit + `fdatasync`) against SQLite (WAL,
//!    `synchronous=FULL`, one transaction per batch, the way a SQLite-backed log would do it);
//! 2. the engine reading and windowing the embedded log (`stream_runtime` with the SQLite
//!    store and the embedded output topics, as `ecom up` runs it) against `ecom window`'s
//!    offline loop over the same NDJSON bytes;
//! 3. the result latency of that run (a window firing to its result stored in SQLite).
//!
//! `cargo run --release --example embedded_bench -- [EVENTS]` (default 2,000,000). Everything
//! runs in a temporary directory on the machine's disk.

use std::sync::Arc;
use std::time::{Duration, Instant};

use event_log::embedded::{EmbeddedLog, LogConfig};
use event_log::{Bytes, EventLog, Record};
use prometheus_client::registry::Registry;
use result_store::Writes;
use result_store::sqlite::SqliteStore;
use stream_engine::EngineConfig;
use stream_engine::offline::{self, OfflineConfig, SideOutputs};
use stream_engine::sample::{Sample, SampleConfig};
use stream_runtime::EngineParts;
use stream_runtime::embedded::EmbeddedResultLog;
use stream_runtime::metrics::Metrics;

const PARTITIONS: u32 = 4;
const BATCH: usize = 500;
const APPENDERS: usize = 8;

fn main() {
    let events: u64 = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("EVENTS is a number"))
        .unwrap_or(2_000_000);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");

    let mut ndjson = Vec::new();
    let mut sample = Sample::new(SampleConfig {
        events,
        products: 1_000,
        users: 100_000,
        events_per_second: 20_000,
        ..SampleConfig::default()
    });
    while sample.write_line(&mut ndjson) {}
    let records: Vec<Record> = ndjson
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|line| {
            let event = stream_engine::decode_event(line).expect("a valid event");
            Record::new(
                Bytes::copy_from_slice(event.product_id.as_bytes()),
                Bytes::copy_from_slice(line),
            )
        })
        .collect();
    println!(
        "{} events, {:.0} MB of NDJSON",
        records.len(),
        ndjson.len() as f64 / 1e6
    );

    // 1. Storage.
    let log = EmbeddedLog::open(
        &dir.path().join("log/ecom-raw-events"),
        LogConfig {
            partitions: PARTITIONS,
            ..LogConfig::default()
        },
    )
    .expect("log");
    let took = runtime.block_on(append_all(&log, &records));
    rate("segment files (group commit) ", records.len(), took);
    println!("  {} group commits", log.flushes());
    let took = runtime.block_on(sqlite_log(&dir.path().join("sqlite-log.db"), &records));
    rate("SQLite, a transaction a batch ", records.len(), took);

    // 2. Reading and windowing.
    let started = Instant::now();
    let summary = offline::run(
        &OfflineConfig {
            engine: EngineConfig::default(),
            partitions: PARTITIONS,
        },
        ndjson.as_slice(),
        &mut std::io::sink(),
        SideOutputs::default(),
    )
    .expect("offline run");
    let offline_took = started.elapsed();
    rate(
        "ecom window (offline)         ",
        records.len(),
        offline_took,
    );
    let (engine_took, latency, windows) =
        runtime.block_on(engine(dir.path(), &log, records.len() as u64));
    rate("engine on the embedded log    ", records.len(), engine_took);
    println!(
        "engine / offline: {:.0} % ({} windows offline, {windows} fired by the engine)",
        100.0 * offline_took.as_secs_f64() / engine_took.as_secs_f64(),
        summary.windows_emitted
    );
    println!("result latency (window fired -> stored in SQLite), by histogram bucket:");
    for (quantile, bound) in latency {
        println!("  p{quantile:<4} <= {bound} s");
    }
}

fn rate(name: &str, events: usize, took: Duration) {
    println!(
        "{name} {:.2} s: {:.0} events/s",
        took.as_secs_f64(),
        events as f64 / took.as_secs_f64()
    );
}

/// Appends in batches from concurrent appenders, each waiting for its acknowledgement.
async fn append_all(log: &EmbeddedLog, records: &[Record]) -> Duration {
    let started = Instant::now();
    let batches: Vec<Vec<Record>> = records.chunks(BATCH).map(<[Record]>::to_vec).collect();
    let batches = Arc::new(std::sync::Mutex::new(batches.into_iter()));
    let tasks: Vec<_> = (0..APPENDERS)
        .map(|_| {
            let (log, batches) = (log.clone(), batches.clone());
            tokio::spawn(async move {
                loop {
                    let next = batches.lock().expect("batches").next();
                    let Some(batch) = next else {
                        return;
                    };
                    log.append(batch).await.expect("appended");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("appender");
    }
    started.elapsed()
}

/// The same appends into SQLite: a table per log, a transaction per batch, durable on commit.
async fn sqlite_log(path: &std::path::Path, records: &[Record]) -> Duration {
    use sqlx::sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
    };
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(30));
    let pool = SqlitePoolOptions::new()
        .max_connections(APPENDERS as u32)
        .connect_with(options)
        .await
        .expect("sqlite");
    sqlx::query("CREATE TABLE log (partition INTEGER, offset INTEGER, key BLOB, value BLOB, PRIMARY KEY (partition, offset)) WITHOUT ROWID")
        .execute(&pool)
        .await
        .expect("table");
    let next = Arc::new(std::sync::Mutex::new(vec![0i64; PARTITIONS as usize]));
    let started = Instant::now();
    let batches: Vec<Vec<Record>> = records.chunks(BATCH).map(<[Record]>::to_vec).collect();
    let batches = Arc::new(std::sync::Mutex::new(batches.into_iter()));
    let tasks: Vec<_> = (0..APPENDERS)
        .map(|_| {
            let (pool, batches, next) = (pool.clone(), batches.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let batch = batches.lock().expect("batches").next();
                    let Some(batch) = batch else {
                        return;
                    };
                    let mut tx = pool.begin().await.expect("begin");
                    for record in &batch {
                        let partition = event_log::partition_for(&record.key, PARTITIONS);
                        let offset = {
                            let mut next = next.lock().expect("offsets");
                            let o = next[partition as usize];
                            next[partition as usize] += 1;
                            o
                        };
                        sqlx::query("INSERT INTO log VALUES (?, ?, ?, ?)")
                            .bind(partition)
                            .bind(offset)
                            .bind(&record.key[..])
                            .bind(&record.value[..])
                            .execute(&mut *tx)
                            .await
                            .expect("insert");
                    }
                    tx.commit().await.expect("commit");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("appender");
    }
    let took = started.elapsed();
    pool.close().await;
    took
}

/// The engine over the filled log, as `ecom up` runs it, until it has read every record.
async fn engine(
    dir: &std::path::Path,
    log: &EmbeddedLog,
    events: u64,
) -> (Duration, Vec<(&'static str, String)>, u64) {
    let open = |topic: &str, partitions| {
        EmbeddedLog::open(
            &dir.join("log").join(topic),
            LogConfig {
                partitions,
                keep_until_committed: false,
                ..LogConfig::default()
            },
        )
        .expect("log")
    };
    let outputs = EmbeddedResultLog {
        results: open("ecom-analytics-results", PARTITIONS),
        late: open("ecom-late-events", 1),
        dead_letters: open("ecom-dead-letters", 1),
    };
    let store = SqliteStore::open(&dir.join("store.db"), "bench", Writes::Unconditional)
        .await
        .expect("store");
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let started = Instant::now();
    let engine = stream_runtime::start(
        EngineParts {
            engine: EngineConfig::default(),
            commit_interval: Duration::from_millis(200),
            store: Arc::new(store),
            log: Arc::new(outputs),
            metrics: metrics.clone(),
        },
        {
            let log = log.clone();
            move |listener| Ok(log.reader("bench", listener))
        },
    )
    .expect("engine");
    while metrics.records.get() < events {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = started.elapsed();
    engine.stop().await.expect("a clean stop");
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("metrics");
    let latency = testkit::prometheus::quantiles(
        &text,
        "stream_result_latency_seconds",
        &[("50", 0.5), ("99", 0.99), ("99.9", 0.999)],
    );
    (took, latency, metrics.windows_fired.get())
}
