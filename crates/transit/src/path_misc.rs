//! Paths without a key or about a whole key: `random[/:source][/:bytes]`,
//! `hash[/:algorithm]`, `export/:type/:name[/:version]`, `backup/:name`
//! and `restore[/:name]`.
//!
//! Invariants: export needs the key's `exportable`; backup needs
//! `exportable` and `allow_plaintext_backup`; a restore never overwrites an
//! existing key unless `force` is set.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use arca_sdk::{Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, Response};

use crate::backend::Transit;
use crate::crypto::{self, HashAlg};
use crate::keys::{Policy, Stamp};
use crate::material::{export, ExportType};
use crate::path_keys::{decode_b64, name_field, name_re};

/// Most bytes `random` returns in one request (Vault's limit).
const MAX_RANDOM: i64 = 128 * 1024;

/// A backup: the key with every version, base64 of this JSON.
#[derive(Serialize, Deserialize)]
struct Backup {
    /// Marks Arca's format (restore refuses anything else).
    arca_transit_backup: u32,
    policy: Policy,
}

fn encode(format: &str, bytes: &[u8]) -> Result<String, LogicalError> {
    match format {
        "base64" | "" => Ok(B64.encode(bytes)),
        "hex" => Ok(hex::encode(bytes)),
        other => Err(LogicalError::invalid(format!(
            "unsupported encoding format {other}; must be \"hex\" or \"base64\""
        ))),
    }
}

impl Transit {
    async fn random_path(&self, c: Ctx<'_>) -> HandlerResult {
        // `random/32` puts the count where the source would be.
        let mut source = c.data.str_or("source", "platform")?;
        let mut bytes = c.data.get_i64("bytes")?.unwrap_or(32);
        if let Some(n) = c.data.get_str("urlbytes")?.filter(|s| !s.is_empty()) {
            bytes = n.parse().map_err(|_| {
                LogicalError::invalid(format!("error parsing url-set byte count: {n}"))
            })?;
        }
        if let Ok(n) = source.parse::<i64>() {
            bytes = n;
            source = "platform".into();
        }
        match source.as_str() {
            "" | "platform" | "all" => {}
            "seal" => {
                return Err(LogicalError::invalid(
                    "this server's seal has no entropy source; use source=platform (the operating system's generator)",
                ))
            }
            other => return Err(LogicalError::invalid(format!("unsupported entropy source {other:?}; use platform or all"))),
        }
        if bytes < 1 {
            return Err(LogicalError::invalid("missing bytes"));
        }
        if bytes > MAX_RANDOM {
            return Err(LogicalError::invalid(format!(
                "bytes cannot be more than {MAX_RANDOM}"
            )));
        }
        let r = crypto::random(bytes as usize);
        let out = encode(&c.data.str_or("format", "base64")?, &r)?;
        let mut m = Map::new();
        m.insert("random_bytes".into(), Value::from(out));
        Ok(Some(Response::data(m)))
    }

    async fn hash_path(&self, c: Ctx<'_>) -> HandlerResult {
        let input = c
            .data
            .get_str("input")?
            .ok_or_else(|| LogicalError::invalid("missing input"))?;
        let input = decode_b64("input", &input)?;
        let name = match c.data.get_str("urlalgorithm")?.filter(|s| !s.is_empty()) {
            Some(a) => a,
            None => c.data.str_or("algorithm", "sha2-256")?,
        };
        let alg = match HashAlg::parse(&name) {
            Some(HashAlg::None) | Some(HashAlg::Sha1) | None => {
                return Err(LogicalError::invalid(format!(
                    "unsupported algorithm {name}"
                )))
            }
            Some(a) => a,
        };
        let format = c.data.str_or("format", "hex")?;
        let sum = encode(&format, &alg.digest(&input))?;
        let mut m = Map::new();
        m.insert("sum".into(), Value::from(sum));
        Ok(Some(Response::data(m)))
    }

