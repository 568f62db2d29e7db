//! `sys/host-info` (sudo): the host the node runs on, in the shape Vault
//! gives (gopsutil's field names): `cpu`, `cpu_times`, `disk`, `host`,
//! `memory`, `timestamp`.
//!
//! Invariants: read from Linux's `/proc` (and `statvfs` for disks) at each
//! request; only fields the kernel reports are present (a field the host
//! does not give is left out, never filled with a made-up value); a
//! section that cannot be read is left out with a warning naming it.

use std::collections::HashSet;

use serde_json::{json, Map, Value};

use arca_sdk::{Ctx, HandlerResult, Operation, Path, Response};

use super::Sys;

fn read(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))
}

/// The host's name (empty when the kernel does not say).
pub(super) fn hostname() -> String {
    read("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// A number where it parses as one, else the string.
fn scalar(v: &str) -> Value {
    if let Ok(i) = v.parse::<i64>() {
        return Value::from(i);
    }
    if let Ok(f) = v.parse::<f64>() {
        return Value::from(f);
    }
    Value::from(v)
}

/// `/proc/cpuinfo`: one object per logical processor.
fn cpu() -> Result<Value, String> {
    let text = read("/proc/cpuinfo")?;
    let mut out = Vec::new();
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let mut m = Map::new();
        for line in block.lines() {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let (k, v) = (k.trim(), v.trim());
            let (name, value) = match k {
                "processor" => ("cpu", scalar(v)),
                "vendor_id" | "CPU implementer" => ("vendorId", Value::from(v)),
                "cpu family" | "CPU architecture" => ("family", Value::from(v)),
                "model" | "CPU part" => ("model", Value::from(v)),
                "stepping" | "CPU revision" => ("stepping", scalar(v)),
                "physical id" => ("physicalId", Value::from(v)),
                "core id" => ("coreId", Value::from(v)),
                "cpu cores" => ("cores", scalar(v)),
                "model name" => ("modelName", Value::from(v)),
                "cpu MHz" => ("mhz", scalar(v)),
                // "1024 KB"
                "cache size" => match v.split_whitespace().next().map(str::parse::<i64>) {
                    Some(Ok(kb)) => ("cacheSize", Value::from(kb)),
                    _ => continue,
                },
                "flags" | "Features" => (
                    "flags",
                    Value::from(v.split_whitespace().collect::<Vec<_>>()),
                ),
                "microcode" => ("microcode", Value::from(v)),
                _ => continue,
            };
            m.insert(name.into(), value);
        }
        if m.contains_key("cpu") {
            out.push(Value::Object(m));
        }
    }
    Ok(Value::from(out))
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf reads a constant of the C library; no pointers.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// `/proc/stat`'s per-processor `cpuN` lines, in seconds.
fn cpu_times() -> Result<Value, String> {
    const NAMES: [&str; 10] = [
        "user",
        "nice",
        "system",
        "idle",
        "iowait",
        "irq",
        "softirq",
        "steal",
        "guest",
        "guestNice",
    ];
    let tick = clock_ticks();
    let text = read("/proc/stat")?;
    let mut out = Vec::new();
    for line in text.lines().filter(|l| l.starts_with("cpu")) {
        let mut parts = line.split_whitespace();
        let Some(name) = parts.next().filter(|n| *n != "cpu") else {
            continue;
        };
        let mut m = Map::new();
        m.insert("cpu".into(), Value::from(name));
        for (field, v) in NAMES.iter().zip(parts) {
            if let Ok(n) = v.parse::<u64>() {
                m.insert((*field).into(), Value::from(n as f64 / tick));
            }
        }
        out.push(Value::Object(m));
    }
    Ok(Value::from(out))
}

/// Usage of one mounted file system, from `statvfs`.
fn usage(path: &str, fstype: &str) -> Option<Value> {
    let c = std::ffi::CString::new(path).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a NUL-terminated path and `st` a buffer of the right
    // type; statvfs fills it completely when it returns 0.
    let st = unsafe {
        if libc::statvfs(c.as_ptr(), st.as_mut_ptr()) != 0 {
            return None;
        }
        st.assume_init()
    };
    let frsize = st.f_frsize as u64;
    let total = st.f_blocks as u64 * frsize;
    let free = st.f_bavail as u64 * frsize;
    let used = (st.f_blocks as u64 - st.f_bfree as u64) * frsize;
    let pct = |used: u64, avail: u64| {
        if used + avail == 0 {
            0.0
        } else {
            used as f64 * 100.0 / (used + avail) as f64
        }
    };
    let inodes_total = st.f_files as u64;
    let inodes_free = st.f_ffree as u64;
    let inodes_used = inodes_total.saturating_sub(inodes_free);
    Some(json!({
        "path": path,
        "fstype": fstype,
        "total": total,
        "free": free,
        "used": used,
        "usedPercent": pct(used, free),
        "inodesTotal": inodes_total,
        "inodesUsed": inodes_used,
        "inodesFree": inodes_free,
        "inodesUsedPercent": if inodes_total == 0 { 0.0 } else { inodes_used as f64 * 100.0 / inodes_total as f64 },
    }))
}

/// The mounted file systems backed by a device (as gopsutil lists them:
/// types the kernel marks `nodev` are left out), and `/`.
fn disk() -> Result<Value, String> {
    let nodev: HashSet<String> = read("/proc/filesystems")?
        .lines()
        .filter_map(|l| l.strip_prefix("nodev"))
        .map(|t| t.trim().to_string())
        .collect();
    let mounts = read("/proc/self/mounts")?;
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for line in mounts.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(mp), Some(fstype)) = (f.get(1), f.get(2)) else {
            continue;
        };
        // Octal escapes in mount points ("\040" for a space).
        let mp = mp.replace("\\040", " ").replace("\\011", "\t");
        if (nodev.contains(*fstype) && mp != "/") || !seen.insert(mp.clone()) {
            continue;
        }
        if let Some(u) = usage(&mp, fstype) {
            out.push(u);
        }
    }
    Ok(Value::from(out))
}

