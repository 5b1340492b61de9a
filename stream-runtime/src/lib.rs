//! The runtime of the stream engine: the pure core driven from a partitioned log, its results
//! stored and published, its progress checkpointed beside the results.
//!
//! - [`worker`]: the partitions' engine states and the commit cycle, independent of the
//!   transport;
//! - [`source`]: the loop that drives the worker from any [`event_log::PartitionReader`] (a
//!   Kafka consumer group, or the embedded log);
//! - [`sink`]: the [`sink::ResultLog`] trait and the pipeline that stores a commit's output
//!   (in a [`result_store::ResultStore`]) before its checkpoints;
//! - [`embedded`]: the output topics on the embedded log (`ecom up`);
//! - `kafka` (feature `kafka`): the output topics on Kafka, and [`run`], `ecom stream-engine`;
//! - [`metrics`]: what `/metrics` shows.
//!
//! Threads: one reads (the reader's polls, and so its assignment callbacks), one processes
//! (the worker, behind a mutex the callbacks also take); the sinks and the HTTP endpoints run
//! on a tokio runtime. The worker hands each commit to the sink pipeline and goes on; while the
//! pipeline has a commit queued it keeps collecting into a bigger one, and it blocks only when
//! that backlog is very large, and when partitions are revoked (their output must be stored
//! before another instance resumes them).

pub mod embedded;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod metrics;
pub mod sink;
pub mod source;
pub mod worker;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use event_log::{PartitionReader, ReadError};
use prometheus_client::registry::Registry;
use result_store::{CheckpointStore, ResultStore};
use stream_engine::EngineConfig;

use self::metrics::Metrics;
use self::sink::{ResultLog, SinkError};
use self::source::Shared;
use self::worker::{Worker, WorkerError};

#[cfg(feature = "kafka")]
pub use self::kafka_run::{Settings, run};

/// Why the engine could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Config(#[from] stream_engine::ConfigError),
    #[error(transparent)]
    Store(#[from] result_store::StoreError),
    #[error("cannot set up the log: {0}")]
    Log(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Worker(#[from] WorkerError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("{0}")]
    Thread(String),
}

/// What the engine runs on, whatever the transport.
pub struct EngineParts<S, L> {
    pub engine: EngineConfig,
    /// How often output is stored and partitions checkpointed.
    pub commit_interval: Duration,
    pub store: Arc<S>,
    pub log: Arc<L>,
    pub metrics: Metrics,
}

/// The watermark each owned partition has reached, as of the worker's latest tick (at most
/// 50 ms old): what a caller in the same process (ingest in `ecom up`) reads to tell an event
/// whose window has closed already. Clones share it.
#[derive(Clone, Debug, Default)]
pub struct Watermarks(Arc<RwLock<BTreeMap<u32, i64>>>);

impl Watermarks {
    /// The partition's watermark in UTC milliseconds, if this instance owns it and has one.
    pub fn get(&self, partition: u32) -> Option<i64> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&partition)
            .copied()
    }

    fn set(&self, partition: u32, watermark: Option<i64>) {
        let mut map = self.0.write().unwrap_or_else(|e| e.into_inner());
        match watermark {
            Some(w) => map.insert(partition, w),
            None => map.remove(&partition),
        };
    }
}

/// A started engine: its threads and its sink pipeline.
pub struct RunningEngine {
    stop: Arc<AtomicBool>,
    running: Arc<AtomicBool>,
    watermarks: Watermarks,
    thread: std::thread::JoinHandle<Result<(), WorkerError>>,
    pipeline: tokio::task::JoinHandle<Result<(), SinkError>>,
}

