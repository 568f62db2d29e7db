//! Audit devices: where every request and its response are recorded, with
//! every secret replaced by its salted HMAC, so that an auditor can tell
//! who did what (and match a known value with `sys/audit-hash`) without the
//! log ever holding a secret.
//!
//! Invariants:
//! - Unless a device is enabled with `log_raw`, every string under the
//!   request's and response's `data`, and every token, accessor (unless
//!   `hmac_accessor=false`) and wrapping token, is written as
//!   `hmac-sha256:<hex>` keyed with the device's own salt. Keys, numbers,
//!   booleans and the rest of the entry are written as they are.
//! - A device writes one JSON object per line and flushes it before
//!   [`Device::log`] returns: an entry is on disk (or on stdout) before the
//!   request it describes runs.
//! - A file device never writes into a directory the server refuses
//!   (its storage and plugin directories): a log written there could be
//!   read back as data or run as a plugin.
//! - Options a device does not implement are refused by name, never
//!   accepted and ignored.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::Sha256;

/// Why a device cannot be enabled or could not record an entry.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The device's type or options are wrong (a 400 for the client).
    #[error("{0}")]
    Invalid(String),
    /// The device could not write.
    #[error("audit device {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A device as the audit table stores it (`sys/audit/:path`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceConfig {
    /// The path it is enabled at, with a trailing slash (`file/`).
    pub path: String,
    /// `file` (the only type yet).
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub local: bool,
    /// Hex HMAC key; never shown by any read.
    pub salt: String,
}

/// The options a file device takes (Vault's names).
const FILE_OPTIONS: &[&str] = &[
    "file_path",
    "path",
    "mode",
    "format",
    "hmac_accessor",
    "log_raw",
    "elide_list_responses",
];

enum Sink {
    File {
        path: PathBuf,
        mode: u32,
        file: parking_lot::Mutex<Option<File>>,
    },
    Stdout,
    Discard,
}

/// An enabled device.
pub struct Device {
    pub config: DeviceConfig,
    sink: Sink,
    hmac_accessor: bool,
    log_raw: bool,
    elide_list_responses: bool,
}

fn bool_option(o: &BTreeMap<String, String>, k: &str, default: bool) -> Result<bool, AuditError> {
    match o.get(k).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if v.is_empty() => Ok(default),
        Some(v) if matches!(v.as_str(), "true" | "1" | "t") => Ok(true),
        Some(v) if matches!(v.as_str(), "false" | "0" | "f") => Ok(false),
        Some(v) => Err(AuditError::Invalid(format!(
            "option {k} must be true or false, not {v:?}"
        ))),
    }
}

/// A new random salt (hex).
pub fn new_salt() -> String {
    let mut b = zeroize::Zeroizing::new([0u8; 32]);
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, b.as_mut());
    hex::encode(b.as_ref())
}

impl Device {
    /// Checks `config` and opens what it writes to. `forbidden` are
    /// directories a file device may not write under.
    pub fn new(config: DeviceConfig, forbidden: &[PathBuf]) -> Result<Device, AuditError> {
        if config.kind != "file" {
            return Err(AuditError::Invalid(format!(
                "audit device type {:?} is not available: Arca has the \"file\" device (file_path, or \"stdout\" / \"discard\")",
                config.kind
            )));
        }
        let o = &config.options;
        if let Some(k) = o.keys().find(|k| !FILE_OPTIONS.contains(&k.as_str())) {
            let hint = if k == "prefix" {
                ": a prefix lets the device's caller forge log content (HCSEC-2025-14); Arca does not take it"
            } else {
                ""
            };
            return Err(AuditError::Invalid(format!(
                "option {k:?} is not available for file audit devices{hint}"
            )));
        }
        match o.get("format").map(String::as_str) {
            None | Some("") | Some("json") => {}
            Some(f) => {
                return Err(AuditError::Invalid(format!(
                    "format {f:?} is not available: use \"json\""
                )))
            }
        }
        let target = o
            .get("file_path")
            .or_else(|| o.get("path"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        if target.is_empty() {
            return Err(AuditError::Invalid(
                "file_path is required (a file, \"stdout\" or \"discard\")".into(),
            ));
        }
        let mode = match o.get("mode").map(|m| m.trim()) {
            None | Some("") => 0o600,
            Some(m) => u32::from_str_radix(m, 8)
                .ok()
                .filter(|m| *m <= 0o777)
                .ok_or_else(|| {
                    AuditError::Invalid(format!("mode must be octal permissions, not {m:?}"))
                })?,
        };
        let sink = match target.as_str() {
            "stdout" => Sink::Stdout,
            "discard" => Sink::Discard,
            p => {
                let path = PathBuf::from(p);
                if !path.is_absolute() {
                    return Err(AuditError::Invalid(format!(
                        "file_path {p:?} must be an absolute path"
                    )));
                }
                let resolved = resolve(&path);
                if let Some(dir) = forbidden.iter().find(|d| resolved.starts_with(resolve(d))) {
                    return Err(AuditError::Invalid(format!(
                        "file_path {p:?} is inside {} (the server's storage or plugin directory): choose another place",
                        dir.display()
                    )));
                }
                let file = open(&path, mode)?;
                Sink::File {
                    path,
                    mode,
                    file: parking_lot::Mutex::new(Some(file)),
                }
            }
        };
        Ok(Device {
            hmac_accessor: bool_option(o, "hmac_accessor", true)?,
            log_raw: bool_option(o, "log_raw", false)?,
            elide_list_responses: bool_option(o, "elide_list_responses", false)?,
            config,
            sink,
        })
    }

    /// `hmac-sha256:<hex>` of `s` with this device's salt.
    pub fn hash(&self, s: &str) -> String {
        let key = hex::decode(&self.config.salt).unwrap_or_default();
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("any key length");
        mac.update(s.as_bytes());
        format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()))
    }

