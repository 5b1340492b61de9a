//! The transport-independent half of the runtime: the engine states of the partitions this
//! instance owns, fed by [`crate::source`] from a partition reader (Kafka or the embedded log).
//!
//! The source calls, from one thread at a time:
//! - [`Worker::assign`] when partitions are handed over, and seeks each to the offset returned;
//! - [`Worker::process`] with the records it read, partition by partition, offsets increasing;
//! - [`Worker::tick`] regularly (idle watermarks, metrics, and a commit every commit interval);
//! - [`Worker::revoke`] before partitions are taken away, and [`Worker::commit`] with
//!   `wait` before it stops;
//! - [`Worker::take_stored`] to learn which checkpoints are stored, to commit its own offsets.
//!
//! Invariant: a partition's checkpoint goes to the pipeline in the same commit as, or after,
//! every output emitted before it was taken, and the pipeline stores it only after that output.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use event_log::{ReadRecord, StartAt};
use result_store::CheckpointStore;
use stream_engine::{
    Checkpoint, EngineConfig, EngineStats, Event, Output, PartitionEngine, decode_event,
};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};

use crate::metrics::{Metrics, PartitionLabel, ReasonLabel};
use crate::sink::{Commit, DeadLetter, SinkError, Stored};

/// Output records held while the sink pipeline is busy, above which the worker waits for it
/// instead of reading on.
const MAX_BACKLOG: usize = 500_000;

/// The worker cannot go on; the process should stop (and be restarted: state is rebuilt from
/// the stored checkpoints).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("the checkpoint of partition {partition} cannot be restored: {message}")]
    Checkpoint { partition: u32, message: String },
    #[error("the sink pipeline stopped")]
    PipelineStopped,
    #[error("processing panicked; nothing more is stored from this instance")]
    Panicked,
}

struct Partition {
    engine: PartitionEngine,
    /// Records below this offset were read before the seek and are not processed.
    start_offset: u64,
    /// The last checkpoint handed to the pipeline.
    sent: Checkpoint,
    /// When a checkpoint of this partition was last stored (or the partition assigned).
    stored_at: Instant,
    stats: EngineStats,
}

pub struct Worker<S: CheckpointStore> {
    config: EngineConfig,
    store: Arc<S>,
    runtime: Handle,
    commits: mpsc::Sender<Commit>,
    stored: std::sync::mpsc::Receiver<Stored>,
    stored_ready: Vec<Stored>,
    partitions: BTreeMap<u32, Partition>,
    pending: Commit,
    out: Output,
    metrics: Metrics,
    clock: Instant,
    commit_interval: Duration,
    last_commit: Instant,
    watermarks: crate::Watermarks,
}

impl<S: CheckpointStore> Worker<S> {
    /// `commits` feeds [`crate::sink::run_pipeline`], which reports on `stored`.
    pub fn new(
        config: EngineConfig,
        store: Arc<S>,
        runtime: Handle,
        commits: mpsc::Sender<Commit>,
        stored: std::sync::mpsc::Receiver<Stored>,
        metrics: Metrics,
        commit_interval: Duration,
    ) -> Self {
        Worker {
            config,
            store,
            runtime,
            commits,
            stored,
            stored_ready: Vec::new(),
            partitions: BTreeMap::new(),
            pending: Commit::default(),
            out: Output::default(),
            metrics,
            clock: Instant::now(),
            commit_interval,
            last_commit: Instant::now(),
            watermarks: crate::Watermarks::default(),
        }
    }

    /// Keeps `watermarks` current: each owned partition's, set at every tick.
    pub fn publishing(mut self, watermarks: crate::Watermarks) -> Self {
        self.watermarks = watermarks;
        self
    }

