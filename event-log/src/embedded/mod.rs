//! The embedded event log: a topic's partitions as segment files in a directory, inside the
//! process (`ecom up`), with the guarantees of the Kafka path.
//!
//! - **Acknowledged = durable.** Appends queue up; one writer thread takes everything queued,
//!   writes each partition's frames at the end of its active segment, `fdatasync`s every file
//!   it wrote, and only then resolves the appends (group commit: concurrent appends share the
//!   syncs). A write or sync that fails cuts the touched files back to their previous length,
//!   so nothing of a failed append is ever read.
//! - **Readers see only durable records**: a partition's end moves after the sync.
//! - **A torn tail is cut, never read**: at open, the last segment of each partition is read
//!   frame by frame and checksummed; the file is cut after the last whole frame. Damage in an
//!   older segment (which was synced before the next one began) is an error, not a tail.
//! - **Retention never deletes what a checkpoint needs**: a closed segment is deleted when the
//!   partition is over its size limit or the segment is older than the age limit, and only if
//!   every consumer group has committed an offset past it (and, for an input topic, nothing
//!   before a first commit: [`LogConfig::keep_until_committed`]).
//!
//! - **One writer per topic directory**: opening takes `<dir>/LOCK` ([`lock`]) before anything
//!   else there, and refuses a directory another open (in this process or another) holds.
//!
//! The parts, a file each: [`lock`] (one writer per directory), `writer.rs` (the writer
//! thread's group commits), `retention.rs`, `offsets.rs` (committed offsets per group),
//! `reader.rs` (partition readers and live tails), [`segment`] (the file format); this file
//! holds the topic (its configuration, opening and torn-tail repair, appends).
//!
//! Layout: `<dir>/LOCK`, `<dir>/meta.json` (the partition count, which never changes: it decides where each
//! key lives), `<dir>/<partition>/<base offset>.log` (see [`segment`]), and
//! `<dir>/groups/<group>.json` (committed offsets, for retention and lag).

pub mod lock;
mod offsets;
mod reader;
mod retention;
pub mod segment;
mod writer;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use tokio::sync::oneshot;

pub use lock::{DirLock, LockError};
pub use reader::{EmbeddedBatch, EmbeddedReader};

use self::offsets::load_committed;
use self::retention::enforce_retention;
use self::writer::Writer;

use crate::{AppendError, EventLog, NotReady, Record};

/// Settings of an embedded topic.
#[derive(Debug, Clone)]
pub struct LogConfig {
    pub partitions: u32,
    /// A segment is closed and a new one begun past this size.
    pub segment_bytes: u64,
    /// Closed segments beyond this many bytes per partition may be deleted.
    pub retention_bytes: Option<u64>,
    /// Closed segments last written longer ago than this may be deleted.
    pub retention_age: Option<Duration>,
    /// Records queued and not yet durable above which appends are refused.
    pub max_in_flight: usize,
    /// Delete nothing until a consumer group has committed an offset (an input topic, whose
    /// consumer needs everything until it has stored a checkpoint). Without it, retention
    /// still keeps what any group that did commit needs.
    pub keep_until_committed: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            partitions: 4,
            segment_bytes: 64 << 20,
            retention_bytes: Some(1 << 30),
            retention_age: Some(Duration::from_secs(7 * 24 * 3600)),
            max_in_flight: 1_000_000,
            keep_until_committed: true,
        }
    }
}

/// The log cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is damaged at byte {at} (only the last segment of a partition may have a torn tail)"
    )]
    Damaged { path: PathBuf, at: u64 },
    #[error(
        "{dir} holds {found} partitions, not {wanted}: the partition count of a log never changes (it decides where each key lives)"
    )]
    PartitionsChanged {
        dir: PathBuf,
        found: u32,
        wanted: u32,
    },
    #[error("{0} is not a valid meta.json of an event log")]
    BadMeta(PathBuf),
    #[error("the partition count must be between 1 and 1024")]
    BadPartitions,
    /// Another writer holds the topic directory.
    #[error(transparent)]
    Locked(#[from] LockError),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> OpenError + '_ {
    move |source| OpenError::Io {
        path: path.to_owned(),
        source,
    }
}

#[derive(Debug, Clone)]
struct Segment {
    base: u64,
    /// Durable records.
    records: u64,
    /// Durable bytes.
    bytes: u64,
    index: Vec<(u64, u64)>,
    path: PathBuf,
    written: SystemTime,
}

impl Segment {
    fn end(&self) -> u64 {
        self.base + self.records
    }
}

struct Partition {
    dir: PathBuf,
    /// Oldest first; never empty (the last is the active one).
    segments: RwLock<Vec<Segment>>,
}