    async fn export_path(&self, c: Ctx<'_>) -> HandlerResult {
        let kind = c.data.str_or("type", "")?;
        let what = ExportType::parse(&kind)
            .ok_or_else(|| LogicalError::invalid(format!("invalid export type: {kind}")))?;
        let format = c.data.str_or("format", "")?;
        if !matches!(format.as_str(), "" | "raw" | "der" | "pem") {
            return Err(LogicalError::invalid(format!("invalid format: {format}")));
        }
        let name = c.data.str_or("name", "")?;
        let Some(k) = self.load(c.storage, &name).await? else {
            return Ok(None);
        };
        let p = &k.policy;
        if !p.exportable && what != ExportType::Public {
            return Err(LogicalError::invalid(
                "private key material is not exportable",
            ));
        }
        match what {
            ExportType::Encryption if !p.key_type.encryption() => {
                return Err(LogicalError::invalid(
                    "encryption not supported for the key",
                ))
            }
            ExportType::Signing | ExportType::Public if !p.key_type.signing() => {
                return Err(LogicalError::invalid("signing not supported for the key"))
            }
            _ => {}
        }
        let version = c.data.str_or("version", "")?;
        let mut keys = Map::new();
        if version.is_empty() {
            for (v, e) in &p.keys {
                if *v < p.min_decryption_version {
                    continue;
                }
                keys.insert(
                    v.to_string(),
                    Value::from(export(p.key_type, e, what, &format)?.to_string()),
                );
            }
        } else {
            let v = if version == "latest" {
                p.latest_version
            } else {
                version
                    .trim_start_matches('v')
                    .parse::<u64>()
                    .map_err(|_| LogicalError::invalid("invalid key version"))?
            };
            if v < p.min_decryption_version {
                return Err(LogicalError::invalid(
                    "version for export is below minimum decryption version",
                ));
            }
            let e = p.keys.get(&v).ok_or_else(|| {
                LogicalError::invalid("version does not exist or cannot be found")
            })?;
            keys.insert(
                v.to_string(),
                Value::from(export(p.key_type, e, what, &format)?.to_string()),
            );
        }
        let mut m = Map::new();
        m.insert("name".into(), json!(p.name));
        m.insert("type".into(), json!(p.key_type.name()));
        m.insert("keys".into(), Value::Object(keys));
        Ok(Some(Response::data(m)))
    }

    async fn backup_path(&self, c: Ctx<'_>) -> HandlerResult {
        let name = c.data.str_or("name", "")?;
        let _guard = self.write_lock.lock().await;
        let k = self
            .load(c.storage, &name)
            .await?
            .ok_or_else(|| LogicalError::invalid(format!("key {name:?} not found")))?;
        if !k.policy.exportable {
            return Err(LogicalError::invalid(
                "exporting is disallowed on the policy",
            ));
        }
        if !k.policy.allow_plaintext_backup {
            return Err(LogicalError::invalid(
                "plaintext backup is disallowed on the policy",
            ));
        }
        let mut p = k.policy.clone();
        p.backup_info = Some(Stamp {
            time: self.now(),
            version: p.latest_version,
        });
        let k = self.store(c.storage, p).await?;
        let json = Zeroizing::new(
            serde_json::to_vec(&Backup {
                arca_transit_backup: 1,
                policy: k.policy.clone(),
            })
            .map_err(LogicalError::internal)?,
        );
        let mut m = Map::new();
        m.insert("backup".into(), Value::from(B64.encode(&*json)));
        Ok(Some(Response::data(m)))
    }

