//! A named transit key: its configuration and its versions (Vault's
//! "policy"), stored as one JSON record at `policy/<name>` in the mount's
//! (barrier-encrypted) storage.
//!
//! Invariants:
//! - Versions count from 1; `latest_version` is the highest. Versions below
//!   `min_available_version` have been trimmed and are gone.
//! - Key material is held in [`Secret`]s (zeroized on drop) and leaves the
//!   engine only through `export` and `backup`, and only when the key says
//!   `exportable` (and `allow_plaintext_backup` for backups); both flags can
//!   be turned on but never off again.
//! - Symmetric and HMAC material is raw bytes; Ed25519 is Go's 64-byte
//!   form (seed ‖ public key), which derived Ed25519 keys feed to HKDF, as
//!   Vault does; ECDSA and RSA private keys are PKCS#8 DER. A version
//!   imported as a public key only has `public_key` and no `key`.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crypto::{self, CryptoError, Curve, Secret};

/// Vault's key types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyType {
    #[serde(rename = "aes128-gcm96")]
    Aes128Gcm96,
    #[serde(rename = "aes256-gcm96")]
    Aes256Gcm96,
    #[serde(rename = "chacha20-poly1305")]
    ChaCha20Poly1305,
    #[serde(rename = "ed25519")]
    Ed25519,
    #[serde(rename = "ecdsa-p256")]
    EcdsaP256,
    #[serde(rename = "ecdsa-p384")]
    EcdsaP384,
    #[serde(rename = "ecdsa-p521")]
    EcdsaP521,
    #[serde(rename = "rsa-2048")]
    Rsa2048,
    #[serde(rename = "rsa-3072")]
    Rsa3072,
    #[serde(rename = "rsa-4096")]
    Rsa4096,
    #[serde(rename = "hmac")]
    Hmac,
}

pub const HMAC_MIN_KEY: usize = 32;
pub const HMAC_MAX_KEY: usize = 512;

impl KeyType {
    pub const NAMES: &'static [&'static str] = &[
        "aes128-gcm96",
        "aes256-gcm96",
        "chacha20-poly1305",
        "ed25519",
        "ecdsa-p256",
        "ecdsa-p384",
        "ecdsa-p521",
        "rsa-2048",
        "rsa-3072",
        "rsa-4096",
        "hmac",
    ];

    pub fn parse(s: &str) -> Option<KeyType> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
    }
    pub fn name(self) -> &'static str {
        match self {
            KeyType::Aes128Gcm96 => "aes128-gcm96",
            KeyType::Aes256Gcm96 => "aes256-gcm96",
            KeyType::ChaCha20Poly1305 => "chacha20-poly1305",
            KeyType::Ed25519 => "ed25519",
            KeyType::EcdsaP256 => "ecdsa-p256",
            KeyType::EcdsaP384 => "ecdsa-p384",
            KeyType::EcdsaP521 => "ecdsa-p521",
            KeyType::Rsa2048 => "rsa-2048",
            KeyType::Rsa3072 => "rsa-3072",
            KeyType::Rsa4096 => "rsa-4096",
            KeyType::Hmac => "hmac",
        }
    }
    pub fn cipher(self) -> Option<crypto::Cipher> {
        match self {
            KeyType::Aes128Gcm96 => Some(crypto::Cipher::Aes128Gcm),
            KeyType::Aes256Gcm96 => Some(crypto::Cipher::Aes256Gcm),
            KeyType::ChaCha20Poly1305 => Some(crypto::Cipher::ChaCha20Poly1305),
            _ => None,
        }
    }
    pub fn curve(self) -> Option<Curve> {
        match self {
            KeyType::EcdsaP256 => Some(Curve::P256),
            KeyType::EcdsaP384 => Some(Curve::P384),
            KeyType::EcdsaP521 => Some(Curve::P521),
            _ => None,
        }
    }
    pub fn rsa_bits(self) -> Option<usize> {
        match self {
            KeyType::Rsa2048 => Some(2048),
            KeyType::Rsa3072 => Some(3072),
            KeyType::Rsa4096 => Some(4096),
            _ => None,
        }
    }
    pub fn encryption(self) -> bool {
        self.cipher().is_some() || self.rsa_bits().is_some()
    }
    pub fn signing(self) -> bool {
        self == KeyType::Ed25519 || self.curve().is_some() || self.rsa_bits().is_some()
    }
    pub fn derivation(self) -> bool {
        self.cipher().is_some() || self == KeyType::Ed25519
    }
    pub fn asymmetric(self) -> bool {
        self.signing()
    }
}

