//! The on-disk format of a partition: segment files named by the offset of their first record
//! (`00000000000000000000.log`), each a sequence of frames:
//!
//! ```text
//! frame = body_len: u32 LE | crc32(body): u32 LE | body
//! body  = key_len: u32 LE | key | value                               (plain)
//!       | (key_len | TRACED): u32 LE | key | trace_len: u8 | trace | value  (traced)
//! ```
//!
//! A traced record carries the W3C `traceparent` of the span that appended it (what a Kafka
//! record carries as a header); the flag is the key length's top bit, which a real length
//! (under [`MAX_BODY`]) never sets, so files written before traces read unchanged.
//!
//! Offsets are implicit (a segment's base offset plus the frame's position in it), so a frame
//! carries nothing but its record. A crash can leave the last segment with a torn tail: a frame
//! cut short, or whose bytes never reached the disk (its checksum fails). [`scan`] finds the
//! last whole frame, and the log cuts the file there before anything reads it.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Bytes before a frame's body.
pub const HEADER: usize = 8;
/// The largest body a frame may have; a longer length field is damage, not a record.
pub const MAX_BODY: usize = 64 << 20;
/// One sparse index entry every this many records.
pub const INDEX_EVERY: u64 = 512;

/// The file name of the segment starting at `base`.
pub fn file_name(base: u64) -> String {
    format!("{base:020}.log")
}

/// The base offset of a segment file, from its name.
pub fn parse_name(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    let digits = name.strip_suffix(".log")?;
    (digits.len() == 20).then(|| digits.parse().ok()).flatten()
}

/// The key length's flag of a traced record.
const TRACED: u32 = 1 << 31;

/// The body's length of a record (what [`MAX_BODY`] limits).
pub fn body_len(key: &[u8], value: &[u8], trace: Option<&[u8]>) -> usize {
    4 + key.len() + kept(trace).map_or(0, |t| 1 + t.len()) + value.len()
}

/// The trace a frame keeps: none over 255 bytes (no valid `traceparent` is).
fn kept(trace: Option<&[u8]>) -> Option<&[u8]> {
    trace.filter(|t| t.len() <= usize::from(u8::MAX))
}

/// Appends the frame of one record to `buf`. A `trace` over 255 bytes (no valid
/// `traceparent` is) is left out.
pub fn encode(key: &[u8], value: &[u8], trace: Option<&[u8]>, buf: &mut Vec<u8>) {
    let trace = kept(trace);
    let body_len = body_len(key, value, trace);
    buf.reserve(HEADER + body_len);
    let start = buf.len();
    buf.extend_from_slice(&(body_len as u32).to_le_bytes());
    buf.extend_from_slice(&[0; 4]);
    let flag = if trace.is_some() { TRACED } else { 0 };
    buf.extend_from_slice(&(key.len() as u32 | flag).to_le_bytes());
    buf.extend_from_slice(key);
    if let Some(trace) = trace {
        buf.push(trace.len() as u8);
        buf.extend_from_slice(trace);
    }
    buf.extend_from_slice(value);
    let crc = crc32fast::hash(&buf[start + HEADER..]);
    buf[start + 4..start + HEADER].copy_from_slice(&crc.to_le_bytes());
}

/// The key, trace and value of a frame's body (positions within the body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parts {
    pub key: (usize, usize),
    pub trace: Option<(usize, usize)>,
    pub value: (usize, usize),
}

/// Splits a body into its parts, or `None` if its lengths do not fit.
pub fn split(body: &[u8]) -> Option<Parts> {
    let word = u32::from_le_bytes(body.get(..4)?.try_into().ok()?);
    let key_end = 4usize.checked_add((word & !TRACED) as usize)?;
    if key_end > body.len() {
        return None;
    }
    let (trace, value_start) = if word & TRACED != 0 {
        let len = usize::from(*body.get(key_end)?);
        let end = key_end + 1 + len;
        (end <= body.len()).then_some((Some((key_end + 1, end)), end))?
    } else {
        (None, key_end)
    };
    Some(Parts {
        key: (4, key_end),
        trace,
        value: (value_start, body.len()),
    })
}

