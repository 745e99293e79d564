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

use nene_test_support::browser::Browser;
use nene_test_support::{Nene, Nginx, nene_behind_nginx};

/// These tests also run one at a time among themselves.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// nene with sessions at `dsn`, behind nginx.
struct Stack {
    nene: Nene,
    nginx: Nginx,
}

fn stack(dsn: &str) -> Stack {
    let (nene, nginx) = nene_behind_nginx(&[("NENE_SESSION_DSN", dsn)]);
    Stack { nene, nginx }
}

impl Stack {
    /// A browser of its own, on this stack's nginx.
    fn browser(&self) -> Browser {
        Browser::new(&self.nginx.url(""))
    }
}