    /// Takes ownership of `partitions`: restores each from its stored checkpoint. Returns,
    /// per partition, where to read from.
    pub fn assign(&mut self, partitions: &[u32]) -> Result<Vec<(u32, StartAt)>, WorkerError> {
        let store = &self.store;
        let loads = self.runtime.block_on(futures_util::future::join_all(
            partitions.iter().map(|p| store.load_checkpoint(*p)),
        ));
        let mut seeks = Vec::with_capacity(partitions.len());
        for (&partition, loaded) in partitions.iter().zip(loads) {
            let checkpoint = loaded.map_err(SinkError::from)?;
            let engine = match &checkpoint {
                Some(c) => PartitionEngine::restore(&self.config, c),
                None => PartitionEngine::new(&self.config).map_err(Into::into),
            }
            .map_err(|e| WorkerError::Checkpoint {
                partition,
                message: e.to_string(),
            })?;
            let resume = checkpoint.as_ref().map(|c| c.resume_offset);
            tracing::info!(partition, ?resume, watermark = ?checkpoint.as_ref().and_then(|c| c.watermark_ms), "partition assigned");
            let sent = checkpoint.unwrap_or_else(Checkpoint::initial);
            self.partitions.insert(
                partition,
                Partition {
                    start_offset: resume.unwrap_or(0),
                    stats: engine.stats(),
                    engine,
                    sent,
                    stored_at: Instant::now(),
                },
            );
            seeks.push((
                partition,
                resume.map_or(StartAt::Beginning, StartAt::Offset),
            ));
        }
        self.metrics.assigned.set(self.partitions.len() as i64);
        Ok(seeks)
    }

    /// Gives `partitions` up: stores everything emitted so far and their checkpoints, then
    /// drops their state. The state is dropped even if storing failed (the error is returned):
    /// the next owner resumes from the last stored checkpoint.
    pub fn revoke(&mut self, partitions: &[u32]) -> Result<(), WorkerError> {
        let committed = self.commit(true);
        for p in partitions {
            if self.partitions.remove(p).is_some() {
                tracing::info!(partition = p, "partition revoked");
            }
            self.watermarks.set(*p, None);
            self.metrics.forget_partition(*p);
        }
        self.metrics.assigned.set(self.partitions.len() as i64);
        committed
    }

    pub fn owned(&self) -> Vec<u32> {
        self.partitions.keys().copied().collect()
    }

    pub fn owns(&self, partition: u32) -> bool {
        self.partitions.contains_key(&partition)
    }

