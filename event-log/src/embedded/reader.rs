//! The read side of the embedded log: one reader of a consumer group owns every partition
//! (the log lives in one process). It assigns them all to its listener on its first poll and
//! revokes them all on close, and reads each partition from where the listener said, up to the
//! partition's durable end.

use std::collections::HashMap;
use std::fs::File;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::segment::{self, Chunk};
use super::{Inner, Segment};
use crate::{PartitionListener, PartitionReader, ReadBatch, ReadError, ReadRecord, StartAt};

/// Bytes read from one partition per poll, about.
const READ_BYTES: usize = 1 << 20;

struct Cursor {
    next: u64,
    /// (segment base, byte position of `next`) when known.
    at: Option<(u64, u64)>,
}

/// Where a cursor's record is in its segment.
enum Locate {
    At(u64),
    Index(Vec<(u64, u64)>),
}

struct State {
    /// `None` until the first poll assigned the partitions (and after close).
    cursors: Option<Vec<Cursor>>,
    closed: bool,
    files: HashMap<(u32, u64), File>,
    /// The partition the next poll starts with, so that none starves.
    first: usize,
    lag_reported: Option<Instant>,
}

/// Reads every partition of an [`super::EmbeddedLog`] for one consumer group.
pub struct EmbeddedReader<L> {
    inner: Arc<Inner>,
    group: String,
    listener: Arc<L>,
    state: Mutex<State>,
}

impl<L: PartitionListener> EmbeddedReader<L> {
    pub(super) fn new(inner: Arc<Inner>, group: &str, listener: Arc<L>) -> Self {
        EmbeddedReader {
            inner,
            group: group.to_owned(),
            listener,
            state: Mutex::new(State {
                cursors: None,
                closed: false,
                files: HashMap::new(),
                first: 0,
                lag_reported: None,
            }),
        }
    }

    fn assign(&self, state: &mut State) -> bool {
        let all: Vec<u32> = (0..self.inner.partitions.len() as u32).collect();
        let Some(starts) = self.listener.assigned(&all) else {
            return false;
        };
        let mut cursors: Vec<Cursor> = self
            .inner
            .partitions
            .iter()
            .map(|p| Cursor {
                next: p.bounds().0,
                at: None,
            })
            .collect();
        for (partition, start) in starts {
            let Some(cursor) = cursors.get_mut(partition as usize) else {
                continue;
            };
            let (first, end) = self.inner.partitions[partition as usize].bounds();
            cursor.next = match start {
                StartAt::Beginning => first,
                StartAt::Offset(o) if o < first => {
                    tracing::warn!(
                        partition,
                        offset = o,
                        first,
                        "the offset to resume from is gone (retention); starting at the oldest record"
                    );
                    first
                }
                StartAt::Offset(o) if o > end => {
                    tracing::error!(
                        partition,
                        offset = o,
                        end,
                        "the offset to resume from is past the end of the log (was the log replaced?)"
                    );
                    o
                }
                StartAt::Offset(o) => o,
                StartAt::End => end,
            };
        }
        state.cursors = Some(cursors);
        true
    }

    /// Reads partition `p` from its cursor into `chunk`, at most `max` records.
    fn read_partition(
        &self,
        state: &mut State,
        p: usize,
        max: usize,
        chunk: &mut Chunk,
    ) -> std::io::Result<()> {
        let Some(cursor) = state.cursors.as_mut().and_then(|c| c.get_mut(p)) else {
            return Ok(());
        };
        // The segment holding `next`, as far as it is durable.
        let found = {
            let segments = self.inner.partitions[p]
                .segments
                .read()
                .unwrap_or_else(|e| e.into_inner());
            let i = segments.partition_point(|s| s.base <= cursor.next);
            if i == 0 {
                // Before the oldest segment (deleted by retention): skip to it.
                if let Some(first) = segments.first() {
                    cursor.next = first.base;
                    cursor.at = None;
                }
                None
            } else {
                let s: &Segment = &segments[i - 1];
                if cursor.next < s.end() {
                    let locate = match cursor.at {
                        Some((base, pos)) if base == s.base => Locate::At(pos),
                        _ => Locate::Index(s.index.clone()),
                    };
                    Some((s.base, s.bytes, s.path.clone(), locate, s.end()))
                } else {
                    None
                }
            }
        };
        let Some((base, durable_bytes, path, position, end)) = found else {
            return Ok(());
        };
        let key = (p as u32, base);
        if !state.files.contains_key(&key) {
            state.files.retain(|(q, _), _| *q != p as u32);
            state.files.insert(key, File::open(&path)?);
        }
        let file = &state.files[&key];
        let pos = match position {
            Locate::At(pos) => pos,
            Locate::Index(index) => segment::position_of(file, &index, cursor.next - base)?,
        };
        let before = chunk.records.len();
        let max = max.min((end - cursor.next) as usize);
        let after = segment::read_frames(
            file,
            pos,
            cursor.next,
            durable_bytes,
            max,
            READ_BYTES,
            chunk,
        )?;
        cursor.next += (chunk.records.len() - before) as u64;
        cursor.at = Some((base, after));
        Ok(())
    }

