//! The windowing state machine of one partition.
//!
//! Events go in with their offset; window results and late events come out in an [`Output`].
//! Time comes in only through event timestamps and [`PartitionEngine::tick`]; nothing here
//! reads a clock or touches I/O.
//!
//! State is a short list of *groups*, one per open window start, ascending; each group holds
//! the windows of the products with events in that minute. A typical partition has two or
//! three groups (the current minute and the ones still inside the out-of-orderness), so finding
//! an event's group is a scan of a few integers from the newest end, and firing a minute is
//! popping the front group.
//!
//! Product and user ids are interned per partition ([`Interner`]): the string comparisons of an
//! event happen against two shared tables, and the windows hold small integers. In exact mode a
//! group keeps one set of (product, user) pairs for the whole minute, so counting a user costs
//! one probe of one table. When a group leaves the state, the ids no remaining window refers to
//! are freed.
//!
//! [`PartitionEngine::process_batch`] is the fast path: it hashes a batch up front and
//! prefetches the table slots of events a few places ahead, so that their cache misses overlap
//! instead of queueing. Prefetching is only a hint: the batch path computes exactly what
//! [`PartitionEngine::process`] computes event by event.

use super::checkpoint::{Checkpoint, CheckpointError, EngineStats};
use super::config::{ConfigError, Counting, EngineConfig};
use super::decode::Event;
use super::hash::hash_bytes;
use super::hll::Hll;
use super::ids::{IdMap, KeySet};
use super::intern::Interner;
use super::prefetch::prefetch;
use super::result::{LateEvent, Output, WindowResult};
use super::time::{MINUTE_MS, window_start};

/// One partition's windows, watermark and progress.
#[derive(Debug)]
pub struct PartitionEngine {
    out_of_orderness_ms: i64,
    allowed_lateness_ms: i64,
    idle_timeout_ms: Option<i64>,
    counting: Counting,

    /// Open windows by start, ascending. Fired groups (kept for the allowed lateness) come first.
    groups: Vec<Group>,
    /// The smallest watermark at which some group fires or expires; `i64::MAX` when none.
    next_change_ms: i64,
    /// Product ids, shared by all groups.
    products: Interner,
    /// User ids of the exact mode, shared by all windows.
    users: Interner,

    max_event_ms: Option<i64>,
    watermark_ms: Option<i64>,
    /// Highest offset processed, over every life of this partition.
    highest_offset: Option<u64>,
    /// Last offset handed to this instance; offsets at or below it are duplicates.
    last_seen: Option<u64>,
    /// After a restore: the checkpoint, kept while offsets up to its highest are replayed.
    rebuilding: Option<Checkpoint>,

    idle: IdleClock,
    stats: EngineStats,
    /// The batch path's hashes and ids, kept to reuse the allocation.
    scratch: Vec<Ahead>,
    /// Interner sweeps so far: ids found before a sweep may have been freed by it.
    sweeps: u64,
    /// Size of the last group to leave the state: new minutes are sized like it.
    last_group: (usize, usize),
}

#[derive(Debug)]
struct Group {
    start_ms: i64,
    /// Emitted at least once; later events re-fire it (only within the allowed lateness).
    fired: bool,
    /// Offset of the first event in the group: offsets are increasing, so the smallest.
    first_offset: u64,
    /// Interned product id to index in `windows`.
    index: IdMap,
    windows: Vec<Window>,
    /// Exact mode: every (product, user) pair of the minute, as [`pair`] keys.
    pairs: KeySet,
}

#[derive(Debug)]
struct Window {
    product: u32,
    product_id: Box<str>,
    users: Users,
    events: u64,
}

#[derive(Debug)]
enum Users {
    /// Distinct users, counted as the group's pair set grows.
    Exact(u64),
    Approximate(Hll),
}

/// The two hashes an event needs, computed once.
#[derive(Debug, Clone, Copy, Default)]
struct Hashes {
    product: u64,
    user: u64,
}

impl Hashes {
    #[inline]
    fn of(event: &Event<'_>) -> Self {
        Hashes {
            product: hash_bytes(event.product_id.as_bytes()),
            user: hash_bytes(event.user_id.as_bytes()),
        }
    }
}

/// The key of a (product, user) pair; never zero.
#[inline]
fn pair(product: u32, user: u32) -> u64 {
    (u64::from(product) + 1) << 32 | u64::from(user)
}

/// How far ahead of a lookup the batch path prefetches an interner slot.
const LOOKUP_AHEAD: usize = 32;
/// How far ahead of applying an event the batch path prefetches its window and pair slot.
const PAIR_AHEAD: usize = 16;

/// What the batch path works out about an event before applying it.
#[derive(Debug, Clone, Copy)]
struct Ahead {
    hashes: Hashes,
    known: Known,
}