    /// Processes records of one partition, offsets increasing. Records of a partition this
    /// worker does not own are ignored.
    pub fn process(&mut self, partition: u32, records: &[ReadRecord<'_>]) {
        let Some(state) = self.partitions.get_mut(&partition) else {
            return;
        };
        self.metrics.records.inc_by(records.len() as u64);
        let mut run: Vec<(u64, Event<'_>)> = Vec::with_capacity(records.len());
        for record in records {
            if record.offset < state.start_offset {
                continue;
            }
            let rejection = match record.payload.map(decode_event) {
                Some(Ok(event)) => {
                    run.push((record.offset, event));
                    continue;
                }
                Some(Err(rejection)) => (rejection.reason.code(), rejection.message),
                None => ("empty_record", "the record has no value".to_owned()),
            };
            // Offsets must reach the engine in order: apply the events before this record.
            state.engine.process_batch(&run, &mut self.out);
            run.clear();
            if state.engine.skip(record.offset) {
                self.metrics
                    .rejected
                    .get_or_create(&ReasonLabel {
                        reason: rejection.0.to_owned(),
                    })
                    .inc();
                self.pending.dead.push(DeadLetter {
                    partition,
                    offset: record.offset,
                    key: record.key.map(<[u8]>::to_vec),
                    payload: record.payload.unwrap_or_default().to_vec(),
                    code: rejection.0,
                    message: rejection.1,
                });
            }
        }
        state.engine.process_batch(&run, &mut self.out);
        drop(run);
        Self::collect(
            partition,
            state,
            &mut self.out,
            &mut self.pending,
            &self.metrics,
        );
    }

    /// Moves what the engine emitted into the pending commit, and counts it.
    fn collect(
        partition: u32,
        state: &mut Partition,
        out: &mut Output,
        pending: &mut Commit,
        metrics: &Metrics,
    ) {
        let stats = state.engine.stats();
        metrics.events.inc_by(stats.events - state.stats.events);
        metrics.late.inc_by(stats.late - state.stats.late);
        state.stats = stats;
        if out.is_empty() {
            return;
        }
        let now = Instant::now();
        metrics.windows_fired.inc_by(out.results.len() as u64);
        pending
            .fired_at
            .extend(std::iter::repeat_n(now, out.results.len()));
        pending.results.append(&mut out.results);
        pending
            .late
            .extend(out.late.drain(..).map(|late| (partition, late)));
    }

    /// Advances idle partitions, refreshes the gauges, and commits when the commit interval
    /// has passed.
    pub fn tick(&mut self) -> Result<(), WorkerError> {
        let now_ms = self.clock.elapsed().as_millis() as i64;
        let wall_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        self.drain_stored();
        let mut open = 0;
        for (&partition, state) in &mut self.partitions {
            state.engine.tick(now_ms, &mut self.out);
            Self::collect(
                partition,
                state,
                &mut self.out,
                &mut self.pending,
                &self.metrics,
            );
            open += state.engine.open_windows();
            let label = PartitionLabel { partition };
            self.watermarks.set(partition, state.engine.watermark_ms());
            if let Some(watermark) = state.engine.watermark_ms() {
                self.metrics
                    .watermark_lag
                    .get_or_create(&label)
                    .set((wall_ms - watermark) as f64 / 1000.0);
            }
            self.metrics
                .checkpoint_age
                .get_or_create(&label)
                .set(state.stored_at.elapsed().as_secs_f64());
        }
        self.metrics.open_windows.set(open as i64);
        if self.last_commit.elapsed() >= self.commit_interval {
            self.commit(false)?;
        }
        Ok(())
    }

    /// Hands everything emitted so far, and the checkpoints of the partitions that moved, to
    /// the sink pipeline. With `wait`, returns once they are stored. Without, it defers while
    /// the pipeline already has a commit queued (unless the backlog is large), so that slow
    /// sinks get bigger commits rather than stalling the reading.
    pub fn commit(&mut self, wait: bool) -> Result<(), WorkerError> {
        let backlog =
            self.pending.results.len() + self.pending.late.len() + self.pending.dead.len();
        if !wait && self.commits.capacity() == 0 && backlog < MAX_BACKLOG {
            // The pipeline already has a commit queued: keep processing and hand over a bigger
            // commit once it takes one (checked again at every tick).
            return Ok(());
        }
        self.last_commit = Instant::now();
        for (&partition, state) in &mut self.partitions {
            let checkpoint = state.engine.checkpoint();
            if checkpoint != state.sent {
                self.pending
                    .checkpoints
                    .push((partition, checkpoint.clone()));
                state.sent = checkpoint;
            }
        }
        if self.pending.is_empty() && !wait {
            return Ok(());
        }
        let mut commit = std::mem::take(&mut self.pending);
        let done = wait.then(|| {
            let (tx, rx) = oneshot::channel();
            commit.done = Some(tx);
            rx
        });
        self.commits
            .blocking_send(commit)
            .map_err(|_| WorkerError::PipelineStopped)?;
        if let Some(done) = done {
            done.blocking_recv()
                .map_err(|_| WorkerError::PipelineStopped)?;
            self.drain_stored();
        }
        Ok(())
    }

    fn drain_stored(&mut self) {
        while let Ok(stored) = self.stored.try_recv() {
            if let Some(state) = self.partitions.get_mut(&stored.partition) {
                state.stored_at = Instant::now();
                self.stored_ready.push(stored);
            }
        }
    }

    /// Checkpoints stored since the last call, of partitions still owned: the driver may
    /// commit its own offsets up to their resume offsets (for lag monitoring; the stored
    /// checkpoint is what recovery uses).
    pub fn take_stored(&mut self) -> Vec<Stored> {
        self.drain_stored();
        std::mem::take(&mut self.stored_ready)
    }
}
