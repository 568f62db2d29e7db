//! `encrypt/:name`, `decrypt/:name`, `rewrap/:name` and
//! `datakey/(plaintext|wrapped)/:name`, one item or a `batch_input`.
//!
//! Invariants: every failure of a decryption (wrong key version, context,
//! associated data, tampering) is the same 400 without detail about the
//! plaintext; in a batch, a bad item gets its own `error` and the others
//! are still processed; the answer is 400 when any item failed (or
//! `partial_failure_response_code` when some succeeded), with the results
//! in the body, as Vault answers.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use arca_sdk::{Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, Response};

use crate::backend::Transit;
use crate::crypto::{self, CryptoError, Secret};
use crate::keys::{KeyType, Policy};
use crate::material::Loaded;
use crate::path_keys::{decode_b64, keys_config, name_field, name_re};

/// One item of a request (the request itself, or one of `batch_input`).
#[derive(Debug, Default, Clone)]
pub(crate) struct Item {
    pub plaintext: Option<String>,
    pub ciphertext: Option<String>,
    pub input: Option<String>,
    pub context: String,
    pub nonce: String,
    pub key_version: i64,
    pub associated_data: String,
    pub reference: String,
    pub signature: Option<String>,
    pub hmac: Option<String>,
}

/// Items from `batch_input`, or the request's own fields as one item.
/// `Ok((items, batch))`.
pub(crate) fn items(c: &Ctx<'_>) -> Result<(Vec<Item>, bool), LogicalError> {
    if let Some(raw) = c.data.raw().get("batch_input") {
        let list: Vec<Value> = match raw {
            Value::Array(a) => a.clone(),
            // Clients that send the form as a string of JSON.
            Value::String(s) => serde_json::from_str(s)
                .map_err(|e| LogicalError::invalid(format!("failed to parse batch input: {e}")))?,
            other => {
                return Err(LogicalError::invalid(format!(
                    "failed to parse batch input: expected an array, got {other}"
                )))
            }
        };
        if list.is_empty() {
            return Err(LogicalError::invalid("missing batch input to process"));
        }
        let mut out = Vec::with_capacity(list.len());
        for (i, v) in list.iter().enumerate() {
            let Value::Object(m) = v else {
                return Err(LogicalError::invalid(format!(
                    "failed to parse batch input: [{i}] expected a map"
                )));
            };
            out.push(item_from_map(i, m)?);
        }
        return Ok((out, true));
    }
    let s = |n: &str| -> Result<Option<String>, LogicalError> {
        if c.data.is_set(n) {
            c.data.get_str(n)
        } else {
            Ok(None)
        }
    };
    Ok((
        vec![Item {
            plaintext: s("plaintext")?,
            ciphertext: s("ciphertext")?,
            input: s("input")?,
            context: s("context")?.unwrap_or_default(),
            nonce: s("nonce")?.unwrap_or_default(),
            key_version: if c.data.is_set("key_version") {
                c.data.get_i64("key_version")?.unwrap_or(0)
            } else {
                0
            },
            associated_data: s("associated_data")?.unwrap_or_default(),
            reference: String::new(),
            signature: s("signature")?,
            hmac: s("hmac")?,
        }],
        false,
    ))
}

fn item_from_map(i: usize, m: &Map<String, Value>) -> Result<Item, LogicalError> {
    let mut it = Item::default();
    let text = |n: &str| -> Result<Option<String>, LogicalError> {
        match m.get(n) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(LogicalError::invalid(format!(
                "failed to parse batch input: '[{i}].{n}' expected type 'string', got {other}"
            ))),
        }
    };
    it.plaintext = text("plaintext")?;
    it.ciphertext = text("ciphertext")?;
    it.input = text("input")?;
    it.signature = text("signature")?;
    it.hmac = text("hmac")?;
    it.context = text("context")?.unwrap_or_default();
    it.nonce = text("nonce")?.unwrap_or_default();
    it.associated_data = text("associated_data")?.unwrap_or_default();
    it.reference = text("reference")?.unwrap_or_default();
    it.key_version = match m.get("key_version") {
        None | Some(Value::Null) => 0,
        Some(Value::Number(n)) => n.as_i64().ok_or_else(|| {
            LogicalError::invalid(format!("'[{i}].key_version' expected type 'int'"))
        })?,
        Some(Value::String(s)) if s.is_empty() => 0,
        Some(Value::String(s)) => s.parse().map_err(|_| {
            LogicalError::invalid(format!("'[{i}].key_version' expected type 'int'"))
        })?,
        Some(_) => {
            return Err(LogicalError::invalid(format!(
                "'[{i}].key_version' expected type 'int'"
            )))
        }
    };
    Ok(it)
}

