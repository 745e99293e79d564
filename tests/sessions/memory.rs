//! `memory://` as a new user tries it: a counter through nginx that counts,
//! a session that does not outlive the process, and no cookie's id that
//! reaches the store unless nene issued it.

use nene_test_support::{Nene, Nginx};

#[tokio::test(flavor = "multi_thread")]
async fn a_counter_counts_in_memory_and_starts_again_with_the_process() {
    let env = [("NENE_SESSION_DSN", "memory://")];
    let nene = Nene::start(&env);
    let nginx = Nginx::start(&nene.upstream, true);
    let mut browser = nginx.browser();
    for expected in 1..=3 {
        let page = browser.get("/session/counter").await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert_eq!(page.json()["count"], expected);
    }
    let id = browser.session_id().expect("a session cookie");
    drop(nginx);
    drop(nene);

    // A restart forgets every session: the old cookie counts from 1 under
    // a new id (strict mode refuses the id nothing stores).
    let nene = Nene::start(&env);
    let nginx = Nginx::start(&nene.upstream, true);
    let mut browser = browser.with_base(&nginx.url(""));
    let page = browser.get("/session/counter").await;
    assert_eq!(page.json()["count"], 1, "{}", page.body);
    assert_ne!(browser.session_id().unwrap(), id);
}
