//! The keyring: the AES-256-GCM data keys by term, the path key, and the root
//! key that encrypts the keyring itself.
//!
//! Invariants:
//! - Terms start at 1 and only grow; the active term is the highest one and
//!   every other term is kept so that older values still decrypt.
//! - Every key lives in zeroizing storage; the serialized record (which holds
//!   the keys in base64) is wiped after use. AES round keys are wiped on drop
//!   (`aes/zeroize`); the GHASH subkey that `aes-gcm` derives is not.
//! - A value is `VERSION ‖ term (u32 BE) ‖ nonce (12 random bytes) ‖
//!   ciphertext ‖ tag`, and the AES-GCM associated data is the value's logical
//!   path. The keyring record uses the same layout with term 0 under the root
//!   key and the associated data [`KEYRING_PATH`].
//! - Random 96-bit nonces are safe for about 2³² encryptions per key: the
//!   barrier counts encryptions per term across the cluster (`usage.rs`) and
//!   rotates before the keyring's [`RotationConfig`] budget is spent. A
//!   term's record holds its final count once it is retired; the active
//!   term's count there is only a floor taken when the record was written.

use std::collections::BTreeMap;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use aes_gcm_siv::Aes256GcmSiv;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chrono::{DateTime, Utc};
use rand::rngs::OsRng;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::usage::RotationConfig;
use crate::{BarrierError, KeyStatus, RootKey};

/// Physical key of the encrypted keyring.
pub const KEYRING_PATH: &str = "core/keyring";
/// Physical key of the current root key encrypted under the active term's
/// data key, written with every root key rotation.
pub const ROOT_UPGRADE_PATH: &str = "core/keyring-root";

/// First byte of every encrypted value.
pub(crate) const VALUE_VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;
const TAG_LEN: usize = 16;
const RECORD_VERSION: u32 = 1;

type Key = Zeroizing<[u8; 32]>;

fn random_key() -> Key {
    let mut k = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(k.as_mut());
    k
}

