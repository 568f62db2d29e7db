//! The server configuration file, in Vault's HCL shape.
//!
//! ```hcl
//! storage "rocksdb" {            # or "inmem", or "raft" (path, node_id, retry_join)
//!   path = "/var/lib/arca"
//! }
//! listener "tcp" {               # one or more
//!   address         = "127.0.0.1:8200"
//!   cluster_address = "127.0.0.1:8201"
//!   tls_disable     = true       # or "true" or 1
//!   # tls_cert_file / tls_key_file are required unless tls_disable is true;
//!   # tls_min_version, tls_max_version ("tls12", "tls13"), tls_cipher_suites,
//!   # tls_client_ca_file, tls_require_and_verify_client_cert,
//!   # tls_disable_client_certs: as Vault (see arca_http::tls)
//!   http_read_header_timeout = "10s"   # Vault's defaults
//!   http_read_timeout        = "30s"
//!   http_idle_timeout        = "5m"
//!   max_request_duration     = "90s"
//!   max_connections          = 1024    # Arca's; further clients wait
//!   # the legacy unauthenticated sys/rekey/* and sys/generate-root/*
//!   # (anyone who reaches the listener can start or cancel them)
//!   disable_unauthed_rekey_endpoints         = true
//!   disable_unauthed_generate_root_endpoints = true
//!   telemetry {
//!     unauthenticated_metrics_access = false  # true: sys/metrics needs no token
//!   }
//! }
//! telemetry {
//!   prometheus_retention_time = "24h"  # "0" turns ?format=prometheus off
//!   disable_hostname          = true   # Arca never adds the host name
//! }
//! api_addr          = "https://arca-1.example:8200"
//! cluster_addr      = "https://arca-1.example:8201"
//! log_level         = "info"
//! log_format        = "standard" # or "json"
//! pid_file          = "/run/arca.pid"  # written at start, removed at exit
//! default_lease_ttl = "768h"     # or seconds
//! max_lease_ttl     = "768h"
//! ui                = false      # true is refused: Arca serves no web UI
//! disable_mlock     = true       # Arca does not mlock; false is refused
//! user_lockout "all" {           # or "userpass", "ldap", "approle"
//!   lockout_threshold     = 5    # failed logins before the alias is locked
//!   lockout_duration      = "15m"
//!   lockout_counter_reset = "15m"
//!   disable_lockout       = false
//! }
//! audit "file" "to-file" {       # type and path (the path defaults to the type)
//!   description = "enabled at every unseal, never through the API"
//!   options {                    # the device's options, as `bao audit enable`
//!     file_path = "/var/log/arca/audit.log"
//!   }
//! }
//! allow_audit_log_prefixing = false  # true: devices may take a `prefix`
//! ```
//!
//! Invariants of a [`Config`] returned by [`load`] / [`parse`]:
//! * exactly one storage block of a known type (`inmem`, `rocksdb`, `raft`);
//!   `rocksdb` and `raft` have a `path`; `node_id` and `retry_join` appear
//!   only with `raft`; every other storage option is one the server reads
//!   ([`RAFT_STORAGE_OPTIONS`] for raft, none for the others);
//! * at least one `tcp` listener, each with a `host:port` address; a listener
//!   with TLS enabled names both `tls_cert_file` and `tls_key_file`; its TLS
//!   versions, cipher suites and client-certificate settings are ones
//!   [`arca_http::tls`] accepts (`tls_min_version <= tls_max_version`, known
//!   suites only, require-and-verify has a CA file and is not combined with
//!   disable); its timeouts are positive;
//! * `log_level` is one of `trace debug info warn error` (`warning` → `warn`);
//! * `0 < default_lease_ttl <= max_lease_ttl` (both default to 768h);
//! * `audit` blocks have a known device type, distinct paths, and only
//!   `description` and `options` (a map of scalars); the device's options
//!   themselves are checked by `arca_audit` when the server starts;
//! * no unknown key is silently ignored: every error names the file, the line
//!   of the offending attribute or block when there is one, and the field.
//!
//! Parsing uses `hcl-edit` (through `hcl-rs`) so that every attribute and block
//! keeps its position in the file for error messages.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use hcl::edit::expr::Expression;
use hcl::edit::structure::{Attribute, Block, Body, Structure};
use hcl::edit::Span;

use arca_http::{ClientAuth, ConnectionLimits, TlsOptions, TlsVersion};

use crate::duration;

/// Vault's default for both lease TTLs: 768h.
pub const DEFAULT_LEASE_TTL: u64 = 768 * 3600;
/// The address a listener binds when it names none.
pub const DEFAULT_LISTEN_ADDRESS: &str = "127.0.0.1:8200";
/// Storage types the configuration accepts.
pub const STORAGE_TYPES: &[&str] = &["inmem", "rocksdb", "raft"];
/// The options of `storage "raft"` (besides `path`, `node_id` and
/// `retry_join`) that [`crate::cluster::open_raft`] reads: exactly these
/// are accepted; anything else is refused rather than silently ignored.
pub const RAFT_STORAGE_OPTIONS: &[&str] = &[
    "performance_multiplier",
    "snapshot_threshold",
    "trailing_logs",
    "cluster_cert_file",
    "cluster_key_file",
    "cluster_ca_file",
];

/// The whole server configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The storage backend.
    pub storage: StorageConfig,
    /// HTTP listeners (at least one).
    pub listeners: Vec<ListenerConfig>,
    /// Address clients are redirected to / told about (`https://host:8200`).
    pub api_addr: Option<String>,
    /// Address other nodes reach this node's cluster port on.
    pub cluster_addr: Option<String>,
    /// `trace`, `debug`, `info`, `warn` or `error`.
    pub log_level: String,
    /// Default lease TTL in seconds.
    pub default_lease_ttl: u64,
    /// Maximum lease TTL in seconds.
    pub max_lease_ttl: u64,
    /// `ui`: only `false` is accepted (Arca serves no web UI).
    pub ui: bool,
    /// `disable_mlock`: only `true` (or leaving it out) is accepted: Arca
    /// does not lock its memory, so asking for it explicitly is refused.
    pub disable_mlock: bool,
    /// `cluster_name`, reported by `sys/seal-status` and `sys/health`.
    pub cluster_name: Option<String>,
    /// `log_format`: standard text lines or one JSON object per line.
    pub log_format: LogFormat,
    /// `pid_file`: where to write the process id.
    pub pid_file: Option<PathBuf>,
    /// `read_consistency = "stale"`: a cluster node reads local state by
    /// default instead of waiting for the read index.
    pub stale_reads: bool,
    /// `periodic_interval`: how often the active node runs engines'
    /// background work (CRL rebuilds, scheduled tidies). Default 10s.
    pub periodic_interval: u64,
    /// `user_lockout "<type>"` stanzas: lockout defaults for auth mounts of
    /// that type (`all`: every type), below a mount's own tune.
    pub user_lockout: BTreeMap<String, arca_core::lockout::UserLockoutConfig>,
    /// `audit "<type>" "<path>"` blocks: devices enabled at every unseal
    /// (salt left empty: the audit table keeps it).
    pub audit: Vec<arca_audit::DeviceConfig>,
    /// `allow_audit_log_prefixing`: audit devices may take `prefix`.
    pub allow_audit_log_prefixing: bool,
    /// The `telemetry` block.
    pub telemetry: Telemetry,
    /// The `seal "<type>"` block in use (`None`: Shamir key shares).
    pub seal: Option<SealBlock>,
    /// A `seal "<type>"` block with `disabled = "true"`: the auto seal the
    /// stored root key is migrated away from (`sys/unseal` with
    /// `migrate`).
    pub old_seal: Option<SealBlock>,
}

/// `seal "<type>" { ... }`: an auto seal's settings, checked against
/// [`arca_autoseal::options`]; values are kept as strings and read by
/// [`arca_autoseal::build`] when the server starts.
#[derive(Clone, PartialEq, Eq)]
pub struct SealBlock {
    pub kind: String,
    pub options: BTreeMap<String, String>,
}

impl fmt::Debug for SealBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: BTreeMap<&str, &str> = self
            .options
            .iter()
            .map(|(k, v)| {
                let v = if arca_autoseal::SECRET_OPTIONS.contains(&k.as_str()) {
                    "<redacted>"
                } else {
                    v.as_str()
                };
                (k.as_str(), v)
            })
            .collect();
        f.debug_struct("SealBlock")
            .field("kind", &self.kind)
            .field("options", &shown)
            .finish()
    }
}

/// `telemetry { ... }`: how `sys/metrics` keeps its series.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Telemetry {
    /// A series not updated for this long leaves the output; zero turns
    /// the Prometheus format off (Vault's default: 24h).
    pub prometheus_retention_time: std::time::Duration,
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry {
            prometheus_retention_time: arca_metrics::DEFAULT_RETENTION,
        }
    }
}

impl Default for Config {
    /// In-memory storage and one plain-HTTP listener on 127.0.0.1:8200.
    fn default() -> Self {
        Config {
            storage: StorageConfig {
                kind: "inmem".to_string(),
                path: None,
                node_id: None,
                options: BTreeMap::new(),
                retry_join: Vec::new(),
            },
            listeners: vec![ListenerConfig {
                address: DEFAULT_LISTEN_ADDRESS.to_string(),
                tls_disable: true,
                ..ListenerConfig::default()
            }],
            api_addr: None,
            cluster_addr: None,
            log_level: "info".to_string(),
            default_lease_ttl: DEFAULT_LEASE_TTL,
            max_lease_ttl: DEFAULT_LEASE_TTL,
            ui: false,
            disable_mlock: false,
            cluster_name: None,
            log_format: LogFormat::Standard,
            pid_file: None,
            stale_reads: false,
            periodic_interval: 10,
            user_lockout: BTreeMap::new(),
            telemetry: Telemetry::default(),
            audit: Vec::new(),
            allow_audit_log_prefixing: false,
            seal: None,
            old_seal: None,
        }
    }
}

