//! CSV records read from any byte stream, a buffer at a time, in bounded memory.
//!
//! `csv-core` does the parsing (RFC 4180: quoted fields holding commas, quotes and newlines;
//! CRLF, LF or CR line ends; a UTF-8 byte order mark; blank lines skipped). This module feeds
//! it and keeps what one record needs: a record longer than [`Limits::max_record_bytes`] (an
//! unclosed quote swallows the rest of a file into one field) is read through without being
//! kept and returned marked [`Record::oversized`], so that no input can make the reader hold
//! more than its limits.

use tokio::io::{AsyncRead, AsyncReadExt};

/// How much of the input is held at once.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes read from the input per call.
    pub read_buffer: usize,
    /// A record's fields, unquoted, together: past this it is [`Record::oversized`].
    pub max_record_bytes: usize,
    /// A record's fields: past this it is [`Record::oversized`].
    pub max_fields: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            read_buffer: 64 * 1024,
            max_record_bytes: 1024 * 1024,
            max_fields: 4096,
        }
    }
}

/// One record: its fields' bytes, unquoted.
#[derive(Debug, Default)]
pub struct Record {
    /// The line the record starts on, from 1 (a quoted field may span lines).
    pub line: u64,
    /// Over the limits: read through, its fields not kept (`fields` is empty).
    pub oversized: bool,
    data: Vec<u8>,
    ends: Vec<usize>,
    len: usize,
}

impl Record {
    /// The number of fields.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Field `i`'s bytes, or `None` past the last field.
    pub fn field(&self, i: usize) -> Option<&[u8]> {
        if i >= self.len {
            return None;
        }
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        Some(&self.data[start..self.ends[i]])
    }

    /// Every field empty or only ASCII whitespace (a line of commas, as spreadsheets export
    /// after the last row).
    pub fn is_blank(&self) -> bool {
        !self.oversized
            && (0..self.len).all(|i| {
                self.field(i)
                    .is_some_and(|f| f.iter().all(u8::is_ascii_whitespace))
            })
    }
}

/// Reads [`Record`]s from `input`.
pub struct Records<R> {
    input: R,
    parser: csv_core::Reader,
    limits: Limits,
    buffer: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    bytes_read: u64,
    /// Line breaks consumed so far.
    lines: LineBreaks,
    record: Record,
}

/// Counts line breaks as editors do: LF, CRLF (once) and a lone CR (classic Mac files).
#[derive(Debug, Default, Clone, Copy)]
struct LineBreaks {
    count: u64,
    after_cr: bool,
}

impl LineBreaks {
    fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            match b {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' => self.count += 1,
                b'\r' => {
                    self.count += 1;
                    self.after_cr = true;
                }
                _ => self.after_cr = false,
            }
        }
    }
}

impl<R: AsyncRead + Unpin> Records<R> {
    pub fn new(input: R, limits: Limits) -> Self {
        Records {
            input,
            parser: csv_core::Reader::new(),
            limits,
            buffer: vec![0; limits.read_buffer.max(16)],
            start: 0,
            end: 0,
            eof: false,
            bytes_read: 0,
            lines: LineBreaks::default(),
            record: Record::default(),
        }
    }