/// What a scan of a segment found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scanned {
    /// Whole, valid frames.
    pub records: u64,
    /// Bytes they take: where the next frame goes.
    pub valid_bytes: u64,
    /// The file's size; more than `valid_bytes` when its tail is torn.
    pub file_bytes: u64,
    /// (offset within the segment, byte position) every [`INDEX_EVERY`] records.
    pub index: Vec<(u64, u64)>,
}

/// Reads a segment frame by frame, checking every checksum, up to the first frame that is
/// incomplete or damaged.
pub fn scan(path: &Path) -> io::Result<Scanned> {
    let mut file = io::BufReader::with_capacity(1 << 20, File::open(path)?);
    let file_bytes = file.get_ref().metadata()?.len();
    let mut scanned = Scanned {
        records: 0,
        valid_bytes: 0,
        file_bytes,
        index: Vec::new(),
    };
    let mut body = Vec::new();
    loop {
        let mut header = [0u8; HEADER];
        if !read_full(&mut file, &mut header)? {
            return Ok(scanned);
        }
        let body_len = u32::from_le_bytes(header[..4].try_into().unwrap_or_default()) as usize;
        let crc = u32::from_le_bytes(header[4..].try_into().unwrap_or_default());
        if body_len > MAX_BODY || scanned.valid_bytes + (HEADER + body_len) as u64 > file_bytes {
            return Ok(scanned);
        }
        body.resize(body_len, 0);
        if !read_full(&mut file, &mut body)?
            || crc32fast::hash(&body) != crc
            || split(&body).is_none()
        {
            return Ok(scanned);
        }
        if scanned.records.is_multiple_of(INDEX_EVERY) {
            scanned.index.push((scanned.records, scanned.valid_bytes));
        }
        scanned.records += 1;
        scanned.valid_bytes += (HEADER + body_len) as u64;
    }
}

/// Fills `buf`; `false` if the input ended first (a partial read counts as ended).
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => return Ok(false),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Where a record is in a [`Chunk`]: its offset, and its key's and value's byte ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Located {
    pub offset: u64,
    pub key: (usize, usize),
    pub trace: Option<(usize, usize)>,
    pub value: (usize, usize),
}

/// Frames read from a segment: a buffer and, per record, where its key and value are in it.
#[derive(Debug, Default)]
pub struct Chunk {
    pub data: Vec<u8>,
    pub records: Vec<Located>,
}

/// Reads whole frames of `file` from byte `pos` (the frame of offset `offset`) up to byte
/// `end`, at most `max` records and about `max_bytes` (always at least one frame). Returns the
/// byte position after the last frame read.
pub fn read_frames(
    file: &File,
    mut pos: u64,
    mut offset: u64,
    end: u64,
    max: usize,
    max_bytes: usize,
    chunk: &mut Chunk,
) -> io::Result<u64> {
    let want = ((end - pos) as usize).min(max_bytes.max(HEADER));
    let base = chunk.data.len();
    chunk.data.resize(base + want, 0);
    file.read_exact_at(&mut chunk.data[base..], pos)?;
    let mut at = base;
    let mut taken = 0;
    while taken < max && at + HEADER <= chunk.data.len() {
        let body_len =
            u32::from_le_bytes(chunk.data[at..at + 4].try_into().unwrap_or_default()) as usize;
        let frame = HEADER + body_len;
        if body_len > MAX_BODY || pos + frame as u64 > end {
            // Frames below the durable end were whole when written and scanned: this is damage,
            // which must be reported rather than stall the partition.
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a damaged frame at byte {pos} (length {body_len})"),
            ));
        }
        if at + frame > chunk.data.len() {
            if taken == 0 {
                // A frame larger than the read: read exactly it.
                chunk.data.resize(at + frame, 0);
                file.read_exact_at(&mut chunk.data[at..], pos)?;
            } else {
                break;
            }
        }
        let body = at + HEADER;
        let parts = split(&chunk.data[body..at + frame])
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "a damaged frame"))?;
        chunk.records.push(Located {
            offset,
            key: (body + parts.key.0, body + parts.key.1),
            trace: parts.trace.map(|(start, end)| (body + start, body + end)),
            value: (body + parts.value.0, body + parts.value.1),
        });
        at += frame;
        pos += frame as u64;
        offset += 1;
        taken += 1;
    }
    chunk.data.truncate(at);
    Ok(pos)
}

