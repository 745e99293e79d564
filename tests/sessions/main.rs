//! Sessions on every backend: one contract run over files, memory, Redis,
//! memcached, SQLite, MariaDB and PostgreSQL, then what each backend adds,
//! the lock hand-off, migrations between backends and sharing with PHP.

mod contract;
mod files;
mod hand_off;
mod memcached;
mod memory;
mod migration;
mod php_sharing;
mod redis;
mod sql;

use nene::session::{SessionAdmin, SessionPage};

/// Every page of the listing of `sessions`, first to last (a listing of
/// 1,000 pages or more fails the test: it would never end).
async fn every_page(sessions: &dyn SessionAdmin) -> Vec<SessionPage> {
    let mut pages = Vec::new();
    let mut cursor = None;
    loop {
        let page = sessions.list_sessions(cursor).await.unwrap();
        cursor = page.next.clone();
        pages.push(page);
        if cursor.is_none() {
            return pages;
        }
        assert!(pages.len() < 1000, "the listing never ends");
    }
}
