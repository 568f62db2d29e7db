//! Managing several issuers and keys per mount, as Vault ≥ 1.11 does:
//! `keys`, `key/:ref` (read, rename, delete), `keys/generate/:type`,
//! `keys/import`, `config/keys`, `config/issuers`, `issuer/:ref` updates
//! and deletes, and `issuers/import/bundle` (alias `config/ca`).
//! (`issuers/generate/root|intermediate/:type` share the handlers of
//! `root/generate` and `intermediate/generate`.)
//!
//! Invariants: names of issuers and of keys are unique within the mount and
//! never look like an id or `default`; a key in use by an issuer cannot be
//! deleted; importing what is already here changes nothing and says so
//! (`existing_issuers`, `existing_keys`); a private key is never returned
//! except by `keys/generate/exported`.

use rcgen::PublicKeyData;
use serde_json::{Map, Value};

use arca_sdk::{Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, Response};

use crate::backend::Pki;
use crate::crypto::{self, KeySpec};
use crate::model::{self, IssuerEntry, IssuersConfig, KeyEntry, KeysConfig};
use crate::path_root::uuid_like;

fn valid_name(name: &str) -> Result<(), LogicalError> {
    if name == "default"
        || name.len() > 128
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(LogicalError::invalid(format!(
            "invalid name {name:?}: use letters, digits, '-' and '_' (and not \"default\")"
        )));
    }
    if name.len() == 36 && name.chars().filter(|c| *c == '-').count() == 4 {
        return Err(LogicalError::invalid(format!(
            "invalid name {name:?}: it looks like an id"
        )));
    }
    Ok(())
}

/// Refuses a name that is malformed or taken by another record under
/// `prefix` (`key/`, `issuer/`); `fields` reads a record's (name, id).
async fn check_unique_name<T: serde::de::DeserializeOwned>(
    s: &dyn arca_sdk::Storage,
    prefix: &str,
    what: &str,
    name: &str,
    own_id: &str,
    fields: fn(&T) -> (&str, &str),
) -> Result<(), LogicalError> {
    if name.is_empty() {
        return Ok(());
    }
    valid_name(name)?;
    for k in s.list(prefix).await? {
        if let Some(e) = model::get::<T>(s, &format!("{prefix}{k}")).await? {
            let (n, id) = fields(&e);
            if n == name && id != own_id {
                return Err(LogicalError::invalid(format!(
                    "{what} name {name:?} is already in use"
                )));
            }
        }
    }
    Ok(())
}

/// Refuses a key name that is malformed or taken by another key.
pub(crate) async fn check_key_name(
    s: &dyn arca_sdk::Storage,
    name: &str,
    own_id: &str,
) -> Result<(), LogicalError> {
    check_unique_name::<KeyEntry>(s, "key/", "key", name, own_id, |e| (&e.name, &e.id)).await
}

/// Refuses an issuer name that is malformed or taken by another issuer.
pub(crate) async fn check_issuer_name(
    s: &dyn arca_sdk::Storage,
    name: &str,
    own_id: &str,
) -> Result<(), LogicalError> {
    check_unique_name::<IssuerEntry>(s, "issuer/", "issuer", name, own_id, |e| (&e.name, &e.id))
        .await
}

fn key_data(k: &KeyEntry) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("key_id".into(), Value::from(k.id.clone()));
    m.insert("key_name".into(), Value::from(k.name.clone()));
    m.insert("key_type".into(), Value::from(k.key_type.clone()));
    if k.key_bits > 0 {
        m.insert("key_bits".into(), Value::from(k.key_bits));
    }
    m
}

/// The DER SubjectPublicKeyInfo of a stored key.
fn key_spki(k: &KeyEntry) -> Result<Vec<u8>, LogicalError> {
    let spec = KeySpec::parse(&k.key_type, k.key_bits as i64)?;
    Ok(crypto::load(spec, &k.private_key)?.subject_public_key_info())
}