/// Serde for secret bytes as standard base64.
mod secret_b64 {
    use super::*;
    pub fn serialize<S: serde::Serializer>(v: &Secret, s: S) -> Result<S::Ok, S::Error> {
        let enc = Zeroizing::new(B64.encode(&**v));
        s.serialize_str(&enc)
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        let s = Zeroizing::new(String::deserialize(d)?);
        B64.decode(s.as_bytes())
            .map(Zeroizing::new)
            .map_err(serde::de::Error::custom)
    }
}

/// One version of a key.
#[derive(Clone, Serialize, Deserialize)]
pub struct KeyVersion {
    /// Private or symmetric material (empty: a public key only).
    #[serde(with = "secret_b64", default = "empty_secret")]
    pub key: Secret,
    /// The HMAC key of this version (for `hmac/`; = `key` for hmac keys).
    #[serde(with = "secret_b64", default = "empty_secret")]
    pub hmac_key: Secret,
    /// Asymmetric keys: PEM (ECDSA, RSA) or base64 (Ed25519), as Vault shows it.
    #[serde(default)]
    pub public_key: String,
    pub creation_time: DateTime<Utc>,
}

fn empty_secret() -> Secret {
    Zeroizing::new(Vec::new())
}

/// How a derived key is made from a version's key and a context.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kdf {
    /// HKDF-SHA256 (keys created in Arca, as in Vault since 0.7).
    #[default]
    #[serde(rename = "hkdf_sha256")]
    HkdfSha256,
    /// NIST SP 800-108 counter mode with HMAC-SHA256, 256 bits: what
    /// Vault's import path gives derived keys, so imported keys derive
    /// the same keys here as there.
    #[serde(rename = "hmac-sha256-counter")]
    HmacSha256Counter,
}

/// When a backup or restore happened, as key reads show it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stamp {
    pub time: DateTime<Utc>,
    pub version: u64,
}

/// A named key and its versions.
#[derive(Clone, Serialize, Deserialize)]
pub struct Policy {
    pub name: String,
    #[serde(rename = "type")]
    pub key_type: KeyType,
    pub derived: bool,
    #[serde(default)]
    pub kdf: Kdf,
    pub convergent_encryption: bool,
    pub exportable: bool,
    pub allow_plaintext_backup: bool,
    pub deletion_allowed: bool,
    pub min_decryption_version: u64,
    pub min_encryption_version: u64,
    pub min_available_version: u64,
    pub latest_version: u64,
    /// Seconds; 0: never rotated automatically.
    pub auto_rotate_period: u64,
    /// HMAC keys: bytes of newly generated versions.
    #[serde(default)]
    pub key_size: usize,
    #[serde(default)]
    pub imported: bool,
    #[serde(default)]
    pub allow_imported_key_rotation: bool,
    #[serde(default)]
    pub backup_info: Option<Stamp>,
    #[serde(default)]
    pub restore_info: Option<Stamp>,
    pub keys: BTreeMap<u64, KeyVersion>,
}

impl Policy {
    pub fn new(name: &str, key_type: KeyType) -> Policy {
        Policy {
            name: name.to_string(),
            key_type,
            derived: false,
            kdf: Kdf::HkdfSha256,
            convergent_encryption: false,
            exportable: false,
            allow_plaintext_backup: false,
            deletion_allowed: false,
            min_decryption_version: 1,
            min_encryption_version: 0,
            min_available_version: 0,
            latest_version: 0,
            auto_rotate_period: 0,
            key_size: 0,
            imported: false,
            allow_imported_key_rotation: false,
            backup_info: None,
            restore_info: None,
            keys: BTreeMap::new(),
        }
    }

    pub fn version(&self, v: u64) -> Result<&KeyVersion, CryptoError> {
        self.keys
            .get(&v)
            .ok_or_else(|| crypto::invalid("no such key version"))
    }

