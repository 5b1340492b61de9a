//! The writer thread: group commits. It takes everything queued, writes each partition's
//! frames at the end of its active segment, `fdatasync`s every file it wrote, and only then
//! resolves the appends; a failed write or sync cuts the touched files back.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

use super::retention::{RETENTION_EVERY, enforce_retention};
use super::{Inner, Segment, Waiter, segment, sync_dir};
use crate::{AppendError, Record, partition_for};

/// The writer thread: group commits.
pub(super) struct Writer {
    inner: Arc<Inner>,
    /// The active segment's file of each partition.
    files: Vec<Option<File>>,
    buffers: Vec<Vec<u8>>,
    /// Frame positions in each buffer, for the sparse index.
    frames: Vec<Vec<u32>>,
    last_retention: Instant,
}

impl Writer {
    pub(super) fn new(inner: Arc<Inner>) -> Self {
        let n = inner.partitions.len();
        Writer {
            inner,
            files: (0..n).map(|_| None).collect(),
            buffers: vec![Vec::new(); n],
            frames: vec![Vec::new(); n],
            last_retention: Instant::now(),
        }
    }

    pub(super) fn run(mut self) {
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
