//! `arca-bench quotas`: a rate limit quota under load, on `arca server -dev`
//! and `bao server -dev` (OpenBao), one after the other, on this machine.
//!
//! For each server: start it as in `kv`, write [`KEYS`] KV v2 keys
//! `secret/data/q-<n>`, read `sys/quotas/config` (left at its defaults),
//! create the rate limit quota `sys/quotas/rate-limit/bench` on the mount
//! `secret/` (`rate` `--quota-rate`, default 500, per `interval` 1s;
//! `block_interval` `--block-interval`, default none) and read it back.
//! Two clients then read those keys (`GET secret/data/q-<k>` with the root
//! token; quotas count root like any other token) from two loopback
//! addresses, so that a server counting per client address sees two
//! clients (the setup above comes from 127.0.0.1):
//! - polite, from 127.0.0.3: `--polite-connections` (P, default 4)
//!   keep-alive connections paced together at `--polite-rate` (default
//!   half the quota's rate) on a fixed schedule: request `i` of connection
//!   `c` is due at `t0 + (c + i·P) / rate`, computed from `t0`, so delays
//!   do not add up. A request whose time has passed (the previous answer
//!   came late) goes out at once; none goes out after the phase's end.
//!   The polite client has its own thread and runtime, so the noisy
//!   client's work does not delay its timers (the 2 CPUs are still shared
//!   with the server and the noisy client);
//! - noisy, from 127.0.0.2: `--concurrency` (32) keep-alive connections,
//!   each sending its next request as soon as the previous one is
//!   answered (unpaced).
//!
//! Two phases of `--duration` each, 1 s apart, connections opened before
//! the phase starts: (a) the polite client alone, the baseline; (b) both
//! clients together, from the same instant. Per phase: the polite client's
//! 200s per second against its target, its 429s and other errors (5xx,
//! transport errors), its latency (send to last body byte, p50/p99) and
//! how late its requests went out against the schedule (p99); the noisy
//! client's 200s and 429s per second (how many requests the server refuses
//! per second) and the latency of each; the server's CPU seconds
//! (`/proc/<pid>/stat`) over the phase. Nothing is asserted: what should be
//! seen is the noisy client's 200s at about the quota's rate (a bucket
//! starting full adds up to `rate` in the first second) while the polite
//! client gets all its paced requests answered with 200 and no 429.
//!
//! Results: a markdown table on stdout, `quotas-latest.json` /
//! `quotas-latest.md` in `--out-dir`.

use std::net::Ipv4Addr;

use super::pki::Client;
use super::*;

/// KV v2 keys written before the load and read by both clients.
const KEYS: u64 = 100;
/// The quota's name.
const QUOTA: &str = "bench";
/// Where the noisy client's connections come from.
const NOISY_SOURCE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
/// Where the polite client's connections come from.
const POLITE_SOURCE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
/// Time to open every connection before a phase starts.
const PREPARE: Duration = Duration::from_millis(300);

fn micros(d: Duration) -> u32 {
    d.as_micros().min(u32::MAX as u128) as u32
}

/// What one client (or one of its connections) saw.
#[derive(Debug, Default)]
struct Counts {
    /// Latency of every 200.
    ok_us: Vec<u32>,
    /// Latency of every 429.
    limited_us: Vec<u32>,
    /// Other statuses, transport and connection errors.
    errors: u64,
    first_error: Option<String>,
    /// Paced client: requests due before the phase's end.
    scheduled: u64,
    /// Paced client: how late each request went out against its schedule.
    lag_us: Vec<u32>,
}

impl Counts {
    fn error(&mut self, e: String) {
        self.errors += 1;
        self.first_error.get_or_insert(e);
    }

    fn merge(&mut self, o: Counts) {
        self.ok_us.extend_from_slice(&o.ok_us);
        self.limited_us.extend_from_slice(&o.limited_us);
        self.errors += o.errors;
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
        self.scheduled += o.scheduled;
        self.lag_us.extend_from_slice(&o.lag_us);
    }

