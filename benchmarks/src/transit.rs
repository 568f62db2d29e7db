//! `arca-bench transit`: the transit secrets engine of `arca server -dev`
//! and `bao server -dev` (OpenBao), one after the other, on this machine;
//! with `--nodes N` (N > 1), of a raft cluster of N nodes of each server
//! instead, started and formed exactly as `arca-bench cluster` and
//! `arca-bench logins --nodes N` do (`cluster::Cluster`, `cluster::form`).
//!
//! For each server: mount `transit/`, create three keys through node 1
//! (`bench-aes` aes256-gcm96, `bench-ed` ed25519, `bench-p256`
//! ecdsa-p256), make one ciphertext and one signature of each signing key,
//! then check every operation once on every node (the keys reach a
//! standby by replication; a wrong answer stops the benchmark): the
//! ciphertext is `vault:v1:` and decrypts to the plaintext, a batch
//! answers 1000 ciphertexts and no error, signatures verify (`valid:
//! true`), the HMAC is `vault:v1:`. Then load phases of `--duration` with
//! `--concurrency` keep-alive connections each (connection `i` to node
//! `i mod N`), every request a `POST` with a 1 KiB input (random bytes,
//! base64 in the body):
//! 1. `transit/encrypt/bench-aes {"plaintext"}`;
//! 2. `transit/decrypt/bench-aes {"ciphertext"}` (the ciphertext made in
//!    setup);
//! 3. `transit/encrypt/bench-aes {"batch_input": [1000 × {"plaintext"}]}`
//!    (items per second = requests per second × 1000);
//! 4. `transit/sign/bench-ed {"input"}`, 5. `transit/verify/bench-ed
//!    {"input","signature"}`;
//! 6. `transit/sign/bench-p256 {"input"}` (SHA2-256, ASN.1 signature),
//!    7. `transit/verify/bench-p256 {"input","signature"}`;
//! 8. `transit/hmac/bench-aes {"input","algorithm":"sha2-256"}`.
//!
//! The load counts a 2xx answer as a success; what the answers contain is
//! checked in the setup above only. OpenBao refuses JSON bodies of more
//! than 1000 strings by default (`max_request_json_strings`, a listener
//! option), and a 1000-item batch has 2001: its dev server gets a second
//! listener with the limit lifted (`-config`), which the load uses. The
//! cluster nodes' configuration is `cluster.rs`'s, with OpenBao's default,
//! so there a server that refuses a phase's request in the setup check
//! ("high complexity") has that phase skipped and reported as refused.
//!
//! Results: markdown on stdout (throughput, items per second, p50/p99
//! latency per request, requests per server CPU second — summed over the
//! nodes of a cluster, with each node's share —, Arca/OpenBao ratios, peak
//! RSS), `transit-latest.json` / `transit-latest.md` in `--out-dir`
//! (`transit-cluster-latest.*` with `--nodes` > 1).

use super::cluster::start;
use super::pki::{load, Client, Load, LoadCtx, MakeReq};
use super::*;

/// Bytes of every plaintext, signed input and HMAC input.
const INPUT_BYTES: usize = 1024;
/// Items of one batch encryption.
const BATCH_ITEMS: usize = 1000;

const AES_KEY: &str = "bench-aes";
const ED_KEY: &str = "bench-ed";
const P256_KEY: &str = "bench-p256";

struct Phase {
    name: &'static str,
    label: &'static str,
    /// Items one request carries (batch: [`BATCH_ITEMS`]).
    items: u64,
}

const PHASES: [Phase; 8] = [
    Phase {
        name: "encrypt_1k",
        label: "encrypt 1 KiB",
        items: 1,
    },
    Phase {
        name: "decrypt_1k",
        label: "decrypt 1 KiB",
        items: 1,
    },
    Phase {
        name: "batch_encrypt_1000",
        label: "batch encrypt 1000 × 1 KiB",
        items: BATCH_ITEMS as u64,
    },
    Phase {
        name: "sign_ed25519",
        label: "sign ed25519",
        items: 1,
    },
    Phase {
        name: "verify_ed25519",
        label: "verify ed25519",
        items: 1,
    },
    Phase {
        name: "sign_ecdsa_p256",
        label: "sign ecdsa-p256",
        items: 1,
    },
    Phase {
        name: "verify_ecdsa_p256",
        label: "verify ecdsa-p256",
        items: 1,
    },
    Phase {
        name: "hmac_sha2_256",
        label: "hmac sha2-256",
        items: 1,
    },
];

