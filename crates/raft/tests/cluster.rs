//! In-process clusters over real sockets and real RocksDB directories:
//! the physical conformance suite on one and three nodes, replication to
//! followers, read-only followers, fail-over, snapshot catch-up, restart.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arca_physical::{Op, PhysicalBackend, PhysicalError};
use arca_raft::{ClusterTls, NodeInfo, RaftBackend, RaftConfig, RaftNode};

#[path = "support/certs.rs"]
mod certs;

struct TestNode {
    name: String,
    dir: std::path::PathBuf,
    node: Arc<RaftNode>,
}

fn config(dir: &std::path::Path, name: &str, port: u16) -> RaftConfig {
    let listen = format!("127.0.0.1:{port}").parse().unwrap();
    let mut c = RaftConfig::new(
        dir.to_path_buf(),
        name,
        &format!("http://api-{name}"),
        &format!("https://127.0.0.1:{port}"),
        listen,
    );
    c.tls = Some(certs::loopback_identity());
    c.snapshot_threshold = 200;
    c.trailing_logs = 20;
    c
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start(root: &std::path::Path, name: &str, port: u16) -> TestNode {
    let dir = root.join(name);
    let node = RaftNode::start(config(&dir, name, port)).await.unwrap();
    TestNode {
        name: name.into(),
        dir,
        node,
    }
}

fn info(n: &TestNode) -> NodeInfo {
    n.node.info().clone()
}

/// Polls `f` until it holds; `bound` only ends a test that would hang.
async fn wait_for<F: Fn() -> bool>(what: &str, bound: Duration, f: F) {
    let deadline = Instant::now() + bound;
    while !f() {
        if Instant::now() > deadline {
            panic!("gave up waiting for {what} after {bound:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts `n` nodes, bootstraps the first and adds the rest as voters.
async fn cluster(root: &std::path::Path, n: usize) -> Vec<TestNode> {
    let mut nodes = Vec::new();
    for i in 0..n {
        nodes.push(start(root, &format!("node{}", i + 1), free_port()).await);
    }
    nodes[0].node.bootstrap().await.unwrap();
    for i in 1..n {
        nodes[0].node.add_peer(info(&nodes[i]), true).await.unwrap();
    }
    nodes
}

fn leader_of(nodes: &[TestNode]) -> Option<usize> {
    nodes.iter().position(|n| n.node.is_leader())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn single_node_passes_the_conformance_suite_and_survives_restart() {
    let root = tempfile::tempdir().unwrap();
    let port = free_port();
    let n = start(root.path(), "solo", port).await;
    assert!(!n.node.has_cluster());
    n.node.bootstrap().await.unwrap();
    assert!(n.node.is_leader());
    let b = RaftBackend::new(n.node.clone());
    arca_physical::conformance::run_all(&b).await;
    b.put("keep/me", b"value".to_vec()).await.unwrap();
    // A second bootstrap is refused: the node already has a cluster.
    assert!(n.node.bootstrap().await.is_err());
    n.node.shutdown().await;
    drop(b);
    drop(n);

    let n = start(root.path(), "solo", port).await;
    wait_for(
        "the restarted node to lead",
        Duration::from_secs(10),
        || n.node.is_leader(),
    )
    .await;
    let b = RaftBackend::new(n.node.clone());
    assert_eq!(b.get("keep/me").await.unwrap(), Some(b"value".to_vec()));
    b.put("after/restart", vec![1]).await.unwrap();
    n.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_replicate_and_followers_are_read_only() {
    let root = tempfile::tempdir().unwrap();
    let nodes = cluster(root.path(), 3).await;
    let peers = nodes[0].node.peers();
    assert_eq!(peers.len(), 3);
    assert!(peers.iter().all(|p| p.voter));
    assert_eq!(peers.iter().filter(|p| p.leader).count(), 1);

    let leader = RaftBackend::new(nodes[0].node.clone());
    arca_physical::conformance::run_all(&leader).await;
    leader
        .batch(vec![
            Op::Put("rep/a".into(), b"1".to_vec()),
            Op::Put("rep/b/c".into(), vec![9; 300_000]),
        ])
        .await
        .unwrap();
    for f in &nodes[1..] {
        f.node.read_barrier(Duration::from_secs(5)).await.unwrap();
        let b = RaftBackend::new(f.node.clone());
        assert_eq!(
            b.get("rep/a").await.unwrap(),
            Some(b"1".to_vec()),
            "{}",
            f.name
        );
        assert_eq!(b.get("rep/b/c").await.unwrap().unwrap().len(), 300_000);
        assert_eq!(b.list("rep/").await.unwrap(), vec!["a", "b/"]);
        // A follower never writes: the request must go to the leader.
        assert_eq!(b.put("rep/x", vec![1]).await, Err(PhysicalError::ReadOnly));
        assert_eq!(b.get("rep/x").await.unwrap(), None);
        assert_eq!(f.node.leader().unwrap().name, "node1");
    }
    for n in &nodes {
        n.node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_leader_takes_over_and_keeps_every_acknowledged_write() {
    let root = tempfile::tempdir().unwrap();
    let mut nodes = cluster(root.path(), 3).await;
    let b = RaftBackend::new(nodes[0].node.clone());
    for i in 0..50 {
        b.put(&format!("ack/{i:03}"), vec![i as u8]).await.unwrap();
    }
    drop(b);
    let old = nodes.remove(0);
    old.node.shutdown().await;
    let t0 = Instant::now();
    wait_for("a new leader", Duration::from_secs(10), || {
        leader_of(&nodes).is_some()
    })
    .await;
    eprintln!("new leader after {:?}", t0.elapsed());
    let l = leader_of(&nodes).unwrap();
    // A new leader has every acknowledged write committed, but may not
    // have applied the last ones yet: read at a linearizable point, as the
    // API layer does for every read.
    nodes[l]
        .node
        .read_barrier(Duration::from_secs(5))
        .await
        .unwrap();
    let b = RaftBackend::new(nodes[l].node.clone());
    for i in 0..50 {
        assert_eq!(
            b.get(&format!("ack/{i:03}")).await.unwrap(),
            Some(vec![i as u8])
        );
    }
    b.put("ack/after", vec![1]).await.unwrap();
    let other = &nodes[1 - l];
    other
        .node
        .read_barrier(Duration::from_secs(5))
        .await
        .unwrap();
    let ob = RaftBackend::new(other.node.clone());
    assert_eq!(ob.get("ack/after").await.unwrap(), Some(vec![1]));
    assert_eq!(ob.scan("ack/").await.unwrap().len(), 51);
    for n in &nodes {
        n.node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_late_node_catches_up_from_a_snapshot_and_remove_peer_works() {
    let root = tempfile::tempdir().unwrap();
    let nodes = cluster(root.path(), 2).await;
    let b = RaftBackend::new(nodes[0].node.clone());
    // Far more entries than the snapshot threshold (200) plus trailing logs
    // (20): the log is purged and a new node can only catch up by snapshot.
    for chunk in 0..20 {
        let ops = (0..50)
            .map(|i| Op::Put(format!("snap/{chunk:02}/{i:02}"), vec![chunk as u8; 64]))
            .collect();
        b.batch(ops).await.unwrap();
    }
    for i in 0..300 {
        b.put(&format!("one/{i:03}"), vec![1]).await.unwrap();
    }
    wait_for("a snapshot on the leader", Duration::from_secs(20), || {
        std::fs::read_dir(nodes[0].dir.join("snapshots"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .any(|e| e.file_name().to_string_lossy().ends_with(".snap"))
            })
            .unwrap_or(false)
    })
    .await;
    let late = start(root.path(), "late", free_port()).await;
    nodes[0].node.add_peer(info(&late), true).await.unwrap();
    let m = late.node.status();
    eprintln!(
        "late node after add: leader={:?} state={} applied={}",
        m.leader.map(|l| l.name),
        m.state,
        m.applied_index
    );
    late.node
        .read_barrier(Duration::from_secs(10))
        .await
        .unwrap();
    let lb = RaftBackend::new(late.node.clone());
    assert_eq!(lb.scan("snap/").await.unwrap().len(), 1000);
    assert_eq!(lb.scan("one/").await.unwrap().len(), 300);
    assert_eq!(lb.get("snap/07/33").await.unwrap(), Some(vec![7; 64]));
    assert!(
        late.dir.join("snapshots").read_dir().unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".snap")),
        "the late node should have installed a snapshot"
    );

    // remove-peer: the second node leaves, writes go on with two voters.
    nodes[0].node.remove_peer("node2").await.unwrap();
    let names: Vec<String> = nodes[0].node.peers().into_iter().map(|p| p.name).collect();
    assert_eq!(names, vec!["late", "node1"]);
    b.put("after/remove", vec![2]).await.unwrap();
    assert!(nodes[0].node.remove_peer("nobody").await.is_err());
    for n in nodes.iter().map(|n| &n.node).chain([&late.node]) {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_whole_cluster_restarts_with_its_data() {
    let root = tempfile::tempdir().unwrap();
    let nodes = cluster(root.path(), 3).await;
    let ports: Vec<u16> = nodes.iter().map(|n| n.node.listen_addr.port()).collect();
    let b = RaftBackend::new(nodes[0].node.clone());
    for i in 0..30 {
        b.put(&format!("r/{i}"), vec![i]).await.unwrap();
    }
    drop(b);
    for n in &nodes {
        n.node.shutdown().await;
    }
    drop(nodes);
    let mut nodes = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        nodes.push(start(root.path(), &format!("node{}", i + 1), *p).await);
    }
    wait_for("a leader after restart", Duration::from_secs(15), || {
        leader_of(&nodes).is_some()
    })
    .await;
    let l = leader_of(&nodes).unwrap();
    let b = RaftBackend::new(nodes[l].node.clone());
    b.put("r/new", vec![1]).await.unwrap();
    for n in &nodes {
        n.node.read_barrier(Duration::from_secs(5)).await.unwrap();
        let nb = RaftBackend::new(n.node.clone());
        assert_eq!(nb.scan("r/").await.unwrap().len(), 31, "{}", n.name);
    }
    for n in &nodes {
        n.node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn step_down_hands_leadership_to_another_voter() {
    let root = tempfile::tempdir().unwrap();
    let nodes = cluster(root.path(), 3).await;
    nodes[0].node.step_down().await.unwrap();
    wait_for("another leader", Duration::from_secs(10), || {
        leader_of(&nodes).is_some_and(|i| i != 0)
    })
    .await;
    assert!(nodes[0].node.step_down().await.is_err());
    for n in &nodes {
        n.node.shutdown().await;
    }
}
