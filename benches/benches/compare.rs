//! Our decoder and our HyperLogLog against the libraries we chose them over, measured side by
//! side. Prints markdown tables for BENCHMARKS.md.
//!
//! `cargo bench -p ecom-benches --features compare --bench compare` (add `-- json` or `-- hll`
//! for one table).
//!
//! - JSON: every parser yields the same three fields (`user_id`, `product_id`, and `timestamp`
//!   converted to milliseconds by the engine's own RFC 3339 parser), and before timing each one
//!   must agree with `decode_event` on every line, so that none can measure doing nothing.
//!   The derived structs borrow their strings from the input where the library can (`Cow` with
//!   `#[serde(borrow)]`), and simd-json, which parses in place, copies each line into one
//!   reused buffer and reuses its `Buffers`.
//! - HyperLogLog, all at p = 14: inserts of pre-computed XXH3 hashes (the engine's
//!   `hash_bytes`); a library that cannot take a hash is given it as a value and hashes it
//!   again. Memory is counted by a global allocator that tracks the bytes requested (the
//!   allocator's own per-block overhead is not included).

use std::alloc::{GlobalAlloc, Layout, System};
use std::borrow::Cow;
use std::hash::{BuildHasherDefault, Hasher};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use ecom_benches::{ndjson, workload};
use serde::Deserialize;
use serde_json::value::RawValue;
use stream_engine::core::decode::{
    MAX_EVENT_BYTES, MAX_EVENT_TYPE_LEN, MAX_ID_LEN, MAX_METADATA_BYTES,
};
use stream_engine::core::hash::hash_bytes;
use stream_engine::core::hll::Hll;
use stream_engine::core::time::parse_rfc3339_ms;
use stream_engine::{Event, decode_event, decode_with_serde};

// ---------------------------------------------------------------------------------------------
// Allocation counting, switched on only while a sketch is being built.

struct CountingAllocator;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATED: AtomicIsize = AtomicIsize::new(0);

fn count(delta: isize) {
    if COUNTING.load(Ordering::Relaxed) {
        ALLOCATED.fetch_add(delta, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// The value `build` returns and the heap bytes it still holds.
fn heap_of<T>(build: impl FnOnce() -> T) -> (T, isize) {
    ALLOCATED.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
    let value = build();
    COUNTING.store(false, Ordering::Relaxed);
    (value, ALLOCATED.load(Ordering::Relaxed))
}

// ---------------------------------------------------------------------------------------------
// JSON parsers.

/// What every parser must produce from one line.
#[derive(Debug, PartialEq, Eq)]
struct Fields<'a> {
    user_id: Cow<'a, str>,
    product_id: Cow<'a, str>,
    timestamp_ms: i64,
}

impl<'a> From<Event<'a>> for Fields<'a> {
    fn from(event: Event<'a>) -> Self {
        Fields {
            user_id: event.user_id,
            product_id: event.product_id,
            timestamp_ms: event.timestamp_ms,
        }
    }
}

/// The derived struct of the serde-based libraries; other fields are skipped.
#[derive(Deserialize)]
struct Derived<'a> {
    #[serde(borrow)]
    user_id: Cow<'a, str>,
    #[serde(borrow)]
    product_id: Cow<'a, str>,
    #[serde(borrow)]
    timestamp: Cow<'a, str>,
}

impl<'a> Derived<'a> {
    fn fields(self) -> Option<Fields<'a>> {
        Some(Fields {
            timestamp_ms: parse_rfc3339_ms(&self.timestamp).ok()?,
            user_id: self.user_id,
            product_id: self.product_id,
        })
    }
}

/// All five fields, with the checks `decode_event` makes (bounds, event type, metadata), to
/// show what the three-field derives leave out. Missing and duplicate fields are errors of the
/// derive itself.
#[derive(Deserialize)]
struct DerivedChecked<'a> {
    #[serde(borrow)]
    user_id: Cow<'a, str>,
    #[serde(borrow)]
    product_id: Cow<'a, str>,
    #[serde(borrow)]
    event_type: Cow<'a, str>,
    #[serde(borrow)]
    timestamp: Cow<'a, str>,
    #[serde(borrow, default)]
    metadata: Option<&'a RawValue>,
}