/// Standard base64 with padding (the encoding Vault's transit API takes).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `len` pseudo-random bytes, base64 (deterministic per `seed`).
fn random_b64(seed: u64, len: usize) -> String {
    let mut r = XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let bytes: Vec<u8> = (0..len).map(|_| r.next() as u8).collect();
    base64(&bytes)
}

/// What setup made: the inputs and outputs the phases' requests carry.
struct Fixtures {
    plaintext: String,
    ciphertext: String,
    input: String,
    ed_signature: String,
    p256_signature: String,
    batch: Bytes,
}

fn data_str(v: &Value, field: &str) -> Result<String> {
    v["data"][field]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("no data.{field} in {v}"))
}

async fn post_json(c: &mut Client, path: &str, body: Value) -> Result<Value> {
    let b = c.post(path, body).await?;
    serde_json::from_slice(&b).with_context(|| format!("{path}: not JSON"))
}

/// Mounts `transit/`, creates the keys and makes the fixtures (through
/// node 1).
async fn setup(c: &mut Client) -> Result<Fixtures> {
    c.post("/v1/sys/mounts/transit", json!({"type": "transit"}))
        .await?;
    for (key, kind) in [
        (AES_KEY, "aes256-gcm96"),
        (ED_KEY, "ed25519"),
        (P256_KEY, "ecdsa-p256"),
    ] {
        c.post(&format!("/v1/transit/keys/{key}"), json!({"type": kind}))
            .await?;
    }
    let plaintext = random_b64(1, INPUT_BYTES);
    let input = random_b64(2, INPUT_BYTES);
    let v = post_json(
        c,
        &format!("/v1/transit/encrypt/{AES_KEY}"),
        json!({"plaintext": plaintext}),
    )
    .await?;
    let ciphertext = data_str(&v, "ciphertext")?;
    let mut signatures = Vec::new();
    for key in [ED_KEY, P256_KEY] {
        let v = post_json(
            c,
            &format!("/v1/transit/sign/{key}"),
            json!({"input": input}),
        )
        .await?;
        signatures.push(data_str(&v, "signature")?);
    }
    let items: Vec<Value> = (0..BATCH_ITEMS)
        .map(|i| json!({"plaintext": random_b64(100 + i as u64, INPUT_BYTES)}))
        .collect();
    let p256_signature = signatures.pop().unwrap_or_default();
    let ed_signature = signatures.pop().unwrap_or_default();
    Ok(Fixtures {
        plaintext,
        ciphertext,
        input,
        ed_signature,
        p256_signature,
        batch: Bytes::from(json!({ "batch_input": items }).to_string()),
    })
}

/// The request of phase `name`: path and body.
fn request(name: &str, f: &Fixtures) -> (String, Bytes) {
    let body = |v: Value| Bytes::from(v.to_string());
    match name {
        "encrypt_1k" => (
            format!("/v1/transit/encrypt/{AES_KEY}"),
            body(json!({"plaintext": f.plaintext})),
        ),
        "decrypt_1k" => (
            format!("/v1/transit/decrypt/{AES_KEY}"),
            body(json!({"ciphertext": f.ciphertext})),
        ),
        "batch_encrypt_1000" => (format!("/v1/transit/encrypt/{AES_KEY}"), f.batch.clone()),
        "sign_ed25519" => (
            format!("/v1/transit/sign/{ED_KEY}"),
            body(json!({"input": f.input})),
        ),
        "verify_ed25519" => (
            format!("/v1/transit/verify/{ED_KEY}"),
            body(json!({"input": f.input, "signature": f.ed_signature})),
        ),
        "sign_ecdsa_p256" => (
            format!("/v1/transit/sign/{P256_KEY}"),
            body(json!({"input": f.input})),
        ),
        "verify_ecdsa_p256" => (
            format!("/v1/transit/verify/{P256_KEY}"),
            body(json!({"input": f.input, "signature": f.p256_signature})),
        ),
        _ => (
            format!("/v1/transit/hmac/{AES_KEY}"),
            body(json!({"input": f.input, "algorithm": "sha2-256"})),
        ),
    }
}

