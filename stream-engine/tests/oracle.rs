//! The engine against a brute-force oracle, on random streams.
//!
//! The oracle states the semantics in the plainest terms: an event is late when its window's
//! end plus the allowed lateness is at or below the watermark before it (the largest earlier
//! event time minus the out-of-orderness); a window's final result counts the distinct users
//! and the events of its accepted events.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use proptest::prelude::*;
use stream_engine::core::partitioner::partition_for;
use stream_engine::{Checkpoint, Counting, EngineConfig, Event, Output, PartitionEngine};

const MINUTE: i64 = 60_000;
const BASE: i64 = 1_704_110_400_000;

#[derive(Debug, Clone)]
struct Ev {
    product: u8,
    user: u8,
    ts: i64,
}

impl Ev {
    fn event(&self) -> Event<'static> {
        Event {
            user_id: Cow::Owned(format!("u{}", self.user)),
            product_id: Cow::Owned(format!("p{}", self.product)),
            event_type: Cow::Borrowed("VIEW_PRODUCT"),
            timestamp_ms: self.ts,
        }
    }
}

type Key = (String, i64);

#[derive(Debug, PartialEq, Eq, Default)]
struct Oracle {
    /// (product, window start) -> (unique users, events)
    windows: BTreeMap<Key, (u64, u64)>,
    late: Vec<u64>,
}

fn oracle(events: &[Ev], config: &EngineConfig) -> Oracle {
    let ooo = config.out_of_orderness.as_millis() as i64;
    let lateness = config.allowed_lateness.as_millis() as i64;
    let mut max: Option<i64> = None;
    let mut users: BTreeMap<Key, (BTreeSet<u8>, u64)> = BTreeMap::new();
    let mut late = Vec::new();
    for (offset, e) in events.iter().enumerate() {
        let start = e.ts.div_euclid(MINUTE) * MINUTE;
        let watermark = max.map(|m| m - ooo);
        if watermark.is_some_and(|wm| start + MINUTE + lateness <= wm) {
            late.push(offset as u64);
            continue;
        }
        let w = users.entry((format!("p{}", e.product), start)).or_default();
        w.0.insert(e.user);
        w.1 += 1;
        max = Some(max.map_or(e.ts, |m| m.max(e.ts)));
    }
    Oracle {
        windows: users
            .into_iter()
            .map(|(k, (u, n))| (k, (u.len() as u64, n)))
            .collect(),
        late,
    }
}

/// Everything one engine emits over `events[from..to]`, flushed at the end if `flush`.
fn feed(engine: &mut PartitionEngine, events: &[Ev], from: usize, to: usize, out: &mut Output) {
    for (offset, e) in events.iter().enumerate().take(to).skip(from) {
        engine.process(offset as u64, &e.event(), out);
    }
}

/// The final result per key (the last emission wins, as an upsert would) and how often each
/// key was emitted.
fn upserted(out: &Output) -> (BTreeMap<Key, (u64, u64)>, HashMap<Key, usize>) {
    let mut last = BTreeMap::new();
    let mut times = HashMap::new();
    for r in &out.results {
        let key = (r.product_id.to_string(), r.window_start_ms);
        last.insert(key.clone(), (r.unique_users, r.events));
        *times.entry(key).or_insert(0) += 1;
    }
    (last, times)
}

fn sorted(out: &Output) -> (Vec<String>, Vec<u64>) {
    let mut results: Vec<String> = out
        .results
        .iter()
        .map(|r| serde_json::to_string(r).unwrap())
        .collect();
    results.sort();
    let mut late: Vec<u64> = out.late.iter().map(|l| l.offset).collect();
    late.sort();
    (results, late)
}

/// A stream whose event time advances with backward jitter up to `max_jitter` ms; with
/// `late_every` > 0, every so often an event jumps back by minutes. Times are whole seconds,
/// so that watermarks land exactly on window ends (the boundaries) often.
fn stream(max_jitter: i64, late_every: usize) -> impl Strategy<Value = Vec<Ev>> {
    let seconds = |max: i64| (0..=max / 1000).prop_map(|s| s * 1000);
    prop::collection::vec(
        (
            0u8..6,
            0u8..12,
            seconds(3_000),
            seconds(max_jitter),
            seconds(240_000),
        ),
        0..400,
    )
    .prop_map(move |raw| {
        let mut t = BASE;
        raw.into_iter()
            .enumerate()
            .map(|(i, (product, user, step, jitter, far))| {
                t += step;
                let back = if late_every > 0 && i % late_every == late_every - 1 {
                    far
                } else {
                    jitter
                };
                Ev {
                    product,
                    user,
                    ts: t - back,
                }
            })
            .collect()
    })
}