/// Ids of an event found ahead of applying it, valid while no sweep has run since.
#[derive(Debug, Clone, Copy)]
struct Known {
    sweeps: u64,
    product: Option<u32>,
    user: Option<u32>,
}

impl Known {
    const NOTHING: Known = Known {
        sweeps: u64::MAX,
        product: None,
        user: None,
    };
}

#[derive(Debug, Default)]
struct IdleClock {
    /// Processing time of the first tick after the latest event, and the watermark then.
    last_activity: Option<(i64, Option<i64>)>,
    events_since_tick: bool,
}

impl PartitionEngine {
    /// A partition that has seen nothing.
    pub fn new(config: &EngineConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let ms = |d: std::time::Duration| d.as_millis() as i64; // bounded by validate()
        Ok(PartitionEngine {
            out_of_orderness_ms: ms(config.out_of_orderness),
            allowed_lateness_ms: ms(config.allowed_lateness),
            idle_timeout_ms: config.idle_timeout.map(ms),
            counting: config.counting,
            groups: Vec::new(),
            next_change_ms: i64::MAX,
            products: Interner::new(),
            users: Interner::new(),
            max_event_ms: None,
            watermark_ms: None,
            highest_offset: None,
            last_seen: None,
            rebuilding: None,
            idle: IdleClock::default(),
            stats: EngineStats::default(),
            scratch: Vec::new(),
            sweeps: 0,
            last_group: (0, 0),
        })
    }

    /// A partition resuming from `checkpoint`. Feed it the input from
    /// `checkpoint.resume_offset` on: offsets up to `checkpoint.highest_offset` rebuild the
    /// open windows without emitting or counting anything (their results were emitted before
    /// the checkpoint was taken, and closed windows are never re-fired), and processing is
    /// normal from the next offset. The results then equal those of an uninterrupted run.
    pub fn restore(config: &EngineConfig, checkpoint: &Checkpoint) -> Result<Self, RestoreError> {
        checkpoint.validate()?;
        let mut engine = PartitionEngine::new(config)?;
        engine.max_event_ms = checkpoint.max_event_time_ms;
        engine.watermark_ms = checkpoint.watermark_ms;
        engine.highest_offset = checkpoint.highest_offset;
        engine.stats = checkpoint.stats;
        if checkpoint.highest_offset.is_some() {
            engine.rebuilding = Some(checkpoint.clone());
        }
        Ok(engine)
    }

    /// Processes the event at `offset`. Offsets must increase from call to call (as in a
    /// Kafka partition); an offset at or below the last one is a duplicate and is ignored.
    #[inline]
    pub fn process(&mut self, offset: u64, event: &Event<'_>, out: &mut Output) {
        self.apply(offset, event, Hashes::of(event), Known::NOTHING, out);
    }

