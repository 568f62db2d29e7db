//! Rotation of the unseal key shares, authenticated as OpenBao ≥ 2.4 does it
//! (`sys/rotate/root/init|update|verify|backup`, see
//! `sys/path_rotate_keys.rs`): an operator with sudo starts a rotation with
//! the new share count and threshold, holders of the current shares each
//! submit theirs with the rotation's nonce, and the submission that reaches
//! the current threshold gets the new shares.
//!
//! Invariants:
//! - One rotation at a time, held in the active node's memory (standbys
//!   forward these paths, so every node shows the same progress). A new
//!   active node starts with none, as in Vault.
//! - Nothing changes in storage until the current shares combine into the
//!   key that opens the stored root key and, when `require_verification`
//!   is set, a threshold of the new shares has been entered back. A
//!   cancelled, wrong or abandoned rotation leaves the old shares working.
//! - The change itself is one atomic write of the root key record and the
//!   share configuration ([`arca_seal::Seal::reseal`]); the root key and
//!   so the data are untouched. Afterwards the old shares open nothing, on
//!   any node (the records are replicated).
//! - With `pgp_keys` (one base64 public key per new share) each new share
//!   is returned only encrypted to its holder (`arca_pgp`: the share's hex
//!   text in a binary OpenPGP message, shown as hex and base64), and with
//!   `backup` those messages are also kept at `core/unseal-keys-backup`
//!   (`sys/rotate/root/backup`).
//! - Under an auto seal there are no unseal key shares: `sys/rotate/root/*`
//!   then takes the recovery shares and, at the threshold, replaces the
//!   root key (`crate::root_key`) and hands out nothing, as OpenBao does;
//!   `pgp_keys`, `backup` and `require_verification` are refused there.
//! - Shares, the combined keys and the root key live only in zeroizing
//!   buffers; they are never stored, logged or audited in plaintext (the
//!   audit devices hash `keys` in the response data like any string).

use arca_sdk::LogicalError;
use arca_seal::{RootKey, SealConfig, SealError, UnsealProgress};
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use crate::core::Core;
use crate::generate_root::Quorum;

/// Which key a rotation replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyTarget {
    /// The unseal key (Shamir seals): `sys/rotate/root/*`.
    Root,
    /// The recovery key (auto seals): `sys/rotate/recovery/*`.
    Recovery,
}

impl KeyTarget {
    fn backup_path(self) -> &'static str {
        match self {
            KeyTarget::Root => BACKUP_PATH,
            KeyTarget::Recovery => RECOVERY_BACKUP_PATH,
        }
    }

    fn keys(self) -> &'static str {
        match self {
            KeyTarget::Root => "unseal key",
            KeyTarget::Recovery => "recovery key",
        }
    }
}

/// A rotation in progress.
pub(crate) struct Rotation {
    nonce: String,
    /// The new configuration.
    config: SealConfig,
    /// The new shares' holders (`pgp_keys`), one per share.
    holders: Vec<arca_pgp::HolderKey>,
    backup: bool,
    verification_required: bool,
    /// Current shares entered so far (current threshold).
    current: UnsealProgress,
    /// Set once the current shares were accepted and new shares handed out
    /// while `require_verification` holds the change back.
    verification: Option<Verification>,
    /// Under an auto seal, `sys/rotate/root/*`: the recovery shares
    /// authorize a new root key (no shares come out), as in OpenBao.
    new_root_key_only: bool,
}

struct Verification {
    nonce: String,
    new_key: Zeroizing<Vec<u8>>,
    /// The root key to store under the new unseal key (`None` for a
    /// recovery key).
    root_key: Option<RootKey>,
    /// New shares entered back so far (new threshold).
    entered: UnsealProgress,
}

/// What `sys/rotate/root/init` takes.
pub(crate) struct RotationRequest {
    pub secret_shares: usize,
    pub secret_threshold: usize,
    pub pgp_keys: Vec<String>,
    pub backup: bool,
    pub require_verification: bool,
}

fn invalid(m: impl Into<String>) -> LogicalError {
    LogicalError::invalid(m.into())
}

fn seal_error(e: SealError) -> LogicalError {
    match e {
        SealError::InvalidConfig(_)
        | SealError::InvalidKey
        | SealError::InvalidShareLength { .. }
        | SealError::Shamir(_) => invalid(e.to_string()),
        SealError::DuplicateShare | SealError::DuplicateShareIndex(_) => {
            invalid("given key has already been provided during this rotation")
        }
        other => LogicalError::internal(other.to_string()),
    }
}

