//! The windowing hot path: decoded events into one partition's windows, exact and HLL.
//!
//! `cargo bench -p ecom-benches --bench window`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ecom_benches::{decoded, workload};
use stream_engine::{Counting, EngineConfig, Event, Output, PartitionEngine};

/// Five minutes of event time at the workload's rate: the first minute (tables growing from
/// empty) does not dominate.
const EVENTS: u64 = 6_000_000;

/// Events handed to the engine per call on the batch path, as a Kafka poll would.
const BATCH: usize = 1024;

fn hot_path(c: &mut Criterion) {
    let events = decoded(workload(EVENTS));
    let batch: Vec<(u64, Event<'static>)> = events
        .iter()
        .enumerate()
        .map(|(i, e)| (i as u64, e.clone()))
        .collect();
    let mut group = c.benchmark_group("window");
    group.throughput(Throughput::Elements(EVENTS));
    group.sample_size(10);
    for (name, counting) in [("exact", Counting::Exact), ("hll", Counting::Approximate)] {
        let config = EngineConfig {
            counting,
            ..EngineConfig::default()
        };
        group.bench_function(format!("{name}/batch"), |b| {
            b.iter(|| {
                let mut engine = PartitionEngine::new(&config).expect("valid config");
                let mut out = Output::default();
                let mut windows = 0;
                for chunk in batch.chunks(BATCH) {
                    engine.process_batch(chunk, &mut out);
                    windows += out.results.len();
                    out.clear();
                }
                engine.flush(&mut out);
                black_box(windows + out.results.len())
            })
        });
        group.bench_function(format!("{name}/single"), |b| {
            b.iter(|| {
                let mut engine = PartitionEngine::new(&config).expect("valid config");
                let mut out = Output::default();
                let mut windows = 0;
                for (offset, event) in events.iter().enumerate() {
                    engine.process(offset as u64, event, &mut out);
                    windows += out.results.len();
                    out.clear();
                }
                engine.flush(&mut out);
                black_box(windows + out.results.len())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
