//! `config/crl`, `tidy`, `tidy-status`, `tidy-cancel` and `config/auto-tidy`.
//!
//! Tidy removes stored certificates that expired more than `safety_buffer`
//! ago (`tidy_cert_store`) and revocations of such certificates
//! (`tidy_revoked_certs`), then re-signs the affected CRLs. It runs within
//! the request on the active node (a standby forwards it) and records what
//! it did for `tidy-status`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use arca_sdk::{Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, Response};

use crate::backend::Pki;
use arca_sdk::StorageOp;

use crate::model::{self, CertEntry, Revocation};

/// `config/crl`, Vault's fields and defaults.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct CrlConfig {
    pub expiry: u64,
    pub disable: bool,
    pub ocsp_disable: bool,
    /// How long an OCSP answer is valid (its nextUpdate); 0: no nextUpdate.
    pub ocsp_expiry: u64,
    pub auto_rebuild: bool,
    pub auto_rebuild_grace_period: u64,
    pub enable_delta: bool,
    pub delta_rebuild_interval: u64,
}

impl Default for CrlConfig {
    fn default() -> Self {
        CrlConfig {
            expiry: 72 * 3600,
            disable: false,
            ocsp_disable: false,
            ocsp_expiry: 12 * 3600,
            auto_rebuild: false,
            auto_rebuild_grace_period: 12 * 3600,
            enable_delta: false,
            delta_rebuild_interval: 15 * 60,
        }
    }
}