fn config(ooo_ms: u64, lateness_ms: u64, counting: Counting) -> EngineConfig {
    EngineConfig {
        out_of_orderness: Duration::from_millis(ooo_ms),
        allowed_lateness: Duration::from_millis(lateness_ms),
        idle_timeout: None,
        counting,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Disorder within the out-of-orderness: nothing is late, every window fires exactly once
    /// with the oracle's counts.
    #[test]
    fn bounded_disorder_gives_the_oracles_counts(events in stream(10_000, 0)) {
        let config = config(10_000, 0, Counting::Exact);
        let mut engine = PartitionEngine::new(&config).unwrap();
        let mut out = Output::default();
        feed(&mut engine, &events, 0, events.len(), &mut out);
        engine.flush(&mut out);
        let want = oracle(&events, &config);
        prop_assert!(out.late.is_empty());
        let (last, times) = upserted(&out);
        prop_assert_eq!(last, want.windows);
        prop_assert!(times.values().all(|&n| n == 1));
        prop_assert_eq!(engine.stats().events, events.len() as u64);
    }

    /// Arbitrary disorder and allowed lateness: the late events are the oracle's, and the last
    /// result of every window is the oracle's count over the accepted events.
    #[test]
    fn late_events_are_the_oracles(
        events in stream(20_000, 7),
        ooo in prop::sample::select(vec![0u64, 1_000, 10_000, 30_000]),
        lateness in prop::sample::select(vec![0u64, 5_000, 60_000]),
    ) {
        let config = config(ooo, lateness, Counting::Exact);
        let mut engine = PartitionEngine::new(&config).unwrap();
        let mut out = Output::default();
        feed(&mut engine, &events, 0, events.len(), &mut out);
        engine.flush(&mut out);
        let want = oracle(&events, &config);
        let late: Vec<u64> = out.late.iter().map(|l| l.offset).collect();
        prop_assert_eq!(&late, &want.late);
        prop_assert_eq!(engine.stats().late, want.late.len() as u64);
        let (last, times) = upserted(&out);
        prop_assert_eq!(last, want.windows);
        if lateness == 0 {
            prop_assert!(times.values().all(|&n| n == 1), "without lateness a window fires once");
        }
    }

    /// Crash after `crash` events, having taken the last checkpoint after `checkpoint_at`:
    /// what was emitted up to the checkpoint, plus what a restored engine emits replaying
    /// from the resume offset, is exactly what an uninterrupted run emits.
    #[test]
    fn restore_and_replay_equals_an_uninterrupted_run(
        events in stream(20_000, 9),
        at in (0.0f64..=1.0, 0.0f64..=1.0),
        ooo in prop::sample::select(vec![0u64, 10_000]),
        lateness in prop::sample::select(vec![0u64, 30_000]),
        counting in prop::sample::select(vec![Counting::Exact, Counting::Approximate]),
    ) {
        let config = config(ooo, lateness, counting);
        let n = events.len();
        let checkpoint_at = (at.0 * n as f64) as usize;
        let crash = checkpoint_at + ((n - checkpoint_at) as f64 * at.1) as usize;

        let mut whole = Output::default();
        let mut engine = PartitionEngine::new(&config).unwrap();
        feed(&mut engine, &events, 0, n, &mut whole);
        engine.flush(&mut whole);
        let whole_stats = engine.stats();

        let mut first = Output::default();
        let mut engine = PartitionEngine::new(&config).unwrap();
        feed(&mut engine, &events, 0, checkpoint_at, &mut first);
        let checkpoint: Checkpoint = engine.checkpoint();
        // Work done after the checkpoint and lost in the crash.
        feed(&mut engine, &events, checkpoint_at, crash, &mut Output::default());
        drop(engine);

        // The checkpoint survives a trip through its stored form.
        let stored = serde_json::to_string(&checkpoint).unwrap();
        let checkpoint: Checkpoint = serde_json::from_str(&stored).unwrap();
        let mut restored = PartitionEngine::restore(&config, &checkpoint).unwrap();
        let mut second = Output::default();
        feed(&mut restored, &events, checkpoint.resume_offset as usize, n, &mut second);
        restored.flush(&mut second);

        first.results.extend(second.results);
        first.late.extend(second.late);
        prop_assert_eq!(sorted(&first), sorted(&whole));
        prop_assert_eq!(restored.stats(), whole_stats);
    }

    /// A second crash while the restored engine is still replaying loses nothing either.
    #[test]
    fn a_crash_during_replay_is_safe(events in stream(15_000, 11), at in (0.0f64..=1.0, 0.0f64..=1.0)) {
        let config = config(10_000, 0, Counting::Exact);
        let n = events.len();
        let checkpoint_at = (at.0 * n as f64) as usize;
        let mut whole = Output::default();
        let mut engine = PartitionEngine::new(&config).unwrap();
        feed(&mut engine, &events, 0, n, &mut whole);
        engine.flush(&mut whole);

        let mut first = Output::default();
        let mut engine = PartitionEngine::new(&config).unwrap();
        feed(&mut engine, &events, 0, checkpoint_at, &mut first);
        let checkpoint = engine.checkpoint();

        let resume = checkpoint.resume_offset as usize;
        let mid = resume + ((checkpoint_at.saturating_sub(resume)) as f64 * at.1) as usize;
        let mut replaying = PartitionEngine::restore(&config, &checkpoint).unwrap();
        let mut lost = Output::default();
        feed(&mut replaying, &events, resume, mid, &mut lost);
        prop_assert!(lost.is_empty(), "replay below the checkpoint emits nothing");
        let second_checkpoint = replaying.checkpoint();
        prop_assert_eq!(&second_checkpoint, &checkpoint);

        let mut again = PartitionEngine::restore(&config, &second_checkpoint).unwrap();
        let mut second = Output::default();
        feed(&mut again, &events, second_checkpoint.resume_offset as usize, n, &mut second);
        again.flush(&mut second);
        first.results.extend(second.results);
        first.late.extend(second.late);
        prop_assert_eq!(sorted(&first), sorted(&whole));
    }

    /// Splitting by product over any number of partitions changes nothing when no event is late.
    #[test]
    fn results_do_not_depend_on_the_partition_count(events in stream(10_000, 0), partitions in 1u32..6) {
        let config = config(10_000, 0, Counting::Exact);
        let mut single = PartitionEngine::new(&config).unwrap();
        let mut one = Output::default();
        feed(&mut single, &events, 0, events.len(), &mut one);
        single.flush(&mut one);

        let mut engines: Vec<PartitionEngine> =
            (0..partitions).map(|_| PartitionEngine::new(&config).unwrap()).collect();
        let mut offsets = vec![0u64; partitions as usize];
        let mut many = Output::default();
        for e in &events {
            let event = e.event();
            let p = partition_for(event.product_id.as_bytes(), partitions) as usize;
            engines[p].process(offsets[p], &event, &mut many);
            offsets[p] += 1;
        }
        for engine in &mut engines {
            engine.flush(&mut many);
        }
        prop_assert_eq!(sorted(&many), sorted(&one));
    }

    /// The approximate mode stays within its stated error of the exact count.
    #[test]
    fn approximate_counts_stay_within_the_stated_error(
        users in prop::collection::vec(1usize..30_000, 1..4),
        salt in any::<u64>(),
    ) {
        let config = config(0, 0, Counting::Approximate);
        let mut engine = PartitionEngine::new(&config).unwrap();
        let mut out = Output::default();
        let mut offset = 0;
        for (product, &n) in users.iter().enumerate() {
            for u in 0..n {
                let event = Event {
                    user_id: Cow::Owned(format!("user-{salt}-{u}")),
                    product_id: Cow::Owned(format!("p{product}")),
                    event_type: Cow::Borrowed("VIEW_PRODUCT"),
                    timestamp_ms: BASE,
                };
                engine.process(offset, &event, &mut out);
                offset += 1;
            }
        }
        engine.flush(&mut out);
        for r in &out.results {
            let product: usize = r.product_id[1..].parse().unwrap();
            let exact = users[product] as f64;
            let error = (r.unique_users as f64 - exact).abs();
            // 4 standard errors of the dense sketch (0.81 % each); near exact while sparse.
            prop_assert!(r.approximate);
            prop_assert!(error <= (0.0324 * exact).max(2.0), "exact {} estimate {}", exact, r.unique_users);
        }
    }

    /// The batch path computes exactly what the event-by-event path computes.
    #[test]
    fn batches_equal_single_events(
        events in stream(20_000, 7),
        chunk in 1usize..64,
        lateness in prop::sample::select(vec![0u64, 30_000]),
        counting in prop::sample::select(vec![Counting::Exact, Counting::Approximate]),
    ) {
        let config = config(10_000, lateness, counting);
        let mut single = PartitionEngine::new(&config).unwrap();
        let mut one = Output::default();
        feed(&mut single, &events, 0, events.len(), &mut one);
        single.flush(&mut one);

        let mut batched = PartitionEngine::new(&config).unwrap();
        let mut many = Output::default();
        let all: Vec<(u64, Event<'static>)> =
            events.iter().enumerate().map(|(i, e)| (i as u64, e.event())).collect();
        for batch in all.chunks(chunk) {
            batched.process_batch(batch, &mut many);
        }
        batched.flush(&mut many);
        prop_assert_eq!(&many.results, &one.results);
        prop_assert_eq!(&many.late, &one.late);
        prop_assert_eq!(batched.stats(), single.stats());
    }
}
