//! The Redis backend in depth: its handler and lock scripts, the lock
//! hand-off under load, no acknowledged write lost under faults, Cluster and
//! Sentinel.

mod cluster;
mod handler;
mod lock_hand_off;
mod reliability;
mod sentinel;

/// The Cluster and Sentinel tests, and the fault test's five runs, take
/// this to run one at a time, as they did when each file was a test binary
/// of its own: each starts several servers or loads both cores, and a
/// failover election, or the check that a fault really bit, competing with
/// another such test on two cores can miss its window.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