/// Checks what one phase's request answers (an `Err` is a wrong answer).
fn check_answer(name: &str, f: &Fixtures, v: &Value) -> Result<()> {
    let vault_v1 = |field: &str| -> Result<()> {
        let s = data_str(v, field)?;
        if !s.starts_with("vault:v1:") {
            bail!("data.{field} is {s:?}, not vault:v1:...");
        }
        Ok(())
    };
    match name {
        "encrypt_1k" => vault_v1("ciphertext"),
        "decrypt_1k" => {
            if data_str(v, "plaintext")? != f.plaintext {
                bail!("decrypted plaintext differs from what was encrypted");
            }
            Ok(())
        }
        "batch_encrypt_1000" => {
            let results = v["data"]["batch_results"]
                .as_array()
                .ok_or_else(|| anyhow!("no data.batch_results"))?;
            if results.len() != BATCH_ITEMS {
                bail!("{} batch_results, not {BATCH_ITEMS}", results.len());
            }
            for (i, r) in results.iter().enumerate() {
                let ok = r["ciphertext"]
                    .as_str()
                    .is_some_and(|c| c.starts_with("vault:v1:"));
                let err = r["error"].as_str().unwrap_or_default();
                if !ok || !err.is_empty() {
                    bail!("batch_results[{i}] = {r}");
                }
            }
            Ok(())
        }
        "sign_ed25519" | "sign_ecdsa_p256" => vault_v1("signature"),
        "verify_ed25519" | "verify_ecdsa_p256" => {
            if v["data"]["valid"] != json!(true) {
                bail!("data.valid is {}", v["data"]["valid"]);
            }
            Ok(())
        }
        _ => vault_v1("hmac"),
    }
}

/// Why a server refuses a phase's request outright (a limit of its
/// configuration, not a failure), from its answer; the phase is then
/// skipped for that server.
fn refusal(status: u16, body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    // OpenBao: at most `max_request_json_strings` (default 1000) strings,
    // keys and values, in a request body.
    (status == 400 && text.contains("high complexity")).then(|| {
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let why = v["errors"][0].as_str().map(str::to_string);
        format!("HTTP 400 {}", why.unwrap_or_else(|| text.into_owned()))
    })
}

