//! Generating a new root token from a quorum of unseal key shares, the
//! authenticated way OpenBao 2.7's `bao operator generate-root` drives it
//! (`sys/generate-root-token/attempt|update`, `sys/decode-token`; see
//! `sys/path_generate_root.rs`).
//!
//! An attempt is started with a one-time password (given, or generated
//! here and returned once); holders enter their shares with the attempt's
//! nonce; the share that reaches the threshold gets the new root token,
//! encoded as base64 (no padding) of `token XOR otp`, which only the holder
//! of the OTP can decode.
//!
//! Invariants:
//! - One attempt at a time, in the active node's memory (standbys forward
//!   these paths).
//! - A root token is created only after the shares combine into the key
//!   that opens the stored root key; wrong shares create nothing.
//! - The OTP is returned only by the call that generated it; the plaintext
//!   token is never returned, stored, logged or audited (only its encoded
//!   form is returned).
//! - With `pgp_key` instead of an OTP, the token is returned encrypted to
//!   that key (`arca_pgp`; base64 of a binary OpenPGP message whose
//!   plaintext is the token, `base64 -d | gpg -d` shows it).

use arca_sdk::LogicalError;
use arca_seal::{RootKey, SealConfig, SealError, UnsealProgress};
use base64::Engine;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::core::Core;

/// The length of a root token (`hvs.` + 24 characters): the OTP's length.
pub(crate) const OTP_LENGTH: usize = 28;

/// A root token generation in progress.
pub(crate) struct RootGeneration {
    nonce: String,
    protect: Protect,
    shares: UnsealProgress,
}

/// How the new token is handed out.
enum Protect {
    Otp(Zeroizing<String>),
    Pgp(Box<arca_pgp::HolderKey>),
}

impl Protect {
    fn fingerprint(&self) -> String {
        match self {
            Protect::Otp(_) => String::new(),
            Protect::Pgp(k) => k.fingerprint(),
        }
    }
}

fn invalid(m: impl Into<String>) -> LogicalError {
    LogicalError::invalid(m.into())
}

/// `token XOR otp`, base64 without padding (OpenBao's encoding).
pub(crate) fn encode_token(token: &str, otp: &str) -> Result<String, LogicalError> {
    if token.len() != otp.len() {
        return Err(LogicalError::internal(
            "the one-time password and the token differ in length",
        ));
    }
    let x = Zeroizing::new(
        token
            .bytes()
            .zip(otp.bytes())
            .map(|(a, b)| a ^ b)
            .collect::<Vec<u8>>(),
    );
    Ok(base64::engine::general_purpose::STANDARD_NO_PAD.encode(x.as_slice()))
}

/// The inverse of [`encode_token`] (`sys/decode-token`, the CLI's
/// `-decode`).
pub fn decode_token(encoded: &str, otp: &str) -> Result<Zeroizing<String>, LogicalError> {
    let bytes = Zeroizing::new(
        base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(encoded.trim().trim_end_matches('='))
            .map_err(|e| invalid(format!("error decoding base64'd token: {e}")))?,
    );
    if bytes.len() != otp.len() {
        return Err(invalid(
            "the one-time password and the encoded token differ in length",
        ));
    }
    let plain: Vec<u8> = bytes.iter().zip(otp.bytes()).map(|(a, b)| a ^ b).collect();
    String::from_utf8(plain)
        .map(Zeroizing::new)
        .map_err(|_| invalid("the one-time password does not decode this token"))
}

/// A random one-time password of `len` base62 characters (the server's
/// and the CLI's `-generate-otp`).
pub fn new_otp(len: usize) -> Zeroizing<String> {
    use rand::Rng;
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rngs::OsRng;
    Zeroizing::new(
        (0..len)
            .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
            .collect(),
    )
}

/// What a quorum of shares proved.
pub(crate) enum Quorum {
    /// Under a Shamir seal: the root key the unseal key opened.
    Root(RootKey),
    /// Under an auto seal: the recovery key matched.
    Recovery,
}

