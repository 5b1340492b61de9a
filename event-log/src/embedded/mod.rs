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
//! Layout: `<dir>/LOCK`, `<dir>/meta.json` (the partition count, which never changes: it decides where each
//! key lives), `<dir>/<partition>/<base offset>.log` (see [`segment`]), and
//! `<dir>/groups/<group>.json` (committed offsets, for retention and lag).

pub mod lock;
mod reader;
pub mod segment;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::oneshot;

pub use lock::{DirLock, LockError};
pub use reader::{EmbeddedBatch, EmbeddedReader};

use crate::{AppendError, EventLog, NotReady, Record, partition_for};

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

fn groups_dir(dir: &Path) -> PathBuf {
    dir.join("groups")
}

fn load_committed(dir: &Path, partitions: u32) -> BTreeMap<String, Vec<Option<u64>>> {
    let mut committed = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(groups_dir(dir)) else {
        return committed;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(group) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".json"))
        else {
            continue;
        };
        // Unreadable: as if that group had committed nothing, which keeps everything.
        let offsets = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Vec<Option<u64>>>(&b).ok())
            .filter(|o| o.len() == partitions as usize)
            .unwrap_or_else(|| {
                tracing::warn!(path = %path.display(), "unreadable committed offsets; retention keeps everything until the group commits again");
                vec![None; partitions as usize]
            });
        committed.insert(group.to_owned(), offsets);
    }
    committed
}

impl Inner {
    /// Records a group's committed offsets (an offset never moves back).
    fn commit(&self, group: &str, offsets: &[(u32, u64)]) {
        let snapshot = {
            let mut committed = self.committed.lock().unwrap_or_else(|e| e.into_inner());
            let entry = committed
                .entry(group.to_owned())
                .or_insert_with(|| vec![None; self.partitions.len()]);
            let mut moved = false;
            for &(partition, offset) in offsets {
                if let Some(slot) = entry.get_mut(partition as usize)
                    && slot.is_none_or(|o| o < offset)
                {
                    *slot = Some(offset);
                    moved = true;
                }
            }
            if !moved {
                return;
            }
            entry.clone()
        };
        // Synced: retention deletes by these offsets, so the file must never come back empty
        // or older than what retention acted on.
        let dir = groups_dir(&self.dir);
        let written = std::fs::create_dir_all(&dir).and_then(|()| {
            let path = dir.join(format!("{}.json", sanitize(group)));
            write_atomically(&path, &serde_json::to_vec(&snapshot).unwrap_or_default())
        });
        if let Err(e) = written {
            tracing::warn!(error = %e, group, "cannot record committed offsets");
        }
    }

    fn committed_offset(&self, group: &str, partition: u32) -> Option<u64> {
        self.committed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(group)
            .and_then(|o| o.get(partition as usize).copied().flatten())
    }

    fn notify_readers(&self) {
        *self.appended.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.appended_cv.notify_all();
    }
}

