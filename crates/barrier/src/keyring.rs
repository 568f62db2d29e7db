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
//! - Random 96-bit nonces are safe for about 2³² encryptions per key; the
//!   encryption count of the active term is reported so that rotation can be
//!   scheduled long before that.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

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

use crate::{BarrierError, KeyStatus, RootKey};

/// Physical key of the encrypted keyring.
pub const KEYRING_PATH: &str = "core/keyring";

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
    /// Encryptions recorded when the keyring was last persisted.
    persisted_encryptions: u64,
}

/// The unsealed keyring. Dropping it wipes every key.
pub(crate) struct Keyring {
    root_key: RootKey,
    terms: BTreeMap<u32, TermKey>,
    active: u32,
    path_key: Key,
    path_cipher: Aes256GcmSiv,
    /// Encryptions under the active term since it was loaded.
    encryptions: AtomicU64,
}

/// The serialized keyring (before encryption under the root key).
#[derive(Serialize, Deserialize)]
struct KeyringRecord {
    version: u32,
    active_term: u32,
    /// base64 of the 32-byte path key.
    path_key: String,
    terms: Vec<TermRecord>,
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
        Self::assemble(root_key, terms, 1, random_key())
    }

    fn assemble(
        root_key: RootKey,
        terms: BTreeMap<u32, TermKey>,
        active: u32,
        path_key: Key,
    ) -> Self {
        Keyring {
            root_key,
            terms,
            active,
            path_cipher: Aes256GcmSiv::new_from_slice(path_key.as_ref()).expect("32-byte key"),
            path_key,
            encryptions: AtomicU64::new(0),
        }
    }

    /// A copy with one more term, which becomes active. The current count of
    /// encryptions is carried into the retired term's record.
    pub(crate) fn rotated(&self) -> Self {
        let mut terms = BTreeMap::new();
        for (&t, k) in &self.terms {
            let persisted = if t == self.active {
                self.active_encryptions()
            } else {
                k.persisted_encryptions
            };
            terms.insert(t, TermKey::new(k.key.clone(), k.install_time, persisted));
        }
        let next = self.active + 1;
        terms.insert(next, TermKey::new(random_key(), Utc::now(), 0));
        Self::assemble(self.root_key.clone(), terms, next, self.path_key.clone())
    }

    pub(crate) fn root_key(&self) -> &RootKey {
        &self.root_key
    }

    pub(crate) fn path_cipher(&self) -> &Aes256GcmSiv {
        &self.path_cipher
    }

    fn active_encryptions(&self) -> u64 {
        let base = self.terms[&self.active].persisted_encryptions;
        base + self.encryptions.load(Ordering::Relaxed)
    }

    pub(crate) fn status(&self) -> KeyStatus {
        KeyStatus {
            term: self.active,
            install_time: self.terms[&self.active].install_time,
            encryptions: self.active_encryptions(),
        }
    }

    pub(crate) fn has_term(&self, term: u32) -> bool {
        self.terms.contains_key(&term)
    }

    /// Encrypts a value under the active term.
    pub(crate) fn encrypt(&self, logical_path: &str, plaintext: &[u8]) -> Vec<u8> {
        self.encryptions.fetch_add(1, Ordering::Relaxed);
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
                    encryptions: if term == self.active {
                        self.active_encryptions()
                    } else {
                        k.persisted_encryptions
                    },
                })
                .collect(),
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
        assert_eq!(again.status().term, 1);
        assert_eq!(again.status().encryptions, 1);
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
        let kr2 = kr.rotated();
        assert_eq!(kr2.status().term, 2);
        assert_eq!(kr2.status().encryptions, 0);
        assert_eq!(kr2.decrypt("k", &old).unwrap().as_slice(), b"v1");
        let new = kr2.encrypt("k", b"v2");
        assert_eq!(&new[1..5], &2u32.to_be_bytes());
        let reloaded =
            Keyring::from_sealed_record(kr2.root_key().clone(), &kr2.to_sealed_record()).unwrap();
        assert_eq!(reloaded.terms[&1].persisted_encryptions, 1);
        assert_eq!(reloaded.status().encryptions, 1);
        assert_eq!(reloaded.decrypt("k", &old).unwrap().as_slice(), b"v1");
        assert_eq!(reloaded.decrypt("k", &new).unwrap().as_slice(), b"v2");
    }
}