impl Core {
    /// The share configuration a quorum is proved with: the unseal key's
    /// under a Shamir seal, the recovery key's under an auto seal.
    pub(crate) async fn quorum_config(&self) -> Result<SealConfig, LogicalError> {
        let cfg = self
            .seal
            .config()
            .await
            .map_err(|e| LogicalError::internal(e.to_string()))?
            .ok_or_else(|| invalid("Vault is not initialized"))?;
        if !cfg.is_auto() {
            return Ok(cfg);
        }
        match self
            .seal
            .recovery_config()
            .await
            .map_err(|e| LogicalError::internal(e.to_string()))?
        {
            Some(r) if r.secret_shares > 0 => Ok(r),
            _ => Err(invalid(
                "this server was initialized without recovery keys (recovery_shares = 0): no quorum of operators can be proved",
            )),
        }
    }

    /// Enters one share into `progress`; once the threshold is reached,
    /// what the shares proved (`None` before): the root key they open
    /// under a Shamir seal, the recovery key under an auto seal. Shared by
    /// key rotation and root token generation: both prove a quorum this
    /// way.
    pub(crate) async fn quorum_root_key(
        &self,
        progress: &mut UnsealProgress,
        share: &[u8],
        already: &str,
    ) -> Result<Option<Quorum>, LogicalError> {
        let combined = match progress.submit(share) {
            Ok(None) => return Ok(None),
            Ok(Some(k)) => k,
            Err(SealError::DuplicateShare | SealError::DuplicateShareIndex(_)) => {
                return Err(invalid(format!(
                    "given key has already been provided during this {already}"
                )))
            }
            Err(e @ (SealError::InvalidShareLength { .. } | SealError::Shamir(_))) => {
                return Err(invalid(e.to_string()))
            }
            Err(e) => return Err(LogicalError::internal(e.to_string())),
        };
        let auto = self
            .seal
            .config()
            .await
            .map_err(|e| LogicalError::internal(e.to_string()))?
            .is_some_and(|c| c.is_auto());
        if auto {
            if self.verify_recovery_key(&combined).await? {
                return Ok(Some(Quorum::Recovery));
            }
            tracing::warn!(
                "{already}: the entered recovery key shares do not combine into the recovery key"
            );
            return Err(invalid(format!(
                "recovery key verification failed: the key shares entered do not combine into the recovery key; the {already} goes on, enter the shares again"
            )));
        }
        match self.seal.recover_root_key(&combined).await {
            Ok(k) => Ok(Some(Quorum::Root(k))),
            Err(SealError::InvalidKey) => {
                tracing::warn!("{already}: the entered key shares do not open the root key");
                Err(invalid(format!(
                    "root key verification failed: the key shares entered do not combine into the unseal key; the {already} goes on, enter the shares again"
                )))
            }
            Err(e) => Err(LogicalError::internal(e.to_string())),
        }
    }

    /// `GET sys/generate-root-token/attempt` (and the answers of the other
    /// calls; `otp` only from the call that generated it).
    pub(crate) async fn root_generation_status(
        &self,
        otp: Option<&str>,
    ) -> Result<Map<String, Value>, LogicalError> {
        let cfg = self.quorum_config().await?;
        let g = self.root_generation.lock().await;
        let mut m = Map::new();
        m.insert("started".into(), g.is_some().into());
        m.insert("complete".into(), false.into());
        m.insert(
            "progress".into(),
            g.as_ref().map(|g| g.shares.progress()).unwrap_or(0).into(),
        );
        m.insert("required".into(), cfg.secret_threshold.into());
        m.insert("otp".into(), otp.unwrap_or("").into());
        m.insert("otp_length".into(), OTP_LENGTH.into());
        m.insert(
            "nonce".into(),
            g.as_ref()
                .map(|g| g.nonce.clone())
                .unwrap_or_default()
                .into(),
        );
        m.insert(
            "pgp_fingerprint".into(),
            g.as_ref()
                .map(|g| g.protect.fingerprint())
                .unwrap_or_default()
                .into(),
        );
        m.insert("encoded_token".into(), "".into());
        Ok(m)
    }

