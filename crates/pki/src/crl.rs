//! CRLs: a small replicated header per issuer, built and signed by each node.
//!
//! Replicated records (under the mount's barrier view):
//! - `revoked/<serial>`: a revocation, with the per-issuer sequence number
//!   (`seq`) it was given;
//! - `revlog/<issuer>/<seq>`: which serial changed at that sequence number
//!   (revoked, or removed by tidy);
//! - `crlstate/<issuer>`: the header — the last sequence number, the one
//!   the complete CRL covers (`base_seq`), CRL numbers and times.
//!
//! A revocation writes those three small records in one atomic batch, so
//! its cost does not grow with the number of revoked certificates. No CRL
//! bytes are replicated: every node keeps an in-memory index of each
//! issuer's revocations, catches it up by reading the log records written
//! since it last looked (a full scan when records were pruned or the header
//! went backwards, e.g. after a snapshot restore), and signs the CRL the
//! header describes, keeping it until the header changes. Two nodes with the
//! same header serve CRLs with the same number, times and entries; CRLs and
//! OCSP are therefore answered by every node from local state, leader or no
//! leader.
//!
//! Complete CRL: revocations with `seq <= base_seq`. Delta CRL: those with
//! `base_seq < seq`, marked with the complete CRL's number. With
//! `auto_rebuild` off (Vault's default) every revocation moves `base_seq`
//! to itself, so the complete CRL lists it at once. With `auto_rebuild` on,
//! the complete CRL moves on `crl/rotate` or when the active node's
//! periodic work finds it within `auto_rebuild_grace_period` of expiry;
//! delta CRLs (`enable_delta`) carry what came since. CRL numbers of
//! complete and delta CRLs come from one counter, as RFC 5280 asks.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use arca_sdk::storage::json_op;
use arca_sdk::{LogicalError, Storage, StorageOp};

use crate::backend::Pki;
use crate::model::{self, IssuerEntry, Revocation};
use crate::path_tidy::CrlConfig;
use crate::x509;

/// `crlstate/<issuer>`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CrlState {
    /// Last revocation-log sequence number of this issuer.
    pub seq: u64,
    /// The complete CRL lists revocations up to this sequence number.
    pub base_seq: u64,
    /// Last CRL number handed out (complete and delta share it).
    pub last_number: u64,
    pub number: u64,
    pub this_update: i64,
    pub next_update: i64,
    pub delta_number: u64,
    pub delta_this_update: i64,
}

/// `revlog/<issuer>/<seq>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogRecord {
    pub serial: String,
    /// Tidy removed the revocation.
    #[serde(default)]
    pub removed: bool,
}

pub fn state_key(issuer: &str) -> String {
    format!("crlstate/{issuer}")
}

pub fn log_key(issuer: &str, seq: u64) -> String {
    format!("revlog/{issuer}/{seq:020}")
}

pub async fn load_state(s: &dyn Storage, issuer: &str) -> Result<CrlState, LogicalError> {
    Ok(model::get(s, &state_key(issuer)).await?.unwrap_or_default())
}

impl CrlState {
    /// Moves the complete CRL up to the latest revocation, with a new number
    /// and lifetime; a delta CRL restarts empty.
    pub fn rotate(&mut self, now: i64, cfg: &CrlConfig) {
        self.base_seq = self.seq;
        self.last_number += 1;
        self.number = self.last_number;
        self.this_update = now;
        self.next_update = now + cfg.expiry as i64;
        self.rotate_delta(now);
    }

    pub fn rotate_delta(&mut self, now: i64) {
        self.last_number += 1;
        self.delta_number = self.last_number;
        self.delta_this_update = now;
    }

    /// A change at a new sequence number (revocation or removal).
    pub fn record(&mut self, now: i64, cfg: &CrlConfig) -> u64 {
        self.seq += 1;
        if cfg.auto_rebuild {
            self.rotate_delta(now);
        } else {
            self.rotate(now, cfg);
        }
        self.seq
    }

    /// Should the periodic work rebuild the complete CRL now?
    pub fn due(&self, now: i64, cfg: &CrlConfig) -> bool {
        self.number == 0 || now + cfg.auto_rebuild_grace_period as i64 >= self.next_update
    }
}

/// The records that revoke (or un-list) `serial`, and the new header: one
/// atomic batch for the caller to write together with its own records.
pub async fn change_ops(
    s: &dyn Storage,
    issuer: &str,
    serial: &str,
    removed: bool,
    cfg: &CrlConfig,
) -> Result<(u64, Vec<StorageOp>), LogicalError> {
    let mut st = load_state(s, issuer).await?;
    let seq = st.record(chrono::Utc::now().timestamp(), cfg);
    let ops = vec![
        json_op(
            &log_key(issuer, seq),
            &LogRecord {
                serial: serial.to_string(),
                removed,
            },
        )?,
        json_op(&state_key(issuer), &st)?,
    ];
    Ok((seq, ops))
}