    /// Counts one answer; false when the connection is to be dropped.
    fn record(&mut self, path: &str, r: Result<(u16, Bytes)>, us: u32) -> bool {
        match r {
            Ok((200, _)) => self.ok_us.push(us),
            Ok((429, _)) => self.limited_us.push(us),
            Ok((status, body)) => {
                let body = String::from_utf8_lossy(&body);
                self.error(format!(
                    "{path}: HTTP {status} {}",
                    body.chars().take(300).collect::<String>()
                ));
            }
            Err(e) => {
                self.error(format!("{path}: {e}"));
                return false;
            }
        }
        true
    }
}

/// p50, p99 and max of a set of latencies, in microseconds.
fn lat_json(v: &mut [u32]) -> Value {
    v.sort_unstable();
    json!({
        "samples": v.len(),
        "p50": percentile(v, 50.0),
        "p99": percentile(v, 99.0),
        "max": v.last().copied().unwrap_or(0),
    })
}

async fn open(target: &Target, source: IpAddr, res: &mut Counts) -> Option<Conn> {
    match connect_from(&target.addr, Some(source)).await {
        Ok(c) => Some(c),
        Err(e) => {
            res.error(format!("connect from {source}: {e:#}"));
            None
        }
    }
}

/// Connection `c` of `p` of the polite client: requests due at
/// `start + (c + i·p) / rate` until `deadline`.
async fn polite_conn(
    target: Target,
    c: u64,
    p: u64,
    rate: f64,
    start: Instant,
    deadline: Instant,
) -> Counts {
    let mut res = Counts::default();
    let mut conn = open(&target, POLITE_SOURCE, &mut res).await;
    for i in 0u64.. {
        let slot = c + i * p;
        let due = start + Duration::from_secs_f64(slot as f64 / rate);
        if due >= deadline {
            break;
        }
        res.scheduled += 1;
        tokio::time::sleep_until(due.into()).await;
        let now = Instant::now();
        if now >= deadline {
            // Late past the phase's end: due, never sent.
            continue;
        }
        res.lag_us.push(micros(now - due));
        if conn.is_none() {
            conn = open(&target, POLITE_SOURCE, &mut res).await;
        }
        let Some(cn) = conn.as_mut() else { continue };
        let path = format!("/v1/secret/data/q-{}", slot % KEYS);
        let t0 = Instant::now();
        let r = send(cn, &target, Method::GET, &path, None).await;
        if !res.record(&path, r, micros(t0.elapsed())) {
            conn = None;
        }
    }
    res
}

/// The polite client on its own thread and runtime; its connections
/// together at `rate` requests per second.
fn polite(
    target: Target,
    connections: usize,
    rate: f64,
    start: Instant,
    deadline: Instant,
) -> std::thread::JoinHandle<Counts> {
    std::thread::spawn(move || {
        let mut all = Counts::default();
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                all.error(format!("polite runtime: {e}"));
                return all;
            }
        };
        rt.block_on(async {
            let p = connections as u64;
            let mut tasks = tokio::task::JoinSet::new();
            for c in 0..p {
                tasks.spawn(polite_conn(target.clone(), c, p, rate, start, deadline));
            }
            while let Some(r) = tasks.join_next().await {
                match r {
                    Ok(c) => all.merge(c),
                    Err(e) => all.error(format!("polite task: {e}")),
                }
            }
        });
        all
    })
}

/// One connection of the noisy client: reads as fast as it is answered
/// from `start` until `deadline`.
async fn noisy_conn(target: Target, id: u64, start: Instant, deadline: Instant) -> Counts {
    let mut res = Counts::default();
    let mut conn = open(&target, NOISY_SOURCE, &mut res).await;
    tokio::time::sleep_until(start.into()).await;
    let mut n = id;
    while Instant::now() < deadline {
        if conn.is_none() {
            conn = open(&target, NOISY_SOURCE, &mut res).await;
        }
        let Some(cn) = conn.as_mut() else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let path = format!("/v1/secret/data/q-{}", n % KEYS);
        n = n.wrapping_add(1);
        let t0 = Instant::now();
        let r = send(cn, &target, Method::GET, &path, None).await;
        if !res.record(&path, r, micros(t0.elapsed())) {
            conn = None;
        }
    }
    res
}

