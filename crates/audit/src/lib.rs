//! Audit devices: where every request and its response are recorded, with
//! every secret replaced by its salted HMAC, so that an auditor can tell
//! who did what (and match a known value with `sys/audit-hash`) without the
//! log ever holding a secret.
//!
//! Device types: `file` (a file, `stdout` or `discard`), `socket` (TCP,
//! UDP or a unix stream socket, see [`sink`]) and `syslog` (the local
//! daemon's socket). Formats: `json` (one object per line) and `jsonx`
//! (the same entry as one line of JSONx XML, see [`jsonx`]).
//!
//! Invariants:
//! - Unless a device is enabled with `log_raw`, every string under the
//!   request's and response's `data`, every token, accessor (unless
//!   `hmac_accessor=false`) and wrapping token, and the values of the
//!   request headers configured with `hmac=true`, is written as
//!   `hmac-sha256:<hex>` keyed with the device's own salt. Keys, numbers,
//!   booleans and the rest of the entry are written as they are.
//! - A device writes one entry per line and has handed it to the file,
//!   socket or daemon before [`Device::log`] returns: an entry is recorded
//!   before the request it describes runs.
//! - A file device never writes into a directory the server refuses
//!   (its storage and plugin directories): a log written there could be
//!   read back as data or run as a plugin.
//! - `prefix` (text written before each entry, which lets whoever enables a
//!   device forge log content: HCSEC-2025-14) is refused unless the server
//!   configuration sets `allow_audit_log_prefixing = true`
//!   ([`Policy::allow_prefix`]).
//! - Options a device does not implement are refused by name, never
//!   accepted and ignored.

mod jsonx;
mod redact;
mod sink;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::Sha256;

use sink::{Sink, SocketType};

/// Why a device cannot be enabled or could not record an entry.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The device's type or options are wrong, or its target cannot be
    /// reached when it is enabled (a 400 for the client).
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
    /// `file`, `socket` or `syslog` ([`DEVICE_TYPES`]).
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

/// The device types there are.
pub const DEVICE_TYPES: &[&str] = &["file", "socket", "syslog"];

/// Where a syslog daemon listens, tried in this order.
pub const SYSLOG_SOCKETS: &[&str] = &["/dev/log", "/var/run/syslog", "/var/run/log"];

/// What the server allows devices (from its configuration).
#[derive(Debug, Clone)]
pub struct Policy {
    /// Directories a file device may not write under (storage, plugins).
    pub forbidden_dirs: Vec<PathBuf>,
    /// `allow_audit_log_prefixing`: the `prefix` option is accepted.
    pub allow_prefix: bool,
    /// Where `syslog` devices look for the daemon ([`SYSLOG_SOCKETS`]).
    pub syslog_sockets: Vec<PathBuf>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            forbidden_dirs: Vec::new(),
            allow_prefix: false,
            syslog_sockets: SYSLOG_SOCKETS.iter().map(PathBuf::from).collect(),
        }
    }
}

/// Options every device type takes (Vault's names).
const COMMON_OPTIONS: &[&str] = &[
    "format",
    "prefix",
    "hmac_accessor",
    "log_raw",
    "elide_list_responses",
];

fn type_options(kind: &str) -> &'static [&'static str] {
    match kind {
        "file" => &["file_path", "path", "mode"],
        "socket" => &["address", "socket_type", "write_timeout"],
        "syslog" => &["facility", "tag"],
        _ => &[],
    }
}

/// Vault's default `write_timeout` of socket devices.
const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Jsonx,
}