/// Node-local view of one issuer's revocations and its last signed CRLs.
#[derive(Default)]
pub struct IssuerIndex {
    /// Log position the index reflects; `None` until first loaded.
    seq: Option<u64>,
    /// serial bytes → (revocation time, sequence number).
    entries: HashMap<Vec<u8>, (i64, u64)>,
    complete: Option<(CrlKey, Arc<Vec<u8>>)>,
    delta: Option<(CrlKey, Arc<Vec<u8>>)>,
}

/// What a signed CRL was built from: same key, same content.
#[derive(Clone, PartialEq, Eq)]
struct CrlKey {
    number: u64,
    this_update: i64,
    next_update: i64,
    covers: (u64, u64),
    disabled: bool,
    freshest: Vec<String>,
}

/// The engine's CRL caches, one index per issuer.
#[derive(Default)]
pub struct CrlCache {
    issuers: tokio::sync::Mutex<HashMap<String, IssuerIndex>>,
}

impl CrlCache {
    /// Storage was reset (snapshot restore): rebuild indexes from scratch.
    pub async fn clear(&self) {
        self.issuers.lock().await.clear();
    }

    /// Revocation time of `serial` (bytes) as the local index knows it, after
    /// catching up with the header. `None`: not revoked.
    pub async fn revoked_at(
        &self,
        s: &dyn Storage,
        issuer: &str,
        serial: &[u8],
    ) -> Result<Option<i64>, LogicalError> {
        let st = load_state(s, issuer).await?;
        let mut all = self.issuers.lock().await;
        let idx = all.entry(issuer.to_string()).or_default();
        catch_up(s, issuer, idx, &st).await?;
        Ok(idx.entries.get(serial).map(|(t, _)| *t))
    }
}

fn serial_bytes(s: &str) -> Result<Vec<u8>, LogicalError> {
    hex::decode(s.replace(':', ""))
        .map_err(|_| LogicalError::internal(format!("bad stored serial {s}")))
}

async fn full_scan(
    s: &dyn Storage,
    issuer: &str,
    idx: &mut IssuerIndex,
    st: &CrlState,
) -> Result<(), LogicalError> {
    idx.entries.clear();
    for serial in s.list("revoked/").await? {
        if let Some(r) = model::get::<Revocation>(s, &format!("revoked/{serial}")).await? {
            if r.issuer_id == issuer {
                idx.entries
                    .insert(serial_bytes(&r.serial_number)?, (r.revocation_time, r.seq));
            }
        }
    }
    idx.seq = Some(st.seq);
    Ok(())
}

/// Brings the index up to the header's sequence number.
async fn catch_up(
    s: &dyn Storage,
    issuer: &str,
    idx: &mut IssuerIndex,
    st: &CrlState,
) -> Result<(), LogicalError> {
    let from = match idx.seq {
        Some(seq) if seq <= st.seq => seq,
        _ => return full_scan(s, issuer, idx, st).await,
    };
    for seq in from + 1..=st.seq {
        let Some(rec) = model::get::<LogRecord>(s, &log_key(issuer, seq)).await? else {
            // Pruned by tidy: read everything once.
            return full_scan(s, issuer, idx, st).await;
        };
        let bytes = serial_bytes(&rec.serial)?;
        if rec.removed {
            idx.entries.remove(&bytes);
            continue;
        }
        match model::get::<Revocation>(s, &format!("revoked/{}", rec.serial)).await? {
            Some(r) => {
                idx.entries.insert(bytes, (r.revocation_time, r.seq));
            }
            None => {
                idx.entries.remove(&bytes);
            }
        }
    }
    idx.seq = Some(st.seq);
    Ok(())
}

