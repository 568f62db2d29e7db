//! Arca's telemetry: counters, gauges and timings kept in one process-wide
//! [`Registry`], rendered for `sys/metrics` as Prometheus text (exposition
//! format 0.0.4) or as the JSON document Vault's in-memory sink prints
//! (`Gauges`, `Counters`, `Samples`).
//!
//! Names are Vault's dotted names (`vault.core.handle_request`); timings
//! are in milliseconds, as Vault's. Every crate records through the free
//! functions ([`incr`], [`observe_ms`], [`set_gauge`], [`timer`]); engines
//! reach them through `arca_sdk::metrics`, so they still depend on the sdk
//! only.
//!
//! Invariants:
//! * the number of series is bounded ([`MAX_SERIES`]): a series past the
//!   bound is not created and is counted in `vault.metrics.dropped_series`.
//!   Labels are mount paths, operations and the like, never raw request
//!   paths, so a stranger cannot grow this map;
//! * a series not updated within the retention time (Vault's
//!   `prometheus_retention_time`, default 24h) is left out of the output;
//!   gauges computed at scrape time ([`Registry::gauge_fn`]) always show;
//! * Prometheus names keep only `[a-zA-Z0-9_:]` (anything else becomes
//!   `_`) and label values are escaped, so no recorded text can break the
//!   exposition format;
//! * recording takes a read lock when the series exists (the common case)
//!   and a short per-series mutex: rendering never holds the map's write
//!   lock.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use serde_json::{json, Map, Value};

/// At most this many series are kept; more are dropped and counted.
pub const MAX_SERIES: usize = 10_000;

/// Vault's default `prometheus_retention_time`.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// Upper bounds (milliseconds) of the timing histograms' buckets.
pub const BUCKETS_MS: [f64; 16] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0,
    10000.0,
];

/// Labels of a series: `(name, value)` pairs in a fixed order.
pub type Labels = Vec<(String, String)>;

/// What a scrape-time gauge function returns: one value per label set.
pub type GaugeValues = Vec<(Labels, f64)>;

type GaugeFn = Arc<dyn Fn() -> GaugeValues + Send + Sync>;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Counter,
    Gauge,
    Timing,
}

struct State {
    count: u64,
    sum: f64,
    sum_sq: f64,
    min: f64,
    max: f64,
    last: f64,
    buckets: [u64; BUCKETS_MS.len()],
    updated: Instant,
}

struct Series {
    kind: Kind,
    state: Mutex<State>,
}

impl Series {
    fn new(kind: Kind, now: Instant) -> Series {
        Series {
            kind,
            state: Mutex::new(State {
                count: 0,
                sum: 0.0,
                sum_sq: 0.0,
                min: f64::INFINITY,
                max: f64::NEG_INFINITY,
                last: 0.0,
                buckets: [0; BUCKETS_MS.len()],
                updated: now,
            }),
        }
    }

    fn record(&self, v: f64, now: Instant) {
        let mut s = self.state.lock();
        s.count += 1;
        s.sum += v;
        s.sum_sq += v * v;
        s.min = s.min.min(v);
        s.max = s.max.max(v);
        s.last = v;
        s.updated = now;
        if self.kind == Kind::Timing {
            if let Some(i) = BUCKETS_MS.iter().position(|b| v <= *b) {
                s.buckets[i] += 1;
            }
        }
    }
}

type Key = (String, Labels);

/// The process's metrics. One exists per process ([`global`]); tests may
/// build their own.
pub struct Registry {
    series: RwLock<HashMap<Key, Arc<Series>>>,
    gauge_fns: RwLock<BTreeMap<String, GaugeFn>>,
    retention: RwLock<Duration>,
    started: Instant,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new()
    }
}

