//! `arca-bench expire`: the expiration manager revoking many tokens that
//! become due at the same second.
//!
//! For each count N in `--leases` (default 10000,100000) and each server:
//! 1. a one-node cluster with raft storage in a temporary directory
//!    (`cluster::Cluster`, `cluster::form`, as `arca-bench leases`);
//! 2. calibration: [`CALIBRATION`] tokens with a 768h TTL created over
//!    `--concurrency` connections (the creation rate), then revoked again
//!    by accessor, so that only the N tokens below are leases;
//! 3. the due second T = start + N / rate × 1.5 + 10 s (rounded up,
//!    [`due_second`]), and N service tokens (`POST auth/token/create`,
//!    `policies: [default]`), each with `ttl = T − now` in whole seconds
//!    computed when its request is sent (now rounded down), so every token
//!    expires within the second after T. Every token with a TTL is a lease in
//!    OpenBao's expiration manager; Arca keeps them in its token time index,
//!    walked each second by the active node. If creation is not done one
//!    second before T, it stops, the attempt is reported, and a fresh
//!    server is tried with T computed from the rate just measured (at most
//!    [`ATTEMPTS`] attempts);
//! 4. from T: `LIST auth/token/accessors` with the root token, one request
//!    at a time, every second — or every 4 × the last answer's latency if
//!    that is longer (at most 3 s), so that counting 100 000 accessors does
//!    not eat the CPU the revocations need — until no token of the N is left
//!    or `--timeout` (default 15 min) has passed; remaining = the listed
//!    accessors minus those before step 2 (the root token's). OpenBao's
//!    LIST can wait behind its revocations for most of their duration, so
//!    for OpenBao the revocations are also timed from its log, which has a
//!    line with a millisecond timestamp per revoked lease
//!    ([`log_revocations`]);
//! 5. meanwhile (and from the end of creation, as an idle baseline) a probe
//!    once a second on its own connection: a KV v2 write then a read of the
//!    same key, each timed (30 s client timeout).
//!
//! Reported: creation rate, the seconds from T until the first revocation
//! is seen and until none is left, revocations per second (N / the latter,
//! and the slope from 10 % to 90 % revoked), the probes' latency before T
//! and during the revocations, the server's CPU seconds from T to the end,
//! and its peak RSS.

use super::cluster::{form, Cluster};
use super::*;

/// Tokens created (and revoked) to measure the creation rate.
const CALIBRATION: u64 = 1000;
/// T is this factor times the estimated creation time after the start...
const DUE_FACTOR: f64 = 1.5;
/// ...plus this many seconds.
const DUE_MARGIN_S: f64 = 10.0;
/// Creation stops (and the attempt fails) this close to T.
const DUE_GUARD_S: f64 = 1.0;
/// Fresh servers tried when creation was not done by T.
const ATTEMPTS: usize = 3;
/// The remaining count is polled at most this often...
const POLL_EVERY: Duration = Duration::from_secs(1);
/// ...and no more often than this many times the last LIST's latency (so
/// that listing many accessors does not eat the revocations' CPU)...
const POLL_LATENCY_FACTOR: u32 = 4;
/// ...but at least every this long (a LIST that waited behind the
/// revocations says nothing about its own cost).
const POLL_MAX_GAP: Duration = Duration::from_secs(3);
/// The 10→90 % slope needs its two polls at least this far apart.
const MIN_SLOPE_SPAN_S: f64 = 2.0;
/// What OpenBao logs (level info) for each lease it revokes, a token's
/// included.
const BAO_REVOKED: &str = "expiration: revoked lease: lease_id=auth/token/create/";
/// The KV probe's period and its client timeout per request.
const PROBE_EVERY: Duration = Duration::from_secs(1);
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

fn unix_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The due second T for `n` tokens created from `start` (unix seconds) at
/// `rate` per second: start + n / rate × 1.5 + 10 s, rounded up.
fn due_second(start: f64, n: u64, rate: f64) -> u64 {
    let creation = n as f64 / rate.max(1.0);
    (start + creation * DUE_FACTOR + DUE_MARGIN_S).ceil() as u64
}

/// The TTL (whole seconds, at least 1) that makes a token created at `now`
/// (unix seconds) expire within the second after `due`.
fn ttl_until(due: u64, now: f64) -> u64 {
    due.saturating_sub(now.floor() as u64).max(1)
}