/// Seals `plaintext` with AES-256-GCM under `cipher`, tagging it with `term`.
pub(crate) fn seal_value(cipher: &Aes256Gcm, term: u32, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    let ct = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .expect("AES-GCM encryption cannot fail for inputs below 64 GiB");
    let mut out = Vec::with_capacity(HEADER_LEN + ct.len());
    out.push(VALUE_VERSION);
    out.extend_from_slice(&term.to_be_bytes());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

/// Splits an encrypted value into its term and checks the framing.
pub(crate) fn value_term(value: &[u8]) -> Result<u32, String> {
    if value.len() < HEADER_LEN + TAG_LEN {
        return Err(format!("value too short ({} bytes)", value.len()));
    }
    if value[0] != VALUE_VERSION {
        return Err(format!("unknown value version {}", value[0]));
    }
    Ok(u32::from_be_bytes(value[1..5].try_into().expect("4 bytes")))
}

/// Opens a value produced by [`seal_value`]; `Err` when authentication fails.
pub(crate) fn open_value(
    cipher: &Aes256Gcm,
    aad: &[u8],
    value: &[u8],
) -> Result<Zeroizing<Vec<u8>>, ()> {
    let nonce = Nonce::from_slice(&value[5..HEADER_LEN]);
    cipher
        .decrypt(
            nonce,
            Payload {
                msg: &value[HEADER_LEN..],
                aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| ())
}

/// One data-encryption key.
struct TermKey {
    cipher: Aes256Gcm,
    key: Key,
    install_time: DateTime<Utc>,
    /// Encryptions recorded when the keyring was last persisted: final for
    /// a retired term, a floor for the active one.
    persisted_encryptions: u64,
}

/// The unsealed keyring. Dropping it wipes every key.
pub(crate) struct Keyring {
    root_key: RootKey,
    terms: BTreeMap<u32, TermKey>,
    active: u32,
    path_key: Key,
    path_cipher: Aes256GcmSiv,
    /// When to rotate automatically (replicated with the keyring).
    rotation: RotationConfig,
}

/// The serialized keyring (before encryption under the root key).
#[derive(Serialize, Deserialize)]
struct KeyringRecord {
    version: u32,
    active_term: u32,
    /// base64 of the 32-byte path key.
    path_key: String,
    terms: Vec<TermRecord>,
    /// Absent in records written before automatic rotation: the defaults.
    #[serde(default)]
    rotation: RotationConfig,
}

#[derive(Serialize, Deserialize)]
struct TermRecord {
    term: u32,
    /// base64 of the 32-byte AES-256-GCM key.
    key: String,
    install_time: DateTime<Utc>,
    encryptions: u64,
}

impl Drop for KeyringRecord {
    fn drop(&mut self) {
        self.path_key.zeroize();
        for t in &mut self.terms {
            t.key.zeroize();
        }
    }
}

fn decode_key(b64: &str, what: &str) -> Result<Key, String> {
    let bytes = Zeroizing::new(
        STANDARD
            .decode(b64)
            .map_err(|e| format!("{what} is not base64: {e}"))?,
    );
    let mut k = Zeroizing::new([0u8; 32]);
    if bytes.len() != 32 {
        return Err(format!("{what} has {} bytes, want 32", bytes.len()));
    }
    k.copy_from_slice(&bytes);
    Ok(k)
}

impl TermKey {
    fn new(key: Key, install_time: DateTime<Utc>, persisted_encryptions: u64) -> Self {
        TermKey {
            cipher: Aes256Gcm::new_from_slice(key.as_ref()).expect("32-byte key"),
            key,
            install_time,
            persisted_encryptions,
        }
    }
}

impl Keyring {
    /// A fresh keyring: term 1 and a new path key.
    pub(crate) fn generate(root_key: RootKey) -> Self {
        let mut terms = BTreeMap::new();
        terms.insert(1, TermKey::new(random_key(), Utc::now(), 0));
        Self::assemble(root_key, terms, 1, random_key(), RotationConfig::default())
    }

    fn assemble(
        root_key: RootKey,
        terms: BTreeMap<u32, TermKey>,
        active: u32,
        path_key: Key,
        rotation: RotationConfig,
    ) -> Self {
        Keyring {
            root_key,
            terms,
            active,
            path_cipher: Aes256GcmSiv::new_from_slice(path_key.as_ref()).expect("32-byte key"),
            path_key,
            rotation,
        }
    }

    /// The same keys, the active term's count recorded as `active_count`.
    fn copy_terms(&self, active_count: u64) -> BTreeMap<u32, TermKey> {
        self.terms
            .iter()
            .map(|(&t, k)| {
                let count = if t == self.active {
                    active_count
                } else {
                    k.persisted_encryptions
                };
                (t, TermKey::new(k.key.clone(), k.install_time, count))
            })
            .collect()
    }

    /// A copy with one more term, which becomes active; `final_count` is
    /// recorded as the retired term's number of encryptions.
    pub(crate) fn rotated(&self, final_count: u64) -> Self {
        let mut terms = self.copy_terms(final_count);
        let next = self.active + 1;
        terms.insert(next, TermKey::new(random_key(), Utc::now(), 0));
        Self::assemble(
            self.root_key.clone(),
            terms,
            next,
            self.path_key.clone(),
            self.rotation,
        )
    }

    /// A copy under another root key (the same terms, path key and
    /// settings); `active_count` is recorded as the active term's count.
    pub(crate) fn with_root_key(&self, root_key: RootKey, active_count: u64) -> Self {
        Self::assemble(
            root_key,
            self.copy_terms(active_count),
            self.active,
            self.path_key.clone(),
            self.rotation,
        )
    }

    /// The root key encrypted under the active term's data key, for
    /// [`ROOT_UPGRADE_PATH`]: a node that holds the keyring but not yet the
    /// new root key reads it there.
    pub(crate) fn root_upgrade_record(&self) -> Vec<u8> {
        seal_value(
            &self.terms[&self.active].cipher,
            self.active,
            ROOT_UPGRADE_PATH.as_bytes(),
            self.root_key.as_bytes(),
        )
    }

    /// Opens a [`ROOT_UPGRADE_PATH`] record with this keyring's terms.
    pub(crate) fn open_root_upgrade(&self, record: &[u8]) -> Result<RootKey, BarrierError> {
        let corrupt = |reason: String| BarrierError::Corrupt {
            key: ROOT_UPGRADE_PATH.to_string(),
            reason,
        };
        let term = value_term(record).map_err(corrupt)?;
        let k = self
            .terms
            .get(&term)
            .ok_or_else(|| corrupt(format!("unknown term {term}")))?;
        let pt = open_value(&k.cipher, ROOT_UPGRADE_PATH.as_bytes(), record)
            .map_err(|()| corrupt("message authentication failed".into()))?;
        RootKey::from_bytes(&pt)
    }

    /// A 32-byte key for `purpose` that does not change when the root key
    /// is rotated: HMAC-SHA256(path key, purpose).
    pub(crate) fn derive_stable(&self, purpose: &str) -> Zeroizing<[u8; 32]> {
        use hmac::Mac;
        let mut m = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(self.path_key.as_ref())
            .expect("HMAC takes any key length");
        m.update(b"arca stable derivation\0");
        m.update(purpose.as_bytes());
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(&m.finalize().into_bytes());
        out
    }

    /// A copy with another rotation configuration; `active_count` is
    /// recorded as the active term's count so far (a floor).
    pub(crate) fn with_rotation(&self, rotation: RotationConfig, active_count: u64) -> Self {
        Self::assemble(
            self.root_key.clone(),
            self.copy_terms(active_count),
            self.active,
            self.path_key.clone(),
            rotation,
        )
    }

    pub(crate) fn rotation(&self) -> RotationConfig {
        self.rotation
    }

    pub(crate) fn active_term(&self) -> u32 {
        self.active
    }

    /// The active term's count as the record had it: a floor.
    pub(crate) fn active_floor(&self) -> u64 {
        self.terms[&self.active].persisted_encryptions
    }

    pub(crate) fn active_install_time(&self) -> DateTime<Utc> {
        self.terms[&self.active].install_time
    }

    pub(crate) fn root_key(&self) -> &RootKey {
        &self.root_key
    }

    pub(crate) fn path_cipher(&self) -> &Aes256GcmSiv {
        &self.path_cipher
    }

    /// The active term's status, with `encryptions` counted by the caller.
    pub(crate) fn status(&self, encryptions: u64) -> KeyStatus {
        KeyStatus {
            term: self.active,
            install_time: self.terms[&self.active].install_time,
            encryptions,
        }
    }

    pub(crate) fn has_term(&self, term: u32) -> bool {
        self.terms.contains_key(&term)
    }

    /// Encrypts a value under the active term. The caller has counted it
    /// (`Barrier::charge`).
    pub(crate) fn encrypt(&self, logical_path: &str, plaintext: &[u8]) -> Vec<u8> {
        let key = &self.terms[&self.active];
        seal_value(&key.cipher, self.active, logical_path.as_bytes(), plaintext)
    }

    /// Decrypts a value written under any known term.
    pub(crate) fn decrypt(
        &self,
        logical_path: &str,
        value: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, BarrierError> {
        let corrupt = |reason: String| BarrierError::Corrupt {
            key: logical_path.to_string(),
            reason,
        };
        let term = value_term(value).map_err(corrupt)?;
        let key = self
            .terms
            .get(&term)
            .ok_or_else(|| corrupt(format!("no key for term {term}")))?;
        open_value(&key.cipher, logical_path.as_bytes(), value)
            .map_err(|()| corrupt("message authentication failed".into()))
    }

    /// The keyring encrypted under the root key, ready for [`KEYRING_PATH`].
    pub(crate) fn to_sealed_record(&self) -> Vec<u8> {
        let record = KeyringRecord {
            version: RECORD_VERSION,
            active_term: self.active,
            path_key: STANDARD.encode(self.path_key.as_ref()),
            terms: self
                .terms
                .iter()
                .map(|(&term, k)| TermRecord {
                    term,
                    key: STANDARD.encode(k.key.as_ref()),
                    install_time: k.install_time,
                    encryptions: k.persisted_encryptions,
                })
                .collect(),
            rotation: self.rotation,
        };
        // Reserve generously up front: a growing Vec would leave freed,
        // unwiped copies of the keys behind each reallocation.
        let mut json = Zeroizing::new(Vec::with_capacity(1024 + 512 * record.terms.len()));
        serde_json::to_writer(&mut *json, &record).expect("keyring serializes");
        let cipher = Aes256Gcm::new_from_slice(self.root_key.as_bytes()).expect("32-byte key");
        seal_value(&cipher, 0, KEYRING_PATH.as_bytes(), &json)
    }

    /// Decrypts and parses a keyring record. A record that does not
    /// authenticate under `root_key` gives [`BarrierError::InvalidKey`].
    pub(crate) fn from_sealed_record(
        root_key: RootKey,
        sealed: &[u8],
    ) -> Result<Self, BarrierError> {
        let corrupt = |reason: String| BarrierError::Corrupt {
            key: KEYRING_PATH.to_string(),
            reason,
        };
        value_term(sealed).map_err(corrupt)?;
        let cipher = Aes256Gcm::new_from_slice(root_key.as_bytes()).expect("32-byte key");
        let json = open_value(&cipher, KEYRING_PATH.as_bytes(), sealed)
            .map_err(|()| BarrierError::InvalidKey)?;
        let record: KeyringRecord =
            serde_json::from_slice(&json).map_err(|e| corrupt(e.to_string()))?;
        if record.version != RECORD_VERSION {
            return Err(corrupt(format!(
                "unknown keyring version {}",
                record.version
            )));
        }
        let mut terms = BTreeMap::new();
        for t in &record.terms {
            let key = decode_key(&t.key, &format!("key of term {}", t.term)).map_err(corrupt)?;
            if t.term == 0
                || terms
                    .insert(t.term, TermKey::new(key, t.install_time, t.encryptions))
                    .is_some()
            {
                return Err(corrupt(format!("invalid or repeated term {}", t.term)));
            }
        }
        if terms.keys().next_back() != Some(&record.active_term) {
            return Err(corrupt(format!(
                "active term {} is not the highest term",
                record.active_term
            )));
        }
        let path_key = decode_key(&record.path_key, "path key").map_err(corrupt)?;
        Ok(Self::assemble(
            root_key,
            terms,
            record.active_term,
            path_key,
            record.rotation,
        ))
    }
}

/// Encodes ciphertext bytes for use in a physical key segment.
pub(crate) fn encode_segment(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn decode_segment(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips_under_the_root_key_only() {
        let root = RootKey::generate();
        let kr = Keyring::generate(root.clone());
        let v = kr.encrypt("some/path", b"hello");
        let sealed = kr.to_sealed_record();
        assert_eq!(sealed[0], VALUE_VERSION);
        assert_eq!(&sealed[1..5], &[0, 0, 0, 0], "the record carries term 0");

        let again = Keyring::from_sealed_record(root, &sealed).unwrap();
        assert_eq!(again.status(0).term, 1);
        assert_eq!(again.rotation(), RotationConfig::default());
        assert_eq!(again.decrypt("some/path", &v).unwrap().as_slice(), b"hello");

        assert!(matches!(
            Keyring::from_sealed_record(RootKey::generate(), &sealed),
            Err(BarrierError::InvalidKey)
        ));
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(matches!(
            Keyring::from_sealed_record(kr.root_key().clone(), &tampered),
            Err(BarrierError::InvalidKey)
        ));
        assert!(matches!(
            Keyring::from_sealed_record(kr.root_key().clone(), &sealed[..10]),
            Err(BarrierError::Corrupt { .. })
        ));
    }

    #[test]
    fn value_layout_and_authentication() {
        let kr = Keyring::generate(RootKey::generate());
        let v = kr.encrypt("a/b", b"secret value");
        assert_eq!(v[0], VALUE_VERSION);
        assert_eq!(&v[1..5], &1u32.to_be_bytes());
        assert_eq!(v.len(), 1 + 4 + 12 + b"secret value".len() + 16);
        // Same plaintext twice: different nonces, different ciphertexts.
        assert_ne!(kr.encrypt("a/b", b"secret value"), v);
        // The path is the associated data.
        let err = kr.decrypt("a/c", &v).unwrap_err();
        assert!(
            matches!(err, BarrierError::Corrupt { ref key, .. } if key == "a/c"),
            "{err:?}"
        );
        let mut bad_term = v.clone();
        bad_term[4] = 9;
        assert!(kr
            .decrypt("a/b", &bad_term)
            .unwrap_err()
            .to_string()
            .contains("no key for term 9"));
        let mut bad_version = v.clone();
        bad_version[0] = 7;
        assert!(kr.decrypt("a/b", &bad_version).is_err());
    }

    #[test]
    fn rotation_keeps_old_terms_and_counts() {
        let kr = Keyring::generate(RootKey::generate());
        let old = kr.encrypt("k", b"v1");
        let kr2 = kr.rotated(1);
        assert_eq!(kr2.status(0).term, 2);
        assert_eq!(kr2.active_floor(), 0);
        assert_eq!(kr2.decrypt("k", &old).unwrap().as_slice(), b"v1");
        let new = kr2.encrypt("k", b"v2");
        assert_eq!(&new[1..5], &2u32.to_be_bytes());
        let cfg = RotationConfig {
            max_operations: 5_000_000,
            interval: 86_400,
            enabled: false,
        };
        let kr3 = kr2.with_rotation(cfg, 7);
        let reloaded =
            Keyring::from_sealed_record(kr3.root_key().clone(), &kr3.to_sealed_record()).unwrap();
        assert_eq!(reloaded.terms[&1].persisted_encryptions, 1);
        assert_eq!(reloaded.active_term(), 2);
        assert_eq!(reloaded.active_floor(), 7);
        assert_eq!(reloaded.rotation(), cfg);
        assert_eq!(reloaded.decrypt("k", &old).unwrap().as_slice(), b"v1");
        assert_eq!(reloaded.decrypt("k", &new).unwrap().as_slice(), b"v2");
    }

    #[test]
    fn records_without_a_rotation_config_get_the_defaults() {
        // A keyring written before automatic rotation existed.
        let root = RootKey::generate();
        let kr = Keyring::generate(root.clone());
        let json = format!(
            r#"{{"version":1,"active_term":1,"path_key":"{}","terms":[{{"term":1,"key":"{}","install_time":"2024-01-01T00:00:00Z","encryptions":0}}]}}"#,
            STANDARD.encode(kr.path_key.as_ref()),
            STANDARD.encode(kr.terms[&1].key.as_ref()),
        );
        let cipher = Aes256Gcm::new_from_slice(root.as_bytes()).unwrap();
        let sealed = seal_value(&cipher, 0, KEYRING_PATH.as_bytes(), json.as_bytes());
        let old = Keyring::from_sealed_record(root, &sealed).unwrap();
        assert_eq!(old.rotation(), RotationConfig::default());
        assert!(old.rotation().enabled);
        assert_eq!(
            old.rotation().max_operations,
            RotationConfig::MAX_OPERATIONS
        );
    }
}