/// An enabled device.
pub struct Device {
    pub config: DeviceConfig,
    sink: Sink,
    format: Format,
    prefix: String,
    hmac_accessor: bool,
    log_raw: bool,
    elide_list_responses: bool,
    /// The HMAC keyed with the salt once; each hash starts from a copy
    /// (no key schedule, no hex decoding per string).
    mac: Hmac<Sha256>,
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

fn invalid(m: impl Into<String>) -> AuditError {
    AuditError::Invalid(m.into())
}

impl Device {
    /// Checks `config` against what the server allows and opens a file
    /// (sockets connect on first use, or on [`Device::probe`]).
    pub fn new(config: DeviceConfig, policy: &Policy) -> Result<Device, AuditError> {
        let kind = config.kind.as_str();
        if !DEVICE_TYPES.contains(&kind) {
            return Err(invalid(format!(
                "audit device type {kind:?} is not available (types: {})",
                DEVICE_TYPES.join(", ")
            )));
        }
        let o = &config.options;
        let own = type_options(kind);
        if let Some(k) = o
            .keys()
            .find(|k| !COMMON_OPTIONS.contains(&k.as_str()) && !own.contains(&k.as_str()))
        {
            return Err(invalid(format!(
                "option {k:?} is not available for {kind} audit devices (options: {}, {})",
                own.join(", "),
                COMMON_OPTIONS.join(", ")
            )));
        }
        let prefix = o.get("prefix").cloned().unwrap_or_default();
        if o.contains_key("prefix") && !policy.allow_prefix {
            return Err(invalid(
                "option \"prefix\" is refused: a prefix lets whoever enables a device forge log content (HCSEC-2025-14); the server configuration must set allow_audit_log_prefixing = true to allow it",
            ));
        }
        let format = match o.get("format").map(|f| f.trim()) {
            None | Some("") | Some("json") => Format::Json,
            Some("jsonx") => Format::Jsonx,
            Some(f) => {
                return Err(invalid(format!(
                    "format {f:?} is not available: use \"json\" or \"jsonx\""
                )))
            }
        };
        let hmac_accessor = bool_option(o, "hmac_accessor", true)?;
        let log_raw = bool_option(o, "log_raw", false)?;
        let elide_list_responses = bool_option(o, "elide_list_responses", false)?;
        // Last: a file is created only for a device that is otherwise valid.
        let sink = match kind {
            "file" => file_sink(o, policy)?,
            "socket" => socket_sink(o)?,
            _ => syslog_sink(o, policy)?,
        };
        let key = zeroize::Zeroizing::new(hex::decode(&config.salt).unwrap_or_default());
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("any key length");
        Ok(Device {
            mac,
            hmac_accessor,
            log_raw,
            elide_list_responses,
            format,
            prefix,
            config,
            sink,
        })
    }

    /// Connects a socket or syslog device now (enabling: a device that
    /// cannot reach its target is refused, not stored).
    pub fn probe(&self) -> Result<(), AuditError> {
        self.sink.probe().map_err(|e| {
            invalid(format!(
                "the {} audit device cannot reach its target: {e}",
                self.config.kind
            ))
        })
    }

    /// `hmac-sha256:<hex>` of `s` with this device's salt.
    pub fn hash(&self, s: &str) -> String {
        String::from_utf8(self.hash_bytes(s).to_vec()).expect("ascii")
    }

    /// [`Device::hash`] without an allocation.
    pub(crate) fn hash_bytes(&self, s: &str) -> [u8; redact::HASHED_LEN] {
        let mut mac = self.mac.clone();
        mac.update(s.as_bytes());
        let mut out = [0u8; redact::HASHED_LEN];
        let (head, hex_part) = out.split_at_mut("hmac-sha256:".len());
        head.copy_from_slice(b"hmac-sha256:");
        hex::encode_to_slice(mac.finalize().into_bytes(), hex_part).expect("64 hex digits");
        out
    }