    /// Tells the listener each partition's lag, once a second at most.
    fn report_lag(&self, state: &mut State) {
        if state
            .lag_reported
            .is_some_and(|at| at.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        state.lag_reported = Some(Instant::now());
        let Some(cursors) = &state.cursors else {
            return;
        };
        for (p, cursor) in cursors.iter().enumerate() {
            let (_, end) = self.inner.partitions[p].bounds();
            let from = self
                .inner
                .committed_offset(&self.group, p as u32)
                .unwrap_or(cursor.next);
            self.listener.lag(p as u32, end.saturating_sub(from));
        }
    }
}

/// Records read in one poll: per partition, a buffer of frames.
pub struct EmbeddedBatch {
    runs: Vec<(u32, Chunk)>,
}

impl ReadBatch for EmbeddedBatch {
    fn runs(&self) -> Vec<(u32, Vec<ReadRecord<'_>>)> {
        self.runs
            .iter()
            .map(|(p, chunk)| {
                let records = chunk
                    .records
                    .iter()
                    .map(|r| ReadRecord {
                        offset: r.offset,
                        key: Some(&chunk.data[r.key.0..r.key.1]),
                        payload: Some(&chunk.data[r.value.0..r.value.1]),
                        trace: r.trace.map(|(start, end)| &chunk.data[start..end]),
                    })
                    .collect();
                (*p, records)
            })
            .collect()
    }
}

impl<L: PartitionListener> PartitionReader for EmbeddedReader<L> {
    type Batch<'a>
        = EmbeddedBatch
    where
        Self: 'a;

    fn poll(&self, max: usize, timeout: Duration) -> Result<Option<EmbeddedBatch>, ReadError> {
        let deadline = Instant::now() + timeout;
        loop {
            // Read the generation before reading, so that an append in between wakes the wait.
            let seen = *self
                .inner
                .appended
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if state.closed {
                return Ok(None);
            }
            if state.cursors.is_none() {
                // The poll that changes the assignment returns no records (as Kafka's): the
                // caller drops what it read across an assignment change.
                if !self.assign(&mut state) {
                    // The listener could not take the partitions; it has recorded why.
                    drop(state);
                    std::thread::sleep(timeout);
                }
                return Ok(None);
            }
            let n = self.inner.partitions.len();
            let mut runs = Vec::new();
            let mut left = max;
            let first = state.first;
            state.first = (first + 1) % n;
            for i in 0..n {
                if left == 0 {
                    break;
                }
                let p = (first + i) % n;
                let mut chunk = Chunk::default();
                // A partition's cursor moves only once its records are in `runs`: on an error,
                // what the other partitions gave is returned, and the failing one is tried
                // again (and reported) on the next poll.
                if let Err(e) = self.read_partition(&mut state, p, left, &mut chunk) {
                    if runs.is_empty() {
                        return Err(ReadError(format!("partition {p}: {e}")));
                    }
                    tracing::warn!(partition = p, error = %e, "cannot read a partition");
                    break;
                }
                if !chunk.records.is_empty() {
                    left -= chunk.records.len();
                    runs.push((p as u32, chunk));
                }
            }
            self.report_lag(&mut state);
            drop(state);
            if !runs.is_empty() {
                return Ok(Some(EmbeddedBatch { runs }));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let appended = self
                .inner
                .appended
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if *appended == seen {
                let _ = self
                    .inner
                    .appended_cv
                    .wait_timeout(appended, deadline - now)
                    .unwrap_or_else(|e| e.into_inner());
            }
        }
    }

    fn commit(&self, offsets: &[(u32, u64)], _wait: bool) {
        if !offsets.is_empty() {
            self.inner.commit(&self.group, offsets);
        }
    }

    fn close(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.closed {
            return;
        }
        state.closed = true;
        if state.cursors.take().is_some() {
            let all: Vec<u32> = (0..self.inner.partitions.len() as u32).collect();
            self.listener.revoked(&all);
        }
    }
}