    /// `PUT sys/generate-root-token/attempt`.
    pub(crate) async fn root_generation_start(
        &self,
        otp: &str,
        pgp_key: &str,
    ) -> Result<Map<String, Value>, LogicalError> {
        if !pgp_key.is_empty() && !otp.is_empty() {
            return Err(invalid("give either otp or pgp_key, not both"));
        }
        let cfg = self.quorum_config().await?;
        let (protect, generated) = if !pgp_key.is_empty() {
            let key = arca_pgp::HolderKey::parse(pgp_key)
                .map_err(|e| invalid(format!("error parsing PGP key: {e}")))?;
            (Protect::Pgp(Box::new(key)), None)
        } else if otp.is_empty() {
            let otp = new_otp(OTP_LENGTH);
            (Protect::Otp(otp.clone()), Some(otp))
        } else if otp.len() != OTP_LENGTH {
            return Err(invalid(format!(
                "OTP string has incorrect length: it must be {OTP_LENGTH} characters"
            )));
        } else {
            (Protect::Otp(Zeroizing::new(otp.to_string())), None)
        };
        {
            let mut g = self.root_generation.lock().await;
            if g.is_some() {
                return Err(invalid("root generation already in progress"));
            }
            *g = Some(RootGeneration {
                nonce: uuid::Uuid::new_v4().to_string(),
                protect,
                shares: UnsealProgress::for_config(&cfg),
            });
        }
        tracing::info!("root token generation started");
        self.root_generation_status(generated.as_ref().map(|o| o.as_str()))
            .await
    }

    /// `DELETE sys/generate-root-token/attempt`.
    pub(crate) async fn root_generation_cancel(&self) {
        if self.root_generation.lock().await.take().is_some() {
            tracing::info!("root token generation cancelled");
        }
    }

    /// `PUT sys/generate-root-token/update`: one share.
    pub(crate) async fn root_generation_update(
        &self,
        share: &[u8],
        nonce: &str,
    ) -> Result<Map<String, Value>, LogicalError> {
        let mut guard = self.root_generation.lock().await;
        let g = guard
            .as_mut()
            .ok_or_else(|| invalid("no root generation in progress"))?;
        if nonce != g.nonce {
            return Err(invalid(format!(
                "incorrect nonce supplied; nonce for this root generation operation is {:?}",
                g.nonce
            )));
        }
        let required = g.shares.threshold();
        let progress = g.shares.progress() + 1;
        let nonce = g.nonce.clone();
        let mut m = Map::new();
        m.insert("started".into(), true.into());
        m.insert("required".into(), required.into());
        m.insert("nonce".into(), nonce.into());
        m.insert("pgp_fingerprint".into(), g.protect.fingerprint().into());
        let Some(_proof) = self
            .quorum_root_key(&mut g.shares, share, "root generation")
            .await?
        else {
            m.insert("complete".into(), false.into());
            m.insert("progress".into(), progress.into());
            m.insert("encoded_token".into(), "".into());
            return Ok(m);
        };
        let token = Zeroizing::new(self.create_root_token(None).await?);
        let encoded = match &g.protect {
            Protect::Otp(otp) => encode_token(&token, otp),
            Protect::Pgp(key) => key
                .encrypt(token.as_bytes())
                .map(|m| base64::engine::general_purpose::STANDARD.encode(m))
                .map_err(|e| {
                    LogicalError::internal(format!("encrypting the root token failed: {e}"))
                }),
        };
        let encoded = match encoded {
            Ok(e) => e,
            Err(e) => {
                // Nobody could ever use it: it must not stay.
                self.revoke_token_tree(&crate::tokens::hash_token(&token))
                    .await?;
                return Err(e);
            }
        };
        *guard = None;
        tracing::info!("root token generation complete: a new root token was created");
        m.insert("complete".into(), true.into());
        m.insert("progress".into(), required.into());
        m.insert("encoded_token".into(), encoded.into());
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips_and_needs_the_otp() {
        let token = "hvs.abcdefghijklmnopqrstuvwx";
        assert_eq!(token.len(), OTP_LENGTH);
        let otp = new_otp(OTP_LENGTH);
        assert_eq!(otp.len(), OTP_LENGTH);
        let enc = encode_token(token, &otp).unwrap();
        assert!(!enc.contains('='));
        assert_ne!(enc, token);
        assert_eq!(decode_token(&enc, &otp).unwrap().as_str(), token);
        let other = new_otp(OTP_LENGTH);
        assert_ne!(
            decode_token(&enc, &other).ok().map(|t| t.to_string()),
            Some(token.to_string())
        );
        assert!(decode_token(&enc, "short").is_err());
        assert!(decode_token("not base64!", &otp).is_err());
        // Known answer: "ab" XOR "AB" = [0x20, 0x20] → "ICA".
        assert_eq!(encode_token("ab", "AB").unwrap(), "ICA");
    }
}