/// One request on a kept connection, reconnecting after a transport error.
async fn request(
    conn: &mut Option<Conn>,
    target: &Target,
    method: Method,
    path: &str,
    body: Option<Bytes>,
) -> Result<(u16, Bytes)> {
    if conn.is_none() {
        *conn = Some(connect(&target.addr).await?);
    }
    let r = send(conn.as_mut().unwrap(), target, method, path, body).await;
    if r.is_err() {
        *conn = None;
    }
    r
}

/// What token creation did.
struct Created {
    created: u64,
    elapsed: Duration,
    /// Accessors of the tokens created (when asked for).
    accessors: Vec<String>,
    /// Creation stopped because T came too close.
    cut_short: bool,
}

impl Created {
    fn rate(&self) -> f64 {
        self.created as f64 / self.elapsed.as_secs_f64().max(1e-3)
    }
}

/// Creates `n` tokens over `concurrency` connections: due within the second
/// after `due` (unix seconds), or with a 768h TTL for `None`. Stops early
/// once `DUE_GUARD_S` before `due`.
async fn create_tokens(
    target: &Target,
    n: u64,
    concurrency: usize,
    due: Option<u64>,
    keep_accessors: bool,
) -> Result<Created> {
    let counter = Arc::new(AtomicU64::new(0));
    let created = Arc::new(AtomicU64::new(0));
    let cut = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (counter, created, cut, target) = (
            counter.clone(),
            created.clone(),
            cut.clone(),
            target.clone(),
        );
        tasks.spawn(async move {
            let mut conn = None;
            let mut accessors = Vec::new();
            loop {
                if cut.load(Ordering::Relaxed) {
                    return Ok::<_, anyhow::Error>(accessors);
                }
                let now = unix_f64();
                let ttl = match due {
                    Some(d) if now >= d as f64 - DUE_GUARD_S => {
                        cut.store(true, Ordering::Relaxed);
                        return Ok(accessors);
                    }
                    Some(d) => format!("{}s", ttl_until(d, now)),
                    None => "768h".to_string(),
                };
                let i = counter.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok(accessors);
                }
                let body = json!({"ttl": ttl, "policies": ["default"]}).to_string();
                let (status, b) = request(
                    &mut conn,
                    &target,
                    Method::POST,
                    "/v1/auth/token/create",
                    Some(Bytes::from(body)),
                )
                .await?;
                if status != 200 {
                    bail!(
                        "auth/token/create: HTTP {status} {}",
                        String::from_utf8_lossy(&b)
                    );
                }
                if keep_accessors {
                    let v: Value = serde_json::from_slice(&b)?;
                    let a = v["auth"]["accessor"]
                        .as_str()
                        .ok_or_else(|| anyhow!("auth/token/create: no accessor in {v}"))?;
                    accessors.push(a.to_string());
                }
                let c = created.fetch_add(1, Ordering::Relaxed) + 1;
                if c % 20_000 == 0 {
                    eprintln!("  {c} tokens");
                }
            }
        });
    }
    let mut accessors = Vec::new();
    while let Some(r) = tasks.join_next().await {
        accessors.extend(r??);
    }
    Ok(Created {
        created: created.load(Ordering::Relaxed),
        elapsed: t0.elapsed(),
        accessors,
        cut_short: cut.load(Ordering::Relaxed),
    })
}