    /// Processes a batch of `(offset, event)`, offsets increasing: the same as calling
    /// [`PartitionEngine::process`] for each, faster.
    ///
    /// The batch goes through in phases, each a tight loop over the whole batch so that the
    /// CPU overlaps many cache misses: hash the ids; look up the product ids; look up the user
    /// ids; apply the events in order. Lookups change nothing: an id not found yet (a new
    /// product or user) is interned when its event is applied.
    pub fn process_batch(&mut self, batch: &[(u64, Event<'_>)], out: &mut Output) {
        let mut ahead = std::mem::take(&mut self.scratch);
        ahead.clear();
        let sweeps = self.sweeps;
        ahead.extend(batch.iter().map(|(_, e)| Ahead {
            hashes: Hashes::of(e),
            known: Known {
                sweeps,
                product: None,
                user: None,
            },
        }));
        for i in 0..batch.len() {
            if let Some(a) = ahead.get(i + LOOKUP_AHEAD) {
                self.products.prefetch(a.hashes.product);
            }
            let id = batch[i].1.product_id.as_bytes();
            ahead[i].known.product = self.products.lookup(id, ahead[i].hashes.product);
        }
        if self.counting == Counting::Exact {
            for i in 0..batch.len() {
                if let Some(a) = ahead.get(i + LOOKUP_AHEAD) {
                    self.users.prefetch(a.hashes.user);
                }
                let id = batch[i].1.user_id.as_bytes();
                ahead[i].known.user = self.users.lookup(id, ahead[i].hashes.user);
            }
        }
        for i in 0..batch.len() {
            if let (Some((_, event)), Some(a)) =
                (batch.get(i + PAIR_AHEAD), ahead.get(i + PAIR_AHEAD))
            {
                self.prefetch_state(event, &a.known);
            }
            let (offset, event) = &batch[i];
            self.apply(*offset, event, ahead[i].hashes, ahead[i].known, out);
        }
        self.scratch = ahead;
    }

    /// Brings into cache what applying an event with these ids will touch: its window, and
    /// in exact mode its pair slot.
    #[inline]
    fn prefetch_state(&self, event: &Event<'_>, known: &Known) {
        if known.sweeps != self.sweeps {
            return;
        }
        let Some(product) = known.product else {
            return;
        };
        let start = window_start(event.timestamp_ms);
        if let Some(group) = self.groups.iter().rev().find(|g| g.start_ms == start) {
            if let Some(w) = group.index.get(product) {
                prefetch(&group.windows[w as usize]);
            }
            if let Some(user) = known.user {
                group.pairs.prefetch(pair(product, user));
            }
        }
    }

    #[inline]
    fn apply(
        &mut self,
        offset: u64,
        event: &Event<'_>,
        hashes: Hashes,
        known: Known,
        out: &mut Output,
    ) {
        let known = if known.sweeps == self.sweeps {
            known
        } else {
            Known::NOTHING
        };
        match self.admit(offset) {
            Admission::Duplicate => {}
            Admission::Rebuild => self.rebuild(offset, event, hashes, known),
            Admission::New => self.process_new(offset, event, hashes, known, out),
        }
    }

    /// Records that the input at `offset` was not an event (it could not be decoded), so that
    /// the checkpoint moves past it. Returns `true` when the offset is seen for the first time
    /// (not a duplicate, not a replay): only then should the caller count or dead-letter it.
    pub fn skip(&mut self, offset: u64) -> bool {
        match self.admit(offset) {
            Admission::New => {
                self.highest_offset = Some(offset);
                true
            }
            Admission::Duplicate | Admission::Rebuild => false,
        }
    }

    /// Passes processing time (any monotonic clock, in milliseconds). When the partition has
    /// had no events for the idle timeout, its watermark advances with processing time from
    /// where it stood at the last event, so that its windows close even when input stops.
    ///
    /// Ticks during the replay after a restore are ignored: windows still being rebuilt must
    /// not close, and idleness is measured from the end of the replay.
    pub fn tick(&mut self, now_ms: i64, out: &mut Output) {
        let Some(timeout) = self.idle_timeout_ms else {
            return;
        };
        if self.rebuilding.is_some() {
            return;
        }
        let idle = &mut self.idle;
        match idle.last_activity {
            Some((since, base)) if !idle.events_since_tick => {
                let idle_for = now_ms.saturating_sub(since);
                if idle_for >= timeout
                    && let Some(base) = base
                {
                    self.advance_watermark(base.saturating_add(idle_for), out);
                }
            }
            _ => {
                idle.last_activity = Some((now_ms, self.watermark_ms));
                idle.events_since_tick = false;
            }
        }
    }

    /// End of a bounded input: fires every window still open.
    pub fn flush(&mut self, out: &mut Output) {
        for group in std::mem::take(&mut self.groups) {
            if !group.fired {
                self.emit_all(group, out);
            }
        }
        self.next_change_ms = i64::MAX;
        self.products = Interner::new();
        self.users = Interner::new();
        self.sweeps += 1;
    }

    /// Where to resume after a crash, and what has been reached. Taken after the results in
    /// every [`Output`] so far have been stored, it is a consistent resume point.
    pub fn checkpoint(&self) -> Checkpoint {
        if let Some(restored) = &self.rebuilding {
            // Not yet back to where the checkpoint was: resuming from here is resuming there.
            return restored.clone();
        }
        let next = self.highest_offset.map_or(0, |h| h + 1);
        let resume_offset = self
            .groups
            .iter()
            .map(|g| g.first_offset)
            .min()
            .unwrap_or(next);
        Checkpoint {
            version: Checkpoint::VERSION,
            resume_offset,
            highest_offset: self.highest_offset,
            max_event_time_ms: self.max_event_ms,
            watermark_ms: self.watermark_ms,
            stats: self.stats,
        }
    }

    pub fn watermark_ms(&self) -> Option<i64> {
        self.watermark_ms
    }

    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// Windows currently in state (open, or fired and kept for the allowed lateness).
    pub fn open_windows(&self) -> usize {
        self.groups.iter().map(|g| g.windows.len()).sum()
    }

    /// Heap bytes held by the window state (tables, ids, user sets and sketches).
    pub fn state_bytes(&self) -> usize {
        self.products.heap_bytes()
            + self.users.heap_bytes()
            + self.groups.capacity() * std::mem::size_of::<Group>()
            + self
                .groups
                .iter()
                .map(|g| {
                    g.index.heap_bytes()
                        + g.pairs.heap_bytes()
                        + g.windows.capacity() * std::mem::size_of::<Window>()
                        + g.windows
                            .iter()
                            .map(|w| w.product_id.len() + w.users.heap_bytes())
                            .sum::<usize>()
                })
                .sum::<usize>()
    }

    #[inline]
    fn admit(&mut self, offset: u64) -> Admission {
        if self.last_seen.is_some_and(|last| offset <= last) {
            return Admission::Duplicate;
        }
        self.last_seen = Some(offset);
        if let Some(restored) = &self.rebuilding {
            if let Some(highest) = restored.highest_offset
                && offset <= highest
            {
                if offset == highest {
                    // The replay is complete once this one is applied.
                    self.rebuilding = None;
                }
                return Admission::Rebuild;
            }
            self.rebuilding = None;
        }
        Admission::New
    }

    /// A replayed event below the checkpoint: aggregated if its window is still in state,
    /// otherwise already accounted for (fired, or counted late) and passed over.
    fn rebuild(&mut self, offset: u64, event: &Event<'_>, hashes: Hashes, known: Known) {
        let start = window_start(event.timestamp_ms);
        if self.is_closed(start) {
            return;
        }
        self.aggregate(offset, start, event, hashes, known);
    }

    #[inline]
    fn process_new(
        &mut self,
        offset: u64,
        event: &Event<'_>,
        hashes: Hashes,
        known: Known,
        out: &mut Output,
    ) {
        self.highest_offset = Some(offset);
        self.idle.events_since_tick = true;
        let ts = event.timestamp_ms;
        let start = window_start(ts);
        if self.is_closed(start) {
            self.stats.late += 1;
            out.late.push(LateEvent {
                offset,
                product_id: event.product_id.as_ref().into(),
                user_id: event.user_id.as_ref().into(),
                event_type: event.event_type.as_ref().into(),
                timestamp_ms: ts,
                watermark_ms: self.watermark_ms.unwrap_or(i64::MIN),
            });
            return;
        }
        self.stats.events += 1;
        let (group, window) = self.aggregate(offset, start, event, hashes, known);
        let group = &self.groups[group];
        if group.fired {
            // Within the allowed lateness: the window's corrected count replaces the old one.
            out.results.push(group.windows[window].result(start));
            self.stats.results += 1;
            self.stats.refires += 1;
        }
        if self.max_event_ms.is_none_or(|max| ts > max) {
            self.max_event_ms = Some(ts);
            self.advance_watermark(ts.saturating_sub(self.out_of_orderness_ms), out);
        }
    }

    /// Whether the window starting at `start` has fired and its state is gone.
    #[inline]
    fn is_closed(&self, start: i64) -> bool {
        self.watermark_ms
            .is_some_and(|wm| start + MINUTE_MS + self.allowed_lateness_ms <= wm)
    }

    /// Adds the event to its (product, window); returns the indexes of the group and window.
    #[inline]
    fn aggregate(
        &mut self,
        offset: u64,
        start: i64,
        event: &Event<'_>,
        hashes: Hashes,
        known: Known,
    ) -> (usize, usize) {
        let g = self.group_index(start, offset);
        // A product id is needed only while its windows are open; four billion of them at
        // once cannot be held in memory, so running out of ids is not a case to handle.
        let product = match known.product {
            Some(id) => id,
            None => self
                .products
                .intern(event.product_id.as_bytes(), hashes.product)
                .unwrap_or(u32::MAX - 1),
        };
        let group = &mut self.groups[g];
        let w = match group.index.get(product) {
            Some(w) => w as usize,
            None => {
                let w = group.windows.len();
                group.index.insert_new(product, w as u32);
                group.windows.push(Window {
                    product,
                    product_id: event.product_id.as_ref().into(),
                    users: Users::new(self.counting),
                    events: 0,
                });
                w
            }
        };
        let window = &mut group.windows[w];
        window.events += 1;
        match &mut window.users {
            Users::Exact(count) => match known
                .user
                .or_else(|| self.users.intern(event.user_id.as_bytes(), hashes.user))
            {
                Some(user) => *count += u64::from(group.pairs.insert(pair(product, user))),
                None => {
                    // Four billion live user ids: keep counting this window, approximately.
                    let mut hll = Hll::new();
                    for key in group
                        .pairs
                        .iter()
                        .filter(|&k| k >> 32 == u64::from(product) + 1)
                    {
                        let bytes = self.users.find_bytes(key as u32).unwrap_or_default();
                        hll.insert_hash(hash_bytes(&bytes));
                    }
                    hll.insert_hash(hashes.user);
                    window.users = Users::Approximate(hll);
                }
            },
            Users::Approximate(hll) => hll.insert_hash(hashes.user),
        }
        (g, w)
    }

    /// The index of the group for `start`, created if missing.
    #[inline]
    fn group_index(&mut self, start: i64, offset: u64) -> usize {
        let mut at = self.groups.len();
        while at > 0 {
            let s = self.groups[at - 1].start_ms;
            if s == start {
                return at - 1;
            }
            if s < start {
                break;
            }
            at -= 1;
        }
        // A window whose end the watermark already passed (possible within the allowed
        // lateness) counts as fired: its first event emits a result at once.
        let fired = self.watermark_ms.is_some_and(|wm| start + MINUTE_MS <= wm);
        // A new newest minute is likely as busy as the last one: size it so, once.
        let (windows, pairs) = if at == self.groups.len() {
            self.last_group
        } else {
            (0, 0)
        };
        self.groups.insert(
            at,
            Group {
                start_ms: start,
                fired,
                first_offset: offset,
                index: IdMap::with_expected(windows),
                windows: Vec::with_capacity(windows),
                pairs: KeySet::with_expected(pairs),
            },
        );
        self.recompute_next_change();
        at
    }

    fn advance_watermark(&mut self, candidate: i64, out: &mut Output) {
        if self.watermark_ms.is_some_and(|wm| candidate <= wm) {
            return;
        }
        self.watermark_ms = Some(candidate);
        if candidate < self.next_change_ms {
            return;
        }
        let wm = candidate;
        let mut at = 0;
        let mut removed = false;
        while at < self.groups.len() && self.groups[at].start_ms + MINUTE_MS <= wm {
            let expired = self.groups[at].start_ms + MINUTE_MS + self.allowed_lateness_ms <= wm;
            if expired {
                let group = self.groups.remove(at);
                self.last_group = (group.windows.len(), group.pairs.len());
                if !group.fired {
                    self.emit_all(group, out);
                }
                removed = true;
                continue;
            }
            let group = &mut self.groups[at];
            if !group.fired {
                group.fired = true;
                let start = group.start_ms;
                for w in group.windows.iter() {
                    out.results.push(w.result(start));
                }
                self.stats.results += group.windows.len() as u64;
            }
            at += 1;
        }
        self.recompute_next_change();
        if removed {
            self.free_unused_ids();
        }
    }

    /// Frees the product and user ids that no window in state refers to any more, and
    /// renumbers the pair keys when an interner renumbered its ids.
    fn free_unused_ids(&mut self) {
        self.sweeps += 1;
        let mut live = vec![false; self.products.id_bound() as usize];
        for (product, _) in self.groups.iter().flat_map(|g| g.index.iter()) {
            live[product as usize] = true;
        }
        let products = self.products.sweep(|id| live[id as usize]);
        if let Some(remap) = &products {
            for group in &mut self.groups {
                group.index.remap(remap);
                for window in &mut group.windows {
                    window.product = remap[window.product as usize];
                }
            }
        }
        let mut users = None;
        if self.counting == Counting::Exact {
            let mut live = vec![false; self.users.id_bound() as usize];
            for key in self.groups.iter().flat_map(|g| g.pairs.iter()) {
                live[key as u32 as usize] = true;
            }
            users = self.users.sweep(|id| live[id as usize]);
        }
        if products.is_some() || users.is_some() {
            let map = |ids: &Option<Vec<u32>>, id: u32| ids.as_ref().map_or(id, |m| m[id as usize]);
            for group in &mut self.groups {
                group.pairs.remap(|key| {
                    pair(
                        map(&products, (key >> 32) as u32 - 1),
                        map(&users, key as u32),
                    )
                });
            }
        }
    }

    /// Emits every window of a group leaving the state, moving the ids out.
    fn emit_all(&mut self, group: Group, out: &mut Output) {
        self.stats.results += group.windows.len() as u64;
        let start = group.start_ms;
        out.results.extend(group.windows.into_iter().map(|w| {
            let (unique_users, approximate) = w.users.count();
            WindowResult {
                product_id: w.product_id,
                window_start_ms: start,
                unique_users,
                events: w.events,
                approximate,
            }
        }));
    }

    fn recompute_next_change(&mut self) {
        self.next_change_ms = self
            .groups
            .iter()
            .map(|g| {
                let end = g.start_ms + MINUTE_MS;
                if g.fired {
                    end + self.allowed_lateness_ms
                } else {
                    end
                }
            })
            .min()
            .unwrap_or(i64::MAX);
    }
}

enum Admission {
    New,
    Rebuild,
    Duplicate,
}

/// Why a checkpoint could not be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl Window {
    fn result(&self, start: i64) -> WindowResult {
        let (unique_users, approximate) = self.users.count();
        WindowResult {
            product_id: self.product_id.clone(),
            window_start_ms: start,
            unique_users,
            events: self.events,
            approximate,
        }
    }
}

impl Users {
    fn new(counting: Counting) -> Self {
        match counting {
            Counting::Exact => Users::Exact(0),
            Counting::Approximate => Users::Approximate(Hll::new()),
        }
    }

