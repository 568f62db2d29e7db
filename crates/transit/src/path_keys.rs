//! Key management: `keys` (LIST), `keys/:name` (create, read, delete),
//! `keys/:name/config`, `keys/:name/rotate`, `keys/:name/trim`,
//! `cache-config` and `config/keys`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use arca_sdk::storage::get_json;
use arca_sdk::{Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, Response};

use crate::backend::{put_config, Transit, POLICY_PREFIX};
use crate::keys::{KeyType, Policy, HMAC_MAX_KEY, HMAC_MIN_KEY};

pub(crate) const CACHE_CONFIG: &str = "config/cache";
pub(crate) const KEYS_CONFIG: &str = "config/keys";

/// Key names as Vault accepts them (a regex group, for `concat!`).
macro_rules! name_re {
    () => {
        r"(?P<name>\w(?:[\w\-.]*\w)?)"
    };
}
pub(crate) use name_re;

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct CacheConfig {
    pub size: usize,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct KeysConfig {
    pub disable_upsert: bool,
}

pub(crate) fn name_field() -> Field {
    Field::new("name", FieldType::String, "Name of the key.").required()
}

pub(crate) fn decode_b64(what: &str, v: &str) -> Result<Vec<u8>, LogicalError> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(v.trim())
        .map_err(|_| LogicalError::invalid(format!("failed to base64-decode {what}")))
}

pub(crate) async fn keys_config(s: &dyn arca_sdk::Storage) -> Result<KeysConfig, LogicalError> {
    Ok(get_json(s, KEYS_CONFIG).await?.unwrap_or_default())
}

/// Fields of a new key that `keys/:name` and `import` share, applied to
/// `p` (`auto_rotate_period`: 0 or at least an hour).
pub(crate) fn apply_new_key_fields(c: &Ctx<'_>, p: &mut Policy) -> Result<(), LogicalError> {
    p.derived = c.data.bool_or("derived", false)?;
    p.convergent_encryption = c.data.bool_or("convergent_encryption", false)?;
    p.exportable = c.data.bool_or("exportable", false)?;
    p.allow_plaintext_backup = c.data.bool_or("allow_plaintext_backup", false)?;
    p.auto_rotate_period = auto_rotate_period(c)?.unwrap_or(0);
    if p.convergent_encryption && !p.derived {
        return Err(LogicalError::invalid(
            "convergent encryption requires derivation to be enabled",
        ));
    }
    if p.derived && !p.key_type.derivation() {
        return Err(LogicalError::invalid(format!(
            "key derivation is not supported for key type {}",
            p.key_type.name()
        )));
    }
    if p.convergent_encryption && p.key_type.cipher().is_none() {
        return Err(LogicalError::invalid(format!(
            "convergent encryption is not supported for key type {}",
            p.key_type.name()
        )));
    }
    Ok(())
}

fn auto_rotate_period(c: &Ctx<'_>) -> Result<Option<u64>, LogicalError> {
    let Some(p) = c.data.get_duration("auto_rotate_period")? else {
        return Ok(None);
    };
    if p != 0 && p < 3600 {
        return Err(LogicalError::invalid(
            "auto rotate period must be 0 to disable or at least an hour",
        ));
    }
    Ok(Some(p))
}

pub(crate) fn key_type_field() -> Field {
    Field::new("type", FieldType::String, "The type of key.")
        .default("aes256-gcm96")
        .allowed(KeyType::NAMES)
}

fn new_key_fields() -> Vec<Field> {
    vec![
        Field::new(
            "derived",
            FieldType::Bool,
            "Derive a key per context (HKDF).",
        ),
        Field::new(
            "convergent_encryption",
            FieldType::Bool,
            "Same plaintext and context give the same ciphertext (needs derived).",
        ),
        Field::new(
            "exportable",
            FieldType::Bool,
            "Allow the key to be exported.",
        ),
        Field::new(
            "allow_plaintext_backup",
            FieldType::Bool,
            "Allow plaintext backups of the key (cannot be disabled later).",
        ),
        Field::new(
            "auto_rotate_period",
            FieldType::Duration,
            "Rotate the key this long after its newest version (0: never; at least 1h).",
        ),
    ]
}

impl Transit {
    async fn list_keys(&self, c: Ctx<'_>) -> HandlerResult {
        let keys: Vec<String> = c
            .storage
            .list(POLICY_PREFIX)
            .await?
            .into_iter()
            .filter(|k| !k.ends_with('/'))
            .collect();
        Ok((!keys.is_empty()).then(|| Response::list(keys)))
    }

