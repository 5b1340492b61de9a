//! The one hash function of the core: XXH3-64 with the default seed.
//!
//! Stable across processes, releases and machines (XXH3 is a specified algorithm), so an
//! approximate count rebuilt by replay after a restart sees the very same register values,
//! and good enough in its high bits for HyperLogLog.

#[inline]
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}