    /// The count, and whether it is an estimate.
    fn count(&self) -> (u64, bool) {
        match self {
            Users::Exact(count) => (*count, false),
            Users::Approximate(hll) => (hll.estimate(), true),
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Users::Exact(_) => 0,
            Users::Approximate(hll) => hll.heap_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::time::Duration;

    use super::*;
    use crate::core::time::parse_rfc3339_ms;

    fn at(ts: &str) -> i64 {
        parse_rfc3339_ms(ts).unwrap()
    }

    fn event(product: &str, user: &str, ts: &str) -> Event<'static> {
        Event {
            user_id: Cow::Owned(user.into()),
            product_id: Cow::Owned(product.into()),
            event_type: Cow::Borrowed("VIEW_PRODUCT"),
            timestamp_ms: at(ts),
        }
    }

    fn engine(config: EngineConfig) -> PartitionEngine {
        PartitionEngine::new(&config).unwrap()
    }

    fn keys(out: &Output) -> Vec<(String, i64, u64, u64)> {
        let mut v: Vec<_> = out
            .results
            .iter()
            .map(|r| {
                (
                    r.product_id.to_string(),
                    r.window_start_ms,
                    r.unique_users,
                    r.events,
                )
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn an_event_at_a_window_end_opens_the_next_window() {
        let mut e = engine(EngineConfig::default());
        let mut out = Output::default();
        e.process(0, &event("p", "a", "2024-01-01T12:00:59.999Z"), &mut out);
        e.process(1, &event("p", "b", "2024-01-01T12:01:00Z"), &mut out);
        e.flush(&mut out);
        assert_eq!(
            keys(&out),
            vec![
                ("p".into(), at("2024-01-01T12:00:00Z"), 1, 1),
                ("p".into(), at("2024-01-01T12:01:00Z"), 1, 1),
            ]
        );
    }

    #[test]
    fn a_window_fires_when_the_watermark_reaches_its_end_exactly() {
        let mut e = engine(EngineConfig::default());
        let mut out = Output::default();
        e.process(0, &event("p", "a", "2024-01-01T12:00:30Z"), &mut out);
        e.process(1, &event("p", "b", "2024-01-01T12:00:40Z"), &mut out);
        e.process(2, &event("p", "a", "2024-01-01T12:00:50Z"), &mut out);
        // Watermark 12:00:59.999: one millisecond short.
        e.process(3, &event("q", "a", "2024-01-01T12:01:09.999Z"), &mut out);
        assert!(out.results.is_empty());
        // Watermark 12:01:00 = the window's end: it fires, final.
        e.process(4, &event("q", "b", "2024-01-01T12:01:10Z"), &mut out);
        assert_eq!(
            keys(&out),
            vec![("p".into(), at("2024-01-01T12:00:00Z"), 2, 3)]
        );
        assert_eq!(e.watermark_ms(), Some(at("2024-01-01T12:01:00Z")));
    }

    #[test]
    fn an_event_for_a_fired_window_is_late_and_not_counted() {
        let mut e = engine(EngineConfig::default());
        let mut out = Output::default();
        e.process(0, &event("p", "a", "2024-01-01T12:00:30Z"), &mut out);
        e.process(1, &event("p", "b", "2024-01-01T12:01:10Z"), &mut out);
        // Within the out-of-orderness of the newest event, but its window fired.
        e.process(2, &event("p", "c", "2024-01-01T12:00:59Z"), &mut out);
        assert_eq!(out.late.len(), 1);
        assert_eq!(out.late[0].offset, 2);
        assert_eq!(out.late[0].watermark_ms, at("2024-01-01T12:01:00Z"));
        e.flush(&mut out);
        assert_eq!(
            keys(&out)[0],
            ("p".into(), at("2024-01-01T12:00:00Z"), 1, 1)
        );
        assert_eq!(e.stats().late, 1);
        assert_eq!(e.stats().events, 2);
    }

    #[test]
    fn allowed_lateness_refires_with_the_corrected_count_then_expires() {
        let mut e = engine(EngineConfig {
            allowed_lateness: Duration::from_secs(30),
            ..EngineConfig::default()
        });
        let mut out = Output::default();
        e.process(0, &event("p", "a", "2024-01-01T12:00:30Z"), &mut out);
        e.process(1, &event("q", "a", "2024-01-01T12:01:10Z"), &mut out);
        assert_eq!(out.results.len(), 1);
        e.process(2, &event("p", "b", "2024-01-01T12:00:45Z"), &mut out);
        assert_eq!(out.results.len(), 2);
        assert_eq!(out.results[1].unique_users, 2);
        assert_eq!(e.stats().refires, 1);
        // Watermark 12:01:30 = end + lateness: the state is dropped, the next one is late.
        e.process(3, &event("q", "a", "2024-01-01T12:01:40Z"), &mut out);
        e.process(4, &event("p", "c", "2024-01-01T12:00:50Z"), &mut out);
        assert_eq!(out.late.len(), 1);
        assert_eq!(out.results.len(), 2);
    }

    #[test]
    fn idle_partitions_advance_with_processing_time() {
        let mut e = engine(EngineConfig {
            idle_timeout: Some(Duration::from_secs(30)),
            ..EngineConfig::default()
        });
        let mut out = Output::default();
        e.process(0, &event("p", "a", "2024-01-01T12:00:30Z"), &mut out);
        // Watermark 12:00:20; the window ends at 12:01:00, 40 s of event time away.
        e.tick(1_000, &mut out); // activity seen: the idle clock starts here
        e.tick(30_999, &mut out); // idle 29.999 s: below the timeout
        assert_eq!(e.watermark_ms(), Some(at("2024-01-01T12:00:20Z")));
        e.tick(31_000, &mut out); // idle 30 s: watermark 12:00:50
        assert_eq!(e.watermark_ms(), Some(at("2024-01-01T12:00:50Z")));
        assert!(out.results.is_empty());
        e.tick(41_000, &mut out); // idle 40 s: watermark 12:01:00, the window fires
        assert_eq!(
            keys(&out),
            vec![("p".into(), at("2024-01-01T12:00:00Z"), 1, 1)]
        );
        // New events stop the advance; the watermark never goes back.
        e.process(1, &event("p", "b", "2024-01-01T12:01:05Z"), &mut out);
        e.tick(50_000, &mut out);
        e.tick(60_000, &mut out);
        assert_eq!(e.watermark_ms(), Some(at("2024-01-01T12:01:00Z")));
    }

    #[test]
    fn idle_time_does_not_count_during_a_replay() {
        let config = EngineConfig {
            idle_timeout: Some(Duration::from_secs(30)),
            ..EngineConfig::default()
        };
        let mut e = engine(config.clone());
        let mut out = Output::default();
        e.process(0, &event("p", "a", "2024-01-01T12:00:30Z"), &mut out);
        e.process(1, &event("p", "b", "2024-01-01T12:00:31Z"), &mut out);
        let checkpoint = e.checkpoint();
        let mut restored = PartitionEngine::restore(&config, &checkpoint).unwrap();
        restored.process(0, &event("p", "a", "2024-01-01T12:00:30Z"), &mut out);
        // A long pause in the middle of the replay closes nothing: the window is half rebuilt.
        restored.tick(0, &mut out);
        restored.tick(100_000, &mut out);
        assert!(out.is_empty());
        restored.process(1, &event("p", "b", "2024-01-01T12:00:31Z"), &mut out);
        // Replay complete: idleness counts from here and the window closes with both users.
        restored.tick(200_000, &mut out);
        restored.tick(300_000, &mut out);
        assert_eq!(
            keys(&out),
            vec![("p".into(), at("2024-01-01T12:00:00Z"), 2, 2)]
        );
        assert_eq!(restored.checkpoint().highest_offset, Some(1));
    }

    #[test]
    fn without_an_idle_timeout_ticks_do_nothing() {
        let mut e = engine(EngineConfig::default());
        let mut out = Output::default();
        e.process(0, &event("p", "a", "2024-01-01T12:00:30Z"), &mut out);
        e.tick(0, &mut out);
        e.tick(10_000_000, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn duplicate_offsets_are_ignored() {
        let mut e = engine(EngineConfig::default());
        let mut out = Output::default();
        e.process(5, &event("p", "a", "2024-01-01T12:00:30Z"), &mut out);
        e.process(5, &event("p", "b", "2024-01-01T12:00:30Z"), &mut out);
        e.process(4, &event("p", "c", "2024-01-01T12:00:30Z"), &mut out);
        assert!(!e.skip(3));
        e.flush(&mut out);
        assert_eq!(
            keys(&out),
            vec![("p".into(), at("2024-01-01T12:00:00Z"), 1, 1)]
        );
    }

    #[test]
    fn the_checkpoint_resumes_at_the_oldest_offset_in_state() {
        let mut e = engine(EngineConfig::default());
        let mut out = Output::default();
        assert_eq!(e.checkpoint(), Checkpoint::initial());
        e.process(10, &event("p", "a", "2024-01-01T12:00:30Z"), &mut out);
        assert!(e.skip(11));
        e.process(12, &event("p", "b", "2024-01-01T12:01:05Z"), &mut out);
        let c = e.checkpoint();
        assert_eq!((c.resume_offset, c.highest_offset), (10, Some(12)));
        // The 12:00 window fires: the 12:01 window's first offset is the oldest needed.
        e.process(13, &event("q", "b", "2024-01-01T12:01:10Z"), &mut out);
        assert_eq!(e.checkpoint().resume_offset, 12);
        e.flush(&mut out);
        let c = e.checkpoint();
        assert_eq!((c.resume_offset, c.highest_offset), (14, Some(13)));
        assert_eq!(c.watermark_ms, Some(at("2024-01-01T12:01:00Z")));
    }

    #[test]
    fn a_skipped_offset_after_restore_is_reported_once() {
        let mut e = engine(EngineConfig::default());
        let mut out = Output::default();
        e.process(0, &event("p", "a", "2024-01-01T12:00:30Z"), &mut out);
        assert!(e.skip(1));
        let c = e.checkpoint();
        let mut r = PartitionEngine::restore(&EngineConfig::default(), &c).unwrap();
        r.process(0, &event("p", "a", "2024-01-01T12:00:30Z"), &mut out);
        assert!(
            !r.skip(1),
            "a replayed bad record was already dead-lettered"
        );
        assert!(r.skip(2));
    }

    #[test]
    fn bad_checkpoints_are_refused() {
        let config = EngineConfig::default();
        let mut c = Checkpoint::initial();
        c.version = 2;
        assert!(matches!(
            PartitionEngine::restore(&config, &c),
            Err(RestoreError::Checkpoint(CheckpointError::Version(2)))
        ));
        let mut c = Checkpoint::initial();
        c.resume_offset = 5;
        assert!(PartitionEngine::restore(&config, &c).is_err());
        let mut c = Checkpoint::initial();
        c.watermark_ms = Some(0);
        assert!(PartitionEngine::restore(&config, &c).is_err());
    }

    #[test]
    fn settings_beyond_a_week_are_refused() {
        let config = EngineConfig {
            out_of_orderness: Duration::from_secs(8 * 24 * 3600),
            ..EngineConfig::default()
        };
        assert_eq!(
            PartitionEngine::new(&config).unwrap_err().setting,
            "out_of_orderness"
        );
    }

    #[test]
    fn state_is_released_when_windows_fire() {
        let mut e = engine(EngineConfig::default());
        let mut out = Output::default();
        for i in 0..1000u64 {
            let user = format!("u{i}");
            e.process(i, &event("p", &user, "2024-01-01T12:00:30Z"), &mut out);
        }
        assert_eq!(e.open_windows(), 1);
        let before = e.state_bytes();
        assert!(before > 1000 * 8);
        e.process(1000, &event("q", "a", "2024-01-01T12:02:00Z"), &mut out);
        assert_eq!(e.open_windows(), 1);
        assert_eq!(e.users.len(), 1, "the users of the fired window are freed");
        assert!(e.state_bytes() < before / 20);
        // The live ids were renumbered: the window that holds them still counts right.
        for (offset, user) in [(1001, "a"), (1002, "b"), (1003, "u5"), (1004, "b")] {
            e.process(offset, &event("q", user, "2024-01-01T12:02:10Z"), &mut out);
        }
        out.clear();
        e.flush(&mut out);
        assert_eq!(
            keys(&out),
            vec![("q".into(), at("2024-01-01T12:02:00Z"), 3, 5)]
        );
    }

    #[test]
    fn freeing_and_renumbering_ids_keeps_counts_exact() {
        use crate::sample::{Sample, SampleConfig};
        use std::collections::{BTreeMap, BTreeSet};
        // Many users over ten minutes: ids are freed and renumbered at every minute boundary.
        let config = SampleConfig {
            events: 30_000,
            products: 40,
            users: 6_000,
            events_per_second: 50,
            ..SampleConfig::default()
        };
        let mut want: BTreeMap<(String, i64), (BTreeSet<u32>, u64)> = BTreeMap::new();
        let mut e = engine(EngineConfig::default());
        let mut out = Output::default();
        let mut batch = Vec::new();
        for (offset, s) in Sample::new(config).enumerate() {
            let w = want
                .entry((s.product_id(), window_start(s.timestamp_ms)))
                .or_default();
            w.0.insert(s.user);
            w.1 += 1;
            e.process(offset as u64, &s.to_event(), &mut out);
            batch.push((offset as u64, s.to_event()));
        }
        e.flush(&mut out);
        // The batch path, whose look-ahead ids must survive the sweeps between batches.
        let mut b = engine(EngineConfig::default());
        let mut batched = Output::default();
        for chunk in batch.chunks(100) {
            b.process_batch(chunk, &mut batched);
        }
        b.flush(&mut batched);
        assert_eq!(keys(&batched), keys(&out));
        let want: Vec<_> = want
            .into_iter()
            .map(|((p, start), (users, n))| (p, start, users.len() as u64, n))
            .collect();
        assert_eq!(keys(&out), want);
    }
}
