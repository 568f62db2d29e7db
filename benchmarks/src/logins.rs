//! `arca-bench logins`: auth methods and tokens of `arca server -dev` and
//! `bao server -dev` (OpenBao), one after the other, on this machine; with
//! `--nodes N` (N > 1), of a raft cluster of N nodes of each server instead
//! (`cluster::Cluster`, `cluster::form`, as `arca-bench cluster` starts
//! them: raft storage in a temporary directory per node, init 1/1, every
//! node joined, unsealed and a voter).
//!
//! For each server: start it as in `kv` (or the cluster), enable `approle`
//! and `userpass`, create a role (default settings: a secret id with
//! unlimited uses) and a user (on node 1 of a cluster, then wait until an
//! approle login goes through every node), then run load phases of
//! `--duration` with `--concurrency` keep-alive connections each
//! (connection `i` to node `i mod N`; standbys forward logins and token
//! writes to the leader in both servers):
//! 1. `POST auth/approle/login` with the role id and the secret id;
//! 2. `POST auth/userpass/login/bench` (the password hash is each server's
//!    default: bcrypt cost 10 in both, as Vault);
//! 3. `GET auth/token/lookup-self` with a login token (the default
//!    policy allows reading it);
//! 4. `POST auth/token/renew-self` with a login token.
//!
//! Results: markdown on stdout (throughput, p50/p99 latency, requests per
//! server CPU second — summed over the nodes of a cluster, with each node's
//! share —, Arca/OpenBao ratios), `logins-latest.json` / `logins-latest.md`
//! in `--out-dir` (`logins-cluster-latest.*` with `--nodes` > 1).

use super::cluster::start;
use super::pki::{load, Client, Load, LoadCtx, MakeReq};
use super::*;

struct Phase {
    name: &'static str,
    label: &'static str,
}

const PHASES: [Phase; 4] = [
    Phase {
        name: "approle_login",
        label: "approle login",
    },
    Phase {
        name: "userpass_login",
        label: "userpass login",
    },
    Phase {
        name: "lookup_self",
        label: "token lookup-self",
    },
    Phase {
        name: "renew_self",
        label: "token renew-self",
    },
];

async fn setup(c: &mut Client) -> Result<(String, String)> {
    c.post("/v1/sys/auth/approle", json!({"type": "approle"}))
        .await?;
    c.post("/v1/sys/auth/userpass", json!({"type": "userpass"}))
        .await?;
    c.post(
        "/v1/auth/approle/role/bench",
        json!({"token_policies": ["default"], "token_ttl": "1h", "token_max_ttl": "24h"}),
    )
    .await?;
    c.post(
        "/v1/auth/userpass/users/bench",
        json!({"password": "bench-password", "token_policies": ["default"], "token_ttl": "1h"}),
    )
    .await?;
    let v: Value = serde_json::from_slice(&c.get("/v1/auth/approle/role/bench/role-id").await?)?;
    let role_id = v["data"]["role_id"]
        .as_str()
        .ok_or_else(|| anyhow!("role-id: {v}"))?
        .to_string();
    let v: Value = serde_json::from_slice(
        &c.post("/v1/auth/approle/role/bench/secret-id", json!({}))
            .await?,
    )?;
    let secret_id = v["data"]["secret_id"]
        .as_str()
        .ok_or_else(|| anyhow!("secret-id: {v}"))?
        .to_string();
    Ok((role_id, secret_id))
}