/// A field a failed batch item still carries, and its value.
pub(crate) type ErrorField<'a> = (&'a str, fn() -> Value);

/// How a path answers a batch with failed items.
pub(crate) struct BatchErrors<'a> {
    /// Fields Vault's failed items still carry (`"plaintext": ""`,
    /// `"key_version": 0`, `"valid": false`).
    pub fields: &'a [ErrorField<'a>],
    /// encrypt and decrypt answer 400 (or `partial_failure_response_code`)
    /// when an item failed; sign, verify, hmac and rewrap answer 200, with
    /// the errors in the items, as Vault does.
    pub status: bool,
}

/// The answer to a batch or single request whose items each ended in
/// `Ok(fields)` or `Err(error)`.
pub(crate) fn respond(
    c: &Ctx<'_>,
    batch: bool,
    items: &[Item],
    results: Vec<Result<Map<String, Value>, CryptoError>>,
    on_error: BatchErrors<'_>,
) -> HandlerResult {
    if !batch {
        return match results.into_iter().next() {
            Some(Ok(m)) => Ok(Some(Response::data(m))),
            Some(Err(e)) => Err(e.into()),
            None => Err(LogicalError::internal("no result")),
        };
    }
    let mut user_error = false;
    let mut internal_error = false;
    let mut success = false;
    let out: Vec<Value> = results
        .into_iter()
        .zip(items)
        .map(|(r, it)| {
            let mut m = match r {
                Ok(m) => {
                    success = true;
                    m
                }
                Err(e) => {
                    match e {
                        CryptoError::Invalid(_) => user_error = true,
                        CryptoError::Internal(_) => internal_error = true,
                    }
                    let mut m = Map::new();
                    for (f, v) in on_error.fields {
                        m.insert(f.to_string(), v());
                    }
                    m.insert("error".into(), Value::from(e.to_string()));
                    m
                }
            };
            m.insert("reference".into(), Value::from(it.reference.clone()));
            Value::Object(m)
        })
        .collect();
    let mut data = Map::new();
    data.insert("batch_results".into(), Value::Array(out));
    let mut r = Response::data(data);
    if on_error.status && (user_error || internal_error) {
        let mut code = if user_error { 400 } else { 500 };
        if success && c.data.is_set("partial_failure_response_code") {
            let want = c
                .data
                .get_i64("partial_failure_response_code")?
                .unwrap_or(0);
            if (1..=599).contains(&want) {
                code = want as u16;
            } else {
                r.warnings.push(format!(
                    "invalid HTTP response code override from partial_failure_response_code, reverting to {code}"
                ));
            }
        }
        r.status = Some(code);
    }
    Ok(Some(r))
}

const ENCRYPT_ERRORS: BatchErrors<'static> = BatchErrors {
    fields: &[],
    status: true,
};
const DECRYPT_ERRORS: BatchErrors<'static> = BatchErrors {
    fields: &[("plaintext", || Value::from(""))],
    status: true,
};
/// rewrap and hmac: failed items carry only `error` and `reference`.
pub(crate) const ITEM_ERRORS: BatchErrors<'static> = BatchErrors {
    fields: &[],
    status: false,
};

