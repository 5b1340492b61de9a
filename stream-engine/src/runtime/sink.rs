//! Where the engine's output goes, and the pipeline that stores it before its checkpoint.
//!
//! A [`Commit`] is everything the worker emitted since the previous one, plus the checkpoints
//! of the partitions that moved. The pipeline handles commits one at a time, in order:
//! results to the [`ResultStore`] and every record to the [`ResultLog`] (concurrently), and
//! only once both acknowledged, the checkpoints. A checkpoint therefore never covers output
//! that is not stored: that is what makes replay from it exact.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::metrics::{Metrics, SinkLabel};
use crate::core::{Checkpoint, LateEvent, WindowResult};

/// A record of the input that is not an event, on its way to the dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub partition: u32,
    pub offset: u64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    /// A [`crate::RejectReason::code`], or `empty_record` for a record without a value.
    pub code: &'static str,
    pub message: String,
}

/// One unit of output: stored and published before its checkpoints.
#[derive(Debug, Default)]
pub struct Commit {
    pub results: Vec<WindowResult>,
    /// When each result fired, for the result-latency metric.
    pub fired_at: Vec<Instant>,
    pub late: Vec<(u32, LateEvent)>,
    pub dead: Vec<DeadLetter>,
    pub checkpoints: Vec<(u32, Checkpoint)>,
    /// Told once the commit is stored (dropped unsent if the pipeline failed).
    pub done: Option<oneshot::Sender<()>>,
}

impl Commit {
    pub fn is_empty(&self) -> bool {
        self.results.is_empty()
            && self.late.is_empty()
            && self.dead.is_empty()
            && self.checkpoints.is_empty()
    }
}

/// A checkpoint stored: the partition may commit its consumer offset to `resume_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    pub partition: u32,
    pub resume_offset: u64,
}

/// A sink gave up: a permanent error, or a transient one that outlasted the retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{sink}: {message}")]
pub struct SinkError {
    pub sink: &'static str,
    pub message: String,
}

/// How a conditional write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Stored,
    /// The store already held something newer (more events, or a further checkpoint): an
    /// older or zombie writer lost, as it should.
    Superseded,
}

/// The aggregate store: window results and the checkpoints beside them. DynamoDB in
/// production; the one-command local mode puts an embedded store here.
pub trait ResultStore: Send + Sync + 'static {
    /// Upserts every result, except where the stored one has more events (a later re-fire
    /// already landed). Returns how many were superseded.
    fn put_results(
        &self,
        results: &[WindowResult],
    ) -> impl Future<Output = Result<usize, SinkError>> + Send;

    /// The stored checkpoint of an input partition, if any.
    fn load_checkpoint(
        &self,
        partition: u32,
    ) -> impl Future<Output = Result<Option<Checkpoint>, SinkError>> + Send;

    /// Stores a checkpoint unless a further one (a higher next offset) is stored already.
    fn save_checkpoint(
        &self,
        partition: u32,
        checkpoint: &Checkpoint,
    ) -> impl Future<Output = Result<Written, SinkError>> + Send;
}

/// The published streams: results, late events and dead letters. Kafka topics in production.
pub trait ResultLog: Send + Sync + 'static {
    fn publish(&self, commit: &Commit) -> impl Future<Output = Result<(), SinkError>> + Send;
}

/// Runs commits through the sinks in order until the sender is dropped or a sink gives up.
/// Every stored checkpoint is reported on `stored`.
pub async fn run_pipeline<S: ResultStore, L: ResultLog>(
    store: Arc<S>,
    log: Arc<L>,
    mut commits: mpsc::Receiver<Commit>,
    stored: std::sync::mpsc::Sender<Stored>,
    metrics: Metrics,
) -> Result<(), SinkError> {
    while let Some(commit) = commits.recv().await {
        let started = Instant::now();
        let store_results = async {
            if commit.results.is_empty() {
                return Ok(0);
            }
            let superseded = store.put_results(&commit.results).await?;
            observe(&metrics, "store", started);
            Ok::<_, SinkError>(superseded)
        };
        let publish = async {
            log.publish(&commit).await?;
            observe(&metrics, "log", started);
            Ok::<_, SinkError>(())
        };
        let (superseded, published) = tokio::join!(store_results, publish);
        metrics.superseded.inc_by(superseded? as u64);
        published?;
        let now = Instant::now();
        for fired in &commit.fired_at {
            metrics
                .result_latency
                .observe(now.duration_since(*fired).as_secs_f64());
        }

        let started = Instant::now();
        let saves = commit.checkpoints.iter().map(|(partition, checkpoint)| {
            let store = &store;
            async move {
                let written = store.save_checkpoint(*partition, checkpoint).await?;
                if written == Written::Superseded {
                    tracing::warn!(
                        partition,
                        "a further checkpoint is stored already (another instance owns or owned the partition)"
                    );
                }
                Ok::<_, SinkError>((written == Written::Stored).then_some(Stored {
                    partition: *partition,
                    resume_offset: checkpoint.resume_offset,
                }))
            }
        });
        for saved in futures_util::future::join_all(saves).await {
            if let Some(saved) = saved? {
                // The receiver is gone only when the worker stopped; nothing is lost then.
                let _ = stored.send(saved);
            }
        }
        if !commit.checkpoints.is_empty() {
            observe(&metrics, "checkpoint", started);
        }
        if let Some(done) = commit.done {
            let _ = done.send(());
        }
    }
    Ok(())
}

fn observe(metrics: &Metrics, sink: &'static str, started: Instant) {
    metrics
        .sink_duration
        .get_or_create(&SinkLabel { sink })
        .observe(started.elapsed().as_secs_f64());
}

/// Retries an operation with exponential backoff (with jitter) while it fails transiently,
/// for at most `budget`.
pub async fn with_retries<T, E, F, Fut>(
    budget: Duration,
    mut on_error: impl FnMut(&E) -> Retry,
    mut op: F,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let started = Instant::now();
    let mut backoff = Duration::from_millis(20);
    loop {
        match op().await {
            Ok(value) => return Ok(value),
            Err(e) => {
                if on_error(&e) == Retry::No || started.elapsed() + backoff > budget {
                    return Err(e);
                }
                tokio::time::sleep(jitter(backoff)).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Whether an error is worth retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    Yes,
    No,
}

/// Between half and all of `d`, so that many writers backing off do not retry in step.
fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| t.subsec_nanos());
    d / 2 + d.mul_f64(f64::from(nanos % 1000) / 2000.0)
}
