//! The loop that drives a [`Worker`] from a [`PartitionReader`], whatever the transport: one
//! thread reads (and so runs the assignment callbacks), a second processes, so that reading the
//! next records overlaps processing the last.
//!
//! The reader reports assignment changes to [`Shared`], the [`PartitionListener`] that owns the
//! worker: assigned partitions are restored from their checkpoints and start at their resume
//! offsets; revoked ones are stored and checkpointed before the callback returns. Every change
//! bumps a generation: a batch read before one is dropped (its records are read again from the
//! new positions), checked when read and again under the worker's lock before processing.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use event_log::{PartitionListener, PartitionReader, ReadBatch, StartAt};
use result_store::CheckpointStore;

use crate::metrics::{Metrics, PartitionLabel};
use crate::sink::SinkError;
use crate::worker::{Worker, WorkerError};

/// Largest number of records handed to the worker at once.
const MAX_BATCH: usize = 4096;
/// The longest a poll waits, and so the longest between two ticks of the worker.
const POLL_WAIT: Duration = Duration::from_millis(50);
/// The pause after a failed poll before the next (the reader is asked again).
const READ_ERROR_PAUSE: Duration = Duration::from_millis(200);

/// What the reader's callbacks share with the two threads.
pub struct Shared<S: CheckpointStore> {
    worker: Mutex<Worker<S>>,
    /// Bumped on every assignment change.
    generation: AtomicU64,
    fatal: Mutex<Option<WorkerError>>,
    /// The partitions owned, apart from the worker's lock (which processing holds).
    owned: Mutex<Vec<u32>>,
    metrics: Metrics,
}

impl<S: CheckpointStore> Shared<S> {
    pub fn new(worker: Worker<S>, metrics: Metrics) -> Arc<Self> {
        Arc::new(Shared {
            worker: Mutex::new(worker),
            generation: AtomicU64::new(0),
            fatal: Mutex::new(None),
            owned: Mutex::new(Vec::new()),
            metrics,
        })
    }

    /// The worker, unless a panic while processing left it half-updated: then nothing more
    /// may be stored or checkpointed from it.
    fn worker(&self) -> Result<MutexGuard<'_, Worker<S>>, WorkerError> {
        self.worker.lock().map_err(|_| WorkerError::Panicked)
    }

    fn fail(&self, e: WorkerError) {
        tracing::error!(error = %e, "stream engine failed");
        self.fatal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(e);
    }

    fn take_fatal(&self) -> Option<WorkerError> {
        self.fatal.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

impl<S: CheckpointStore> PartitionListener for Shared<S> {
    fn assigned(&self, partitions: &[u32]) -> Option<Vec<(u32, StartAt)>> {
        self.generation.fetch_add(1, Ordering::SeqCst);
        match self.worker().and_then(|mut w| {
            let starts = w.assign(partitions)?;
            *self.owned.lock().unwrap_or_else(|e| e.into_inner()) = w.owned();
            Ok(starts)
        }) {
            Ok(starts) => Some(starts),
            Err(e) => {
                self.fail(e);
                None
            }
        }
    }

    fn revoked(&self, partitions: &[u32]) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        let revoked = self.worker().and_then(|mut w| {
            let revoked = w.revoke(partitions);
            *self.owned.lock().unwrap_or_else(|e| e.into_inner()) = w.owned();
            revoked
        });
        if let Err(e) = revoked {
            self.fail(e);
        }
    }

    fn lag(&self, partition: u32, records: u64) {
        let owned = self
            .owned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&partition);
        if owned {
            self.metrics
                .consumer_lag
                .get_or_create(&PartitionLabel { partition })
                .set(records as i64);
        }
    }
}