/// Refuses items without a ciphertext (decrypt, rewrap).
fn require_ciphertext(items: &[Item], batch: bool, what: &str) -> Result<(), LogicalError> {
    match items.iter().position(|i| i.ciphertext.is_none()) {
        None => Ok(()),
        Some(i) if batch => Err(LogicalError::invalid(format!(
            "failed to parse batch input: '[{i}].ciphertext' missing ciphertext to {what}"
        ))),
        Some(_) => Err(LogicalError::invalid("missing ciphertext to decrypt")),
    }
}

fn b64(what: &str, v: &str) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    B64.decode(v.trim())
        .map(Zeroizing::new)
        .map_err(|_| crypto::invalid(format!("failed to base64-decode {what}")))
}

/// Encrypts one plaintext with version `requested` (0: latest).
pub(crate) fn encrypt(
    k: &Loaded,
    plaintext: &[u8],
    context: &[u8],
    nonce: &[u8],
    requested: i64,
    aad: &[u8],
) -> Result<(String, u64), CryptoError> {
    let p = &k.policy;
    let v = p.encryption_version(requested, "encryption")?;
    let raw = if let Some(cipher) = p.key_type.cipher() {
        if !nonce.is_empty() {
            return Err(crypto::invalid("nonce provided when not allowed"));
        }
        let klen = cipher.key_len();
        if p.derived {
            let extra = if p.convergent_encryption { 32 } else { 0 };
            let key = p.symmetric_key(v, context, klen + extra)?;
            let nonce = if p.convergent_encryption {
                crypto::convergent_nonce(&key[klen..], plaintext)
            } else {
                crypto::random_nonce()
            };
            crypto::seal(&cipher.key(&key[..klen])?, nonce, plaintext, aad)?
        } else {
            let parsed = k.parsed(v)?;
            let key = parsed
                .aead
                .as_ref()
                .ok_or_else(|| crypto::internal("symmetric key not parsed"))?;
            crypto::seal(key, crypto::random_nonce(), plaintext, aad)?
        }
    } else if p.key_type.rsa_bits().is_some() {
        if !aad.is_empty() {
            return Err(crypto::invalid(format!(
                "associated_data provided for non-AEAD cipher suite {}",
                p.key_type.name()
            )));
        }
        let parsed = k.parsed(v)?;
        let public = parsed
            .rsa_public
            .as_ref()
            .ok_or_else(|| crypto::internal("RSA key not parsed"))?;
        crypto::rsa_oaep_encrypt(public, plaintext)?
    } else {
        return Err(crypto::invalid(format!(
            "message encryption not supported for key type {}",
            p.key_type.name()
        )));
    };
    Ok((format!("vault:v{v}:{}", B64.encode(raw)), v))
}

/// Decrypts one `vault:v<N>:` ciphertext: (plaintext, N).
pub(crate) fn decrypt(
    k: &Loaded,
    ciphertext: &str,
    context: &[u8],
    aad: &[u8],
) -> Result<(Secret, u64), CryptoError> {
    let p = &k.policy;
    if !p.key_type.encryption() {
        return Err(crypto::invalid(format!(
            "message decryption not supported for key type {}",
            p.key_type.name()
        )));
    }
    let (v, payload) = p.split_versioned(ciphertext.trim(), "ciphertext")?;
    let raw = B64
        .decode(payload)
        .map_err(|_| crypto::invalid("invalid ciphertext: could not decode base64"))?;
    if let Some(cipher) = p.key_type.cipher() {
        let plain = if p.derived {
            let key = p.symmetric_key(v, context, cipher.key_len())?;
            crypto::open(&cipher.key(&key[..cipher.key_len()])?, &raw, aad)?
        } else {
            let parsed = k.parsed(v)?;
            let key = parsed
                .aead
                .as_ref()
                .ok_or_else(|| crypto::internal("symmetric key not parsed"))?;
            crypto::open(key, &raw, aad)?
        };
        return Ok((plain, v));
    }
    if !aad.is_empty() {
        return Err(crypto::invalid(format!(
            "associated_data provided for non-AEAD cipher suite {}",
            p.key_type.name()
        )));
    }
    let parsed = k.parsed(v)?;
    let dec = parsed.rsa_decrypt.as_ref().ok_or_else(|| {
        crypto::invalid(
            "cannot decrypt ciphertext, key version does not have a private counterpart",
        )
    })?;
    Ok((dec.decrypt(crypto::OaepHash::Sha256, &raw)?, v))
}