    async fn create_key(&self, c: Ctx<'_>) -> HandlerResult {
        let name = c.data.str_or("name", "")?;
        let t = c.data.str_or("type", "aes256-gcm96")?;
        let key_type = KeyType::parse(&t)
            .ok_or_else(|| LogicalError::invalid(format!("unknown key type {t}")))?;
        let mut p = Policy::new(&name, key_type);
        apply_new_key_fields(&c, &mut p)?;
        let key_size = c.data.get_i64("key_size")?.unwrap_or(0);
        if key_size != 0 {
            if key_type != KeyType::Hmac {
                return Err(LogicalError::invalid(format!(
                    "key_size is not valid for algorithm {t}"
                )));
            }
            if key_size < HMAC_MIN_KEY as i64 || key_size > HMAC_MAX_KEY as i64 {
                return Err(LogicalError::invalid(format!(
                    "invalid key_size {key_size}"
                )));
            }
            p.key_size = key_size as usize;
        } else if key_type == KeyType::Hmac {
            return Err(LogicalError::invalid(format!(
                "invalid key size for HMAC key, must be between {HMAC_MIN_KEY} and {HMAC_MAX_KEY} bytes (key_size)"
            )));
        }
        let _guard = self.write_lock.lock().await;
        if let Some(existing) = self.load(c.storage, &name).await? {
            return Ok(Some(
                Response::data(existing.policy.describe(&[])?)
                    .with_warning(format!("key {name} already existed")),
            ));
        }
        p.rotate(self.now())?;
        let k = self.store(c.storage, p).await?;
        Ok(Some(Response::data(k.policy.describe(&[])?)))
    }

    async fn read_key(&self, c: Ctx<'_>) -> HandlerResult {
        let name = c.data.str_or("name", "")?;
        let Some(k) = self.load(c.storage, &name).await? else {
            return Ok(None);
        };
        let context = match c.data.get_str("context")? {
            Some(s) if !s.is_empty() => decode_b64("context", &s)?,
            _ => Vec::new(),
        };
        Ok(Some(Response::data(k.policy.describe(&context)?)))
    }

    async fn delete_key(&self, c: Ctx<'_>) -> HandlerResult {
        let name = c.data.str_or("name", "")?;
        let _guard = self.write_lock.lock().await;
        let Some(k) = self.load(c.storage, &name).await? else {
            return Err(LogicalError::invalid(format!(
                "error deleting policy {name}: could not delete key; not found"
            )));
        };
        if !k.policy.deletion_allowed {
            return Err(LogicalError::invalid(format!(
                "error deleting policy {name}: deletion is not allowed for this key"
            )));
        }
        self.remove(c.storage, &name).await?;
        Ok(None)
    }

    async fn config_key(&self, c: Ctx<'_>) -> HandlerResult {
        let name = c.data.str_or("name", "")?;
        let _guard = self.write_lock.lock().await;
        let k = self.must_load(c.storage, &name, "encryption").await?;
        let mut p = k.policy.clone();
        let mut warnings = Vec::new();
        if let Some(v) = c.data.get_i64("min_decryption_version")? {
            if v < 0 {
                return Err(LogicalError::invalid(
                    "min decryption version cannot be negative",
                ));
            }
            let v = if v == 0 {
                warnings.push(
                    "since Vault 0.3, transit key numbering starts at 1; forcing minimum to 1"
                        .to_string(),
                );
                1
            } else {
                v as u64
            };
            if v > p.latest_version {
                return Err(LogicalError::invalid(format!(
                    "cannot set min decryption version of {v}, latest key version is {}",
                    p.latest_version
                )));
            }
            p.min_decryption_version = v;
        }
        if let Some(v) = c.data.get_i64("min_encryption_version")? {
            if v < 0 {
                return Err(LogicalError::invalid(
                    "min encryption version cannot be negative",
                ));
            }
            if v as u64 > p.latest_version {
                return Err(LogicalError::invalid(format!(
                    "cannot set min encryption version of {v}, latest key version is {}",
                    p.latest_version
                )));
            }
            p.min_encryption_version = v as u64;
        }
        if p.min_encryption_version > 0 && p.min_encryption_version < p.min_decryption_version {
            return Err(LogicalError::invalid(
                "min encryption version should not be less than min decryption version",
            ));
        }
        if p.min_available_version > 0 {
            if p.min_encryption_version > 0 && p.min_encryption_version < p.min_available_version {
                return Err(LogicalError::invalid(
                    "min encryption version should not be less than min available version",
                ));
            }
            if p.min_decryption_version < p.min_available_version {
                return Err(LogicalError::invalid(
                    "min decryption version should not be less then min available version",
                ));
            }
        }
        if let Some(b) = c.data.get_bool("deletion_allowed")? {
            p.deletion_allowed = b;
        }
        // Both flags only ever turn on; `false` on an enabled key changes
        // nothing (clients such as Terraform send every field), as in Vault.
        if let Some(b) = c.data.get_bool("exportable")? {
            if !b && p.exportable {
                warnings.push("exportable stays true: it cannot be disabled once enabled".into());
            }
            p.exportable |= b;
        }
        if let Some(b) = c.data.get_bool("allow_plaintext_backup")? {
            if !b && p.allow_plaintext_backup {
                warnings.push(
                    "allow_plaintext_backup stays true: it cannot be disabled once enabled".into(),
                );
            }
            p.allow_plaintext_backup |= b;
        }
        if let Some(period) = auto_rotate_period(&c)? {
            p.auto_rotate_period = period;
        }
        let k = self.store(c.storage, p).await?;
        let mut r = Response::data(k.policy.describe(&[])?);
        r.warnings = warnings;
        Ok(Some(r))
    }

