//! Memory per window in state, exact and HLL, and the measured error of the HLL mode.
//! Prints markdown tables for BENCHMARKS.md.
//!
//! `cargo bench -p ecom-benches --bench state`
//!
//! Memory is counted by a global allocator that tracks the bytes requested (the allocator's
//! own per-block overhead is not included).

use std::alloc::{GlobalAlloc, Layout, System};
use std::borrow::Cow;
use std::sync::atomic::{AtomicIsize, Ordering};

use stream_engine::core::hash::hash_bytes;
use stream_engine::core::hll::Hll;
use stream_engine::{Counting, EngineConfig, Event, Output, PartitionEngine};

struct CountingAllocator;

static ALLOCATED: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        ALLOCATED.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATED.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn allocated() -> isize {
    ALLOCATED.load(Ordering::Relaxed)
}

/// Bytes of state per window with `users` distinct users each (ids like `u1234567`, product
/// ids like `p1234`), over enough windows to average out table growth steps.
fn bytes_per_window(users: u64, counting: Counting) -> f64 {
    let windows = (2_000_000 / users).clamp(3, 10_000);
    let config = EngineConfig {
        counting,
        ..EngineConfig::default()
    };
    let mut out = Output::default();
    // Ids are built before measuring so that only the engine's own allocations count.
    let user_ids: Vec<String> = (0..users).map(|u| format!("u{:07}", u)).collect();
    let product_ids: Vec<String> = (0..windows).map(|p| format!("p{p:04}")).collect();
    let before = allocated();
    let mut engine = PartitionEngine::new(&config).expect("valid config");
    let mut offset = 0;
    for product in &product_ids {
        for user in &user_ids {
            let event = Event {
                user_id: Cow::Borrowed(user),
                product_id: Cow::Borrowed(product),
                event_type: Cow::Borrowed("VIEW_PRODUCT"),
                timestamp_ms: 1_704_110_400_000,
            };
            engine.process(offset, &event, &mut out);
            offset += 1;
        }
    }
    let bytes = (allocated() - before) as f64 / windows as f64;
    assert_eq!(engine.open_windows() as u64, windows);
    drop(engine);
    bytes
}

fn memory_table() {
    println!(
        "| unique users per window | exact: bytes/window | exact: bytes/user | HLL: bytes/window |"
    );
    println!("|---:|---:|---:|---:|");
    for users in [10u64, 1_000, 100_000] {
        let exact = bytes_per_window(users, Counting::Exact);
        let hll = bytes_per_window(users, Counting::Approximate);
        println!(
            "| {users} | {exact:.0} | {:.1} | {hll:.0} |",
            exact / users as f64
        );
    }
}

fn error_table() {
    const TRIALS: u64 = 50;
    println!(
        "\n| true count | trials | mean abs. relative error | RMS relative error | max relative error |"
    );
    println!("|---:|---:|---:|---:|---:|");
    for n in [10u64, 100, 1_000, 10_000, 100_000, 1_000_000] {
        let (mut sum, mut sum_sq, mut max) = (0.0f64, 0.0f64, 0.0f64);
        for trial in 0..TRIALS {
            let mut hll = Hll::new();
            for i in 0..n {
                let mut key = [0u8; 16];
                key[..8].copy_from_slice(&trial.to_le_bytes());
                key[8..].copy_from_slice(&i.to_le_bytes());
                hll.insert_hash(hash_bytes(&key));
            }
            let rel = (hll.estimate() as f64 - n as f64).abs() / n as f64;
            sum += rel;
            sum_sq += rel * rel;
            max = max.max(rel);
        }
        println!(
            "| {n} | {TRIALS} | {:.3} % | {:.3} % | {:.3} % |",
            100.0 * sum / TRIALS as f64,
            100.0 * (sum_sq / TRIALS as f64).sqrt(),
            100.0 * max
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; with a filter that is not ours, do nothing.
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with("--") && !"state".contains(a.as_str()))
    {
        return;
    }
    memory_table();
    error_table();
}
