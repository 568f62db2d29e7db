//! `arca-bench pki`: the PKI secrets engine of `arca server -dev` and
//! `bao server -dev` (OpenBao), one after the other, on this machine.
//!
//! For each server: start it as in `kv`, mount `pki/` (max lease TTL
//! 87600h), generate an internal EC P-256 root, create four roles
//! (`allow_any_name`, TTL 8760h; EC P-256 or RSA 2048, stored or
//! `no_store`), then
//! 1. issuance phases: `--concurrency` keep-alive connections, each in a
//!    loop `POST /v1/pki/issue/<role> {"common_name":"h<n>.example.com"}`,
//!    for `--duration`, once per role;
//! 2. signing phase: the same with `POST /v1/pki/sign/ec-stored` and one
//!    EC P-256 CSR made once with `openssl req`;
//! 3. revocation with few revoked: issue `10 + 50` stored EC certificates,
//!    revoke 10, then time 50 sequential `POST /v1/pki/revoke`;
//! 4. population: `config/crl auto_rebuild=true`, then `--revoked` stored
//!    EC certificates issued and revoked by `--concurrency` connections
//!    (progress every 10%), then `auto_rebuild=false` again (Vault's
//!    default; OpenBao rebuilds its CRL on that change, timed too);
//! 5. revocation at `--revoked`: 50 sequential revocations with
//!    `auto_rebuild=false` (OpenBao then rebuilds the complete CRL on every
//!    revocation), then 50 with `auto_rebuild=true`; each series stops
//!    early once it has run 120 s and has at least 5 samples;
//! 6. CRL: right after the `auto_rebuild=false` series, the first
//!    `GET /v1/pki/crl` (Arca signs the CRL on the first read after a
//!    change) and a second one; after the `auto_rebuild=true` series,
//!    `GET /v1/pki/crl/rotate` and then `GET /v1/pki/crl`. Each CRL's
//!    entries are counted (DER parsed here) and its signature checked with
//!    `openssl crl -CAfile <root>`.
//!
//! The server's VmHWM is sampled throughout (peak) and read after the load
//! phases and after the population. Results: markdown on stdout,
//! `pki-latest.json` / `pki-latest.md` in `--out-dir`.

use super::*;

/// Sequential revocations per timed series.
const REVOKE_SAMPLES: usize = 50;
/// A series stops after this long once it has `REVOKE_MIN_SAMPLES`.
const REVOKE_BUDGET: Duration = Duration::from_secs(120);
const REVOKE_MIN_SAMPLES: usize = 5;
/// Revoked before the "few revoked" series.
const FEW_REVOKED: usize = 10;
/// Attempts per certificate during population before giving up.
const POPULATE_ATTEMPTS: usize = 5;

/// A role and the load phase that issues from it.
struct RoleSpec {
    /// Role name and JSON key of its phase.
    name: &'static str,
    label: &'static str,
    key_type: &'static str,
    key_bits: u32,
    no_store: bool,
}

const ROLES: [RoleSpec; 4] = [
    RoleSpec {
        name: "ec-stored",
        label: "issue EC P-256, stored",
        key_type: "ec",
        key_bits: 256,
        no_store: false,
    },
    RoleSpec {
        name: "ec-nostore",
        label: "issue EC P-256, no_store",
        key_type: "ec",
        key_bits: 256,
        no_store: true,
    },
    RoleSpec {
        name: "rsa-stored",
        label: "issue RSA 2048, stored",
        key_type: "rsa",
        key_bits: 2048,
        no_store: false,
    },
    RoleSpec {
        name: "rsa-nostore",
        label: "issue RSA 2048, no_store",
        key_type: "rsa",
        key_bits: 2048,
        no_store: true,
    },
];

/// The role population and the revocation series issue from.
const STORED_EC_ROLE: &str = "ec-stored";

// ------------------------------------------------------------- client --

/// One keep-alive connection, reopened (and the request sent again once)
/// after a transport error, e.g. when the server closed it while idle.
pub(super) struct Client {
    target: Target,
    conn: Option<Conn>,
}

impl Client {
    pub(super) fn new(target: &Target) -> Client {
        Client {
            target: target.clone(),
            conn: None,
        }
    }