/// `log_format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// `standard`: human-readable lines.
    #[default]
    Standard,
    /// `json`: one JSON object per line.
    Json,
}

/// `storage "<kind>" { ... }`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StorageConfig {
    /// `inmem`, `rocksdb` or `raft`.
    pub kind: String,
    /// Data directory (required for `rocksdb` and `raft`).
    pub path: Option<PathBuf>,
    /// Raft node id.
    pub node_id: Option<String>,
    /// Every other scalar attribute, stringified (`performance_multiplier = 5` → `"5"`).
    pub options: BTreeMap<String, String>,
    /// `retry_join { ... }` blocks (raft only).
    pub retry_join: Vec<RetryJoinConfig>,
}

/// One `retry_join` block of raft storage.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetryJoinConfig {
    /// API address of a node to join through (`https://host:8200`).
    pub leader_api_addr: String,
    /// CA file to verify that node.
    pub leader_ca_cert_file: Option<PathBuf>,
    /// Client certificate presented to it.
    pub leader_client_cert_file: Option<PathBuf>,
    /// Key of the client certificate.
    pub leader_client_key_file: Option<PathBuf>,
    /// TLS server name to expect.
    pub leader_tls_servername: Option<String>,
}

/// `listener "tcp" { ... }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerConfig {
    /// `host:port` to bind for the API.
    pub address: String,
    /// `host:port` to bind for cluster traffic.
    pub cluster_address: Option<String>,
    /// Serve plain HTTP.
    pub tls_disable: bool,
    /// PEM certificate chain (required unless `tls_disable`).
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key (required unless `tls_disable`).
    pub tls_key_file: Option<PathBuf>,
    /// CA bundle used to verify client certificates.
    pub tls_client_ca_file: Option<PathBuf>,
    /// `tls_min_version` (default `tls12`).
    pub tls_min_version: TlsVersion,
    /// `tls_max_version` (default `tls13`).
    pub tls_max_version: TlsVersion,
    /// `tls_cipher_suites`: Vault/Go names, each known to [`arca_http::tls`].
    pub tls_cipher_suites: Vec<String>,
    /// Require a verified client certificate on every connection.
    pub tls_require_and_verify_client_cert: bool,
    /// Do not ask clients for certificates.
    pub tls_disable_client_certs: bool,
    /// `http_read_header_timeout`, `http_read_timeout`, `http_idle_timeout`,
    /// `max_request_duration` and `max_connections`.
    pub limits: ConnectionLimits,
    /// `telemetry { unauthenticated_metrics_access = true }`: `sys/metrics`
    /// answers on this listener without a token.
    pub unauthenticated_metrics_access: bool,
    /// `disable_unauthed_rekey_endpoints = false` /
    /// `disable_unauthed_generate_root_endpoints = false`: the legacy
    /// unauthenticated `sys/rekey/*` / `sys/generate-root/*` are served
    /// on this listener (both off by default, as in OpenBao 2.5+).
    pub legacy_ceremonies: arca_http::LegacyCeremonies,
}

impl Default for ListenerConfig {
    /// Vault's defaults, on [`DEFAULT_LISTEN_ADDRESS`] with TLS enabled.
    fn default() -> Self {
        ListenerConfig {
            address: DEFAULT_LISTEN_ADDRESS.to_string(),
            cluster_address: None,
            tls_disable: false,
            tls_cert_file: None,
            tls_key_file: None,
            tls_client_ca_file: None,
            tls_min_version: TlsVersion::Tls12,
            tls_max_version: TlsVersion::Tls13,
            tls_cipher_suites: Vec::new(),
            tls_require_and_verify_client_cert: false,
            tls_disable_client_certs: false,
            limits: ConnectionLimits::default(),
            unauthenticated_metrics_access: false,
            legacy_ceremonies: arca_http::LegacyCeremonies::default(),
        }
    }
}

impl ListenerConfig {
    /// The TLS settings for the HTTP layer; `None` with `tls_disable`.
    pub fn tls_options(&self) -> Option<TlsOptions> {
        if self.tls_disable {
            return None;
        }
        Some(TlsOptions {
            cert_file: self.tls_cert_file.clone().unwrap_or_default(),
            key_file: self.tls_key_file.clone().unwrap_or_default(),
            min_version: self.tls_min_version,
            max_version: self.tls_max_version,
            cipher_suites: self.tls_cipher_suites.clone(),
            client_ca_file: self.tls_client_ca_file.clone(),
            client_auth: if self.tls_disable_client_certs {
                ClientAuth::Disabled
            } else if self.tls_require_and_verify_client_cert {
                ClientAuth::RequireAndVerify
            } else {
                ClientAuth::Request
            },
        })
    }
}

impl Config {
    /// The configuration as `sys/config/state/sanitized` shows it, in
    /// Vault's shape (`listeners: [{type, config}]`, `storage: {type, ...}`,
    /// `seals: [{type, disabled}]`, TTLs in seconds) plus Arca's own
    /// settings under their configuration names.
    ///
    /// Nothing secret is in a [`Config`] today (TLS keys and CA bundles are
    /// file paths, the seal is Shamir, whose keys are never in the file);
    /// the destructuring below makes a new field a compile error here until
    /// someone decides whether it may be shown.
    pub fn sanitized(&self) -> serde_json::Value {
        use serde_json::{json, Map, Value};
        let Config {
            storage,
            listeners,
            api_addr,
            cluster_addr,
            log_level,
            default_lease_ttl,
            max_lease_ttl,
            ui,
            disable_mlock: _,
            cluster_name,
            log_format,
            pid_file,
            stale_reads,
            periodic_interval,
            user_lockout,
            telemetry,
            audit,
            allow_audit_log_prefixing,
            seal,
            old_seal,
        } = self;
        let path_str = |p: &Option<PathBuf>| {
            p.as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        };
        let version = |v: TlsVersion| match v {
            TlsVersion::Tls12 => "tls12",
            TlsVersion::Tls13 => "tls13",
        };
        let listeners: Vec<Value> = listeners
            .iter()
            .map(|l| {
                let ListenerConfig {
                    address,
                    cluster_address,
                    tls_disable,
                    tls_cert_file,
                    tls_key_file,
                    tls_client_ca_file,
                    tls_min_version,
                    tls_max_version,
                    tls_cipher_suites,
                    tls_require_and_verify_client_cert,
                    tls_disable_client_certs,
                    limits,
                    unauthenticated_metrics_access,
                    legacy_ceremonies,
                } = l;
                let mut c = Map::new();
                c.insert("address".into(), json!(address));
                if let Some(a) = cluster_address {
                    c.insert("cluster_address".into(), json!(a));
                }
                c.insert("tls_disable".into(), json!(tls_disable));
                if !tls_disable {
                    // Paths only: the files' contents never leave them.
                    c.insert("tls_cert_file".into(), json!(path_str(tls_cert_file)));
                    c.insert("tls_key_file".into(), json!(path_str(tls_key_file)));
                    if tls_client_ca_file.is_some() {
                        c.insert(
                            "tls_client_ca_file".into(),
                            json!(path_str(tls_client_ca_file)),
                        );
                    }
                    c.insert("tls_min_version".into(), json!(version(*tls_min_version)));
                    c.insert("tls_max_version".into(), json!(version(*tls_max_version)));
                    c.insert(
                        "tls_cipher_suites".into(),
                        json!(tls_cipher_suites.join(",")),
                    );
                    c.insert(
                        "tls_require_and_verify_client_cert".into(),
                        json!(tls_require_and_verify_client_cert),
                    );
                    c.insert(
                        "tls_disable_client_certs".into(),
                        json!(tls_disable_client_certs),
                    );
                }
                let secs = |d: std::time::Duration| d.as_secs_f64();
                c.insert(
                    "http_read_header_timeout".into(),
                    json!(secs(limits.read_header_timeout)),
                );
                c.insert("http_read_timeout".into(), json!(secs(limits.read_timeout)));
                c.insert("http_idle_timeout".into(), json!(secs(limits.idle_timeout)));
                c.insert(
                    "max_request_duration".into(),
                    json!(secs(limits.max_request_duration)),
                );
                c.insert("max_connections".into(), json!(limits.max_connections));
                c.insert(
                    "telemetry".into(),
                    json!({ "unauthenticated_metrics_access": unauthenticated_metrics_access }),
                );
                c.insert(
                    "disable_unauthed_rekey_endpoints".into(),
                    json!(!legacy_ceremonies.rekey),
                );
                c.insert(
                    "disable_unauthed_generate_root_endpoints".into(),
                    json!(!legacy_ceremonies.generate_root),
                );
                json!({ "type": "tcp", "config": c })
            })
            .collect();
        let StorageConfig {
            kind,
            path,
            node_id,
            options,
            retry_join,
        } = storage;
        let mut st = Map::new();
        st.insert("type".into(), json!(kind));
        st.insert(
            "redirect_addr".into(),
            json!(api_addr.clone().unwrap_or_default()),
        );
        st.insert(
            "cluster_addr".into(),
            json!(cluster_addr.clone().unwrap_or_default()),
        );
        st.insert("disable_clustering".into(), json!(kind != "raft"));
        if path.is_some() {
            st.insert("path".into(), json!(path_str(path)));
        }
        if let Some(n) = node_id {
            st.insert("node_id".into(), json!(n));
        }
        // Only the options RAFT_STORAGE_OPTIONS allows (tuning and file
        // paths), never a value read from a file.
        for (k, v) in options {
            st.insert(k.clone(), json!(v));
        }
        if !retry_join.is_empty() {
            let rj: Vec<Value> = retry_join
                .iter()
                .map(|r| {
                    let RetryJoinConfig {
                        leader_api_addr,
                        leader_ca_cert_file,
                        leader_client_cert_file,
                        leader_client_key_file,
                        leader_tls_servername,
                    } = r;
                    json!({
                        "leader_api_addr": leader_api_addr,
                        "leader_ca_cert_file": path_str(leader_ca_cert_file),
                        "leader_client_cert_file": path_str(leader_client_cert_file),
                        "leader_client_key_file": path_str(leader_client_key_file),
                        "leader_tls_servername": leader_tls_servername.clone().unwrap_or_default(),
                    })
                })
                .collect();
            st.insert("retry_join".into(), Value::from(rj));
        }
        let lockouts: Map<String, Value> = user_lockout
            .iter()
            .map(|(k, c)| {
                let mut m = Map::new();
                if c.lockout_threshold > 0 {
                    m.insert("lockout_threshold".into(), json!(c.lockout_threshold));
                }
                if c.lockout_duration > 0 {
                    m.insert("lockout_duration".into(), json!(c.lockout_duration));
                }
                if c.lockout_counter_reset > 0 {
                    m.insert(
                        "lockout_counter_reset".into(),
                        json!(c.lockout_counter_reset),
                    );
                }
                m.insert("disable_lockout".into(), json!(c.lockout_disable));
                (k.clone(), Value::Object(m))
            })
            .collect();
        json!({
            "api_addr": api_addr.clone().unwrap_or_default(),
            "cluster_addr": cluster_addr.clone().unwrap_or_default(),
            "cluster_name": cluster_name.clone().unwrap_or_default(),
            "default_lease_ttl": default_lease_ttl,
            "max_lease_ttl": max_lease_ttl,
            // Arca never locks its memory (`disable_mlock` may only be
            // left out or true).
            "disable_mlock": true,
            "enable_ui": ui,
            "listeners": listeners,
            "log_format": match log_format {
                LogFormat::Standard => "standard",
                LogFormat::Json => "json",
            },
            "log_level": log_level,
            "pid_file": path_str(pid_file),
            // The type only: a seal block's options may hold the token.
            "seals": std::iter::once(json!({
                "type": seal.as_ref().map(|s| s.kind.as_str()).unwrap_or("shamir"),
                "disabled": false,
            }))
            .chain(old_seal.iter().map(|s| json!({ "type": s.kind, "disabled": true })))
            .collect::<Vec<Value>>(),
            "storage": st,
            "read_consistency": if *stale_reads { "stale" } else { "linearizable" },
            "periodic_interval": periodic_interval,
            "user_lockout": lockouts,
            "telemetry": {
                "prometheus_retention_time": telemetry.prometheus_retention_time.as_secs(),
                "disable_hostname": true,
            },
            "allow_audit_log_prefixing": allow_audit_log_prefixing,
            // Declared devices as written (no salt: the table keeps it).
            "audit": audit.iter().map(|d| json!({
                "type": d.kind,
                "path": d.path,
                "description": d.description,
                "options": d.options,
            })).collect::<Vec<Value>>(),
        })
    }
}