fn cert_spki(pem: &str) -> Result<Vec<u8>, LogicalError> {
    let der = crypto::pem_to_der(pem)?;
    let (_, c) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| LogicalError::invalid(format!("not a certificate: {e}")))?;
    Ok(c.public_key().raw.to_vec())
}

/// Splits a PEM bundle into certificates and private keys.
fn split_bundle(bundle: &str) -> (Vec<String>, Vec<String>) {
    let (mut certs, mut keys) = (vec![], vec![]);
    let mut cur: Option<(bool, String)> = None;
    for line in bundle.lines() {
        let l = line.trim();
        if let Some(label) = l.strip_prefix("-----BEGIN ") {
            let is_cert = label.starts_with("CERTIFICATE");
            let is_key = label.contains("PRIVATE KEY");
            cur = (is_cert || is_key).then(|| (is_cert, String::new()));
        }
        if let Some((_, buf)) = cur.as_mut() {
            buf.push_str(l);
            buf.push('\n');
        }
        if l.starts_with("-----END ") {
            if let Some((is_cert, buf)) = cur.take() {
                if is_cert {
                    certs.push(buf.trim().to_string());
                } else {
                    keys.push(buf.trim().to_string());
                }
            }
        }
    }
    (certs, keys)
}

impl Pki {
    async fn list_keys(&self, c: Ctx<'_>) -> HandlerResult {
        let ids = c.storage.list("key/").await?;
        if ids.is_empty() {
            return Ok(None);
        }
        let mut info = Map::new();
        for id in &ids {
            if let Some(k) = model::get::<KeyEntry>(c.storage, &format!("key/{id}")).await? {
                let mut m = Map::new();
                m.insert("key_name".into(), Value::from(k.name));
                m.insert("key_type".into(), Value::from(k.key_type));
                info.insert(id.clone(), Value::Object(m));
            }
        }
        let mut data = Map::new();
        data.insert("keys".into(), Value::from(ids));
        data.insert("key_info".into(), Value::Object(info));
        Ok(Some(Response::data(data)))
    }

    async fn read_key(&self, c: Ctx<'_>) -> HandlerResult {
        let k = model::resolve_key(c.storage, &c.data.str_or("key_ref", "")?).await?;
        Ok(Some(Response::data(key_data(&k))))
    }

    async fn update_key(&self, c: Ctx<'_>) -> HandlerResult {
        let _g = self.ca_lock.lock().await;
        let mut k = model::resolve_key(c.storage, &c.data.str_or("key_ref", "")?).await?;
        if let Some(name) = c.data.get_str("key_name")? {
            check_key_name(c.storage, &name, &k.id).await?;
            k.name = name;
            model::put(c.storage, &format!("key/{}", k.id), &k).await?;
        }
        Ok(Some(Response::data(key_data(&k))))
    }

    async fn delete_key(&self, c: Ctx<'_>) -> HandlerResult {
        let _g = self.ca_lock.lock().await;
        let k = model::resolve_key(c.storage, &c.data.str_or("key_ref", "")?).await?;
        for id in c.storage.list("issuer/").await? {
            if let Some(i) = model::get::<IssuerEntry>(c.storage, &format!("issuer/{id}")).await? {
                if i.key_id == k.id {
                    return Err(LogicalError::invalid(format!(
                        "key {} is in use by issuer {}: delete or re-key the issuer first",
                        k.id, i.id
                    )));
                }
            }
        }
        c.storage.delete(&format!("key/{}", k.id)).await?;
        let cfg: KeysConfig = model::get(c.storage, "config/keys")
            .await?
            .unwrap_or_default();
        if cfg.default == k.id {
            c.storage.delete("config/keys").await?;
        }
        Ok(None)
    }

    /// Stores a key, the default key if there is none.
    async fn store_key(&self, s: &dyn arca_sdk::Storage, k: &KeyEntry) -> Result<(), LogicalError> {
        model::put(s, &format!("key/{}", k.id), k).await?;
        let cfg: KeysConfig = model::get(s, "config/keys").await?.unwrap_or_default();
        if cfg.default.is_empty() {
            model::put(
                s,
                "config/keys",
                &KeysConfig {
                    default: k.id.clone(),
                },
            )
            .await?;
        }
        Ok(())
    }

