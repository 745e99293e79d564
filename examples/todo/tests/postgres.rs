//! The todo app on PostgreSQL (a server this test starts), through a real
//! nginx: the suite every database passes (`common::flows::suite_on`).

mod common;

use common::postgres::Postgres;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn todo_on_postgres() {
    common::flows::suite_on(Postgres::start()).await;
}