fn owned(labels: &[(&str, &str)]) -> Labels {
    labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Registry {
    pub fn new() -> Registry {
        Registry {
            series: RwLock::new(HashMap::new()),
            gauge_fns: RwLock::new(BTreeMap::new()),
            retention: RwLock::new(DEFAULT_RETENTION),
            started: Instant::now(),
        }
    }

    /// How long a series that is no longer updated stays in the output
    /// (Vault's `prometheus_retention_time`). Zero turns the Prometheus
    /// format off, as in Vault.
    pub fn set_retention(&self, d: Duration) {
        *self.retention.write() = d;
    }

    pub fn retention(&self) -> Duration {
        *self.retention.read()
    }

    fn series(
        &self,
        kind: Kind,
        name: &str,
        labels: &[(&str, &str)],
        now: Instant,
    ) -> Option<Arc<Series>> {
        let key: Key = (name.to_string(), owned(labels));
        if let Some(s) = self.series.read().get(&key) {
            return (s.kind == kind).then(|| s.clone());
        }
        let mut map = self.series.write();
        if let Some(s) = map.get(&key) {
            return (s.kind == kind).then(|| s.clone());
        }
        if map.len() >= MAX_SERIES {
            let dropped = ("vault.metrics.dropped_series".to_string(), Vec::new());
            map.entry(dropped)
                .or_insert_with(|| Arc::new(Series::new(Kind::Counter, now)))
                .record(1.0, now);
            return None;
        }
        let s = Arc::new(Series::new(kind, now));
        map.insert(key, s.clone());
        Some(s)
    }

    /// Adds `by` to a counter.
    pub fn incr(&self, name: &str, labels: &[(&str, &str)], by: u64) {
        let now = Instant::now();
        if let Some(s) = self.series(Kind::Counter, name, labels, now) {
            s.record(by as f64, now);
        }
    }

    /// Records one timing, in milliseconds.
    pub fn observe_ms(&self, name: &str, labels: &[(&str, &str)], ms: f64) {
        let now = Instant::now();
        if let Some(s) = self.series(Kind::Timing, name, labels, now) {
            s.record(ms, now);
        }
    }

    /// Sets a gauge.
    pub fn set_gauge(&self, name: &str, labels: &[(&str, &str)], v: f64) {
        let now = Instant::now();
        if let Some(s) = self.series(Kind::Gauge, name, labels, now) {
            s.record(v, now);
        }
    }

    /// A gauge computed when metrics are read (a count held elsewhere).
    /// Registering a name again replaces the function.
    pub fn gauge_fn(&self, name: &str, f: impl Fn() -> GaugeValues + Send + Sync + 'static) {
        self.gauge_fns.write().insert(name.to_string(), Arc::new(f));
    }

    fn snapshot(&self, now: Instant) -> Vec<(Kind, String, Labels, StateView)> {
        let retention = self.retention();
        let mut out: Vec<(Kind, String, Labels, StateView)> = self
            .series
            .read()
            .iter()
            .filter_map(|((name, labels), s)| {
                let st = s.state.lock();
                let fresh =
                    retention.is_zero() || now.saturating_duration_since(st.updated) <= retention;
                fresh.then(|| (s.kind, name.clone(), labels.clone(), StateView::of(&st)))
            })
            .collect();
        let fns: Vec<(String, GaugeFn)> = self
            .gauge_fns
            .read()
            .iter()
            .map(|(k, f)| (k.clone(), f.clone()))
            .collect();
        for (name, f) in fns {
            for (labels, v) in f() {
                out.push((Kind::Gauge, name.clone(), labels, StateView::gauge(v)));
            }
        }
        out.sort_by(|a, b| (&a.1, &a.2).cmp(&(&b.1, &b.2)));
        out
    }

    /// The Prometheus text exposition (format 0.0.4), or `None` when the
    /// retention time is zero (Vault: "prometheus is not enabled").
    pub fn render_prometheus(&self) -> Option<String> {
        self.render_prometheus_at(Instant::now())
    }

    /// [`Registry::render_prometheus`] as seen at `now` (tests move time).
    pub fn render_prometheus_at(&self, now: Instant) -> Option<String> {
        if self.retention().is_zero() {
            return None;
        }
        let mut out = String::new();
        let mut last_name = String::new();
        for (kind, name, labels, st) in self.snapshot(now) {
            let pname = prometheus_name(&name);
            if pname != last_name {
                let t = match kind {
                    Kind::Counter => "counter",
                    Kind::Gauge => "gauge",
                    Kind::Timing => "histogram",
                };
                let _ = writeln!(out, "# HELP {pname} {pname}");
                let _ = writeln!(out, "# TYPE {pname} {t}");
                last_name = pname.clone();
            }
            match kind {
                Kind::Counter => {
                    let _ = writeln!(out, "{pname}{} {}", label_text(&labels, None), num(st.sum));
                }
                Kind::Gauge => {
                    let _ = writeln!(out, "{pname}{} {}", label_text(&labels, None), num(st.last));
                }
                Kind::Timing => {
                    let mut cumulative = 0;
                    for (i, b) in BUCKETS_MS.iter().enumerate() {
                        cumulative += st.buckets[i];
                        let le = num(*b);
                        let _ = writeln!(
                            out,
                            "{pname}_bucket{} {cumulative}",
                            label_text(&labels, Some(&le))
                        );
                    }
                    let _ = writeln!(
                        out,
                        "{pname}_bucket{} {}",
                        label_text(&labels, Some("+Inf")),
                        st.count
                    );
                    let _ = writeln!(
                        out,
                        "{pname}_sum{} {}",
                        label_text(&labels, None),
                        num(st.sum)
                    );
                    let _ = writeln!(
                        out,
                        "{pname}_count{} {}",
                        label_text(&labels, None),
                        st.count
                    );
                }
            }
        }
        Some(out)
    }

    /// Vault's JSON form: `Gauges` (`Name`, `Value`, `Labels`), `Counters`
    /// and `Samples` (`Count`, `Rate`, `Sum`, `Min`, `Max`, `Mean`,
    /// `Stddev`). Arca's values are cumulative since the process started
    /// (Vault's cover the last 10 s interval); `Rate` is per second over
    /// that time. `timestamp` is the caller's rendering of now.
    pub fn render_json(&self, timestamp: &str) -> Value {
        let now = Instant::now();
        let uptime = now
            .saturating_duration_since(self.started)
            .as_secs_f64()
            .max(1.0);
        let mut gauges = Vec::new();
        let mut counters = Vec::new();
        let mut samples = Vec::new();
        for (kind, name, labels, st) in self.snapshot(now) {
            let labels: Map<String, Value> = labels
                .into_iter()
                .map(|(k, v)| (k, Value::from(v)))
                .collect();
            match kind {
                Kind::Gauge => gauges.push(json!({
                    "Name": name, "Value": st.last, "Labels": labels,
                })),
                Kind::Counter | Kind::Timing => {
                    let mean = if st.count > 0 {
                        st.sum / st.count as f64
                    } else {
                        0.0
                    };
                    let var = if st.count > 1 {
                        ((st.sum_sq - st.sum * mean) / (st.count - 1) as f64).max(0.0)
                    } else {
                        0.0
                    };
                    let v = json!({
                        "Name": name,
                        "Count": st.count,
                        "Rate": st.sum / uptime,
                        "Sum": st.sum,
                        "Min": if st.count > 0 { st.min } else { 0.0 },
                        "Max": if st.count > 0 { st.max } else { 0.0 },
                        "Mean": mean,
                        "Stddev": var.sqrt(),
                        "Labels": labels,
                    });
                    if kind == Kind::Counter {
                        counters.push(v)
                    } else {
                        samples.push(v)
                    }
                }
            }
        }
        json!({
            "Timestamp": timestamp,
            "Gauges": gauges,
            "Points": [],
            "Counters": counters,
            "Samples": samples,
        })
    }
}

struct StateView {
    count: u64,
    sum: f64,
    sum_sq: f64,
    min: f64,
    max: f64,
    last: f64,
    buckets: [u64; BUCKETS_MS.len()],
}

impl StateView {
    fn of(s: &State) -> StateView {
        StateView {
            count: s.count,
            sum: s.sum,
            sum_sq: s.sum_sq,
            min: s.min,
            max: s.max,
            last: s.last,
            buckets: s.buckets,
        }
    }

    fn gauge(v: f64) -> StateView {
        StateView {
            count: 1,
            sum: v,
            sum_sq: v * v,
            min: v,
            max: v,
            last: v,
            buckets: [0; BUCKETS_MS.len()],
        }
    }
}

/// `vault.core.handle_request` → `vault_core_handle_request`.
pub fn prometheus_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn label_text(labels: &Labels, le: Option<&str>) -> String {
    if labels.is_empty() && le.is_none() {
        return String::new();
    }
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{}=\"{}\"", prometheus_name(k), escape(v)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    format!("{{{}}}", parts.join(","))
}

fn num(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

/// The process's registry.
pub fn global() -> &'static Registry {
    static GLOBAL: OnceLock<Registry> = OnceLock::new();
    GLOBAL.get_or_init(Registry::new)
}

/// Adds `by` to a counter of the process's registry.
pub fn incr(name: &str, labels: &[(&str, &str)], by: u64) {
    global().incr(name, labels, by)
}

/// Records a timing (milliseconds) in the process's registry.
pub fn observe_ms(name: &str, labels: &[(&str, &str)], ms: f64) {
    global().observe_ms(name, labels, ms)
}

/// Sets a gauge of the process's registry.
pub fn set_gauge(name: &str, labels: &[(&str, &str)], v: f64) {
    global().set_gauge(name, labels, v)
}

/// Measures from now until it is dropped (early returns and errors
/// included) and records the time under `name`.
pub struct Timer {
    name: &'static str,
    labels: Vec<(&'static str, String)>,
    start: Instant,
}

impl Timer {
    /// Changes a label's value before the time is recorded.
    pub fn set_label(&mut self, key: &'static str, value: &str) {
        match self.labels.iter_mut().find(|(k, _)| *k == key) {
            Some(l) => l.1 = value.to_string(),
            None => self.labels.push((key, value.to_string())),
        }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        let ms = self.start.elapsed().as_secs_f64() * 1000.0;
        let labels: Vec<(&str, &str)> = self.labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        observe_ms(self.name, &labels, ms);
    }
}

/// Starts a [`Timer`] on the process's registry.
pub fn timer(name: &'static str, labels: &[(&'static str, &str)]) -> Timer {
    Timer {
        name,
        labels: labels.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        start: Instant::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_has_every_kind() {
        let r = Registry::new();
        r.incr("vault.audit.log_request_failure", &[], 2);
        r.set_gauge("vault.expire.num_leases", &[], 7.0);
        r.observe_ms(
            "vault.core.handle_request",
            &[("mount", "secret/"), ("operation", "read")],
            3.0,
        );
        r.observe_ms(
            "vault.core.handle_request",
            &[("mount", "secret/"), ("operation", "read")],
            30.0,
        );
        r.gauge_fn("vault.token.count", || vec![(Vec::new(), 4.0)]);
        let text = r.render_prometheus().unwrap();
        assert!(text.contains("# TYPE vault_audit_log_request_failure counter\nvault_audit_log_request_failure 2\n"), "{text}");
        assert!(text.contains("vault_expire_num_leases 7\n"), "{text}");
        assert!(text.contains("vault_token_count 4\n"), "{text}");
        assert!(
            text.contains("# TYPE vault_core_handle_request histogram"),
            "{text}"
        );
        assert!(text.contains("vault_core_handle_request_bucket{mount=\"secret/\",operation=\"read\",le=\"5\"} 1\n"), "{text}");
        assert!(text.contains("vault_core_handle_request_bucket{mount=\"secret/\",operation=\"read\",le=\"+Inf\"} 2\n"), "{text}");
        assert!(
            text.contains(
                "vault_core_handle_request_count{mount=\"secret/\",operation=\"read\"} 2\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "vault_core_handle_request_sum{mount=\"secret/\",operation=\"read\"} 33\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn json_has_vaults_shape() {
        let r = Registry::new();
        r.observe_ms("vault.barrier.get", &[], 2.0);
        r.observe_ms("vault.barrier.get", &[], 4.0);
        r.incr("vault.quota.rate_limit.violation", &[("name", "q")], 1);
        r.set_gauge("vault.runtime.sys_bytes", &[], 10.0);
        let v = r.render_json("2026-12-06 00:00:00 +0000 UTC");
        let s = &v["Samples"][0];
        assert_eq!(s["Name"], "vault.barrier.get");
        assert_eq!(s["Count"], 2);
        assert_eq!(s["Sum"], 6.0);
        assert_eq!(s["Min"], 2.0);
        assert_eq!(s["Max"], 4.0);
        assert_eq!(s["Mean"], 3.0);
        assert!((s["Stddev"].as_f64().unwrap() - 2f64.sqrt()).abs() < 1e-9);
        assert_eq!(v["Counters"][0]["Labels"]["name"], "q");
        assert_eq!(v["Gauges"][0]["Value"], 10.0);
        assert_eq!(v["Points"], json!([]));
    }

    #[test]
    fn labels_cannot_break_the_format() {
        let r = Registry::new();
        r.incr("odd name-with.dots", &[("mount", "a\"b\\c\nd")], 1);
        let text = r.render_prometheus().unwrap();
        assert!(
            text.contains("odd_name_with_dots{mount=\"a\\\"b\\\\c\\nd\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn old_series_leave_the_output_and_zero_retention_disables_prometheus() {
        let r = Registry::new();
        r.set_retention(Duration::from_secs(60));
        r.incr("vault.old", &[], 1);
        let later = Instant::now() + Duration::from_secs(61);
        let text = r.render_prometheus_at(later).unwrap();
        assert!(!text.contains("vault_old"), "{text}");
        assert!(r.render_prometheus().unwrap().contains("vault_old 1"));
        r.set_retention(Duration::ZERO);
        assert!(r.render_prometheus().is_none());
    }

    #[test]
    fn series_are_bounded() {
        let r = Registry::new();
        for i in 0..MAX_SERIES + 5 {
            r.incr("vault.many", &[("i", &i.to_string())], 1);
        }
        let text = r.render_prometheus().unwrap();
        assert!(text.contains("vault_metrics_dropped_series 5\n"), "{text}");
        assert_eq!(r.series.read().len(), MAX_SERIES + 1);
    }

    #[test]
    fn a_name_keeps_its_kind() {
        let r = Registry::new();
        r.incr("vault.x", &[], 1);
        r.observe_ms("vault.x", &[], 1.0);
        let text = r.render_prometheus().unwrap();
        assert!(
            text.contains("# TYPE vault_x counter\nvault_x 1\n"),
            "{text}"
        );
    }
}
