//! Interned ids: each distinct string of a partition gets a small integer for as long as some
//! window in state refers to it.
//!
//! The windows then hold plain `u32`s, so that an exact unique-user set is four bytes per
//! member and a membership test never compares strings; the string comparison happens once
//! per event, here, against a table that every window shares and that therefore stays in cache.
//!
//! Layout: an open-addressing table of `u64` slots (32 hash bits and the id, zero for empty)
//! probed linearly, entries indexed by id (where the bytes are and the newest window that used
//! them), and one byte arena. [`Interner::sweep`] frees the ids no window can refer to any more
//! and compacts the arena; freed ids are reused.

/// An id that is not in use.
const DEAD: u64 = u64::MAX;
/// Slots per entry at most: the table grows past a 70 % load.
const MAX_LOAD_PERCENT: usize = 70;

#[derive(Debug, Default)]
pub struct Interner {
    /// `tag << 32 | (id + 1)`; 0 is an empty slot. Length is a power of two (or zero).
    slots: Vec<u64>,
    entries: Vec<Entry>,
    arena: Vec<u8>,
    free: Vec<u32>,
    live: usize,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// `offset << 8 | len` into the arena, or [`DEAD`].
    place: u64,
    /// Start of the newest window that used the id.
    last_start: i64,
}

impl Interner {
    pub fn new() -> Self {
        Self::default()
    }

    /// The id of `bytes` (at most 255 bytes) whose hash is `hash`, marking it used by the
    /// window starting at `start`. `None` only when four billion ids are live at once.
    #[inline]
    pub fn intern(&mut self, bytes: &[u8], hash: u64, start: i64) -> Option<u32> {
        debug_assert!(bytes.len() <= u8::MAX as usize);
        if (self.live + 1) * 100 > self.slots.len() * MAX_LOAD_PERCENT {
            self.grow();
        }
        let tag = hash >> 32;
        let mask = self.slots.len() - 1;
        let mut at = position(tag, mask);
        loop {
            let slot = self.slots[at];
            if slot == 0 {
                break;
            }
            if slot >> 32 == tag {
                let id = (slot as u32).wrapping_sub(1);
                let entry = &mut self.entries[id as usize];
                if bytes_equal(member(&self.arena, entry.place), bytes) {
                    entry.last_start = entry.last_start.max(start);
                    return Some(id);
                }
            }
            at = (at + 1) & mask;
        }
        let place = (self.arena.len() as u64) << 8 | bytes.len() as u64;
        let entry = Entry {
            place,
            last_start: start,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.entries[id as usize] = entry;
                id
            }
            None => {
                let id = u32::try_from(self.entries.len())
                    .ok()
                    .filter(|&id| id < u32::MAX)?;
                self.entries.push(entry);
                id
            }
        };
        self.arena.extend_from_slice(bytes);
        self.slots[at] = tag << 32 | u64::from(id + 1);
        self.live += 1;
        Some(id)
    }

    /// The bytes of a live id.
    pub fn get(&self, id: u32) -> &[u8] {
        match self.entries.get(id as usize) {
            Some(e) if e.place != DEAD => member(&self.arena, e.place),
            _ => &[],
        }
    }

    /// Frees every id last used by a window starting before `oldest_start`, the oldest window
    /// still in state: no window can refer to them. Rebuilds the table and the arena.
    ///
    /// When more than half of the id space is then free, the live ids are renumbered densely
    /// and the old-to-new map is returned: the caller must apply it to every id it holds.
    pub fn sweep(&mut self, oldest_start: i64) -> Option<Vec<u32>> {
        let mut live = 0;
        for entry in &mut self.entries {
            if entry.place != DEAD && entry.last_start < oldest_start {
                entry.place = DEAD;
            }
            live += usize::from(entry.place != DEAD);
        }
        let compact = self.entries.len() > 2 * live + 64;
        let mut remap = compact.then(|| vec![u32::MAX; self.entries.len()]);
        let old_arena = std::mem::take(&mut self.arena);
        let old_entries = std::mem::take(&mut self.entries);
        let capacity = table_capacity(live);
        self.slots = vec![0u64; capacity];
        self.arena = Vec::with_capacity(old_arena.len().min(live * 16));
        self.entries = Vec::with_capacity(if compact { live } else { old_entries.len() });
        self.free.clear();
        self.live = 0;
        let mask = capacity - 1;
        for (old_id, entry) in old_entries.into_iter().enumerate() {
            if entry.place == DEAD {
                if !compact {
                    self.free.push(old_id as u32);
                    self.entries.push(entry);
                }
                continue;
            }
            let bytes = member(&old_arena, entry.place);
            let id = self.entries.len() as u32;
            if let Some(remap) = remap.as_mut() {
                remap[old_id] = id;
            }
            self.entries.push(Entry {
                place: (self.arena.len() as u64) << 8 | bytes.len() as u64,
                last_start: entry.last_start,
            });
            self.arena.extend_from_slice(bytes);
            let tag = super::hash::hash_bytes(bytes) >> 32;
            let mut at = position(tag, mask);
            while self.slots[at] != 0 {
                at = (at + 1) & mask;
            }
            self.slots[at] = tag << 32 | (u64::from(id) + 1);
            self.live += 1;
        }
        // Reuse the lowest free ids first, keeping the id space dense.
        self.free.reverse();
        remap
    }

    /// Ids in use.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * 8
            + self.entries.capacity() * std::mem::size_of::<Entry>()
            + self.arena.capacity()
            + self.free.capacity() * 4
    }

    fn grow(&mut self) {
        let capacity = (self.slots.len() * 2).max(16);
        let mask = capacity - 1;
        let mut slots = vec![0u64; capacity];
        for &slot in &self.slots {
            if slot != 0 {
                let mut at = position(slot >> 32, mask);
                while slots[at] != 0 {
                    at = (at + 1) & mask;
                }
                slots[at] = slot;
            }
        }
        self.slots = slots;
    }
}