    async fn rotate_key(&self, c: Ctx<'_>) -> HandlerResult {
        let name = c.data.str_or("name", "")?;
        let _guard = self.write_lock.lock().await;
        let k = self
            .load(c.storage, &name)
            .await?
            .ok_or_else(|| LogicalError::invalid("key not found"))?;
        let mut p = k.policy.clone();
        if p.imported && !p.allow_imported_key_rotation {
            return Err(LogicalError::invalid(format!(
                "imported key {name} does not allow rotation within Vault"
            )));
        }
        p.rotate(self.now())?;
        p.imported = false;
        let k = self.store(c.storage, p).await?;
        Ok(Some(Response::data(k.policy.describe(&[])?)))
    }

    async fn trim_key(&self, c: Ctx<'_>) -> HandlerResult {
        let name = c.data.str_or("name", "")?;
        let _guard = self.write_lock.lock().await;
        let k = self
            .load(c.storage, &name)
            .await?
            .ok_or_else(|| LogicalError::invalid("invalid key name"))?;
        let mut p = k.policy.clone();
        let Some(v) = c.data.get_i64("min_available_version")? else {
            return Err(LogicalError::invalid("missing min_available_version"));
        };
        let err = |m: &str| Err(LogicalError::invalid(m.to_string()));
        if v < 0 {
            return err("minimum available version cannot be negative");
        }
        if v == 0 {
            return err("minimum available version should be positive");
        }
        let v = v as u64;
        if v < p.min_available_version {
            return err("minimum available version cannot be decremented");
        }
        if p.min_encryption_version == 0 {
            return err(
                "minimum available version cannot be set when minimum encryption version is not set",
            );
        }
        if v > p.min_encryption_version {
            return err(
                "minimum available version cannot be greater than minmum encryption version",
            );
        }
        if v > p.min_decryption_version {
            return err(
                "minimum available version cannot be greater than minimum decryption version",
            );
        }
        p.keys.retain(|ver, _| *ver >= v);
        p.min_available_version = v;
        let k = self.store(c.storage, p).await?;
        Ok(Some(Response::data(k.policy.describe(&[])?)))
    }

    async fn read_cache_config(&self, c: Ctx<'_>) -> HandlerResult {
        let cfg: CacheConfig = get_json(c.storage, CACHE_CONFIG).await?.unwrap_or_default();
        let mut m = serde_json::Map::new();
        m.insert("size".into(), Value::from(cfg.size));
        Ok(Some(Response::data(m)))
    }

    async fn write_cache_config(&self, c: Ctx<'_>) -> HandlerResult {
        let size = c.data.get_i64("size")?.unwrap_or(0);
        if size != 0 && size < 10 {
            return Err(LogicalError::invalid(
                "size must be 0 or a value greater or equal to 10",
            ));
        }
        if size < 0 {
            return Err(LogicalError::invalid(
                "size must be 0 or a value greater or equal to 10",
            ));
        }
        put_config(
            c.storage,
            CACHE_CONFIG,
            &CacheConfig {
                size: size as usize,
            },
        )
        .await?;
        self.set_cache_size(size as usize);
        self.read_cache_config(c).await
    }

