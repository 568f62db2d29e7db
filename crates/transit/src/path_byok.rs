//! Bring your own key: `wrapping_key` (the mount's RSA-4096 public key,
//! made on first use), `keys/:name/import` and
//! `keys/:name/import_version`.
//!
//! An imported key arrives as Vault's BYOK ciphertext: base64 of
//! RSA-OAEP(wrapping key, `hash_function`, ephemeral AES key) ‖
//! AES-KWP(ephemeral key, target key), the target being raw bytes for
//! symmetric and HMAC keys and PKCS#8 DER for asymmetric ones. Public keys
//! may come in the clear (`public_key`, PEM).
//!
//! Invariants: the wrapping key's private half never leaves the engine; an
//! imported key cannot be rotated inside Arca unless `allow_rotation`.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use arca_sdk::storage::get_json;
use arca_sdk::{Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, Response};

use crate::backend::{put_config, Transit};
use crate::crypto::{self, OaepHash, RsaDecryptor, Secret};
use crate::keys::{KeyType, Policy};
use crate::material::{import_private, import_public};
use crate::path_keys::{apply_new_key_fields, key_type_field, name_field, name_re};

pub(crate) const WRAPPING_KEY: &str = "import/wrapping_key";

/// Bytes of an RSA-4096 OAEP block.
const WRAPPED_KEY_LEN: usize = 512;

#[derive(Serialize, Deserialize)]
struct StoredWrappingKey {
    /// PKCS#8 DER, base64.
    private: String,
    public_pem: String,
}

pub(crate) struct WrappingKey {
    decryptor: RsaDecryptor,
    pub public_pem: String,
}

impl Transit {
    /// The wrapping key, made (on the active node) when first asked for.
    async fn wrapping_key(
        &self,
        s: &dyn arca_sdk::Storage,
    ) -> Result<Arc<WrappingKey>, LogicalError> {
        if let Some(w) = self.wrapping.lock().clone() {
            return Ok(w);
        }
        let stored = match get_json::<StoredWrappingKey>(s, WRAPPING_KEY).await? {
            Some(w) => w,
            None => {
                let _guard = self.write_lock.lock().await;
                match get_json::<StoredWrappingKey>(s, WRAPPING_KEY).await? {
                    Some(w) => w,
                    None => {
                        let der = crypto::generate_rsa(4096)?;
                        let w = StoredWrappingKey {
                            private: B64.encode(&*der),
                            public_pem: crate::material::rsa_public_pem(&der)?,
                        };
                        put_config(s, WRAPPING_KEY, &w).await?;
                        w
                    }
                }
            }
        };
        let der: Secret = zeroize::Zeroizing::new(
            B64.decode(&stored.private)
                .map_err(|_| LogicalError::internal("stored wrapping key is not base64"))?,
        );
        let w = Arc::new(WrappingKey {
            decryptor: RsaDecryptor::from_pkcs8(&der)?,
            public_pem: stored.public_pem,
        });
        *self.wrapping.lock() = Some(w.clone());
        Ok(w)
    }

    async fn read_wrapping_key(&self, c: Ctx<'_>) -> HandlerResult {
        let w = self.wrapping_key(c.storage).await?;
        let mut m = Map::new();
        m.insert("public_key".into(), Value::from(w.public_pem.clone()));
        Ok(Some(Response::data(m)))
    }