    /// Records one entry (see [`Entry`]).
    pub fn log(&self, entry: &Entry) -> Result<(), AuditError> {
        let mut v = entry.value.clone();
        if self.elide_list_responses && entry.list {
            if let Some(keys) = v.pointer_mut("/response/data/keys") {
                if let Some(n) = keys.as_array().map(Vec::len) {
                    *keys = Value::from(n);
                }
            }
        }
        if !self.log_raw {
            for p in DATA {
                if let Some(x) = v.pointer_mut(p) {
                    self.hash_all(x);
                }
            }
            for p in TOKENS {
                self.hash_at(&mut v, p);
            }
            if self.hmac_accessor {
                for p in ACCESSORS {
                    self.hash_at(&mut v, p);
                }
            }
        }
        let mut line = serde_json::to_vec(&v).unwrap_or_default();
        line.push(b'\n');
        self.write(&line)
    }

    fn hash_at(&self, v: &mut Value, pointer: &str) {
        if let Some(x) = v.pointer_mut(pointer) {
            if let Some(s) = x.as_str().filter(|s| !s.is_empty()) {
                *x = Value::String(self.hash(s));
            }
        }
    }

    fn hash_all(&self, v: &mut Value) {
        match v {
            Value::String(s) => *s = self.hash(s),
            Value::Array(a) => a.iter_mut().for_each(|x| self.hash_all(x)),
            Value::Object(m) => m.values_mut().for_each(|x| self.hash_all(x)),
            _ => {}
        }
    }

    fn write(&self, line: &[u8]) -> Result<(), AuditError> {
        let io = |source| AuditError::Io {
            path: self.config.path.clone(),
            source,
        };
        match &self.sink {
            Sink::Discard => Ok(()),
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(line).and_then(|_| out.flush()).map_err(io)
            }
            Sink::File { path, mode, file } => {
                let mut f = file.lock();
                if f.is_none() {
                    *f = Some(open(path, *mode)?);
                }
                let w = f.as_mut().expect("opened above");
                let r = w.write_all(line).and_then(|_| w.flush());
                if r.is_err() {
                    // Reopened on the next entry (the file may have moved).
                    *f = None;
                }
                r.map_err(io)
            }
        }
    }

    /// Closes and reopens the file (log rotation: SIGHUP).
    /// A file that cannot be reopened is closed: the next entry tries to
    /// open it again (and fails if it still cannot, so that requests are
    /// refused rather than recorded nowhere).
    pub fn reopen(&self) -> Result<(), AuditError> {
        if let Sink::File { path, mode, file } = &self.sink {
            let mut f = file.lock();
            *f = None;
            *f = Some(open(path, *mode)?);
        }
        Ok(())
    }

    /// The options as `sys/audit` shows them (the salt never).
    pub fn shown_options(&self) -> Map<String, Value> {
        self.config
            .options
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.clone())))
            .collect()
    }
}