/// Where the PGP-encrypted shares of the last rotation with `backup` are
/// kept (inside the barrier): `{"nonce", "keys": {fingerprint: [hex]}}`.
const BACKUP_PATH: &str = "core/unseal-keys-backup";
/// The same for recovery key rotations.
const RECOVERY_BACKUP_PATH: &str = "core/recovery-keys-backup";

/// `pgp_keys`, parsed: none, or exactly one per new share.
pub(crate) fn pgp_holders(
    keys: &[String],
    shares: usize,
) -> Result<Vec<arca_pgp::HolderKey>, LogicalError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    if keys.len() != shares {
        return Err(invalid(format!(
            "{} pgp_keys were given for {shares} shares: give one key per share",
            keys.len()
        )));
    }
    arca_pgp::parse_keys(keys).map_err(|e| invalid(format!("error parsing PGP key: {e}")))
}

/// The new shares as Vault returns them: hex and base64.
fn keys_json(shares: &[Zeroizing<Vec<u8>>]) -> (Vec<String>, Vec<String>) {
    use base64::Engine;
    shares
        .iter()
        .map(|k| {
            (
                hex::encode(k.as_slice()),
                base64::engine::general_purpose::STANDARD.encode(k.as_slice()),
            )
        })
        .unzip()
}

impl Core {
    async fn store_backup(
        &self,
        target: KeyTarget,
        nonce: &str,
        fingerprints: &[String],
        messages: &[Zeroizing<Vec<u8>>],
    ) -> Result<(), LogicalError> {
        let mut keys: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
        for (fp, m) in fingerprints.iter().zip(messages) {
            keys.entry(fp).or_default().push(hex::encode(m.as_slice()));
        }
        let st = self.unsealed()?;
        arca_sdk::storage::put_json(
            st.root_view.as_ref(),
            target.backup_path(),
            &json!({ "nonce": nonce, "keys": keys }),
        )
        .await?;
        Ok(())
    }