/// Revokes tokens by accessor over `concurrency` connections.
async fn revoke_accessors(
    target: &Target,
    accessors: Vec<String>,
    concurrency: usize,
) -> Result<()> {
    let queue = Arc::new(std::sync::Mutex::new(accessors));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (queue, target) = (queue.clone(), target.clone());
        tasks.spawn(async move {
            let mut conn = None;
            loop {
                let Some(a) = queue.lock().unwrap().pop() else {
                    return Ok::<_, anyhow::Error>(());
                };
                let body = Bytes::from(json!({ "accessor": a }).to_string());
                let path = "/v1/auth/token/revoke-accessor";
                let (status, b) =
                    request(&mut conn, &target, Method::POST, path, Some(body)).await?;
                if !matches!(status, 200 | 204) {
                    bail!("{path}: HTTP {status} {}", String::from_utf8_lossy(&b));
                }
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(())
}

/// The number of token accessors (`LIST auth/token/accessors`).
async fn count_accessors(conn: &mut Option<Conn>, root: &Target) -> Result<u64> {
    let path = "/v1/auth/token/accessors?list=true";
    let (status, b) = request(conn, root, Method::GET, path, None).await?;
    match status {
        200 => {
            let v: Value = serde_json::from_slice(&b)?;
            v["data"]["keys"]
                .as_array()
                .map(|k| k.len() as u64)
                .ok_or_else(|| anyhow!("{path}: no keys"))
        }
        // Vault answers an empty list with 404.
        404 => Ok(0),
        s => bail!("{path}: HTTP {s} {}", String::from_utf8_lossy(&b)),
    }
}

/// One probe: a KV write and a read, each timed (None: failed).
#[derive(Clone, Copy, Debug)]
struct Probe {
    /// Seconds after T (negative: before).
    at: f64,
    write_us: Option<u32>,
    read_us: Option<u32>,
}

/// Probes `root` once every `PROBE_EVERY` until `stop`.
async fn probe_loop(root: Target, due: u64, stop: Arc<AtomicBool>) -> (Vec<Probe>, Option<String>) {
    let mut out = Vec::new();
    let mut first_error = None;
    let mut conn = None;
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let next = Instant::now() + PROBE_EVERY;
        let at = unix_f64() - due as f64;
        i += 1;
        let mut timed = |r: Result<Result<(u16, Bytes)>, tokio::time::error::Elapsed>,
                         t0: Instant,
                         conn: &mut Option<Conn>|
         -> Option<u32> {
            match r {
                Ok(Ok((200 | 204, _))) => Some(micros(t0.elapsed())),
                other => {
                    let e = match other {
                        Ok(Ok((s, b))) => format!("HTTP {s} {}", String::from_utf8_lossy(&b)),
                        Ok(Err(e)) => e.to_string(),
                        Err(_) => {
                            *conn = None;
                            format!("no answer in {PROBE_TIMEOUT:?}")
                        }
                    };
                    first_error.get_or_insert(format!("probe at T{at:+.1} s: {e}"));
                    None
                }
            }
        };
        let path = "/v1/secret/data/expire-probe";
        let body = Bytes::from(json!({"data": {"n": i}}).to_string());
        let t0 = Instant::now();
        let r = tokio::time::timeout(
            PROBE_TIMEOUT,
            request(&mut conn, &root, Method::PUT, path, Some(body)),
        )
        .await;
        let write_us = timed(r, t0, &mut conn);
        let t0 = Instant::now();
        let r = tokio::time::timeout(
            PROBE_TIMEOUT,
            request(&mut conn, &root, Method::GET, path, None),
        )
        .await;
        let read_us = timed(r, t0, &mut conn);
        out.push(Probe {
            at,
            write_us,
            read_us,
        });
        tokio::time::sleep_until(next.into()).await;
    }
    (out, first_error)
}

fn micros(d: Duration) -> u32 {
    d.as_micros().min(u32::MAX as u128) as u32
}

/// What the remaining counts say: seconds after T of the first poll that saw
/// a revocation and of the first that saw none left, revocations per second
/// over the whole (N / the latter) and between 10 % and 90 % revoked.
#[derive(Debug, Default, PartialEq)]
struct Drain {
    first_revoked_s: Option<f64>,
    all_revoked_s: Option<f64>,
    rate_overall: Option<f64>,
    rate_10_90: Option<f64>,
    /// At the last poll.
    remaining_end: u64,
    /// Revoked per second until the last poll (when not all were).
    rate_so_far: Option<f64>,
}

/// `samples`: (seconds after T when the answer came, tokens remaining).
fn drain(n: u64, samples: &[(f64, u64)]) -> Drain {
    let first = |pred: &dyn Fn(u64) -> bool| samples.iter().find(|(_, r)| pred(*r)).copied();
    let first_revoked_s = first(&|r| r < n).map(|s| s.0);
    let all_revoked_s = first(&|r| r == 0).map(|s| s.0);
    let rate_overall = all_revoked_s.filter(|t| *t > 0.0).map(|t| n as f64 / t);
    let at90 = first(&|r| r as f64 <= 0.9 * n as f64);
    let at10 = first(&|r| r as f64 <= 0.1 * n as f64);
    // Two answers close together (a LIST that waited behind the
    // revocations, then the next one at once) make no slope.
    let rate_10_90 = match (at90, at10) {
        (Some((t1, r1)), Some((t2, r2))) if t2 - t1 >= MIN_SLOPE_SPAN_S => {
            Some((r1 - r2) as f64 / (t2 - t1))
        }
        _ => None,
    };
    let (t_end, remaining_end) = samples.last().copied().unwrap_or((0.0, n));
    Drain {
        first_revoked_s,
        all_revoked_s,
        rate_overall,
        rate_10_90,
        remaining_end,
        rate_so_far: (remaining_end > 0 && t_end > 0.0)
            .then(|| (n - remaining_end.min(n)) as f64 / t_end),
    }
}

/// Unix seconds of an RFC 3339 UTC timestamp as OpenBao logs them
/// (`2026-12-06T07:41:34.416Z`).
fn parse_utc(ts: &str) -> Option<f64> {
    let ts = ts.strip_suffix('Z')?;
    let (date, time) = ts.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.splitn(3, ':');
    let (h, min) = (
        t.next()?.parse::<i64>().ok()?,
        t.next()?.parse::<i64>().ok()?,
    );
    let sec: f64 = t.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + h * 3600 + min * 60) as f64 + sec)
}