    /// Records one entry (see [`Entry`]): hashed while it is serialised
    /// ([`redact`]), one line handed to the sink.
    pub fn log(&self, entry: &Entry) -> Result<(), AuditError> {
        let view = redact::View::new(self, entry);
        let mut line = Vec::with_capacity(self.prefix.len() + 1024);
        line.extend_from_slice(self.prefix.as_bytes());
        let encoded = match self.format {
            Format::Json => serde_json::to_writer(&mut line, &view),
            Format::Jsonx => serde_json::to_value(&view)
                .map(|v| line.extend_from_slice(jsonx::encode(&v).as_bytes())),
        };
        encoded.map_err(|e| AuditError::Io {
            path: self.config.path.clone(),
            source: std::io::Error::other(e),
        })?;
        line.push(b'\n');
        self.sink.write(&line).map_err(|source| AuditError::Io {
            path: self.config.path.clone(),
            source,
        })
    }

    /// Closes and reopens a file (log rotation: SIGHUP); a socket device
    /// drops its connection and connects again for the next entry.
    /// A file that cannot be reopened is closed: the next entry tries to
    /// open it again (and fails if it still cannot, so that requests are
    /// refused rather than recorded nowhere).
    pub fn reopen(&self) -> Result<(), AuditError> {
        self.sink.reopen().map_err(|source| AuditError::Io {
            path: self.config.path.clone(),
            source,
        })
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

fn file_sink(o: &BTreeMap<String, String>, policy: &Policy) -> Result<Sink, AuditError> {
    let target = o
        .get("file_path")
        .or_else(|| o.get("path"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    if target.is_empty() {
        return Err(invalid(
            "file_path is required (a file, \"stdout\" or \"discard\")",
        ));
    }
    let mode = match o.get("mode").map(|m| m.trim()) {
        None | Some("") => 0o600,
        Some(m) => u32::from_str_radix(m, 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| invalid(format!("mode must be octal permissions, not {m:?}")))?,
    };
    match target.as_str() {
        "stdout" => Ok(Sink::Stdout),
        "discard" => Ok(Sink::Discard),
        p => {
            let path = PathBuf::from(p);
            if !path.is_absolute() {
                return Err(invalid(format!("file_path {p:?} must be an absolute path")));
            }
            let resolved = resolve(&path);
            if let Some(dir) = policy
                .forbidden_dirs
                .iter()
                .find(|d| resolved.starts_with(resolve(d)))
            {
                return Err(invalid(format!(
                    "file_path {p:?} is inside {} (the server's storage or plugin directory): choose another place",
                    dir.display()
                )));
            }
            Sink::file(path, mode).map_err(|e| {
                invalid(format!(
                    "cannot open {p}: {e}: check that the directory exists and the server may write there"
                ))
            })
        }
    }
}

fn socket_sink(o: &BTreeMap<String, String>) -> Result<Sink, AuditError> {
    let address = o.get("address").map(|a| a.trim()).unwrap_or_default();
    if address.is_empty() {
        return Err(invalid(
            "address is required for socket audit devices (host:port, or a unix socket's path with socket_type=unix)",
        ));
    }
    let kind_name = o
        .get("socket_type")
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
        .unwrap_or("tcp");
    let kind = SocketType::parse(kind_name).ok_or_else(|| {
        invalid(format!(
            "socket_type must be \"tcp\", \"udp\" or \"unix\", not {kind_name:?}"
        ))
    })?;
    if kind != SocketType::Unix {
        let ok = address
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
        if !ok {
            return Err(invalid(format!(
                "address must be host:port for socket_type {kind_name}, not {address:?}"
            )));
        }
    }
    let timeout = match o.get("write_timeout").map(|t| t.trim()) {
        None | Some("") => DEFAULT_WRITE_TIMEOUT,
        Some(t) => arca_sdk::duration::parse(t)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                invalid(format!(
                    "write_timeout must be a positive duration such as \"2s\", not {t:?}"
                ))
            })?,
    };
    Ok(Sink::socket(kind, address.to_string(), timeout))
}

fn syslog_sink(o: &BTreeMap<String, String>, policy: &Policy) -> Result<Sink, AuditError> {
    let name = o
        .get("facility")
        .map(|f| f.trim())
        .filter(|f| !f.is_empty())
        .unwrap_or("AUTH");
    let facility = sink::FACILITIES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, f)| *f)
        .ok_or_else(|| {
            invalid(format!(
                "facility {name:?} is not a syslog facility ({})",
                sink::FACILITIES
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
    let tag = o
        .get("tag")
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
        .unwrap_or("vault");
    if tag.len() > 32
        || !tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
    {
        return Err(invalid(format!(
            "tag must be at most 32 letters, digits, '-', '_', '.' or '/', not {tag:?}"
        )));
    }
    Ok(Sink::syslog(
        policy.syslog_sockets.clone(),
        facility,
        tag.to_string(),
    ))
}

/// One entry, in plain text; each device hashes it as it writes it
/// ([`redact`]).
pub struct Entry {
    pub value: Value,
    /// A LIST answer (`elide_list_responses`).
    pub list: bool,
    /// Names under `request.headers` whose values are HMAC'd
    /// (`sys/config/auditing/request-headers` with `hmac=true`).
    pub hmac_headers: Vec<String>,
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

    fn policy() -> Policy {
        Policy::default()
    }

    fn config(options: &[(&str, &str)]) -> DeviceConfig {
        typed("file", options)
    }

    fn typed(kind: &str, options: &[(&str, &str)]) -> DeviceConfig {
        DeviceConfig {
            path: format!("{kind}/"),
            kind: kind.into(),
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
    fn hashes_are_hmac_sha256_with_the_salt() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.log");
        let d = Device::new(config(&[("file_path", log.to_str().unwrap())]), &policy()).unwrap();
        // HMAC-SHA256(key = 32 zero bytes, "hello"), computed independently.
        let want = "hmac-sha256:4352b26e33fe0d769a8922a6ba29004109f01688e26acc9e6cb347e5a5afc4da";
        assert_eq!(d.hash("hello"), want);
        // Each hash starts from the keyed state: the same input, the same hash.
        assert_eq!(d.hash("hello"), want);
        assert_ne!(d.hash("hello!"), want);
    }

    #[test]
    fn entries_hash_secrets_and_keep_the_shape() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.log");
        let d = Device::new(config(&[("file_path", log.to_str().unwrap())]), &policy()).unwrap();
        let e = Entry {
            value: json!({
                "type": "response",
                "auth": {"client_token": "hvs.root", "accessor": "acc", "policies": ["root"]},
                "request": {"path": "secret/data/x", "data": {"data": {"password": "s3cr3t", "n": 1}}},
                "response": {"data": {"value": ["a", "b"]}, "auth": {"client_token": "hvs.child"}},
            }),
            list: false,
            hmac_headers: Vec::new(),
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

    /// Every place [`redact`] hashes, and what it leaves alone, for the
    /// three ways a device can be set up.
    #[test]
    fn what_is_hashed_where() {
        let v = json!({
            "type": "response",
            "auth": {"client_token": "tok-a", "accessor": "acc-a", "display_name": "me"},
            "request": {
                "client_token": "", "client_token_accessor": "acc-r", "path": "p",
                "data": {"list": ["x", {"deep": "y"}], "n": 2, "b": true},
                "headers": {"x-secret": ["hdr-s"], "x-plain": ["hdr-p"]},
            },
            "response": {
                "data": {"keys": ["k1", "k2", "k3"], "key_info": {"k1": "info"}},
                "auth": {"client_token": "tok-c", "accessor": "acc-c"},
                "wrap_info": {"token": "tok-w", "accessor": "acc-w", "wrapped_accessor": "acc-ww", "ttl": 60},
            },
            "error": "plain error",
        });
        let e = Entry {
            value: v,
            list: true,
            hmac_headers: vec!["x-secret".into()],
        };
        let dir = tempfile::tempdir().unwrap();
        let written = |opts: &[(&str, &str)]| {
            let log = dir.path().join(format!("{}.log", opts.len()));
            let mut o = vec![("file_path", log.to_str().unwrap())];
            o.extend_from_slice(opts);
            let d = Device::new(config(&o), &policy()).unwrap();
            d.log(&e).unwrap();
            let text = std::fs::read_to_string(&log).unwrap();
            (d, serde_json::from_str::<Value>(text.trim()).unwrap())
        };
        let (d, h) = written(&[]);
        for (p, plain) in [
            ("/auth/client_token", "tok-a"),
            ("/auth/accessor", "acc-a"),
            ("/request/client_token_accessor", "acc-r"),
            ("/request/data/list/0", "x"),
            ("/request/data/list/1/deep", "y"),
            ("/request/headers/x-secret/0", "hdr-s"),
            ("/response/data/keys/1", "k2"),
            ("/response/data/key_info/k1", "info"),
            ("/response/auth/client_token", "tok-c"),
            ("/response/auth/accessor", "acc-c"),
            ("/response/wrap_info/token", "tok-w"),
            ("/response/wrap_info/accessor", "acc-w"),
            ("/response/wrap_info/wrapped_accessor", "acc-ww"),
        ] {
            assert_eq!(h.pointer(p).unwrap(), &Value::from(d.hash(plain)), "{p}");
        }
        for (p, same) in [
            ("/request/client_token", json!("")),
            ("/request/data/n", json!(2)),
            ("/request/data/b", json!(true)),
            ("/request/headers/x-plain/0", json!("hdr-p")),
            ("/auth/display_name", json!("me")),
            ("/response/wrap_info/ttl", json!(60)),
            ("/error", json!("plain error")),
        ] {
            assert_eq!(h.pointer(p).unwrap(), &same, "{p}");
        }
        // Accessors in plain text; tokens still hashed.
        let (d, h) = written(&[("hmac_accessor", "false"), ("format", "json")]);
        assert_eq!(h["auth"]["accessor"], "acc-a");
        assert_eq!(h["response"]["wrap_info"]["wrapped_accessor"], "acc-ww");
        assert_eq!(h["auth"]["client_token"], Value::from(d.hash("tok-a")));
        // Raw, and a LIST answer's keys elided to their count.
        let (_, h) = written(&[
            ("log_raw", "true"),
            ("elide_list_responses", "true"),
            ("format", "json"),
        ]);
        assert_eq!(h["response"]["data"]["keys"], 3);
        assert_eq!(h["response"]["wrap_info"]["token"], "tok-w");
        assert_eq!(h["request"]["headers"]["x-secret"][0], "hdr-s");
        // Elided and hashed: the rest of the data is still hashed.
        let (d, h) = written(&[("elide_list_responses", "true")]);
        assert_eq!(h["response"]["data"]["keys"], 3);
        assert_eq!(
            h["response"]["data"]["key_info"]["k1"],
            Value::from(d.hash("info"))
        );
    }

    #[test]
    fn options_are_checked() {
        let bad = |o: &[(&str, &str)]| Device::new(config(o), &policy()).err().unwrap().to_string();
        assert!(bad(&[("file_path", "stdout"), ("prefix", "x")]).contains("prefix"));
        assert!(bad(&[("file_path", "stdout"), ("format", "xml")]).contains("jsonx"));
        assert!(bad(&[]).contains("file_path"));
        assert!(bad(&[("file_path", "relative.log")]).contains("absolute"));
        assert!(bad(&[("file_path", "stdout"), ("log_raw", "maybe")]).contains("log_raw"));
        let dir = tempfile::tempdir().unwrap();
        let inside = dir.path().join("data/../data/audit.log");
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        let e = Device::new(
            config(&[("file_path", inside.to_str().unwrap())]),
            &Policy {
                forbidden_dirs: vec![dir.path().join("data")],
                ..policy()
            },
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("storage or plugin directory"), "{e}");
        let mut c = config(&[("file_path", "stdout")]);
        c.kind = "socket".into();
        assert!(Device::new(c, &policy()).is_err());
    }

    #[test]
    fn raw_and_accessor_options() {
        let raw = Device::new(
            config(&[("file_path", "discard"), ("log_raw", "true")]),
            &policy(),
        )
        .unwrap();
        assert!(raw.log_raw);
        let plain_acc = Device::new(
            config(&[("file_path", "discard"), ("hmac_accessor", "false")]),
            &policy(),
        )
        .unwrap();
        assert!(!plain_acc.hmac_accessor);
    }

    fn entry(v: Value) -> Entry {
        Entry {
            value: v,
            list: false,
            hmac_headers: Vec::new(),
        }
    }

    fn read_line(r: &mut impl std::io::BufRead) -> String {
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        l
    }

    #[test]
    fn tcp_socket_device_writes_lines_and_reconnects() {
        use std::io::BufReader;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let d = Device::new(
            typed("socket", &[("address", &addr), ("write_timeout", "1s")]),
            &policy(),
        )
        .unwrap();
        d.probe().unwrap();
        let (conn, _) = listener.accept().unwrap();
        let mut r = BufReader::new(conn);
        d.log(&entry(
            json!({"type": "request", "auth": {"client_token": "hvs.x"}}),
        ))
        .unwrap();
        let v: Value = serde_json::from_str(&read_line(&mut r)).unwrap();
        assert_eq!(v["auth"]["client_token"], d.hash("hvs.x"));
        // The collector restarts: the closed connection is noticed and the
        // next entry goes over a new one.
        drop(r);
        d.log(&entry(json!({"type": "request", "n": 2}))).unwrap();
        let (conn, _) = listener.accept().unwrap();
        let v: Value = serde_json::from_str(&read_line(&mut BufReader::new(conn))).unwrap();
        assert_eq!(v["n"], 2);
        // Nobody listens: the entry fails (the broker fails closed).
        drop(listener);
        let e = d.log(&entry(json!({"n": 3}))).err().unwrap();
        assert!(matches!(e, AuditError::Io { .. }), "{e}");
    }

    #[test]
    fn udp_and_unix_socket_devices() {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = udp.local_addr().unwrap().to_string();
        let d = Device::new(
            typed("socket", &[("address", &addr), ("socket_type", "udp")]),
            &policy(),
        )
        .unwrap();
        d.log(&entry(json!({"n": 1}))).unwrap();
        let mut b = [0u8; 4096];
        let n = udp.recv(&mut b).unwrap();
        assert_eq!(&b[..n], b"{\"n\":1}\n");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.sock");
        let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let d = Device::new(
            typed(
                "socket",
                &[("address", path.to_str().unwrap()), ("socket_type", "unix")],
            ),
            &policy(),
        )
        .unwrap();
        d.probe().unwrap();
        let (c, _) = l.accept().unwrap();
        d.log(&entry(json!({"n": 2}))).unwrap();
        assert_eq!(read_line(&mut std::io::BufReader::new(c)), "{\"n\":2}\n");
    }

    #[test]
    fn socket_options_are_checked() {
        let bad = |o: &[(&str, &str)]| {
            Device::new(typed("socket", o), &policy())
                .err()
                .unwrap()
                .to_string()
        };
        assert!(bad(&[]).contains("address"));
        assert!(bad(&[("address", "nohost")]).contains("host:port"));
        assert!(bad(&[("address", "127.0.0.1:1"), ("socket_type", "sctp")]).contains("socket_type"));
        assert!(
            bad(&[("address", "127.0.0.1:1"), ("write_timeout", "soon")]).contains("write_timeout")
        );
        assert!(bad(&[("address", "127.0.0.1:1"), ("file_path", "x")]).contains("file_path"));
        // Nothing listens: enabling is refused.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let d = Device::new(
            typed("socket", &[("address", &format!("127.0.0.1:{port}"))]),
            &policy(),
        )
        .unwrap();
        assert!(d
            .probe()
            .err()
            .unwrap()
            .to_string()
            .contains("cannot reach"));
    }

    #[test]
    fn syslog_device_sends_rfc3164_datagrams() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let daemon = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        let p = Policy {
            // A missing path and a directory (Debian's /var/run/log) are
            // passed over.
            syslog_sockets: vec![
                dir.path().join("missing"),
                dir.path().to_path_buf(),
                path.clone(),
            ],
            ..policy()
        };
        let d = Device::new(
            typed("syslog", &[("facility", "local3"), ("tag", "arca-audit")]),
            &p,
        )
        .unwrap();
        d.probe().unwrap();
        d.log(&entry(json!({"request": {"data": {"password": "pw"}}})))
            .unwrap();
        let mut b = vec![0u8; 65536];
        let n = daemon.recv(&mut b).unwrap();
        let msg = String::from_utf8(b[..n].to_vec()).unwrap();
        // LOCAL3 (19) * 8 + INFO (6) = 158.
        assert!(msg.starts_with("<158>"), "{msg}");
        let body = msg
            .split_once(&format!(" arca-audit[{}]: ", std::process::id()))
            .unwrap_or_else(|| panic!("no tag in {msg}"))
            .1;
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["request"]["data"]["password"], d.hash("pw"));
        // Defaults: AUTH (4) and "vault".
        let d = Device::new(typed("syslog", &[]), &p).unwrap();
        d.log(&entry(json!({}))).unwrap();
        let n = daemon.recv(&mut b).unwrap();
        let msg = String::from_utf8(b[..n].to_vec()).unwrap();
        assert!(msg.starts_with("<38>") && msg.contains(" vault["), "{msg}");

        let none = Policy {
            syslog_sockets: vec![dir.path().join("missing"), dir.path().to_path_buf()],
            ..policy()
        };
        let d = Device::new(typed("syslog", &[]), &none).unwrap();
        let e = d.probe().err().unwrap().to_string();
        assert!(e.contains("no local syslog socket"), "{e}");
        let bad = |o: &[(&str, &str)]| {
            Device::new(typed("syslog", o), &p)
                .err()
                .unwrap()
                .to_string()
        };
        assert!(bad(&[("facility", "NOPE")]).contains("facility"));
        assert!(bad(&[("tag", "a b")]).contains("tag"));
    }

    #[test]
    fn prefix_only_when_allowed_and_jsonx() {
        let e = Device::new(
            config(&[("file_path", "discard"), ("prefix", "P")]),
            &policy(),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("allow_audit_log_prefixing"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("a.log");
        let allowed = Policy {
            allow_prefix: true,
            ..policy()
        };
        let d = Device::new(
            config(&[
                ("file_path", log.to_str().unwrap()),
                ("prefix", "AUDIT: "),
                ("format", "jsonx"),
            ]),
            &allowed,
        )
        .unwrap();
        d.log(&entry(
            json!({"type": "request", "auth": {"client_token": "hvs.t"}}),
        ))
        .unwrap();
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.starts_with("AUDIT: <?xml"), "{text}");
        assert!(text.contains(r#"<json:string name="type">request</json:string>"#));
        assert!(!text.contains("hvs.t"));
        assert!(text.contains(&d.hash("hvs.t")));
        assert_eq!(text.lines().count(), 1);
    }

    #[test]
    fn configured_headers_are_hmaced() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("a.log");
        let d = Device::new(config(&[("file_path", log.to_str().unwrap())]), &policy()).unwrap();
        d.log(&Entry {
            value: json!({"request": {"headers": {"x-secret": ["s1"], "x-plain": ["p1"]}}}),
            list: false,
            hmac_headers: vec!["x-secret".into()],
        })
        .unwrap();
        let v: Value = serde_json::from_str(std::fs::read_to_string(&log).unwrap().trim()).unwrap();
        assert_eq!(v["request"]["headers"]["x-secret"][0], d.hash("s1"));
        assert_eq!(v["request"]["headers"]["x-plain"][0], "p1");
    }
}