/// Why a configuration was refused.
#[derive(Debug)]
pub enum ConfigError {
    /// The file could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid HCL.
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// The file is HCL but not a valid configuration.
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line of the offending attribute or block, when known.
        line: Option<usize>,
        /// The offending field, e.g. `listener.tls_cert_file`.
        field: String,
        /// What is wrong.
        message: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Io { path, source } => {
                write!(f, "error reading config file {}: {source}", path.display())
            }
            ConfigError::Parse {
                path,
                line,
                column,
                message,
            } => write!(
                f,
                "{}:{line}:{column}: invalid HCL: {message}",
                path.display()
            ),
            ConfigError::Invalid {
                path,
                line,
                field,
                message,
            } => {
                write!(f, "{}", path.display())?;
                if let Some(line) = line {
                    write!(f, ":{line}")?;
                }
                write!(f, ": {field}: {message}")
            }
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Reads and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// Parses and validates configuration text; `path` is only used in errors.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let body = hcl::edit::parser::parse_body(text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        line: e.location().line(),
        column: e.location().column(),
        message: e.message().to_string(),
    })?;
    Parser { text, path }.config(&body)
}

/// Position-aware walker over the parsed body.
struct Parser<'a> {
    text: &'a str,
    path: &'a Path,
}

type R<T> = Result<T, ConfigError>;