impl<'a> DerivedChecked<'a> {
    fn fields(self) -> Option<Fields<'a>> {
        let id = |s: &str| !s.is_empty() && s.len() <= MAX_ID_LEN;
        let kind = self.event_type.as_bytes();
        let upper_snake = matches!(kind.first(), Some(b'A'..=b'Z'))
            && kind
                .iter()
                .all(|c| matches!(c, b'A'..=b'Z' | b'0'..=b'9' | b'_'));
        let metadata = self.metadata.is_none_or(|m| {
            let text = m.get();
            text.starts_with('{') && text.len() <= MAX_METADATA_BYTES
        });
        if !(id(&self.user_id)
            && id(&self.product_id)
            && kind.len() <= MAX_EVENT_TYPE_LEN
            && upper_snake
            && metadata)
        {
            return None;
        }
        Some(Fields {
            timestamp_ms: parse_rfc3339_ms(&self.timestamp).ok()?,
            user_id: self.user_id,
            product_id: self.product_id,
        })
    }
}

trait Parser {
    const NAME: &'static str;
    /// The fields of a valid line, `None` for a line the parser refuses.
    fn parse<'a>(&'a mut self, line: &'a [u8]) -> Option<Fields<'a>>;
}

struct Ours;

impl Parser for Ours {
    const NAME: &'static str = "ours: `decode_event` (scanner, serde_json fallback)";
    fn parse<'a>(&'a mut self, line: &'a [u8]) -> Option<Fields<'a>> {
        decode_event(line).ok().map(Fields::from)
    }
}

struct SerdeVisitor;

impl Parser for SerdeVisitor {
    const NAME: &'static str = "serde_json, our visitor (`decode_with_serde`)";
    fn parse<'a>(&'a mut self, line: &'a [u8]) -> Option<Fields<'a>> {
        decode_with_serde(line).ok().map(Fields::from)
    }
}

struct SerdeDeriveStr;

impl Parser for SerdeDeriveStr {
    const NAME: &'static str = "serde_json derive, `from_utf8` + `from_str`";
    fn parse<'a>(&'a mut self, line: &'a [u8]) -> Option<Fields<'a>> {
        let text = std::str::from_utf8(line).ok()?;
        serde_json::from_str::<Derived>(text).ok()?.fields()
    }
}

struct SerdeDeriveChecked;

impl Parser for SerdeDeriveChecked {
    const NAME: &'static str =
        "serde_json derive of all five fields + our checks, `from_utf8` + `from_str`";
    fn parse<'a>(&'a mut self, line: &'a [u8]) -> Option<Fields<'a>> {
        if line.len() > MAX_EVENT_BYTES {
            return None;
        }
        let text = std::str::from_utf8(line).ok()?;
        serde_json::from_str::<DerivedChecked>(text).ok()?.fields()
    }
}

struct SerdeDeriveSlice;

impl Parser for SerdeDeriveSlice {
    const NAME: &'static str = "serde_json derive, `from_slice`";
    fn parse<'a>(&'a mut self, line: &'a [u8]) -> Option<Fields<'a>> {
        serde_json::from_slice::<Derived>(line).ok()?.fields()
    }
}

struct SonicDerive;

impl Parser for SonicDerive {
    const NAME: &'static str = "sonic-rs derive, `from_slice`";
    fn parse<'a>(&'a mut self, line: &'a [u8]) -> Option<Fields<'a>> {
        sonic_rs::from_slice::<Derived>(line).ok()?.fields()
    }
}

/// simd-json parses in place: each line is copied into `line`, and the parser's own buffers
/// are kept from line to line.
#[derive(Default)]
struct SimdDerive {
    line: Vec<u8>,
    buffers: simd_json::Buffers,
}

impl Parser for SimdDerive {
    const NAME: &'static str = "simd-json serde derive, reused buffers";
    fn parse<'a>(&'a mut self, line: &'a [u8]) -> Option<Fields<'a>> {
        self.line.clear();
        self.line.extend_from_slice(line);
        simd_json::serde::from_slice_with_buffers::<Derived>(&mut self.line, &mut self.buffers)
            .ok()?
            .fields()
    }
}

