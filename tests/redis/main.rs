//! The Redis backend in depth: its handler and lock scripts, the lock
//! hand-off under load, and no acknowledged write lost when connections
//! drop, replies vanish or lock keys are hostile. Sentinel and Cluster are
//! in `tests/redis_ha/`.

mod handler;
mod lock_hand_off;
mod reliability;

use std::time::Instant;

use nene_test_support::Nene;
use nene_test_support::browser::{Browser, Page};

/// Asserts that `page` is a 200 with the count `expected` (`nene`'s log
/// shows why not).
pub(crate) fn assert_counted(page: Page, nene: &Nene, expected: u64) {
    assert_eq!(page.status, 200, "{}", nene.log_text());
    assert_eq!(page.json()["count"], expected);
}

/// `clients` copies of `browser` count on `/session/counter` until `until`;
/// returns each answer's status and count.
pub(crate) async fn count_until(
    browser: &Browser,
    clients: usize,
    until: Instant,
) -> Vec<(u16, Option<u64>)> {
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let mut browser = browser.clone();
            tokio::spawn(async move {
                let mut answers = Vec::new();
                while Instant::now() < until {
                    let page = browser.get("/session/counter").await;
                    let count =
                        (page.status == 200).then(|| page.json()["count"].as_u64().unwrap());
                    answers.push((page.status, count));
                }
                answers
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.extend(task.await.unwrap());
    }
    answers
}