/// Starts the engine on the reader `open` makes (given the listener it must report assignment
/// changes to). Must be called inside a tokio runtime (the sinks run on it).
pub fn start<S, L, R, F>(parts: EngineParts<S, L>, open: F) -> Result<RunningEngine, RuntimeError>
where
    S: ResultStore + CheckpointStore,
    L: ResultLog,
    R: PartitionReader,
    F: FnOnce(Arc<Shared<S>>) -> Result<R, ReadError> + Send + 'static,
{
    parts.engine.validate()?;
    // One commit queued behind the one being stored: enough to keep both sides busy.
    let (commits, queued) = tokio::sync::mpsc::channel(1);
    let (stored_tx, stored_rx) = std::sync::mpsc::channel();
    let pipeline = tokio::spawn(sink::run_pipeline(
        parts.store.clone(),
        parts.log,
        queued,
        stored_tx,
        parts.metrics.clone(),
    ));
    let watermarks = Watermarks::default();
    let worker = Worker::new(
        parts.engine,
        parts.store,
        tokio::runtime::Handle::current(),
        commits,
        stored_rx,
        parts.metrics.clone(),
        parts.commit_interval,
    )
    .publishing(watermarks.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let running = Arc::new(AtomicBool::new(true));
    let thread = {
        let (stop, running) = (stop.clone(), running.clone());
        let shared = Shared::new(worker, parts.metrics);
        std::thread::Builder::new()
            .name("stream-engine".into())
            .spawn(move || {
                let result = open(shared.clone())
                    .map_err(|e| {
                        WorkerError::Sink(SinkError {
                            sink: "source",
                            message: e.to_string(),
                        })
                    })
                    .and_then(|reader| source::run(&reader, &shared, &stop));
                running.store(false, Ordering::SeqCst);
                result
            })
            .map_err(|e| RuntimeError::Thread(format!("cannot start the engine thread: {e}")))?
    };
    Ok(RunningEngine {
        stop,
        running,
        watermarks,
        thread,
        pipeline,
    })
}

/// The engine alone as a service: started on `parts` and the reader `open` makes, with
/// `/healthz`, `/readyz` and `/metrics` (from `registry`, where `parts.metrics` is registered)
/// on `addr`. Returns the bound address and a future that runs until `shutdown` resolves or the
/// engine fails, then stores and checkpoints what was processed and gives the partitions up.
pub async fn build<S, L, R, F>(
    addr: SocketAddr,
    parts: EngineParts<S, L>,
    open: F,
    registry: Registry,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, impl Future<Output = Result<(), RuntimeError>>), RuntimeError>
where
    S: ResultStore + CheckpointStore,
    L: ResultLog,
    R: PartitionReader,
    F: FnOnce(Arc<Shared<S>>) -> Result<R, ReadError> + Send + 'static,
{
    // Bound before the engine starts: a busy address is refused with nothing running.
    let bind_error = |source| RuntimeError::Bind { addr, source };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(bind_error)?;
    let engine = start(parts, open)?;
    let ops = service_common::Ops::new(registry, engine.ready_check());
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let served = service_common::serve_listener(
        listener,
        axum::Router::new(),
        ops,
        service_common::Limits::default(),
        async move {
            let _ = server_stopped.await;
        },
    );
    let (bound, server) = match served {
        Ok(served) => served,
        Err(e) => {
            let _ = engine.stop().await;
            return Err(bind_error(e));
        }
    };
    let run = async move {
        let server = tokio::spawn(server);
        // Stop on the signal, or when the engine thread ends by itself (a failure).
        tokio::select! {
            () = shutdown => tracing::info!("shutting down"),
            () = engine.stopped() => {}
        }
        let outcome = engine.stop().await;
        let _ = stop_server.send(());
        let _ = server.await;
        outcome
    };
    Ok((bound, run))
}

impl RunningEngine {
    /// `/readyz`: fails once the engine thread has stopped.
    pub fn ready_check(&self) -> service_common::ReadyCheck {
        let running = self.running.clone();
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
    }

    /// The owned partitions' watermarks, kept current while the engine runs.
    pub fn watermarks(&self) -> Watermarks {
        self.watermarks.clone()
    }

    /// Resolves when the engine thread ends by itself (a failure).
    pub async fn stopped(&self) {
        while self.running.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stores and checkpoints what was processed, gives the partitions up and returns the
    /// engine's outcome (a sink's own error first).
    pub async fn stop(self) -> Result<(), RuntimeError> {
        self.stop.store(true, Ordering::SeqCst);
        let thread = self.thread;
        let outcome = tokio::task::spawn_blocking(move || thread.join())
            .await
            .map_err(|e| RuntimeError::Thread(e.to_string()))?
            .map_err(|_| RuntimeError::Thread("the engine thread panicked".into()))?;
        // The worker is gone with its thread, so the pipeline drains and ends.
        let drained = self
            .pipeline
            .await
            .map_err(|e| RuntimeError::Thread(e.to_string()))?;
        drained?;
        outcome?;
        Ok(())
    }
}

#[cfg(feature = "kafka")]
mod kafka_run {
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::Duration;

    use event_log::kafka::{KafkaReader, KafkaReaderSettings, TopicSpec, ensure_topics};
    use prometheus_client::registry::Registry;
    use result_store::Writes;
    use result_store::dynamo::{DynamoSettings, DynamoStore};
    use stream_engine::EngineConfig;

    use super::kafka::{KafkaResultLog, OutputTopics};
    use super::metrics::Metrics;
    use super::{EngineParts, RuntimeError};

    /// Everything `ecom stream-engine` is configured with.
    #[derive(Debug, Clone)]
    pub struct Settings {
        /// Metrics and health endpoints.
        pub addr: SocketAddr,
        pub source: KafkaReaderSettings,
        pub outputs: OutputTopics,
        pub dynamo: DynamoSettings,
        pub engine: EngineConfig,
        /// How often output is stored and partitions checkpointed.
        pub commit_interval: Duration,
        /// Create missing topics (the input one with this many partitions) and tables at start.
        pub create: Option<i32>,
    }

    /// Runs the engine on Kafka and DynamoDB until `shutdown` resolves (then stores and
    /// checkpoints what it processed, leaves the group and returns) or until it cannot go on.
    pub async fn run(
        settings: Settings,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), RuntimeError> {
        settings.engine.validate()?;
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        let writes = Writes::for_engine(&settings.engine);
        tracing::info!(?writes, "DynamoDB result writes");
        let errors = metrics.clone();
        let store = DynamoStore::new(
            DynamoStore::client_from_env().await,
            settings.dynamo.clone(),
            writes,
        )
        .with_error_counter(Arc::new(move |kind| errors.sink_error("dynamodb", kind)));
        let store = Arc::new(store);
        let cluster = &settings.source.cluster;
        if let Some(partitions) = settings.create {
            store.ensure_tables().await?;
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
            ensure_topics(cluster, &topics, Duration::from_secs(30))
                .await
                .map_err(|e| RuntimeError::Log(e.to_string()))?;
        } else {
            store.check_tables().await?;
        }
        let log = KafkaResultLog::new(
            cluster,
            settings.outputs.clone(),
            settings.dynamo.retry_for,
            metrics.clone(),
        )
        .map_err(|e| RuntimeError::Log(format!("cannot create the Kafka producer: {e}")))?;
        let parts = EngineParts {
            engine: settings.engine.clone(),
            commit_interval: settings.commit_interval,
            store,
            log: Arc::new(log),
            metrics,
        };
        let source = settings.source.clone();
        let (addr, engine) = super::build(
            settings.addr,
            parts,
            move |listener| KafkaReader::subscribe(&source, listener),
            registry,
            shutdown,
        )
        .await?;
        tracing::info!(%addr, topic = %settings.source.topic, group = %settings.source.group_id, "stream engine started");
        engine.await
    }
}
