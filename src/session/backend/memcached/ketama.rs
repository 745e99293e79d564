//! Which memcached server a key lives on: libmemcached's weighted ketama
//! continuum (`MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED`, which PHP's memcached
//! extension sets with `Memcached::OPT_LIBKETAMA_COMPATIBLE` and with
//! `memcached.sess_consistent_hash_type=ketama_weighted`), point for point,
//! so that nene and PHP find a session on the same server.
//!
//! Each server of weight 1 gets 160 points on a ring of `u32`: for `i` in
//! 0..40, the MD5 of `host:port-i` (`host-i` when the port is 11211) gives
//! four points, its bytes 0-3, 4-7, 8-11 and 12-15 read little-endian. A
//! key's hash is the first four bytes of its MD5, little-endian; it belongs to
//! the first point at or after it, wrapping to the first point of the ring.
//! Adding or removing a server moves only the keys of the points it gains
//! or loses.
//!
//! PHP's session default (`sess_consistent_hash_type=ketama`, not weighted)
//! is another ring (one-at-a-time hash, 100 points per server); nene does not
//! build that one.

use md5::{Digest, Md5};

/// libmemcached's `MEMCACHED_POINTS_PER_SERVER_KETAMA`: points per server
/// of weight 1 in the weighted continuum.
const POINTS_PER_SERVER: usize = 160;

/// Each MD5 digest of a server's name yields four 32-bit points.
const POINTS_PER_HASH: usize = 4;

/// The port libmemcached leaves out of the names it hashes.
const DEFAULT_PORT: u16 = 11211;

/// The ring of points, sorted, each naming the index of its server.
#[derive(Debug)]
pub(super) struct Continuum {
    /// `(point, server index)`, sorted.
    points: Vec<(u32, usize)>,
    /// How many servers there are.
    servers: usize,
}

impl Continuum {
    /// The ring of `servers` (host as given in the DSN, port), all of weight 1.
    pub(super) fn new(servers: &[(String, u16)]) -> Self {
        let mut points = Vec::with_capacity(servers.len() * POINTS_PER_SERVER);
        for (index, (host, port)) in servers.iter().enumerate() {
            for hash_index in 0..POINTS_PER_SERVER / POINTS_PER_HASH {
                let name = if *port == DEFAULT_PORT {
                    format!("{host}-{hash_index}")
                } else {
                    format!("{host}:{port}-{hash_index}")
                };
                let digest = Md5::digest(name.as_bytes());
                for quarter in digest.chunks_exact(4) {
                    let point =
                        u32::from_le_bytes([quarter[0], quarter[1], quarter[2], quarter[3]]);
                    points.push((point, index));
                }
            }
        }
        // Ties (two points of one value) go to the lower server index, as
        // libmemcached's sort orders them.
        points.sort_unstable();
        Self {
            points,
            servers: servers.len(),
        }
    }

    /// The index of the server that holds `key` (the key without the
    /// prefix: libmemcached hashes keys without their namespace).
    pub(super) fn server_for(&self, key: &str) -> usize {
        if self.servers <= 1 {
            // One server: libmemcached does not hash at all.
            return 0;
        }
        let digest = Md5::digest(key.as_bytes());
        let hash = u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]]);
        let at = self.points.partition_point(|(point, _)| *point < hash);
        self.points.get(at).unwrap_or(&self.points[0]).1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers(list: &[(&str, u16)]) -> Vec<(String, u16)> {
        list.iter()
            .map(|(host, port)| (host.to_string(), *port))
            .collect()
    }

    #[test]
    fn each_server_gets_160_points_and_one_server_takes_every_key() {
        let ring = Continuum::new(&servers(&[("10.0.0.1", 11211), ("10.0.0.2", 11211)]));
        assert_eq!(ring.points.len(), 320);
        assert!(ring.points.windows(2).all(|pair| pair[0] <= pair[1]));
        let single = Continuum::new(&servers(&[("cache", 11211)]));
        assert_eq!(single.server_for("anything"), 0);
    }

    /// Placements PHP's memcached extension (libmemcached 1.1,
    /// `OPT_LIBKETAMA_COMPATIBLE`) reported with `getServerByKey` for two
    /// servers on 127.0.0.1 ports 22122 and 22123.
    #[test]
    fn keys_land_where_libmemcached_puts_them() {
        let ring = Continuum::new(&servers(&[("127.0.0.1", 22122), ("127.0.0.1", 22123)]));
        let placed: Vec<usize> = (0..20)
            .map(|n| ring.server_for(&format!("id{n}")))
            .collect();
        assert_eq!(
            placed,
            vec![0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 1, 0, 0, 0, 0, 0, 1, 0]
        );
    }

    #[test]
    fn a_new_server_moves_only_the_keys_it_takes() {
        let two = Continuum::new(&servers(&[("a", 11211), ("b", 11211)]));
        let three = Continuum::new(&servers(&[("a", 11211), ("b", 11211), ("c", 11211)]));
        for n in 0..500 {
            let key = format!("session{n}");
            let now = three.server_for(&key);
            assert!(now == 2 || now == two.server_for(&key), "{key}");
        }
    }
}