/// Context, nonce and associated data of an item, decoded.
struct Decoded {
    context: Zeroizing<Vec<u8>>,
    nonce: Zeroizing<Vec<u8>>,
    aad: Zeroizing<Vec<u8>>,
}

fn decode_item(it: &Item) -> Result<Decoded, CryptoError> {
    let opt = |what: &str, v: &str| {
        if v.is_empty() {
            Ok(Zeroizing::new(Vec::new()))
        } else {
            b64(what, v)
        }
    };
    Ok(Decoded {
        context: opt("context", &it.context)?,
        nonce: opt("nonce", &it.nonce)?,
        aad: opt("associated_data", &it.associated_data)?,
    })
}

/// One item's ciphertext decrypted, with its decoded fields.
fn decrypt_item(k: &Loaded, it: &Item) -> Result<(Secret, Decoded), CryptoError> {
    let d = decode_item(it)?;
    let (plain, _) = decrypt(
        k,
        it.ciphertext.as_deref().unwrap_or(""),
        &d.context,
        &d.aad,
    )?;
    Ok((plain, d))
}

fn check_context_uniform(items: &[Item]) -> Result<(), LogicalError> {
    let set = !items[0].context.is_empty();
    if items.iter().any(|i| i.context.is_empty() == set) {
        return Err(LogicalError::invalid(
            "context should be set either in all the request blocks or in none",
        ));
    }
    Ok(())
}

impl Transit {
    async fn encrypt_existence(&self, c: Ctx<'_>) -> Result<bool, LogicalError> {
        Ok(self
            .load(c.storage, &c.data.str_or("name", "")?)
            .await?
            .is_some())
    }

    async fn encrypt_path(&self, c: Ctx<'_>) -> HandlerResult {
        let name = c.data.str_or("name", "")?;
        let (items, batch) = items(&c)?;
        if !batch && items[0].plaintext.is_none() {
            return Err(LogicalError::invalid("missing plaintext to encrypt"));
        }
        if batch {
            if let Some(i) = items.iter().position(|i| i.plaintext.is_none()) {
                return Err(LogicalError::invalid(format!(
                    "failed to parse batch input: '[{i}].plaintext' missing plaintext to encrypt"
                )));
            }
        }
        check_context_uniform(&items)?;
        let mut warning = None;
        let k = match self.load(c.storage, &name).await? {
            Some(k) => k,
            None => {
                if c.req.operation != Operation::Create
                    || keys_config(c.storage).await?.disable_upsert
                {
                    return Err(LogicalError::invalid("encryption key not found"));
                }
                let t = c.data.str_or("type", "aes256-gcm96")?;
                let key_type = match KeyType::parse(&t) {
                    Some(kt) if kt.cipher().is_some() => kt,
                    Some(_) => {
                        return Err(LogicalError::invalid(format!(
                            "key type {t} not supported for this operation"
                        )))
                    }
                    None => return Err(LogicalError::invalid(format!("unknown key type {t}"))),
                };
                let convergent = c.data.bool_or("convergent_encryption", false)?;
                let derived = !items[0].context.is_empty();
                if convergent && !derived {
                    return Err(LogicalError::invalid(
                        "convergent encryption requires derivation to be enabled, so context is required",
                    ));
                }
                let _guard = self.write_lock.lock().await;
                match self.load(c.storage, &name).await? {
                    Some(k) => {
                        warning = Some(
                            "Attempted creation of the key during the encrypt operation, but it was created beforehand",
                        );
                        k
                    }
                    None => {
                        let mut p = Policy::new(&name, key_type);
                        p.derived = derived;
                        p.convergent_encryption = convergent;
                        p.rotate(self.now())?;
                        self.store(c.storage, p).await?
                    }
                }
            }
        };
        let results = items
            .iter()
            .map(|it| {
                let d = decode_item(it)?;
                let plain = b64("plaintext", it.plaintext.as_deref().unwrap_or(""))?;
                let (ct, v) = encrypt(&k, &plain, &d.context, &d.nonce, it.key_version, &d.aad)?;
                let mut m = Map::new();
                m.insert("ciphertext".into(), Value::from(ct));
                m.insert("key_version".into(), Value::from(v));
                Ok(m)
            })
            .collect();
        let mut r = respond(&c, batch, &items, results, ENCRYPT_ERRORS)?;
        if let (Some(r), Some(w)) = (r.as_mut(), warning) {
            r.warnings.push(w.to_string());
        }
        Ok(r)
    }