/// One phase: the polite client, with the noisy one if `noisy`.
async fn phase(
    cfg: &Config,
    target: &Target,
    polite_rate: f64,
    pid: u32,
    ticks: f64,
    noisy: bool,
) -> Value {
    let start = Instant::now() + PREPARE;
    let deadline = start + cfg.duration;
    let polite_thread = polite(
        target.clone(),
        cfg.polite_connections,
        polite_rate,
        start,
        deadline,
    );
    let mut noisy_tasks = tokio::task::JoinSet::new();
    if noisy {
        for id in 0..cfg.concurrency as u64 {
            noisy_tasks.spawn(noisy_conn(target.clone(), id, start, deadline));
        }
    }
    tokio::time::sleep_until(start.into()).await;
    let cpu0 = cpu_seconds(pid, ticks);
    tokio::time::sleep_until(deadline.into()).await;
    let cpu1 = cpu_seconds(pid, ticks);
    let mut loud = Counts::default();
    while let Some(r) = noisy_tasks.join_next().await {
        match r {
            Ok(c) => loud.merge(c),
            Err(e) => loud.error(format!("noisy task: {e}")),
        }
    }
    // Joined off the runtime's threads: the noisy tasks ran on them.
    let mut calm = match tokio::task::spawn_blocking(move || polite_thread.join()).await {
        Ok(Ok(c)) => c,
        _ => {
            let mut c = Counts::default();
            c.error("the polite client's thread failed".into());
            c
        }
    };
    let secs = cfg.duration.as_secs_f64();
    let cpu = match (cpu0, cpu1) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let answered =
        calm.ok_us.len() + calm.limited_us.len() + loud.ok_us.len() + loud.limited_us.len();
    let mut v = json!({
        "duration_s": secs,
        "polite": {
            "source": POLITE_SOURCE.to_string(),
            "connections": cfg.polite_connections,
            "target_rps": round(polite_rate, 1),
            "scheduled": calm.scheduled,
            "ok": calm.ok_us.len(),
            "limited_429": calm.limited_us.len(),
            "errors": calm.errors,
            "first_error": calm.first_error,
            "ok_rps": round(calm.ok_us.len() as f64 / secs, 1),
            "ok_share_of_scheduled": round(calm.ok_us.len() as f64 / (calm.scheduled.max(1)) as f64, 4),
            "latency_us": lat_json(&mut calm.ok_us),
            "latency_429_us": lat_json(&mut calm.limited_us),
            "send_lag_us": lat_json(&mut calm.lag_us),
        },
        "server_cpu_s": cpu.map(|c| round(c, 2)),
        "answers_per_server_cpu_s": cpu
            .filter(|c| *c > 0.0)
            .map(|c| round(answered as f64 / c, 1)),
    });
    if noisy {
        v["noisy"] = json!({
            "source": NOISY_SOURCE.to_string(),
            "connections": cfg.concurrency,
            "ok": loud.ok_us.len(),
            "limited_429": loud.limited_us.len(),
            "errors": loud.errors,
            "first_error": loud.first_error,
            "ok_rps": round(loud.ok_us.len() as f64 / secs, 1),
            "limited_rps": round(loud.limited_us.len() as f64 / secs, 1),
            "latency_us": lat_json(&mut loud.ok_us),
            "latency_429_us": lat_json(&mut loud.limited_us),
        });
    }
    v
}

/// Keys, the quota and its read-back; returns (quota, config) as the
/// server reports them.
async fn setup(target: &Target, cfg: &Config) -> Result<(Value, Value)> {
    let mut c = Client::new(target);
    for n in 0..KEYS {
        c.post(
            &format!("/v1/secret/data/q-{n}"),
            json!({"data": {"value": format!("quota-bench-{n}"), "n": n}}),
        )
        .await?;
    }
    let config: Value = serde_json::from_slice(&c.get("/v1/sys/quotas/config").await?)?;
    let mut quota = json!({
        "path": "secret/",
        "rate": cfg.quota_rate,
        "interval": "1s",
    });
    if cfg.block_interval > 0 {
        quota["block_interval"] = json!(format!("{}s", cfg.block_interval));
    }
    c.post(&format!("/v1/sys/quotas/rate-limit/{QUOTA}"), quota)
        .await?;
    let read: Value =
        serde_json::from_slice(&c.get(&format!("/v1/sys/quotas/rate-limit/{QUOTA}")).await?)?;
    Ok((read["data"].clone(), config["data"].clone()))
}

