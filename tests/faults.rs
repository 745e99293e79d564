//! Faults around nene that must cost no request: nginx reloading its
//! configuration under load.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::{Nene, Nginx};

#[tokio::test(flavor = "multi_thread")]
async fn an_nginx_reload_under_load_fails_no_request() {
    let nene = Nene::start(&[("NENE_ACCESS__LOG", "off")]);
    let nginx = Nginx::start(&nene.upstream, true);
    let running = Arc::new(AtomicBool::new(true));
    let answered = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for _ in 0..8 {
        // A new client connection per request: a request sent on a kept
        // client connection that the old worker is closing fails in any
        // HTTP client (browsers retry it); what matters here is the
        // nginx -> nene side, which must never answer 502.
        let client = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        let url = nginx.url("/health");
        let running = running.clone();
        let answered = answered.clone();
        clients.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            while running.load(Ordering::Relaxed) {
                match client.get(&url).send().await {
                    Ok(response) if response.status() == 200 => {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(response) => failures.push(format!("status {}", response.status())),
                    Err(error) => failures.push(format!("{error:?}")),
                }
            }
            failures
        }));
    }
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        nginx.reload();
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    running.store(false, Ordering::Relaxed);
    let mut failures = Vec::new();
    for client in clients {
        failures.extend(client.await.unwrap());
    }
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(answered.load(Ordering::Relaxed) > 100);
    assert!(!nene.log_text().contains("WARN"), "{}", nene.log_text());
    let nginx_errors = nginx.error_log();
    assert!(!nginx_errors.contains("upstream"), "{nginx_errors}");
}