    async fn read_keys_config(&self, c: Ctx<'_>) -> HandlerResult {
        let cfg = keys_config(c.storage).await?;
        let mut m = serde_json::Map::new();
        m.insert("disable_upsert".into(), Value::from(cfg.disable_upsert));
        Ok(Some(Response::data(m)))
    }

    async fn write_keys_config(&self, c: Ctx<'_>) -> HandlerResult {
        let mut cfg = keys_config(c.storage).await?;
        if let Some(b) = c.data.get_bool("disable_upsert")? {
            cfg.disable_upsert = b;
        }
        put_config(c.storage, KEYS_CONFIG, &cfg).await?;
        self.read_keys_config(c).await
    }
}

pub(crate) fn paths() -> Vec<Path<Transit>> {
    let mut create = Path::new(concat!("keys/", name_re!()))
        .field(name_field())
        .field(key_type_field())
        .field(Field::new(
            "key_size",
            FieldType::Int,
            "HMAC keys: the key size in bytes (32 to 512).",
        ))
        .field(Field::new(
            "context",
            FieldType::String,
            "Reading a derived ed25519 key: base64 context whose public key to show.",
        ));
    for f in new_key_fields() {
        create = create.field(f);
    }
    vec![
        Path::new("keys/?")
            .op(Operation::List, |b: &Transit, c| Box::pin(b.list_keys(c)))
            .help("List the named keys."),
        create
            .op(Operation::Update, |b: &Transit, c| {
                Box::pin(b.create_key(c))
            })
            .op(Operation::Read, |b: &Transit, c| Box::pin(b.read_key(c)))
            .op(Operation::Delete, |b: &Transit, c| {
                Box::pin(b.delete_key(c))
            })
            .help("Create, read or delete a named key."),
        Path::new(concat!("keys/", name_re!(), "/config"))
            .field(name_field())
            .field(Field::new(
                "min_decryption_version",
                FieldType::Int,
                "Oldest version that may decrypt, verify or rewrap.",
            ))
            .field(Field::new(
                "min_encryption_version",
                FieldType::Int,
                "Oldest version that may encrypt or sign (0: the latest).",
            ))
            .field(Field::new(
                "deletion_allowed",
                FieldType::Bool,
                "Whether the key may be deleted.",
            ))
            .field(Field::new(
                "exportable",
                FieldType::Bool,
                "Allow the key to be exported.",
            ))
            .field(Field::new(
                "allow_plaintext_backup",
                FieldType::Bool,
                "Allow plaintext backups of the key.",
            ))
            .field(Field::new(
                "auto_rotate_period",
                FieldType::Duration,
                "Rotate the key this long after its newest version (0: never).",
            ))
            .op(Operation::Update, |b: &Transit, c| {
                Box::pin(b.config_key(c))
            })
            .help("Configure a named key."),
        Path::new(concat!("keys/", name_re!(), "/rotate"))
            .field(name_field())
            .op(Operation::Update, |b: &Transit, c| {
                Box::pin(b.rotate_key(c))
            })
            .help("Add a new version of the key; new encryptions use it."),
        Path::new(concat!("keys/", name_re!(), "/trim"))
            .field(name_field())
            .field(Field::new(
                "min_available_version",
                FieldType::Int,
                "Versions below this one are deleted for good.",
            ))
            .op(Operation::Update, |b: &Transit, c| Box::pin(b.trim_key(c)))
            .help("Delete old key versions for good."),
        Path::new("cache-config")
            .field(Field::new(
                "size",
                FieldType::Int,
                "Most keys kept parsed in memory per node (0: no limit, else at least 10).",
            ))
            .op(Operation::Read, |b: &Transit, c| {
                Box::pin(b.read_cache_config(c))
            })
            .op(Operation::Update, |b: &Transit, c| {
                Box::pin(b.write_cache_config(c))
            })
            .help("The size of the key cache."),
        Path::new("config/keys")
            .field(Field::new(
                "disable_upsert",
                FieldType::Bool,
                "Refuse to create keys on encrypt.",
            ))
            .op(Operation::Read, |b: &Transit, c| {
                Box::pin(b.read_keys_config(c))
            })
            .op(Operation::Update, |b: &Transit, c| {
                Box::pin(b.write_keys_config(c))
            })
            .help("Engine-wide key settings."),
    ]
}
