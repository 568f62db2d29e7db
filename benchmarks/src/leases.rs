//! `arca-bench leases`: how a server holding many leases comes back after a
//! seal (what a newly elected leader goes through).
//!
//! For each server and each count N in `--leases` (default 10000,100000):
//! 1. a one-node cluster with raft storage in a temporary directory
//!    (`cluster::Cluster`, `cluster::form`: init 1/1, unseal, KV v2 at
//!    `secret/`);
//! 2. N service tokens with a 768h TTL (`POST auth/token/create`, `--concurrency`
//!    connections). Every token with a TTL is a lease in OpenBao's expiration
//!    manager; Arca keeps them in its token time index, walked by the same
//!    manager as secret leases;
//! 3. the server's RSS, then `sys/seal`, then `sys/unseal`, and the time from
//!    the unseal request until (a) a KV write succeeds, (b) a new token can be
//!    created, (c) one of the N tokens is revoked (a lease operation);
//! 4. RSS 5 s after the unseal, and peak RSS (VmHWM).
//!
//! OpenBao (like Vault) loads every lease into memory when it becomes active
//! (hashicorp/vault#1788, #2312, #8994); Arca keeps none in memory.

use super::cluster::{call, form, Cluster};
use super::*;

/// Creates `n` tokens over `concurrency` connections; returns one of them.
async fn create_tokens(addr: &str, token: &str, n: u64, concurrency: usize) -> Result<String> {
    let counter = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (counter, target) = (
            counter.clone(),
            Target {
                addr: addr.to_string(),
                token: token.to_string(),
                stale: false,
            },
        );
        tasks.spawn(async move {
            let mut conn = connect(&target.addr).await?;
            let mut last = String::new();
            let body = Bytes::from(json!({"ttl": "768h", "policies": ["default"]}).to_string());
            loop {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<String, anyhow::Error>(last);
                }
                let (status, b) = send(
                    &mut conn,
                    &target,
                    Method::POST,
                    "/v1/auth/token/create",
                    Some(body.clone()),
                )
                .await?;
                if status != 200 {
                    bail!(
                        "auth/token/create: HTTP {status} {}",
                        String::from_utf8_lossy(&b)
                    );
                }
                if last.is_empty() {
                    let v: Value = serde_json::from_slice(&b)?;
                    last = v["auth"]["client_token"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                }
                if i > 0 && i % 20_000 == 0 {
                    eprintln!("  {i} tokens");
                }
            }
        });
    }
    let mut one = String::new();
    while let Some(r) = tasks.join_next().await {
        let t = r??;
        if one.is_empty() {
            one = t;
        }
    }
    Ok(one)
}

/// Seconds from `t0` until `check` succeeds (polled every 20 ms, ≤ 15 min).
async fn until<F, Fut>(t0: Instant, what: &str, mut check: F) -> Result<f64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    loop {
        if check().await {
            return Ok(t0.elapsed().as_secs_f64());
        }
        if t0.elapsed() > Duration::from_secs(900) {
            bail!("{what}: not done 15 min after the unseal");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn bench_one(kind: ServerKind, n: u64, cfg: &Config, out_dir: &Path) -> Result<Value> {
    let name = kind.name();
    let mut one = cfg.clone();
    one.nodes = 1;
    let mut cluster = Cluster::start(kind, &one, out_dir)?;
    let formed = form(&mut cluster).await?;
    let addr = cluster.nodes[0].addr.clone();
    let pid = cluster.nodes[0].pid();
    let token = formed.token.clone();

    eprintln!("[{name}] creating {n} tokens with a 768h TTL");
    let t0 = Instant::now();
    let victim = create_tokens(&addr, &token, n, cfg.concurrency).await?;
    let create_s = t0.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, rss_before) = read_mem(pid).unwrap_or((0, 0));

    let (status, body) = call(&addr, &token, Method::PUT, "/v1/sys/seal", None).await?;
    if !matches!(status, 200 | 204) {
        bail!("{name}: sys/seal: HTTP {status} {body}");
    }
    let t1 = Instant::now();
    let (status, body) = call(
        &addr,
        "",
        Method::PUT,
        "/v1/sys/unseal",
        Some(json!({ "key": formed.key })),
    )
    .await?;
    if status != 200 {
        bail!("{name}: sys/unseal: HTTP {status} {body}");
    }
    let write_s = until(t1, "a KV write", || async {
        matches!(
            call(
                &addr,
                &token,
                Method::PUT,
                "/v1/secret/data/after-unseal",
                Some(json!({"data": {"v": "1"}})),
            )
            .await,
            Ok((200 | 204, _))
        )
    })
    .await?;
    let create_after_s = until(t1, "a token creation", || async {
        matches!(
            call(
                &addr,
                &token,
                Method::POST,
                "/v1/auth/token/create",
                Some(json!({"ttl": "1h"})),
            )
            .await,
            Ok((200, _))
        )
    })
    .await?;
    let revoke_s = until(t1, "a token revocation", || async {
        matches!(
            call(
                &addr,
                &token,
                Method::POST,
                "/v1/auth/token/revoke",
                Some(json!({"token": victim})),
            )
            .await,
            Ok((200 | 204, _))
        )
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (hwm, rss_after) = read_mem(pid).unwrap_or((0, 0));
    eprintln!(
        "[{name}] {n} leases: write after {write_s:.3} s, token create after {create_after_s:.3} s, revoke after {revoke_s:.3} s; RSS {} → {} (peak {})",
        mib(rss_before),
        mib(rss_after),
        mib(hwm)
    );
    Ok(json!({
        "server": name,
        "version": formed.version,
        "leases": n,
        "create_seconds": round(create_s, 2),
        "create_per_second": round(n as f64 / create_s.max(1e-9), 0),
        "unseal_to_write_s": round(write_s, 3),
        "unseal_to_token_create_s": round(create_after_s, 3),
        "unseal_to_revoke_s": round(revoke_s, 3),
        "rss_before_seal_kib": rss_before,
        "rss_after_unseal_kib": rss_after,
        "peak_rss_kib": hwm,
    }))
}

fn markdown(rows: &[Value], host: &Value) -> String {
    let mut md = String::from(
        "| server | leases | created/s | unseal → KV write | → token create | → token revoke | RSS before seal | RSS 5 s after unseal | peak RSS |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        md.push_str(&format!(
            "| {} {} | {} | {} | {:.3} s | {:.3} s | {:.3} s | {} | {} | {} |\n",
            r["server"].as_str().unwrap_or("?"),
            r["version"].as_str().unwrap_or(""),
            r["leases"],
            r["create_per_second"],
            r["unseal_to_write_s"].as_f64().unwrap_or(0.0),
            r["unseal_to_token_create_s"].as_f64().unwrap_or(0.0),
            r["unseal_to_revoke_s"].as_f64().unwrap_or(0.0),
            mib(r["rss_before_seal_kib"].as_u64().unwrap_or(0)),
            mib(r["rss_after_unseal_kib"].as_u64().unwrap_or(0)),
            mib(r["peak_rss_kib"].as_u64().unwrap_or(0)),
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
    for &n in &cfg.leases {
        for &kind in &cfg.servers {
            rows.push(rt.block_on(bench_one(kind, n, cfg, out_dir))?);
        }
    }
    write_rows(
        out_dir,
        "leases",
        host,
        json!({
            "leases": cfg.leases,
            "concurrency": cfg.concurrency,
            "mode": "one node, raft storage in a temporary directory, plain HTTP on loopback; N tokens with a 768h TTL, then sys/seal and sys/unseal",
        }),
        rows,
        markdown,
    )
}
