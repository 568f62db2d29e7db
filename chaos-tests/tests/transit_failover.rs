//! Transit availability across a leader failure: on a 3-node cluster with
//! an `aes256-gcm96` key `k` and an `ed25519` key `s`, every node runs two
//! loops against itself while the leader is killed with kill -9: encrypt a
//! fresh payload and decrypt the ciphertext (both on that node), and sign
//! an input and verify the signature (both on that node). Figures: answers
//! and the longest gap per survivor and operation. Asserted: no wrong
//! answer ever (a decryption that differs from what was encrypted, a
//! signature that does not verify), each survivor answered every
//! operation after the kill, and no gap reached 5 s (a generous bound:
//! CI shares 2 cores). A ciphertext made before the kill decrypts to its
//! plaintext on every survivor afterwards. Then `k` is rotated through a
//! standby under the new leader: the very next encryption on that standby
//! is `vault:v2:` (the standby applied the rotation before answering it),
//! and every survivor reads `latest_version` 2.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arca_chaos::{chaos, longest_gap, secs, serial, Api, Cluster, Reply, START_TIMEOUT};
use base64::Engine as _;
use serde_json::json;

const BEFORE_KILL: Duration = Duration::from_secs(2);
const AFTER_KILL: Duration = Duration::from_secs(6);
/// The only bound on a survivor's longest gap.
const GAP_LIMIT: Duration = Duration::from_secs(5);
/// Client timeout of one call in the loops.
const LOOP_CALL_TIMEOUT: Duration = Duration::from_millis(800);

const OPS: [&str; 4] = ["encrypt", "decrypt", "sign", "verify"];

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// `data.<field>` of a reply, if it is a string.
fn data_str(r: &Reply, field: &str) -> Option<String> {
    r.body["data"][field].as_str().map(str::to_string)
}