/// Checks that `parser` gives exactly what `decode_event` gives on every line. Returns the
/// number of valid lines and whether every string was borrowed rather than copied.
fn verify<P: Parser>(parser: &mut P, lines: &[&[u8]]) -> (u64, bool) {
    let (mut valid, mut borrowed) = (0, true);
    for (i, line) in lines.iter().enumerate() {
        let expected = decode_event(line).ok().map(Fields::from);
        let got = parser.parse(line);
        assert_eq!(got, expected, "{} disagrees on line {i}", P::NAME);
        if let Some(f) = got {
            valid += 1;
            borrowed &= matches!(
                (&f.user_id, &f.product_id),
                (Cow::Borrowed(_), Cow::Borrowed(_))
            );
        }
    }
    (valid, borrowed)
}

/// One timed pass: the number of valid lines, and a fold of the fields so that none of them
/// is left unread.
fn pass<P: Parser>(parser: &mut P, lines: &[&[u8]]) -> (u64, Duration) {
    let start = Instant::now();
    let (mut valid, mut fold) = (0u64, 0u64);
    for line in lines {
        if let Some(f) = parser.parse(black_box(line)) {
            valid += 1;
            fold = fold
                .wrapping_add(f.user_id.len() as u64)
                .wrapping_add(f.product_id.len() as u64)
                .wrapping_add(f.timestamp_ms as u64);
        }
    }
    black_box(fold);
    (valid, start.elapsed())
}

/// A parser as the table runs it: one whole pass at a time, so that the passes of all parsers
/// can be interleaved (a load that comes and goes then hits them alike) while each pass still
/// calls its parser without dynamic dispatch.
trait Row {
    fn name(&self) -> &'static str;
    fn verify(&mut self, lines: &[&[u8]]) -> (u64, bool);
    fn pass(&mut self, lines: &[&[u8]]) -> (u64, Duration);
}

impl<P: Parser> Row for P {
    fn name(&self) -> &'static str {
        P::NAME
    }
    fn verify(&mut self, lines: &[&[u8]]) -> (u64, bool) {
        verify(self, lines)
    }
    fn pass(&mut self, lines: &[&[u8]]) -> (u64, Duration) {
        pass(self, lines)
    }
}

fn json_table() {
    const LINES: u64 = 200_000;
    const PASSES: usize = 10;
    let input = ndjson(workload(LINES));
    let lines: Vec<&[u8]> = input
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(lines.len() as u64, LINES);
    let valid = lines.iter().filter(|l| decode_event(l).is_ok()).count() as u64;
    assert!(valid > 0, "the workload decodes to nothing");

    let mut rows: Vec<Box<dyn Row>> = vec![
        Box::new(SerdeVisitor),
        Box::new(SerdeDeriveStr),
        Box::new(SerdeDeriveSlice),
        Box::new(SerdeDeriveChecked),
        Box::new(SonicDerive),
        Box::new(SimdDerive::default()),
        Box::new(Ours),
    ];
    let borrowed: Vec<bool> = rows
        .iter_mut()
        .map(|row| {
            let (n, borrowed) = row.verify(&lines);
            assert_eq!(n, valid, "{}", row.name());
            borrowed
        })
        .collect();
    let mut times = vec![Vec::with_capacity(PASSES); rows.len()];
    for _ in 0..PASSES {
        for (row, times) in rows.iter_mut().zip(&mut times) {
            let (n, time) = row.pass(&lines);
            assert_eq!(n, valid, "{}", row.name());
            times.push(time.as_secs_f64());
        }
    }

    println!(
        "{} lines ({:.0} bytes on average), {} valid; {PASSES} passes per parser, \
         interleaved, one thread.\n",
        thousands(lines.len() as isize),
        input.len() as f64 / lines.len() as f64,
        thousands(valid as isize),
    );
    println!(
        "| parser | events/s (best pass) | ns/event (best) | ns/event (median) | strings borrowed |"
    );
    println!("|---|---:|---:|---:|:---:|");
    let n = lines.len() as f64;
    for ((row, times), borrowed) in rows.iter().zip(&mut times).zip(borrowed) {
        times.sort_by(f64::total_cmp);
        let (best, median) = (times[0], times[PASSES / 2]);
        println!(
            "| {} | {:.2} M | {:.0} | {:.0} | {} |",
            row.name(),
            n / best / 1e6,
            best * 1e9 / n,
            median * 1e9 / n,
            if borrowed { "yes" } else { "no" },
        );
    }
}

