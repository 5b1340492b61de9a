//! Interned ids: each distinct string of a partition gets a small integer for as long as some
//! window in state refers to it.
//!
//! Windows then hold plain `u32`s, so that an exact unique-user set is four bytes per member
//! and a membership test never compares strings; the string comparison happens once per event,
//! here, against one table that every window shares.
//!
//! The table is open addressing with linear probing over 16-byte slots, so that a lookup
//! costs one cache miss: the first word holds 24 hash bits, the length and the id, the second
//! holds the string itself when it is at most 8 bytes long, or its place in a byte arena.
//! Which ids are still referred to is the caller's knowledge: [`Interner::sweep`] takes it
//! as a set, drops the rest, and renumbers densely when most of the id space is free.

/// The table grows past a 70 % load.
const MAX_LOAD_PERCENT: usize = 70;
/// Strings up to this long live in the slot itself.
const INLINE: usize = 8;

#[derive(Debug, Default)]
pub struct Interner {
    /// `[tag24 << 40 | len << 32 | (id + 1), payload]`; a zero first word is an empty slot.
    /// Length is a power of two (or zero).
    slots: Vec<[u64; 2]>,
    arena: Vec<u8>,
    /// Ids below `next_id` that are free for reuse, lowest last.
    free: Vec<u32>,
    next_id: u32,
    live: usize,
}

impl Interner {
    pub fn new() -> Self {
        Self::default()
    }

    /// The id of `bytes` (at most 255 bytes) whose 64-bit hash is `hash`. `None` only when
    /// four billion ids are live at once.
    #[inline]
    pub fn intern(&mut self, bytes: &[u8], hash: u64) -> Option<u32> {
        debug_assert!(bytes.len() <= u8::MAX as usize);
        if (self.live + 1) * 100 > self.slots.len() * MAX_LOAD_PERCENT {
            self.grow();
        }
        let at = match self.probe(bytes, hash) {
            Ok(id) => return Some(id),
            Err(empty) => empty,
        };
        let key = key_of(hash, bytes.len());
        let id = match self.free.pop() {
            Some(id) => id,
            None if self.next_id < u32::MAX => {
                self.next_id += 1;
                self.next_id - 1
            }
            None => return None,
        };
        let payload = match (bytes.len() <= INLINE).then(|| pack(bytes)) {
            Some(packed) => packed,
            None => {
                let offset = self.arena.len() as u64;
                self.arena.extend_from_slice(bytes);
                offset
            }
        };
        self.slots[at] = [key << 32 | u64::from(id + 1), payload];
        self.live += 1;
        Some(id)
    }