    /// `GET sys/rotate/root/backup`: the PGP-encrypted shares kept by the
    /// last rotation with `backup` (`None`: there are none).
    pub(crate) async fn rotation_backup(
        &self,
        target: KeyTarget,
    ) -> Result<Option<Map<String, Value>>, LogicalError> {
        use base64::Engine;
        let st = self.unsealed()?;
        let Some(v): Option<Value> =
            arca_sdk::storage::get_json(st.root_view.as_ref(), target.backup_path()).await?
        else {
            return Ok(None);
        };
        let mut b64 = Map::new();
        if let Some(keys) = v["keys"].as_object() {
            for (fp, list) in keys {
                let converted: Vec<String> = list
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|h| hex::decode(h.as_str()?).ok())
                    .map(|b| base64::engine::general_purpose::STANDARD.encode(b))
                    .collect();
                b64.insert(fp.clone(), json!(converted));
            }
        }
        let mut m = Map::new();
        m.insert("nonce".into(), v["nonce"].clone());
        m.insert("keys".into(), v["keys"].clone());
        m.insert("keys_base64".into(), Value::Object(b64));
        Ok(Some(m))
    }

    /// `DELETE sys/rotate/root/backup`.
    pub(crate) async fn rotation_backup_delete(
        &self,
        target: KeyTarget,
    ) -> Result<(), LogicalError> {
        let st = self.unsealed()?;
        st.root_view.delete(target.backup_path()).await?;
        Ok(())
    }

    /// The configuration of the key `target` rotates; an error when this
    /// seal has no such key.
    async fn current_seal_config(&self, target: KeyTarget) -> Result<SealConfig, LogicalError> {
        let cfg = self
            .seal
            .config()
            .await
            .map_err(seal_error)?
            .ok_or_else(|| invalid("Vault is not initialized"))?;
        match (target, cfg.is_auto()) {
            (KeyTarget::Root, false) => Ok(cfg),
            // The recovery shares authorize a new root key.
            (KeyTarget::Root, true) => self.quorum_config().await,
            (KeyTarget::Recovery, false) => Err(invalid(
                "recovery keys not supported: this server uses a Shamir seal, rotate its unseal keys with sys/rotate/root/*",
            )),
            (KeyTarget::Recovery, true) => self.quorum_config().await,
        }
    }

    fn rotation_slot(&self, target: KeyTarget) -> &tokio::sync::Mutex<Option<Rotation>> {
        match target {
            KeyTarget::Root => &self.rotation,
            KeyTarget::Recovery => &self.recovery_rotation,
        }
    }

    /// Installs the new key: the root key under the new unseal key, or the
    /// new recovery key.
    async fn install_rotated_key(
        &self,
        new_key: &[u8],
        root_key: Option<&RootKey>,
        config: &SealConfig,
    ) -> Result<(), LogicalError> {
        let Some(root_key) = root_key else {
            return self.set_recovery_key(new_key, config).await;
        };
        let _change = self.root_change.lock().await;
        if !self.barrier.root_key_is(root_key) {
            return Err(invalid(
                "the root key was rotated (sys/rotate/root) while this rotation was in progress; cancel it and start again",
            ));
        }
        self.seal
            .reseal(
                arca_seal::Protector::UnsealKey(new_key),
                root_key,
                config,
                None,
            )
            .await
            .map_err(seal_error)?;
        self.remember_unseal_key(new_key).await;
        Ok(())
    }

    /// `GET sys/rotate/root/init`.
    pub(crate) async fn rotation_status(
        &self,
        target: KeyTarget,
    ) -> Result<Map<String, Value>, LogicalError> {
        let current = self.current_seal_config(target).await?;
        let rot = self.rotation_slot(target).lock().await;
        Ok(status_of(rot.as_ref(), &current))
    }

    /// `PUT sys/rotate/root/init`.
    pub(crate) async fn rotation_start(
        &self,
        target: KeyTarget,
        r: RotationRequest,
    ) -> Result<Map<String, Value>, LogicalError> {
        let current = self.current_seal_config(target).await?;
        let mut rot = self.rotation_slot(target).lock().await;
        if rot.is_some() {
            return Err(invalid("rotation already in progress"));
        }
        let auto = self
            .seal
            .config()
            .await
            .map_err(seal_error)?
            .is_some_and(|c| c.is_auto());
        if target == KeyTarget::Root && auto {
            // OpenBao's rules: the seal stores the one new root key, so
            // there are no shares to hand out (the share counts do not
            // apply, whatever the CLI sends), encrypt or verify.
            if !r.pgp_keys.is_empty() {
                return Err(invalid(
                    "PGP key encryption not supported when using stored keys",
                ));
            }
            if r.backup {
                return Err(invalid("key backup not supported when using stored keys"));
            }
            if r.require_verification {
                return Err(invalid(
                    "requiring verification not supported when rotating the barrier key with recovery keys",
                ));
            }
            *rot = Some(Rotation {
                nonce: uuid::Uuid::new_v4().to_string(),
                config: SealConfig::shamir(1, 1),
                holders: Vec::new(),
                backup: false,
                verification_required: false,
                current: UnsealProgress::for_config(&current),
                verification: None,
                new_root_key_only: true,
            });
            tracing::info!("root key rotation with recovery keys started");
            return Ok(status_of(rot.as_ref(), &current));
        }
        let config = SealConfig::shamir(r.secret_shares, r.secret_threshold);
        config
            .validate()
            .map_err(|e| invalid(format!("invalid rotate seal configuration: {e}")))?;
        let holders = pgp_holders(&r.pgp_keys, r.secret_shares)?;
        if r.backup && holders.is_empty() {
            return Err(invalid(
                "backup is only available with pgp_keys (the backup keeps the PGP-encrypted shares)",
            ));
        }
        *rot = Some(Rotation {
            nonce: uuid::Uuid::new_v4().to_string(),
            config,
            holders,
            backup: r.backup,
            verification_required: r.require_verification,
            current: UnsealProgress::for_config(&current),
            verification: None,
            new_root_key_only: false,
        });
        tracing::info!(
            shares = r.secret_shares,
            threshold = r.secret_threshold,
            verification_required = r.require_verification,
            "{} rotation started",
            target.keys()
        );
        Ok(status_of(rot.as_ref(), &current))
    }

    /// `DELETE sys/rotate/root/init`: forgets the rotation and the shares
    /// entered for it; nothing stored changes.
    pub(crate) async fn rotation_cancel(&self, target: KeyTarget) {
        if self.rotation_slot(target).lock().await.take().is_some() {
            tracing::info!("{} rotation cancelled", target.keys());
        }
    }

    /// `PUT sys/rotate/root/update`: one current share.
    pub(crate) async fn rotation_update(
        &self,
        target: KeyTarget,
        key: &[u8],
        nonce: &str,
    ) -> Result<Map<String, Value>, LogicalError> {
        let current = self.current_seal_config(target).await?;
        let mut guard = self.rotation_slot(target).lock().await;
        let rot = guard
            .as_mut()
            .ok_or_else(|| invalid("no rotation in progress"))?;
        if let Some(v) = &rot.verification {
            return Err(invalid(format!(
                "rotation already finished; verification must be performed; nonce for the verification operation is {:?}",
                v.nonce
            )));
        }
        if nonce != rot.nonce {
            return Err(invalid(format!(
                "incorrect nonce supplied; nonce for rotation is {:?}",
                rot.nonce
            )));
        }
        // The share that reaches the threshold uses the shares up, whatever
        // comes of them (UnsealProgress resets itself).
        let root_key = match self
            .quorum_root_key(&mut rot.current, key, "rotation")
            .await?
        {
            None => return Ok(status_of(guard.as_ref(), &current)),
            Some(Quorum::Root(k)) => Some(k),
            Some(Quorum::Recovery) => None,
        };
        if rot.new_root_key_only {
            let nonce = rot.nonce.clone();
            *guard = None;
            self.rotate_root_key().await?;
            let mut out = Map::new();
            out.insert("complete".into(), true.into());
            out.insert("nonce".into(), nonce.into());
            out.insert("backup".into(), false.into());
            out.insert("pgp_fingerprints".into(), Value::Null);
            out.insert("keys".into(), json!([]));
            out.insert("keys_base64".into(), json!([]));
            out.insert("verification_required".into(), false.into());
            return Ok(out);
        }
        let (new_key, shares) = arca_seal::Seal::new_unseal_key(&rot.config).map_err(seal_error)?;
        let mut out = Map::new();
        let (keys, keys_b64) = if rot.holders.is_empty() {
            out.insert("pgp_fingerprints".into(), Value::Null);
            keys_json(&shares)
        } else {
            let refs: Vec<&[u8]> = shares.iter().map(|s| s.as_slice()).collect();
            let (fingerprints, messages) = arca_pgp::encrypt_shares(&refs, &rot.holders)
                .map_err(|e| LogicalError::internal(format!("failed to encrypt shares: {e}")))?;
            let messages: Vec<Zeroizing<Vec<u8>>> =
                messages.into_iter().map(Zeroizing::new).collect();
            if rot.backup {
                self.store_backup(target, &rot.nonce, &fingerprints, &messages)
                    .await?;
            }
            out.insert("pgp_fingerprints".into(), json!(fingerprints));
            keys_json(&messages)
        };
        out.insert("complete".into(), true.into());
        out.insert("nonce".into(), rot.nonce.clone().into());
        out.insert("backup".into(), rot.backup.into());
        out.insert("keys".into(), json!(keys));
        out.insert("keys_base64".into(), json!(keys_b64));
        out.insert(
            "verification_required".into(),
            rot.verification_required.into(),
        );
        if rot.verification_required {
            let v = Verification {
                nonce: uuid::Uuid::new_v4().to_string(),
                new_key,
                root_key,
                entered: UnsealProgress::for_config(&rot.config),
            };
            out.insert("verification_nonce".into(), v.nonce.clone().into());
            rot.verification = Some(v);
            tracing::info!(
                "{} rotation: new shares handed out, waiting for verification",
                target.keys()
            );
            return Ok(out);
        }
        self.install_rotated_key(&new_key, root_key.as_ref(), &rot.config)
            .await?;
        *guard = None;
        tracing::info!(
            "{} rotation complete: the old shares no longer work",
            target.keys()
        );
        Ok(out)
    }

    /// `GET sys/rotate/root/verify`.
    pub(crate) async fn rotation_verify_status(
        &self,
        target: KeyTarget,
    ) -> Result<Map<String, Value>, LogicalError> {
        let guard = self.rotation_slot(target).lock().await;
        let rot = guard
            .as_ref()
            .ok_or_else(|| invalid("no rotation in progress"))?;
        let v = rot
            .verification
            .as_ref()
            .ok_or_else(|| invalid("no rotation verification in progress"))?;
        Ok(verify_status(rot, v))
    }

    /// `DELETE sys/rotate/root/verify`: forgets the new shares entered so
    /// far and changes the verification nonce; the rotation stays.
    pub(crate) async fn rotation_verify_restart(
        &self,
        target: KeyTarget,
    ) -> Result<Map<String, Value>, LogicalError> {
        let mut guard = self.rotation_slot(target).lock().await;
        let rot = guard
            .as_mut()
            .ok_or_else(|| invalid("no rotation in progress"))?;
        let config = rot.config.clone();
        let v = rot
            .verification
            .as_mut()
            .ok_or_else(|| invalid("no rotation verification in progress"))?;
        v.entered = UnsealProgress::for_config(&config);
        v.nonce = uuid::Uuid::new_v4().to_string();
        let rot = guard.as_ref().expect("checked above");
        Ok(verify_status(
            rot,
            rot.verification.as_ref().expect("checked above"),
        ))
    }

    /// `PUT sys/rotate/root/verify`: one new share; at the threshold the new
    /// key is checked and, if it is the one handed out, installed.
    pub(crate) async fn rotation_verify(
        &self,
        target: KeyTarget,
        key: &[u8],
        nonce: &str,
    ) -> Result<Map<String, Value>, LogicalError> {
        let mut guard = self.rotation_slot(target).lock().await;
        let rot = guard
            .as_mut()
            .ok_or_else(|| invalid("no rotation in progress"))?;
        let config = rot.config.clone();
        let v = rot
            .verification
            .as_mut()
            .ok_or_else(|| invalid("no rotation verification in progress"))?;
        if nonce != v.nonce {
            return Err(invalid(format!(
                "incorrect nonce supplied; nonce for this verify operation is {:?}",
                v.nonce
            )));
        }
        let combined = match v.entered.submit(key) {
            Ok(None) => {
                let rot = guard.as_ref().expect("checked above");
                return Ok(verify_status(
                    rot,
                    rot.verification.as_ref().expect("checked above"),
                ));
            }
            Ok(Some(k)) => k,
            Err(SealError::DuplicateShare | SealError::DuplicateShareIndex(_)) => {
                return Err(invalid(
                    "given key has already been provided during this verify operation",
                ))
            }
            Err(SealError::Shamir(e)) => {
                v.nonce = uuid::Uuid::new_v4().to_string();
                return Err(invalid(format!(
                    "rotation verification failed; incorrect key shares supplied ({e}); the verification nonce is now {:?}",
                    v.nonce
                )));
            }
            Err(e) => return Err(seal_error(e)),
        };
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            combined.as_slice(),
            v.new_key.as_slice(),
        )) {
            v.nonce = uuid::Uuid::new_v4().to_string();
            tracing::warn!("{} rotation: verification failed", target.keys());
            return Err(invalid(format!(
                "rotation verification failed; incorrect key shares supplied; the verification nonce is now {:?}",
                v.nonce
            )));
        }
        self.install_rotated_key(&v.new_key, v.root_key.as_ref(), &config)
            .await?;
        let nonce = v.nonce.clone();
        *guard = None;
        tracing::info!(
            "{} rotation verified and complete: the old shares no longer work",
            target.keys()
        );
        let mut out = Map::new();
        out.insert("nonce".into(), nonce.into());
        out.insert("complete".into(), true.into());
        Ok(out)
    }
}