fn host() -> Result<Value, String> {
    let mut m = Map::new();
    m.insert(
        "hostname".into(),
        Value::from(read("/proc/sys/kernel/hostname")?.trim()),
    );
    if let Some(up) = read("/proc/uptime")?
        .split_whitespace()
        .next()
        .and_then(|s| s.parse::<f64>().ok())
    {
        m.insert("uptime".into(), Value::from(up as u64));
    }
    if let Some(bt) = read("/proc/stat")?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|s| s.trim().parse::<u64>().ok())
    {
        m.insert("bootTime".into(), Value::from(bt));
    }
    if let Ok(dir) = std::fs::read_dir("/proc") {
        let procs = dir
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .bytes()
                    .all(|b| b.is_ascii_digit())
            })
            .count();
        m.insert("procs".into(), Value::from(procs));
    }
    m.insert("os".into(), Value::from(std::env::consts::OS));
    if let Ok(os) = read("/etc/os-release") {
        for line in os.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let v = v.trim().trim_matches('"');
            match k {
                "ID" => m.insert("platform".into(), Value::from(v)),
                "ID_LIKE" => m.insert("platformFamily".into(), Value::from(v)),
                "VERSION_ID" => m.insert("platformVersion".into(), Value::from(v)),
                _ => None,
            };
        }
    }
    if let Ok(k) = read("/proc/sys/kernel/osrelease") {
        m.insert("kernelVersion".into(), Value::from(k.trim()));
    }
    m.insert("kernelArch".into(), Value::from(std::env::consts::ARCH));
    if let Ok(id) = read("/proc/sys/kernel/random/boot_id") {
        m.insert("hostid".into(), Value::from(id.trim()));
    }
    Ok(Value::Object(m))
}