    async fn generate_key(&self, c: Ctx<'_>) -> HandlerResult {
        let d = &c.data;
        let exported = match d.str_or("type", "")?.as_str() {
            "internal" => false,
            "exported" => true,
            other => {
                return Err(LogicalError::invalid(format!(
                    "invalid type {other:?}: use internal or exported"
                )))
            }
        };
        let spec = KeySpec::parse(
            &d.str_or("key_type", "rsa")?,
            d.get_i64("key_bits")?.unwrap_or(0),
        )?;
        let name = d.str_or("key_name", "")?;
        let _g = self.ca_lock.lock().await;
        check_key_name(c.storage, &name, "").await?;
        let key = crypto::generate(spec)?;
        let entry = KeyEntry {
            id: uuid_like(),
            name,
            key_type: spec.type_name().into(),
            key_bits: spec.bits(),
            private_key: key.serialize_pem(),
        };
        self.store_key(c.storage, &entry).await?;
        let mut data = key_data(&entry);
        if exported {
            data.insert(
                "private_key".into(),
                Value::from(crypto::output_key_pem(&entry.private_key, "")?),
            );
        }
        Ok(Some(Response::data(data)))
    }

    async fn import_key(&self, c: Ctx<'_>) -> HandlerResult {
        let pem = c
            .data
            .get_str("pem_bundle")?
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| {
                LogicalError::invalid("the pem_bundle field is required (a PEM private key)")
            })?;
        let (_, keys) = split_bundle(&pem);
        if keys.len() != 1 {
            return Err(LogicalError::invalid(format!(
                "pem_bundle must hold exactly one private key, found {}",
                keys.len()
            )));
        }
        let (spec, kp) = crypto::import_key(&keys[0])?;
        let name = c.data.str_or("key_name", "")?;
        let _g = self.ca_lock.lock().await;
        // Importing a key that is already here returns it.
        let spki = kp.subject_public_key_info();
        for id in c.storage.list("key/").await? {
            if let Some(k) = model::get::<KeyEntry>(c.storage, &format!("key/{id}")).await? {
                if key_spki(&k)? == spki {
                    let mut r = Response::data(key_data(&k));
                    r.warnings
                        .push("this key already exists in the mount".into());
                    return Ok(Some(r));
                }
            }
        }
        check_key_name(c.storage, &name, "").await?;
        let entry = KeyEntry {
            id: uuid_like(),
            name,
            key_type: spec.type_name().into(),
            key_bits: spec.bits(),
            private_key: kp.serialize_pem(),
        };
        self.store_key(c.storage, &entry).await?;
        Ok(Some(Response::data(key_data(&entry))))
    }

    async fn read_config_keys(&self, c: Ctx<'_>) -> HandlerResult {
        let cfg: KeysConfig = model::get(c.storage, "config/keys")
            .await?
            .unwrap_or_default();
        let mut data = Map::new();
        data.insert("default".into(), Value::from(cfg.default));
        Ok(Some(Response::data(data)))
    }

    async fn write_config_keys(&self, c: Ctx<'_>) -> HandlerResult {
        let r = c
            .data
            .get_str("default")?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                LogicalError::invalid("the default field is required (a key id or name)")
            })?;
        let k = model::resolve_key(c.storage, &r).await?;
        model::put(
            c.storage,
            "config/keys",
            &KeysConfig {
                default: k.id.clone(),
            },
        )
        .await?;
        let mut data = Map::new();
        data.insert("default".into(), Value::from(k.id));
        Ok(Some(Response::data(data)))
    }

    async fn read_config_issuers(&self, c: Ctx<'_>) -> HandlerResult {
        let cfg: IssuersConfig = model::get(c.storage, "config/issuers")
            .await?
            .unwrap_or_default();
        let mut data = Map::new();
        data.insert("default".into(), Value::from(cfg.default));
        data.insert("default_follows_latest_issuer".into(), Value::from(false));
        Ok(Some(Response::data(data)))
    }

    async fn write_config_issuers(&self, c: Ctx<'_>) -> HandlerResult {
        if c.data.get_bool("default_follows_latest_issuer")? == Some(true) {
            return Err(LogicalError::invalid(
                "default_follows_latest_issuer is not supported; set default explicitly",
            ));
        }
        let r = c
            .data
            .get_str("default")?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                LogicalError::invalid("the default field is required (an issuer id or name)")
            })?;
        let i = model::resolve_issuer(c.storage, &r).await?;
        model::put(
            c.storage,
            "config/issuers",
            &IssuersConfig {
                default: i.id.clone(),
            },
        )
        .await?;
        let mut data = Map::new();
        data.insert("default".into(), Value::from(i.id));
        data.insert("default_follows_latest_issuer".into(), Value::from(false));
        Ok(Some(Response::data(data)))
    }

    /// `POST`/`PATCH issuer/:ref`: name, leaf_not_after_behavior, usage,
    /// manual_chain. Fields not given keep their value.
    pub(crate) async fn update_issuer(&self, c: Ctx<'_>) -> HandlerResult {
        let d = &c.data;
        let _g = self.ca_lock.lock().await;
        let mut i = model::resolve_issuer(c.storage, &d.str_or("issuer_ref", "")?).await?;
        if let Some(name) = d.get_str("issuer_name")? {
            check_issuer_name(c.storage, &name, &i.id).await?;
            i.name = name;
        }
        if let Some(b) = d.get_str("leaf_not_after_behavior")? {
            if !matches!(b.as_str(), "err" | "truncate" | "permit") {
                return Err(LogicalError::invalid(format!(
                    "invalid leaf_not_after_behavior {b:?}: use err, truncate or permit"
                )));
            }
            i.leaf_not_after_behavior = b;
        }
        if let Some(u) = d.get_list("usage")? {
            let allowed = [
                "read-only",
                "issuing-certificates",
                "crl-signing",
                "ocsp-signing",
            ];
            if let Some(bad) = u.iter().find(|x| !allowed.contains(&x.as_str())) {
                return Err(LogicalError::invalid(format!(
                    "invalid usage {bad:?}: use {}",
                    allowed.join(", ")
                )));
            }
            i.usage = u.join(",");
        }
        if let Some(chain) = d.get_list("manual_chain")? {
            i.manual_chain = chain;
        }
        model::put(c.storage, &format!("issuer/{}", i.id), &i).await?;
        Ok(Some(Response::data(
            crate::path_fetch::issuer_data(c.storage, &i).await?,
        )))
    }

    /// `issuer/:ref/revoke`: the issuer stops issuing, and when its parent
    /// is an issuer of this mount (same name as its issuer, matching key
    /// identifier), its serial goes on the parent's CRL and OCSP.
    async fn revoke_issuer(&self, c: Ctx<'_>) -> HandlerResult {
        let _g = self.ca_lock.lock().await;
        let mut i = model::resolve_issuer(c.storage, &c.data.str_or("issuer_ref", "")?).await?;
        if i.revocation_time == 0 {
            let now = self.system.now();
            let der = crypto::pem_to_der(&i.certificate)?;
            let (_, x) = x509_parser::parse_x509_certificate(&der)
                .map_err(|e| LogicalError::internal(format!("stored issuer unreadable: {e}")))?;
            let aki = x
                .extensions()
                .iter()
                .find_map(|e| match e.parsed_extension() {
                    x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(a) => {
                        a.key_identifier.as_ref().map(|k| k.0.to_vec())
                    }
                    _ => None,
                });
            let mut parent = None;
            if x.subject().as_raw() != x.issuer().as_raw() {
                for id in c.storage.list("issuer/").await? {
                    let Some(p) =
                        model::get::<IssuerEntry>(c.storage, &format!("issuer/{id}")).await?
                    else {
                        continue;
                    };
                    if p.id == i.id {
                        continue;
                    }
                    let facts =
                        crate::x509::IssuerFacts::from_der(&crypto::pem_to_der(&p.certificate)?)?;
                    if facts.subject_der == x.issuer().as_raw()
                        && (aki.is_none() || aki == facts.key_id)
                    {
                        parent = Some(p);
                        break;
                    }
                }
            }
            i.revocation_time = now;
            let mut ops = vec![arca_sdk::storage::json_op(&format!("issuer/{}", i.id), &i)?];
            if let Some(p) = parent {
                let key = format!("revoked/{}", i.serial_number);
                if model::get::<model::Revocation>(c.storage, &key)
                    .await?
                    .is_none()
                {
                    let cfg = crate::path_tidy::crl_config(c.storage).await?;
                    let (seq, more) =
                        crate::crl::change_ops(c.storage, &p.id, &i.serial_number, false, &cfg)
                            .await?;
                    ops.push(arca_sdk::storage::json_op(
                        &key,
                        &model::Revocation {
                            serial_number: i.serial_number.clone(),
                            issuer_id: p.id.clone(),
                            revocation_time: now,
                            not_after: i.not_after,
                            seq,
                        },
                    )?);
                    ops.extend(more);
                }
            }
            c.storage.batch(ops).await?;
        }
        Ok(Some(Response::data(
            crate::path_fetch::issuer_data(c.storage, &i).await?,
        )))
    }

    /// `DELETE issuer/:ref`: the issuer and its CRL state go; its key and
    /// the certificates it issued stay.
    pub(crate) async fn delete_issuer(&self, c: Ctx<'_>) -> HandlerResult {
        let _g = self.ca_lock.lock().await;
        let r = c.data.str_or("issuer_ref", "")?;
        let i = match model::resolve_issuer(c.storage, &r).await {
            Ok(i) => i,
            // Deleting what is not there succeeds, as in Vault.
            Err(_) if r != "default" => return Ok(None),
            Err(e) => return Err(e),
        };
        c.storage.delete(&format!("issuer/{}", i.id)).await?;
        c.storage.delete(&crate::crl::state_key(&i.id)).await?;
        for seq in c.storage.list(&format!("revlog/{}/", i.id)).await? {
            c.storage.delete(&format!("revlog/{}/{seq}", i.id)).await?;
        }
        let cfg: IssuersConfig = model::get(c.storage, "config/issuers")
            .await?
            .unwrap_or_default();
        let mut r = Response::default();
        if cfg.default == i.id {
            c.storage.delete("config/issuers").await?;
            r.warnings.push(
                "the deleted issuer was the default; set a new one with config/issuers".into(),
            );
        }
        Ok((!r.warnings.is_empty()).then_some(r))
    }

    /// `issuers/import/bundle`, `config/ca`: CA certificates and keys from
    /// one PEM bundle; each certificate is matched to a key by public key.
    async fn import_bundle(&self, c: Ctx<'_>) -> HandlerResult {
        let pem = c
            .data
            .get_str("pem_bundle")?
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| LogicalError::invalid("the pem_bundle field is required"))?;
        let (certs, keys) = split_bundle(&pem);
        if certs.is_empty() && keys.is_empty() {
            return Err(LogicalError::invalid(
                "pem_bundle holds no certificate and no private key",
            ));
        }
        let _g = self.ca_lock.lock().await;
        let (mut imported_keys, mut existing_keys) = (vec![], vec![]);
        // Keys first, so certificates can find theirs.
        let mut all_keys: Vec<(Vec<u8>, String)> = vec![];
        for id in c.storage.list("key/").await? {
            if let Some(k) = model::get::<KeyEntry>(c.storage, &format!("key/{id}")).await? {
                all_keys.push((key_spki(&k)?, k.id));
            }
        }
        for k in &keys {
            let (spec, kp) = crypto::import_key(k)?;
            let spki = kp.subject_public_key_info();
            if let Some((_, id)) = all_keys.iter().find(|(s, _)| *s == spki) {
                existing_keys.push(id.clone());
                continue;
            }
            let entry = KeyEntry {
                id: uuid_like(),
                name: String::new(),
                key_type: spec.type_name().into(),
                key_bits: spec.bits(),
                private_key: kp.serialize_pem(),
            };
            self.store_key(c.storage, &entry).await?;
            all_keys.push((spki, entry.id.clone()));
            imported_keys.push(entry.id);
        }
        let mut existing: Vec<IssuerEntry> = vec![];
        for id in c.storage.list("issuer/").await? {
            if let Some(i) = model::get::<IssuerEntry>(c.storage, &format!("issuer/{id}")).await? {
                existing.push(i);
            }
        }
        let (mut imported_issuers, mut existing_issuers) = (vec![], vec![]);
        let mut mapping = Map::new();
        let mut warnings = vec![];
        for (n, pem) in certs.iter().enumerate() {
            let der = crypto::pem_to_der(pem)?;
            if let Some(i) = existing
                .iter()
                .find(|i| crypto::pem_to_der(&i.certificate).ok().as_deref() == Some(&der[..]))
            {
                existing_issuers.push(i.id.clone());
                mapping.insert(i.id.clone(), Value::from(i.key_id.clone()));
                continue;
            }
            let (_, x) = x509_parser::parse_x509_certificate(&der)
                .map_err(|e| LogicalError::invalid(format!("not a certificate: {e}")))?;
            if !x.is_ca() {
                warnings.push(format!(
                    "certificate {} is not a CA certificate; imported as an issuer that cannot sign",
                    crypto::serial_string(x.raw_serial())
                ));
            }
            let spki = cert_spki(pem)?;
            let key_id = all_keys
                .iter()
                .find(|(s, _)| *s == spki)
                .map(|(_, id)| id.clone())
                .unwrap_or_default();
            let entry = IssuerEntry {
                id: uuid_like(),
                name: String::new(),
                key_id: key_id.clone(),
                certificate: pem.clone(),
                ca_chain: certs[n + 1..].to_vec(),
                serial_number: crypto::serial_string(x.raw_serial()),
                not_after: x.validity().not_after.timestamp(),
                leaf_not_after_behavior: "err".into(),
                usage: model::default_usage(),
                manual_chain: vec![],
                revocation_time: 0,
            };
            model::put(c.storage, &format!("issuer/{}", entry.id), &entry).await?;
            if !key_id.is_empty() {
                self.rotate_crl_of(c.storage, &entry.id, false).await?;
            }
            mapping.insert(entry.id.clone(), Value::from(key_id.clone()));
            existing.push(entry.clone());
            imported_issuers.push(entry.id);
        }
        // The first imported issuer that can sign becomes the default when
        // there is none.
        let cfg: IssuersConfig = model::get(c.storage, "config/issuers")
            .await?
            .unwrap_or_default();
        if cfg.default.is_empty() {
            if let Some(id) = imported_issuers.iter().find(|id| {
                mapping
                    .get(*id)
                    .and_then(|v| v.as_str())
                    .is_some_and(|k| !k.is_empty())
            }) {
                model::put(
                    c.storage,
                    "config/issuers",
                    &IssuersConfig {
                        default: id.clone(),
                    },
                )
                .await?;
            }
        }
        let list = |v: Vec<String>| {
            if v.is_empty() {
                Value::Null
            } else {
                Value::from(v)
            }
        };
        let mut data = Map::new();
        data.insert("imported_issuers".into(), list(imported_issuers));
        data.insert("imported_keys".into(), list(imported_keys));
        data.insert("existing_issuers".into(), list(existing_issuers));
        data.insert("existing_keys".into(), list(existing_keys));
        data.insert("mapping".into(), Value::Object(mapping));
        let mut r = Response::data(data);
        r.warnings = warnings;
        Ok(Some(r))
    }
}