/// The answer of `GET sys/rotate/root/init`, with Vault's fields.
fn status_of(rot: Option<&Rotation>, current: &SealConfig) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("started".into(), false.into());
    m.insert("t".into(), 0.into());
    m.insert("n".into(), 0.into());
    m.insert("progress".into(), 0.into());
    m.insert("required".into(), current.secret_threshold.into());
    m.insert("nonce".into(), "".into());
    m.insert("pgp_fingerprints".into(), Value::Null);
    m.insert("backup".into(), false.into());
    m.insert("verification_required".into(), false.into());
    m.insert("verification_nonce".into(), "".into());
    if let Some(r) = rot {
        m.insert("started".into(), true.into());
        m.insert("nonce".into(), r.nonce.clone().into());
        m.insert("t".into(), r.config.secret_threshold.into());
        m.insert("n".into(), r.config.secret_shares.into());
        m.insert("progress".into(), r.current.progress().into());
        m.insert("backup".into(), r.backup.into());
        if !r.holders.is_empty() {
            m.insert(
                "pgp_fingerprints".into(),
                json!(r
                    .holders
                    .iter()
                    .map(|h| h.fingerprint())
                    .collect::<Vec<_>>()),
            );
        }
        m.insert(
            "verification_required".into(),
            r.verification_required.into(),
        );
        if let Some(v) = &r.verification {
            m.insert("verification_nonce".into(), v.nonce.clone().into());
        }
    }
    m
}

fn verify_status(rot: &Rotation, v: &Verification) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("nonce".into(), v.nonce.clone().into());
    m.insert("started".into(), true.into());
    m.insert("t".into(), rot.config.secret_threshold.into());
    m.insert("n".into(), rot.config.secret_shares.into());
    m.insert("progress".into(), v.entered.progress().into());
    m
}