/// Token revocations an OpenBao log reports at or after `since` (unix
/// seconds): (count, first, last), None when there is none.
fn log_revocations(log: &str, since: f64) -> Option<(u64, f64, f64)> {
    let mut out: Option<(u64, f64, f64)> = None;
    for line in log.lines().filter(|l| l.contains(BAO_REVOKED)) {
        let Some(t) = line.split_whitespace().next().and_then(parse_utc) else {
            continue;
        };
        if t < since {
            continue;
        }
        out = Some(match out {
            None => (1, t, t),
            Some((n, a, b)) => (n + 1, a.min(t), b.max(t)),
        });
    }
    out
}

/// p50 and max in ms of some latencies (None when empty).
fn p50_max_ms(mut v: Vec<u32>) -> Option<(f64, f64)> {
    v.sort_unstable();
    let last = *v.last()?;
    Some((percentile(&v, 50.0) as f64 / 1000.0, last as f64 / 1000.0))
}

fn probe_json(probes: &[Probe]) -> Value {
    let lat = |f: fn(&Probe) -> Option<u32>| {
        let v: Vec<u32> = probes.iter().filter_map(f).collect();
        let failed = probes.iter().filter(|p| f(p).is_none()).count();
        let (p50, max) = p50_max_ms(v).unzip();
        json!({"p50_ms": p50.map(|x| round(x, 2)), "max_ms": max.map(|x| round(x, 2)), "failed": failed})
    };
    json!({
        "probes": probes.len(),
        "write": lat(|p| p.write_us),
        "read": lat(|p| p.read_us),
    })
}