    /// Adds a freshly generated version.
    pub fn rotate(&mut self, now: DateTime<Utc>) -> Result<(), CryptoError> {
        let t = self.key_type;
        let (key, public_key) = if let Some(c) = t.cipher() {
            (crypto::random(c.key_len()), String::new())
        } else if t == KeyType::Hmac {
            let n = if self.key_size == 0 {
                32
            } else {
                self.key_size
            };
            (crypto::random(n), String::new())
        } else if t == KeyType::Ed25519 {
            let seed = crypto::random(32);
            let kp = aws_lc_rs::signature::Ed25519KeyPair::from_seed_unchecked(&seed)
                .map_err(crypto::internal)?;
            use aws_lc_rs::signature::KeyPair;
            let public = kp.public_key().as_ref().to_vec();
            let mut full = Zeroizing::new(seed.to_vec());
            full.extend_from_slice(&public);
            (full, B64.encode(public))
        } else if let Some(curve) = t.curve() {
            let (der, pem) = crate::material::generate_ec(curve)?;
            (der, pem)
        } else if let Some(bits) = t.rsa_bits() {
            let der = crypto::generate_rsa(bits)?;
            let pem = crate::material::rsa_public_pem(&der)?;
            (der, pem)
        } else {
            return Err(crypto::internal("unknown key type"));
        };
        let hmac_key = if t == KeyType::Hmac {
            key.clone()
        } else {
            crypto::random(32)
        };
        self.push(KeyVersion {
            key,
            hmac_key,
            public_key,
            creation_time: now,
        });
        Ok(())
    }

    /// Appends `v` as the newest version.
    pub fn push(&mut self, v: KeyVersion) {
        self.latest_version += 1;
        self.keys.insert(self.latest_version, v);
        if self.min_decryption_version == 0 {
            self.min_decryption_version = 1;
        }
    }

    /// The version to encrypt or sign with: `requested` (0: the latest),
    /// within the encryption window.
    pub fn encryption_version(&self, requested: i64, what: &str) -> Result<u64, CryptoError> {
        match requested {
            0 => Ok(self.latest_version),
            n if n < 0 => Err(crypto::invalid(format!(
                "requested version for {what} is negative"
            ))),
            n if n as u64 > self.latest_version => Err(crypto::invalid(format!(
                "requested version for {what} is higher than the latest key version"
            ))),
            n if (n as u64) < self.min_encryption_version => Err(crypto::invalid(format!(
                "requested version for {what} is less than the minimum encryption key version"
            ))),
            n if (n as u64) < self.min_available_version => Err(crypto::invalid(format!(
                "requested version for {what} has been trimmed"
            ))),
            n => Ok(n as u64),
        }
    }