/// Runs every phase's request once on every node and checks the answer;
/// retries for up to 60 s while a node answers an error (a standby that
/// has not yet applied the mount or the keys). Returns the phases the
/// server refuses (see [`refusal`]) with the reason.
async fn check_everywhere(
    name: &str,
    targets: &[Target],
    f: &Fixtures,
) -> Result<Vec<(&'static str, String)>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut refused: Vec<(&'static str, String)> = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        for p in &PHASES {
            if refused.iter().any(|(n, _)| *n == p.name) {
                continue;
            }
            let (path, body) = request(p.name, f);
            loop {
                let why = match once(t, Method::POST, &path, Some(body.clone())).await {
                    Ok((200, b)) => {
                        let v: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
                        check_answer(p.name, f, &v).with_context(|| {
                            format!("{name}: {} through node{}: wrong answer", p.label, i + 1)
                        })?;
                        break;
                    }
                    Ok((s, b)) => match refusal(s, &b) {
                        Some(why) => {
                            eprintln!(
                                "[{name}] {} refused through node{}, phase skipped: {why}",
                                p.label,
                                i + 1
                            );
                            refused.push((p.name, why));
                            break;
                        }
                        None => format!("HTTP {s} {}", String::from_utf8_lossy(&b)),
                    },
                    Err(e) => e.to_string(),
                };
                if Instant::now() > deadline {
                    bail!("{name}: {} through node{}: {why}", p.label, i + 1);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    Ok(refused)
}

/// An OpenBao dev server that takes a 1000-item batch: OpenBao refuses a
/// JSON body of more than 1000 strings (`max_request_json_strings`, a
/// listener option), and a batch of 1000 items has 2001. `-config` adds a
/// second listener with the limit lifted (the dev listener keeps its
/// defaults); the load goes to it.
fn start_openbao_dev(cfg: &Config, out_dir: &Path) -> Result<ServerProc> {
    let dev_port = free_port_pair()?;
    let port = match cfg.bao_port {
        Some(p) => p,
        None => free_port_pair()?,
    };
    let hcl = out_dir.join("transit-openbao-listener.hcl");
    std::fs::write(
        &hcl,
        format!(
            "listener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_disable = true\n  max_request_json_strings = -1\n}}\n"
        ),
    )
    .with_context(|| format!("write {}", hcl.display()))?;
    let args = [
        "server".to_string(),
        "-dev".to_string(),
        format!("-dev-root-token-id={ROOT_TOKEN}"),
        format!("-dev-listen-address=127.0.0.1:{dev_port}"),
        format!("-config={}", hcl.display()),
    ];
    ServerProc::spawn(
        ServerKind::OpenBao,
        Path::new(&cfg.bao_bin),
        &args,
        None,
        format!("127.0.0.1:{port}"),
        out_dir.join("openbao-server.log"),
    )
}

/// The dev server of `kind`: OpenBao's with the JSON limit lifted.
fn dev_server(kind: ServerKind, cfg: &Config, out_dir: &Path) -> Result<ServerProc> {
    match kind {
        ServerKind::Arca => ServerProc::start(kind, cfg, out_dir),
        ServerKind::OpenBao => start_openbao_dev(cfg, out_dir),
    }
}

async fn bench_server(kind: ServerKind, cfg: &Config, out_dir: &Path) -> Result<Value> {
    let name = kind.name();
    let mut running = start(kind, cfg, out_dir, dev_server).await?;
    let pids = running.pids.clone();
    let samplers: Vec<MemSampler> = pids.iter().map(|&p| MemSampler::start(p)).collect();
    let targets: Vec<Target> = running
        .addrs
        .iter()
        .map(|a| Target {
            addr: a.clone(),
            token: running.token.clone(),
            stale: false,
        })
        .collect();
    let fixtures = setup(&mut Client::new(&targets[0])).await?;
    let refused = check_everywhere(name, &targets, &fixtures).await?;
    eprintln!(
        "[{name}] transit keys ready; every operation checked on {} node(s)",
        targets.len()
    );
    let ticks = clock_ticks_per_sec();
    let mut loads: Vec<(&Phase, Load)> = Vec::new();
    for p in &PHASES {
        if refused.iter().any(|(n, _)| *n == p.name) {
            continue;
        }
        let (path, body) = request(p.name, &fixtures);
        let make: MakeReq = Arc::new(move |_| (path.clone(), body.clone()));
        let ctx = LoadCtx {
            targets: &targets,
            concurrency: cfg.concurrency,
            duration: cfg.duration,
            pids: &pids,
            ticks,
            server: name,
        };
        loads.push((p, load(&ctx, p.name, p.label, make).await));
    }
    let hwm: Vec<u64> = samplers
        .into_iter()
        .zip(&pids)
        .map(|(s, &pid)| s.finish(pid).0)
        .collect();
    running.deployment.stop();
    let mut phases = serde_json::Map::new();
    for (p, l) in &loads {
        let mut v = l.to_json();
        let rps = v["throughput_rps"].as_f64().unwrap_or(0.0);
        v["items_per_request"] = json!(p.items);
        v["items_per_s"] = json!(round(rps * p.items as f64, 1));
        phases.insert(l.name.to_string(), v);
    }
    for (n, why) in refused {
        phases.insert(n.to_string(), json!({ "refused": why }));
    }
    Ok(json!({
        "server": name,
        "version": running.version,
        "nodes": running.addrs.len(),
        "peak_rss_kib": hwm.iter().sum::<u64>(),
        "node_peak_rss_kib": hwm,
        "phases": phases,
    }))
}

fn markdown(rows: &[Value], host: &Value) -> String {
    let nodes = rows.first().and_then(|r| r["nodes"].as_u64()).unwrap_or(1);
    let mut md = String::new();
    if nodes > 1 {
        md.push_str(&format!(
            "{nodes}-node raft cluster of each server; connections spread round-robin over the {nodes} nodes; CPU summed over the nodes\n\n"
        ));
    }
    md.push_str(
        "| phase | server | req/s | items/s | p50 | p99 | req per server CPU s | errors |\n|---|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for p in &PHASES {
        for r in rows {
            let l = &r["phases"][p.name];
            if let Some(why) = l["refused"].as_str() {
                md.push_str(&format!(
                    "| {} | {} {} | refused: {why} | | | | | |\n",
                    p.label,
                    r["server"].as_str().unwrap_or("?"),
                    r["version"].as_str().unwrap_or(""),
                ));
                continue;
            }
            md.push_str(&format!(
                "| {} | {} {} | {:.0} | {:.0} | {:.2} ms | {:.2} ms | {} | {} |\n",
                p.label,
                r["server"].as_str().unwrap_or("?"),
                r["version"].as_str().unwrap_or(""),
                l["throughput_rps"].as_f64().unwrap_or(0.0),
                l["items_per_s"].as_f64().unwrap_or(0.0),
                l["latency_us"]["p50"].as_f64().unwrap_or(0.0) / 1000.0,
                l["latency_us"]["p99"].as_f64().unwrap_or(0.0) / 1000.0,
                l["requests_per_server_cpu_s"]
                    .as_f64()
                    .map(|v| format!("{v:.0}"))
                    .unwrap_or_else(|| "?".into()),
                l["errors"],
            ));
        }
        if let [a, b] = rows {
            let t = |r: &Value| {
                r["phases"][p.name]["throughput_rps"]
                    .as_f64()
                    .unwrap_or(0.0)
            };
            let lat = |r: &Value, q: &str| r["phases"][p.name]["latency_us"][q].as_f64();
            let lat_ratio = |q: &str| match (lat(a, q), lat(b, q)) {
                (Some(x), Some(y)) if y > 0.0 => format!("{:.2}×", x / y),
                _ => String::new(),
            };
            let refused = |r: &Value| r["phases"][p.name]["refused"].is_string();
            if t(b) > 0.0 && !refused(a) && !refused(b) {
                md.push_str(&format!(
                    "| {} | ratio {}/{} | {:.2}× | | {} | {} | | |\n",
                    p.label,
                    a["server"].as_str().unwrap_or("?"),
                    b["server"].as_str().unwrap_or("?"),
                    t(a) / t(b),
                    lat_ratio("p50"),
                    lat_ratio("p99"),
                ));
            }
        }
    }
    if nodes > 1 {
        md.push_str("\nServer CPU seconds per node (node1 / node2 / ...), node1 the leader:\n\n");
        for r in rows {
            let per_phase: Vec<String> = PHASES
                .iter()
                .filter(|p| !r["phases"][p.name]["refused"].is_string())
                .map(|p| {
                    let cpu: Vec<String> = r["phases"][p.name]["node_cpu_s"]
                        .as_array()
                        .map(|v| {
                            v.iter()
                                .map(|c| {
                                    c.as_f64()
                                        .map(|c| format!("{c:.1}"))
                                        .unwrap_or_else(|| "?".into())
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    format!("{} {}", p.label, cpu.join(" / "))
                })
                .collect();
            md.push_str(&format!(
                "- {}: {}\n",
                r["server"].as_str().unwrap_or("?"),
                per_phase.join("; ")
            ));
        }
    }
    md.push_str("\n| server | peak RSS MiB |\n|---|---:|\n");
    for r in rows {
        let per_node: Vec<String> = r["node_peak_rss_kib"]
            .as_array()
            .map(|v| v.iter().map(|k| mib(k.as_u64().unwrap_or(0))).collect())
            .unwrap_or_default();
        md.push_str(&format!(
            "| {} | {}{} |\n",
            r["server"].as_str().unwrap_or("?"),
            mib(r["peak_rss_kib"].as_u64().unwrap_or(0)),
            if per_node.len() > 1 {
                format!(" ({})", per_node.join(" + "))
            } else {
                String::new()
            }
        ));
    }
    md.push_str(&format!("\nHost: {host}\n"));
    md
}

pub(super) fn run(
    cfg: &Config,
    rt: &tokio::runtime::Runtime,
    out_dir: &Path,
    host: Value,
) -> Result<()> {
    let mut rows = Vec::new();
    for &kind in &cfg.servers {
        rows.push(rt.block_on(bench_server(kind, cfg, out_dir))?);
    }
    let (name, mode) = if cfg.nodes > 1 {
        (
            "transit-cluster",
            format!(
                "{}-node raft cluster per server (raft storage in a temporary directory per node), plain HTTP on loopback, connection i to node i mod {}",
                cfg.nodes, cfg.nodes
            ),
        )
    } else {
        (
            "transit",
            "one dev server (in memory), plain HTTP on loopback".to_string(),
        )
    };
    write_rows(
        out_dir,
        name,
        host,
        json!({
            "nodes": cfg.nodes,
            "concurrency": cfg.concurrency,
            "duration_s": cfg.duration.as_secs_f64(),
            "mode": mode,
            "input_bytes": INPUT_BYTES,
            "batch_items": BATCH_ITEMS,
            "keys": {
                AES_KEY: "aes256-gcm96",
                ED_KEY: "ed25519",
                P256_KEY: "ecdsa-p256",
            },
        }),
        rows,
        markdown,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transit_args() {
        let a = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        let c = parse_args(&a("transit")).unwrap();
        assert_eq!(c.mode, Mode::Transit);
        assert_eq!((c.nodes, c.concurrency), (1, 32));
        assert_eq!(c.duration, Duration::from_secs(10));
        let c = parse_args(&a("transit --nodes 3 -d 3s --servers arca")).unwrap();
        assert_eq!((c.nodes, c.duration), (3, Duration::from_secs(3)));
        assert_eq!(c.servers, vec![ServerKind::Arca]);
        assert!(parse_args(&a("transit --nodes 0")).is_err());
        assert!(parse_args(&a("transit --revoked 5")).is_err());
        assert!(parse_args(&a("transit --keys 5")).is_err());
        assert!(parse_args(&a("transit --nodes 3 --arca-port 8200")).is_err());
    }

    #[test]
    fn base64_matches_rfc4648() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), enc);
        }
        assert_eq!(base64(&[0xff, 0xfe, 0xfd]), "//79");
        assert_eq!(random_b64(1, INPUT_BYTES).len(), 1368);
        assert_ne!(random_b64(1, 16), random_b64(2, 16));
    }

    fn fixtures() -> Fixtures {
        Fixtures {
            plaintext: "cA==".into(),
            ciphertext: "vault:v1:abc".into(),
            input: "aQ==".into(),
            ed_signature: "vault:v1:ed".into(),
            p256_signature: "vault:v1:ec".into(),
            batch: Bytes::new(),
        }
    }

    #[test]
    fn requests_and_answer_checks() {
        let f = fixtures();
        let (path, body) = request("verify_ecdsa_p256", &f);
        assert_eq!(path, "/v1/transit/verify/bench-p256");
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["signature"], "vault:v1:ec");
        let (path, body) = request("hmac_sha2_256", &f);
        assert_eq!(path, "/v1/transit/hmac/bench-aes");
        assert!(String::from_utf8_lossy(&body).contains("sha2-256"));
        for p in &PHASES {
            // Every phase has its own request (only hmac takes the fallback).
            let (path, _) = request(p.name, &f);
            assert_eq!(path.contains("/hmac/"), p.name == "hmac_sha2_256");
        }
        let ok = |name: &str, v: Value| check_answer(name, &f, &v).is_ok();
        assert!(ok(
            "encrypt_1k",
            json!({"data": {"ciphertext": "vault:v1:x"}})
        ));
        assert!(!ok("encrypt_1k", json!({"data": {"ciphertext": "x"}})));
        assert!(ok("decrypt_1k", json!({"data": {"plaintext": "cA=="}})));
        assert!(!ok("decrypt_1k", json!({"data": {"plaintext": "cB=="}})));
        assert!(ok("verify_ed25519", json!({"data": {"valid": true}})));
        assert!(!ok("verify_ed25519", json!({"data": {"valid": false}})));
        let good: Vec<Value> = (0..BATCH_ITEMS)
            .map(|_| json!({"ciphertext": "vault:v1:x", "key_version": 1}))
            .collect();
        assert!(ok(
            "batch_encrypt_1000",
            json!({"data": {"batch_results": good}})
        ));
        let mut bad = good.clone();
        bad[7] = json!({"error": "no"});
        assert!(!ok(
            "batch_encrypt_1000",
            json!({"data": {"batch_results": bad}})
        ));
        assert!(!ok(
            "batch_encrypt_1000",
            json!({"data": {"batch_results": good[1..].to_vec()}})
        ));
        assert!(ok("hmac_sha2_256", json!({"data": {"hmac": "vault:v1:h"}})));
    }

    #[test]
    fn refusals_are_json_complexity_only() {
        let bao = br#"{"errors":["refused JSON input due to high complexity: exceeded maximum number of strings"]}"#;
        assert_eq!(
            refusal(400, bao).as_deref(),
            Some("HTTP 400 refused JSON input due to high complexity: exceeded maximum number of strings")
        );
        assert!(refusal(500, bao).is_none());
        assert!(refusal(400, br#"{"errors":["unknown key"]}"#).is_none());
    }

    fn row(server: &str, nodes: u64, rps: f64) -> Value {
        let mut phases = serde_json::Map::new();
        for p in &PHASES {
            phases.insert(
                p.name.to_string(),
                json!({
                    "throughput_rps": rps,
                    "items_per_s": rps * p.items as f64,
                    "latency_us": {"p50": 1000, "p99": 4000},
                    "requests_per_server_cpu_s": rps / 2.0,
                    "errors": 0,
                    "node_cpu_s": [1.0, 0.5, 0.3],
                }),
            );
        }
        json!({
            "server": server, "version": "v", "nodes": nodes,
            "peak_rss_kib": 3072, "node_peak_rss_kib": [1024, 1024, 1024],
            "phases": phases,
        })
    }

    #[test]
    fn markdown_items_ratios_and_nodes() {
        let md = markdown(
            &[row("arca", 3, 300.0), row("openbao", 3, 100.0)],
            &json!({}),
        );
        assert!(md.starts_with("3-node raft cluster"));
        assert!(md.contains("| batch encrypt 1000 × 1 KiB | arca v | 300 | 300000 |"));
        assert!(md.contains("| encrypt 1 KiB | ratio arca/openbao | 3.00× | | 1.00× | 1.00× | | |"));
        assert!(md.contains("- arca: encrypt 1 KiB 1.0 / 0.5 / 0.3"));
        let md = markdown(&[row("arca", 1, 300.0)], &json!({}));
        assert!(md.starts_with("| phase |"));
        assert!(!md.contains("ratio"));
        let mut bao = row("openbao", 1, 100.0);
        bao["phases"]["batch_encrypt_1000"] = json!({"refused": "HTTP 400 too complex"});
        let md = markdown(&[row("arca", 1, 300.0), bao], &json!({}));
        assert!(md.contains(
            "| batch encrypt 1000 × 1 KiB | openbao v | refused: HTTP 400 too complex |"
        ));
        assert!(!md.contains("| batch encrypt 1000 × 1 KiB | ratio"));
        assert!(md.contains("| hmac sha2-256 | ratio arca/openbao | 3.00× |"));
        let mut bao = row("openbao", 3, 100.0);
        bao["phases"]["batch_encrypt_1000"] = json!({"refused": "HTTP 400 too complex"});
        let md = markdown(&[bao], &json!({}));
        assert!(md.contains(
            "- openbao: encrypt 1 KiB 1.0 / 0.5 / 0.3; decrypt 1 KiB 1.0 / 0.5 / 0.3; sign ed25519"
        ));
    }
}
