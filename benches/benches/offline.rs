//! Decode + window from NDJSON bytes: the offline mode's whole loop (line splitting, decoding,
//! validation, partitioning, windowing, result serialisation), one thread.
//!
//! `cargo bench -p ecom-benches --bench offline`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ecom_benches::{ndjson, workload};
use stream_engine::offline::{self, OfflineConfig, SideOutputs};
use stream_engine::{Counting, EngineConfig};
use stream_engine::{decode_event, decode_with_serde};

const EVENTS: u64 = 1_000_000;

/// Whether one line decodes.
type Decoder = fn(&[u8]) -> bool;

fn decode_only(c: &mut Criterion) {
    let input = ndjson(workload(EVENTS));
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(EVENTS));
    group.sample_size(10);
    let paths: [(&str, Decoder); 2] = [
        ("events", |line| decode_event(line).is_ok()),
        ("serde_path_only", |line| decode_with_serde(line).is_ok()),
    ];
    for (name, decode) in paths {
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut ok = 0u64;
                let mut start = 0;
                for end in memchr::memchr_iter(b'\n', &input) {
                    ok += u64::from(decode(&input[start..end]));
                    start = end + 1;
                }
                black_box(ok)
            })
        });
    }
    group.finish();
}

fn decode_and_window(c: &mut Criterion) {
    let input = ndjson(workload(EVENTS));
    let mut group = c.benchmark_group("offline");
    group.throughput(Throughput::Elements(EVENTS));
    group.sample_size(10);
    for (name, counting) in [("exact", Counting::Exact), ("hll", Counting::Approximate)] {
        let config = OfflineConfig {
            engine: EngineConfig {
                counting,
                ..EngineConfig::default()
            },
            partitions: 1,
        };
        group.bench_function(name, |b| {
            b.iter(|| {
                let summary = offline::run(
                    &config,
                    input.as_slice(),
                    &mut std::io::sink(),
                    SideOutputs::default(),
                )
                .expect("in-memory run");
                black_box(summary.windows_emitted)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, decode_only, decode_and_window);
criterion_main!(benches);
