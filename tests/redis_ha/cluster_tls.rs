//! `rediss+cluster://`: a real Redis Cluster node that speaks TLS to its
//! clients (`tls-cluster yes`: the slot table names its TLS port), through
//! a real nginx. One node holding every slot: enough for the seed
//! connection, the slot table and nene's own per-node connections
//! (cluster_route.rs) to all go over verified TLS.

use nene_test_support::free_port;
use nene_test_support::redis_server::RedisServer;

use crate::cluster::count;
use crate::stack;

#[tokio::test(flavor = "multi_thread")]
async fn rediss_cluster_speaks_verified_tls_to_every_node() {
    let _one_at_a_time = crate::ONE_AT_A_TIME.lock().await;
    let bus_port = free_port().to_string();
    let node = RedisServer::start_tls_with(&[
        "--cluster-enabled",
        "yes",
        "--cluster-port",
        &bus_port,
        "--cluster-announce-ip",
        "127.0.0.1",
        "--cluster-config-file",
        "nodes.conf",
        "--tls-cluster",
        "yes",
    ]);
    node.run(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !matches!(node.run(&["CLUSTER", "INFO"]), redis::Value::BulkString(info)
        if String::from_utf8_lossy(&info).contains("cluster_state:ok"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the cluster never got whole"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let verified = stack(&format!(
        "rediss+cluster://127.0.0.1:{}?tls_ca_file={}",
        node.tls_port(),
        node.ca_file().display()
    ));
    let mut browser = verified.browser();
    for expected in 1..=3 {
        assert_eq!(count(&mut browser, &verified).await, expected);
    }
    let id = browser.session_id().expect("a session");
    assert_eq!(
        node.run(&["EXISTS", &format!("sess_{{{id}}}")]),
        redis::Value::Int(1)
    );
    // With `tls-cluster yes` the slot table names the node by its TLS port
    // alone, so nene's own connection to the node (not only the seed's)
    // went over TLS.
    let slots = format!("{:?}", node.run(&["CLUSTER", "SLOTS"]));
    assert!(!slots.contains(&format!("Int({})", node.port())), "{slots}");

    // Without the CA, the node's certificate is refused: no session.
    let unverified = stack(&format!(
        "rediss+cluster://127.0.0.1:{}?connect_timeout=300ms",
        node.tls_port()
    ));
    let mut browser = unverified.browser();
    assert_eq!(browser.get("/session/counter").await.status, 503);
}