pub(super) fn paths() -> Vec<Path<Pki>> {
    use FieldType::*;
    vec![
        Path::new("keys/?")
            .op(Operation::List, |b: &Pki, c| Box::pin(b.list_keys(c)))
            .help("List the mount's keys with their names and types."),
        Path::new("keys/generate/(?P<type>[a-z]+)")
            .field(Field::new("type", String, "internal, or exported (returns the key once)."))
            .field(Field::new("key_name", String, "A name for the key."))
            .field(Field::new("key_type", String, "rsa (default), ec or ed25519."))
            .field(Field::new("key_bits", Int, "rsa 2048/3072/4096, ec 256/384."))
            .op(Operation::Update, |b: &Pki, c| Box::pin(b.generate_key(c)))
            .help("Generate a key for later issuers (root or intermediate with type existing)."),
        Path::new("keys/import")
            .field(Field::new("pem_bundle", String, "One PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC).").sensitive())
            .field(Field::new("key_name", String, "A name for the key."))
            .op(Operation::Update, |b: &Pki, c| Box::pin(b.import_key(c)))
            .help("Import a private key."),
        Path::new("key/(?P<key_ref>[^/]+)")
            .field(Field::new("key_ref", String, "Key id, name or default."))
            .field(Field::new("key_name", String, "New name."))
            .op(Operation::Read, |b: &Pki, c| Box::pin(b.read_key(c)))
            .op(Operation::Update, |b: &Pki, c| Box::pin(b.update_key(c)))
            .op(Operation::Patch, |b: &Pki, c| Box::pin(b.update_key(c)))
            .op(Operation::Delete, |b: &Pki, c| Box::pin(b.delete_key(c)))
            .help("Read, rename or delete a key (not while an issuer uses it)."),
        Path::new("config/keys")
            .field(Field::new("default", String, "The default key (id or name)."))
            .op(Operation::Read, |b: &Pki, c| Box::pin(b.read_config_keys(c)))
            .op(Operation::Update, |b: &Pki, c| Box::pin(b.write_config_keys(c)))
            .help("The default key."),
        Path::new("issuer/(?P<issuer_ref>[^/]+)/revoke")
            .field(Field::new("issuer_ref", String, "Issuer id, name or default."))
            .op(Operation::Update, |b: &Pki, c| Box::pin(b.revoke_issuer(c)))
            .help("Revoke an issuer: it issues nothing more; its parent in this mount lists it on its CRL."),
        Path::new("config/issuers")
            .field(Field::new("default", String, "The default issuer (id or name)."))
            .field(Field::new("default_follows_latest_issuer", Bool, "Not supported: false."))
            .op(Operation::Read, |b: &Pki, c| Box::pin(b.read_config_issuers(c)))
            .op(Operation::Update, |b: &Pki, c| Box::pin(b.write_config_issuers(c)))
            .help("The default issuer: what `default` and roles without issuer_ref use."),
        Path::new("(?:issuers/import/(?:bundle|cert)|config/ca)")
            .field(Field::new("pem_bundle", String, "CA certificates and/or private keys, PEM.").sensitive())
            .op(Operation::Update, |b: &Pki, c| Box::pin(b.import_bundle(c)))
            .help("Import CA certificates (as issuers) and keys; each certificate is matched to its key."),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundles_split_into_certificates_and_keys() {
        let b = "-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n\
                 junk\n-----BEGIN RSA PRIVATE KEY-----\nBBB\n-----END RSA PRIVATE KEY-----\n\
                 -----BEGIN CERTIFICATE-----\nCCC\n-----END CERTIFICATE-----";
        let (certs, keys) = split_bundle(b);
        assert_eq!(certs.len(), 2);
        assert!(certs[1].contains("CCC"));
        assert_eq!(keys.len(), 1);
        assert!(keys[0].starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    }

    #[test]
    fn names_are_checked_like_vault() {
        assert!(valid_name("my-root_2").is_ok());
        assert!(valid_name("default").is_err());
        assert!(valid_name("has space").is_err());
        assert!(valid_name("0f0e9a4c-1b2c-4d5e-8f90-123456789abc").is_err());
    }
}
