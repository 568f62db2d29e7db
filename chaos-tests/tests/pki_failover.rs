//! PKI availability across a leader failure: every node is polled for the
//! CA (`ca/pem`), the CRL (`crl`), an OCSP answer (GET form) and `no_store`
//! issuance while the leader is killed with kill -9; stored issuance is
//! polled through the survivors. Figures: the longest gap of each kind on
//! the survivors (goal: none for CA, CRL, OCSP and no_store issuance; a few
//! seconds at most for stored issuance). A certificate revoked before the
//! kill must be in the CRL every survivor serves, and every survivor's OCSP
//! answer must say "revoked" and verify with `openssl ocsp`.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arca_chaos::{chaos, longest_gap, secs, serial, Cluster};
use serde_json::json;

const BEFORE_KILL: Duration = Duration::from_secs(2);
const AFTER_KILL: Duration = Duration::from_secs(6);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pki_keeps_answering_through_a_leader_kill() {
    let _serial = serial().await;
    let mut cluster = Cluster::start(3).await.expect("start cluster");
    let api = cluster.api();
    let n = cluster.nodes.len();
    let base0 = cluster.base(0);
    let ok = |r: arca_chaos::Reply, what: &str| {
        assert!(r.ok(), "{what}: {}", r.describe());
        r
    };
    ok(
        api.post(
            &format!("{base0}/v1/sys/mounts/pki"),
            &json!({"type": "pki"}),
        )
        .await,
        "enable pki",
    );
    ok(
        api.post(
            &format!("{base0}/v1/pki/root/generate/internal"),
            &json!({"common_name": "Chaos Root", "key_type": "ec", "ttl": "87600h"}),
        )
        .await,
        "root",
    );
    for (role, no_store) in [("fast", true), ("kept", false)] {
        ok(
            api.post(
                &format!("{base0}/v1/pki/roles/{role}"),
                &json!({"allow_any_name": true, "key_type": "ec", "no_store": no_store}),
            )
            .await,
            "role",
        );
    }
    let leaf = ok(
        api.post(
            &format!("{base0}/v1/pki/issue/kept"),
            &json!({"common_name": "gone.example"}),
        )
        .await,
        "issue",
    );
    let revoked = leaf.body["data"]["serial_number"]
        .as_str()
        .unwrap()
        .to_string();
    ok(
        api.post(
            &format!("{base0}/v1/pki/revoke"),
            &json!({"serial_number": revoked}),
        )
        .await,
        "revoke",
    );

    // The OCSP request for the revoked certificate, made by openssl.
    let dir = tempfile::tempdir().unwrap();
    let root = api.get(&format!("{base0}/v1/pki/ca/pem")).await;
    std::fs::write(dir.path().join("root.pem"), root.body.as_str().unwrap()).unwrap();
    std::fs::write(
        dir.path().join("leaf.pem"),
        leaf.body["data"]["certificate"].as_str().unwrap(),
    )
    .unwrap();
    let out = Command::new("openssl")
        .args([
            "ocsp",
            "-issuer",
            "root.pem",
            "-cert",
            "leaf.pem",
            "-no_nonce",
            "-reqout",
            "req.der",
        ])
        .current_dir(dir.path())
        .output()
        .expect("openssl");
    assert!(out.status.success(), "{out:?}");
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD
        .encode(std::fs::read(dir.path().join("req.der")).unwrap());
    let ocsp_path: String = format!(
        "/v1/pki/ocsp/{}",
        form_urlencoded::byte_serialize(b64.as_bytes()).collect::<String>()
    );

    // Pollers: per node, CA, CRL, OCSP and no_store issuance; stored
    // issuance on all.
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..n {
        for kind in ["ca", "crl", "ocsp", "no_store", "stored"] {
            let (api, stop, base, ocsp_path) = (
                api.with_timeout(Duration::from_millis(800)),
                stop.clone(),
                cluster.base(i),
                ocsp_path.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut ok_at = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let r = match kind {
                        "ca" => api.get(&format!("{base}/v1/pki/ca/pem")).await,
                        "crl" => api.get(&format!("{base}/v1/pki/crl")).await,
                        "ocsp" => api.get(&format!("{base}{ocsp_path}")).await,
                        "no_store" => {
                            api.post(
                                &format!("{base}/v1/pki/issue/fast"),
                                &json!({"common_name": "x.example"}),
                            )
                            .await
                        }
                        _ => {
                            api.post(
                                &format!("{base}/v1/pki/issue/kept"),
                                &json!({"common_name": "y.example"}),
                            )
                            .await
                        }
                    };
                    if r.ok() {
                        ok_at.push(Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                (i, kind, ok_at)
            }));
        }
    }
    tokio::time::sleep(BEFORE_KILL).await;
    let killed = cluster.kill_leader().await.expect("kill leader");
    let t_kill = Instant::now();
    chaos!(
        "pki: kill -9 of leader {} at {}",
        cluster.nodes[killed].name,
        secs(t_kill - t0)
    );
    tokio::time::sleep(AFTER_KILL).await;
    stop.store(true, Ordering::Relaxed);
    let t_end = Instant::now();
    for t in tasks {
        let (i, kind, ok_at) = t.await.expect("poller");
        if i == killed {
            continue;
        }
        let (gap, from) = longest_gap(&ok_at, t0, t_end);
        chaos!(
            "pki: {kind} on node{} (survivor): {} answers, longest gap {} (from {})",
            i + 1,
            ok_at.len(),
            secs(gap),
            secs(from - t0)
        );
        let limit = if kind == "stored" {
            Duration::from_secs(5)
        } else {
            Duration::from_millis(1500)
        };
        assert!(
            gap < limit,
            "{kind} on node{} stalled {} (limit {})",
            i + 1,
            secs(gap),
            secs(limit)
        );
    }

    // The revoked serial is in the CRL of every survivor, and its OCSP
    // answer says so.
    for i in (0..n).filter(|i| *i != killed) {
        let r = api.get(&cluster.url(i, "/v1/pki/crl/pem")).await;
        let pem = r.body.as_str().unwrap_or_default().to_string();
        let path = dir.path().join(format!("crl{i}.pem"));
        std::fs::write(&path, pem).unwrap();
        let out = Command::new("openssl")
            .args(["crl", "-in", path.to_str().unwrap(), "-noout", "-text"])
            .output()
            .expect("openssl");
        let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
        assert!(
            text.contains(&revoked.replace(':', "").to_lowercase()),
            "node{}'s CRL lacks the revoked serial:\n{text}",
            i + 1
        );
    }
    for i in (0..n).filter(|i| *i != killed) {
        let path = dir.path().join(format!("ocsp{i}.der"));
        let out = Command::new("curl")
            .args([
                "-sf",
                "-o",
                path.to_str().unwrap(),
                &cluster.url(i, &ocsp_path),
            ])
            .output()
            .expect("curl");
        assert!(out.status.success(), "OCSP from node{}: {out:?}", i + 1);
        let out = Command::new("openssl")
            .args([
                "ocsp",
                "-respin",
                path.to_str().unwrap(),
                "-issuer",
                "root.pem",
                "-CAfile",
                "root.pem",
                "-cert",
                "leaf.pem",
            ])
            .current_dir(dir.path())
            .output()
            .expect("openssl");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            text.contains("Response verify OK") && text.contains("leaf.pem: revoked"),
            "node{}'s OCSP answer: {text}",
            i + 1
        );
    }
    chaos!("pki: the serial revoked before the kill is in the CRL of every survivor, and their OCSP answers say revoked");
}
