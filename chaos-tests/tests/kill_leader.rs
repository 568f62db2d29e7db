//! kill -9 of the leader under load: writes resume within a bounded gap,
//! reads on the survivors keep succeeding, and after the killed node comes
//! back every acknowledged write is readable on every node.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arca_chaos::{
    chaos, kv_read, kv_read_retry, kv_read_stale, kv_write, kv_write_retry, longest_gap, secs,
    Cluster, KvRead, KvWrite,
};
use futures::StreamExt;

const WRITERS: usize = 4;
const SEEDS: usize = 5;
const BEFORE_KILL: Duration = Duration::from_secs(3);
const AFTER_KILL: Duration = Duration::from_secs(8);
const MAX_WRITE_GAP: Duration = Duration::from_secs(10);
const MAX_READ_GAP: Duration = Duration::from_secs(5);
/// Stale reads are local: a survivor answers them through the election.
const MAX_STALE_READ_GAP: Duration = Duration::from_millis(500);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_leader_under_load() {
    let mut cluster = Cluster::start(3).await.expect("start cluster");
    let n = cluster.nodes.len();
    let bases = cluster.bases();
    let api = cluster.api();

    // Keys the readers read: written first, visible everywhere.
    for s in 0..SEEDS {
        kv_write_retry(
            &api,
            &bases,
            s,
            &format!("seed/{s}"),
            "seed",
            Duration::from_secs(30),
        )
        .await
        .expect("seed write");
    }
    for (i, base) in bases.iter().enumerate() {
        for s in 0..SEEDS {
            let r = kv_read_retry(
                &api,
                base,
                &format!("seed/{s}"),
                true,
                Duration::from_secs(30),
            )
            .await;
            assert!(
                matches!(r, KvRead::Found { .. }),
                "seed/{s} on node{}: {r:?}",
                i + 1
            );
        }
    }

    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();

    // Writers: unique keys load/<w>/<n>; on failure move to the next node.
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (api, bases, stop) = (api.clone(), bases.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut node = w % bases.len();
            let mut acked: Vec<(String, Instant)> = Vec::new();
            let mut failed = 0usize;
            let mut seq = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("load/{w}/{seq}");
                seq += 1;
                match kv_write(&api, &bases[node], &key, &key, None).await {
                    KvWrite::Ok(_) => acked.push((key, Instant::now())),
                    _ => {
                        failed += 1;
                        node = (node + 1) % bases.len();
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
            (acked, failed)
        }));
    }

    // Readers: two per node, reading the seed keys: one with the default
    // (linearizable) reads, which wait for a leader during the election,
    // and one with stale local reads, which must never stop.
    let mut readers = Vec::new();
    for (r, base) in bases
        .iter()
        .cloned()
        .chain(bases.iter().cloned())
        .enumerate()
    {
        let (api, stop) = (api.clone(), stop.clone());
        let stale = r >= n;
        readers.push(tokio::spawn(async move {
            let mut ok: Vec<Instant> = Vec::new();
            let mut failed = 0usize;
            let mut i = r;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let key = format!("seed/{}", i % SEEDS);
                let res = if stale {
                    kv_read_stale(&api, &base, &key).await
                } else {
                    kv_read(&api, &base, &key, false).await
                };
                match res {
                    KvRead::Found { value, .. } if value == "seed" => ok.push(Instant::now()),
                    _ => failed += 1,
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (ok, failed)
        }));
    }

    tokio::time::sleep(BEFORE_KILL).await;
    let killed = cluster.kill_leader().await.expect("kill leader");
    let t_kill = Instant::now();
    chaos!(
        "kill -9 of leader {} at {}",
        cluster.nodes[killed].name,
        secs(t_kill - t0)
    );
    let new_leader = cluster
        .wait_for_leader(AFTER_KILL + Duration::from_secs(30), Some(killed))
        .await
        .expect("new leader");
    chaos!(
        "new leader {} seen (sys/health 200) {} after the kill",
        cluster.nodes[new_leader].name,
        secs(t_kill.elapsed())
    );
    let remaining = AFTER_KILL.saturating_sub(t_kill.elapsed());
    tokio::time::sleep(remaining).await;
    stop.store(true, Ordering::Relaxed);
    let t_end = Instant::now();

    let mut acked: Vec<(String, Instant)> = Vec::new();
    let mut write_failures = 0;
    for h in writers {
        let (a, f) = h.await.expect("writer task");
        acked.extend(a);
        write_failures += f;
    }
    let mut read_results = Vec::new();
    for h in readers {
        read_results.push(h.await.expect("reader task"));
    }

    // Write availability.
    let times: Vec<Instant> = acked.iter().map(|(_, t)| *t).collect();
    let first = times
        .iter()
        .min()
        .copied()
        .expect("no write acknowledged at all");
    let (gap, gap_from) = longest_gap(&times, first, t_end);
    let last_before = times.iter().filter(|t| **t <= t_kill).max().copied();
    let first_after = times.iter().filter(|t| **t > t_kill).min().copied();
    chaos!(
        "{WRITERS} writers: {} writes acknowledged, {write_failures} failed or indeterminate, over {}",
        acked.len(),
        secs(t_end - t0)
    );
    match (last_before, first_after) {
        (Some(b), Some(a)) => chaos!(
            "write gap after kill -9 of leader: {} (first acknowledged write {} after the kill)",
            secs(a - b),
            secs(a - t_kill)
        ),
        _ => chaos!(
            "write gap after kill -9 of leader: no write acknowledged on one side of the kill"
        ),
    }
    chaos!(
        "longest write gap: {} (from {} after start)",
        secs(gap),
        secs(gap_from - t0)
    );
    assert!(
        first_after.is_some(),
        "no write acknowledged after the kill"
    );
    assert!(
        gap < MAX_WRITE_GAP,
        "writes stalled for {} (limit {})",
        secs(gap),
        secs(MAX_WRITE_GAP)
    );

    // Read availability on the survivors.
    for (r, (ok, failed)) in read_results.iter().enumerate() {
        let (i, stale) = (r % n, r >= n);
        let (g, from) = longest_gap(ok, t0, t_end);
        let role = if i == killed { "killed" } else { "survivor" };
        let kind = if stale { "stale" } else { "linearizable" };
        chaos!(
            "{kind} reads on node{} ({role}): {} ok, {failed} failed, longest read gap {} (from {})",
            i + 1,
            ok.len(),
            secs(g),
            secs(from - t0)
        );
        if i != killed {
            let limit = if stale {
                MAX_STALE_READ_GAP
            } else {
                MAX_READ_GAP
            };
            assert!(
                g < limit,
                "{kind} reads on survivor node{} stalled for {} (limit {})",
                i + 1,
                secs(g),
                secs(limit)
            );
        }
    }

    // Bring the killed node back and let it catch up.
    let t = Instant::now();
    cluster
        .restart_node(killed)
        .await
        .expect("restart killed node");
    let (last_key, _) = acked.iter().max_by_key(|(_, t)| *t).cloned().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match kv_read(&api, &bases[killed], &last_key, true).await {
            KvRead::Found { .. } => break,
            other if Instant::now() > deadline => {
                panic!(
                    "restarted {} never served {last_key}: {other:?}",
                    cluster.nodes[killed].name
                )
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    chaos!(
        "{} restarted, unsealed and caught up in {}",
        cluster.nodes[killed].name,
        secs(t.elapsed())
    );

    // Every acknowledged write, on every node, with linearizable reads.
    let t = Instant::now();
    let checks = acked
        .iter()
        .flat_map(|(k, _)| (0..n).map(move |i| (k.clone(), i)));
    let bad: Vec<(String, usize, KvRead)> = futures::stream::iter(checks)
        .map(|(key, i)| {
            let (api, base) = (api.clone(), bases[i].clone());
            async move {
                let r = kv_read_retry(&api, &base, &key, true, Duration::from_secs(30)).await;
                (key, i, r)
            }
        })
        .buffer_unordered(16)
        .filter(|(key, _, r)| {
            let good = matches!(r, KvRead::Found { value, .. } if value == key);
            async move { !good }
        })
        .collect()
        .await;
    if !bad.is_empty() {
        // Tell "lost" from "late": read the first ones again a bit later.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut report = String::new();
        for (key, i, r) in bad.iter().take(20) {
            let again = kv_read(&api, &bases[*i], key, true).await;
            report.push_str(&format!(
                "\n  {key} on node{}: {r:?}; 2 s later: {again:?}",
                i + 1
            ));
        }
        panic!(
            "{} of {} acknowledged writes not readable (key x node):{report}",
            bad.len(),
            acked.len() * n
        );
    }
    chaos!(
        "all {} acknowledged writes readable on all {n} nodes (linearizable reads, {})",
        acked.len(),
        secs(t.elapsed())
    );
}
