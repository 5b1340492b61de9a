//! Offline mode: NDJSON events in, NDJSON window results out, over any reader and writer.
//!
//! Lines are split by product into `partitions` engines with Kafka's partitioner, exactly as
//! the topic would split them, and each engine sees its own offsets. A line that is not a
//! valid event is counted by reason (and written to the dead-letter output when there is one)
//! and never stops the run. At the end of input every open window is flushed.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::core::decode::{MAX_EVENT_BYTES, RejectReason, Rejection, decode_event};
use crate::core::partitioner::partition_for;
use crate::core::{ConfigError, EngineConfig, Event, Output, PartitionEngine};

/// Longest line read whole; longer lines are rejected as `event_too_large` without being
/// held in memory whole, so a missing newline cannot exhaust memory.
pub const MAX_LINE_BYTES: usize = 4 * MAX_EVENT_BYTES;

#[derive(Debug, Clone)]
pub struct OfflineConfig {
    pub engine: EngineConfig,
    /// Number of partitions to split the input into, at least 1.
    pub partitions: u32,
}

/// What a run did; printed to stderr by `ecom window`.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Summary {
    /// Non-blank input lines.
    pub events_read: u64,
    pub accepted: u64,
    pub rejected: u64,
    /// Rejections by reason code.
    pub rejected_by_reason: BTreeMap<&'static str, u64>,
    pub late: u64,
    pub windows_emitted: u64,
    pub bytes_read: u64,
    #[serde(serialize_with = "seconds")]
    pub elapsed: Duration,
    pub events_per_second: f64,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Optional side outputs.
#[derive(Default)]
pub struct SideOutputs<'a> {
    /// Late events, one JSON object per line.
    pub late: Option<&'a mut dyn Write>,
    /// Rejected lines: `{"line":N,"code":...,"field":...,"message":...}`.
    pub dead_letter: Option<&'a mut dyn Write>,
    /// Called now and then with the bytes read so far.
    pub progress: Option<&'a mut dyn FnMut(u64)>,
}

