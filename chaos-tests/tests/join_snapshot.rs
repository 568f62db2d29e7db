//! A node joining a cluster that already holds 10,000 secrets catches up
//! (snapshot + log) to the same data; then a dead voter is removed with
//! `remove-peer` and the cluster keeps taking writes.

use std::time::{Duration, Instant};

use arca_chaos::{
    chaos, kv_read_retry, kv_write_retry, secs, write_many, Cluster, KvRead, SLOW_CALL_TIMEOUT,
};
use futures::StreamExt;
use rand::seq::index::sample;

const SECRETS: usize = 10_000;
const SAMPLE: usize = 500;
const PREFIX: &str = "bulk/k";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn join_catches_up_then_remove_peer() {
    let mut cluster = Cluster::start(3).await.expect("start cluster");
    let bases = cluster.bases();
    let api = cluster.api();

    let took = write_many(&api, &bases, PREFIX, SECRETS, 16)
        .await
        .expect("bulk writes");
    chaos!(
        "wrote {SECRETS} secrets with 16 concurrent clients in {} ({:.0} writes/s)",
        secs(took),
        SECRETS as f64 / took.as_secs_f64()
    );

    // A 4th, empty node joins and catches up.
    let new = cluster.add_node().await.expect("start node4");
    let t = Instant::now();
    cluster.join(new).await.expect("join node4");
    let name = cluster.nodes[new].name.clone();
    chaos!(
        "{name} joined, caught up and unsealed in {}",
        secs(t.elapsed())
    );
    let base = cluster.base(new);
    // The log behind the leader's snapshot was purged (snapshot_threshold
    // 2000, trailing_logs 500): the new node can only have caught up by
    // installing a snapshot.
    let snaps: Vec<String> = std::fs::read_dir(cluster.nodes[new].dir.join("data/snapshots"))
        .expect("snapshot directory of the new node")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".snap"))
        .collect();
    assert!(
        !snaps.is_empty(),
        "{name} has no raft snapshot: it did not catch up by snapshot"
    );
    chaos!("{name} installed raft snapshot {}", snaps[0]);

    // A sample of keys, read locally on the new node (no forwarding, no
    // read-index): its own copy of the data. A short grace for the tail of
    // the log, reported if used.
    let t = Instant::now();
    let picks: Vec<usize> = sample(&mut rand::thread_rng(), SECRETS, SAMPLE).into_vec();
    let check = |idx: Vec<usize>| {
        let (api, base) = (api.clone(), base.clone());
        async move {
            futures::stream::iter(idx)
                .map(|k| {
                    let (api, base) = (api.clone(), base.clone());
                    async move {
                        let r = kv_read_retry(
                            &api,
                            &base,
                            &format!("{PREFIX}{k:05}"),
                            false,
                            Duration::from_secs(30),
                        )
                        .await;
                        (k, r)
                    }
                })
                .buffer_unordered(16)
                .filter(|(k, r)| {
                    let good =
                        matches!(r, KvRead::Found { value, .. } if *value == format!("v{k}"));
                    async move { !good }
                })
                .collect::<Vec<(usize, KvRead)>>()
                .await
        }
    };
    let mut bad = check(picks).await;
    let grace = Instant::now() + Duration::from_secs(10);
    while !bad.is_empty() && Instant::now() < grace {
        chaos!("{} sampled keys not yet on {name}; retrying", bad.len());
        tokio::time::sleep(Duration::from_millis(500)).await;
        bad = check(bad.into_iter().map(|(k, _)| k).collect()).await;
    }
    assert!(
        bad.is_empty(),
        "{} of {SAMPLE} sampled keys wrong on {name}, e.g. {:?}",
        bad.len(),
        &bad[..bad.len().min(10)]
    );
    chaos!(
        "{SAMPLE} sampled keys correct on {name} ({})",
        secs(t.elapsed())
    );

    // The full count, by LIST on the new node.
    let t = Instant::now();
    let list_api = api.with_timeout(SLOW_CALL_TIMEOUT);
    let url = format!("{base}/v1/secret/metadata/bulk/?list=true");
    let deadline = Instant::now() + Duration::from_secs(30);
    let count = loop {
        let r = list_api.get(&url).await;
        let count = r.body["data"]["keys"].as_array().map(Vec::len);
        if count == Some(SECRETS) || Instant::now() > deadline {
            break count.ok_or_else(|| r.describe());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(count, Ok(SECRETS), "LIST secret/metadata/bulk/ on {name}");
    chaos!(
        "LIST on {name} shows all {SECRETS} keys ({})",
        secs(t.elapsed())
    );

    // kill -9 node3, then remove it from the configuration.
    let victim = 2;
    let victim_name = cluster.nodes[victim].name.clone();
    cluster.kill9(victim);
    let t = Instant::now();
    let leader = cluster
        .wait_for_leader(Duration::from_secs(60), Some(victim))
        .await
        .expect("leader after killing node3");
    chaos!(
        "kill -9 of {victim_name}; leader {} ({} later)",
        cluster.nodes[leader].name,
        secs(t.elapsed())
    );
    let t = Instant::now();
    cluster
        .remove_peer(&victim_name)
        .await
        .expect("remove-peer");
    let deadline = Instant::now() + Duration::from_secs(30);
    let servers = loop {
        let servers = cluster.raft_servers().await.expect("raft configuration");
        let ids: Vec<String> = servers
            .iter()
            .filter_map(|s| s["node_id"].as_str().map(str::to_string))
            .collect();
        if (ids.len() == 3 && !ids.contains(&victim_name)) || Instant::now() > deadline {
            break ids;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(
        servers.len(),
        3,
        "raft configuration after remove-peer {victim_name}: {servers:?}"
    );
    assert!(!servers.contains(&victim_name), "{servers:?}");
    chaos!(
        "remove-peer {victim_name}: configuration now {servers:?} ({})",
        secs(t.elapsed())
    );

    let live: Vec<String> = (0..cluster.nodes.len())
        .filter(|&i| i != victim)
        .map(|i| cluster.base(i))
        .collect();
    let t = Instant::now();
    kv_write_retry(
        &api,
        &live,
        0,
        "bulk/after-remove",
        "still-writable",
        Duration::from_secs(30),
    )
    .await
    .expect("write after remove-peer");
    let r = kv_read_retry(
        &api,
        &base,
        "bulk/after-remove",
        true,
        Duration::from_secs(30),
    )
    .await;
    assert!(
        matches!(&r, KvRead::Found { value, .. } if value == "still-writable"),
        "write after remove-peer not readable on {name}: {r:?}"
    );
    chaos!(
        "write after remove-peer acknowledged and read on {name} ({})",
        secs(t.elapsed())
    );
}