pub(crate) async fn crl_config(s: &dyn arca_sdk::Storage) -> Result<CrlConfig, LogicalError> {
    Ok(model::get(s, "config/crl").await?.unwrap_or_default())
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AutoTidy {
    pub enabled: bool,
    pub interval_duration: u64,
    pub tidy_cert_store: bool,
    pub tidy_revoked_certs: bool,
    pub safety_buffer: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct TidyStatus {
    state: String,
    time_started: Option<String>,
    time_finished: Option<String>,
    /// When tidy last finished (Vault reports the mount's start when it
    /// never ran); `bao pki health-check` parses it.
    #[serde(default)]
    last_auto_tidy_finished: String,
    cert_store_deleted_count: u64,
    revoked_cert_deleted_count: u64,
    tidy_cert_store: bool,
    tidy_revoked_certs: bool,
    safety_buffer: u64,
    error: Option<String>,
}

fn duration_string(secs: u64) -> String {
    match secs {
        0 => "0s".into(),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

impl Pki {
    async fn read_crl_config(&self, c: Ctx<'_>) -> HandlerResult {
        let cfg = crl_config(c.storage).await?;
        let mut m = object(serde_json::to_value(&cfg).unwrap_or_default());
        // Durations read back as Vault shows them ("72h", "15m").
        for (k, v) in [
            ("expiry", cfg.expiry),
            ("ocsp_expiry", cfg.ocsp_expiry),
            ("auto_rebuild_grace_period", cfg.auto_rebuild_grace_period),
            ("delta_rebuild_interval", cfg.delta_rebuild_interval),
        ] {
            m.insert(k.into(), Value::from(duration_string(v)));
        }
        Ok(Some(Response::data(m)))
    }

    async fn write_crl_config(&self, c: Ctx<'_>) -> HandlerResult {
        let d = &c.data;
        let mut cfg = crl_config(c.storage).await?;
        if let Some(v) = d.get_duration("expiry")? {
            if v == 0 {
                return Err(LogicalError::invalid("expiry must be a positive duration"));
            }
            cfg.expiry = v;
        }
        macro_rules! b {
            ($f:ident) => {
                if let Some(v) = d.get_bool(stringify!($f))? {
                    cfg.$f = v;
                }
            };
        }
        b!(disable);
        b!(ocsp_disable);
        b!(auto_rebuild);
        b!(enable_delta);
        if let Some(v) = d.get_duration("ocsp_expiry")? {
            cfg.ocsp_expiry = v;
        }
        if let Some(v) = d.get_duration("auto_rebuild_grace_period")? {
            cfg.auto_rebuild_grace_period = v;
        }
        if let Some(v) = d.get_duration("delta_rebuild_interval")? {
            cfg.delta_rebuild_interval = v;
        }
        if cfg.enable_delta && !cfg.auto_rebuild {
            return Err(LogicalError::invalid(
                "delta CRLs require auto_rebuild to be enabled",
            ));
        }
        model::put(c.storage, "config/crl", &cfg).await?;
        // The next CRL follows the new settings.
        let _g = self.ca_lock.lock().await;
        for id in c.storage.list("issuer/").await? {
            self.rotate_crl_of(c.storage, &id, false).await?;
        }
        Ok(None)
    }

    async fn tidy(&self, c: Ctx<'_>) -> HandlerResult {
        let d = &c.data;
        let tidy_certs = d.bool_or("tidy_cert_store", false)?;
        let tidy_revoked = d.bool_or("tidy_revoked_certs", false)?;
        let buffer = d.get_duration("safety_buffer")?.unwrap_or(72 * 3600);
        if !tidy_certs && !tidy_revoked {
            return Err(LogicalError::invalid(
                "at least one tidy operation must be enabled (tidy_cert_store, tidy_revoked_certs)",
            ));
        }
        self.run_tidy(c.storage, tidy_certs, tidy_revoked, buffer)
            .await?;
        let mut r = Response::default();
        r.warnings
            .push("Tidy operation successfully started. Any information from the operation will be printed to the server logs.".into());
        r.status = Some(202);
        Ok(Some(r))
    }

    /// One tidy pass (request or schedule), recorded for `tidy-status`.
    pub(crate) async fn run_tidy(
        &self,
        s: &dyn arca_sdk::Storage,
        tidy_certs: bool,
        tidy_revoked: bool,
        buffer: u64,
    ) -> Result<(), LogicalError> {
        let started = chrono::Utc::now();
        let cutoff = started.timestamp() - buffer as i64;
        let mut status = TidyStatus {
            state: "Running".into(),
            time_started: Some(started.to_rfc3339()),
            tidy_cert_store: tidy_certs,
            tidy_revoked_certs: tidy_revoked,
            safety_buffer: buffer,
            ..Default::default()
        };
        let _g = self.ca_lock.lock().await;
        if tidy_certs {
            for serial in s.list("certs/").await? {
                let key = format!("certs/{serial}");
                if let Some(e) = model::get::<CertEntry>(s, &key).await? {
                    if e.not_after < cutoff {
                        s.delete(&key).await?;
                        status.cert_store_deleted_count += 1;
                    }
                }
            }
        }
        if tidy_revoked {
            let cfg = crl_config(s).await?;
            for serial in s.list("revoked/").await? {
                let key = format!("revoked/{serial}");
                if let Some(r) = model::get::<Revocation>(s, &key).await? {
                    if r.not_after < cutoff {
                        // The revocation, its log record and a removal
                        // record that takes it off every node's CRL.
                        let (_, mut ops) =
                            crate::crl::change_ops(s, &r.issuer_id, &serial, true, &cfg).await?;
                        ops.push(StorageOp::Delete(key));
                        if r.seq > 0 {
                            ops.push(StorageOp::Delete(crate::crl::log_key(&r.issuer_id, r.seq)));
                        }
                        s.batch(ops).await?;
                        status.revoked_cert_deleted_count += 1;
                    }
                }
            }
        }
        status.state = "Finished".into();
        let finished = chrono::Utc::now().to_rfc3339();
        status.time_finished = Some(finished.clone());
        status.last_auto_tidy_finished = finished;
        model::put(s, "tidy/status", &status).await?;
        Ok(())
    }

    /// Periodic work: a scheduled tidy when `config/auto-tidy` is enabled
    /// and its interval has passed since the last tidy finished.
    pub(crate) async fn auto_tidy_periodic(
        &self,
        s: &dyn arca_sdk::Storage,
    ) -> Result<(), LogicalError> {
        let Some(a) = model::get::<AutoTidy>(s, "config/auto-tidy").await? else {
            return Ok(());
        };
        if !a.enabled || !(a.tidy_cert_store || a.tidy_revoked_certs) {
            return Ok(());
        }
        let last: Option<TidyStatus> = model::get(s, "tidy/status").await?;
        let last = last
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t.last_auto_tidy_finished).ok())
            .map(|t| t.timestamp())
            .unwrap_or(0);
        if chrono::Utc::now().timestamp() < last + a.interval_duration as i64 {
            return Ok(());
        }
        self.run_tidy(s, a.tidy_cert_store, a.tidy_revoked_certs, a.safety_buffer)
            .await
    }

    async fn tidy_status(&self, c: Ctx<'_>) -> HandlerResult {
        let s: TidyStatus = model::get(c.storage, "tidy/status")
            .await?
            .unwrap_or(TidyStatus {
                state: "Inactive".into(),
                ..Default::default()
            });
        Ok(Some(Response::data(object(
            serde_json::to_value(&s).unwrap_or_default(),
        ))))
    }

    async fn tidy_cancel(&self, c: Ctx<'_>) -> HandlerResult {
        // Tidy runs within its request: there is never one to cancel.
        self.tidy_status(c).await
    }

    async fn read_auto_tidy(&self, c: Ctx<'_>) -> HandlerResult {
        let a: AutoTidy = model::get(c.storage, "config/auto-tidy")
            .await?
            .unwrap_or(AutoTidy {
                interval_duration: 12 * 3600,
                safety_buffer: 72 * 3600,
                ..Default::default()
            });
        Ok(Some(Response::data(object(
            serde_json::to_value(&a).unwrap_or_default(),
        ))))
    }

    async fn write_auto_tidy(&self, c: Ctx<'_>) -> HandlerResult {
        let d = &c.data;
        let mut a: AutoTidy =
            model::get(c.storage, "config/auto-tidy")
                .await?
                .unwrap_or(AutoTidy {
                    interval_duration: 12 * 3600,
                    safety_buffer: 72 * 3600,
                    ..Default::default()
                });
        if let Some(v) = d.get_bool("enabled")? {
            a.enabled = v;
        }
        if let Some(v) = d.get_bool("tidy_cert_store")? {
            a.tidy_cert_store = v;
        }
        if let Some(v) = d.get_bool("tidy_revoked_certs")? {
            a.tidy_revoked_certs = v;
        }
        if let Some(v) = d.get_duration("interval_duration")? {
            a.interval_duration = v;
        }
        if let Some(v) = d.get_duration("safety_buffer")? {
            a.safety_buffer = v;
        }
        model::put(c.storage, "config/auto-tidy", &a).await?;
        Ok(Some(Response::data(object(
            serde_json::to_value(&a).unwrap_or_default(),
        ))))
    }
}

pub(super) fn paths() -> Vec<Path<Pki>> {
    use FieldType::*;
    vec![
        Path::new("config/crl")
            .field(Field::new("expiry", Duration, "How long a CRL is valid (default 72h)."))
            .field(Field::new("disable", Bool, "Publish an empty CRL."))
            .field(Field::new("ocsp_disable", Bool, "Disable the OCSP responder."))
            .field(Field::new("ocsp_expiry", Duration, "Lifetime of OCSP answers (default 12h; 0: none)."))
            .field(Field::new("auto_rebuild", Bool, "Rebuild CRLs in the background."))
            .field(Field::new("auto_rebuild_grace_period", Duration, "Rebuild this long before expiry."))
            .field(Field::new("enable_delta", Bool, "Publish delta CRLs (needs auto_rebuild)."))
            .field(Field::new("delta_rebuild_interval", Duration, "How often delta CRLs are rebuilt."))
            .op(Operation::Read, |b: &Pki, c| Box::pin(b.read_crl_config(c)))
            .op(Operation::Update, |b: &Pki, c| Box::pin(b.write_crl_config(c)))
            .help("CRL settings: lifetime, disabling, rebuild behaviour."),
        Path::new("tidy")
            .field(Field::new("tidy_cert_store", Bool, "Remove expired certificates."))
            .field(Field::new("tidy_revoked_certs", Bool, "Remove revocations of expired certificates."))
            .field(Field::new("safety_buffer", Duration, "Keep what expired less than this ago (default 72h)."))
            .op(Operation::Update, |b: &Pki, c| Box::pin(b.tidy(c)))
            .help("Remove expired certificates and revocations."),
        Path::new("tidy-status")
            .op(Operation::Read, |b: &Pki, c| Box::pin(b.tidy_status(c)))
            .help("What the last tidy did."),
        Path::new("tidy-cancel")
            .op(Operation::Update, |b: &Pki, c| Box::pin(b.tidy_cancel(c)))
            .help("Cancel a running tidy (tidy runs within its request, so there is none)."),
        Path::new("config/auto-tidy")
            .field(Field::new("enabled", Bool, "Run tidy periodically."))
            .field(Field::new("interval_duration", Duration, "How often (default 12h)."))
            .field(Field::new("tidy_cert_store", Bool, "Remove expired certificates."))
            .field(Field::new("tidy_revoked_certs", Bool, "Remove revocations of expired certificates."))
            .field(Field::new("safety_buffer", Duration, "Keep what expired less than this ago."))
            .op(Operation::Read, |b: &Pki, c| Box::pin(b.read_auto_tidy(c)))
            .op(Operation::Update, |b: &Pki, c| Box::pin(b.write_auto_tidy(c)))
            .help("Automatic tidy settings (stored; the periodic runner comes with leader-only jobs)."),
    ]
}