/// Parts of an entry hashed whole (every string inside).
const DATA: &[&str] = &["/request/data", "/response/data"];
/// Tokens, hashed always (unless `log_raw`).
const TOKENS: &[&str] = &[
    "/auth/client_token",
    "/request/client_token",
    "/response/auth/client_token",
    "/response/wrap_info/token",
];
/// Accessors, hashed unless `hmac_accessor=false`.
const ACCESSORS: &[&str] = &[
    "/auth/accessor",
    "/request/client_token_accessor",
    "/response/auth/accessor",
    "/response/wrap_info/accessor",
    "/response/wrap_info/wrapped_accessor",
];

/// One entry, in plain text; each device hashes its own copy.
pub struct Entry {
    pub value: Value,
    /// A LIST answer (`elide_list_responses`).
    pub list: bool,
}

fn open(path: &Path, mode: u32) -> Result<File, AuditError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(mode)
        .open(path)
        .map_err(|source| AuditError::Io {
            path: path.display().to_string(),
            source,
        })
}

/// `p` with symlinks and `..` resolved as far as it exists (the file
/// itself may not exist yet).
fn resolve(p: &Path) -> PathBuf {
    if let Ok(c) = p.canonicalize() {
        return c;
    }
    match (p.parent(), p.file_name()) {
        (Some(parent), Some(name)) => resolve(parent).join(name),
        _ => p.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(options: &[(&str, &str)]) -> DeviceConfig {
        DeviceConfig {
            path: "file/".into(),
            kind: "file".into(),
            description: String::new(),
            options: options
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            local: false,
            salt: "00".repeat(32),
        }
    }

    #[test]
    fn entries_hash_secrets_and_keep_the_shape() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.log");
        let d = Device::new(config(&[("file_path", log.to_str().unwrap())]), &[]).unwrap();
        let e = Entry {
            value: json!({
                "type": "response",
                "auth": {"client_token": "hvs.root", "accessor": "acc", "policies": ["root"]},
                "request": {"path": "secret/data/x", "data": {"data": {"password": "s3cr3t", "n": 1}}},
                "response": {"data": {"value": ["a", "b"]}, "auth": {"client_token": "hvs.child"}},
            }),
            list: false,
        };
        d.log(&e).unwrap();
        let text = std::fs::read_to_string(&log).unwrap();
        for secret in ["hvs.root", "s3cr3t", "hvs.child", "\"acc\""] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        let v: Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["request"]["data"]["data"]["password"], d.hash("s3cr3t"));
        assert_eq!(v["request"]["data"]["data"]["n"], 1);
        assert_eq!(v["auth"]["policies"][0], "root");
        assert_eq!(v["request"]["path"], "secret/data/x");
        assert!(d.hash("x").starts_with("hmac-sha256:"));
        assert_eq!(d.hash("x").len(), "hmac-sha256:".len() + 64);
    }

    #[test]
    fn options_are_checked() {
        let bad = |o: &[(&str, &str)]| Device::new(config(o), &[]).err().unwrap().to_string();
        assert!(bad(&[("file_path", "stdout"), ("prefix", "x")]).contains("prefix"));
        assert!(bad(&[("file_path", "stdout"), ("format", "jsonx")]).contains("jsonx"));
        assert!(bad(&[]).contains("file_path"));
        assert!(bad(&[("file_path", "relative.log")]).contains("absolute"));
        assert!(bad(&[("file_path", "stdout"), ("log_raw", "maybe")]).contains("log_raw"));
        let dir = tempfile::tempdir().unwrap();
        let inside = dir.path().join("data/../data/audit.log");
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        let e = Device::new(
            config(&[("file_path", inside.to_str().unwrap())]),
            &[dir.path().join("data")],
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("storage or plugin directory"), "{e}");
        let mut c = config(&[("file_path", "stdout")]);
        c.kind = "socket".into();
        assert!(Device::new(c, &[]).is_err());
    }

    #[test]
    fn raw_and_accessor_options() {
        let raw = Device::new(
            config(&[("file_path", "discard"), ("log_raw", "true")]),
            &[],
        )
        .unwrap();
        assert!(raw.log_raw);
        let plain_acc = Device::new(
            config(&[("file_path", "discard"), ("hmac_accessor", "false")]),
            &[],
        )
        .unwrap();
        assert!(!plain_acc.hmac_accessor);
    }
}