    async fn call(&mut self, method: Method, path: &str, body: Option<Bytes>) -> Result<Bytes> {
        let mut last = None;
        for _ in 0..2 {
            let conn = match self.conn.as_mut() {
                Some(c) => c,
                None => self.conn.insert(connect(&self.target.addr).await?),
            };
            match send(conn, &self.target, method.clone(), path, body.clone()).await {
                Ok((200..=299, b)) => return Ok(b),
                Ok((status, b)) => bail!(
                    "{method} {path}: HTTP {status} {}",
                    truncate(&String::from_utf8_lossy(&b), 300)
                ),
                Err(e) => {
                    self.conn = None;
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap().context(format!("{method} {path}")))
    }

    pub(super) async fn post(&mut self, path: &str, body: Value) -> Result<Bytes> {
        self.call(Method::POST, path, Some(Bytes::from(body.to_string())))
            .await
    }

    pub(super) async fn get(&mut self, path: &str) -> Result<Bytes> {
        self.call(Method::GET, path, None).await
    }

    /// Issues a stored EC certificate (long TTL); returns its serial.
    async fn issue_serial(&mut self, n: u64) -> Result<String> {
        let b = self
            .post(
                &format!("/v1/pki/issue/{STORED_EC_ROLE}"),
                json!({"common_name": format!("r{n}.example.com")}),
            )
            .await?;
        let v: Value = serde_json::from_slice(&b)?;
        v["data"]["serial_number"]
            .as_str()
            .map(String::from)
            .ok_or_else(|| anyhow!("issue: no serial_number in {v}"))
    }

    async fn revoke(&mut self, serial: &str) -> Result<()> {
        self.post("/v1/pki/revoke", json!({"serial_number": serial}))
            .await
            .map(drop)
    }

    /// Sets `config/crl auto_rebuild`; returns how long the call took.
    async fn auto_rebuild(&mut self, on: bool) -> Result<Duration> {
        let t0 = Instant::now();
        self.post("/v1/pki/config/crl", json!({"auto_rebuild": on}))
            .await?;
        Ok(t0.elapsed())
    }

    /// `GET path`, timed.
    async fn timed_get(&mut self, path: &str) -> Result<(Duration, Bytes)> {
        let t0 = Instant::now();
        let b = self.get(path).await?;
        Ok((t0.elapsed(), b))
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

// ---------------------------------------------------------- measuring --

/// Latency figures of a set of requests.
#[derive(Clone, Debug, Default)]
struct Lat {
    n: usize,
    p50_us: u32,
    p99_us: u32,
    max_us: u32,
    mean_us: f64,
}

impl Lat {
    fn of(mut v: Vec<u32>) -> Lat {
        v.sort_unstable();
        let mean_us = if v.is_empty() {
            0.0
        } else {
            v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64
        };
        Lat {
            n: v.len(),
            p50_us: percentile(&v, 50.0),
            p99_us: percentile(&v, 99.0),
            max_us: v.last().copied().unwrap_or(0),
            mean_us,
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "samples": self.n,
            "p50": self.p50_us, "p99": self.p99_us,
            "max": self.max_us, "mean": round(self.mean_us, 1),
        })
    }
}

fn micros(d: Duration) -> u32 {
    d.as_micros().min(u32::MAX as u128) as u32
}

/// One load phase: requests made by `make(n)` (n from a shared counter).
pub(super) type MakeReq = Arc<dyn Fn(u64) -> (String, Bytes) + Send + Sync>;

pub(super) struct Load {
    pub(super) name: &'static str,
    label: &'static str,
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    elapsed: Duration,
    lat: Lat,
    /// Summed over the server processes under load.
    server_cpu_s: Option<f64>,
    /// Per server process (one entry for a single server).
    node_cpu_s: Vec<Option<f64>>,
}

impl Load {
    fn throughput(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    fn per_cpu_s(&self) -> Option<f64> {
        self.server_cpu_s
            .filter(|c| *c > 0.0)
            .map(|c| self.ok as f64 / c)
    }

    pub(super) fn to_json(&self) -> Value {
        let mut v = json!({
            "description": self.label,
            "requests_ok": self.ok,
            "errors": self.errors,
            "first_error": self.first_error,
            "elapsed_s": round(self.elapsed.as_secs_f64(), 3),
            "throughput_rps": round(self.throughput(), 1),
            "latency_us": self.lat.to_json(),
            "server_cpu_s": self.server_cpu_s.map(|v| round(v, 2)),
            "requests_per_server_cpu_s": self.per_cpu_s().map(|v| round(v, 1)),
        });
        if self.node_cpu_s.len() > 1 {
            v["node_cpu_s"] = json!(self
                .node_cpu_s
                .iter()
                .map(|c| c.map(|c| round(c, 2)))
                .collect::<Vec<_>>());
        }
        v
    }
}

async fn load_worker(
    target: Target,
    deadline: Instant,
    counter: Arc<AtomicU64>,
    make: MakeReq,
) -> WorkerResult {
    let mut res = WorkerResult::default();
    let mut conn: Option<Conn> = None;
    while Instant::now() < deadline {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match connect(&target.addr).await {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    res.errors += 1;
                    res.first_error
                        .get_or_insert_with(|| format!("connect: {e}"));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let (path, body) = make(counter.fetch_add(1, Ordering::Relaxed));
        // An empty body is a read (GET); anything else is written (POST).
        let (method, body) = if body.is_empty() {
            (Method::GET, None)
        } else {
            (Method::POST, Some(body))
        };
        let t0 = Instant::now();
        let r = send(c, &target, method, &path, body).await;
        let us = micros(t0.elapsed());
        match r {
            Ok((200..=299, _)) => res.latencies_us.push(us),
            Ok((status, body)) => {
                res.errors += 1;
                res.first_error.get_or_insert_with(|| {
                    format!(
                        "{path}: HTTP {status} {}",
                        truncate(&String::from_utf8_lossy(&body), 300)
                    )
                });
            }
            Err(e) => {
                res.errors += 1;
                res.first_error
                    .get_or_insert_with(|| format!("{path}: {e}"));
                conn = None;
            }
        }
    }
    res
}

/// What a load phase runs against and how long.
pub(super) struct LoadCtx<'a> {
    /// Connection `i` goes to `targets[i % targets.len()]` (one server, or
    /// every node of a cluster).
    pub(super) targets: &'a [Target],
    pub(super) concurrency: usize,
    pub(super) duration: Duration,
    /// The server processes whose CPU time the phase accounts for.
    pub(super) pids: &'a [u32],
    pub(super) ticks: f64,
    pub(super) server: &'static str,
}

pub(super) async fn load(
    ctx: &LoadCtx<'_>,
    name: &'static str,
    label: &'static str,
    make: MakeReq,
) -> Load {
    eprintln!(
        "[{}] {label}: {} connections{}, {:?}",
        ctx.server,
        ctx.concurrency,
        match ctx.targets.len() {
            1 => String::new(),
            n => format!(" over {n} nodes"),
        },
        ctx.duration
    );
    let node_cpu = || -> Vec<Option<f64>> {
        ctx.pids
            .iter()
            .map(|&p| cpu_seconds(p, ctx.ticks))
            .collect()
    };
    let cpu0 = node_cpu();
    let start = Instant::now();
    let deadline = start + ctx.duration;
    let counter = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..ctx.concurrency)
        .map(|i| {
            tokio::spawn(load_worker(
                ctx.targets[i % ctx.targets.len()].clone(),
                deadline,
                counter.clone(),
                make.clone(),
            ))
        })
        .collect();
    let (mut all, mut errors, mut first_error) = (Vec::new(), 0, None);
    for h in handles {
        let r = h.await.expect("worker panicked");
        all.extend_from_slice(&r.latencies_us);
        errors += r.errors;
        if first_error.is_none() {
            first_error = r.first_error;
        }
    }
    let elapsed = start.elapsed();
    let cpu1 = node_cpu();
    let node_cpu_s: Vec<Option<f64>> = cpu0
        .iter()
        .zip(&cpu1)
        .map(|(a, b)| Some(b.as_ref()? - a.as_ref()?))
        .collect();
    let l = Load {
        name,
        label,
        ok: all.len() as u64,
        errors,
        first_error,
        elapsed,
        lat: Lat::of(all),
        server_cpu_s: node_cpu_s.iter().copied().sum(),
        node_cpu_s,
    };
    eprintln!(
        "[{}]   {} ok, {} errors, {:.0} req/s, p50 {} ms, p99 {} ms",
        ctx.server,
        l.ok,
        l.errors,
        l.throughput(),
        ms(l.lat.p50_us),
        ms(l.lat.p99_us)
    );
    if let Some(e) = &l.first_error {
        eprintln!("[{}]   first error: {e}", ctx.server);
    }
    l
}

/// Revokes `serials` one after the other and times each revocation; stops
/// early once `REVOKE_BUDGET` has passed and `REVOKE_MIN_SAMPLES` are in.
async fn timed_revocations(c: &mut Client, serials: &[String]) -> Result<Lat> {
    let start = Instant::now();
    let mut v = Vec::with_capacity(serials.len());
    for s in serials {
        if v.len() >= REVOKE_MIN_SAMPLES && start.elapsed() > REVOKE_BUDGET {
            break;
        }
        let t0 = Instant::now();
        c.revoke(s).await?;
        v.push(micros(t0.elapsed()));
    }
    Ok(Lat::of(v))
}

async fn issue_serials(c: &mut Client, first: u64, n: usize) -> Result<Vec<String>> {
    let mut v = Vec::with_capacity(n);
    for i in 0..n as u64 {
        v.push(c.issue_serial(first + i).await?);
    }
    Ok(v)
}

/// Issues and revokes `n` stored EC certificates with `concurrency`
/// connections, printing progress every 10%.
async fn populate(target: &Target, server: &'static str, n: u64, concurrency: usize) -> Result<()> {
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let step = (n / 10).max(1);
    let mut handles = Vec::new();
    for _ in 0..concurrency {
        let (next, done, target) = (next.clone(), done.clone(), target.clone());
        handles.push(tokio::spawn(async move {
            let mut c = Client::new(&target);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok(());
                }
                let mut attempt = 0;
                loop {
                    let r = async {
                        let serial = c.issue_serial(1_000_000 + i).await?;
                        c.revoke(&serial).await
                    }
                    .await;
                    match r {
                        Ok(()) => break,
                        Err(e) if attempt + 1 >= POPULATE_ATTEMPTS => {
                            return Err(e.context(format!("population, certificate {i}")))
                        }
                        Err(e) => {
                            attempt += 1;
                            eprintln!("[{server}] population: {e:#}; retrying");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                }
                let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                if d % step == 0 || d == n {
                    let secs = start.elapsed().as_secs_f64();
                    eprintln!(
                        "[{server}] population: {d}/{n} revoked ({}%) after {secs:.1} s, {:.0}/s",
                        d * 100 / n,
                        d as f64 / secs
                    );
                }
            }
        }));
    }
    for h in handles {
        h.await.expect("population worker panicked")?;
    }
    Ok(())
}

// ---------------------------------------------------------------- CRLs --

/// One DER TLV: (tag, contents, rest). Definite lengths only.
fn tlv(b: &[u8]) -> Result<(u8, &[u8], &[u8])> {
    let (&tag, rest) = b.split_first().ok_or_else(|| anyhow!("DER: truncated"))?;
    let (&l0, rest) = rest
        .split_first()
        .ok_or_else(|| anyhow!("DER: truncated"))?;
    let (len, rest) = if l0 < 0x80 {
        (l0 as usize, rest)
    } else {
        let k = (l0 & 0x7f) as usize;
        if k == 0 || k > 4 || rest.len() < k {
            bail!("DER: bad length");
        }
        let len = rest[..k].iter().fold(0usize, |a, &x| (a << 8) | x as usize);
        (len, &rest[k..])
    };
    if rest.len() < len {
        bail!("DER: truncated");
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

/// Number of revokedCertificates entries of a DER CertificateList
/// (RFC 5280 5.1), checking the structure on the way.
fn crl_entries(der: &[u8]) -> Result<usize> {
    const SEQ: u8 = 0x30;
    let (tag, list, rest) = tlv(der)?;
    if tag != SEQ || !rest.is_empty() {
        bail!("not a DER CertificateList");
    }
    let (tag, mut tbs, _) = tlv(list)?;
    if tag != SEQ {
        bail!("CRL: tbsCertList is not a SEQUENCE");
    }
    let mut next = || -> Result<Option<(u8, &[u8])>> {
        if tbs.is_empty() {
            return Ok(None);
        }
        let (t, c, r) = tlv(tbs)?;
        tbs = r;
        Ok(Some((t, c)))
    };
    let mut item = next()?;
    if let Some((0x02, _)) = item {
        item = next()?; // version
    }
    for what in ["signature algorithm", "issuer"] {
        match item {
            Some((SEQ, _)) => item = next()?,
            _ => bail!("CRL: no {what}"),
        }
    }
    match item {
        Some((0x17 | 0x18, _)) => item = next()?, // thisUpdate
        _ => bail!("CRL: no thisUpdate"),
    }
    if let Some((0x17 | 0x18, _)) = item {
        item = next()?; // nextUpdate
    }
    let Some((SEQ, mut revoked)) = item else {
        return Ok(0);
    };
    let mut n = 0;
    while !revoked.is_empty() {
        let (t, _, r) = tlv(revoked)?;
        if t != SEQ {
            bail!("CRL: bad revokedCertificates entry");
        }
        revoked = r;
        n += 1;
    }
    Ok(n)
}

/// A CRL as fetched: how long, how big, how many entries, signature check.
struct CrlFetch {
    time: Duration,
    bytes: usize,
    entries: usize,
    /// `openssl crl -CAfile <root>`: "verify OK", or what went wrong.
    verify: String,
}

impl CrlFetch {
    fn to_json(&self) -> Value {
        json!({
            "time_ms": round(self.time.as_secs_f64() * 1000.0, 2),
            "bytes": self.bytes,
            "entries": self.entries,
            "openssl_verify": self.verify,
        })
    }
}

fn openssl_verify(dir: &Path, tag: &str, der: &[u8], ca_pem: &str) -> String {
    let crl = dir.join(format!("{tag}.crl.der"));
    let ca = dir.join(format!("{tag}.ca.pem"));
    if let Err(e) = std::fs::write(&crl, der).and_then(|_| std::fs::write(&ca, ca_pem)) {
        return format!("cannot write {}: {e}", crl.display());
    }
    let out = Command::new("openssl")
        .args(["crl", "-inform", "DER", "-noout", "-in"])
        .arg(&crl)
        .arg("-CAfile")
        .arg(&ca)
        .output();
    let _ = std::fs::remove_file(&crl);
    match out {
        Ok(o) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            if o.status.success() && text.contains("verify OK") {
                "verify OK".into()
            } else {
                format!("openssl: {}", truncate(text.trim(), 200))
            }
        }
        Err(e) => format!("openssl not run: {e}"),
    }
}

async fn fetch_crl(c: &mut Client, tmp: &Path, tag: &str, ca_pem: &str) -> Result<CrlFetch> {
    let (time, der) = c.timed_get("/v1/pki/crl").await?;
    let entries = crl_entries(&der).with_context(|| format!("{tag}: parsing the CRL"))?;
    Ok(CrlFetch {
        time,
        bytes: der.len(),
        entries,
        verify: openssl_verify(tmp, tag, &der, ca_pem),
    })
}

// -------------------------------------------------------------- server --

struct PkiResult {
    kind: ServerKind,
    version: String,
    idle_rss_kib: u64,
    loads: Vec<Load>,
    hwm_after_loads_kib: u64,
    revoke_few: Lat,
    /// Revoked certificates when `revoke_few` started.
    revoked_before_few: usize,
    populate_n: u64,
    populate_time: Duration,
    /// `config/crl auto_rebuild=false` right after the population.
    auto_rebuild_off_time: Duration,
    hwm_after_populate_kib: u64,
    /// Revoked certificates when the series at N started.
    revoked_before_at_n: usize,
    revoke_at_n_default: Lat,
    crl_first: CrlFetch,
    crl_again: CrlFetch,
    /// Entries the first CRL should list (every revocation so far).
    expected_first: usize,
    revoke_at_n_auto: Lat,
    rotate_time: Duration,
    crl_after_rotate: CrlFetch,
    expected_after_rotate: usize,
    peak_hwm_kib: u64,
}

impl PkiResult {
    fn load(&self, name: &str) -> Option<&Load> {
        self.loads.iter().find(|l| l.name == name)
    }

    /// Certificates the server stores at the end: those of the stored load
    /// phases, the revocation series and the population.
    fn stored_certs(&self) -> u64 {
        let loads: u64 = self
            .loads
            .iter()
            .filter(|l| !ROLES.iter().any(|r| r.no_store && r.name == l.name))
            .map(|l| l.ok)
            .sum();
        loads + (FEW_REVOKED + 3 * REVOKE_SAMPLES) as u64 + self.populate_n
    }

    fn to_json(&self) -> Value {
        let loads: serde_json::Map<String, Value> = self
            .loads
            .iter()
            .map(|l| (l.name.to_string(), l.to_json()))
            .collect();
        json!({
            "version": self.version,
            "idle_vmrss_kib": self.idle_rss_kib,
            "vmhwm_after_load_phases_kib": self.hwm_after_loads_kib,
            "vmhwm_after_population_kib": self.hwm_after_populate_kib,
            "peak_vmhwm_kib": self.peak_hwm_kib,
            "certificates_stored": self.stored_certs(),
            "load_phases": loads,
            "revoke_few": {
                "revoked_before": self.revoked_before_few,
                "latency_us": self.revoke_few.to_json(),
            },
            "population": {
                "revoked": self.populate_n,
                "time_s": round(self.populate_time.as_secs_f64(), 2),
                "issue_and_revoke_per_s": round(
                    self.populate_n as f64 / self.populate_time.as_secs_f64(), 1),
                "auto_rebuild_false_after_ms":
                    round(self.auto_rebuild_off_time.as_secs_f64() * 1000.0, 2),
            },
            "revoke_at_n": {
                "revoked_before": self.revoked_before_at_n,
                "auto_rebuild_false_latency_us": self.revoke_at_n_default.to_json(),
                "auto_rebuild_true_latency_us": self.revoke_at_n_auto.to_json(),
            },
            "crl": {
                "first_get_after_revocation": self.crl_first.to_json(),
                "second_get": self.crl_again.to_json(),
                "expected_entries": self.expected_first,
                "rotate_ms": round(self.rotate_time.as_secs_f64() * 1000.0, 2),
                "get_after_rotate": self.crl_after_rotate.to_json(),
                "expected_entries_after_rotate": self.expected_after_rotate,
            },
        })
    }
}

/// Mounts `pki/`, makes the root and the roles; returns the root's PEM.
async fn setup(c: &mut Client) -> Result<String> {
    c.post("/v1/sys/mounts/pki", json!({"type": "pki"})).await?;
    c.post(
        "/v1/sys/mounts/pki/tune",
        json!({"max_lease_ttl": "87600h"}),
    )
    .await?;
    let b = c
        .post(
            "/v1/pki/root/generate/internal",
            json!({"common_name": "Bench Root", "key_type": "ec", "ttl": "87600h"}),
        )
        .await?;
    let v: Value = serde_json::from_slice(&b)?;
    let ca = v["data"]["certificate"]
        .as_str()
        .ok_or_else(|| anyhow!("root/generate: no certificate in {v}"))?
        .to_string();
    for r in &ROLES {
        c.post(
            &format!("/v1/pki/roles/{}", r.name),
            json!({
                "allow_any_name": true,
                "key_type": r.key_type,
                "key_bits": r.key_bits,
                "no_store": r.no_store,
                "ttl": "8760h",
                "max_ttl": "87600h",
            }),
        )
        .await?;
    }
    Ok(ca)
}

async fn bench_server(
    kind: ServerKind,
    cfg: &Config,
    out_dir: &Path,
    tmp: &Path,
    csr_pem: &str,
) -> Result<PkiResult> {
    let name = kind.name();
    let mut server = ServerProc::start(kind, cfg, out_dir)?;
    eprintln!(
        "[{name}] started pid {} on {} (log {})",
        server.pid(),
        server.addr,
        server.log.display()
    );
    let version = wait_ready(&mut server).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = server.pid();
    let idle_rss_kib = read_mem(pid).map(|m| m.1).unwrap_or(0);
    let sampler = MemSampler::start(pid);
    let hwm_now = || read_mem(pid).map(|m| m.0).unwrap_or(0);
    let target = Target::dev(&server.addr);
    let mut c = Client::new(&target);
    let ca_pem = setup(&mut c).await?;

    // 1-2. Issuance and signing under load.
    let ctx = LoadCtx {
        targets: std::slice::from_ref(&target),
        concurrency: cfg.concurrency,
        duration: cfg.duration,
        pids: &[pid],
        ticks: clock_ticks_per_sec(),
        server: name,
    };
    let mut loads = Vec::new();
    for r in &ROLES {
        let path = format!("/v1/pki/issue/{}", r.name);
        let make: MakeReq = Arc::new(move |n| {
            let body = json!({"common_name": format!("h{n}.example.com")});
            (path.clone(), Bytes::from(body.to_string()))
        });
        loads.push(load(&ctx, r.name, r.label, make).await);
    }
    let sign_body =
        Bytes::from(json!({"csr": csr_pem, "common_name": "csr.example.com"}).to_string());
    let make: MakeReq =
        Arc::new(move |_| (format!("/v1/pki/sign/{STORED_EC_ROLE}"), sign_body.clone()));
    loads.push(load(&ctx, "sign-ec", "sign EC P-256 CSR, stored", make).await);
    let hwm_after_loads_kib = hwm_now();

    // 3. Revocation with few revoked certificates (default CRL config).
    let serials = issue_serials(&mut c, 0, FEW_REVOKED + REVOKE_SAMPLES).await?;
    for s in &serials[..FEW_REVOKED] {
        c.revoke(s).await?;
    }
    let revoke_few = timed_revocations(&mut c, &serials[FEW_REVOKED..]).await?;
    eprintln!(
        "[{name}] revoke with {FEW_REVOKED} revoked: p50 {} ms, p99 {} ms ({} samples)",
        ms(revoke_few.p50_us),
        ms(revoke_few.p99_us),
        revoke_few.n
    );
    let mut revoked = FEW_REVOKED + revoke_few.n;

    // 4. Population, with auto_rebuild on (OpenBao's default rebuilds the
    // whole CRL on every revocation).
    c.auto_rebuild(true).await?;
    eprintln!(
        "[{name}] population: issuing and revoking {} certificates, {} connections",
        cfg.revoked, cfg.concurrency
    );
    let t0 = Instant::now();
    populate(&target, name, cfg.revoked, cfg.concurrency).await?;
    let populate_time = t0.elapsed();
    revoked += cfg.revoked as usize;
    let auto_rebuild_off_time = c.auto_rebuild(false).await?;
    eprintln!(
        "[{name}] population took {:.1} s; auto_rebuild=false took {} ms",
        populate_time.as_secs_f64(),
        ms(micros(auto_rebuild_off_time))
    );
    let hwm_after_populate_kib = hwm_now();

    // 5-6. Revocation and CRLs at N revoked.
    let serials = issue_serials(&mut c, 100, 2 * REVOKE_SAMPLES).await?;
    let revoked_before_at_n = revoked;
    let revoke_at_n_default = timed_revocations(&mut c, &serials[..REVOKE_SAMPLES]).await?;
    revoked += revoke_at_n_default.n;
    eprintln!(
        "[{name}] revoke with {revoked_before_at_n} revoked, auto_rebuild=false: p50 {} ms, p99 {} ms ({} samples)",
        ms(revoke_at_n_default.p50_us),
        ms(revoke_at_n_default.p99_us),
        revoke_at_n_default.n
    );
    let crl_first = fetch_crl(&mut c, tmp, name, &ca_pem).await?;
    let crl_again = fetch_crl(&mut c, tmp, name, &ca_pem).await?;
    let expected_first = revoked;
    eprintln!(
        "[{name}] first GET crl: {} ms, {} bytes, {} entries (expected {expected_first}), {}; again: {} ms",
        ms(micros(crl_first.time)),
        crl_first.bytes,
        crl_first.entries,
        crl_first.verify,
        ms(micros(crl_again.time))
    );
    c.auto_rebuild(true).await?;
    let revoke_at_n_auto = timed_revocations(&mut c, &serials[REVOKE_SAMPLES..]).await?;
    revoked += revoke_at_n_auto.n;
    eprintln!(
        "[{name}] revoke, auto_rebuild=true: p50 {} ms, p99 {} ms ({} samples)",
        ms(revoke_at_n_auto.p50_us),
        ms(revoke_at_n_auto.p99_us),
        revoke_at_n_auto.n
    );
    let (rotate_time, _) = c.timed_get("/v1/pki/crl/rotate").await?;
    let crl_after_rotate = fetch_crl(&mut c, tmp, name, &ca_pem).await?;
    eprintln!(
        "[{name}] crl/rotate: {} ms; GET crl: {} ms, {} bytes, {} entries (expected {revoked}), {}",
        ms(micros(rotate_time)),
        ms(micros(crl_after_rotate.time)),
        crl_after_rotate.bytes,
        crl_after_rotate.entries,
        crl_after_rotate.verify
    );
    let (peak_hwm_kib, _) = sampler.finish(pid);
    server.stop();
    Ok(PkiResult {
        kind,
        version,
        idle_rss_kib,
        loads,
        hwm_after_loads_kib,
        revoke_few,
        revoked_before_few: FEW_REVOKED,
        populate_n: cfg.revoked,
        populate_time,
        auto_rebuild_off_time,
        hwm_after_populate_kib,
        revoked_before_at_n,
        revoke_at_n_default,
        crl_first,
        crl_again,
        expected_first,
        revoke_at_n_auto,
        rotate_time,
        crl_after_rotate,
        expected_after_rotate: revoked,
        peak_hwm_kib,
    })
}

// -------------------------------------------------------------- report --

fn ms_f(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Which way a ratio is taken, so that above 1 favours Arca.
#[derive(Clone, Copy)]
enum Better {
    /// Throughput: Arca / OpenBao.
    Higher,
    /// Times, latency, memory: OpenBao / Arca.
    Lower,
}

impl Better {
    fn ratio(self, arca: f64, bao: f64) -> Option<f64> {
        match self {
            Better::Higher => ratio(arca, bao),
            Better::Lower => ratio(bao, arca),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Better::Higher => "Arca/OpenBao",
            Better::Lower => "OpenBao/Arca",
        }
    }
}

/// Reads one figure from a server's result.
type Getter = Box<dyn Fn(&PkiResult) -> Option<f64>>;

/// A figure of the summary table: its row label, how to read it from a
/// result, how to print it, and how to compare.
struct Row {
    label: String,
    get: Getter,
    fmt: fn(f64) -> String,
    better: Option<Better>,
}

fn f0(v: f64) -> String {
    format!("{v:.0}")
}

fn f2(v: f64) -> String {
    format!("{v:.2}")
}

fn f1(v: f64) -> String {
    format!("{v:.1}")
}

fn row(
    label: impl Into<String>,
    get: impl Fn(&PkiResult) -> Option<f64> + 'static,
    fmt: fn(f64) -> String,
    better: Option<Better>,
) -> Row {
    Row {
        label: label.into(),
        get: Box::new(get),
        fmt,
        better,
    }
}

fn lat_rows(what: &str, get: fn(&PkiResult) -> &Lat) -> Vec<Row> {
    vec![
        row(
            format!("{what}: p50 ms"),
            move |r| Some(get(r).p50_us as f64 / 1000.0),
            f2,
            Some(Better::Lower),
        ),
        row(
            format!("{what}: p99 ms"),
            move |r| Some(get(r).p99_us as f64 / 1000.0),
            f2,
            Some(Better::Lower),
        ),
        row(
            format!("{what}: mean ms"),
            move |r| Some(get(r).mean_us / 1000.0),
            f2,
            Some(Better::Lower),
        ),
        row(
            format!("{what}: samples"),
            move |r| Some(get(r).n as f64),
            f0,
            None,
        ),
    ]
}

fn rows(cfg: &Config) -> Vec<Row> {
    let mut v = Vec::new();
    let names = ROLES
        .iter()
        .map(|r| (r.name, r.label))
        .chain([("sign-ec", "sign EC P-256 CSR, stored")]);
    for (name, label) in names {
        v.push(row(
            format!("{label}: req/s"),
            move |r| r.load(name).map(Load::throughput),
            f0,
            Some(Better::Higher),
        ));
        v.push(row(
            format!("{label}: p50 ms"),
            move |r| r.load(name).map(|l| l.lat.p50_us as f64 / 1000.0),
            f2,
            Some(Better::Lower),
        ));
        v.push(row(
            format!("{label}: p99 ms"),
            move |r| r.load(name).map(|l| l.lat.p99_us as f64 / 1000.0),
            f2,
            Some(Better::Lower),
        ));
    }
    v.extend(lat_rows(
        &format!("revoke, {FEW_REVOKED}+ revoked, auto_rebuild=false"),
        |r| &r.revoke_few,
    ));
    let n = cfg.revoked;
    v.push(row(
        format!("populate {n} (issue + revoke, auto_rebuild=true): s"),
        |r| Some(r.populate_time.as_secs_f64()),
        f1,
        Some(Better::Lower),
    ));
    v.push(row(
        "then set auto_rebuild=false: ms",
        |r| Some(ms_f(r.auto_rebuild_off_time)),
        f1,
        Some(Better::Lower),
    ));
    v.extend(lat_rows(
        &format!("revoke, {n}+ revoked, auto_rebuild=false"),
        |r| &r.revoke_at_n_default,
    ));
    v.push(row(
        "first GET crl after that: ms",
        |r| Some(ms_f(r.crl_first.time)),
        f1,
        Some(Better::Lower),
    ));
    v.push(row(
        "second GET crl: ms",
        |r| Some(ms_f(r.crl_again.time)),
        f1,
        Some(Better::Lower),
    ));
    v.push(row(
        "CRL entries",
        |r| Some(r.crl_first.entries as f64),
        f0,
        None,
    ));
    v.extend(lat_rows(
        &format!("revoke, {n}+ revoked, auto_rebuild=true"),
        |r| &r.revoke_at_n_auto,
    ));
    v.push(row(
        "GET crl/rotate: ms",
        |r| Some(ms_f(r.rotate_time)),
        f1,
        Some(Better::Lower),
    ));
    v.push(row(
        "GET crl after rotate: ms",
        |r| Some(ms_f(r.crl_after_rotate.time)),
        f1,
        Some(Better::Lower),
    ));
    v.push(row(
        "CRL entries after rotate",
        |r| Some(r.crl_after_rotate.entries as f64),
        f0,
        None,
    ));
    v.push(row(
        "CRL bytes after rotate",
        |r| Some(r.crl_after_rotate.bytes as f64),
        f0,
        None,
    ));
    v.push(row(
        "certificates stored at the end",
        |r| Some(r.stored_certs() as f64),
        f0,
        None,
    ));
    v.push(row(
        "VmHWM after the load phases: MiB",
        |r| Some(r.hwm_after_loads_kib as f64 / 1024.0),
        f1,
        Some(Better::Lower),
    ));
    v.push(row(
        "VmHWM after population: MiB",
        |r| Some(r.hwm_after_populate_kib as f64 / 1024.0),
        f1,
        Some(Better::Lower),
    ));
    v.push(row(
        "peak VmHWM: MiB",
        |r| Some(r.peak_hwm_kib as f64 / 1024.0),
        f1,
        Some(Better::Lower),
    ));
    v
}

fn pair(results: &[PkiResult]) -> Option<(&PkiResult, &PkiResult)> {
    Some((
        results.iter().find(|r| r.kind == ServerKind::Arca)?,
        results.iter().find(|r| r.kind == ServerKind::OpenBao)?,
    ))
}

/// Every comparable figure, each as `{ratio, of}` (above 1 favours Arca).
fn ratios(cfg: &Config, results: &[PkiResult]) -> Option<Value> {
    let (a, b) = pair(results)?;
    let mut m = serde_json::Map::new();
    for r in rows(cfg) {
        let Some(better) = r.better else { continue };
        let v = (r.get)(a)
            .zip((r.get)(b))
            .and_then(|(x, y)| better.ratio(x, y));
        m.insert(r.label, json!({"ratio": v, "of": better.label()}));
    }
    Some(Value::Object(m))
}

fn markdown(cfg: &Config, results: &[PkiResult], host: &Value) -> String {
    let mut s = format!(
        "PKI, {} connections, {} s per load phase, {} revoked certificates populated; \
         host: {} CPUs ({}), {}, load average before: {}\n\n",
        cfg.concurrency,
        cfg.duration.as_secs_f64(),
        cfg.revoked,
        host["cpus"],
        host["cpu_model"].as_str().unwrap_or("?"),
        host["kernel"].as_str().unwrap_or("?"),
        host["loadavg_1m_before"],
    );
    let both = pair(results);
    s.push_str("| measurement |");
    for r in results {
        s.push_str(&format!(" {} {} |", r.kind.name(), r.version));
    }
    if both.is_some() {
        s.push_str(" ratio | ratio of |");
    }
    s.push_str("\n|---|");
    s.push_str(&"---:|".repeat(results.len()));
    if both.is_some() {
        s.push_str("---:|---|");
    }
    s.push('\n');
    for r in rows(cfg) {
        s.push_str(&format!("| {} |", r.label));
        for res in results {
            let cell = (r.get)(res).map(r.fmt).unwrap_or_else(|| "?".into());
            s.push_str(&format!(" {cell} |"));
        }
        if let Some((a, b)) = both {
            match r.better {
                Some(better) => {
                    let v = (r.get)(a)
                        .zip((r.get)(b))
                        .and_then(|(x, y)| better.ratio(x, y));
                    s.push_str(&format!(
                        " {} | {} |",
                        v.map(f2).unwrap_or_else(|| "?".into()),
                        better.label()
                    ));
                }
                None => s.push_str(" | |"),
            }
        }
        s.push('\n');
    }
    s.push_str(
        "\nRatios are taken so that above 1 favours Arca: Arca/OpenBao for throughput, \
         OpenBao/Arca for latency, times and memory.\n\n",
    );
    s.push_str("| server | load phase | req/s | p50 ms | p99 ms | errors | server CPU s | req per CPU s |\n");
    s.push_str("|---|---|---:|---:|---:|---:|---:|---:|\n");
    for r in results {
        for l in &r.loads {
            s.push_str(&format!(
                "| {} | {} | {:.0} | {} | {} | {} | {} | {} |\n",
                r.kind.name(),
                l.label,
                l.throughput(),
                ms(l.lat.p50_us),
                ms(l.lat.p99_us),
                l.errors,
                l.server_cpu_s.map(f1).unwrap_or_else(|| "?".into()),
                l.per_cpu_s().map(f0).unwrap_or_else(|| "?".into()),
            ));
        }
    }
    s.push('\n');
    for r in results {
        let check = |f: &CrlFetch, expected: usize| {
            let complete = if f.entries >= expected {
                "complete"
            } else {
                "INCOMPLETE"
            };
            format!(
                "{} entries, {expected} expected: {complete}; {}",
                f.entries, f.verify
            )
        };
        s.push_str(&format!(
            "- {}: idle RSS {} MiB; revoke series at N started with {} revoked; \
             first CRL {} bytes, {}; CRL after rotate {} bytes, {}\n",
            r.kind.name(),
            mib(r.idle_rss_kib),
            r.revoked_before_at_n,
            r.crl_first.bytes,
            check(&r.crl_first, r.expected_first),
            r.crl_after_rotate.bytes,
            check(&r.crl_after_rotate, r.expected_after_rotate),
        ));
    }
    s
}

/// Makes the one EC P-256 CSR the signing phase sends.
fn make_csr(dir: &Path) -> Result<String> {
    let (key, csr) = (dir.join("csr.key"), dir.join("csr.pem"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=csr.example.com",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&csr)
        .output()
        .context("running openssl req (is openssl installed?)")?;
    if !out.status.success() {
        bail!(
            "openssl req failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(std::fs::read_to_string(&csr)?)
}

pub(super) fn run(
    cfg: &Config,
    rt: &tokio::runtime::Runtime,
    out_dir: &Path,
    host: Value,
) -> Result<()> {
    let tmp = std::env::temp_dir().join(format!(
        "arca-bench-pki-{}-{}",
        std::process::id(),
        unix_now()
    ));
    std::fs::create_dir_all(&tmp).with_context(|| format!("create {}", tmp.display()))?;
    let res = (|| {
        let csr = make_csr(&tmp)?;
        let mut results = Vec::new();
        for &kind in &cfg.servers {
            results.push(rt.block_on(bench_server(kind, cfg, out_dir, &tmp, &csr))?);
        }
        Ok::<_, anyhow::Error>(results)
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    let results = res?;
    let now = unix_now();
    let servers: serde_json::Map<String, Value> = results
        .iter()
        .map(|r| (r.kind.name().to_string(), r.to_json()))
        .collect();
    let summary = json!({
        "benchmark": "pki",
        "unix_time": now,
        "host": host,
        "loadavg_1m_after": load_avg_1m(),
        "config": {
            "concurrency": cfg.concurrency,
            "duration_s": cfg.duration.as_secs_f64(),
            "revoked": cfg.revoked,
            "client_threads": cfg.client_threads,
            "mode": "dev (in-memory storage), plain HTTP on loopback, keep-alive HTTP/1.1",
            "root": "internal EC P-256 root, pki/ max_lease_ttl 87600h",
            "roles": ROLES.iter().map(|r| json!({
                "name": r.name, "key_type": r.key_type, "key_bits": r.key_bits,
                "no_store": r.no_store, "ttl": "8760h", "allow_any_name": true,
            })).collect::<Vec<_>>(),
            "revoke_samples": REVOKE_SAMPLES,
            "revoke_series_budget_s": REVOKE_BUDGET.as_secs(),
        },
        "servers": servers,
        "ratios": ratios(cfg, &results),
    });
    let mut md = markdown(cfg, &results, &summary["host"]);
    if let Some(l) = load_avg_1m() {
        md.push_str(&format!("\nload average after: {l}\n"));
    }
    write_results(out_dir, "pki", now, &summary, &md)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DER of a CRL with `n` entries (structure only; no valid signature).
    fn fake_crl(n: usize) -> Vec<u8> {
        fn wrap(tag: u8, body: &[u8]) -> Vec<u8> {
            let mut v = vec![tag];
            let l = body.len();
            if l < 0x80 {
                v.push(l as u8);
            } else if l < 0x100 {
                v.extend([0x81, l as u8]);
            } else {
                v.extend([0x82, (l >> 8) as u8, l as u8]);
            }
            v.extend_from_slice(body);
            v
        }
        let time = wrap(0x17, b"261123212448Z");
        let entry = [wrap(0x02, &[1, 2, 3]), time.clone()].concat();
        let entries: Vec<u8> = (0..n).flat_map(|_| wrap(0x30, &entry)).collect();
        let mut tbs = wrap(0x02, &[1]);
        tbs.extend(wrap(0x30, &wrap(0x06, &[0x2a, 0x86, 0x48])));
        tbs.extend(wrap(0x30, &[]));
        tbs.extend(time.clone());
        tbs.extend(time);
        if n > 0 {
            tbs.extend(wrap(0x30, &entries));
        }
        tbs.extend(wrap(0xa0, &wrap(0x30, &[])));
        let mut list = wrap(0x30, &tbs);
        list.extend(wrap(0x30, &wrap(0x06, &[0x2a])));
        list.extend(wrap(0x03, &[0, 1, 2]));
        wrap(0x30, &list)
    }

    #[test]
    fn counts_crl_entries() {
        for n in [0, 1, 3, 40] {
            assert_eq!(crl_entries(&fake_crl(n)).unwrap(), n);
        }
        let der = fake_crl(3);
        assert!(crl_entries(&der[..der.len() - 1]).is_err());
        assert!(crl_entries(b"not der").is_err());
    }

    #[test]
    fn latency_summary() {
        let l = Lat::of(vec![5, 1, 3, 2, 4]);
        assert_eq!((l.n, l.p50_us, l.p99_us, l.max_us), (5, 3, 5, 5));
        assert_eq!(l.mean_us, 3.0);
        assert_eq!(Lat::of(Vec::new()).n, 0);
    }

    #[test]
    fn ratios_favour_arca_above_one() {
        assert_eq!(Better::Higher.ratio(300.0, 100.0), Some(3.0));
        assert_eq!(Better::Lower.ratio(1.0, 4.0), Some(4.0));
        assert_eq!(Better::Lower.ratio(0.0, 4.0), None);
    }
}