    /// The items of a decrypt or rewrap and the key they name.
    async fn ciphertext_items(
        &self,
        c: &Ctx<'_>,
        what: &str,
    ) -> Result<(Vec<Item>, bool, std::sync::Arc<Loaded>), LogicalError> {
        let name = c.data.str_or("name", "")?;
        let (items, batch) = items(c)?;
        require_ciphertext(&items, batch, what)?;
        check_context_uniform(&items)?;
        let k = self.must_load(c.storage, &name, "encryption").await?;
        Ok((items, batch, k))
    }

    async fn decrypt_path(&self, c: Ctx<'_>) -> HandlerResult {
        let (items, batch, k) = self.ciphertext_items(&c, "decrypt").await?;
        let results = items
            .iter()
            .map(|it| {
                let (plain, _) = decrypt_item(&k, it)?;
                let mut m = Map::new();
                m.insert("plaintext".into(), Value::from(B64.encode(&*plain)));
                Ok(m)
            })
            .collect();
        respond(&c, batch, &items, results, DECRYPT_ERRORS)
    }

    async fn rewrap_path(&self, c: Ctx<'_>) -> HandlerResult {
        let (items, batch, k) = self.ciphertext_items(&c, "rewrap").await?;
        let results = items
            .iter()
            .map(|it| {
                let (plain, d) = decrypt_item(&k, it)?;
                let (ct, v) = encrypt(&k, &plain, &d.context, &d.nonce, it.key_version, &d.aad)?;
                let mut m = Map::new();
                m.insert("ciphertext".into(), Value::from(ct));
                m.insert("key_version".into(), Value::from(v));
                Ok(m)
            })
            .collect();
        respond(&c, batch, &items, results, ITEM_ERRORS)
    }

    async fn datakey_path(&self, c: Ctx<'_>) -> HandlerResult {
        let name = c.data.str_or("name", "")?;
        let kind = c.data.str_or("plaintext", "")?;
        if kind != "plaintext" && kind != "wrapped" {
            return Err(LogicalError::invalid(format!(
                "invalid path: datakey/{kind}; use datakey/plaintext/:name or datakey/wrapped/:name"
            )));
        }
        let bits = c.data.get_i64("bits")?.unwrap_or(256);
        if !matches!(bits, 128 | 256 | 512) {
            return Err(LogicalError::invalid(format!("invalid bits value {bits}")));
        }
        let context = match c.data.get_str("context")? {
            Some(s) if !s.is_empty() => Zeroizing::new(decode_b64("context", &s)?),
            _ => Zeroizing::new(Vec::new()),
        };
        let nonce = match c.data.get_str("nonce")? {
            Some(s) if !s.is_empty() => decode_b64("nonce", &s)?,
            _ => Vec::new(),
        };
        let aad = match c.data.get_str("associated_data")? {
            Some(s) if !s.is_empty() => Zeroizing::new(decode_b64("associated_data", &s)?),
            _ => Zeroizing::new(Vec::new()),
        };
        let k = self.must_load(c.storage, &name, "encryption").await?;
        let key = crypto::random(bits as usize / 8);
        let requested = c.data.get_i64("key_version")?.unwrap_or(0);
        let (ct, v) = encrypt(&k, &key, &context, &nonce, requested, &aad)?;
        let mut m = Map::new();
        m.insert("ciphertext".into(), json!(ct));
        m.insert("key_version".into(), json!(v));
        if kind == "plaintext" {
            m.insert("plaintext".into(), json!(B64.encode(&*key)));
        }
        Ok(Some(Response::data(m)))
    }
}

