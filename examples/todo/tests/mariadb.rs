//! The todo app on MariaDB (a server this test starts), through a real
//! nginx: the core flow, then the database going away and coming back.

mod common;

use std::cell::RefCell;

use common::Stack;
use common::mariadb::{MariaDb, PASSWORD};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn todo_on_mariadb() {
    let pg = RefCell::new(MariaDb::start());
    let dsn = pg.borrow().dsn();
    let stack = Stack::start(&dsn);
    let base = stack.base();
    common::flows::core_flow(&base).await;
    common::flows::database_outage(
        &base,
        || pg.borrow_mut().stop(),
        || pg.borrow_mut().start_again(),
    )
    .await;
    let log = stack.app.log_text();
    assert!(log.contains("database mariadb://todo:***@"), "{log}");
    assert!(
        !log.contains(PASSWORD),
        "the app logged the database password"
    );
}