/// What one loop saw: successful answers per operation (from [`OPS`]),
/// wrong answers, and the last failure of each operation.
struct Seen {
    node: usize,
    /// The two operations of this loop.
    ops: [&'static str; 2],
    ok: Vec<(&'static str, Instant)>,
    wrong: Vec<String>,
    last_failure: Vec<(&'static str, String)>,
}

impl Seen {
    fn new(node: usize, ops: [&'static str; 2]) -> Seen {
        Seen {
            node,
            ops,
            ok: Vec::new(),
            wrong: Vec::new(),
            last_failure: Vec::new(),
        }
    }

    fn failed(&mut self, op: &'static str, r: &Reply) {
        self.last_failure.retain(|(o, _)| *o != op);
        self.last_failure.push((op, r.describe()));
    }

    fn times(&self, op: &str) -> Vec<Instant> {
        self.ok
            .iter()
            .filter(|(o, _)| *o == op)
            .map(|(_, t)| *t)
            .collect()
    }
}

/// Encrypt a fresh payload with `k` on `base`, then decrypt that
/// ciphertext on `base` (retrying the decryption until it answers), until
/// `stop`.
async fn crypt_loop(api: Api, base: String, node: usize, stop: Arc<AtomicBool>) -> Seen {
    let mut seen = Seen::new(node, ["encrypt", "decrypt"]);
    let mut n = 0u64;
    let mut pending: Option<(String, String)> = None;
    while !stop.load(Ordering::Relaxed) {
        match pending.take() {
            None => {
                n += 1;
                let plaintext = b64(&format!("node{}-payload-{n}", node + 1));
                let r = api
                    .post(
                        &format!("{base}/v1/transit/encrypt/k"),
                        &json!({ "plaintext": plaintext }),
                    )
                    .await;
                match data_str(&r, "ciphertext") {
                    Some(c) if r.ok() && c.starts_with("vault:v1:") => {
                        seen.ok.push(("encrypt", Instant::now()));
                        pending = Some((c, plaintext));
                    }
                    Some(c) if r.ok() => seen.wrong.push(format!("encrypt answered {c}")),
                    _ => seen.failed("encrypt", &r),
                }
            }
            Some((ciphertext, plaintext)) => {
                let r = api
                    .post(
                        &format!("{base}/v1/transit/decrypt/k"),
                        &json!({ "ciphertext": ciphertext }),
                    )
                    .await;
                if r.ok() {
                    if data_str(&r, "plaintext").as_deref() == Some(plaintext.as_str()) {
                        seen.ok.push(("decrypt", Instant::now()));
                    } else {
                        seen.wrong.push(format!(
                            "decrypt of {ciphertext} (of {plaintext}): {}",
                            r.describe()
                        ));
                    }
                } else {
                    seen.failed("decrypt", &r);
                    pending = Some((ciphertext, plaintext));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    seen
}

/// Sign a fresh input with `s` on `base`, then verify the signature on
/// `base` (retrying the verification until it answers), until `stop`.
async fn sign_loop(api: Api, base: String, node: usize, stop: Arc<AtomicBool>) -> Seen {
    let mut seen = Seen::new(node, ["sign", "verify"]);
    let mut n = 0u64;
    let mut pending: Option<(String, String)> = None;
    while !stop.load(Ordering::Relaxed) {
        match pending.take() {
            None => {
                n += 1;
                let input = b64(&format!("node{}-message-{n}", node + 1));
                let r = api
                    .post(
                        &format!("{base}/v1/transit/sign/s"),
                        &json!({ "input": input }),
                    )
                    .await;
                match data_str(&r, "signature") {
                    Some(sig) if r.ok() && sig.starts_with("vault:v1:") => {
                        seen.ok.push(("sign", Instant::now()));
                        pending = Some((sig, input));
                    }
                    Some(sig) if r.ok() => seen.wrong.push(format!("sign answered {sig}")),
                    _ => seen.failed("sign", &r),
                }
            }
            Some((signature, input)) => {
                let r = api
                    .post(
                        &format!("{base}/v1/transit/verify/s"),
                        &json!({ "input": input, "signature": signature }),
                    )
                    .await;
                if r.ok() {
                    if r.body["data"]["valid"] == json!(true) {
                        seen.ok.push(("verify", Instant::now()));
                    } else {
                        seen.wrong.push(format!(
                            "verify of its own signature {signature}: {}",
                            r.describe()
                        ));
                    }
                } else {
                    seen.failed("verify", &r);
                    pending = Some((signature, input));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    seen
}

/// `POST {url}` until it answers 2xx (transport errors and 5xx retried),
/// at most `timeout`; the last reply.
async fn post_until_ok(api: &Api, url: &str, body: &serde_json::Value, timeout: Duration) -> Reply {
    let deadline = Instant::now() + timeout;
    loop {
        let r = api.post(url, body).await;
        if r.ok() || (r.status >= 400 && r.status < 500) || Instant::now() > deadline {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transit_keeps_answering_through_a_leader_kill() {
    let _serial = serial().await;
    let mut cluster = Cluster::start(3).await.expect("start cluster");
    let api = cluster.api();
    let n = cluster.nodes.len();
    let leader = cluster.leader().await.expect("a leader");
    let base = cluster.base(leader);
    let ok = |r: Reply, what: &str| {
        assert!(r.ok(), "{what}: {}", r.describe());
        r
    };
    ok(
        api.post(
            &format!("{base}/v1/sys/mounts/transit"),
            &json!({"type": "transit"}),
        )
        .await,
        "enable transit",
    );
    for (key, kind) in [("k", "aes256-gcm96"), ("s", "ed25519")] {
        ok(
            api.post(
                &format!("{base}/v1/transit/keys/{key}"),
                &json!({ "type": kind }),
            )
            .await,
            "create key",
        );
    }
    let p0 = b64("made before the kill");
    let c0 = data_str(
        &ok(
            api.post(
                &format!("{base}/v1/transit/encrypt/k"),
                &json!({ "plaintext": p0 }),
            )
            .await,
            "encrypt C0",
        ),
        "ciphertext",
    )
    .expect("C0: data.ciphertext");
    assert!(c0.starts_with("vault:v1:"), "C0 = {c0}");

    // Every node serves both keys before the clock starts.
    for i in 0..n {
        let url = cluster.url(i, "/v1/transit/decrypt/k");
        let r = post_until_ok(&api, &url, &json!({ "ciphertext": c0 }), START_TIMEOUT).await;
        assert_eq!(
            data_str(&r, "plaintext").as_deref(),
            Some(p0.as_str()),
            "C0 on node{} before the kill: {}",
            i + 1,
            r.describe()
        );
        let url = cluster.url(i, "/v1/transit/sign/s");
        let r = post_until_ok(&api, &url, &json!({ "input": b64("x") }), START_TIMEOUT).await;
        assert!(r.ok(), "sign on node{}: {}", i + 1, r.describe());
    }

    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..n {
        let looping = api.with_timeout(LOOP_CALL_TIMEOUT);
        tasks.push(tokio::spawn(crypt_loop(
            looping.clone(),
            cluster.base(i),
            i,
            stop.clone(),
        )));
        tasks.push(tokio::spawn(sign_loop(
            looping,
            cluster.base(i),
            i,
            stop.clone(),
        )));
    }
    tokio::time::sleep(BEFORE_KILL).await;
    let killed = cluster.kill_leader().await.expect("kill leader");
    let t_kill = Instant::now();
    chaos!(
        "transit: kill -9 of leader {} at {}",
        cluster.nodes[killed].name,
        secs(t_kill - t0)
    );
    tokio::time::sleep(AFTER_KILL).await;
    stop.store(true, Ordering::Relaxed);
    let t_end = Instant::now();
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.expect("loop task"));
    }

    let mut problems = Vec::new();
    for s in &seen {
        for w in &s.wrong {
            problems.push(format!("node{}: wrong answer: {w}", s.node + 1));
        }
    }
    for op in OPS {
        let mut worst = (Duration::ZERO, 0);
        for i in (0..n).filter(|i| *i != killed) {
            let s = seen
                .iter()
                .find(|s| s.node == i && s.ops.contains(&op))
                .expect("a loop per node and operation");
            let times = s.times(op);
            let (gap, from) = longest_gap(&times, t0, t_end);
            let after: Vec<&Instant> = times.iter().filter(|t| **t > t_kill).collect();
            let first_after = after.first().map(|t| secs(**t - t_kill));
            chaos!(
                "transit: {op} on node{} (survivor): {} answers ({} after the kill, first {} after it), longest gap {} (from {})",
                i + 1,
                times.len(),
                after.len(),
                first_after.unwrap_or_else(|| "never".into()),
                secs(gap),
                secs(from - t0)
            );
            if gap > worst.0 {
                worst = (gap, i);
            }
            let last = s
                .last_failure
                .iter()
                .find(|(o, _)| *o == op)
                .map(|(_, e)| e.as_str())
                .unwrap_or("none");
            if after.is_empty() {
                problems.push(format!(
                    "{op} on node{}: no successful answer after the kill (last failure: {last})",
                    i + 1
                ));
            }
            if gap >= GAP_LIMIT {
                problems.push(format!(
                    "{op} on node{}: stalled {} from {} (limit {}; last failure: {last})",
                    i + 1,
                    secs(gap),
                    secs(from - t0),
                    secs(GAP_LIMIT)
                ));
            }
        }
        chaos!(
            "transit: {op}: longest gap on any survivor {} (node{})",
            secs(worst.0),
            worst.1 + 1
        );
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // The ciphertext made before the kill decrypts on every survivor.
    let survivors: Vec<usize> = (0..n).filter(|i| *i != killed).collect();
    for &i in &survivors {
        let url = cluster.url(i, "/v1/transit/decrypt/k");
        let r = post_until_ok(&api, &url, &json!({ "ciphertext": c0 }), START_TIMEOUT).await;
        assert_eq!(
            data_str(&r, "plaintext").as_deref(),
            Some(p0.as_str()),
            "C0 on node{} after the kill: {}",
            i + 1,
            r.describe()
        );
    }
    chaos!("transit: the ciphertext made before the kill decrypts on every survivor");

    // Rotation through a standby of the new leader is visible on that
    // standby as soon as the rotation has answered.
    let new_leader = cluster
        .wait_healthy(START_TIMEOUT)
        .await
        .expect("a new leader, survivors healthy");
    let standby = *survivors
        .iter()
        .find(|i| **i != new_leader)
        .expect("a standby");
    let slow = api.with_timeout(Duration::from_secs(30));
    let t_rotate = Instant::now();
    ok(
        slow.post(
            &cluster.url(standby, "/v1/transit/keys/k/rotate"),
            &json!({}),
        )
        .await,
        "rotate k through a standby",
    );
    let rotate_took = t_rotate.elapsed();
    let r = ok(
        slow.post(
            &cluster.url(standby, "/v1/transit/encrypt/k"),
            &json!({ "plaintext": p0 }),
        )
        .await,
        "encrypt on the standby after the rotation",
    );
    let c2 = data_str(&r, "ciphertext").expect("data.ciphertext");
    assert!(
        c2.starts_with("vault:v2:"),
        "the encryption right after a rotation through standby {} (leader {}) is {c2}, not vault:v2:",
        cluster.nodes[standby].name,
        cluster.nodes[new_leader].name
    );
    for &i in &survivors {
        let r = ok(
            api.get(&cluster.url(i, "/v1/transit/keys/k")).await,
            "read key k",
        );
        assert_eq!(
            r.body["data"]["latest_version"],
            json!(2),
            "latest_version of k on node{}: {}",
            i + 1,
            r.describe()
        );
        for (c, what) in [(&c0, "C0"), (&c2, "the v2 ciphertext")] {
            let r = ok(
                api.post(
                    &cluster.url(i, "/v1/transit/decrypt/k"),
                    &json!({ "ciphertext": c }),
                )
                .await,
                "decrypt after the rotation",
            );
            assert_eq!(
                data_str(&r, "plaintext").as_deref(),
                Some(p0.as_str()),
                "{what} on node{} after the rotation: {}",
                i + 1,
                r.describe()
            );
        }
    }
    chaos!(
        "transit: rotation through standby {} took {} (leader {}); its next encryption is vault:v2:, every survivor reads latest_version 2 and decrypts v1 and v2",
        cluster.nodes[standby].name,
        secs(rotate_took),
        cluster.nodes[new_leader].name
    );
}