/// The byte position of the frame of segment-relative record `n`, skipping from the nearest
/// index entry at or before it.
pub fn position_of(file: &File, index: &[(u64, u64)], n: u64) -> io::Result<u64> {
    let i = index.partition_point(|&(r, _)| r <= n);
    let (mut record, mut pos) = if i == 0 { (0, 0) } else { index[i - 1] };
    let mut header = [0u8; HEADER];
    while record < n {
        file.read_exact_at(&mut header, pos)?;
        let body_len = u32::from_le_bytes(header[..4].try_into().unwrap_or_default()) as u64;
        pos += HEADER as u64 + body_len;
        record += 1;
    }
    Ok(pos)
}

/// The segment files of a partition directory, by base offset.
pub fn list(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut segments = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if let Some(base) = parse_name(&path) {
            segments.push((base, path));
        }
    }
    segments.sort();
    Ok(segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_round_trips() {
        let mut buf = Vec::new();
        encode(b"42", b"{\"a\":1}", None, &mut buf);
        assert_eq!(buf.len(), HEADER + 4 + 2 + 7);
        let parts = split(&buf[HEADER..]).expect("a valid body");
        assert_eq!(&buf[HEADER..][parts.key.0..parts.key.1], b"42");
        assert_eq!(parts.trace, None);
        assert_eq!(&buf[HEADER..][parts.value.0..parts.value.1], b"{\"a\":1}");
    }

    #[test]
    fn a_traced_frame_round_trips_and_a_plain_one_reads_as_before() {
        let trace = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut buf = Vec::new();
        encode(b"42", b"{}", Some(trace), &mut buf);
        assert_eq!(buf.len(), HEADER + body_len(b"42", b"{}", Some(trace)));
        let body = &buf[HEADER..];
        let parts = split(body).expect("a valid body");
        assert_eq!(&body[parts.key.0..parts.key.1], b"42");
        let (start, end) = parts.trace.expect("a trace");
        assert_eq!(&body[start..end], trace);
        assert_eq!(&body[parts.value.0..parts.value.1], b"{}");
        // The bytes of a frame written before traces: key length 2, no flag.
        let old = [2, 0, 0, 0, b'4', b'2', b'{', b'}'];
        let parts = split(&old).expect("a valid body");
        assert_eq!(
            (parts.key, parts.trace, parts.value),
            ((4, 6), None, (6, 8))
        );
        // A traced body cut inside its trace is damage, not a record.
        assert_eq!(split(&body[..10]), None);
        // A trace too long to be a traceparent is left out rather than corrupting the frame.
        let mut buf = Vec::new();
        encode(b"k", b"v", Some(&[b'x'; 300]), &mut buf);
        assert_eq!(split(&buf[HEADER..]).map(|p| p.trace), Some(None));
    }

    #[test]
    fn names_sort_by_offset_and_parse_back() {
        assert_eq!(file_name(7), "00000000000000000007.log");
        assert_eq!(
            parse_name(Path::new("/x/00000000000000000007.log")),
            Some(7)
        );
        assert_eq!(parse_name(Path::new("/x/7.log")), None);
        assert_eq!(parse_name(Path::new("/x/00000000000000000007.tmp")), None);
    }
}