impl Partition {
    /// (first offset retained, next offset).
    fn bounds(&self) -> (u64, u64) {
        let segments = self.segments.read().unwrap_or_else(|e| e.into_inner());
        let first = segments.first().map_or(0, |s| s.base);
        let end = segments.last().map_or(0, Segment::end);
        (first, end)
    }
}

type Waiter = oneshot::Sender<Result<(), AppendError>>;

#[derive(Default)]
struct Queue {
    appends: Vec<(Vec<Record>, Waiter)>,
    stop: bool,
}

struct Inner {
    dir: PathBuf,
    /// Held while anything of the topic (a clone, a reader) is alive.
    _lock: DirLock,
    config: LogConfig,
    partitions: Vec<Partition>,
    queue: Mutex<Queue>,
    queued: Condvar,
    /// Bumped after every durable write; readers wait on it.
    appended: Mutex<u64>,
    appended_cv: Condvar,
    in_flight: AtomicUsize,
    /// Group commits done: each one write and one sync per partition it touched.
    flushes: AtomicU64,
    failed: Mutex<Option<String>>,
    /// group -> committed offset per partition.
    committed: Mutex<BTreeMap<String, Vec<Option<u64>>>>,
}

/// A topic of the embedded log. Clones share it; the writer thread stops (after writing
/// everything queued) when the last clone is dropped.
#[derive(Clone)]
pub struct EmbeddedLog {
    inner: Arc<Inner>,
    _writer: Arc<WriterHandle>,
}