/// `/proc/meminfo`, in bytes.
fn memory() -> Result<Value, String> {
    let text = read("/proc/meminfo")?;
    let mut kb = std::collections::HashMap::new();
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        if let Some(Ok(n)) = v.split_whitespace().next().map(str::parse::<u64>) {
            kb.insert(k.trim().to_string(), n * 1024);
        }
    }
    let mut m = Map::new();
    for (src, name) in [
        ("MemTotal", "total"),
        ("MemAvailable", "available"),
        ("MemFree", "free"),
        ("Active", "active"),
        ("Inactive", "inactive"),
        ("Buffers", "buffers"),
        ("Dirty", "dirty"),
        ("Writeback", "writeback"),
        ("WritebackTmp", "writebacktmp"),
        ("Shmem", "shared"),
        ("Slab", "slab"),
        ("SReclaimable", "sreclaimable"),
        ("SUnreclaim", "sunreclaim"),
        ("PageTables", "pagetables"),
        ("SwapCached", "swapcached"),
        ("CommitLimit", "commitlimit"),
        ("Committed_AS", "committedas"),
        ("SwapTotal", "swaptotal"),
        ("SwapFree", "swapfree"),
        ("Mapped", "mapped"),
        ("VmallocTotal", "vmalloctotal"),
        ("VmallocUsed", "vmallocused"),
        ("VmallocChunk", "vmallocchunk"),
    ] {
        if let Some(v) = kb.get(src) {
            m.insert(name.into(), Value::from(*v));
        }
    }
    // As gopsutil: reclaimable slab counts as cache.
    if let Some(c) = kb.get("Cached") {
        let cached = c + kb.get("SReclaimable").copied().unwrap_or(0);
        m.insert("cached".into(), Value::from(cached));
    }
    // HugePages_* are counts, not kB.
    for (src, name) in [
        ("HugePages_Total", "hugepagestotal"),
        ("HugePages_Free", "hugepagesfree"),
    ] {
        if let Some(v) = kb.get(src) {
            m.insert(name.into(), Value::from(*v / 1024));
        }
    }
    if let Some(v) = kb.get("Hugepagesize") {
        m.insert("hugepagesize".into(), Value::from(*v));
    }
    // As gopsutil: used = total - available.
    if let (Some(t), Some(a)) = (kb.get("MemTotal"), kb.get("MemAvailable")) {
        let used = t.saturating_sub(*a);
        m.insert("used".into(), Value::from(used));
        if *t > 0 {
            m.insert(
                "usedPercent".into(),
                Value::from(used as f64 * 100.0 / *t as f64),
            );
        }
    }
    Ok(Value::Object(m))
}

/// One part of the answer, read from the kernel.
type Section = fn() -> Result<Value, String>;

impl Sys {
    async fn host_info(&self, _c: Ctx<'_>) -> HandlerResult {
        let sections: [(&str, Section); 5] = [
            ("cpu", cpu),
            ("cpu_times", cpu_times),
            ("disk", disk),
            ("host", host),
            ("memory", memory),
        ];
        let (data, warnings) = tokio::task::spawn_blocking(move || {
            let mut data = Map::new();
            let mut warnings = Vec::new();
            for (name, f) in sections {
                match f() {
                    Ok(v) => {
                        data.insert(name.into(), v);
                    }
                    Err(e) => warnings.push(format!("{name}: {e}")),
                }
            }
            (data, warnings)
        })
        .await
        .map_err(arca_sdk::LogicalError::internal)?;
        let mut data = data;
        data.insert(
            "timestamp".into(),
            Value::from(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)),
        );
        let mut r = Response::data(data);
        r.warnings = warnings;
        Ok(Some(r))
    }
}

pub(super) fn paths() -> Vec<Path<Sys>> {
    vec![Path::new("host-info")
        .op(Operation::Read, |b: &Sys, c| Box::pin(b.host_info(c)))
        .help("The node's host: processors, CPU times, disks, host, memory (sudo).")]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_sections_read_on_linux() {
        let cpu = cpu().unwrap();
        assert!(!cpu.as_array().unwrap().is_empty());
        assert_eq!(cpu[0]["cpu"], 0);
        let times = cpu_times().unwrap();
        assert_eq!(times[0]["cpu"], "cpu0");
        assert!(times[0]["user"].as_f64().is_some());
        let mem = memory().unwrap();
        assert!(mem["total"].as_u64().unwrap() > 0);
        assert!(mem["used"].as_u64().unwrap() <= mem["total"].as_u64().unwrap());
        let h = host().unwrap();
        assert!(!h["hostname"].as_str().unwrap().is_empty());
        assert!(h["bootTime"].as_u64().unwrap() > 0);
        let d = disk().unwrap();
        assert!(d.as_array().unwrap().iter().any(|x| x["path"] == "/"));
    }
}
