//! Linearizability of KV v2 reads, writes and check-and-set across the
//! cluster: 6 clients (2 per node) run a random mix over 6 keys, every
//! operation is recorded (unanswered ones as indeterminate) and the history
//! is checked with `arca_chaos::history`: with no fault, with a kill -9 of
//! the leader, with the leader cut off from its peers (clients still reach
//! it; figures: time from the cut to the majority's first acknowledged
//! write), and with a restart of every node, each in the middle of the run.

use std::time::{Duration, Instant};

use arca_chaos::history::{check, CasMismatch, Input, Output, Recorder};
use arca_chaos::{chaos, kv_read, kv_write, secs, serial, Cluster, KvRead, KvWrite, Partition};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const CLIENTS: usize = 6;
/// Six keys: enough contention for CAS conflicts on each (hundreds per
/// run), few enough concurrent open operations per key that the checker's
/// search stays far below its budget (with three keys a leader kill's
/// indeterminate writes occasionally pushed one key past 2 M states).
const KEYS: [&str; 6] = ["reg/a", "reg/b", "reg/c", "reg/d", "reg/e", "reg/f"];
const RUN: Duration = Duration::from_secs(6);

/// One client: random ops on random keys against node `node` until
/// `deadline`; moves to the next node when its node refuses connections.
async fn client(
    c: usize,
    mut node: usize,
    bases: Vec<String>,
    api: arca_chaos::Api,
    rec: Recorder,
    deadline: Instant,
    seed: u64,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut last_seen = [0u64; KEYS.len()];
    let mut seq = 0usize;
    while Instant::now() < deadline {
        let k = rng.gen_range(0..KEYS.len());
        let key = KEYS[k];
        let base = &bases[node];
        let mut refused = false;
        match rng.gen_range(0..10) {
            0..=3 => {
                let id = rec.invoke(c, key, Input::Read);
                match kv_read(&api, base, key, true).await {
                    KvRead::Found { version, value } => {
                        last_seen[k] = version;
                        rec.complete(id, Output::Read(Some((version, value))));
                    }
                    KvRead::Absent => {
                        last_seen[k] = 0;
                        rec.complete(id, Output::Read(None));
                    }
                    KvRead::NotSent(_) => {
                        refused = true;
                        rec.discard(id);
                    }
                    // An unanswered read constrains nothing; the checker
                    // drops it.
                    KvRead::Failed(_) => {}
                }
            }
            choice => {
                seq += 1;
                let value = format!("c{c}-{seq}");
                let cas = (choice >= 6).then_some(last_seen[k]);
                let input = match cas {
                    Some(expected) => Input::Cas {
                        expected,
                        value: value.clone(),
                    },
                    None => Input::Write(value.clone()),
                };
                let id = rec.invoke(c, key, input);
                match (kv_write(&api, base, key, &value, cas).await, cas) {
                    (KvWrite::Ok(v), None) => {
                        last_seen[k] = v;
                        rec.complete(id, Output::Write(v));
                    }
                    (KvWrite::Ok(v), Some(_)) => {
                        last_seen[k] = v;
                        rec.complete(id, Output::Cas(Ok(v)));
                    }
                    (KvWrite::CasMismatch, Some(_)) => {
                        rec.complete(id, Output::Cas(Err(CasMismatch)));
                    }
                    (KvWrite::NotSent(_), _) => {
                        refused = true;
                        rec.discard(id);
                    }
                    // Indeterminate: it may or may not have taken effect.
                    // Back off like a refusal: hammering a node that is
                    // down only piles up open operations for the checker.
                    _ => refused = true,
                }
            }
        }
        if refused {
            node = (node + 1) % bases.len();
            tokio::time::sleep(Duration::from_millis(50)).await;
        } else {
            tokio::time::sleep(Duration::from_millis(rng.gen_range(0..5))).await;
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Fault {
    None,
    KillLeader,
    PartitionLeader,
    RestartAll,
}

async fn run(fault: Fault) {
    let _serial = serial().await;
    let label = match fault {
        Fault::None => "quiet",
        Fault::KillLeader => "with leader kill",
        Fault::PartitionLeader => "with leader partition",
        Fault::RestartAll => "with restart of all nodes",
    };
    let mut cluster = if fault == Fault::PartitionLeader {
        Cluster::start_isolatable(3).await
    } else {
        Cluster::start(3).await
    }
    .expect("start cluster");
    let bases = cluster.bases();
    let api = cluster.api();
    let rec = Recorder::new();
    let t0 = Instant::now();
    let deadline = t0 + RUN;
    // CHAOS_SEED replays a client mix (timings still differ).
    let seed = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            tokio::spawn(client(
                c,
                c % bases.len(),
                bases.clone(),
                api.clone(),
                rec.clone(),
                deadline,
                seed.wrapping_add(c as u64),
            ))
        })
        .collect();
    let mut partition = None;
    match fault {
        Fault::None => {}
        Fault::KillLeader => {
            tokio::time::sleep(RUN / 2).await;
            let killed = cluster.kill_leader().await.expect("kill leader");
            let t = Instant::now();
            chaos!(
                "cas ({label}): kill -9 of leader {} at {}",
                cluster.nodes[killed].name,
                secs(t - t0)
            );
            let leader = cluster
                .wait_for_leader(Duration::from_secs(60), Some(killed))
                .await
                .expect("new leader");
            chaos!(
                "cas ({label}): new leader {} after {}",
                cluster.nodes[leader].name,
                secs(t.elapsed())
            );
        }
        Fault::PartitionLeader => {
            tokio::time::sleep(RUN / 3).await;
            let l = cluster
                .wait_for_leader(Duration::from_secs(30), None)
                .await
                .expect("leader");
            let others: Vec<String> = (0..cluster.nodes.len())
                .filter(|i| *i != l)
                .map(|i| cluster.nodes[i].ip.clone())
                .collect();
            let majority: Vec<String> = (0..cluster.nodes.len())
                .filter(|i| *i != l)
                .map(|i| cluster.base(i))
                .collect();
            let p = Partition::isolate(&cluster.nodes[l].ip, &others).expect("partition");
            let t = Instant::now();
            // A probe writer on the majority with short timeouts: the time
            // to its first acknowledged write is the cluster's recovery,
            // not a client timeout.
            let probe_api = api.with_timeout(Duration::from_millis(300));
            let probe = tokio::spawn(async move {
                let mut i = 0usize;
                loop {
                    let base = &majority[i % majority.len()];
                    i += 1;
                    if let KvWrite::Ok(_) =
                        kv_write(&probe_api, base, "probe/partition", &format!("p{i}"), None).await
                    {
                        return t.elapsed();
                    }
                    if t.elapsed() > Duration::from_secs(30) {
                        return t.elapsed();
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            });
            chaos!(
                "cas ({label}): leader {} cut from its peers at {}",
                cluster.nodes[l].name,
                secs(t - t0)
            );
            partition = Some(p);
            match cluster.wait_for_leader(RUN / 3, Some(l)).await {
                Ok(n) => chaos!(
                    "cas ({label}): majority elected {} {} after the cut",
                    cluster.nodes[n].name,
                    secs(t.elapsed())
                ),
                Err(e) => chaos!("cas ({label}): no new leader during the cut: {e}"),
            }
            let recovery = probe.await.expect("probe");
            chaos!(
                "cas ({label}): partition to the majority's first acknowledged write: {}",
                secs(recovery)
            );
            assert!(
                recovery < Duration::from_secs(5),
                "the majority took {recovery:?} to accept writes"
            );
            // The old leader, still reachable by clients, must not answer a
            // (linearizable) read once its lease is over.
            let r = api
                .with_timeout(Duration::from_secs(8))
                .get(&cluster.url(l, "/v1/secret/data/reg/a"))
                .await;
            chaos!(
                "cas ({label}): read on the cut-off old leader {} after the cut: status {} ({})",
                secs(t.elapsed()),
                r.status,
                r.describe()
            );
            assert!(
                !r.ok(),
                "the cut-off old leader answered a read: {}",
                r.describe()
            );
            tokio::time::sleep((RUN / 3).saturating_sub(t.elapsed())).await;
            partition.as_mut().unwrap().heal();
            chaos!("cas ({label}): partition healed at {}", secs(t0.elapsed()));
        }
        Fault::RestartAll => {
            tokio::time::sleep(RUN / 2).await;
            let t = Instant::now();
            let leader = cluster.restart_all().await.expect("restart all");
            chaos!(
                "cas ({label}): all nodes killed and restarted at {}; unsealed with leader {} after {}",
                secs(t - t0),
                cluster.nodes[leader].name,
                secs(t.elapsed())
            );
        }
    }
    for t in tasks {
        t.await.expect("client task");
    }
    drop(partition);
    let ops = rec.ops();
    let answered = ops.iter().filter(|o| !o.is_indeterminate()).count();
    chaos!(
        "cas ({label}): {} ops recorded from {CLIENTS} clients in {} ({answered} answered, {} indeterminate), seed {seed}",
        ops.len(),
        secs(t0.elapsed()),
        ops.len() - answered
    );
    let t = Instant::now();
    let result = tokio::task::spawn_blocking(move || check(&ops))
        .await
        .expect("checker task");
    match result {
        Ok(summary) => {
            for line in summary.to_string().lines() {
                chaos!("cas ({label}): {line}");
            }
            assert!(
                summary.keys.iter().any(|k| k.cas_ok > 0),
                "no CAS succeeded: the run tested little\n{summary}"
            );
            chaos!(
                "cas ({label}): linearizable: ok (checked in {})",
                secs(t.elapsed())
            );
        }
        Err(e) => panic!("cas ({label}): history rejected: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cas_linearizable() {
    run(Fault::None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cas_linearizable_with_leader_kill() {
    run(Fault::KillLeader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cas_linearizable_with_leader_partition() {
    run(Fault::PartitionLeader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cas_linearizable_with_restart_of_all_nodes() {
    run(Fault::RestartAll).await;
}