#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    #[error("invalid engine settings: {0}")]
    Config(#[from] ConfigError),
    #[error("partitions must be at least 1")]
    NoPartitions,
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

/// Input is read in chunks of about this many bytes, whole lines each; the events of a chunk
/// are handed to the engines as one batch per partition.
const CHUNK_BYTES: usize = 1 << 20;

/// Runs the offline job from `input` to `output`.
pub fn run(
    config: &OfflineConfig,
    mut input: impl Read,
    output: &mut dyn Write,
    mut side: SideOutputs<'_>,
) -> Result<Summary, OfflineError> {
    if config.partitions == 0 {
        return Err(OfflineError::NoPartitions);
    }
    let started = Instant::now();
    let mut engines = (0..config.partitions)
        .map(|_| PartitionEngine::new(&config.engine))
        .collect::<Result<Vec<_>, _>>()?;
    let mut offsets = vec![0u64; engines.len()];
    let mut summary = Summary::default();
    let mut rejected = [0u64; RejectReason::ALL.len()];
    let mut out = Output::default();
    let mut json = Vec::with_capacity(256);
    let mut chunks = ChunkReader::new();
    let mut line_number = 0u64;

    while let Some(chunk) = chunks.next_chunk(&mut input)? {
        let mut batches: Vec<Vec<(u64, Event<'_>)>> = vec![Vec::new(); engines.len()];
        for line in chunk.lines() {
            line_number += 1;
            let decoded = match line {
                Line::Text(text) if is_blank(text) => continue,
                Line::Text(text) => decode_event(text),
                Line::TooLong(len) => Err(Rejection {
                    reason: RejectReason::EventTooLarge,
                    field: None,
                    message: format!("line of {len}+ bytes, more than the {MAX_LINE_BYTES} read"),
                }),
            };
            summary.events_read += 1;
            match decoded {
                Ok(event) => {
                    let p = if engines.len() == 1 {
                        0
                    } else {
                        partition_for(event.product_id.as_bytes(), config.partitions) as usize
                    };
                    batches[p].push((offsets[p], event));
                    offsets[p] += 1;
                    summary.accepted += 1;
                }
                Err(rejection) => {
                    rejected[rejection.reason as usize] += 1;
                    if let Some(w) = side.dead_letter.as_mut() {
                        write_dead_letter(&mut **w, line_number, &rejection)?;
                    }
                }
            }
        }
        for (engine, batch) in engines.iter_mut().zip(&batches) {
            engine.process_batch(batch, &mut out);
        }
        drain(&mut out, output, &mut side, &mut json, &mut summary)?;
        if let Some(progress) = side.progress.as_mut() {
            progress(chunks.bytes_read);
        }
    }
    for engine in &mut engines {
        engine.flush(&mut out);
    }
    drain(&mut out, output, &mut side, &mut json, &mut summary)?;
    output.flush()?;
    if let Some(w) = side.late.as_mut() {
        w.flush()?;
    }
    if let Some(w) = side.dead_letter.as_mut() {
        w.flush()?;
    }

    summary.bytes_read = chunks.bytes_read;
    summary.rejected = rejected.iter().sum();
    summary.rejected_by_reason = RejectReason::ALL
        .iter()
        .zip(rejected)
        .filter(|(_, n)| *n > 0)
        .map(|(r, n)| (r.code(), n))
        .collect();
    summary.elapsed = started.elapsed();
    summary.events_per_second =
        summary.events_read as f64 / summary.elapsed.as_secs_f64().max(1e-9);
    Ok(summary)
}

fn drain(
    out: &mut Output,
    output: &mut dyn Write,
    side: &mut SideOutputs<'_>,
    json: &mut Vec<u8>,
    summary: &mut Summary,
) -> io::Result<()> {
    for result in &out.results {
        json.clear();
        serde_json::to_writer(&mut *json, result)?;
        json.push(b'\n');
        output.write_all(json)?;
    }
    summary.windows_emitted += out.results.len() as u64;
    summary.late += out.late.len() as u64;
    if let Some(w) = side.late.as_mut() {
        for late in &out.late {
            json.clear();
            serde_json::to_writer(&mut *json, late)?;
            json.push(b'\n');
            w.write_all(json)?;
        }
    }
    out.clear();
    Ok(())
}

fn write_dead_letter(w: &mut dyn Write, line: u64, rejection: &Rejection) -> io::Result<()> {
    let record = serde_json::json!({
        "line": line,
        "code": rejection.reason.code(),
        "field": rejection.field,
        "message": rejection.message,
    });
    serde_json::to_writer(&mut *w, &record)?;
    w.write_all(b"\n")
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

enum Line<'a> {
    Text(&'a [u8]),
    /// A line longer than [`MAX_LINE_BYTES`], skipped; at least this many bytes.
    TooLong(usize),
}

/// Reads the input in chunks that end at a line break, so that the events of a whole chunk
/// can borrow from it at once. Never holds more than one chunk plus one line of at most
/// [`MAX_LINE_BYTES`].
struct ChunkReader {
    buf: Vec<u8>,
    /// Bytes of `buf` holding input (the tail after the last chunk's line break included).
    filled: usize,
    /// Bytes at the front of `buf` handed out as the previous chunk.
    handed: usize,
    /// An overlong line is being skipped; this many bytes of it so far.
    skipping: Option<usize>,
    eof: bool,
    bytes_read: u64,
}

/// A run of whole lines.
struct Chunk<'a> {
    text: &'a [u8],
    /// The chunk starts with the end of an overlong line of this many bytes.
    too_long: Option<usize>,
}

impl<'a> Chunk<'a> {
    fn lines(&self) -> impl Iterator<Item = Line<'a>> + 'a {
        let text = self.text;
        let first = self.too_long.map(Line::TooLong);
        let mut rest = text;
        let body = std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            let (line, next) = match memchr::memchr(b'\n', rest) {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &rest[rest.len()..]),
            };
            rest = next;
            Some(if line.len() > MAX_LINE_BYTES {
                Line::TooLong(line.len())
            } else {
                Line::Text(line)
            })
        });
        first.into_iter().chain(body)
    }
}

impl ChunkReader {
    fn new() -> Self {
        ChunkReader {
            buf: vec![0; CHUNK_BYTES + MAX_LINE_BYTES],
            filled: 0,
            handed: 0,
            skipping: None,
            eof: false,
            bytes_read: 0,
        }
    }

