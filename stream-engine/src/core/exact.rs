//! An exact set of user ids, compact enough to hold one per open window.
//!
//! Ids are copied once into an append-only byte arena owned by the set (a length byte, then
//! the bytes), and the hash table holds one `u64` per member: the upper 32 bits of the id's
//! hash and the member's offset in the arena. A lookup compares hash bits first and the bytes
//! only on a match, so the answer is exact, never a hash-collision guess. A member costs
//! `1 + len` arena bytes plus 8 table bytes over the table's load factor, with no allocation
//! per member (a `HashSet<String>` costs 24 bytes plus a heap block per member).

use hashbrown::HashTable;

/// Longest id the set stores; the decoder bounds ids well below this.
pub const MAX_MEMBER_LEN: usize = u8::MAX as usize;

#[derive(Debug, Default, Clone)]
pub struct ExactSet {
    table: HashTable<u64>,
    arena: Vec<u8>,
}

/// The set could not take the member: its arena has passed `u32::MAX` bytes. The caller falls
/// back to an approximate count rather than lose the event.
#[derive(Debug, PartialEq, Eq)]
pub struct Full;

impl ExactSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Inserts `id` whose 64-bit hash is `hash`; returns whether it was new.
    /// `id` must be at most [`MAX_MEMBER_LEN`] bytes.
    #[inline]
    pub fn insert(&mut self, id: &[u8], hash: u64) -> Result<bool, Full> {
        debug_assert!(id.len() <= MAX_MEMBER_LEN);
        let tag = hash >> 32;
        let arena = &self.arena;
        let found = self.table.find(spread(tag), |&entry| {
            entry >> 32 == tag && member(arena, entry) == id
        });
        if found.is_some() {
            return Ok(false);
        }
        let offset = u32::try_from(self.arena.len()).map_err(|_| Full)?;
        self.arena.push(id.len() as u8);
        self.arena.extend_from_slice(id);
        self.table
            .insert_unique(spread(tag), (tag << 32) | u64::from(offset), |&entry| {
                spread(entry >> 32)
            });
        Ok(true)
    }

    /// The members, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let mut at = 0;
        std::iter::from_fn(move || {
            let len = usize::from(*self.arena.get(at)?);
            let id = &self.arena[at + 1..at + 1 + len];
            at += 1 + len;
            Some(id)
        })
    }

    /// Heap bytes held (table buckets and control bytes, and the arena's capacity).
    pub fn heap_bytes(&self) -> usize {
        self.table.allocation_size() + self.arena.capacity()
    }
}

/// Re-spreads 32 stored hash bits over 64 for the table's bucket index and control byte.
#[inline]
fn spread(tag: u64) -> u64 {
    tag.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

#[inline]
fn member(arena: &[u8], entry: u64) -> &[u8] {
    let at = (entry & 0xFFFF_FFFF) as usize;
    let len = usize::from(arena[at]);
    &arena[at + 1..at + 1 + len]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::hash::hash_bytes;
    use std::collections::HashSet;

    #[test]
    fn counts_distinct_members_exactly() {
        let mut set = ExactSet::new();
        let ids: Vec<String> = (0..10_000).map(|i| format!("user-{i}")).collect();
        for round in 0..3 {
            for id in &ids {
                let new = set
                    .insert(id.as_bytes(), hash_bytes(id.as_bytes()))
                    .unwrap();
                assert_eq!(new, round == 0);
            }
        }
        assert_eq!(set.len(), ids.len());
        let members: HashSet<&[u8]> = set.iter().collect();
        assert_eq!(members.len(), ids.len());
    }

    #[test]
    fn a_hash_collision_is_not_a_duplicate() {
        // Force every member onto the same hash: the byte comparison must keep them apart.
        let mut set = ExactSet::new();
        for id in ["a", "b", "c", "", "a"] {
            set.insert(id.as_bytes(), 42).unwrap();
        }
        assert_eq!(set.len(), 4);
    }

    #[test]
    fn longest_member_round_trips() {
        let mut set = ExactSet::new();
        let long = vec![b'x'; MAX_MEMBER_LEN];
        assert_eq!(set.insert(&long, 7), Ok(true));
        assert_eq!(set.iter().next(), Some(long.as_slice()));
    }
}