    /// The target key inside a BYOK `ciphertext`.
    async fn unwrap(&self, c: &Ctx<'_>, ciphertext: &str) -> Result<Secret, LogicalError> {
        let hash = match c.data.str_or("hash_function", "SHA256")?.to_uppercase().as_str() {
            "SHA1" => OaepHash::Sha1,
            "SHA256" => OaepHash::Sha256,
            "SHA384" => OaepHash::Sha384,
            "SHA512" => OaepHash::Sha512,
            "SHA224" => {
                return Err(LogicalError::invalid(
                    "hash_function SHA224 is not supported here; wrap with SHA256 (the default), SHA1, SHA384 or SHA512",
                ))
            }
            other => return Err(LogicalError::invalid(format!("unsupported hash function {other}"))),
        };
        let raw = B64
            .decode(ciphertext.trim())
            .map_err(|_| LogicalError::invalid("failed to base64-decode ciphertext"))?;
        if raw.len() <= WRAPPED_KEY_LEN {
            return Err(LogicalError::invalid(
                "ciphertext too short: expected a 512-byte RSA-OAEP block followed by the AES-KWP wrapped key",
            ));
        }
        let w = self.wrapping_key(c.storage).await?;
        let ephemeral = w
            .decryptor
            .decrypt(hash, &raw[..WRAPPED_KEY_LEN])
            .map_err(|_| LogicalError::invalid("failed to decrypt the ephemeral key with the wrapping key (wrong wrapping key or hash_function?)"))?;
        Ok(crypto::aes_kwp_unwrap(&ephemeral, &raw[WRAPPED_KEY_LEN..])?)
    }

    async fn import_key(&self, c: Ctx<'_>) -> HandlerResult {
        let name = c.data.str_or("name", "")?;
        let t = c.data.str_or("type", "aes256-gcm96")?;
        let key_type = KeyType::parse(&t)
            .ok_or_else(|| LogicalError::invalid(format!("unknown key type {t}")))?;
        let ciphertext = c.data.str_or("ciphertext", "")?;
        let public_key = c.data.str_or("public_key", "")?;
        if ciphertext.is_empty() == public_key.is_empty() {
            return Err(LogicalError::invalid(
                "one (and only one) of ciphertext or public_key must be provided",
            ));
        }
        let mut p = Policy::new(&name, key_type);
        apply_new_key_fields(&c, &mut p)?;
        if p.convergent_encryption {
            return Err(LogicalError::invalid(
                "import cannot be used on keys with convergent encryption enabled",
            ));
        }
        // Vault's import path derives with the counter-mode KDF.
        p.kdf = crate::keys::Kdf::HmacSha256Counter;
        p.imported = true;
        p.allow_imported_key_rotation = c.data.bool_or("allow_rotation", false)?;
        if key_type == KeyType::Hmac && p.derived {
            return Err(LogicalError::invalid(
                "key derivation is not supported for key type hmac",
            ));
        }
        let mut version = if ciphertext.is_empty() {
            if key_type == KeyType::Ed25519 && p.derived {
                return Err(LogicalError::invalid(
                    "unable to import only public key for derived Ed25519 key",
                ));
            }
            import_public(key_type, &public_key)?
        } else {
            let target = self.unwrap(&c, &ciphertext).await?;
            import_private(key_type, &target)?
        };
        version.creation_time = self.now();
        if key_type == KeyType::Hmac {
            p.key_size = version.key.len();
            version.hmac_key = version.key.clone();
        } else if version.hmac_key.is_empty() {
            version.hmac_key = crypto::random(32);
        }
        let _guard = self.write_lock.lock().await;
        if self.load(c.storage, &name).await?.is_some() {
            return Err(LogicalError::invalid(format!(
                "the import path cannot be used with an existing key; use import_version to update an existing imported key ({name})"
            )));
        }
        p.push(version);
        self.store(c.storage, p).await?;
        Ok(None)
    }

