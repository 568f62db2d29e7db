//! `arca-bench logins`: auth methods and tokens of `arca server -dev` and
//! `bao server -dev` (OpenBao), one after the other, on this machine.
//!
//! For each server: start it as in `kv`, enable `approle` and `userpass`,
//! create a role (default settings: a secret id with unlimited uses) and a
//! user, then run load phases of `--duration` with `--concurrency`
//! keep-alive connections each:
//! 1. `POST auth/approle/login` with the role id and the secret id;
//! 2. `POST auth/userpass/login/bench` (the password hash is each server's
//!    default: bcrypt cost 10 in both, as Vault);
//! 3. `GET auth/token/lookup-self` with a login token (the default
//!    policy allows reading it);
//! 4. `POST auth/token/renew-self` with a login token.
//!
//! Results: markdown on stdout (throughput, p50/p99 latency, requests per
//! server CPU second, Arca/OpenBao ratios), `logins-latest.json` /
//! `logins-latest.md` in `--out-dir`.

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

async fn bench_server(kind: ServerKind, cfg: &Config, out_dir: &Path) -> Result<Value> {
    let name = kind.name();
    let mut server = ServerProc::start(kind, cfg, out_dir)?;
    let version = wait_ready(&mut server).await?;
    let pid = server.pid();
    let sampler = MemSampler::start(pid);
    let root = Target::dev(&server.addr);
    let mut c = Client::new(&root);
    let (role_id, secret_id) = setup(&mut c).await?;
    let anon = Target {
        token: String::new(),
        ..root.clone()
    };
    let login: Value = serde_json::from_slice(
        &Client::new(&anon)
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
    let as_login = Target {
        token,
        ..root.clone()
    };
    let ticks = clock_ticks_per_sec();
    let mut loads: Vec<Load> = Vec::new();
    for p in &PHASES {
        let (target, make): (&Target, MakeReq) = match p.name {
            "approle_login" => {
                let body =
                    Bytes::from(json!({"role_id": role_id, "secret_id": secret_id}).to_string());
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
            target,
            concurrency: cfg.concurrency,
            duration: cfg.duration,
            pid,
            ticks,
            server: name,
        };
        loads.push(load(&ctx, p.name, p.label, make).await);
    }
    let (hwm, _) = sampler.finish(pid);
    server.stop();
    let mut phases = serde_json::Map::new();
    for l in &loads {
        phases.insert(l.name.to_string(), l.to_json());
    }
    Ok(json!({
        "server": name,
        "version": version,
        "peak_rss_kib": hwm,
        "phases": phases,
    }))
}

fn markdown(rows: &[Value], host: &Value) -> String {
    let mut md = String::from(
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
            let t = |r: &Value| {
                r["phases"][p.name]["throughput_rps"]
                    .as_f64()
                    .unwrap_or(0.0)
            };
            if t(b) > 0.0 {
                md.push_str(&format!(
                    "| {} | ratio {}/{} | {:.2}× | | | | |\n",
                    p.label,
                    a["server"].as_str().unwrap_or("?"),
                    b["server"].as_str().unwrap_or("?"),
                    t(a) / t(b)
                ));
            }
        }
    }
    md.push_str("\n| server | peak RSS |\n|---|---:|\n");
    for r in rows {
        md.push_str(&format!(
            "| {} | {} |\n",
            r["server"].as_str().unwrap_or("?"),
            mib(r["peak_rss_kib"].as_u64().unwrap_or(0))
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
    write_rows(
        out_dir,
        "logins",
        host,
        json!({
            "concurrency": cfg.concurrency,
            "duration_s": cfg.duration.as_secs_f64(),
            "mode": "one dev server (in memory), plain HTTP on loopback",
        }),
        rows,
        markdown,
    )
}
