//! The runtime of `ecom stream-engine` (feature `runtime`): the pure core fed by a Kafka
//! consumer group, its results stored in DynamoDB and published to Kafka, its progress
//! checkpointed beside the results.
//!
//! - [`worker`]: the partitions' engine states and the commit cycle, independent of the
//!   transport;
//! - [`sink`]: the [`sink::ResultStore`] and [`sink::ResultLog`] traits and the pipeline that
//!   stores a commit's output before its checkpoints;
//! - [`kafka`]: the consumer-group driver and the output topics;
//! - [`dynamo`]: results and checkpoints in DynamoDB;
//! - [`metrics`]: what `/metrics` shows.
//!
//! Threads: one reads (the consumer's polls, and so its rebalance callbacks), one processes
//! (the worker, behind a mutex the callbacks also take); the sinks and the HTTP endpoints run
//! on a tokio runtime. The worker hands each commit to the sink pipeline and goes on; while the
//! pipeline has a commit queued it keeps collecting into a bigger one, and it blocks only when
//! that backlog is very large, and when partitions are revoked (their output must be stored
//! before another instance resumes them).

pub mod dynamo;
pub mod kafka;
pub mod metrics;
pub mod sink;
pub mod worker;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use prometheus_client::registry::Registry;
use service_common::kafka::TopicSpec;

use self::dynamo::{DynamoSettings, DynamoStore, ResultWrites};
use self::kafka::{KafkaResultLog, OutputTopics, SourceSettings};
use self::metrics::Metrics;
use self::worker::Worker;
use crate::core::EngineConfig;

/// Everything `ecom stream-engine` is configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Metrics and health endpoints.
    pub addr: SocketAddr,
    pub source: SourceSettings,
    pub outputs: OutputTopics,
    pub dynamo: DynamoSettings,
    pub engine: EngineConfig,
    /// How often output is stored and partitions checkpointed.
    pub commit_interval: Duration,
    /// Create missing topics (the input one with this many partitions) and tables at start.
    pub create: Option<i32>,
}

/// Runs the engine until `shutdown` resolves (then stores and checkpoints what it processed,
/// leaves the group and returns) or until it cannot go on (returns the reason).
pub async fn run(
    settings: Settings,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    settings.engine.validate().map_err(|e| e.to_string())?;
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);

    let client = DynamoStore::client_from_env().await;
    let writes = ResultWrites::for_engine(&settings.engine);
    tracing::info!(?writes, "DynamoDB result writes");
    let store = Arc::new(DynamoStore::new(
        client,
        settings.dynamo.clone(),
        writes,
        metrics.clone(),
    ));
    let bootstrap = &settings.source.bootstrap_servers;
    if let Some(partitions) = settings.create {
        store.ensure_tables().await.map_err(|e| e.to_string())?;
        let topic = |name: &str, partitions| TopicSpec {
            name: name.to_owned(),
            partitions,
        };
        let topics = [
            topic(&settings.source.topic, partitions),
            topic(&settings.outputs.results, partitions),
            topic(&settings.outputs.late, 1),
            topic(&settings.outputs.dead_letter, 1),
        ];
        service_common::kafka::ensure_topics(bootstrap, &topics, Duration::from_secs(30)).await?;
    } else {
        store.check_tables().await.map_err(|e| e.to_string())?;
    }
    let log = Arc::new(
        KafkaResultLog::new(
            bootstrap,
            settings.outputs.clone(),
            settings.dynamo.retry_for,
            metrics.clone(),
        )
        .map_err(|e| format!("cannot create the Kafka producer: {e}"))?,
    );

    // One commit queued behind the one being stored: enough to keep both sides busy.
    let (commits, queued) = tokio::sync::mpsc::channel(1);
    let (stored_tx, stored_rx) = std::sync::mpsc::channel();
    let pipeline = tokio::spawn(sink::run_pipeline(
        store.clone(),
        log,
        queued,
        stored_tx,
        metrics.clone(),
    ));
    let worker = Worker::new(
        settings.engine.clone(),
        store,
        tokio::runtime::Handle::current(),
        commits,
        stored_rx,
        metrics.clone(),
        settings.commit_interval,
    );

    let stop = Arc::new(AtomicBool::new(false));
    let running = Arc::new(AtomicBool::new(true));
    let source = {
        let (stop, running, metrics) = (stop.clone(), running.clone(), metrics.clone());
        let source_settings = settings.source.clone();
        std::thread::Builder::new()
            .name("stream-engine".into())
            .spawn(move || {
                let result = kafka::run_source(&source_settings, worker, metrics, &stop);
                running.store(false, Ordering::SeqCst);
                result
            })
            .map_err(|e| format!("cannot start the engine thread: {e}"))?
    };

    let ready: service_common::ReadyCheck = {
        let running = running.clone();
        Arc::new(move || {
            let running = running.load(Ordering::SeqCst);
            Box::pin(async move {
                if running {
                    Ok(())
                } else {
                    Err("the engine stopped".to_owned())
                }
            })
        })
    };
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let (addr, server) = service_common::serve(
        settings.addr,
        axum::Router::new(),
        service_common::Ops::new(registry, ready),
        async move {
            let _ = server_stopped.await;
        },
    )
    .await
    .map_err(|e| format!("cannot listen on {}: {e}", settings.addr))?;
    tracing::info!(%addr, topic = %settings.source.topic, group = %settings.source.group_id, "stream engine started");
    let server = tokio::spawn(server);

    // Stop on the signal, or when the engine thread ends by itself (a failure).
    let watch = {
        let running = running.clone();
        async move {
            while running.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    tokio::select! {
        () = shutdown => tracing::info!("shutting down"),
        () = watch => {}
    }
    stop.store(true, Ordering::SeqCst);
    let outcome = tokio::task::spawn_blocking(move || source.join())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|_| "the engine thread panicked".to_owned())?;
    // The worker is gone with its thread, so the pipeline drains and ends.
    let drained = pipeline.await.map_err(|e| e.to_string())?;
    let _ = stop_server.send(());
    let _ = server.await;
    // A sink's own error first: the engine thread then only knows that the pipeline stopped.
    drained.map_err(|e| e.to_string())?;
    outcome.map_err(|e| e.to_string())
}