    /// Parses `vault:v<N>:<payload>` and checks that version `N` may decrypt.
    pub fn split_versioned<'a>(
        &self,
        value: &'a str,
        what: &str,
    ) -> Result<(u64, &'a str), CryptoError> {
        let rest = value
            .strip_prefix("vault:v")
            .ok_or_else(|| crypto::invalid(format!("invalid {what}: no prefix")))?;
        let (ver, payload) = rest
            .split_once(':')
            .ok_or_else(|| crypto::invalid(format!("invalid {what}: wrong number of fields")))?;
        let ver: u64 = ver.parse().map_err(|_| {
            crypto::invalid(format!(
                "invalid {what}: version number could not be decoded"
            ))
        })?;
        let ver = ver.max(1);
        if ver > self.latest_version {
            return Err(crypto::invalid(format!(
                "invalid {what}: version is too new"
            )));
        }
        if ver < self.min_decryption_version {
            return Err(crypto::invalid(
                "ciphertext or signature version is disallowed by policy (too old)",
            ));
        }
        if ver < self.min_available_version {
            return Err(crypto::invalid(format!(
                "invalid {what}: key version {ver} has been trimmed"
            )));
        }
        Ok((ver, payload))
    }

    /// The symmetric key of version `v` for `context` (derived keys need one):
    /// `len` bytes (more than the cipher's when a convergent HMAC key
    /// follows it).
    pub fn symmetric_key(&self, v: u64, context: &[u8], len: usize) -> Result<Secret, CryptoError> {
        let entry = self.version(v)?;
        if !self.derived {
            return Ok(entry.key.clone());
        }
        if context.is_empty() {
            return Err(crypto::invalid(
                "missing 'context' for key derivation; the key was created using a derived key, \
                 which means additional, per-request information must be included in order to \
                 perform operations with the key",
            ));
        }
        match self.kdf {
            Kdf::HkdfSha256 => crypto::hkdf_sha256(&entry.key, context, len),
            Kdf::HmacSha256Counter => {
                let key = crypto::counter_kdf_sha256(&entry.key, context);
                if key.len() < len {
                    return Err(crypto::invalid("could not derive key, length too small"));
                }
                Ok(key)
            }
        }
    }

    /// Key information as `keys/:name` answers it.
    pub fn describe(
        &self,
        context: &[u8],
    ) -> Result<serde_json::Map<String, serde_json::Value>, CryptoError> {
        use serde_json::{json, Value};
        let t = self.key_type;
        let mut m = serde_json::Map::new();
        let mut put = |k: &str, v: Value| {
            m.insert(k.to_string(), v);
        };
        put("name", json!(self.name));
        put("type", json!(t.name()));
        put("derived", json!(self.derived));
        put("deletion_allowed", json!(self.deletion_allowed));
        put("min_available_version", json!(self.min_available_version));
        put("min_decryption_version", json!(self.min_decryption_version));
        put("min_encryption_version", json!(self.min_encryption_version));
        put("latest_version", json!(self.latest_version));
        put("exportable", json!(self.exportable));
        put("allow_plaintext_backup", json!(self.allow_plaintext_backup));
        put("supports_encryption", json!(t.encryption()));
        put("supports_decryption", json!(t.encryption()));
        put("supports_signing", json!(t.signing()));
        put("supports_derivation", json!(t.derivation()));
        put("auto_rotate_period", json!(self.auto_rotate_period));
        put("imported_key", json!(self.imported));
        // Soft deletion is not offered: no key is ever soft-deleted.
        put("soft_deleted", json!(false));
        if self.key_size != 0 {
            put("key_size", json!(self.key_size));
        }
        if self.imported {
            put(
                "imported_key_allow_rotation",
                json!(self.allow_imported_key_rotation),
            );
        }
        if let Some(b) = &self.backup_info {
            put("backup_info", json!({"time": b.time, "version": b.version}));
        }
        if let Some(r) = &self.restore_info {
            put(
                "restore_info",
                json!({"time": r.time, "version": r.version}),
            );
        }
        if self.derived {
            match self.kdf {
                Kdf::HkdfSha256 => put("kdf", json!("hkdf_sha256")),
                Kdf::HmacSha256Counter => {
                    put("kdf", json!("hmac-sha256-counter"));
                    put("kdf_mode", json!("hmac-sha256-counter"));
                }
            }
            put("convergent_encryption", json!(self.convergent_encryption));
            if self.convergent_encryption {
                // Vault shows the policy-level marker, -1 ("the current
                // version", 3, recorded per key version).
                put("convergent_encryption_version", json!(-1));
            }
        }
        if t.cipher().is_some() {
            let keys: serde_json::Map<String, Value> = self
                .keys
                .range(self.min_decryption_version..)
                .map(|(v, e)| (v.to_string(), json!(e.creation_time.timestamp())))
                .collect();
            put("keys", Value::Object(keys));
        } else if t.asymmetric() {
            let mut keys = serde_json::Map::new();
            // As Vault: versions below min_decryption_version are not shown.
            for (v, e) in self.keys.range(self.min_decryption_version..) {
                let name = match t {
                    KeyType::Ed25519 => "ed25519",
                    _ => t.curve().map(|c| c.name()).unwrap_or(t.name()),
                };
                let public_key = if t == KeyType::Ed25519 && self.derived {
                    if context.is_empty() {
                        String::new()
                    } else {
                        crate::material::derived_ed25519_public(self, *v, context)?
                    }
                } else {
                    e.public_key.clone()
                };
                keys.insert(
                    v.to_string(),
                    json!({
                        "name": name,
                        "public_key": public_key,
                        "certificate_chain": "",
                        "creation_time": e.creation_time,
                    }),
                );
            }
            put("keys", Value::Object(keys));
        }
        Ok(m)
    }
}