fn item_fields(p: Path<Transit>) -> Path<Transit> {
    p.field(name_field())
        .field(Field::new(
            "context",
            FieldType::String,
            "Base64 context for key derivation (derived keys).",
        ))
        .field(Field::new(
            "nonce",
            FieldType::String,
            "Base64 nonce (only convergent keys of the first version allowed one).",
        ))
        .field(Field::new(
            "key_version",
            FieldType::Int,
            "Key version to use (0: the latest).",
        ))
        .field(Field::new(
            "associated_data",
            FieldType::String,
            "Base64 associated data authenticated with AEAD ciphers.",
        ))
        .field(Field::new(
            "batch_input",
            FieldType::Raw,
            "Items to process in one request, each with the single-item fields and a `reference`.",
        ))
}

fn partial_failure_field() -> Field {
    Field::new(
        "partial_failure_response_code",
        FieldType::Int,
        "Status when some batch items failed and others succeeded (default 400).",
    )
}

pub(crate) fn paths() -> Vec<Path<Transit>> {
    vec![
        item_fields(Path::new(concat!("encrypt/", name_re!())))
            .field(partial_failure_field())
            .field(
                Field::new("plaintext", FieldType::String, "Base64 plaintext to encrypt.")
                    .sensitive(),
            )
            .field(
                Field::new("type", FieldType::String, "Upsert: the type of key to create.")
                    .default("aes256-gcm96"),
            )
            .field(Field::new(
                "convergent_encryption",
                FieldType::Bool,
                "Upsert: create a convergent key.",
            ))
            .existence(|b: &Transit, c| Box::pin(b.encrypt_existence(c)))
            .op(Operation::Create, |b: &Transit, c| Box::pin(b.encrypt_path(c)))
            .op(Operation::Update, |b: &Transit, c| Box::pin(b.encrypt_path(c)))
            .help("Encrypt base64 plaintext with a named key (created on first use if policy allows create)."),
        item_fields(Path::new(concat!("decrypt/", name_re!())))
            .field(partial_failure_field())
            .field(Field::new(
                "ciphertext",
                FieldType::String,
                "The vault:v<N>: ciphertext to decrypt.",
            ))
            .op(Operation::Update, |b: &Transit, c| Box::pin(b.decrypt_path(c)))
            .help("Decrypt a ciphertext with a named key."),
        item_fields(Path::new(concat!("rewrap/", name_re!())))
            .field(Field::new(
                "ciphertext",
                FieldType::String,
                "The vault:v<N>: ciphertext to re-encrypt with the latest (or given) version.",
            ))
            .op(Operation::Update, |b: &Transit, c| Box::pin(b.rewrap_path(c)))
            .help("Re-encrypt a ciphertext with the newest key version, without revealing the plaintext."),
        Path::new(concat!(r"datakey/(?P<plaintext>\w+)/", name_re!()))
            .field(name_field())
            .field(Field::new(
                "plaintext",
                FieldType::String,
                "\"plaintext\" also returns the key; \"wrapped\" only its ciphertext.",
            ))
            .field(Field::new("context", FieldType::String, "Base64 context for derived keys."))
            .field(Field::new("nonce", FieldType::String, "Base64 nonce (legacy convergent keys)."))
            .field(Field::new(
                "bits",
                FieldType::Int,
                "Bits of the generated key: 128, 256 or 512.",
            ).default(256))
            .field(Field::new("key_version", FieldType::Int, "Key version to encrypt with."))
            .field(Field::new(
                "associated_data",
                FieldType::String,
                "Base64 associated data for AEAD ciphers.",
            ))
            .op(Operation::Update, |b: &Transit, c| Box::pin(b.datakey_path(c)))
            .help("Generate a data key, returned encrypted with the named key (and in plaintext)."),
    ]
}