    fn next_chunk(&mut self, input: &mut impl Read) -> io::Result<Option<Chunk<'_>>> {
        // Keep the partial line after the previous chunk, at the front.
        self.buf.copy_within(self.handed..self.filled, 0);
        self.filled -= self.handed;
        self.handed = 0;
        loop {
            while !self.eof && self.filled < CHUNK_BYTES {
                match input.read(&mut self.buf[self.filled..]) {
                    Ok(0) => self.eof = true,
                    Ok(n) => {
                        self.filled += n;
                        self.bytes_read += n as u64;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            let data = &self.buf[..self.filled];
            if let Some(skipped) = self.skipping {
                // Drop the rest of an overlong line up to its line break.
                match memchr::memchr(b'\n', data) {
                    Some(i) => {
                        self.skipping = None;
                        self.handed = i + 1;
                        let too_long = Some(skipped + i);
                        return Ok(Some(self.chunk_after(i + 1, too_long)));
                    }
                    None if self.eof => {
                        self.skipping = None;
                        self.filled = 0;
                        return Ok(Some(Chunk {
                            text: &[],
                            too_long: Some(skipped + data.len()),
                        }));
                    }
                    None => {
                        self.skipping = Some(skipped + data.len());
                        self.filled = 0;
                        continue;
                    }
                }
            }
            if data.is_empty() {
                return Ok(None);
            }
            let end = if self.eof {
                Some(data.len())
            } else {
                memchr::memrchr(b'\n', data).map(|i| i + 1)
            };
            match end {
                Some(end) => {
                    self.handed = end;
                    return Ok(Some(Chunk {
                        text: &self.buf[..end],
                        too_long: None,
                    }));
                }
                None if self.filled >= CHUNK_BYTES => {
                    // A chunk's worth without a line break: an overlong line, skipped.
                    self.skipping = Some(self.filled);
                    self.filled = 0;
                }
                None => {}
            }
        }
    }

    /// After skipping the end of an overlong line (`start` bytes), the whole lines that follow.
    fn chunk_after(&mut self, start: usize, too_long: Option<usize>) -> Chunk<'_> {
        let data = &self.buf[start..self.filled];
        let end = if self.eof {
            data.len()
        } else {
            memchr::memrchr(b'\n', data).map_or(0, |i| i + 1)
        };
        self.handed = start + end;
        Chunk {
            text: &self.buf[start..start + end],
            too_long,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that returns at most `step` bytes per read, to cut lines anywhere.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn lines_of(input: &[u8], step: usize) -> Vec<Result<Vec<u8>, usize>> {
        let mut reader = Trickle { data: input, step };
        let mut chunks = ChunkReader::new();
        let mut all = Vec::new();
        while let Some(chunk) = chunks.next_chunk(&mut reader).unwrap() {
            for line in chunk.lines() {
                all.push(match line {
                    Line::Text(t) => Ok(t.to_vec()),
                    Line::TooLong(n) => Err(n),
                });
            }
        }
        all
    }

    #[test]
    fn splits_lines_whatever_the_reads() {
        let input = b"alpha\nbeta\n\ngamma-delta-epsilon\nlast";
        for step in [1, 2, 3, 7, 64] {
            let want: Vec<Result<Vec<u8>, usize>> =
                ["alpha", "beta", "", "gamma-delta-epsilon", "last"]
                    .iter()
                    .map(|s| Ok(s.as_bytes().to_vec()))
                    .collect();
            assert_eq!(lines_of(input, step), want, "step {step}");
        }
    }

    #[test]
    fn many_chunks_lose_no_line() {
        let mut input = Vec::new();
        for i in 0..300_000 {
            input.extend_from_slice(format!("line number {i}\n").as_bytes());
        }
        let lines = lines_of(&input, 100_000);
        assert_eq!(lines.len(), 300_000);
        assert_eq!(lines[123_456], Ok(b"line number 123456".to_vec()));
    }

    #[test]
    fn an_overlong_line_is_skipped_not_buffered() {
        for len in [
            MAX_LINE_BYTES + 10,
            CHUNK_BYTES + MAX_LINE_BYTES + 5,
            3 * CHUNK_BYTES,
        ] {
            let mut input = b"first\n".to_vec();
            input.extend(std::iter::repeat_n(b'x', len));
            input.extend_from_slice(b"\nnext\n");
            let lines = lines_of(&input, 1 << 16);
            assert_eq!(lines.len(), 3, "len {len}");
            assert_eq!(lines[0], Ok(b"first".to_vec()));
            assert!(
                matches!(lines[1], Err(n) if n >= MAX_LINE_BYTES),
                "len {len}"
            );
            assert_eq!(lines[2], Ok(b"next".to_vec()));
        }
        // Overlong and unterminated at the end of input.
        let input = vec![b'y'; 2 * CHUNK_BYTES];
        let lines = lines_of(&input, 1 << 16);
        assert!(matches!(lines.as_slice(), [Err(n)] if *n >= 2 * CHUNK_BYTES));
    }
}