impl Parser<'_> {
    fn line_of(&self, span: Option<std::ops::Range<usize>>) -> Option<usize> {
        span.map(|s| {
            let end = s.start.min(self.text.len());
            self.text[..end].bytes().filter(|b| *b == b'\n').count() + 1
        })
    }

    fn err(
        &self,
        span: Option<std::ops::Range<usize>>,
        field: &str,
        msg: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            line: self.line_of(span),
            field: field.to_string(),
            message: msg.into(),
        }
    }

    fn config(&self, body: &Body) -> R<Config> {
        let mut cfg = Config::default();
        let mut storage: Option<StorageConfig> = None;
        let mut listeners = Vec::new();
        let mut default_ttl: Option<(u64, Option<std::ops::Range<usize>>)> = None;
        let mut shamir_block = false;
        for structure in body.iter() {
            match structure {
                Structure::Block(block) => match block.ident.as_str() {
                    "storage" | "backend" => {
                        if storage.is_some() {
                            return Err(self.err(
                                block.span(),
                                "storage",
                                "only one storage block is allowed",
                            ));
                        }
                        storage = Some(self.storage(block)?);
                    }
                    "listener" => listeners.push(self.listener(block)?),
                    "telemetry" => cfg.telemetry = self.telemetry(block)?,
                    "user_lockout" => {
                        let (kind, c) = self.user_lockout(block)?;
                        if cfg.user_lockout.insert(kind.clone(), c).is_some() {
                            return Err(self.err(
                                block.span(),
                                "user_lockout",
                                format!("user_lockout {kind:?} is given twice"),
                            ));
                        }
                    }
                    "seal" => {
                        let (b, disabled) = self.seal(block)?;
                        let slot = if disabled {
                            &mut cfg.old_seal
                        } else {
                            &mut cfg.seal
                        };
                        if slot.is_some() || (!disabled && shamir_block) {
                            return Err(self.err(
                                block.span(),
                                "seal",
                                "at most two seal blocks: the seal in use and, during a seal migration, the old one with disabled = \"true\"",
                            ));
                        }
                        if b.kind == "shamir" {
                            shamir_block = true;
                        } else {
                            *slot = Some(b);
                        }
                    }
                    "audit" => {
                        let d = self.audit(block)?;
                        if cfg.audit.iter().any(|a| a.path == d.path) {
                            return Err(self.err(
                                block.span(),
                                "audit",
                                format!("two audit blocks have the path {:?}", d.path),
                            ));
                        }
                        cfg.audit.push(d);
                    }
                    other => {
                        return Err(self.err(
                            block.span(),
                            other,
                            format!("unknown configuration block {other:?}"),
                        ))
                    }
                },
                Structure::Attribute(attr) => {
                    let key = attr.key.as_str();
                    match key {
                        "api_addr" => cfg.api_addr = Some(self.url(attr, key)?),
                        "cluster_addr" => cfg.cluster_addr = Some(self.url(attr, key)?),
                        "log_level" => cfg.log_level = self.log_level(attr)?,
                        "default_lease_ttl" => {
                            default_ttl = Some((self.duration(attr, key)?, attr.span()))
                        }
                        "max_lease_ttl" => cfg.max_lease_ttl = self.duration(attr, key)?,
                        "periodic_interval" => {
                            let v = self.duration(attr, key)?;
                            if v == 0 {
                                return Err(self.err(
                                    attr.span(),
                                    key,
                                    "must be at least 1s".to_string(),
                                ));
                            }
                            cfg.periodic_interval = v;
                        }
                        "ui" => {
                            cfg.ui = self.boolean(attr, key)?;
                            if cfg.ui {
                                return Err(self.err(
                                    attr.span(),
                                    key,
                                    "Arca serves no web UI: remove `ui = true` (or set it to false)",
                                ));
                            }
                        }
                        "disable_mlock" => {
                            cfg.disable_mlock = self.boolean(attr, key)?;
                            if !cfg.disable_mlock {
                                return Err(self.err(
                                    attr.span(),
                                    key,
                                    "Arca does not lock its memory yet: set `disable_mlock = true` or remove the line (keep swap off or encrypted on the host)",
                                ));
                            }
                        }
                        "cluster_name" => cfg.cluster_name = Some(self.string(attr, key)?),
                        "log_format" => {
                            let v = self.string(attr, key)?;
                            cfg.log_format = match v.as_str() {
                                "standard" => LogFormat::Standard,
                                "json" => LogFormat::Json,
                                _ => {
                                    return Err(self.err(
                                        attr.span(),
                                        key,
                                        format!("must be \"standard\" or \"json\", not {v:?}"),
                                    ))
                                }
                            };
                        }
                        "pid_file" => {
                            let v = self.string(attr, key)?;
                            if v.is_empty() {
                                return Err(self.err(
                                    attr.span(),
                                    key,
                                    "must be a file path (leave pid_file out to write none)",
                                ));
                            }
                            cfg.pid_file = Some(v.into());
                        }
                        "read_consistency" => {
                            let v = self.string(attr, key)?;
                            cfg.stale_reads = match v.as_str() {
                                "linearizable" => false,
                                "stale" => true,
                                _ => {
                                    return Err(self.err(
                                        attr.span(),
                                        key,
                                        format!("must be \"linearizable\" or \"stale\", not {v:?}"),
                                    ))
                                }
                            };
                        }
                        "allow_audit_log_prefixing" => {
                            cfg.allow_audit_log_prefixing = self.boolean(attr, key)?
                        }
                        "storage" | "backend" | "listener" | "audit" => {
                            return Err(self.err(
                                attr.span(),
                                key,
                                format!("must be a block: {key} \"<type>\" {{ ... }}"),
                            ))
                        }
                        other => {
                            return Err(self.err(
                                attr.span(),
                                other,
                                format!("unknown configuration key {other:?}"),
                            ))
                        }
                    }
                }
            }
        }
        cfg.storage = storage.ok_or_else(|| {
            self.err(
                None,
                "storage",
                "a storage block is required, e.g. storage \"rocksdb\" { path = \"...\" }",
            )
        })?;
        if let (Some(old), Some(new)) = (&cfg.old_seal, &cfg.seal) {
            if old.kind == new.kind {
                return Err(self.err(
                    None,
                    "seal",
                    format!(
                        "the disabled and the active seal blocks are both {:?}: a migration goes from one seal type to another",
                        new.kind
                    ),
                ));
            }
        }
        if listeners.is_empty() {
            return Err(self.err(
                None,
                "listener",
                "at least one listener \"tcp\" { ... } block is required",
            ));
        }
        cfg.listeners = listeners;
        if let Some((ttl, span)) = default_ttl {
            cfg.default_lease_ttl = ttl;
            if ttl > cfg.max_lease_ttl {
                return Err(self.err(
                    span,
                    "default_lease_ttl",
                    format!(
                        "{} is greater than max_lease_ttl ({})",
                        duration::human(ttl),
                        duration::human(cfg.max_lease_ttl)
                    ),
                ));
            }
        } else {
            cfg.default_lease_ttl = cfg.default_lease_ttl.min(cfg.max_lease_ttl);
        }
        Ok(cfg)
    }

    fn single_label(&self, block: &Block, what: &str) -> R<String> {
        match block.labels.as_slice() {
            [label] => Ok(label.as_str().to_string()),
            _ => Err(self.err(
                block.span(),
                what,
                format!("expected exactly one label: {what} \"<type>\" {{ ... }}"),
            )),
        }
    }

    /// A listener's `telemetry { unauthenticated_metrics_access = ... }`.
    fn listener_telemetry(&self, block: &Block) -> R<bool> {
        let mut open = false;
        for structure in block.body.iter() {
            match structure {
                Structure::Attribute(attr)
                    if attr.key.as_str() == "unauthenticated_metrics_access" =>
                {
                    open =
                        self.boolean(attr, "listener.telemetry.unauthenticated_metrics_access")?
                }
                other => {
                    return Err(self.err(
                        other.span(),
                        "listener.telemetry",
                        "a listener's telemetry block takes only unauthenticated_metrics_access",
                    ))
                }
            }
        }
        Ok(open)
    }

    /// The top-level `telemetry` block.
    fn telemetry(&self, block: &Block) -> R<Telemetry> {
        let mut t = Telemetry::default();
        for structure in block.body.iter() {
            let Structure::Attribute(attr) = structure else {
                return Err(self.err(
                    structure.span(),
                    "telemetry",
                    "telemetry takes only attributes",
                ));
            };
            let key = attr.key.as_str();
            let field = format!("telemetry.{key}");
            match key {
                "prometheus_retention_time" => {
                    t.prometheus_retention_time = self.timeout(attr, &field)?
                }
                "disable_hostname" => {
                    if !self.boolean(attr, &field)? {
                        return Err(self.err(
                            attr.span(),
                            &field,
                            "Arca never puts the host name into metric names: set true or leave it out",
                        ));
                    }
                }
                "unauthenticated_metrics_access" => {
                    return Err(self.err(
                        attr.span(),
                        &field,
                        "belongs in a listener: listener \"tcp\" { telemetry { unauthenticated_metrics_access = true } }",
                    ))
                }
                other => {
                    return Err(self.err(
                        attr.span(),
                        &field,
                        format!(
                            "unknown or unsupported telemetry key {other:?} (supported: prometheus_retention_time, disable_hostname; Arca serves metrics at sys/metrics only, no statsd/statsite/circonus/dogstatsd sinks)"
                        ),
                    ))
                }
            }
        }
        Ok(t)
    }

    fn user_lockout(&self, block: &Block) -> R<(String, arca_core::lockout::UserLockoutConfig)> {
        let kind = self.single_label(block, "user_lockout")?;
        let types = arca_core::lockout::LOCKOUT_TYPES;
        if !types.contains(&kind.as_str()) {
            return Err(self.err(
                block.span(),
                "user_lockout",
                format!(
                    "unsupported auth type {kind:?} for user_lockout (supported: {})",
                    types.join(", ")
                ),
            ));
        }
        let mut c = arca_core::lockout::UserLockoutConfig::default();
        for structure in block.body.iter() {
            let Structure::Attribute(attr) = structure else {
                return Err(self.err(
                    structure.span(),
                    "user_lockout",
                    "user_lockout takes only attributes",
                ));
            };
            let key = attr.key.as_str();
            let field = format!("user_lockout.{key}");
            match key {
                "lockout_threshold" => {
                    let v = self.scalar(attr, &field)?;
                    c.lockout_threshold = v.trim().parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                        self.err(attr.span(), &field, "must be a whole number greater than zero")
                    })?;
                }
                "lockout_duration" => c.lockout_duration = self.duration(attr, &field)?,
                "lockout_counter_reset" => {
                    c.lockout_counter_reset = self.duration(attr, &field)?
                }
                "disable_lockout" => c.lockout_disable = self.boolean(attr, &field)?,
                other => {
                    return Err(self.err(
                        attr.span(),
                        &field,
                        format!(
                            "unknown user_lockout key {other:?} (lockout_threshold, lockout_duration, lockout_counter_reset, disable_lockout)"
                        ),
                    ))
                }
            }
        }
        Ok((kind, c))
    }

    /// `seal "<type>" { option = "value" ... }`: a known type, its known
    /// options only, scalar values; `disabled = true` (a seal migration)
    /// is refused until migration is supported.
    fn seal(&self, block: &Block) -> R<(SealBlock, bool)> {
        let kind = match block.labels.as_slice() {
            [t] => t.as_str().to_string(),
            _ => {
                return Err(self.err(
                    block.span(),
                    "seal",
                    "expected one type: seal \"transit\" { ... }",
                ))
            }
        };
        let Some(known) = arca_autoseal::options(&kind) else {
            return Err(self.err(
                block.span(),
                "seal",
                format!(
                    "unknown seal type {kind:?} (supported: {})",
                    arca_autoseal::SEAL_TYPES.join(", ")
                ),
            ));
        };
        let mut options = BTreeMap::new();
        let mut disabled = false;
        for structure in block.body.iter() {
            match structure {
                Structure::Attribute(attr) => {
                    let key = attr.key.as_str();
                    let field = format!("seal.{key}");
                    if !known.contains(&key) {
                        return Err(self.err(
                            attr.span(),
                            &field,
                            format!(
                                "unknown option of seal {kind:?} (known: {})",
                                known.join(", ")
                            ),
                        ));
                    }
                    if key == "disabled" {
                        disabled = self.boolean(attr, &field)?;
                        if disabled && kind == "shamir" {
                            return Err(self.err(
                                attr.span(),
                                &field,
                                "a Shamir seal cannot be disabled: to migrate from Shamir, add the new seal's block and unseal with -migrate",
                            ));
                        }
                        continue;
                    }
                    options.insert(key.to_string(), self.scalar(attr, &field)?);
                }
                Structure::Block(b) => {
                    return Err(self.err(
                        b.span(),
                        "seal",
                        format!("unexpected block {:?} in a seal block", b.ident.as_str()),
                    ))
                }
            }
        }
        Ok((SealBlock { kind, options }, disabled))
    }

    /// `audit "<type>" ["<path>"] { description = "...", options { ... } }`.
    fn audit(&self, block: &Block) -> R<arca_audit::DeviceConfig> {
        let (kind, path) = match block.labels.as_slice() {
            [t] => (t.as_str().to_string(), t.as_str().to_string()),
            [t, p] => (t.as_str().to_string(), p.as_str().to_string()),
            _ => {
                return Err(self.err(
                    block.span(),
                    "audit",
                    "expected a type and a path: audit \"<type>\" \"<path>\" { ... }",
                ))
            }
        };
        if !arca_audit::DEVICE_TYPES.contains(&kind.as_str()) {
            return Err(self.err(
                block.span(),
                "audit",
                format!(
                    "unknown audit device type {kind:?} (supported: {})",
                    arca_audit::DEVICE_TYPES.join(", ")
                ),
            ));
        }
        let trimmed = path.trim_matches('/');
        if trimmed.is_empty() {
            return Err(self.err(block.span(), "audit", "the audit device path is empty"));
        }
        let mut d = arca_audit::DeviceConfig {
            path: format!("{trimmed}/"),
            kind,
            description: String::new(),
            options: BTreeMap::new(),
            local: false,
            salt: String::new(),
        };
        let mut options_seen = false;
        for structure in block.body.iter() {
            match structure {
                Structure::Attribute(attr) => {
                    let key = attr.key.as_str();
                    let field = format!("audit.{key}");
                    match key {
                        "description" => d.description = self.string(attr, &field)?,
                        "options" => {
                            let Expression::Object(o) = &attr.value else {
                                return Err(self.err(
                                    attr.span(),
                                    &field,
                                    "must be a map of strings: options { file_path = \"...\" }",
                                ));
                            };
                            if std::mem::replace(&mut options_seen, true) {
                                return Err(self.err(attr.span(), &field, "given twice"));
                            }
                            for (k, v) in o.iter() {
                                let name = match k {
                                    hcl::edit::expr::ObjectKey::Ident(i) => i.as_str().to_string(),
                                    hcl::edit::expr::ObjectKey::Expression(Expression::String(
                                        s,
                                    )) => s.value().clone(),
                                    _ => {
                                        return Err(self.err(
                                            attr.span(),
                                            &field,
                                            "option names must be names or strings",
                                        ))
                                    }
                                };
                                let value = match v.expr() {
                                    Expression::String(s) => s.value().clone(),
                                    Expression::Number(n) => n.value().to_string(),
                                    Expression::Bool(b) => b.value().to_string(),
                                    _ => {
                                        return Err(self.err(
                                            attr.span(),
                                            &format!("{field}.{name}"),
                                            "must be a string, number or boolean",
                                        ))
                                    }
                                };
                                d.options.insert(name, value);
                            }
                        }
                        "local" => {
                            if self.boolean(attr, &field)? {
                                return Err(self.err(
                                    attr.span(),
                                    &field,
                                    "local audit devices are not available: every node has every device (remove local)",
                                ));
                            }
                        }
                        other => {
                            return Err(self.err(
                                attr.span(),
                                &field,
                                format!("unknown audit key {other:?} (description, options)"),
                            ))
                        }
                    }
                }
                Structure::Block(b) if b.ident.as_str() == "options" && b.labels.is_empty() => {
                    if std::mem::replace(&mut options_seen, true) {
                        return Err(self.err(b.span(), "audit.options", "given twice"));
                    }
                    for st in b.body.iter() {
                        let Structure::Attribute(attr) = st else {
                            return Err(self.err(
                                st.span(),
                                "audit.options",
                                "options takes only attributes (name = \"value\")",
                            ));
                        };
                        let name = attr.key.as_str().to_string();
                        let v = self.scalar(attr, &format!("audit.options.{name}"))?;
                        d.options.insert(name, v);
                    }
                }
                Structure::Block(b) => {
                    return Err(self.err(
                        b.span(),
                        &format!("audit.{}", b.ident.as_str()),
                        "unknown block in audit (options { ... } is the only one)",
                    ))
                }
            }
        }
        Ok(d)
    }

    fn storage(&self, block: &Block) -> R<StorageConfig> {
        let kind = self.single_label(block, "storage")?;
        if !STORAGE_TYPES.contains(&kind.as_str()) {
            return Err(self.err(
                block.span(),
                "storage",
                format!(
                    "unknown storage type {kind:?} (supported: {})",
                    STORAGE_TYPES.join(", ")
                ),
            ));
        }
        let mut st = StorageConfig {
            kind: kind.clone(),
            ..StorageConfig::default()
        };
        for structure in block.body.iter() {
            match structure {
                Structure::Attribute(attr) => {
                    let key = attr.key.as_str();
                    let field = format!("storage.{key}");
                    match key {
                        "path" => st.path = Some(self.string(attr, &field)?.into()),
                        "node_id" if kind == "raft" => {
                            st.node_id = Some(self.string(attr, &field)?)
                        }
                        _ if kind == "raft" && RAFT_STORAGE_OPTIONS.contains(&key) => {
                            let v = self.scalar(attr, &field)?;
                            st.options.insert(key.to_string(), v);
                        }
                        _ => {
                            let mut known = vec!["path"];
                            if kind == "raft" {
                                known.push("node_id");
                                known.extend_from_slice(RAFT_STORAGE_OPTIONS);
                                known.push("retry_join { ... }");
                            }
                            return Err(self.err(
                                attr.span(),
                                &field,
                                format!(
                                    "unknown option {key:?} for {kind} storage; Arca does not \
                                     implement it, remove it (supported: {})",
                                    known.join(", ")
                                ),
                            ));
                        }
                    }
                }
                Structure::Block(b) if b.ident.as_str() == "retry_join" => {
                    if kind != "raft" {
                        return Err(self.err(
                            b.span(),
                            "storage.retry_join",
                            format!("retry_join is only valid with raft storage, not {kind:?}"),
                        ));
                    }
                    st.retry_join.push(self.retry_join(b)?);
                }
                Structure::Block(b) => {
                    return Err(self.err(
                        b.span(),
                        &format!("storage.{}", b.ident.as_str()),
                        "unknown block in storage",
                    ))
                }
            }
        }
        if kind != "inmem" && st.path.as_ref().is_none_or(|p| p.as_os_str().is_empty()) {
            return Err(self.err(
                block.span(),
                "storage.path",
                format!("{kind} storage requires a path"),
            ));
        }
        Ok(st)
    }

    fn retry_join(&self, block: &Block) -> R<RetryJoinConfig> {
        let mut rj = RetryJoinConfig::default();
        for structure in block.body.iter() {
            let Structure::Attribute(attr) = structure else {
                return Err(self.err(
                    structure.as_block().and_then(|b| b.span()),
                    "storage.retry_join",
                    "unexpected block in retry_join",
                ));
            };
            let key = attr.key.as_str();
            let field = format!("storage.retry_join.{key}");
            match key {
                "leader_api_addr" => rj.leader_api_addr = self.url(attr, &field)?,
                "leader_ca_cert_file" => {
                    rj.leader_ca_cert_file = Some(self.string(attr, &field)?.into())
                }
                "leader_client_cert_file" => {
                    rj.leader_client_cert_file = Some(self.string(attr, &field)?.into())
                }
                "leader_client_key_file" => {
                    rj.leader_client_key_file = Some(self.string(attr, &field)?.into())
                }
                "leader_tls_servername" => {
                    rj.leader_tls_servername = Some(self.string(attr, &field)?)
                }
                _ => return Err(self.err(attr.span(), &field, "unknown retry_join key")),
            }
        }
        if rj.leader_api_addr.is_empty() {
            return Err(self.err(
                block.span(),
                "storage.retry_join.leader_api_addr",
                "required",
            ));
        }
        Ok(rj)
    }

    fn listener(&self, block: &Block) -> R<ListenerConfig> {
        let kind = self.single_label(block, "listener")?;
        if kind != "tcp" {
            return Err(self.err(
                block.span(),
                "listener",
                format!("unknown listener type {kind:?} (supported: tcp)"),
            ));
        }
        let mut l = ListenerConfig::default();
        for structure in block.body.iter() {
            let Structure::Attribute(attr) = structure else {
                let b = structure.as_block();
                if let Some(t) = b.filter(|b| b.ident.as_str() == "telemetry") {
                    l.unauthenticated_metrics_access = self.listener_telemetry(t)?;
                    continue;
                }
                return Err(self.err(
                    b.and_then(|b| b.span()),
                    &format!("listener.{}", b.map(|b| b.ident.as_str()).unwrap_or("?")),
                    "unknown block in listener",
                ));
            };
            let key = attr.key.as_str();
            let field = format!("listener.{key}");
            match key {
                "address" => l.address = self.socket_addr(attr, &field)?,
                "cluster_address" => l.cluster_address = Some(self.socket_addr(attr, &field)?),
                "tls_disable" => l.tls_disable = self.boolean(attr, &field)?,
                "tls_cert_file" => l.tls_cert_file = Some(self.string(attr, &field)?.into()),
                "tls_key_file" => l.tls_key_file = Some(self.string(attr, &field)?.into()),
                "tls_client_ca_file" => {
                    l.tls_client_ca_file = Some(self.string(attr, &field)?.into())
                }
                "tls_min_version" => l.tls_min_version = self.tls_version(attr, &field)?,
                "tls_max_version" => l.tls_max_version = self.tls_version(attr, &field)?,
                "tls_cipher_suites" => {
                    let v = self.string(attr, &field)?;
                    let mut suites = Vec::new();
                    for name in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                        arca_http::tls::cipher_suite(name)
                            .map_err(|e| self.err(attr.span(), &field, e.to_string()))?;
                        suites.push(name.to_string());
                    }
                    l.tls_cipher_suites = suites;
                }
                "http_read_header_timeout" => {
                    l.limits.read_header_timeout = self.timeout(attr, &field)?
                }
                "http_read_timeout" => l.limits.read_timeout = self.timeout(attr, &field)?,
                "http_idle_timeout" => l.limits.idle_timeout = self.timeout(attr, &field)?,
                "max_request_duration" => {
                    l.limits.max_request_duration = self.timeout(attr, &field)?
                }
                "max_connections" => {
                    let n = match &attr.value {
                        Expression::Number(n) => n.value().as_u64(),
                        Expression::String(s) => s.value().parse::<u64>().ok(),
                        _ => None,
                    };
                    l.limits.max_connections = match n {
                        Some(n) if n >= 1 => usize::try_from(n).unwrap_or(usize::MAX),
                        _ => {
                            return Err(self.err(
                                attr.span(),
                                &field,
                                "must be a whole number of connections, at least 1",
                            ))
                        }
                    };
                }
                "tls_require_and_verify_client_cert" => {
                    l.tls_require_and_verify_client_cert = self.boolean(attr, &field)?
                }
                "tls_disable_client_certs" => {
                    l.tls_disable_client_certs = self.boolean(attr, &field)?
                }
                "disable_unauthed_rekey_endpoints" => {
                    l.legacy_ceremonies.rekey = !self.boolean(attr, &field)?
                }
                "disable_unauthed_generate_root_endpoints" => {
                    l.legacy_ceremonies.generate_root = !self.boolean(attr, &field)?
                }
                _ => {
                    return Err(self.err(
                        attr.span(),
                        &field,
                        format!("unknown listener key {key:?}"),
                    ))
                }
            }
        }
        if !l.tls_disable {
            for (name, v) in [
                ("tls_cert_file", &l.tls_cert_file),
                ("tls_key_file", &l.tls_key_file),
            ] {
                if v.as_ref().is_none_or(|p| p.as_os_str().is_empty()) {
                    return Err(self.err(
                        block.span(),
                        &format!("listener.{name}"),
                        "required when TLS is enabled (set tls_disable = true to serve plain HTTP)",
                    ));
                }
            }
            if l.tls_min_version > l.tls_max_version {
                return Err(self.err(
                    block.span(),
                    "listener.tls_min_version",
                    format!(
                        "{} is above tls_max_version {}; swap them",
                        l.tls_min_version.vault_name(),
                        l.tls_max_version.vault_name()
                    ),
                ));
            }
            if l.tls_require_and_verify_client_cert && l.tls_disable_client_certs {
                return Err(self.err(
                    block.span(),
                    "listener.tls_disable_client_certs",
                    "cannot be combined with tls_require_and_verify_client_cert; keep one",
                ));
            }
            if l.tls_require_and_verify_client_cert
                && l.tls_client_ca_file
                    .as_ref()
                    .is_none_or(|p| p.as_os_str().is_empty())
            {
                return Err(self.err(
                    block.span(),
                    "listener.tls_client_ca_file",
                    "required with tls_require_and_verify_client_cert (the CA that issues \
                     client certificates)",
                ));
            }
        }
        Ok(l)
    }

    // ---- value helpers -------------------------------------------------

    fn string(&self, attr: &Attribute, field: &str) -> R<String> {
        match &attr.value {
            Expression::String(s) => Ok(s.value().clone()),
            Expression::StringTemplate(_) | Expression::HeredocTemplate(_) => Err(self.err(
                attr.span(),
                field,
                "interpolation is not supported in the configuration",
            )),
            _ => Err(self.err(attr.span(), field, "must be a string")),
        }
    }

    /// A string, number or bool, stringified.
    fn scalar(&self, attr: &Attribute, field: &str) -> R<String> {
        match &attr.value {
            Expression::Number(n) => Ok(n.value().to_string()),
            Expression::Bool(b) => Ok(b.value().to_string()),
            _ => self.string(attr, field),
        }
    }

    fn boolean(&self, attr: &Attribute, field: &str) -> R<bool> {
        let bad = || {
            self.err(
                attr.span(),
                field,
                "must be a boolean (true, false, \"true\", 1, 0)",
            )
        };
        match &attr.value {
            Expression::Bool(b) => Ok(*b.value()),
            Expression::Number(n) => match n.value().as_u64() {
                Some(1) => Ok(true),
                Some(0) => Ok(false),
                _ => Err(bad()),
            },
            Expression::String(s) => crate::flags::parse_bool(s.value()).ok_or_else(bad),
            _ => Err(bad()),
        }
    }

    fn duration(&self, attr: &Attribute, field: &str) -> R<u64> {
        let secs = match &attr.value {
            Expression::Number(n) => n.value().as_u64().ok_or_else(|| {
                self.err(
                    attr.span(),
                    field,
                    "must be a whole, non-negative number of seconds",
                )
            })?,
            Expression::String(s) => duration::parse_seconds(s.value())
                .map_err(|e| self.err(attr.span(), field, format!("bad duration: {e}")))?,
            _ => {
                return Err(self.err(
                    attr.span(),
                    field,
                    "must be a duration such as \"768h\" or a number of seconds",
                ))
            }
        };
        if secs == 0 {
            return Err(self.err(attr.span(), field, "must be greater than zero"));
        }
        Ok(secs)
    }

    fn tls_version(&self, attr: &Attribute, field: &str) -> R<TlsVersion> {
        let v = self.string(attr, field)?;
        TlsVersion::from_vault_name(&v).map_err(|e| self.err(attr.span(), field, e.to_string()))
    }

    fn timeout(&self, attr: &Attribute, field: &str) -> R<std::time::Duration> {
        self.duration(attr, field)
            .map(std::time::Duration::from_secs)
    }

    fn log_level(&self, attr: &Attribute) -> R<String> {
        let v = self.string(attr, "log_level")?.to_ascii_lowercase();
        match v.as_str() {
            "trace" | "debug" | "info" | "warn" | "error" => Ok(v),
            "warning" => Ok("warn".to_string()),
            _ => Err(self.err(
                attr.span(),
                "log_level",
                format!("unknown log level {v:?} (trace, debug, info, warn, error)"),
            )),
        }
    }

    fn url(&self, attr: &Attribute, field: &str) -> R<String> {
        let v = self.string(attr, field)?;
        let rest = v
            .strip_prefix("https://")
            .or_else(|| v.strip_prefix("http://"));
        match rest {
            Some(host) if !host.is_empty() => Ok(v),
            _ => Err(self.err(
                attr.span(),
                field,
                format!("must be a URL such as \"https://host:8200\", not {v:?}"),
            )),
        }
    }

    fn socket_addr(&self, attr: &Attribute, field: &str) -> R<String> {
        let v = self.string(attr, field)?;
        let ok = v
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if ok {
            Ok(v)
        } else {
            Err(self.err(
                attr.span(),
                field,
                format!("must be host:port, such as \"127.0.0.1:8200\", not {v:?}"),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Config {
        parse(text, Path::new("test.hcl")).unwrap_or_else(|e| panic!("{e}"))
    }

    fn bad(text: &str) -> String {
        parse(text, Path::new("test.hcl")).unwrap_err().to_string()
    }

    const PLAIN: &str = r#"
listener "tcp" {
  address = "127.0.0.1:8200"
  tls_disable = true
}
"#;

    #[test]
    fn full_rocksdb_config() {
        let cfg = ok(r#"
storage "rocksdb" {
  path = "/var/lib/arca"
}

listener "tcp" {
  address         = "0.0.0.0:8200"
  cluster_address = "0.0.0.0:8201"
  tls_cert_file   = "/etc/arca/cert.pem"
  tls_key_file    = "/etc/arca/key.pem"
}

listener "tcp" {
  address     = "127.0.0.1:8300"
  tls_disable = "true"
}

api_addr          = "https://arca-1.example:8200"
cluster_addr      = "https://arca-1.example:8201"
log_level         = "Debug"
default_lease_ttl = "1h"
max_lease_ttl     = 86400
ui                = false
disable_mlock     = true
cluster_name      = "arca"
"#);
        assert_eq!(cfg.storage.kind, "rocksdb");
        assert_eq!(cfg.storage.path, Some(PathBuf::from("/var/lib/arca")));
        assert_eq!(cfg.listeners.len(), 2);
        let l = &cfg.listeners[0];
        assert_eq!(l.address, "0.0.0.0:8200");
        assert_eq!(l.cluster_address.as_deref(), Some("0.0.0.0:8201"));
        assert!(!l.tls_disable);
        assert_eq!(l.tls_cert_file, Some(PathBuf::from("/etc/arca/cert.pem")));
        assert_eq!(l.tls_key_file, Some(PathBuf::from("/etc/arca/key.pem")));
        assert!(cfg.listeners[1].tls_disable);
        assert_eq!(cfg.api_addr.as_deref(), Some("https://arca-1.example:8200"));
        assert_eq!(
            cfg.cluster_addr.as_deref(),
            Some("https://arca-1.example:8201")
        );
        assert_eq!(cfg.log_level, "debug");
        assert_eq!(cfg.default_lease_ttl, 3600);
        assert_eq!(cfg.max_lease_ttl, 86400);
        assert!(!cfg.ui && cfg.disable_mlock);
        let e = bad(&format!("storage \"inmem\" {{}}\n{PLAIN}\nui = true"));
        assert!(e.contains("ui: Arca serves no web UI"), "{e}");
        let e = bad(&format!(
            "storage \"inmem\" {{}}\n{PLAIN}\ndisable_mlock = false"
        ));
        assert!(
            e.contains("disable_mlock: Arca does not lock its memory"),
            "{e}"
        );
        assert_eq!(cfg.cluster_name.as_deref(), Some("arca"));
    }

    #[test]
    fn defaults() {
        let cfg = ok(&format!("storage \"inmem\" {{}}\n{PLAIN}"));
        assert_eq!(cfg.storage.kind, "inmem");
        assert_eq!(cfg.storage.path, None);
        assert_eq!(cfg.log_level, "info");
        assert_eq!(cfg.default_lease_ttl, 2_764_800);
        assert_eq!(cfg.max_lease_ttl, 2_764_800);
        assert_eq!(cfg.api_addr, None);
        let cfg = ok("storage \"inmem\" {}\nlistener \"tcp\" { tls_disable = 1 }");
        assert_eq!(cfg.listeners[0].address, "127.0.0.1:8200");
        assert!(cfg.listeners[0].tls_disable);
    }

    #[test]
    fn audit_blocks() {
        let base = "storage \"inmem\" {}\nlistener \"tcp\" { tls_disable = true }\n";
        let c = ok(&format!(
            "{base}audit \"file\" \"to-file\" {{\n  description = \"d\"\n  options {{\n    file_path = \"/tmp/a.log\"\n    log_raw = false\n  }}\n}}\naudit \"socket\" {{\n  options = {{ address = \"127.0.0.1:9090\", \"socket_type\" = \"udp\" }}\n}}\nallow_audit_log_prefixing = true\n"
        ));
        assert!(c.allow_audit_log_prefixing);
        assert_eq!(c.audit.len(), 2);
        assert_eq!(c.audit[0].path, "to-file/");
        assert_eq!(c.audit[0].kind, "file");
        assert_eq!(c.audit[0].description, "d");
        assert_eq!(c.audit[0].options["file_path"], "/tmp/a.log");
        assert_eq!(c.audit[0].options["log_raw"], "false");
        assert_eq!(c.audit[1].path, "socket/");
        assert_eq!(c.audit[1].options["socket_type"], "udp");
        assert!(!ok(base).allow_audit_log_prefixing);
        for (text, want) in [
            ("audit \"http\" \"h\" {}", "unknown audit device type"),
            ("audit \"file\" \"a\" { frob = 1 }", "unknown audit key"),
            ("audit \"file\" \"a\" { local = true }", "local"),
            (
                "audit \"file\" \"a\" {}\naudit \"file\" \"a/\" {}",
                "two audit blocks",
            ),
            (
                "audit \"file\" \"a\" {\n  options {\n    x {\n    }\n  }\n}",
                "only attributes",
            ),
            ("audit \"file\" \"a\" \"b\" {}", "type and a path"),
        ] {
            let e = bad(&format!("{base}{text}\n"));
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn user_lockout_stanzas() {
        let base = "storage \"inmem\" {}\nlistener \"tcp\" { tls_disable = true }\n";
        let c = ok(&format!(
            "{base}user_lockout \"all\" {{\n  lockout_threshold = 25\n  lockout_duration = \"10m\"\n}}\nuser_lockout \"userpass\" {{\n  disable_lockout = true\n  lockout_counter_reset = 60\n}}\n"
        ));
        let all = &c.user_lockout["all"];
        assert_eq!((all.lockout_threshold, all.lockout_duration), (25, 600));
        let up = &c.user_lockout["userpass"];
        assert!(up.lockout_disable);
        assert_eq!(up.lockout_counter_reset, 60);
        let e = bad(&format!(
            "{base}user_lockout \"github\" {{ lockout_threshold = 3 }}\n"
        ));
        assert!(e.contains("unsupported auth type"), "{e}");
        let e = bad(&format!(
            "{base}user_lockout \"all\" {{ lockout_treshold = 3 }}\n"
        ));
        assert!(e.contains("unknown user_lockout key"), "{e}");
        let e = bad(&format!(
            "{base}user_lockout \"all\" {{ lockout_threshold = 0 }}\n"
        ));
        assert!(e.contains("greater than zero"), "{e}");
        let e = bad(&format!(
            "{base}user_lockout \"all\" {{}}\nuser_lockout \"all\" {{}}\n"
        ));
        assert!(e.contains("given twice"), "{e}");
    }

    #[test]
    fn read_consistency_setting() {
        let base = format!("storage \"inmem\" {{}}\n{PLAIN}");
        assert!(!ok(&base).stale_reads, "linearizable by default");
        assert!(ok(&format!("{base}\nread_consistency = \"stale\"")).stale_reads);
        assert!(!ok(&format!("{base}\nread_consistency = \"linearizable\"")).stale_reads);
        let err = parse(
            &format!("{base}\nread_consistency = \"eventual\""),
            Path::new("x.hcl"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("read_consistency") && err.contains("stale"),
            "{err}"
        );
    }

    #[test]
    fn lower_max_lowers_default() {
        let cfg = ok(&format!(
            "storage \"inmem\" {{}}\n{PLAIN}\nmax_lease_ttl = \"1h\""
        ));
        assert_eq!(cfg.max_lease_ttl, 3600);
        assert_eq!(cfg.default_lease_ttl, 3600);
    }

    #[test]
    fn raft_with_retry_join() {
        let cfg = ok(&format!(
            r#"
storage "raft" {{
  path    = "/data/raft"
  node_id = "node-1"
  performance_multiplier = 5
  retry_join {{
    leader_api_addr = "https://10.0.0.2:8200"
    leader_ca_cert_file = "/etc/ca.pem"
  }}
  retry_join {{
    leader_api_addr = "https://10.0.0.3:8200"
  }}
}}
{PLAIN}"#
        ));
        assert_eq!(cfg.storage.kind, "raft");
        assert_eq!(cfg.storage.node_id.as_deref(), Some("node-1"));
        assert_eq!(
            cfg.storage
                .options
                .get("performance_multiplier")
                .map(String::as_str),
            Some("5")
        );
        assert_eq!(cfg.storage.retry_join.len(), 2);
        assert_eq!(
            cfg.storage.retry_join[0].leader_api_addr,
            "https://10.0.0.2:8200"
        );
        assert_eq!(
            cfg.storage.retry_join[0].leader_ca_cert_file,
            Some(PathBuf::from("/etc/ca.pem"))
        );
    }

    #[test]
    fn sanitized_raft_config_shows_retry_join_paths() {
        let cfg = ok(&format!(
            r#"
storage "raft" {{
  path    = "/data/raft"
  node_id = "node-1"
  cluster_key_file = "/etc/arca/cluster.key"
  retry_join {{
    leader_api_addr = "https://10.0.0.2:8200"
    leader_client_key_file = "/etc/arca/client.key"
  }}
}}
{PLAIN}"#
        ));
        let v = cfg.sanitized();
        let st = &v["storage"];
        assert_eq!(st["type"], "raft");
        assert_eq!(st["node_id"], "node-1");
        assert_eq!(st["disable_clustering"], false);
        assert_eq!(st["cluster_key_file"], "/etc/arca/cluster.key");
        assert_eq!(
            st["retry_join"][0]["leader_client_key_file"],
            "/etc/arca/client.key"
        );
        assert_eq!(v["listeners"][0]["config"]["tls_disable"], true);
        assert!(v["listeners"][0]["config"].get("tls_key_file").is_none());
        assert_eq!(v["seals"][0]["type"], "shamir");
        assert_eq!(v["default_lease_ttl"], DEFAULT_LEASE_TTL);
    }

    #[test]
    fn unauthenticated_in_flight_access_is_refused_by_name() {
        // sys/in-flight-req is sudo-only: the listener option that would
        // open it to anyone is not taken (rather than ignored).
        let e = bad(
            "storage \"inmem\" {}\nlistener \"tcp\" {\n  tls_disable = true\n  unauthenticated_in_flight_requests_access = true\n}\n",
        );
        assert!(
            e.contains("unauthenticated_in_flight_requests_access"),
            "{e}"
        );
    }

    #[test]
    fn hcl_syntax_error_names_file_and_line() {
        let e = bad("storage \"inmem\" {}\n\nlistener \"tcp\" {\n  address = \n}\n");
        assert!(e.starts_with("test.hcl:"), "{e}");
        let line: usize = e.split(':').nth(1).unwrap().parse().unwrap();
        assert!((4..=5).contains(&line), "{e}");
    }

    #[test]
    fn unknown_storage_type() {
        let e = bad(&format!(
            "\n\nstorage \"consul\" {{ path = \"x\" }}\n{PLAIN}"
        ));
        assert!(
            e.starts_with("test.hcl:3: storage: unknown storage type \"consul\""),
            "{e}"
        );
    }

    #[test]
    fn missing_path() {
        let e = bad(&format!("storage \"rocksdb\" {{}}\n{PLAIN}"));
        assert!(
            e.contains("test.hcl:1: storage.path: rocksdb storage requires a path"),
            "{e}"
        );
    }

    #[test]
    fn tls_without_files() {
        let e =
            bad("storage \"inmem\" {}\nlistener \"tcp\" {\n  address = \"127.0.0.1:8200\"\n}\n");
        assert!(
            e.contains("test.hcl:2: listener.tls_cert_file: required"),
            "{e}"
        );
        let e = bad("storage \"inmem\" {}\nlistener \"tcp\" {\n  tls_disable = false\n  tls_cert_file = \"c.pem\"\n}\n");
        assert!(e.contains("listener.tls_key_file: required"), "{e}");
    }

    #[test]
    fn bad_duration() {
        let e = bad(&format!(
            "storage \"inmem\" {{}}\n{PLAIN}\ndefault_lease_ttl = \"10 parsecs\""
        ));
        assert!(
            e.contains("test.hcl:8: default_lease_ttl: bad duration"),
            "{e}"
        );
        let e = bad(&format!(
            "storage \"inmem\" {{}}\n{PLAIN}\nmax_lease_ttl = -5"
        ));
        assert!(e.contains("max_lease_ttl"), "{e}");
        let e = bad(&format!(
            "storage \"inmem\" {{}}\n{PLAIN}\ndefault_lease_ttl = \"48h\"\nmax_lease_ttl = \"24h\""
        ));
        assert!(
            e.contains("default_lease_ttl: 48h is greater than max_lease_ttl (24h)"),
            "{e}"
        );
    }

    #[test]
    fn seal_blocks() {
        let with = |blocks: &str| format!("storage \"inmem\" {{}}\n{PLAIN}\n{blocks}");
        let transit = "seal \"transit\" {\n  address = \"https://keys:8200\"\n  token = \"s.secret\"\n  key_name = \"k\"\n  mount_path = \"transit/\"\n}\n";
        let c = parse(&with(transit), Path::new("test.hcl")).unwrap();
        let seal = c.seal.clone().unwrap();
        assert_eq!(seal.kind, "transit");
        assert_eq!(seal.options["key_name"], "k");
        assert!(!format!("{c:?}").contains("s.secret"));
        assert_eq!(
            c.sanitized()["seals"],
            serde_json::json!([{"type": "transit", "disabled": false}])
        );
        assert!(!c.sanitized().to_string().contains("s.secret"));
        // Migrating away from transit: the old block disabled.
        let disabled = transit.replace("transit/\"\n}", "transit/\"\n  disabled = \"true\"\n}");
        let c = parse(&with(&disabled), Path::new("test.hcl")).unwrap();
        assert!(c.seal.is_none());
        assert_eq!(c.old_seal.unwrap().kind, "transit");
        let e = bad(&with(&format!("{transit}{transit}")));
        assert!(e.contains("at most two seal blocks"), "{e}");
        let e = bad(&with(&format!("{disabled}{disabled}")));
        assert!(e.contains("at most two seal blocks"), "{e}");
        let e = bad(&with("seal \"shamir\" {\n  disabled = true\n}\n"));
        assert!(e.contains("a Shamir seal cannot be disabled"), "{e}");
        let e = bad(&with("seal \"transit\" {\n  bogus = 1\n}\n"));
        assert!(
            e.contains("seal.bogus: unknown option of seal \"transit\""),
            "{e}"
        );
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = bad(&format!(
            "storage \"inmem\" {{}}\n{PLAIN}\nfrobnicate = true"
        ));
        assert!(
            e.contains("test.hcl:8: frobnicate: unknown configuration key \"frobnicate\""),
            "{e}"
        );
        let e = bad(&format!(
            "storage \"inmem\" {{}}\n{PLAIN}\nseal \"awskms\" {{}}"
        ));
        assert!(e.contains("seal: unknown seal type \"awskms\""), "{e}");
        let e = bad("storage \"inmem\" {}\nlistener \"tcp\" {\n tls_disable = true\n bogus = 1\n}");
        assert!(
            e.contains("test.hcl:4: listener.bogus: unknown listener key"),
            "{e}"
        );
    }

    #[test]
    fn structural_errors() {
        assert!(bad(PLAIN).contains("storage: a storage block is required"));
        assert!(bad("storage \"inmem\" {}").contains("listener: at least one listener"));
        assert!(bad(&format!(
            "storage \"inmem\" {{}}\nstorage \"inmem\" {{}}\n{PLAIN}"
        ))
        .contains("test.hcl:2: storage: only one storage block"));
        assert!(bad("storage \"inmem\" {}\nlistener \"unix\" {}")
            .contains("unknown listener type \"unix\""));
        assert!(bad(&format!(
            "storage \"rocksdb\" {{\n path = \"/x\"\n retry_join {{ leader_api_addr = \"https://a:8200\" }}\n}}\n{PLAIN}"
        ))
        .contains("test.hcl:3: storage.retry_join: retry_join is only valid with raft"));
        assert!(bad(&format!(
            "storage \"inmem\" {{}}\n{PLAIN}\nlog_level = \"loud\""
        ))
        .contains("log_level: unknown log level"));
        assert!(bad(&format!(
            "storage \"inmem\" {{}}\n{PLAIN}\napi_addr = \"host:8200\""
        ))
        .contains("api_addr: must be a URL"));
        assert!(bad(
            "storage \"inmem\" {}\nlistener \"tcp\" {\n address = \"nope\"\n tls_disable = true\n}"
        )
        .contains("test.hcl:3: listener.address: must be host:port"));
        assert!(
            bad("storage \"inmem\" {}\nlistener \"tcp\" {\n tls_disable = \"maybe\"\n}")
                .contains("listener.tls_disable: must be a boolean")
        );
        // The HCL parser itself refuses a repeated attribute, with its line.
        let e = bad(&format!(
            "storage \"inmem\" {{}}\n{PLAIN}\nui = true\nui = false"
        ));
        assert!(e.starts_with("test.hcl:9:1: invalid HCL:"), "{e}");
    }

    #[test]
    fn unknown_storage_options_are_refused_by_name() {
        let e = bad(&format!(
            "storage \"rocksdb\" {{\n path = \"/d\"\n max_open_files = 10\n}}\n{PLAIN}"
        ));
        assert!(
            e.contains("test.hcl:3: storage.max_open_files: unknown option \"max_open_files\" for rocksdb storage"),
            "{e}"
        );
        let e = bad(&format!(
            "storage \"raft\" {{\n path = \"/d\"\n autopilot_reconcile_interval = \"10s\"\n}}\n{PLAIN}"
        ));
        assert!(
            e.contains("storage.autopilot_reconcile_interval: unknown option")
                && e.contains("performance_multiplier"),
            "{e}"
        );
        let e = bad(&format!(
            "storage \"rocksdb\" {{\n path = \"/d\"\n node_id = \"n1\"\n}}\n{PLAIN}"
        ));
        assert!(e.contains("storage.node_id: unknown option"), "{e}");
        for opt in RAFT_STORAGE_OPTIONS {
            let cfg = ok(&format!(
                "storage \"raft\" {{\n path = \"/d\"\n {opt} = \"1\"\n}}\n{PLAIN}"
            ));
            assert!(cfg.storage.options.contains_key(*opt));
        }
    }

    /// The accepted raft options are exactly the ones `cluster.rs` reads.
    #[test]
    fn raft_storage_options_match_what_cluster_reads() {
        let src = include_str!("cluster.rs");
        let mut read = std::collections::BTreeSet::new();
        for pat in ["read_pem(opts, \"", "num(\"", "opts.get(\""] {
            for (i, _) in src.match_indices(pat) {
                let rest = &src[i + pat.len()..];
                read.insert(&rest[..rest.find('"').unwrap()]);
            }
        }
        let listed: std::collections::BTreeSet<&str> =
            RAFT_STORAGE_OPTIONS.iter().copied().collect();
        assert_eq!(read, listed, "update RAFT_STORAGE_OPTIONS with cluster.rs");
    }

    #[test]
    fn log_format_and_pid_file() {
        let base = format!("storage \"inmem\" {{}}\n{PLAIN}");
        assert_eq!(ok(&base).log_format, LogFormat::Standard);
        assert_eq!(
            ok(&format!("{base}\nlog_format = \"json\"")).log_format,
            LogFormat::Json
        );
        assert!(bad(&format!("{base}\nlog_format = \"xml\"")).contains("log_format: must be"));
        assert_eq!(
            ok(&format!("{base}\npid_file = \"/run/arca.pid\"")).pid_file,
            Some(PathBuf::from("/run/arca.pid"))
        );
        assert!(bad(&format!("{base}\npid_file = \"\"")).contains("pid_file: must be a file path"));
    }

    const TLS: &str = "tls_cert_file = \"c.pem\"\n tls_key_file = \"k.pem\"\n";

    fn listener(body: &str) -> Result<ListenerConfig, String> {
        parse(
            &format!("storage \"inmem\" {{}}\nlistener \"tcp\" {{\n {TLS} {body}\n}}"),
            Path::new("test.hcl"),
        )
        .map(|c| c.listeners[0].clone())
        .map_err(|e| e.to_string())
    }

    #[test]
    fn listener_tls_settings() {
        let l = listener("").unwrap();
        let t = l.tls_options().unwrap();
        assert_eq!(
            (t.min_version, t.max_version, t.client_auth),
            (TlsVersion::Tls12, TlsVersion::Tls13, ClientAuth::Request)
        );
        let l = listener(
            "tls_min_version = \"tls13\"\n tls_max_version = \"tls13\"\n \
             tls_cipher_suites = \"TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384\"",
        )
        .unwrap();
        assert_eq!(l.tls_min_version, TlsVersion::Tls13);
        assert_eq!(
            l.tls_cipher_suites,
            ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384"]
        );
        let l =
            listener("tls_client_ca_file = \"ca.pem\"\n tls_require_and_verify_client_cert = true")
                .unwrap();
        assert_eq!(
            l.tls_options().unwrap().client_auth,
            ClientAuth::RequireAndVerify
        );
        let l = listener("tls_disable_client_certs = true").unwrap();
        assert_eq!(l.tls_options().unwrap().client_auth, ClientAuth::Disabled);

        let e = listener("tls_min_version = \"tls10\"").unwrap_err();
        assert!(
            e.contains("listener.tls_min_version") && e.contains("tls10"),
            "{e}"
        );
        let e = listener("tls_min_version = \"tls13\"\n tls_max_version = \"tls12\"").unwrap_err();
        assert!(e.contains("above tls_max_version"), "{e}");
        let e = listener("tls_cipher_suites = \"TLS_RSA_WITH_AES_128_CBC_SHA\"").unwrap_err();
        assert!(
            e.contains("test.hcl:5: listener.tls_cipher_suites")
                && e.contains("TLS_RSA_WITH_AES_128_CBC_SHA"),
            "{e}"
        );
        let e = listener("tls_require_and_verify_client_cert = true").unwrap_err();
        assert!(e.contains("listener.tls_client_ca_file: required"), "{e}");
        let e = listener(
            "tls_client_ca_file = \"ca.pem\"\n tls_require_and_verify_client_cert = true\n \
             tls_disable_client_certs = true",
        )
        .unwrap_err();
        assert!(
            e.contains("listener.tls_disable_client_certs: cannot be combined"),
            "{e}"
        );
    }

    #[test]
    fn listener_limits() {
        let l = listener("").unwrap();
        assert_eq!(l.limits, ConnectionLimits::default());
        assert_eq!(l.limits.read_header_timeout.as_secs(), 10);
        assert_eq!(l.limits.read_timeout.as_secs(), 30);
        assert_eq!(l.limits.idle_timeout.as_secs(), 300);
        assert_eq!(l.limits.max_request_duration.as_secs(), 90);
        let l = listener(
            "http_read_header_timeout = \"1s\"\n http_read_timeout = 2\n \
             http_idle_timeout = \"1m\"\n max_request_duration = \"1h\"\n max_connections = 7",
        )
        .unwrap();
        assert_eq!(l.limits.read_header_timeout.as_secs(), 1);
        assert_eq!(l.limits.read_timeout.as_secs(), 2);
        assert_eq!(l.limits.idle_timeout.as_secs(), 60);
        assert_eq!(l.limits.max_request_duration.as_secs(), 3600);
        assert_eq!(l.limits.max_connections, 7);
        let e = listener("http_idle_timeout = \"0s\"").unwrap_err();
        assert!(
            e.contains("listener.http_idle_timeout: must be greater than zero"),
            "{e}"
        );
        let e = listener("max_connections = 0").unwrap_err();
        assert!(e.contains("listener.max_connections"), "{e}");
    }

    #[test]
    fn load_reports_missing_file() {
        let e = load(Path::new("/nonexistent/arca.hcl"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/arca.hcl"), "{e}");
    }

    #[test]
    fn load_reads_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("arca.hcl");
        std::fs::write(
            &path,
            format!("storage \"rocksdb\" {{ path = \"/d\" }}\n{PLAIN}"),
        )
        .unwrap();
        assert_eq!(load(&path).unwrap().storage.path, Some(PathBuf::from("/d")));
        std::fs::write(&path, "storage \"nope\" {}\n").unwrap();
        let e = load(&path).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}:1: storage:", path.display())),
            "{e}"
        );
    }
}
