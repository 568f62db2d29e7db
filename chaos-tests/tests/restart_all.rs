//! kill -9 of every node at once, then a restart on the same data: every
//! acknowledged write survives on every node and the cluster takes writes.

use std::time::{Duration, Instant};

use arca_chaos::{chaos, kv_read_retry, kv_write_retry, secs, write_many, Cluster, KvRead};
use futures::StreamExt;

const KEYS: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restart_all_after_kill9() {
    let mut cluster = Cluster::start(3).await.expect("start cluster");
    let n = cluster.nodes.len();
    let bases = cluster.bases();
    let api = cluster.api();

    let took = write_many(&api, &bases, "persist/k", KEYS, 8)
        .await
        .expect("write keys");
    chaos!("wrote {KEYS} keys in {}", secs(took));

    let t = Instant::now();
    cluster.kill_all();
    chaos!("kill -9 of all {n} nodes");
    let leader = cluster.restart_all().await.expect("restart all");
    chaos!(
        "restarted and unsealed all {n} nodes; healthy with leader {} after {}",
        cluster.nodes[leader].name,
        secs(t.elapsed())
    );

    let t = Instant::now();
    let checks = (0..KEYS).flat_map(|k| (0..n).map(move |i| (k, i)));
    let bad: Vec<(usize, usize, KvRead)> = futures::stream::iter(checks)
        .map(|(k, i)| {
            let (api, base) = (api.clone(), bases[i].clone());
            async move {
                let key = format!("persist/k{k:05}");
                let r = kv_read_retry(&api, &base, &key, true, Duration::from_secs(30)).await;
                (k, i, r)
            }
        })
        .buffer_unordered(16)
        .filter(|(k, _, r)| {
            let good = matches!(r, KvRead::Found { value, .. } if *value == format!("v{k}"));
            async move { !good }
        })
        .collect()
        .await;
    if !bad.is_empty() {
        let list: Vec<String> = bad
            .iter()
            .take(20)
            .map(|(k, i, r)| format!("persist/k{k:05} on node{}: {r:?}", i + 1))
            .collect();
        panic!(
            "{} of {} (key x node) reads wrong after restart:\n  {}",
            bad.len(),
            KEYS * n,
            list.join("\n  ")
        );
    }
    chaos!(
        "all {KEYS} keys readable on all {n} nodes after restart ({})",
        secs(t.elapsed())
    );

    let t = Instant::now();
    kv_write_retry(
        &api,
        &bases,
        0,
        "persist/after-restart",
        "fresh",
        Duration::from_secs(30),
    )
    .await
    .expect("write after restart");
    for (i, base) in bases.iter().enumerate() {
        let r = kv_read_retry(
            &api,
            base,
            "persist/after-restart",
            true,
            Duration::from_secs(30),
        )
        .await;
        assert!(
            matches!(&r, KvRead::Found { value, .. } if value == "fresh"),
            "new write not readable on node{}: {r:?}",
            i + 1
        );
    }
    chaos!(
        "a new write after the restart is acknowledged and readable everywhere ({})",
        secs(t.elapsed())
    );
}