    /// Bytes read from the input so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// The next record, or `None` at the end of the input.
    pub async fn next(&mut self) -> std::io::Result<Option<&Record>> {
        let record = &mut self.record;
        record.oversized = false;
        record.len = 0;
        if record.data.is_empty() {
            record
                .data
                .resize(self.limits.max_record_bytes.clamp(1, 4096), 0);
            record.ends.resize(self.limits.max_fields.clamp(1, 64), 0);
        }
        let (mut out, mut ends) = (0usize, 0usize);
        // Line breaks inside the record's quoted fields.
        let mut inside = LineBreaks::default();
        loop {
            // The first read holds at least the byte order mark's three bytes when there are
            // that many (csv-core strips it only when it sees it whole).
            while !self.eof && (self.start == self.end || (self.bytes_read < 3 && self.end < 3)) {
                if self.start == self.end {
                    (self.start, self.end) = (0, 0);
                }
                let n = self.input.read(&mut self.buffer[self.end..]).await?;
                self.bytes_read += n as u64;
                self.end += n;
                self.eof = n == 0;
            }
            let input = &self.buffer[self.start..self.end];
            let (result, nin, nout, nend) =
                self.parser
                    .read_record(input, &mut record.data[out..], &mut record.ends[ends..]);
            let ended_on_break = nin > 0 && matches!(input[nin - 1], b'\n' | b'\r');
            self.lines.feed(&input[..nin]);
            self.start += nin;
            // Field by field: a CR ending one field and an LF starting the next are two
            // line breaks in the file, though adjacent in `data`.
            let mut from = out;
            if !record.oversized {
                for &end in &record.ends[ends..ends + nend] {
                    if (from..=out + nout).contains(&end) {
                        inside.feed(&record.data[from..end]);
                        inside.after_cr = false;
                        from = end;
                    }
                }
            }
            inside.feed(&record.data[from..out + nout]);
            out += nout;
            ends += nend;
            use csv_core::ReadRecordResult as R;
            match result {
                R::InputEmpty => {}
                R::OutputFull => {
                    if record.data.len() < self.limits.max_record_bytes {
                        let grown = (record.data.len() * 2).min(self.limits.max_record_bytes);
                        record.data.resize(grown, 0);
                    } else {
                        // Read on through the record without keeping it.
                        record.oversized = true;
                        out = 0;
                    }
                }
                R::OutputEndsFull => {
                    if record.ends.len() < self.limits.max_fields {
                        let grown = (record.ends.len() * 2).min(self.limits.max_fields);
                        record.ends.resize(grown, 0);
                    } else {
                        record.oversized = true;
                        ends = 0;
                    }
                }
                R::Record => {
                    // The line breaks before the record's own terminator, less those inside
                    // its fields.
                    let end_line = self.lines.count - u64::from(ended_on_break) + 1;
                    record.line = end_line.saturating_sub(inside.count).max(1);
                    if record.oversized {
                        record.len = 0;
                    } else {
                        record.len = ends;
                    }
                    return Ok(Some(&self.record));
                }
                R::End => return Ok(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every record as (line, fields) or (line, "OVERSIZED"), read `chunk` bytes at a time.
    async fn read_all(text: &[u8], chunk: usize, limits: Limits) -> Vec<(u64, Vec<String>)> {
        let limits = Limits {
            read_buffer: chunk,
            ..limits
        };
        let mut records = Records::new(text, limits);
        let mut all = Vec::new();
        while let Some(r) = records.next().await.unwrap() {
            let fields = if r.oversized {
                vec!["OVERSIZED".to_owned()]
            } else {
                (0..r.len())
                    .map(|i| String::from_utf8_lossy(r.field(i).unwrap()).into_owned())
                    .collect()
            };
            all.push((r.line, fields));
        }
        assert_eq!(records.bytes_read(), text.len() as u64);
        all
    }

    fn rows(rows: &[(u64, &[&str])]) -> Vec<(u64, Vec<String>)> {
        rows.iter()
            .map(|(line, f)| (*line, f.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    #[tokio::test]
    async fn quoting_line_ends_bom_and_blank_lines_at_any_buffer_size() {
        let text = "\u{feff}sku,name\r\n\r\nA,\"x, \"\"y\"\"\"\r\n\"B\",\"two\nlines\"\n\nC,c\rD,d";
        let expected = rows(&[
            (1, &["sku", "name"]),
            (3, &["A", "x, \"y\""]),
            (4, &["B", "two\nlines"]),
            (7, &["C", "c"]),
            (8, &["D", "d"]),
        ]);
        for chunk in [1, 2, 3, 5, 7, 64 * 1024] {
            assert_eq!(
                read_all(text.as_bytes(), chunk, Limits::default()).await,
                expected,
                "read {chunk} bytes at a time"
            );
        }
    }

    #[tokio::test]
    async fn a_record_over_the_limit_is_read_through_and_marked() {
        let limits = Limits {
            max_record_bytes: 16,
            max_fields: 4,
            ..Limits::default()
        };
        let long = "x".repeat(100);
        let text = format!("a,b\n{long},1\nc,d\n1,2,3,4,5,6\n\"unclosed,{long}\nstill\n");
        let got = read_all(text.as_bytes(), 7, limits).await;
        assert_eq!(
            got,
            rows(&[
                (1, &["a", "b"]),
                (2, &["OVERSIZED"]),
                (3, &["c", "d"]),
                (4, &["OVERSIZED"]),
                (5, &["OVERSIZED"]),
            ])
        );
    }

    #[tokio::test]
    async fn empty_input_has_no_records_and_a_lone_bom_neither() {
        assert!(read_all(b"", 4, Limits::default()).await.is_empty());
        assert!(
            read_all(b"\xef\xbb\xbf", 1, Limits::default())
                .await
                .is_empty()
        );
        assert!(read_all(b"\n\r\n\n", 1, Limits::default()).await.is_empty());
    }

    #[tokio::test]
    async fn blank_records_are_recognised() {
        let mut records = Records::new(&b" , ,\nx,\n"[..], Limits::default());
        assert!(records.next().await.unwrap().unwrap().is_blank());
        assert!(!records.next().await.unwrap().unwrap().is_blank());
    }

    /// Any fields, written as CSV with any line ends, read back whole at any buffer size, each
    /// record on the line it starts on.
    mod roundtrip {
        use super::*;
        use proptest::prelude::*;

        fn write_csv(records: &[Vec<String>], ends: &[&str]) -> (Vec<u8>, Vec<u64>) {
            let mut text = Vec::new();
            let mut starts = Vec::new();
            for (i, fields) in records.iter().enumerate() {
                let mut breaks = LineBreaks::default();
                breaks.feed(&text);
                starts.push(breaks.count + 1);
                for (j, field) in fields.iter().enumerate() {
                    if j > 0 {
                        text.push(b',');
                    }
                    let quote = field.is_empty() && fields.len() == 1
                        || field.contains([',', '"', '\r', '\n']);
                    if quote {
                        text.push(b'"');
                        text.extend_from_slice(field.replace('"', "\"\"").as_bytes());
                        text.push(b'"');
                    } else {
                        text.extend_from_slice(field.as_bytes());
                    }
                }
                text.extend_from_slice(ends[i % ends.len()].as_bytes());
            }
            (text, starts)
        }

        proptest! {
            #[test]
            fn read_back_as_written(
                records in prop::collection::vec(
                    prop::collection::vec("[a-z ,\"\r\n\u{e9}\u{1F600}]{0,6}", 1..5), 0..20),
                ends in prop::collection::vec(prop::sample::select(vec!["\n", "\r\n", "\r"]), 1..4),
                chunk in 1usize..40,
                last_end in any::<bool>(),
            ) {
                let (mut text, starts) = write_csv(&records, &ends);
                if !last_end && !records.is_empty() {
                    // No line end after the last record.
                    while text.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                        text.pop();
                    }
                }
                let got = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap()
                    .block_on(read_all(&text, chunk, Limits::default()));
                let expected: Vec<(u64, Vec<String>)> =
                    starts.into_iter().zip(records.iter().cloned()).collect();
                prop_assert_eq!(got, expected);
            }
        }
    }
}