// ---------------------------------------------------------------------------------------------
// HyperLogLog sketches, all with 2^14 registers.

const PRECISION: u8 = 14;

trait Sketch {
    const NAME: &'static str;
    fn new() -> Self;
    fn insert(&mut self, hash: u64);
    fn estimate(&mut self) -> f64;
}

impl Sketch for Hll {
    const NAME: &'static str = "ours (`stream_engine::core::hll::Hll`)";
    fn new() -> Self {
        Hll::new()
    }
    #[inline]
    fn insert(&mut self, hash: u64) {
        self.insert_hash(hash);
    }
    fn estimate(&mut self) -> f64 {
        Hll::estimate(self) as f64
    }
}

impl Sketch for hyperloglockless::HyperLogLogPlus {
    const NAME: &'static str = "hyperloglockless 0.5 (`HyperLogLogPlus`)";
    fn new() -> Self {
        hyperloglockless::HyperLogLogPlus::seeded(PRECISION, 0)
    }
    #[inline]
    fn insert(&mut self, hash: u64) {
        self.insert_hash(hash);
    }
    fn estimate(&mut self) -> f64 {
        self.count() as f64
    }
}

/// The hasher type is never used: every insert passes the hash.
type CardinalityEstimator = cardinality_estimator::CardinalityEstimator<
    u64,
    std::hash::DefaultHasher,
    { PRECISION as usize },
    6,
>;

impl Sketch for CardinalityEstimator {
    const NAME: &'static str = "cardinality-estimator 1.0 (6-bit registers)";
    fn new() -> Self {
        CardinalityEstimator::new()
    }
    #[inline]
    fn insert(&mut self, hash: u64) {
        self.insert_hash(hash);
    }
    fn estimate(&mut self) -> f64 {
        CardinalityEstimator::estimate(self) as f64
    }
}

/// A `Hasher` that passes a `u64` through, so that hyperloglogplus, which hashes every value
/// with a `BuildHasher`, is given the pre-computed hash as is.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 hashes are inserted");
    }
    fn write_u64(&mut self, hash: u64) {
        self.0 = hash;
    }
}

type HyperLogLogPlus = hyperloglogplus::HyperLogLogPlus<u64, BuildHasherDefault<PassThrough>>;

impl Sketch for HyperLogLogPlus {
    const NAME: &'static str = "hyperloglogplus 0.4 (hash passed through its `BuildHasher`)";
    fn new() -> Self {
        HyperLogLogPlus::new(PRECISION, BuildHasherDefault::default()).expect("valid precision")
    }
    #[inline]
    fn insert(&mut self, hash: u64) {
        hyperloglogplus::HyperLogLog::insert(self, &hash);
    }
    fn estimate(&mut self) -> f64 {
        hyperloglogplus::HyperLogLog::count(self)
    }
}

impl Sketch for datasketches::hll::HllSketch {
    const NAME: &'static str = "datasketches 0.6 (`HllSketch`, Hll8; re-hashes with MurmurHash3)";
    fn new() -> Self {
        datasketches::hll::HllSketch::new(PRECISION, datasketches::hll::HllType::Hll8)
            .expect("valid precision")
    }
    #[inline]
    fn insert(&mut self, hash: u64) {
        self.update(hash);
    }
    fn estimate(&mut self) -> f64 {
        datasketches::hll::HllSketch::estimate(self)
    }
}

