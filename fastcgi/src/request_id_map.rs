//! The maps a connection keeps by FastCGI request id. Ids are 16-bit
//! numbers the peer picks, so they need no keyed hash: SipHash (std's
//! default, built against keys an attacker crafts) cost about a thousand
//! instructions per request here, a dozen lookups of a `u16`. A
//! multiplicative hash spreads consecutive ids over the table and is one
//! multiplication; a peer that picks colliding ids can only slow its own
//! connection, whose open requests are bounded by
//! `max_requests_per_connection`.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A map from request id to `V`.
pub(super) type RequestIdMap<V> = HashMap<u16, V, BuildHasherDefault<RequestIdHasher>>;

/// Fibonacci hashing of one `u16`.
#[derive(Default)]
pub(super) struct RequestIdHasher(u64);

impl Hasher for RequestIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u16(&mut self, id: u16) {
        // 2^64 / φ: the top bits (which hashbrown uses for its tags) differ
        // for neighbouring ids.
        self.0 = u64::from(id).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u16` keys are hashed; this keeps the hasher total anyway.
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_id_is_found_again_and_neighbours_get_different_tags() {
        let mut map = RequestIdMap::default();
        for id in 0..=u16::MAX {
            map.insert(id, u32::from(id) * 2);
        }
        for id in 0..=u16::MAX {
            assert_eq!(map.get(&id), Some(&(u32::from(id) * 2)));
        }
        let top_byte = |id: u16| {
            let mut hasher = RequestIdHasher::default();
            hasher.write_u16(id);
            hasher.finish() >> 57
        };
        let tags: std::collections::HashSet<u64> = (1..=64).map(top_byte).collect();
        assert!(tags.len() > 32, "only {} distinct tags", tags.len());
    }
}
