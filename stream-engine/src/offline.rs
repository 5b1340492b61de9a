//! Offline mode: NDJSON events in, NDJSON window results out, over any reader and writer.
//!
//! Lines are split by product into `partitions` engines with Kafka's partitioner, exactly as
//! the topic would split them, and each engine sees its own offsets. A line that is not a
//! valid event is counted by reason (and written to the dead-letter output when there is one)
//! and never stops the run. At the end of input every open window is flushed.

use std::collections::BTreeMap;
use std::io::{self, BufRead, Write};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::core::decode::{MAX_EVENT_BYTES, RejectReason, Rejection, decode_event};
use crate::core::partitioner::partition_for;
use crate::core::{ConfigError, EngineConfig, Output, PartitionEngine};

/// Longest line read whole; longer lines are rejected as `event_too_large` without being
/// buffered, so a missing newline cannot exhaust memory.
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

/// Runs the offline job from `input` to `output`.
pub fn run(
    config: &OfflineConfig,
    mut input: impl BufRead,
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
    let mut lines = LineReader::new();
    let mut line_number = 0u64;

    while let Some(line) = lines.next_line(&mut input)? {
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
                engines[p].process(offsets[p], &event, &mut out);
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
        if !out.is_empty() {
            drain(&mut out, output, &mut side, &mut json, &mut summary)?;
        }
        if line_number.is_multiple_of(1 << 16)
            && let Some(progress) = side.progress.as_mut()
        {
            progress(lines.bytes_read);
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

    summary.bytes_read = lines.bytes_read;
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

/// Splits a reader into lines without copying those that lie within one buffer fill, and
/// without ever holding more than [`MAX_LINE_BYTES`] of one line.
struct LineReader {
    carry: Vec<u8>,
    /// Bytes of the previous line to consume from the reader before the next one.
    pending_consume: usize,
    bytes_read: u64,
}

impl LineReader {
    fn new() -> Self {
        LineReader {
            carry: Vec::new(),
            pending_consume: 0,
            bytes_read: 0,
        }
    }

    fn next_line<'a>(&'a mut self, input: &'a mut impl BufRead) -> io::Result<Option<Line<'a>>> {
        input.consume(std::mem::take(&mut self.pending_consume));
        self.carry.clear();
        let mut too_long = 0usize;
        loop {
            let buf = match input.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if buf.is_empty() {
                // End of input: a last line without a newline still counts.
                return Ok(if too_long > 0 {
                    Some(Line::TooLong(too_long))
                } else if self.carry.is_empty() {
                    None
                } else {
                    Some(Line::Text(&self.carry))
                });
            }
            match memchr::memchr(b'\n', buf) {
                Some(i) => {
                    self.bytes_read += i as u64 + 1;
                    if too_long > 0 || self.carry.len() + i > MAX_LINE_BYTES {
                        input.consume(i + 1);
                        return Ok(Some(Line::TooLong(too_long + self.carry.len() + i)));
                    }
                    if self.carry.is_empty() {
                        // The whole line is in the buffer: lend it out, consume it next call.
                        self.pending_consume = i + 1;
                        let buf = input.fill_buf()?;
                        return Ok(Some(Line::Text(&buf[..i])));
                    }
                    self.carry.extend_from_slice(&buf[..i]);
                    input.consume(i + 1);
                    return Ok(Some(Line::Text(&self.carry)));
                }
                None => {
                    let n = buf.len();
                    self.bytes_read += n as u64;
                    if too_long > 0 || self.carry.len() + n > MAX_LINE_BYTES {
                        too_long += self.carry.len() + n;
                        self.carry.clear();
                    } else {
                        self.carry.extend_from_slice(buf);
                    }
                    input.consume(n);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(input: &[u8], capacity: usize) -> Vec<Result<Vec<u8>, usize>> {
        let mut reader = io::BufReader::with_capacity(capacity, input);
        let mut lines = LineReader::new();
        let mut all = Vec::new();
        while let Some(line) = lines.next_line(&mut reader).unwrap() {
            all.push(match line {
                Line::Text(t) => Ok(t.to_vec()),
                Line::TooLong(n) => Err(n),
            });
        }
        all
    }

    #[test]
    fn splits_lines_across_buffer_boundaries() {
        let input = b"alpha\nbeta\n\ngamma-delta-epsilon\nlast";
        for capacity in [1, 2, 3, 7, 64] {
            let lines = lines_of(input, capacity);
            let want: Vec<Result<Vec<u8>, usize>> =
                ["alpha", "beta", "", "gamma-delta-epsilon", "last"]
                    .iter()
                    .map(|s| Ok(s.as_bytes().to_vec()))
                    .collect();
            assert_eq!(lines, want, "capacity {capacity}");
        }
    }

    #[test]
    fn an_overlong_line_is_skipped_not_buffered() {
        let mut input = vec![b'x'; MAX_LINE_BYTES + 10];
        input.extend_from_slice(b"\nnext\n");
        let lines = lines_of(&input, 8192);
        assert_eq!(lines.len(), 2);
        assert!(matches!(lines[0], Err(n) if n >= MAX_LINE_BYTES));
        assert_eq!(lines[1], Ok(b"next".to_vec()));
    }
}
