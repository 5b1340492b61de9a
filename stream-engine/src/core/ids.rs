//! Small open-addressing containers of interned ids: the exact (product, user) pairs of a
//! minute and its product-to-window map. Keys are dense small integers, so Fibonacci hashing
//! of the key is all the hashing they need, and a slot is eight bytes.

/// Slots are resized past a 75 % load (the small maps).
#[inline]
fn over_load(len: usize, capacity: usize) -> bool {
    len * 4 >= capacity * 3
}

/// The pair sets take most inserts as new keys, whose linear probe runs to an empty slot:
/// they are kept at most half full, where such a probe averages 2.5 slots (8.5 at 75 %).
#[inline]
fn over_half(len: usize, capacity: usize) -> bool {
    len * 2 >= capacity
}

#[inline]
fn home(id: u32, shift: u32) -> usize {
    home_of(u64::from(id), shift)
}

/// A set of non-zero `u64` keys: the (product, user) pairs of a minute in exact mode.
#[derive(Debug, Default, Clone)]
pub struct KeySet {
    /// Keys, 0 for empty. Length is a power of two (or zero).
    slots: Vec<u64>,
    len: usize,
    /// `64 - log2(slots.len())`.
    shift: u32,
}

impl KeySet {
    pub fn new() -> Self {
        Self::default()
    }

    /// A set that holds `len` keys before it grows.
    pub fn with_expected(len: usize) -> Self {
        let mut set = Self::default();
        set.reserve(len);
        set
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Inserts a non-zero `key`; returns whether it was new.
    #[inline]
    pub fn insert(&mut self, key: u64) -> bool {
        debug_assert_ne!(key, 0);
        if over_half(self.len + 1, self.slots.len()) {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut at = home_of(key, self.shift);
        loop {
            let slot = self.slots[at];
            if slot == key {
                return false;
            }
            if slot == 0 {
                self.slots[at] = key;
                self.len += 1;
                return true;
            }
            at = (at + 1) & mask;
        }
    }

    /// Asks the CPU to bring the home slot of `key` into cache ahead of an insert.
    #[inline]
    pub fn prefetch(&self, key: u64) {
        if let Some(slot) = self.slots.get(home_of(key, self.shift)) {
            super::prefetch::prefetch(slot);
        }
    }

    /// The keys, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.slots.iter().copied().filter(|&s| s != 0)
    }

    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * 8
    }

    /// Replaces every key by `f(key)`, which must be non-zero and distinct for distinct keys.
    pub fn remap(&mut self, f: impl Fn(u64) -> u64) {
        let old = std::mem::take(self);
        self.reserve(old.len);
        for key in old.iter() {
            self.insert(f(key));
        }
    }

    fn reserve(&mut self, len: usize) {
        let mut capacity = self.slots.len().max(16);
        while over_half(len, capacity) {
            capacity *= 2;
        }
        if capacity > self.slots.len() {
            self.grow_to(capacity);
        }
    }

    fn grow(&mut self) {
        self.grow_to((self.slots.len() * 2).max(16));
    }

    fn grow_to(&mut self, capacity: usize) {
        let old = std::mem::replace(&mut self.slots, vec![0; capacity]);
        self.shift = 64 - capacity.trailing_zeros();
        let mask = capacity - 1;
        for key in old.into_iter().filter(|&k| k != 0) {
            let mut at = home_of(key, self.shift);
            while self.slots[at] != 0 {
                at = (at + 1) & mask;
            }
            self.slots[at] = key;
        }
    }
}

#[inline]
fn home_of(key: u64, shift: u32) -> usize {
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> shift) as usize
}

/// A map from ids to `u32` values.
#[derive(Debug, Default, Clone)]
pub struct IdMap {
    /// `(id + 1) << 32 | value`, 0 for empty.
    slots: Vec<u64>,
    len: u32,
    shift: u32,
}

impl IdMap {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A map that holds `len` entries before it grows.
    pub fn with_expected(len: usize) -> Self {
        let mut map = Self::default();
        while over_load(len, map.slots.len()) {
            map.grow();
        }
        map
    }

    #[inline]
    pub fn get(&self, id: u32) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        let key = u64::from(id + 1) << 32;
        let mask = self.slots.len() - 1;
        let mut at = home(id, self.shift);
        loop {
            let slot = self.slots[at];
            if slot == 0 {
                return None;
            }
            if slot & !0xFFFF_FFFF == key {
                return Some(slot as u32);
            }
            at = (at + 1) & mask;
        }
    }

    /// Inserts `id` (below `u32::MAX`), which must not be present.
    #[inline]
    pub fn insert_new(&mut self, id: u32, value: u32) {
        if over_load(self.len as usize + 1, self.slots.len()) {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut at = home(id, self.shift);
        while self.slots[at] != 0 {
            at = (at + 1) & mask;
        }
        self.slots[at] = u64::from(id + 1) << 32 | u64::from(value);
        self.len += 1;
    }

    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * 8
    }

    /// The `(id, value)` pairs, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.slots
            .iter()
            .filter(|&&s| s != 0)
            .map(|&s| ((s >> 32) as u32 - 1, s as u32))
    }

    /// Replaces every key `id` by `map[id]`.
    pub fn remap(&mut self, map: &[u32]) {
        let old = std::mem::take(self);
        for (id, value) in old.iter() {
            if let Some(&new) = map.get(id as usize) {
                self.insert_new(new, value);
            }
        }
    }

    fn grow(&mut self) {
        let capacity = (self.slots.len() * 2).max(8);
        let old = std::mem::replace(&mut self.slots, vec![0; capacity]);
        self.shift = 64 - capacity.trailing_zeros();
        let mask = capacity - 1;
        for slot in old.into_iter().filter(|&s| s != 0) {
            let mut at = home((slot >> 32) as u32 - 1, self.shift);
            while self.slots[at] != 0 {
                at = (at + 1) & mask;
            }
            self.slots[at] = slot;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    #[test]
    fn set_matches_a_hash_set() {
        let mut set = KeySet::new();
        let mut model = HashSet::new();
        let mut x = 12345u64;
        for _ in 0..50_000 {
            x = (x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1) >> 20) % 70_000 + 1;
            set.prefetch(x);
            assert_eq!(set.insert(x), model.insert(x));
        }
        assert_eq!(set.len(), model.len());
        assert_eq!(set.iter().collect::<HashSet<_>>(), model);
        assert!(set.insert(u64::MAX));
        assert!(!set.insert(u64::MAX));

        set.remap(|k| k ^ (1 << 40));
        assert_eq!(set.len(), model.len() + 1);
        assert!(!set.insert(x ^ (1 << 40)));
        assert!(set.insert(x));
    }

    #[test]
    fn map_matches_a_hash_map() {
        let mut map = IdMap::new();
        let mut model = HashMap::new();
        assert_eq!(map.get(3), None);
        for id in (0..20_000u32).map(|i| i.wrapping_mul(7919) % 100_003) {
            if model.contains_key(&id) {
                continue;
            }
            map.insert_new(id, id ^ 0xABCD);
            model.insert(id, id ^ 0xABCD);
        }
        for id in 0..100_003u32 {
            assert_eq!(map.get(id), model.get(&id).copied());
        }
        assert_eq!(map.len(), model.len());
    }
}