async fn bench_server(kind: ServerKind, cfg: &Config, out_dir: &Path) -> Result<Value> {
    let name = kind.name();
    let load_before = load_avg_1m();
    let mut server = ServerProc::start(kind, cfg, out_dir)?;
    eprintln!(
        "[{name}] started pid {} on {} (log {})",
        server.pid(),
        server.addr,
        server.log.display()
    );
    let version = wait_ready(&mut server).await?;
    let target = Target::dev(&server.addr);
    let (quota, config) = setup(&target, cfg).await?;
    eprintln!("[{name}] quota {QUOTA}: {quota}");
    // Let the quota reach every part of the server.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let polite_rate = cfg.polite_rate.unwrap_or(cfg.quota_rate / 2.0);
    let ticks = clock_ticks_per_sec();
    let pid = server.pid();
    let mut phases = serde_json::Map::new();
    for (key, noisy) in [("alone", false), ("with_noisy", true)] {
        eprintln!(
            "[{name}] phase {key}: polite {polite_rate}/s over {} connections{}, {:?}",
            cfg.polite_connections,
            if noisy {
                format!(", noisy {} connections unpaced", cfg.concurrency)
            } else {
                String::new()
            },
            cfg.duration
        );
        let v = phase(cfg, &target, polite_rate, pid, ticks, noisy).await;
        let p = &v["polite"];
        let noisy_line = match &v["noisy"] {
            Value::Null => String::new(),
            n => format!(
                "; noisy {} ok/s, {} 429/s, {} errors",
                n["ok_rps"], n["limited_rps"], n["errors"]
            ),
        };
        eprintln!(
            "[{name}]   polite {} ok/s, {} 429, {} errors{noisy_line}",
            p["ok_rps"], p["limited_429"], p["errors"]
        );
        for who in ["polite", "noisy"] {
            if let Some(e) = v[who]["first_error"].as_str() {
                eprintln!("[{name}]   {who}: first error: {e}");
            }
        }
        phases.insert(key.to_string(), v);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let (hwm, _) = read_mem(pid).unwrap_or((0, 0));
    server.stop();
    Ok(json!({
        "server": name,
        "version": version,
        "loadavg_1m_before": load_before,
        "quota": quota,
        "quota_config": config,
        "peak_vmhwm_kib": hwm,
        "phases": phases,
    }))
}

const PHASE_LABELS: [(&str, &str); 2] = [
    ("alone", "(a) polite alone"),
    ("with_noisy", "(b) polite + noisy"),
];

fn f0(v: &Value) -> String {
    v.as_f64()
        .map(|x| format!("{x:.0}"))
        .unwrap_or_else(|| "–".into())
}

fn msf(v: &Value) -> String {
    v.as_f64()
        .map(|x| format!("{:.2}", x / 1000.0))
        .unwrap_or_else(|| "–".into())
}

fn markdown(rows: &[Value], host: &Value) -> String {
    let mut md = String::new();
    if let Some(r) = rows.first() {
        let q = &r["quota"];
        md.push_str(&format!(
            "Quota on `secret/`: rate {} per {} s, block_interval {} s; polite client {} connections from {}, noisy client {} connections from {}.\n\n",
            q["rate"],
            q["interval"],
            q["block_interval"],
            r["phases"]["alone"]["polite"]["connections"],
            POLITE_SOURCE,
            r["phases"]["with_noisy"]["noisy"]["connections"],
            NOISY_SOURCE,
        ));
    }
    md.push_str(
        "| server | phase | polite target/s | polite 200/s | polite 429 | polite errors | polite p50 ms | polite p99 ms | polite send lag p99 ms | noisy 200/s | noisy 429/s | noisy errors | noisy 429 p50 ms | server CPU s |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        for (key, label) in PHASE_LABELS {
            let ph = &r["phases"][key];
            let p = &ph["polite"];
            let n = &ph["noisy"];
            md.push_str(&format!(
                "| {} {} | {label} | {} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                r["server"].as_str().unwrap_or("?"),
                r["version"].as_str().unwrap_or(""),
                f0(&p["target_rps"]),
                p["ok_rps"].as_f64().unwrap_or(0.0),
                p["limited_429"],
                p["errors"],
                msf(&p["latency_us"]["p50"]),
                msf(&p["latency_us"]["p99"]),
                msf(&p["send_lag_us"]["p99"]),
                f0(&n["ok_rps"]),
                f0(&n["limited_rps"]),
                if n.is_null() { "–".to_string() } else { n["errors"].to_string() },
                if n.is_null() { "–".to_string() } else { msf(&n["latency_429_us"]["p50"]) },
                ph["server_cpu_s"]
                    .as_f64()
                    .map(|c| format!("{c:.1}"))
                    .unwrap_or_else(|| "?".into()),
            ));
        }
    }
    md.push('\n');
    for r in rows {
        let a = &r["phases"]["alone"]["polite"];
        let b = &r["phases"]["with_noisy"]["polite"];
        let lat = |v: &Value, q: &str| v["latency_us"][q].as_f64().unwrap_or(0.0);
        md.push_str(&format!(
            "- {}: with the noisy client the polite client got {:.1} % of its scheduled requests answered with 200 ({:.1} % alone); its p50 went from {:.2} to {:.2} ms, its p99 from {:.2} to {:.2} ms.\n",
            r["server"].as_str().unwrap_or("?"),
            b["ok_share_of_scheduled"].as_f64().unwrap_or(0.0) * 100.0,
            a["ok_share_of_scheduled"].as_f64().unwrap_or(0.0) * 100.0,
            lat(a, "p50") / 1000.0,
            lat(b, "p50") / 1000.0,
            lat(a, "p99") / 1000.0,
            lat(b, "p99") / 1000.0,
        ));
    }
    if let [a, b] = rows {
        let get = |r: &Value, path: &[&str]| {
            path.iter()
                .fold(&r["phases"]["with_noisy"], |v, k| &v[*k])
                .as_f64()
        };
        let ratio = |path: &[&str]| match (get(a, path), get(b, path)) {
            (Some(x), Some(y)) if y > 0.0 => format!("{:.2}×", x / y),
            _ => "–".into(),
        };
        md.push_str(&format!(
            "\n{} / {} in phase (b): noisy 429/s {}, noisy 200/s {}, polite p50 {}, polite p99 {}, answers per server CPU s {}.\n",
            a["server"].as_str().unwrap_or("?"),
            b["server"].as_str().unwrap_or("?"),
            ratio(&["noisy", "limited_rps"]),
            ratio(&["noisy", "ok_rps"]),
            ratio(&["polite", "latency_us", "p50"]),
            ratio(&["polite", "latency_us", "p99"]),
            ratio(&["answers_per_server_cpu_s"]),
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
        "quotas",
        host,
        json!({
            "duration_s": cfg.duration.as_secs_f64(),
            "quota_path": "secret/",
            "quota_rate": cfg.quota_rate,
            "quota_interval_s": 1,
            "block_interval_s": cfg.block_interval,
            "polite_rate": cfg.polite_rate.unwrap_or(cfg.quota_rate / 2.0),
            "polite_connections": cfg.polite_connections,
            "noisy_connections": cfg.concurrency,
            "client_threads": cfg.client_threads,
            "keys": KEYS,
            "mode": "one dev server (in memory), plain HTTP on loopback, keep-alive HTTP/1.1; polite client from 127.0.0.3 (own thread, fixed schedule), noisy client from 127.0.0.2 (unpaced); GET secret/data/q-<k>",
        }),
        rows,
        markdown,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn quotas_args() {
        let c = parse_args(&args("quotas")).unwrap();
        assert_eq!(c.mode, Mode::Quotas);
        assert_eq!((c.concurrency, c.quota_rate), (32, 500.0));
        assert_eq!((c.polite_rate, c.polite_connections), (None, 4));
        assert_eq!(c.block_interval, 0);
        let c = parse_args(&args(
            "quotas --quota-rate 100 --polite-rate 20 --polite-connections 2 --block-interval 5s",
        ))
        .unwrap();
        assert_eq!((c.quota_rate, c.polite_rate), (100.0, Some(20.0)));
        assert_eq!((c.polite_connections, c.block_interval), (2, 5));
        assert_eq!(
            parse_args(&args("quotas --block-interval 0"))
                .unwrap()
                .block_interval,
            0
        );
        assert!(parse_args(&args("quotas --block-interval 1.5s")).is_err());
        assert!(parse_args(&args("quotas --quota-rate 0")).is_err());
        assert!(parse_args(&args("quotas --polite-rate -1")).is_err());
        assert!(parse_args(&args("quotas --polite-connections 0")).is_err());
        assert!(parse_args(&args("quotas --keys 10")).is_err());
        assert!(parse_args(&args("kv --quota-rate 10")).is_err());
    }

    #[test]
    fn counts_classify_answers() {
        let mut c = Counts::default();
        assert!(c.record("/p", Ok((200, Bytes::new())), 5));
        assert!(c.record("/p", Ok((429, Bytes::new())), 3));
        assert!(c.record("/p", Ok((500, Bytes::from_static(b"boom"))), 4));
        assert!(!c.record("/p", Err(anyhow!("reset")), 4));
        assert_eq!((c.ok_us.len(), c.limited_us.len(), c.errors), (1, 1, 2));
        assert_eq!(c.first_error.as_deref(), Some("/p: HTTP 500 boom"));
    }

    /// Two sources on loopback reach one listener, which sees each.
    #[test]
    fn connections_come_from_the_source_asked() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap().to_string();
            for src in [NOISY_SOURCE, POLITE_SOURCE] {
                let (conn, accepted) = tokio::join!(connect_from(&addr, Some(src)), l.accept());
                assert!(conn.is_ok());
                assert_eq!(accepted.unwrap().1.ip(), src);
            }
        });
    }

    #[test]
    fn markdown_has_both_phases_and_ratios() {
        let row = |server: &str, refused: f64| {
            let polite = json!({
                "connections": 4, "target_rps": 250.0, "ok_rps": 250.0,
                "limited_429": 0, "errors": 0, "ok_share_of_scheduled": 1.0,
                "latency_us": {"p50": 500, "p99": 2000},
                "send_lag_us": {"p99": 1000},
            });
            json!({
                "server": server, "version": "v",
                "quota": {"rate": 500.0, "interval": 1, "block_interval": 0},
                "phases": {
                    "alone": {"polite": polite, "server_cpu_s": 1.0},
                    "with_noisy": {
                        "polite": polite,
                        "noisy": {"connections": 32, "ok_rps": 550.0, "limited_rps": refused,
                                  "errors": 0, "latency_429_us": {"p50": 300}},
                        "server_cpu_s": 10.0,
                        "answers_per_server_cpu_s": refused / 10.0,
                    },
                },
            })
        };
        let md = markdown(&[row("arca", 40000.0), row("openbao", 10000.0)], &json!({}));
        assert!(md.contains("| arca v | (a) polite alone | 250 | 250.0 | 0 | 0 | 0.50 | 2.00 | 1.00 | – | – | – | – | 1.0 |"));
        assert!(md.contains("| openbao v | (b) polite + noisy | 250 | 250.0 | 0 | 0 | 0.50 | 2.00 | 1.00 | 550 | 10000 | 0 | 0.30 | 10.0 |"));
        assert!(md.contains("noisy 429/s 4.00×"));
        assert!(md.contains("- arca: with the noisy client the polite client got 100.0 %"));
    }
}