/// A group name as a file name.
fn sanitize(group: &str) -> String {
    group
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn enforce_retention(inner: &Inner) -> usize {
    let config = &inner.config;
    if config.retention_bytes.is_none() && config.retention_age.is_none() {
        return 0;
    }
    let now = SystemTime::now();
    let mut deleted = 0;
    for (p, partition) in inner.partitions.iter().enumerate() {
        // The lowest offset any group still needs; nothing is deleted before every group has
        // committed one.
        let needed = {
            let committed = inner.committed.lock().unwrap_or_else(|e| e.into_inner());
            if committed.is_empty() && config.keep_until_committed {
                continue;
            }
            committed
                .values()
                .map(|o| o.get(p).copied().flatten().unwrap_or(0))
                .min()
                .unwrap_or(u64::MAX)
        };
        let doomed: Vec<PathBuf> = {
            let mut segments = partition
                .segments
                .write()
                .unwrap_or_else(|e| e.into_inner());
            let mut total: u64 = segments.iter().map(|s| s.bytes).sum();
            let mut remove = 0;
            for segment in &segments[..segments.len() - 1] {
                let over_size = config.retention_bytes.is_some_and(|limit| total > limit);
                let too_old = config.retention_age.is_some_and(|age| {
                    now.duration_since(segment.written).unwrap_or_default() > age
                });
                if segment.end() > needed || !(over_size || too_old) {
                    break;
                }
                total -= segment.bytes;
                remove += 1;
            }
            segments.drain(..remove).map(|s| s.path).collect()
        };
        for path in &doomed {
            match std::fs::remove_file(path) {
                Ok(()) => {
                    deleted += 1;
                    tracing::info!(path = %path.display(), "retention deleted a segment");
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot delete a segment")
                }
            }
        }
        if !doomed.is_empty() {
            let _ = sync_dir(&partition.dir);
        }
    }
    deleted
}

/// How often the writer applies retention.
const RETENTION_EVERY: Duration = Duration::from_secs(5);

/// The writer thread: group commits.
struct Writer {
    inner: Arc<Inner>,
    /// The active segment's file of each partition.
    files: Vec<Option<File>>,
    buffers: Vec<Vec<u8>>,
    /// Frame positions in each buffer, for the sparse index.
    frames: Vec<Vec<u32>>,
    last_retention: Instant,
}

impl Writer {
    fn new(inner: Arc<Inner>) -> Self {
        let n = inner.partitions.len();
        Writer {
            inner,
            files: (0..n).map(|_| None).collect(),
            buffers: vec![Vec::new(); n],
            frames: vec![Vec::new(); n],
            last_retention: Instant::now(),
        }
    }

    fn run(mut self) {
        loop {
            let (appends, stop) = {
                let mut queue = self.inner.queue.lock().unwrap_or_else(|e| e.into_inner());
                while queue.appends.is_empty() && !queue.stop {
                    let (q, _) = self
                        .inner
                        .queued
                        .wait_timeout(queue, RETENTION_EVERY)
                        .unwrap_or_else(|e| e.into_inner());
                    queue = q;
                    if self.last_retention.elapsed() >= RETENTION_EVERY {
                        break;
                    }
                }
                (std::mem::take(&mut queue.appends), queue.stop)
            };
            if !appends.is_empty() {
                let records: usize = appends.iter().map(|(r, _)| r.len()).sum();
                let outcome = self.write(&appends);
                if let Err(reason) = &outcome {
                    tracing::error!(error = %reason, "event log write failed");
                }
                self.inner.in_flight.fetch_sub(records, Ordering::SeqCst);
                for (_, waiter) in appends {
                    let _ = waiter.send(outcome.clone().map_err(AppendError::Unavailable));
                }
            }
            if self.last_retention.elapsed() >= RETENTION_EVERY {
                self.last_retention = Instant::now();
                enforce_retention(&self.inner);
            }
            if stop
                && self
                    .inner
                    .queue
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .appends
                    .is_empty()
            {
                return;
            }
        }
    }

    /// Writes and syncs one group of appends; on failure every touched file is cut back.
    fn write(&mut self, appends: &[(Vec<Record>, Waiter)]) -> Result<(), String> {
        if let Some(reason) = self
            .inner
            .failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Err(reason);
        }
        let n = self.inner.partitions.len() as u32;
        for (records, _) in appends {
            for record in records {
                let p = partition_for(&record.key, n) as usize;
                self.frames[p].push(self.buffers[p].len() as u32);
                segment::encode(
                    &record.key,
                    &record.value,
                    record.trace.as_deref(),
                    &mut self.buffers[p],
                );
            }
        }
        // (partition, segment index, previous length) of every file written.
        let mut touched = Vec::new();
        let mut result = Ok(());
        for p in 0..n as usize {
            if self.buffers[p].is_empty() {
                continue;
            }
            let written = self.prepare(p).and_then(|at| {
                touched.push((p, at));
                self.write_at(p, at)
            });
            if let Err(e) = written {
                result = Err(format!("partition {p}: {e}"));
                break;
            }
        }
        if let Err(reason) = result {
            self.undo(&touched);
            for p in 0..n as usize {
                self.buffers[p].clear();
                self.frames[p].clear();
            }
            return Err(reason);
        }
        // Everything is durable: publish.
        let now = SystemTime::now();
        for &(p, previous) in &touched {
            let mut segments = self.inner.partitions[p]
                .segments
                .write()
                .unwrap_or_else(|e| e.into_inner());
            let Some(active) = segments.last_mut() else {
                continue;
            };
            for (k, &frame) in self.frames[p].iter().enumerate() {
                let record = active.records + k as u64;
                if record.is_multiple_of(segment::INDEX_EVERY) {
                    active.index.push((record, previous + u64::from(frame)));
                }
            }
            active.records += self.frames[p].len() as u64;
            active.bytes = previous + self.buffers[p].len() as u64;
            active.written = now;
            drop(segments);
            self.buffers[p].clear();
            self.frames[p].clear();
        }
        self.inner.flushes.fetch_add(1, Ordering::Relaxed);
        self.inner.notify_readers();
        Ok(())
    }

    /// Opens the segment partition `p`'s buffer goes to: the active one, or a new one if the
    /// active one is full. Returns the position to write at (the segment's durable length).
    fn prepare(&mut self, p: usize) -> std::io::Result<u64> {
        let partition = &self.inner.partitions[p];
        let (active_bytes, active_records, active_end, active_path) = {
            let segments = partition.segments.read().unwrap_or_else(|e| e.into_inner());
            let Some(active) = segments.last() else {
                return Err(std::io::Error::other("a partition without segments"));
            };
            (
                active.bytes,
                active.records,
                active.end(),
                active.path.clone(),
            )
        };
        let incoming = self.buffers[p].len() as u64;
        if active_records > 0 && active_bytes + incoming > self.inner.config.segment_bytes {
            let path = partition.dir.join(segment::file_name(active_end));
            let file = OpenOptions::new()
                .create(true)
                .truncate(true)
                .read(true)
                .write(true)
                .open(&path)?;
            sync_dir(&partition.dir)?;
            partition
                .segments
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .push(Segment {
                    base: active_end,
                    records: 0,
                    bytes: 0,
                    index: Vec::new(),
                    path,
                    written: SystemTime::now(),
                });
            self.files[p] = Some(file);
            return Ok(0);
        }
        if self.files[p].is_none() {
            self.files[p] = Some(
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&active_path)?,
            );
        }
        Ok(active_bytes)
    }

    fn write_at(&self, p: usize, at: u64) -> std::io::Result<()> {
        let Some(file) = self.files[p].as_ref() else {
            return Err(std::io::Error::other("the segment is not open"));
        };
        file.write_all_at(&self.buffers[p], at)?;
        file.sync_data()
    }

    /// Cuts every touched file (the failed one included) back to its previous length. If that fails too, the log stops
    /// taking appends (what is on disk past the durable end would otherwise be read later).
    fn undo(&mut self, touched: &[(usize, u64)]) {
        for &(p, previous) in touched {
            let cut = self.files[p]
                .as_ref()
                .map(|f| f.set_len(previous).and_then(|()| f.sync_data()));
            if let Some(Err(e)) = cut {
                let reason = format!("the event log could not undo a failed write: {e}");
                tracing::error!(%reason);
                *self.inner.failed.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason);
            }
        }
    }
}