    async fn restore_path(&self, c: Ctx<'_>) -> HandlerResult {
        let backup = c.data.str_or("backup", "")?;
        if backup.is_empty() {
            return Err(LogicalError::invalid("'backup' must be supplied"));
        }
        let json = Zeroizing::new(
            B64.decode(backup.trim())
                .map_err(|_| LogicalError::invalid("failed to base64-decode the backup"))?,
        );
        let b: Backup = serde_json::from_slice(&json).map_err(|_| {
            LogicalError::invalid("the backup is not one this server made (transit/backup of Arca)")
        })?;
        let mut p = b.policy;
        let name = c.data.str_or("name", "")?;
        if !name.is_empty() {
            p.name = name;
        }
        if p.name.is_empty() || p.latest_version == 0 || !p.keys.contains_key(&p.latest_version) {
            return Err(LogicalError::invalid("the backup holds no key"));
        }
        let force = c.data.bool_or("force", false)?;
        let _guard = self.write_lock.lock().await;
        if !force && self.load(c.storage, &p.name).await?.is_some() {
            return Err(LogicalError::invalid(format!(
                "key {:?} already exists; use force=true to overwrite it",
                p.name
            )));
        }
        p.restore_info = Some(Stamp {
            time: self.now(),
            version: p.latest_version,
        });
        self.store(c.storage, p).await?;
        Ok(None)
    }
}

pub(crate) fn paths() -> Vec<Path<Transit>> {
    let format = || {
        Field::new(
            "format",
            FieldType::String,
            "Output encoding: base64 or hex.",
        )
    };
    vec![
        Path::new(r"random(?:/(?P<source>[^/]+))?(?:/(?P<urlbytes>\d+))?")
            .field(
                Field::new("source", FieldType::String, "platform (default) or all.")
                    .default("platform"),
            )
            .field(Field::new(
                "urlbytes",
                FieldType::String,
                "Bytes (in the path).",
            ))
            .field(
                Field::new("bytes", FieldType::Int, "Bytes to generate (default 32).").default(32),
            )
            .field(format().default("base64"))
            .op(Operation::Update, |b: &Transit, c| {
                Box::pin(b.random_path(c))
            })
            .help("Random bytes from the operating system's generator."),
        Path::new(r"hash(?:/(?P<urlalgorithm>[\w-]+))?")
            .field(Field::new(
                "urlalgorithm",
                FieldType::String,
                "Algorithm (in the path).",
            ))
            .field(Field::new("input", FieldType::String, "Base64 input."))
            .field(
                Field::new(
                    "algorithm",
                    FieldType::String,
                    "sha2-224/256/384/512 or sha3-224/256/384/512.",
                )
                .default("sha2-256"),
            )
            .field(format().default("hex"))
            .op(Operation::Update, |b: &Transit, c| Box::pin(b.hash_path(c)))
            .help("Hash base64 input."),
        Path::new(concat!(
            r"export/(?P<type>[\w-]+)/",
            name_re!(),
            r"(?:/(?P<version>[\w]+))?"
        ))
        .field(name_field())
        .field(Field::new(
            "type",
            FieldType::String,
            "encryption-key, signing-key, hmac-key or public-key.",
        ))
        .field(Field::new(
            "version",
            FieldType::String,
            "A version, `latest`, or all when absent.",
        ))
        .field(Field::new(
            "format",
            FieldType::String,
            "``, raw, der or pem.",
        ))
        .op(Operation::Read, |b: &Transit, c| Box::pin(b.export_path(c)))
        .help("Export an exportable key's material (public keys always)."),
        Path::new(concat!("backup/", name_re!()))
            .field(name_field())
            .op(Operation::Read, |b: &Transit, c| Box::pin(b.backup_path(c)))
            .help("A plaintext backup of a key with all its versions."),
        Path::new(concat!("restore(?:/", name_re!(), ")?"))
            .field(Field::new(
                "name",
                FieldType::String,
                "Name to restore as (default: the backed-up name).",
            ))
            .field(
                Field::new("backup", FieldType::String, "The backup from backup/:name.")
                    .sensitive(),
            )
            .field(Field::new(
                "force",
                FieldType::Bool,
                "Overwrite an existing key of that name.",
            ))
            .op(Operation::Update, |b: &Transit, c| {
                Box::pin(b.restore_path(c))
            })
            .help("Restore a key from a backup."),
    ]
}