/// One attempt on a fresh server; Ok(Err(created)) when creation was not
/// done by T.
async fn attempt(
    kind: ServerKind,
    n: u64,
    rate_hint: Option<f64>,
    cfg: &Config,
    out_dir: &Path,
) -> Result<std::result::Result<Value, Created>> {
    let name = kind.name();
    let mut one = cfg.clone();
    one.nodes = 1;
    let mut cluster = Cluster::start(kind, &one, out_dir)?;
    let formed = form(&mut cluster).await?;
    let addr = cluster.nodes[0].addr.clone();
    let pid = cluster.nodes[0].pid();
    let root = Target {
        addr: addr.clone(),
        token: formed.token.clone(),
        stale: false,
    };
    let mut poll_conn = None;
    let baseline = count_accessors(&mut poll_conn, &root).await?;

    // Calibration: the creation rate on this server, then back to baseline.
    let cal = create_tokens(&root, CALIBRATION.min(n), cfg.concurrency, None, true).await?;
    let cal_rate = cal.rate();
    revoke_accessors(&root, cal.accessors, cfg.concurrency).await?;
    let after_cal = count_accessors(&mut poll_conn, &root).await?;
    if after_cal != baseline {
        bail!("{name}: {after_cal} accessors after the calibration, {baseline} before");
    }
    let rate = rate_hint.map_or(cal_rate, |h| h.min(cal_rate));
    let start = unix_f64();
    let due = due_second(start, n, rate);
    eprintln!(
        "[{name}] calibration: {:.0} tokens/s; creating {n} tokens due at T = {due} ({:.0} s from now)",
        cal_rate,
        due as f64 - start
    );
    let created = create_tokens(&root, n, cfg.concurrency, Some(due), false).await?;
    let create_end = unix_f64();
    if created.cut_short || created.created < n {
        eprintln!(
            "[{name}] creation not done by T: {} of {n} tokens in {:.1} s ({:.0}/s)",
            created.created,
            created.elapsed.as_secs_f64(),
            created.rate()
        );
        return Ok(Err(created));
    }
    let listed = count_accessors(&mut poll_conn, &root).await?;
    let revoked_early = (n + baseline).saturating_sub(listed);
    eprintln!(
        "[{name}] {n} tokens in {:.1} s ({:.0}/s), {:.1} s before T; {revoked_early} gone already",
        created.elapsed.as_secs_f64(),
        created.rate(),
        due as f64 - create_end
    );

    // Probes from now (idle baseline) until the end.
    let stop = Arc::new(AtomicBool::new(false));
    let probes = tokio::spawn(probe_loop(root.clone(), due, stop.clone()));
    let sampler = MemSampler::start(pid);
    let (_, rss_before) = read_mem(pid).unwrap_or((0, 0));
    tokio::time::sleep(Duration::from_secs_f64((due as f64 - unix_f64()).max(0.0))).await;

    let ticks = clock_ticks_per_sec();
    let cpu0 = cpu_seconds(pid, ticks);
    let mut samples: Vec<(f64, u64)> = Vec::new();
    let mut list_ms: Vec<u32> = Vec::new();
    let timeout = cfg.expire_timeout;
    let mut last_print = Instant::now();
    loop {
        cluster.nodes[0]
            .child
            .try_wait()?
            .map_or(Ok(()), |st| Err(anyhow!("{name} server exited ({st})")))?;
        let t0 = Instant::now();
        let count = count_accessors(&mut poll_conn, &root).await?;
        let took = t0.elapsed();
        list_ms.push(micros(took));
        let at = unix_f64() - due as f64;
        let remaining = count.saturating_sub(baseline);
        samples.push((at, remaining));
        if last_print.elapsed() >= Duration::from_secs(10) || remaining == 0 {
            eprintln!(
                "[{name}]   T{at:+.1} s: {remaining} remaining (LIST {:.0} ms)",
                took.as_secs_f64() * 1000.0
            );
            last_print = Instant::now();
        }
        if remaining == 0 {
            break;
        }
        if at > timeout.as_secs_f64() {
            eprintln!("[{name}]   timeout: {remaining} of {n} still there after {timeout:?}");
            break;
        }
        let wait = (took * POLL_LATENCY_FACTOR).clamp(POLL_EVERY, POLL_MAX_GAP);
        tokio::time::sleep_until((t0 + wait).into()).await;
    }
    let cpu1 = cpu_seconds(pid, ticks);
    stop.store(true, Ordering::Relaxed);
    let (probes, probe_error) = probes.await?;
    let (hwm, _) = sampler.finish(pid);
    cluster.stop();
    // The calibration's revocations are long over by T.
    let logged = match kind {
        ServerKind::OpenBao => std::fs::read_to_string(&cluster.nodes[0].log)
            .ok()
            .and_then(|l| log_revocations(&l, due as f64 - 1.0)),
        ServerKind::Arca => None,
    };

    let d = drain(n, &samples);
    let before: Vec<Probe> = probes.iter().filter(|p| p.at < 0.0).copied().collect();
    let during: Vec<Probe> = probes.iter().filter(|p| p.at >= 0.0).copied().collect();
    let list_lat = p50_max_ms(list_ms.clone());
    let r = |v: Option<f64>, d: i32| v.map(|x| round(x, d));
    let row = json!({
        "server": name,
        "version": formed.version,
        "leases": n,
        "due_unix_s": due,
        "calibration_create_per_second": round(cal_rate, 0),
        "create_seconds": round(created.elapsed.as_secs_f64(), 2),
        "create_per_second": round(created.rate(), 0),
        "created_before_due_s": round(due as f64 - create_end, 1),
        "revoked_before_due": revoked_early,
        "first_revoked_after_s": r(d.first_revoked_s, 2),
        "all_revoked_after_s": r(d.all_revoked_s, 2),
        "revocations_per_second": r(d.rate_overall, 0),
        "revocations_per_second_10_90": r(d.rate_10_90, 0),
        "remaining_at_end": d.remaining_end,
        "log_revoked": logged.map(|l| l.0),
        "log_first_revoked_after_s": logged.map(|l| round(l.1 - due as f64, 2)),
        "log_last_revoked_after_s": logged.map(|l| round(l.2 - due as f64, 2)),
        "log_revocations_per_second": logged
            .filter(|l| l.0 == n && l.2 > due as f64)
            .map(|l| round(n as f64 / (l.2 - due as f64), 0)),
        "revocations_per_second_until_timeout": r(d.rate_so_far, 0),
        "timeout_s": timeout.as_secs(),
        "polls": samples.len(),
        "list_accessors_ms": {"p50": list_lat.map(|l| round(l.0, 1)), "max": list_lat.map(|l| round(l.1, 1))},
        "probe_before_due": probe_json(&before),
        "probe_during": probe_json(&during),
        "probe_first_error": probe_error,
        "server_cpu_s_from_due": cpu0.zip(cpu1).map(|(a, b)| round(b - a, 1)),
        "rss_before_due_kib": rss_before,
        "peak_rss_kib": hwm,
        "remaining_samples": samples.iter().map(|(t, r)| json!([round(*t, 2), r])).collect::<Vec<_>>(),
    });
    eprintln!(
        "[{name}] {n} due: first revocation seen T+{} s, all revoked T+{} s, {} revocations/s (10–90 %: {})",
        fmt_opt(d.first_revoked_s, 1),
        fmt_opt(d.all_revoked_s, 1),
        fmt_opt(d.rate_overall, 0),
        fmt_opt(d.rate_10_90, 0),
    );
    if let Some((count, first, last)) = logged {
        eprintln!(
            "[{name}]   server log: {count} revocations from T{:+.2} s to T{:+.2} s",
            first - due as f64,
            last - due as f64
        );
    }
    Ok(Ok(row))
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map(|x| format!("{x:.digits$}"))
        .unwrap_or_else(|| "—".into())
}