    /// The id of `bytes` if it has one, without adding it.
    #[inline]
    pub fn lookup(&self, bytes: &[u8], hash: u64) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        self.probe(bytes, hash).ok()
    }

    /// Asks the CPU to bring the home slot of `hash` into cache ahead of a lookup.
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        if !self.slots.is_empty() {
            super::prefetch::prefetch(&self.slots[position(hash, self.slots.len() - 1)]);
        }
    }

    /// The id of `bytes`, or the empty slot where it would go. The table must not be empty.
    #[inline]
    fn probe(&self, bytes: &[u8], hash: u64) -> Result<u32, usize> {
        let key = key_of(hash, bytes.len());
        let inline = (bytes.len() <= INLINE).then(|| pack(bytes));
        let mask = self.slots.len() - 1;
        let mut at = position(hash, mask);
        loop {
            let [head, payload] = self.slots[at];
            if head == 0 {
                return Err(at);
            }
            if head >> 32 == key {
                let found = match inline {
                    Some(packed) => payload == packed,
                    None => long_equal(&self.arena, payload, bytes),
                };
                if found {
                    return Ok((head as u32).wrapping_sub(1));
                }
            }
            at = (at + 1) & mask;
        }
    }

    /// The bytes of a live id (a scan of the table: for rare paths only).
    pub fn find_bytes(&self, id: u32) -> Option<Vec<u8>> {
        self.slots
            .iter()
            .find(|[head, _]| *head != 0 && (*head as u32).wrapping_sub(1) == id)
            .map(|&[head, payload]| {
                let len = ((head >> 32) & 0xFF) as usize;
                if len <= INLINE {
                    unpack(payload, len)
                } else {
                    self.arena[payload as usize..payload as usize + len].to_vec()
                }
            })
    }

    /// Keeps the ids for which `live` is true and frees the others, rebuilding the table and
    /// the arena. When most of the id space is then free, the kept ids are renumbered densely
    /// and the old-to-new map (indexed by old id) is returned: the caller must apply it to
    /// every id it holds.
    pub fn sweep(&mut self, live: impl Fn(u32) -> bool) -> Option<Vec<u32>> {
        let old_slots = std::mem::take(&mut self.slots);
        let old_arena = std::mem::take(&mut self.arena);
        let kept: Vec<[u64; 2]> = old_slots
            .into_iter()
            .filter(|[head, _]| *head != 0 && live((*head as u32).wrapping_sub(1)))
            .collect();
        self.live = kept.len();
        let capacity = table_capacity(kept.len());
        self.slots = vec![[0, 0]; capacity];
        self.arena = Vec::with_capacity(old_arena.len().min(kept.len() * 32));
        let compact = self.next_id as usize > 2 * kept.len() + 64;
        let mut remap = compact.then(|| vec![u32::MAX; self.next_id as usize]);
        let mut in_use = if compact {
            Vec::new()
        } else {
            vec![false; self.next_id as usize]
        };
        let mask = capacity - 1;
        for (new_id, [head, payload]) in kept.into_iter().enumerate() {
            let len = ((head >> 32) & 0xFF) as usize;
            let old_id = (head as u32).wrapping_sub(1);
            let payload = if len <= INLINE {
                payload
            } else {
                let offset = self.arena.len() as u64;
                let start = payload as usize;
                self.arena.extend_from_slice(&old_arena[start..start + len]);
                offset
            };
            let id = match remap.as_mut() {
                Some(remap) => {
                    remap[old_id as usize] = new_id as u32;
                    new_id as u32
                }
                None => {
                    in_use[old_id as usize] = true;
                    old_id
                }
            };
            let hash = if len <= INLINE {
                super::hash::hash_bytes(&unpack(payload, len))
            } else {
                super::hash::hash_bytes(&self.arena[payload as usize..payload as usize + len])
            };
            let mut at = position(hash, mask);
            while self.slots[at][0] != 0 {
                at = (at + 1) & mask;
            }
            self.slots[at] = [head & !0xFFFF_FFFF | u64::from(id + 1), payload];
        }
        if compact {
            self.next_id = self.live as u32;
            self.free.clear();
        } else {
            // Reuse the lowest free ids first, keeping the id space dense.
            self.free = (0..self.next_id)
                .rev()
                .filter(|&id| !in_use[id as usize])
                .collect();
        }
        remap
    }

    /// Ids in use.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// One more than the largest id handed out: the size of a table indexed by id.
    pub fn id_bound(&self) -> u32 {
        self.next_id
    }

    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * 16 + self.arena.capacity() + self.free.capacity() * 4
    }

    fn grow(&mut self) {
        let capacity = (self.slots.len() * 2).max(16);
        let mask = capacity - 1;
        let old = std::mem::replace(&mut self.slots, vec![[0, 0]; capacity]);
        for slot in old.into_iter().filter(|[head, _]| *head != 0) {
            let len = ((slot[0] >> 32) & 0xFF) as usize;
            let hash = if len <= INLINE {
                super::hash::hash_bytes(&unpack(slot[1], len))
            } else {
                super::hash::hash_bytes(&self.arena[slot[1] as usize..slot[1] as usize + len])
            };
            let mut at = position(hash, mask);
            while self.slots[at][0] != 0 {
                at = (at + 1) & mask;
            }
            self.slots[at] = slot;
        }
    }
}

/// The 32 bits compared before the string: 24 hash bits (the ones `position` does not use
/// first) and the length.
#[inline]
fn key_of(hash: u64, len: usize) -> u64 {
    (hash >> 40) << 8 | len as u64
}

