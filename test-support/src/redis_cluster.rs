//! A real Redis Cluster for tests: three `redis-server` primaries (and, with
//! `start_with_replicas`, a replica each) with `cluster-enabled yes` on free
//! loopback ports, joined by `redis-cli --cluster create` (the slots split in
//! three), killed when dropped. Tests can move every slot of one node to
//! another (`move_all_slots`), as an operator rebalancing the cluster would,
//! and kill a primary for its replica to take over.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::redis_server::RedisServer;
use crate::{free_port, require_program};

/// How long the cluster may take to agree that it is whole.
const READY_WITHIN: Duration = Duration::from_secs(60);

/// Three primaries sharing the 16384 slots, and their replicas.
pub struct RedisCluster {
    /// The nodes; `redis-cli` decides which are primaries.
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Three primaries, no replicas.
    pub fn start() -> RedisCluster {
        Self::start_with(0)
    }

    /// Three primaries with a replica each.
    pub fn start_with_replicas() -> RedisCluster {
        Self::start_with(1)
    }

    fn start_with(replicas: usize) -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..3 * (1 + replicas))
            .map(|_| {
                // The cluster bus port is the client port + 10000 unless set,
                // which does not exist for a client port above 55535.
                let bus_port = free_port().to_string();
                RedisServer::start_with(&[
                    "--cluster-port",
                    &bus_port,
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "1000",
                ])
            })
            .collect();
        let mut create = Command::new(require_program("redis-cli", "redis-tools"));
        create.args(["--cluster", "create"]);
        for node in &nodes {
            create.arg(format!("127.0.0.1:{}", node.port()));
        }
        create.args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"]);
        let output = create.output().expect("run redis-cli --cluster create");
        assert!(
            output.status.success(),
            "redis-cli --cluster create: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let cluster = RedisCluster { nodes };
        cluster.wait_until_whole();
        cluster
    }

    /// `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3` plus `query`.
    pub fn dsn(&self, query: &str) -> String {
        let seeds: Vec<String> = self
            .nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port()))
            .collect();
        format!("redis+cluster://{}{query}", seeds.join(","))
    }

    /// Whether node `at` is a primary now.
    pub fn is_primary(&self, at: usize) -> bool {
        matches!(self.nodes[at].run(&["ROLE"]), redis::Value::Array(role)
            if role.first() == Some(&redis::Value::BulkString(b"master".to_vec())))
    }

    /// The node that replicates primary `primary` now.
    pub fn replica_of(&self, primary: usize) -> usize {
        let port = redis::Value::Int(i64::from(self.nodes[primary].port()));
        (0..self.nodes.len())
            .find(|&at| {
                matches!(self.nodes[at].run(&["ROLE"]), redis::Value::Array(role)
                    if role.first() == Some(&redis::Value::BulkString(b"slave".to_vec()))
                        && role.get(2) == Some(&port))
            })
            .unwrap_or_else(|| panic!("node {primary} has no replica"))
    }

    /// Until every primary's replica has all its writes.
    pub fn wait_for_replicas(&self) {
        for (at, node) in self.nodes.iter().enumerate() {
            if self.is_primary(at) {
                node.run(&["WAIT", "1", "5000"]);
            }
        }
    }

    /// Every key matching `pattern`, on whichever primary holds it.
    pub fn keys(&self, pattern: &str) -> Vec<(usize, String)> {
        let mut found = Vec::new();
        for (at, node) in self.nodes.iter().enumerate() {
            if !self.is_primary(at) {
                continue;
            }
            for key in node.db(0).keys(pattern) {
                found.push((at, key));
            }
        }
        found
    }

    /// Moves every slot (and key) of node `from` to node `to` with
    /// `redis-cli --cluster reshard`, as an operator would.
    pub fn move_all_slots(&self, from: usize, to: usize) {
        let id = |node: &RedisServer| match node.run(&["CLUSTER", "MYID"]) {
            redis::Value::BulkString(id) => String::from_utf8(id).unwrap(),
            other => panic!("CLUSTER MYID: {other:?}"),
        };
        let slots = self.slot_count(from);
        let output = Command::new(require_program("redis-cli", "redis-tools"))
            .args(["--cluster", "reshard"])
            .arg(format!("127.0.0.1:{}", self.nodes[from].port()))
            .args(["--cluster-from", &id(&self.nodes[from])])
            .args(["--cluster-to", &id(&self.nodes[to])])
            .args(["--cluster-slots", &slots.to_string(), "--cluster-yes"])
            .output()
            .expect("run redis-cli --cluster reshard");
        assert!(
            output.status.success(),
            "redis-cli --cluster reshard: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(self.slot_count(from), 0, "node {from} still has slots");
        self.wait_until_whole();
    }

    /// How many slots node `at` serves.
    pub fn slot_count(&self, at: usize) -> usize {
        let port = self.nodes[at].port();
        match self.nodes[at].run(&["CLUSTER", "SLOTS"]) {
            redis::Value::Array(ranges) => ranges
                .iter()
                .filter_map(|range| match range {
                    redis::Value::Array(parts) => Some(parts),
                    _ => None,
                })
                .filter(|parts| {
                    matches!(parts.get(2), Some(redis::Value::Array(owner))
                        if owner.get(1) == Some(&redis::Value::Int(i64::from(port))))
                })
                .map(|parts| match (&parts[0], &parts[1]) {
                    (redis::Value::Int(start), redis::Value::Int(end)) => {
                        (end - start + 1) as usize
                    }
                    _ => 0,
                })
                .sum(),
            other => panic!("CLUSTER SLOTS: {other:?}"),
        }
    }

    /// Until every live node says `cluster_state:ok` (after a failover: once
    /// the replica has taken over).
    pub fn wait_until_whole(&self) {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            let whole = self
                .nodes
                .iter()
                .filter(|node| node.is_running())
                .all(|node| {
                    matches!(node.run(&["CLUSTER", "INFO"]), redis::Value::BulkString(info)
                    if String::from_utf8_lossy(&info).contains("cluster_state:ok"))
                });
            if whole {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster never reached cluster_state:ok"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
