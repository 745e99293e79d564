//! Redis high availability: Sentinel (failover followed without a
//! restart, `wait=N` losing no acknowledged write) and Cluster (slots,
//! redirections, a failover under load).
//!
//! A crate of its own, so that nothing else runs beside these tests: each
//! starts several servers, and a failure detection or an election that
//! competes with other tests for two cores can misfire. Seen when they
//! shared the `redis` crate: a Sentinel failover under load, with a
//! handler test running beside it, ended on a node without the session
//! (the final count was 1 after 2,704 acknowledged increments).

mod cluster;
mod cluster_tls;
mod sentinel;
mod sentinel_checks;

/// These tests also run one at a time among themselves.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