async fn bench_one(kind: ServerKind, n: u64, cfg: &Config, out_dir: &Path) -> Result<Value> {
    let mut hint = None;
    let mut failed = Vec::new();
    for i in 1..=ATTEMPTS {
        match attempt(kind, n, hint, cfg, out_dir).await? {
            Ok(mut row) => {
                row["attempt"] = json!(i);
                row["failed_attempts"] = json!(failed);
                return Ok(row);
            }
            Err(c) => {
                failed.push(json!({
                    "created": c.created,
                    "seconds": round(c.elapsed.as_secs_f64(), 1),
                    "per_second": round(c.rate(), 0),
                }));
                hint = Some(c.rate());
            }
        }
    }
    bail!(
        "{}: creating {n} tokens was not done by T in {ATTEMPTS} attempts: {failed:?}",
        kind.name()
    )
}

fn markdown(rows: &[Value], host: &Value) -> String {
    let mut md = String::from(
        "| server | tokens due at T | created/s | first revocation seen (LIST) | none left (LIST) | revocations/s (N / time) | revocations/s (10→90 %) | server log: first / last revocation | revocations/s (log) | server CPU s from T | peak RSS MiB |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let f = |v: &Value, d: usize| {
        v.as_f64()
            .map(|x| format!("{x:.d$}"))
            .unwrap_or_else(|| "—".into())
    };
    let name = |r: &Value| {
        format!(
            "{} {}",
            r["server"].as_str().unwrap_or("?"),
            r["version"].as_str().unwrap_or("")
        )
    };
    for r in rows {
        let all = if r["all_revoked_after_s"].is_null() {
            format!(
                "not after {} s: {} left ({}/s so far)",
                r["timeout_s"],
                r["remaining_at_end"],
                f(&r["revocations_per_second_until_timeout"], 0)
            )
        } else {
            format!("T+{} s", f(&r["all_revoked_after_s"], 1))
        };
        let log = if r["log_revoked"].is_null() {
            "—".to_string()
        } else {
            format!(
                "T+{} / T+{} s ({} lines)",
                f(&r["log_first_revoked_after_s"], 2),
                f(&r["log_last_revoked_after_s"], 2),
                r["log_revoked"]
            )
        };
        md.push_str(&format!(
            "| {} | {} | {} | T+{} s | {} | {} | {} | {} | {} | {} | {} |\n",
            name(r),
            r["leases"],
            f(&r["create_per_second"], 0),
            f(&r["first_revoked_after_s"], 1),
            all,
            f(&r["revocations_per_second"], 0),
            f(&r["revocations_per_second_10_90"], 0),
            log,
            f(&r["log_revocations_per_second"], 0),
            f(&r["server_cpu_s_from_due"], 1),
            mib(r["peak_rss_kib"].as_u64().unwrap_or(0)),
        ));
    }
    md.push_str(
        "\nMeanwhile (one KV v2 write + read per second, 30 s client timeout; LIST: the counting requests):\n\n| server | tokens due at T | KV write p50 / max before T | KV write p50 / max from T | KV read p50 / max from T | failed probes | LIST accessors p50 / max |\n|---|---:|---:|---:|---:|---:|---:|\n",
    );
    let pm = |v: &Value| format!("{} / {} ms", f(&v["p50_ms"], 2), f(&v["max_ms"], 1));
    for r in rows {
        let during = &r["probe_during"];
        let failures = during["write"]["failed"].as_u64().unwrap_or(0)
            + during["read"]["failed"].as_u64().unwrap_or(0);
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} of {} | {} / {} ms |\n",
            name(r),
            r["leases"],
            pm(&r["probe_before_due"]["write"]),
            pm(&during["write"]),
            pm(&during["read"]),
            failures,
            2 * during["probes"].as_u64().unwrap_or(0),
            f(&r["list_accessors_ms"]["p50"], 0),
            f(&r["list_accessors_ms"]["max"], 0),
        ));
    }
    for r in rows {
        if let Some(e) = r["probe_first_error"].as_str() {
            md.push_str(&format!(
                "\n- {} ({}): first probe failure: `{}`",
                r["server"].as_str().unwrap_or("?"),
                r["leases"],
                e.replace('`', "'")
            ));
        }
        if let Some(v) = r["failed_attempts"].as_array().filter(|v| !v.is_empty()) {
            md.push_str(&format!(
                "\n- {} ({}): creation not done by T in {} attempt(s) before: {}",
                r["server"].as_str().unwrap_or("?"),
                r["leases"],
                v.len(),
                Value::Array(v.clone())
            ));
        }
        if r["revoked_before_due"].as_u64().unwrap_or(0) > 0 {
            md.push_str(&format!(
                "\n- {} ({}): {} tokens gone before T",
                r["server"].as_str().unwrap_or("?"),
                r["leases"],
                r["revoked_before_due"]
            ));
        }
    }
    md.push_str(&format!("\n\nHost: {host}\n"));
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
        "expire",
        host,
        json!({
            "leases": cfg.leases,
            "concurrency": cfg.concurrency,
            "timeout_s": cfg.expire_timeout.as_secs(),
            "mode": "one node, raft storage in a temporary directory, plain HTTP on loopback; N tokens due within the second after T, LIST auth/token/accessors from T (every 4 × its latency, within 1..3 s), OpenBao revocations also timed from its log, a KV write + read probe every second",
        }),
        rows,
        markdown,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expire_args() {
        let a = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        let c = parse_args(&a("expire")).unwrap();
        assert_eq!(c.mode, Mode::Expire);
        assert_eq!(c.leases, vec![10_000, 100_000]);
        assert_eq!(c.expire_timeout, Duration::from_secs(900));
        assert_eq!(c.concurrency, 32);
        let c = parse_args(&a("expire --leases 500 --timeout 2m --servers arca")).unwrap();
        assert_eq!(c.leases, vec![500]);
        assert_eq!(c.expire_timeout, Duration::from_secs(120));
        assert!(parse_args(&a("expire --leases 0")).is_err());
        assert!(parse_args(&a("expire --nodes 3")).is_err());
        assert!(parse_args(&a("leases --timeout 2m")).is_err());
    }

    #[test]
    fn due_second_leaves_room() {
        // 10 000 at 1000/s: 10 s of creation, due 1.5 × 10 + 10 s later.
        assert_eq!(due_second(1000.0, 10_000, 1000.0), 1025);
        assert_eq!(due_second(1000.2, 10_000, 1000.0), 1026);
        // A silly rate is taken as 1/s, not a division by zero.
        assert_eq!(due_second(0.0, 10, 0.0), 25);
    }

    #[test]
    fn ttl_lands_in_the_due_second() {
        assert_eq!(ttl_until(1025, 1000.0), 25);
        assert_eq!(ttl_until(1025, 1000.9), 25);
        assert_eq!(ttl_until(1025, 1024.5), 1);
        // Past T: the shortest TTL.
        assert_eq!(ttl_until(1025, 1030.0), 1);
    }

    #[test]
    fn drain_figures() {
        let s = [
            (0.5, 100),
            (1.5, 95),
            (2.5, 80),
            (3.5, 50),
            (4.5, 5),
            (5.5, 0),
        ];
        let d = drain(100, &s);
        assert_eq!(d.first_revoked_s, Some(1.5));
        assert_eq!(d.all_revoked_s, Some(5.5));
        assert!((d.rate_overall.unwrap() - 100.0 / 5.5).abs() < 1e-9);
        // 90 %: first ≤ 90 at 2.5 s (80); 10 %: first ≤ 10 at 4.5 s (5).
        assert!((d.rate_10_90.unwrap() - 75.0 / 2.0).abs() < 1e-9);
        assert_eq!((d.remaining_end, d.rate_so_far), (0, None));
        let d = drain(100, &[(1.0, 100), (10.0, 60)]);
        assert_eq!(d.all_revoked_s, None);
        assert_eq!(d.rate_overall, None);
        assert_eq!(d.rate_10_90, None);
        assert_eq!(d.remaining_end, 60);
        assert!((d.rate_so_far.unwrap() - 4.0).abs() < 1e-9);
        assert_eq!(drain(5, &[]).first_revoked_s, None);
        // A stale answer right before the final one: no slope.
        let d = drain(10_000, &[(0.0, 10_000), (12.9, 8494), (12.901, 0)]);
        assert_eq!(d.rate_10_90, None);
        assert_eq!(d.all_revoked_s, Some(12.901));
    }

    #[test]
    fn utc_timestamps() {
        assert_eq!(parse_utc("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(parse_utc("2000-03-01T00:00:00Z"), Some(951_868_800.0));
        let t = parse_utc("2026-12-06T07:41:34.416Z").unwrap();
        assert!((t - 1_796_542_894.416).abs() < 1e-6);
        assert_eq!(parse_utc("2026-12-06 07:41:34Z"), None);
        assert_eq!(parse_utc("2026-13-06T07:41:34Z"), None);
        assert_eq!(parse_utc("garbage"), None);
    }

    #[test]
    fn openbao_log_revocations() {
        let log = "\
2026-12-06T07:35:58.355Z [INFO]  expiration: revoked lease: lease_id=auth/token/create/ha
2026-12-06T07:39:50.100Z [INFO]  expiration: revoked lease: lease_id=auth/token/create/hb
2026-12-06T07:39:49.900Z [INFO]  expiration: revoked lease: lease_id=auth/token/create/hc
2026-12-06T07:39:51.000Z [INFO]  core: something else
2026-12-06T07:41:34.416Z [INFO]  expiration: revoked lease: lease_id=auth/token/create/hd
";
        let since = parse_utc("2026-12-06T07:39:49Z").unwrap();
        let (n, first, last) = log_revocations(log, since).unwrap();
        assert_eq!(n, 3);
        assert!((first - since - 0.9).abs() < 1e-6);
        assert!((last - since - 105.416).abs() < 1e-6);
        assert_eq!(log_revocations(log, since + 1000.0), None);
    }

    #[test]
    fn probe_summary() {
        let p = |at, w, r| Probe {
            at,
            write_us: w,
            read_us: r,
        };
        let v = probe_json(&[p(0.0, Some(1000), Some(500)), p(1.0, None, Some(1500))]);
        assert_eq!(v["probes"], 2);
        assert_eq!(v["write"]["p50_ms"], 1.0);
        assert_eq!(v["write"]["failed"], 1);
        assert_eq!(v["read"]["max_ms"], 1.5);
        assert_eq!(probe_json(&[])["write"]["p50_ms"], Value::Null);
    }
}