/// Waits until an approle login goes through every node (a standby learns
/// of the new mount and role by replication).
async fn wait_logins_everywhere(name: &str, anon: &[Target], body: &Bytes) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    for t in anon {
        loop {
            let answer = once(
                t,
                Method::POST,
                "/v1/auth/approle/login",
                Some(body.clone()),
            )
            .await;
            match answer {
                Ok((200, _)) => break,
                other if Instant::now() > deadline => {
                    let why = match other {
                        Ok((s, b)) => format!("HTTP {s} {}", String::from_utf8_lossy(&b)),
                        Err(e) => e.to_string(),
                    };
                    bail!("{name}: approle login through {}: {why}", t.addr);
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
    Ok(())
}

async fn bench_server(kind: ServerKind, cfg: &Config, out_dir: &Path) -> Result<Value> {
    let name = kind.name();
    let mut running = start(kind, cfg, out_dir, ServerProc::start).await?;
    let pids = running.pids.clone();
    let samplers: Vec<MemSampler> = pids.iter().map(|&p| MemSampler::start(p)).collect();
    let targets = |token: &str| -> Vec<Target> {
        running
            .addrs
            .iter()
            .map(|a| Target {
                addr: a.clone(),
                token: token.to_string(),
                stale: false,
            })
            .collect()
    };
    let root = targets(&running.token);
    let mut c = Client::new(&root[0]);
    let (role_id, secret_id) = setup(&mut c).await?;
    let anon = targets("");
    let approle_body = Bytes::from(json!({"role_id": role_id, "secret_id": secret_id}).to_string());
    wait_logins_everywhere(name, &anon, &approle_body).await?;
    let login: Value = serde_json::from_slice(
        &Client::new(&anon[0])
            .post(
                "/v1/auth/approle/login",
                json!({"role_id": role_id, "secret_id": secret_id}),
            )
            .await?,
    )?;
    let token = login["auth"]["client_token"]
        .as_str()
        .ok_or_else(|| anyhow!("approle login: {login}"))?
        .to_string();
    let as_login = targets(&token);
    let ticks = clock_ticks_per_sec();
    let mut loads: Vec<Load> = Vec::new();
    for p in &PHASES {
        let (targets, make): (&[Target], MakeReq) = match p.name {
            "approle_login" => {
                let body = approle_body.clone();
                (
                    &anon,
                    Arc::new(move |_| ("/v1/auth/approle/login".into(), body.clone())),
                )
            }
            "userpass_login" => {
                let body = Bytes::from(json!({"password": "bench-password"}).to_string());
                (
                    &anon,
                    Arc::new(move |_| ("/v1/auth/userpass/login/bench".into(), body.clone())),
                )
            }
            "lookup_self" => (
                &as_login,
                Arc::new(|_| {
                    (
                        "/v1/auth/token/lookup-self".into(),
                        // Empty: a GET (the default policy allows reading).
                        Bytes::new(),
                    )
                }),
            ),
            _ => (
                &as_login,
                Arc::new(|_| {
                    (
                        "/v1/auth/token/renew-self".into(),
                        Bytes::from_static(b"{}"),
                    )
                }),
            ),
        };
        let ctx = LoadCtx {
            targets,
            concurrency: cfg.concurrency,
            duration: cfg.duration,
            pids: &pids,
            ticks,
            server: name,
        };
        loads.push(load(&ctx, p.name, p.label, make).await);
    }
    let hwm: Vec<u64> = samplers
        .into_iter()
        .zip(&pids)
        .map(|(s, &pid)| s.finish(pid).0)
        .collect();
    running.deployment.stop();
    let mut phases = serde_json::Map::new();
    for l in &loads {
        phases.insert(l.name.to_string(), l.to_json());
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
        "| phase | server | req/s | p50 | p99 | req per server CPU s | errors |\n|---|---|---:|---:|---:|---:|---:|\n",
    );
    for p in &PHASES {
        for r in rows {
            let l = &r["phases"][p.name];
            md.push_str(&format!(
                "| {} | {} {} | {:.0} | {:.2} ms | {:.2} ms | {} | {} |\n",
                p.label,
                r["server"].as_str().unwrap_or("?"),
                r["version"].as_str().unwrap_or(""),
                l["throughput_rps"].as_f64().unwrap_or(0.0),
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
            let get = |r: &Value, k: &str| r["phases"][p.name][k].as_f64().unwrap_or(0.0);
            let t = |r: &Value| get(r, "throughput_rps");
            let lat = |r: &Value, q: &str| r["phases"][p.name]["latency_us"][q].as_f64();
            let lat_ratio = |q: &str| match (lat(a, q), lat(b, q)) {
                (Some(x), Some(y)) if y > 0.0 => format!("{:.2}×", x / y),
                _ => String::new(),
            };
            if t(b) > 0.0 {
                md.push_str(&format!(
                    "| {} | ratio {}/{} | {:.2}× | {} | {} | | |\n",
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
            "logins-cluster",
            format!(
                "{}-node raft cluster per server (raft storage in a temporary directory per node), plain HTTP on loopback, connection i to node i mod {}",
                cfg.nodes, cfg.nodes
            ),
        )
    } else {
        (
            "logins",
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
        }),
        rows,
        markdown,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_args() {
        let a = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        let c = parse_args(&a("logins")).unwrap();
        assert_eq!(c.mode, Mode::Logins);
        assert_eq!((c.nodes, c.concurrency), (1, 16));
        let c = parse_args(&a("logins --nodes 3 -d 5s")).unwrap();
        assert_eq!((c.nodes, c.duration), (3, Duration::from_secs(5)));
        assert!(parse_args(&a("logins --nodes 0")).is_err());
        assert!(parse_args(&a("logins --leases 5")).is_err());
        assert!(parse_args(&a("logins --arca-port 8200 --nodes 3")).is_err());
        assert!(parse_args(&a("logins --nodes 3 --bao-port 8200")).is_err());
        assert!(parse_args(&a("logins --arca-port 8200")).is_ok());
    }

    fn row(server: &str, nodes: u64, rps: f64) -> Value {
        let phase = json!({
            "throughput_rps": rps,
            "latency_us": {"p50": 1000, "p99": 4000},
            "requests_per_server_cpu_s": rps / 2.0,
            "errors": 0,
            "node_cpu_s": [1.0, 0.5, 0.3],
        });
        let mut phases = serde_json::Map::new();
        for p in &PHASES {
            phases.insert(p.name.to_string(), phase.clone());
        }
        json!({
            "server": server, "version": "v", "nodes": nodes,
            "peak_rss_kib": 3072, "node_peak_rss_kib": [1024, 1024, 1024],
            "phases": phases,
        })
    }

    #[test]
    fn markdown_ratios_and_nodes() {
        let md = markdown(
            &[row("arca", 3, 300.0), row("openbao", 3, 100.0)],
            &json!({}),
        );
        assert!(md.starts_with("3-node raft cluster"));
        assert!(md.contains("| approle login | ratio arca/openbao | 3.00× | 1.00× | 1.00× | | |"));
        assert!(md.contains("- arca: approle login 1.0 / 0.5 / 0.3"));
        assert!(md.contains("| arca | 3.0 (1.0 + 1.0 + 1.0) |"));
        let md = markdown(&[row("arca", 1, 300.0)], &json!({}));
        assert!(md.starts_with("| phase |"));
        assert!(!md.contains("per node"));
    }
}