fn table_capacity(live: usize) -> usize {
    let mut capacity = 16;
    while live * 100 > capacity * MAX_LOAD_PERCENT {
        capacity *= 2;
    }
    capacity
}

/// The home slot of 32 hash bits: Fibonacci hashing spreads them over the table.
#[inline]
fn position(tag: u64, mask: usize) -> usize {
    ((tag.wrapping_mul(0x9E37_79B9_7F4A_7C15)) >> 32) as usize & mask
}

#[inline]
fn member(arena: &[u8], place: u64) -> &[u8] {
    let at = (place >> 8) as usize;
    let len = (place & 0xFF) as usize;
    &arena[at..at + len]
}

/// Equality of short byte strings without a call into `memcmp`: ids are a few bytes long.
#[inline]
pub fn bytes_equal(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let n = a.len();
    if n >= 8 {
        let word =
            |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().unwrap_or_default());
        // Two (possibly overlapping) words cover 8..=16 bytes; longer ids compare the rest too.
        if word(a, 0) != word(b, 0) || word(a, n - 8) != word(b, n - 8) {
            return false;
        }
        return n <= 16 || a[8..n - 8] == b[8..n - 8];
    }
    let mut x = 0u64;
    let mut y = 0u64;
    for i in 0..n {
        x = x << 8 | u64::from(a[i]);
        y = y << 8 | u64::from(b[i]);
    }
    x == y
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::hash::hash_bytes;

    fn intern(i: &mut Interner, s: &str, start: i64) -> u32 {
        i.intern(s.as_bytes(), hash_bytes(s.as_bytes()), start)
            .unwrap()
    }

    #[test]
    fn the_same_string_gets_the_same_id() {
        let mut i = Interner::new();
        let ids: Vec<u32> = (0..5000)
            .map(|n| intern(&mut i, &format!("user-{n}"), 0))
            .collect();
        for (n, &id) in ids.iter().enumerate() {
            assert_eq!(intern(&mut i, &format!("user-{n}"), 0), id);
            assert_eq!(i.get(id), format!("user-{n}").as_bytes());
        }
        assert_eq!(i.len(), 5000);
    }

    #[test]
    fn equal_tags_are_told_apart_by_the_bytes() {
        let mut i = Interner::new();
        let a = i.intern(b"a", 7 << 32, 0).unwrap();
        let b = i.intern(b"b", 7 << 32, 0).unwrap();
        assert_ne!(a, b);
        assert_eq!(i.intern(b"a", 7 << 32, 0), Some(a));
        assert_eq!(i.intern(b"b", 7 << 32, 0), Some(b));
    }

    #[test]
    fn sweep_frees_old_ids_keeps_the_rest_and_reuses_ids() {
        let mut i = Interner::new();
        let old = intern(&mut i, "old", 0);
        let kept = intern(&mut i, "kept", 0);
        intern(&mut i, "kept", 60_000);
        assert_eq!(i.sweep(60_000), None, "a small id space is not renumbered");
        assert_eq!(i.len(), 1);
        assert_eq!(i.get(kept), b"kept");
        assert_eq!(i.get(old), b"");
        assert_eq!(intern(&mut i, "kept", 60_000), kept);
        let new = intern(&mut i, "new", 60_000);
        assert_eq!(new, old, "a freed id is reused");
        assert_eq!(i.get(new), b"new");
    }

    #[test]
    fn a_mostly_free_id_space_is_renumbered_densely() {
        let mut i = Interner::new();
        for n in 0..1000 {
            intern(&mut i, &format!("u{n}"), 0);
        }
        let late = intern(&mut i, "u999", 60_000);
        let fresh = intern(&mut i, "fresh", 60_000);
        let remap = i.sweep(60_000).expect("998 of 1001 ids are free");
        assert_eq!(i.len(), 2);
        let (a, b) = (remap[late as usize], remap[fresh as usize]);
        assert_eq!((a, b), (0, 1));
        assert_eq!(i.get(a), b"u999");
        assert_eq!(i.get(b), b"fresh");
        assert_eq!(intern(&mut i, "fresh", 60_000), 1);
        assert_eq!(intern(&mut i, "u5", 60_000), 2);
        assert!(i.heap_bytes() < 1024);
    }

    #[test]
    fn byte_equality_matches_slices() {
        let words: Vec<Vec<u8>> = (0..40)
            .map(|n| (0..n).map(|k| b'a' + (k % 3) as u8).collect())
            .collect();
        for a in &words {
            for b in &words {
                assert_eq!(bytes_equal(a, b), a == b);
            }
            for k in 0..a.len() {
                let mut c = a.clone();
                c[k] ^= 1;
                assert!(!bytes_equal(a, &c), "{a:?} at {k}");
            }
        }
    }
}