/// Runs until `stop` is set or the worker fails. On the way out, everything processed is
/// stored and checkpointed, the offsets committed, and the reader closed (which revokes its
/// partitions, so that another instance can take them over at once).
pub fn run<S, R>(reader: &R, shared: &Shared<S>, stop: &AtomicBool) -> Result<(), WorkerError>
where
    S: CheckpointStore,
    R: PartitionReader,
{
    let result = std::thread::scope(|scope| {
        let (batches, received) = std::sync::mpsc::sync_channel::<(u64, R::Batch<'_>)>(2);
        let processor = std::thread::Builder::new()
            .name("stream-process".into())
            .spawn_scoped(scope, || process(reader, shared, received))
            .map_err(|e| source_error(format!("cannot start the processing thread: {e}")))?;
        let read = read(reader, shared, stop, &processor, batches);
        let processed = processor
            .join()
            .unwrap_or_else(|_| Err(source_error("the processing thread panicked".into())));
        read.and(processed)
    });
    // A failure recorded by a callback during the last polls.
    let result = result
        .and_then(|()| shared.take_fatal().map_or(Ok(()), Err))
        .and_then(|()| {
            let mut worker = shared.worker()?;
            worker.commit(true)?;
            let stored = worker.take_stored();
            drop(worker);
            reader.commit(&offsets(&stored), true);
            Ok(())
        });
    reader.close();
    result
}

/// The reading loop: polls batches and hands them to the processing thread until told to
/// stop, the worker fails, or the processing thread ends.
fn read<'r, S: CheckpointStore, R: PartitionReader>(
    reader: &'r R,
    shared: &Shared<S>,
    stop: &AtomicBool,
    processor: &std::thread::ScopedJoinHandle<'_, Result<(), WorkerError>>,
    batches: std::sync::mpsc::SyncSender<(u64, R::Batch<'r>)>,
) -> Result<(), WorkerError> {
    loop {
        if stop.load(Ordering::Relaxed) || processor.is_finished() {
            return Ok(());
        }
        if let Some(e) = shared.take_fatal() {
            return Err(e);
        }
        let generation = shared.generation.load(Ordering::SeqCst);
        let batch = match reader.poll(MAX_BATCH, POLL_WAIT) {
            Ok(Some(batch)) => batch,
            Ok(None) => continue,
            Err(e) => {
                shared.metrics.source_errors.inc();
                tracing::warn!(error = %e, "cannot read the log");
                std::thread::sleep(READ_ERROR_PAUSE);
                continue;
            }
        };
        if shared.generation.load(Ordering::SeqCst) != generation {
            // The assignment changed inside poll (positions were reset to the checkpoints, so
            // these records will be read again).
            continue;
        }
        if batches.send((generation, batch)).is_err() {
            return Ok(());
        }
    }
}

/// The most producers' spans one batch span links to (OpenTelemetry's default limit).
const MAX_LINKS: usize = 128;

/// The processing loop: feeds batches to the worker, ticks it at least every 50 ms, and
/// commits offsets as checkpoints are stored. Returns when the reader hangs up.
fn process<S: CheckpointStore, R: PartitionReader>(
    reader: &R,
    shared: &Shared<S>,
    received: std::sync::mpsc::Receiver<(u64, R::Batch<'_>)>,
) -> Result<(), WorkerError> {
    loop {
        let batch = match received.recv_timeout(POLL_WAIT) {
            Ok(batch) => Some(batch),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
        };
        let runs = batch
            .as_ref()
            .map(|(generation, batch)| (*generation, batch.runs()));
        // With traces exported, a batch is a consumer span linked to the spans that appended
        // its records (the requests that sent the events, the orders whose purchases they
        // are): one trace per request, joined here.
        let span = runs
            .as_ref()
            .filter(|_| service_common::telemetry::enabled())
            .map(|(_, runs)| {
                let records: usize = runs.iter().map(|(_, r)| r.len()).sum();
                let span = tracing::info_span!(
                    "process",
                    otel.name = "events process",
                    otel.kind = "consumer",
                    records,
                );
                service_common::telemetry::add_links(
                    &span,
                    runs.iter()
                        .flat_map(|(_, r)| r.iter().filter_map(|r| r.trace)),
                    MAX_LINKS,
                );
                span
            });
        let _entered = span.as_ref().map(tracing::Span::enter);
        let stored = {
            let mut worker = shared.worker()?;
            // Checked under the worker's lock, which the callbacks take after bumping the
            // generation: a batch read before a change never reaches the new state.
            if let Some((generation, runs)) = &runs
                && *generation == shared.generation.load(Ordering::SeqCst)
            {
                for (partition, records) in runs {
                    worker.process(*partition, records);
                }
            }
            worker.tick()?;
            worker.take_stored()
        };
        drop(runs);
        drop(batch);
        reader.commit(&offsets(&stored), false);
    }
}

fn offsets(stored: &[crate::sink::Stored]) -> Vec<(u32, u64)> {
    stored
        .iter()
        .map(|s| (s.partition, s.resume_offset))
        .collect()
}

fn source_error(message: String) -> WorkerError {
    WorkerError::Sink(SinkError {
        sink: "source",
        message,
    })
}