struct WriterHandle {
    inner: Arc<Inner>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Drop for WriterHandle {
    fn drop(&mut self) {
        self.inner
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .stop = true;
        self.inner.queued.notify_all();
        if let Some(thread) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = thread.join();
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Meta {
    format: u32,
    partitions: u32,
}

impl EmbeddedLog {
    /// Opens (or creates) the topic in `dir`, cutting torn tails.
    pub fn open(dir: &Path, config: LogConfig) -> Result<Self, OpenError> {
        if config.partitions == 0 || config.partitions > 1024 {
            return Err(OpenError::BadPartitions);
        }
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let lock = DirLock::acquire(dir, "an event log writer")?;
        let meta_path = dir.join("meta.json");
        match std::fs::read(&meta_path) {
            Ok(bytes) => {
                let meta: Meta = serde_json::from_slice(&bytes)
                    .map_err(|_| OpenError::BadMeta(meta_path.clone()))?;
                if meta.partitions != config.partitions {
                    return Err(OpenError::PartitionsChanged {
                        dir: dir.to_owned(),
                        found: meta.partitions,
                        wanted: config.partitions,
                    });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let meta = serde_json::to_vec(&Meta {
                    format: 1,
                    partitions: config.partitions,
                })
                .unwrap_or_default();
                write_atomically(&meta_path, &meta).map_err(io_error(&meta_path))?;
            }
            Err(e) => return Err(io_error(&meta_path)(e)),
        }
        let mut partitions = Vec::with_capacity(config.partitions as usize);
        for p in 0..config.partitions {
            partitions.push(open_partition(&dir.join(p.to_string()))?);
        }
        // The partition directories' entries, durable before anything is acknowledged.
        sync_dir(dir).map_err(io_error(dir))?;
        let committed = load_committed(dir, config.partitions);
        let inner = Arc::new(Inner {
            dir: dir.to_owned(),
            _lock: lock,
            config,
            partitions,
            queue: Mutex::new(Queue::default()),
            queued: Condvar::new(),
            appended: Mutex::new(0),
            appended_cv: Condvar::new(),
            in_flight: AtomicUsize::new(0),
            flushes: AtomicU64::new(0),
            failed: Mutex::new(None),
            committed: Mutex::new(committed),
        });
        let thread = {
            let inner = inner.clone();
            std::thread::Builder::new()
                .name("event-log-writer".into())
                .spawn(move || Writer::new(inner).run())
                .map_err(io_error(dir))?
        };
        Ok(EmbeddedLog {
            _writer: Arc::new(WriterHandle {
                inner: inner.clone(),
                thread: Mutex::new(Some(thread)),
            }),
            inner,
        })
    }

    pub fn partitions(&self) -> u32 {
        self.inner.config.partitions
    }

    /// (first offset retained, next offset) of a partition.
    pub fn bounds(&self, partition: u32) -> Option<(u64, u64)> {
        self.inner
            .partitions
            .get(partition as usize)
            .map(Partition::bounds)
    }

    /// Records queued and not durable yet.
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight.load(Ordering::Relaxed)
    }

    /// Group commits done so far (each shared by every append queued at the time).
    pub fn flushes(&self) -> u64 {
        self.inner.flushes.load(Ordering::Relaxed)
    }

    /// A reader of every partition for consumer group `group`.
    pub fn reader<L: crate::PartitionListener>(
        &self,
        group: &str,
        listener: Arc<L>,
    ) -> EmbeddedReader<L> {
        EmbeddedReader::new(self.inner.clone(), group, listener)
    }

    /// Deletes the closed segments retention allows (the writer also does this every few
    /// seconds). Returns how many were deleted.
    pub fn enforce_retention(&self) -> usize {
        enforce_retention(&self.inner)
    }

    /// Appends and waits until the records are durable (the [`EventLog`] method, for callers
    /// outside an async context: it blocks the thread).
    pub fn append_blocking(&self, records: Vec<Record>) -> Result<(), AppendError> {
        let rx = self.enqueue(records)?;
        rx.blocking_recv()
            .unwrap_or_else(|_| Err(AppendError::Unavailable("the log writer stopped".into())))
    }

    fn enqueue(
        &self,
        records: Vec<Record>,
    ) -> Result<oneshot::Receiver<Result<(), AppendError>>, AppendError> {
        if let Some(reason) = self
            .inner
            .failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Err(AppendError::Unavailable(reason));
        }
        if let Some(bytes) = records
            .iter()
            .map(|r| segment::body_len(&r.key, &r.value, r.trace.as_deref()))
            .find(|&bytes| bytes > segment::MAX_BODY)
        {
            return Err(AppendError::TooLarge {
                bytes,
                limit: segment::MAX_BODY,
            });
        }
        let n = records.len();
        let limit = self.inner.config.max_in_flight;
        let in_flight = self.inner.in_flight.fetch_add(n, Ordering::SeqCst);
        if in_flight + n > limit && in_flight > 0 {
            self.inner.in_flight.fetch_sub(n, Ordering::SeqCst);
            return Err(AppendError::QueueFull { in_flight, limit });
        }
        let (tx, rx) = oneshot::channel();
        let mut queue = self.inner.queue.lock().unwrap_or_else(|e| e.into_inner());
        if queue.stop {
            self.inner.in_flight.fetch_sub(n, Ordering::SeqCst);
            return Err(AppendError::Unavailable("the log is closing".into()));
        }
        queue.appends.push((records, tx));
        drop(queue);
        self.inner.queued.notify_one();
        Ok(rx)
    }
}

impl EventLog for EmbeddedLog {
    async fn append(&self, records: Vec<Record>) -> Result<(), AppendError> {
        let rx = self.enqueue(records)?;
        rx.await
            .unwrap_or_else(|_| Err(AppendError::Unavailable("the log writer stopped".into())))
    }

    async fn ready(&self) -> Result<(), NotReady> {
        match self
            .inner
            .failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            Some(reason) => Err(NotReady(reason)),
            None => Ok(()),
        }
    }
}

fn open_partition(dir: &Path) -> Result<Partition, OpenError> {
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let mut files = segment::list(dir).map_err(io_error(dir))?;
    if files.is_empty() {
        let path = dir.join(segment::file_name(0));
        File::create(&path).map_err(io_error(&path))?;
        sync_dir(dir).map_err(io_error(dir))?;
        files.push((0, path));
    }
    let last = files.len() - 1;
    let mut segments = Vec::with_capacity(files.len());
    for (i, (base, path)) in files.into_iter().enumerate() {
        let scanned = segment::scan(&path).map_err(io_error(&path))?;
        if scanned.valid_bytes < scanned.file_bytes {
            if i != last {
                return Err(OpenError::Damaged {
                    path,
                    at: scanned.valid_bytes,
                });
            }
            tracing::warn!(
                path = %path.display(),
                kept = scanned.valid_bytes,
                cut = scanned.file_bytes - scanned.valid_bytes,
                "cutting a torn tail"
            );
            let file = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(io_error(&path))?;
            file.set_len(scanned.valid_bytes).map_err(io_error(&path))?;
            file.sync_all().map_err(io_error(&path))?;
        }
        let written = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .unwrap_or_else(|_| SystemTime::now());
        segments.push(Segment {
            base,
            records: scanned.records,
            bytes: scanned.valid_bytes,
            index: scanned.index,
            path,
            written,
        });
    }
    Ok(Partition {
        dir: dir.to_owned(),
        segments: RwLock::new(segments),
    })
}

/// Makes a directory's entries (a new or removed file) durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes a small file so that it is either the old or the new content after a crash.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let file = File::create(&tmp)?;
        file.write_all_at(bytes, 0)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}