/// XXH3 hashes of `n` distinct keys, distinct again for each `trial`.
fn hashes(trial: u64, n: u64) -> Vec<u64> {
    (0..n)
        .map(|i| {
            let mut key = [0u8; 16];
            key[..8].copy_from_slice(&trial.to_le_bytes());
            key[8..].copy_from_slice(&i.to_le_bytes());
            hash_bytes(&key)
        })
        .collect()
}

fn build<S: Sketch>(hashes: &[u64]) -> S {
    let mut sketch = S::new();
    for &h in hashes {
        sketch.insert(h);
    }
    sketch
}

/// Nanoseconds per insert into a new sketch, the best of five.
fn ns_per_insert<S: Sketch>(hashes: &[u64]) -> f64 {
    let best = (0..5)
        .map(|_| {
            let start = Instant::now();
            let sketch = build::<S>(black_box(hashes));
            let time = start.elapsed();
            black_box(sketch);
            time
        })
        .min()
        .expect("five runs");
    best.as_secs_f64() * 1e9 / hashes.len() as f64
}

/// Mean absolute relative error at `n` over `trials` sets of distinct keys.
fn mean_error<S: Sketch>(sets: &[Vec<u64>]) -> f64 {
    let sum: f64 = sets
        .iter()
        .map(|hashes| {
            let n = hashes.len() as f64;
            (build::<S>(hashes).estimate() - n).abs() / n
        })
        .sum();
    sum / sets.len() as f64
}

struct SketchInputs {
    speed: [Vec<u64>; 2],
    memory: [Vec<u64>; 3],
    error: Vec<Vec<u64>>,
}

fn sketch_row<S: Sketch>(inputs: &SketchInputs) {
    let [speed_100k, speed_1m] = &inputs.speed;
    let ns_100k = ns_per_insert::<S>(speed_100k);
    let ns_1m = ns_per_insert::<S>(speed_1m);
    let heap = inputs.memory.each_ref().map(|hashes| {
        let (sketch, bytes) = heap_of(|| build::<S>(hashes));
        drop(sketch);
        bytes
    });
    let error = mean_error::<S>(&inputs.error);
    println!(
        "| {} | {ns_100k:.1} / {ns_1m:.1} | {} / {} / {} | {:.2} % |",
        S::NAME,
        thousands(heap[0]),
        thousands(heap[1]),
        thousands(heap[2]),
        100.0 * error
    );
}

fn hll_table() {
    const TRIALS: u64 = 10;
    let inputs = SketchInputs {
        speed: [hashes(1_000, 100_000), hashes(1_001, 1_000_000)],
        memory: [
            hashes(2_000, 10),
            hashes(2_001, 1_000),
            hashes(2_002, 100_000),
        ],
        error: (0..TRIALS).map(|t| hashes(t, 1_000_000)).collect(),
    };
    println!(
        "p = 14 (2^14 registers). Inserts of pre-computed XXH3 hashes into a new sketch, best of \
         5; heap bytes held after inserting that many distinct users (before any estimate); \
         mean absolute relative error at 1,000,000 over {TRIALS} trials.\n"
    );
    println!(
        "| implementation | ns/insert at 100k / 1M | heap bytes at 10 / 1k / 100k | mean error at 1M |"
    );
    println!("|---|---:|---:|---:|");
    sketch_row::<Hll>(&inputs);
    sketch_row::<hyperloglockless::HyperLogLogPlus>(&inputs);
    sketch_row::<CardinalityEstimator>(&inputs);
    sketch_row::<HyperLogLogPlus>(&inputs);
    sketch_row::<datasketches::hll::HllSketch>(&inputs);
}

/// `12345` as `12,345`, as BENCHMARKS.md writes numbers.
fn thousands(n: isize) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::from(if n < 0 { "-" } else { "" });
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

fn main() {
    // `cargo bench` passes `--bench`; a filter selects `json` or `hll`, and a filter that is
    // not ours runs nothing.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wanted = |table: &str| {
        filters.is_empty()
            || filters
                .iter()
                .any(|f| "compare".contains(f.as_str()) || table.contains(f.as_str()))
    };
    if wanted("json") {
        json_table();
    }
    if wanted("hll") {
        if wanted("json") {
            println!();
        }
        hll_table();
    }
}