#[inline]
fn position(hash: u64, mask: usize) -> usize {
    hash as usize & mask
}

#[inline]
fn pack(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word[..bytes.len()].copy_from_slice(bytes);
    u64::from_le_bytes(word)
}

fn unpack(payload: u64, len: usize) -> Vec<u8> {
    payload.to_le_bytes()[..len].to_vec()
}

#[inline]
fn long_equal(arena: &[u8], offset: u64, bytes: &[u8]) -> bool {
    let at = offset as usize;
    arena.get(at..at + bytes.len()) == Some(bytes)
}

fn table_capacity(live: usize) -> usize {
    let mut capacity = 16;
    while live * 100 > capacity * MAX_LOAD_PERCENT {
        capacity *= 2;
    }
    capacity
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::hash::hash_bytes;

    fn intern(i: &mut Interner, s: &str) -> u32 {
        i.intern(s.as_bytes(), hash_bytes(s.as_bytes())).unwrap()
    }

    #[test]
    fn the_same_string_gets_the_same_id_short_or_long() {
        let mut i = Interner::new();
        let names: Vec<String> = (0..5000)
            .map(|n| match n % 3 {
                0 => format!("u{n}"),
                1 => format!("{n:08}"),
                _ => format!("6f1c2a4e-{n:04}-4b7e-9f6a-2d3c4b5a6978"),
            })
            .collect();
        let ids: Vec<u32> = names.iter().map(|s| intern(&mut i, s)).collect();
        for (s, &id) in names.iter().zip(&ids) {
            assert_eq!(intern(&mut i, s), id);
            assert_eq!(i.find_bytes(id).as_deref(), Some(s.as_bytes()));
        }
        assert_eq!(i.len(), 5000);
        assert_eq!(ids.iter().copied().max(), Some(4999));
    }

    #[test]
    fn equal_hashes_are_told_apart_by_the_bytes() {
        let mut i = Interner::new();
        let long_a = "a".repeat(20);
        let long_b = "b".repeat(20);
        let ids: Vec<u32> = ["a", "b", "", long_a.as_str(), long_b.as_str(), "a\0"]
            .iter()
            .map(|s| i.intern(s.as_bytes(), 7).unwrap())
            .collect();
        let distinct: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), 6);
        assert_eq!(i.intern(b"a", 7), Some(ids[0]));
        assert_eq!(i.intern(long_b.as_bytes(), 7), Some(ids[4]));
    }

    #[test]
    fn sweep_keeps_the_live_ids_and_reuses_the_free_ones() {
        let mut i = Interner::new();
        let old = intern(&mut i, "old");
        let kept = intern(&mut i, "kept-and-long-enough");
        assert_eq!(
            i.sweep(|id| id == kept),
            None,
            "a small id space is not renumbered"
        );
        assert_eq!(i.len(), 1);
        assert_eq!(intern(&mut i, "kept-and-long-enough"), kept);
        let new = intern(&mut i, "new");
        assert_eq!(new, old, "a freed id is reused");
        assert_eq!(i.find_bytes(new).as_deref(), Some(&b"new"[..]));
    }

    #[test]
    fn a_mostly_free_id_space_is_renumbered_densely() {
        let mut i = Interner::new();
        for n in 0..1000 {
            intern(&mut i, &format!("u{n}"));
        }
        let a = intern(&mut i, "u999");
        let b = intern(&mut i, "a-long-user-id-0001");
        let remap = i
            .sweep(|id| id == a || id == b)
            .expect("998 of 1001 ids are free");
        assert_eq!(i.len(), 2);
        let (a, b) = (remap[a as usize], remap[b as usize]);
        assert_eq!(
            [a, b]
                .iter()
                .copied()
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            2
        );
        assert!(a < 2 && b < 2);
        assert_eq!(intern(&mut i, "u999"), a);
        assert_eq!(intern(&mut i, "a-long-user-id-0001"), b);
        assert_eq!(intern(&mut i, "u5"), 2);
        assert!(i.heap_bytes() < 1024);
    }
}