impl Pki {
    /// The issuer's CRL (complete, or delta when `delta`), signed by this
    /// node from replicated state.
    pub(crate) async fn crl_der(
        &self,
        s: &dyn Storage,
        issuer: &IssuerEntry,
        delta: bool,
    ) -> Result<Arc<Vec<u8>>, LogicalError> {
        let cfg = crate::path_tidy::crl_config(s).await?;
        let mut st = load_state(s, &issuer.id).await?;
        if st.number == 0 {
            // No header stored yet (a standby reading before the active node
            // wrote one): describe a first CRL from now.
            st.rotate(chrono::Utc::now().timestamp(), &cfg);
        }
        let urls: model::UrlsConfig = model::get(s, "config/urls").await?.unwrap_or_default();
        let freshest = if cfg.enable_delta && !delta {
            urls.delta_crl_distribution_points
        } else {
            vec![]
        };
        let key = if delta {
            CrlKey {
                number: st.delta_number,
                this_update: st.delta_this_update,
                next_update: st.delta_this_update + cfg.expiry as i64,
                covers: (st.base_seq, st.seq),
                disabled: cfg.disable,
                freshest: freshest.clone(),
            }
        } else {
            CrlKey {
                number: st.number,
                this_update: st.this_update,
                next_update: st.next_update.max(st.this_update + 1),
                covers: (0, st.base_seq),
                disabled: cfg.disable,
                freshest: freshest.clone(),
            }
        };
        let mut all = self.crls.issuers.lock().await;
        let idx = all.entry(issuer.id.clone()).or_default();
        let slot = if delta { &idx.delta } else { &idx.complete };
        if let Some((k, der)) = slot {
            if *k == key {
                return Ok(der.clone());
            }
        }
        // Time to build and sign a CRL that was not cached (`sys/metrics`).
        let _timer = arca_sdk::metrics::timer(
            "vault.secret.pki.crl_build",
            &[("delta", if delta { "true" } else { "false" })],
        );
        catch_up(s, &issuer.id, idx, &st).await?;
        let mut revoked: Vec<(Vec<u8>, i64)> = if cfg.disable {
            vec![]
        } else {
            idx.entries
                .iter()
                .filter(|(_, (_, seq))| {
                    if delta {
                        *seq > key.covers.0 && *seq <= key.covers.1
                    } else {
                        *seq <= key.covers.1
                    }
                })
                .map(|(s, (t, _))| (s.clone(), *t))
                .collect()
        };
        revoked.sort();
        let facts = x509::IssuerFacts::from_der(&crate::crypto::pem_to_der(&issuer.certificate)?)?;
        let signing_key = model::issuer_key(s, issuer).await?;
        let der = x509::sign_crl(
            &facts,
            &signing_key,
            &x509::CrlSpec {
                number: key.number,
                base_number: delta.then_some(st.number),
                this_update: key.this_update,
                next_update: key.next_update,
                revoked: &revoked,
                freshest: &freshest,
            },
        )?;
        let der = Arc::new(der);
        let slot = if delta {
            &mut idx.delta
        } else {
            &mut idx.complete
        };
        *slot = Some((key, der.clone()));
        Ok(der)
    }

    /// Starts (or restarts) an issuer's CRL numbering: a new complete CRL.
    pub(crate) async fn rotate_crl_of(
        &self,
        s: &dyn Storage,
        issuer_id: &str,
        delta_only: bool,
    ) -> Result<(), LogicalError> {
        let cfg = crate::path_tidy::crl_config(s).await?;
        let mut st = load_state(s, issuer_id).await?;
        let now = chrono::Utc::now().timestamp();
        if delta_only {
            st.rotate_delta(now);
        } else {
            st.rotate(now, &cfg);
        }
        model::put(s, &state_key(issuer_id), &st).await
    }

    /// Periodic work: with `auto_rebuild`, a complete CRL near its expiry is
    /// rebuilt (the delta restarts from it).
    pub(crate) async fn crl_periodic(&self, s: &dyn Storage) -> Result<(), LogicalError> {
        let cfg = crate::path_tidy::crl_config(s).await?;
        if !cfg.auto_rebuild {
            return Ok(());
        }
        let now = chrono::Utc::now().timestamp();
        let _g = self.ca_lock.lock().await;
        for id in s.list("issuer/").await? {
            if load_state(s, &id).await?.due(now, &cfg) {
                self.rotate_crl_of(s, &id, false).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synchronous_mode_lists_each_revocation_in_the_complete_crl() {
        let cfg = CrlConfig::default();
        let mut st = CrlState::default();
        st.rotate(100, &cfg);
        assert_eq!((st.number, st.delta_number), (1, 2));
        let seq = st.record(200, &cfg);
        assert_eq!(seq, 1);
        assert_eq!(st.base_seq, 1, "the complete CRL covers the revocation");
        assert!(st.number > 2 && st.delta_number > st.number);
        assert_eq!(st.this_update, 200);
    }

    #[test]
    fn auto_rebuild_moves_only_the_delta_until_due() {
        let cfg = CrlConfig {
            auto_rebuild: true,
            enable_delta: true,
            ..Default::default()
        };
        let mut st = CrlState::default();
        st.rotate(0, &cfg);
        let number = st.number;
        st.record(10, &cfg);
        st.record(20, &cfg);
        assert_eq!((st.seq, st.base_seq, st.number), (2, 0, number));
        assert_eq!(st.delta_this_update, 20);
        assert!(!st.due(30, &cfg));
        let near_expiry = st.next_update - cfg.auto_rebuild_grace_period as i64;
        assert!(st.due(near_expiry, &cfg));
        st.rotate(near_expiry, &cfg);
        assert_eq!(st.base_seq, 2);
        assert!(st.number > number);
    }
}