    async fn import_version(&self, c: Ctx<'_>) -> HandlerResult {
        let name = c.data.str_or("name", "")?;
        let ciphertext = c.data.str_or("ciphertext", "")?;
        let public_key = c.data.str_or("public_key", "")?;
        if ciphertext.is_empty() == public_key.is_empty() {
            return Err(LogicalError::invalid(
                "one (and only one) of ciphertext or public_key must be provided",
            ));
        }
        let _guard = self.write_lock.lock().await;
        let k = self.load(c.storage, &name).await?.ok_or_else(|| {
            LogicalError::invalid(format!(
                "no key found with name {name}; to import a new key, use the import/ endpoint"
            ))
        })?;
        let mut p = k.policy.clone();
        if !p.imported {
            return Err(LogicalError::invalid(format!(
                "the import_version endpoint can only be used with an imported key ({name})"
            )));
        }
        if p.convergent_encryption {
            return Err(LogicalError::invalid(
                "import_version cannot be used on keys with convergent encryption enabled",
            ));
        }
        let target = if ciphertext.is_empty() {
            None
        } else {
            Some(self.unwrap(&c, &ciphertext).await?)
        };
        let requested = c.data.get_i64("version")?.unwrap_or(0);
        let mut version = match &target {
            Some(t) => import_private(p.key_type, t)?,
            None => import_public(p.key_type, &public_key)?,
        };
        version.creation_time = self.now();
        if p.key_type == KeyType::Hmac {
            version.hmac_key = version.key.clone();
        } else if version.hmac_key.is_empty() {
            version.hmac_key = crypto::random(32);
        }
        if requested > 0 && (requested as u64) <= p.latest_version {
            // Completing a version imported as a public key only.
            let v = requested as u64;
            let existing = p.keys.get_mut(&v).ok_or_else(|| {
                LogicalError::invalid(format!("key version {v} has been trimmed"))
            })?;
            if !existing.key.is_empty() {
                return Err(LogicalError::invalid(format!(
                    "key version {v} already has a private key"
                )));
            }
            if target.is_none() || existing.public_key != version.public_key {
                return Err(LogicalError::invalid(format!(
                    "the private key does not match the public key of version {v}"
                )));
            }
            existing.key = version.key;
        } else if requested > 0 {
            return Err(LogicalError::invalid(format!(
                "cannot import version {requested}: the latest version is {}",
                p.latest_version
            )));
        } else {
            p.push(version);
        }
        self.store(c.storage, p).await?;
        Ok(None)
    }
}

pub(crate) fn paths() -> Vec<Path<Transit>> {
    let wrapped = || {
        [
            Field::new(
                "ciphertext",
                FieldType::String,
                "Base64: RSA-OAEP(wrapping key, ephemeral AES key) followed by AES-KWP(ephemeral key, target key).",
            )
            .sensitive(),
            Field::new("public_key", FieldType::String, "A PEM public key, imported without its private key."),
            Field::new(
                "hash_function",
                FieldType::String,
                "The OAEP hash of the ephemeral key's wrapping: SHA256 (default), SHA1, SHA384 or SHA512.",
            )
            .default("SHA256"),
        ]
    };
    let mut import = Path::new(concat!("keys/", name_re!(), "/import"))
        .field(name_field())
        .field(key_type_field())
        .field(Field::new(
            "allow_rotation",
            FieldType::Bool,
            "Allow rotating the imported key inside Arca.",
        ))
        .field(Field::new(
            "derived",
            FieldType::Bool,
            "Derive a key per context (HKDF).",
        ))
        .field(Field::new(
            "convergent_encryption",
            FieldType::Bool,
            "Convergent encryption (needs derived).",
        ))
        .field(Field::new(
            "exportable",
            FieldType::Bool,
            "Allow the key to be exported.",
        ))
        .field(Field::new(
            "allow_plaintext_backup",
            FieldType::Bool,
            "Allow plaintext backups.",
        ))
        .field(Field::new(
            "auto_rotate_period",
            FieldType::Duration,
            "Automatic rotation period (needs allow_rotation).",
        ));
    for f in wrapped() {
        import = import.field(f);
    }
    let mut import_version = Path::new(concat!("keys/", name_re!(), "/import_version"))
        .field(name_field())
        .field(Field::new(
            "version",
            FieldType::Int,
            "An existing version imported as a public key whose private key this is (default: a new version).",
        ));
    for f in wrapped() {
        import_version = import_version.field(f);
    }
    vec![
        Path::new("wrapping_key")
            .op(Operation::Read, |b: &Transit, c| {
                Box::pin(b.read_wrapping_key(c))
            })
            .help("The RSA-4096 public key to wrap keys for import with."),
        import
            .op(Operation::Update, |b: &Transit, c| {
                Box::pin(b.import_key(c))
            })
            .help("Import a key wrapped for this mount (BYOK)."),
        import_version
            .op(Operation::Update, |b: &Transit, c| {
                Box::pin(b.import_version(c))
            })
            .help("Import a new version of an imported key."),
    ]
}
