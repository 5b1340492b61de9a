//! The memory latency of the machine, for reading the other figures: random loads over
//! tables of the sizes the engine's state reaches. Prints a markdown table.
//!
//! `cargo bench -p ecom-benches --bench machine`

use std::hint::black_box;
use std::time::Instant;

const LOADS: usize = 10_000_000;

/// A random cyclic permutation of `0..n` (Sattolo), so that chasing it visits every slot.
fn cycle(n: usize) -> Vec<u32> {
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for i in (1..n).rev() {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let j = (seed >> 33) as usize % i;
        order.swap(i, j);
    }
    let mut next = vec![0u32; n];
    for w in 0..n {
        next[order[w] as usize] = order[(w + 1) % n];
    }
    next
}

fn main() {
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with("--") && !"machine".contains(a.as_str()))
    {
        return;
    }
    println!("| table size | dependent random load | independent random loads |");
    println!("|---:|---:|---:|");
    for mib in [1usize, 4, 32, 256] {
        let table = cycle(mib << 18);
        let started = Instant::now();
        let mut at = 0u32;
        for _ in 0..LOADS {
            at = table[at as usize];
        }
        black_box(at);
        let dependent = started.elapsed().as_nanos() as f64 / LOADS as f64;

        let started = Instant::now();
        let mut sum = 0u64;
        let mut seed = 1u64;
        for _ in 0..LOADS {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            sum += u64::from(table[(seed >> 33) as usize % table.len()]);
        }
        black_box(sum);
        let independent = started.elapsed().as_nanos() as f64 / LOADS as f64;
        println!("| {mib} MiB | {dependent:.1} ns | {independent:.1} ns each |");
    }
}
