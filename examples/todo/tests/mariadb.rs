//! The todo app on MariaDB (a server this test starts), through a real
//! nginx: the suite every database passes (`common::flows::suite_on`).

mod common;

use common::mariadb::MariaDb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn todo_on_mariadb() {
    common::flows::suite_on(MariaDb::start()).await;
}
