//! `sign/:name[/:algorithm]`, `verify/:name[/:algorithm]` (signatures and
//! HMACs) and `hmac/:name[/:algorithm]`, one item or a `batch_input`.
//!
//! Invariants: an HMAC is compared in constant time; a signature or HMAC
//! that does not match is `valid: false` (200), while a malformed request
//! (no `vault:v` prefix, a version below `min_decryption_version`) is a 400.

use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use base64::Engine;
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

use arca_sdk::{Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path};

use crate::backend::Transit;
use crate::crypto::{
    self, CryptoError, HashAlg, SaltLength, SignOptions, SigningKey, VerifyingKey,
};
use crate::keys::KeyType;
use crate::material::{derived_ed25519, Loaded};
use crate::path_crypt::{items, respond, BatchErrors, Item, ITEM_ERRORS};

const SIGN_ERRORS: BatchErrors<'static> = BatchErrors {
    fields: &[("key_version", || Value::from(0))],
    status: false,
};
const VERIFY_ERRORS: BatchErrors<'static> = BatchErrors {
    fields: &[("valid", || Value::from(false))],
    status: false,
};
use crate::path_keys::{name_field, name_re};

fn input(it: &Item) -> Result<Vec<u8>, CryptoError> {
    B64.decode(it.input.as_deref().unwrap_or("").trim())
        .map_err(|_| crypto::invalid("unable to decode input as base64"))
}

fn context(it: &Item) -> Result<Vec<u8>, CryptoError> {
    if it.context.is_empty() {
        return Ok(Vec::new());
    }
    B64.decode(it.context.trim())
        .map_err(|_| crypto::invalid("failed to base64-decode context"))
}

/// The hash algorithm: the path's, else `hash_algorithm`, else `algorithm`.
fn hash_alg(c: &Ctx<'_>, default: &str) -> Result<HashAlg, LogicalError> {
    let name = match c.data.get_str("urlalgorithm")?.filter(|a| !a.is_empty()) {
        Some(a) => a,
        None if c.data.is_set("hash_algorithm") => c.data.str_or("hash_algorithm", default)?,
        None if c.data.is_set("algorithm") => c.data.str_or("algorithm", default)?,
        None => default.to_string(),
    };
    HashAlg::parse(&name)
        .ok_or_else(|| LogicalError::invalid(format!("invalid hash algorithm {name:?}")))
}

fn sign_options(c: &Ctx<'_>) -> Result<SignOptions, LogicalError> {
    let hash = hash_alg(c, "sha2-256")?;
    let marshaling = c.data.str_or("marshaling_algorithm", "asn1")?;
    let jws = match marshaling.as_str() {
        "asn1" => false,
        "jws" => true,
        other => {
            return Err(LogicalError::invalid(format!(
                "invalid marshaling type {other:?}"
            )))
        }
    };
    let sig_alg = c.data.str_or("signature_algorithm", "")?;
    let pkcs1v15 = match sig_alg.as_str() {
        "" | "pss" => false,
        "pkcs1v15" => true,
        other => {
            return Err(LogicalError::invalid(format!(
                "unsupported rsa signature algorithm {other}"
            )))
        }
    };
    let salt =
        SaltLength::parse(&c.data.str_or("salt_length", "auto")?).map_err(LogicalError::invalid)?;
    let prehashed = c.data.bool_or("prehashed", false)?;
    if hash == HashAlg::None && (!prehashed || !pkcs1v15) {
        return Err(LogicalError::invalid(
            "hash_algorithm=none requires both prehashed=true and signature_algorithm=pkcs1v15",
        ));
    }
    Ok(SignOptions {
        hash,
        prehashed,
        pkcs1v15,
        salt,
        jws,
    })
}

fn encode_sig(sig: &[u8], o: &SignOptions) -> String {
    if o.jws {
        B64URL.encode(sig)
    } else {
        B64.encode(sig)
    }
}

fn sign_one(
    k: &Loaded,
    it: &Item,
    o: &SignOptions,
    batch: bool,
) -> Result<Map<String, Value>, CryptoError> {
    let p = &k.policy;
    let v = p.encryption_version(it.key_version, "signing")?;
    let input = input(it)?;
    let mut m = Map::new();
    let sig = if p.key_type == KeyType::Ed25519 && p.derived {
        let kp = derived_ed25519(p, v, &context(it)?)?;
        use aws_lc_rs::signature::KeyPair;
        m.insert(
            // Vault's batch items name it `publickey`.
            if batch { "publickey" } else { "public_key" }.into(),
            Value::from(B64.encode(kp.public_key().as_ref())),
        );
        SigningKey::Ed25519(kp).sign(&input, o)?
    } else {
        let parsed = k.parsed(v)?;
        let signer = parsed.signer.as_ref().ok_or_else(|| {
            crypto::invalid("requested version for signing does not contain a private part")
        })?;
        signer.sign(&input, o)?
    };
    m.insert(
        "signature".into(),
        Value::from(format!("vault:v{v}:{}", encode_sig(&sig, o))),
    );
    m.insert("key_version".into(), Value::from(v));
    Ok(m)
}

fn verify_signature(k: &Loaded, it: &Item, o: &SignOptions) -> Result<bool, CryptoError> {
    let p = &k.policy;
    let sig = it.signature.as_deref().unwrap_or("");
    let (v, payload) = p.split_versioned(sig.trim(), "signature")?;
    let raw = if o.jws {
        B64URL.decode(payload)
    } else {
        B64.decode(payload)
    }
    .map_err(|_| crypto::invalid("invalid base64 signature value"))?;
    let input = input(it)?;
    if p.key_type == KeyType::Ed25519 && p.derived {
        use aws_lc_rs::signature::KeyPair;
        let kp = derived_ed25519(p, v, &context(it)?)?;
        let vk = VerifyingKey::Ed25519(kp.public_key().as_ref().to_vec());
        return vk.verify(&input, &raw, o);
    }
    let parsed = k.parsed(v)?;
    let vk = parsed
        .verifier
        .as_ref()
        .ok_or_else(|| crypto::internal("verification key not parsed"))?;
    vk.verify(&input, &raw, o)
}

fn hmac_key(k: &Loaded, v: u64) -> Result<&[u8], CryptoError> {
    let e = k.policy.version(v)?;
    if e.hmac_key.is_empty() {
        return Err(crypto::invalid("no HMAC key exists for that key version"));
    }
    Ok(&e.hmac_key)
}

fn hmac_one(k: &Loaded, it: &Item, alg: HashAlg) -> Result<Map<String, Value>, CryptoError> {
    let p = &k.policy;
    let v = match it.key_version {
        0 => p.latest_version,
        n if n < 0 => {
            return Err(crypto::invalid(
                "key version does not exist (cannot be negative)",
            ))
        }
        n if n as u64 > p.latest_version => {
            return Err(crypto::invalid(format!(
                "key version does not exist; latest key version is {}",
                p.latest_version
            )))
        }
        n if (n as u64) < p.min_encryption_version => {
            return Err(crypto::invalid(
                "requested version for HMAC is less than the minimum encryption key version",
            ))
        }
        n => n as u64,
    };
    let mac = alg.hmac(hmac_key(k, v)?, &input(it)?)?;
    let mut m = Map::new();
    m.insert(
        "hmac".into(),
        Value::from(format!("vault:v{v}:{}", B64.encode(mac))),
    );
    Ok(m)
}

fn verify_hmac(k: &Loaded, it: &Item, alg: HashAlg) -> Result<bool, CryptoError> {
    let p = &k.policy;
    let given = it.hmac.as_deref().unwrap_or("");
    let (v, payload) = p.split_versioned(given.trim(), "hmac")?;
    let raw = B64
        .decode(payload)
        .map_err(|_| crypto::invalid("invalid base64 hmac value"))?;
    let mac = alg.hmac(hmac_key(k, v)?, &input(it)?)?;
    Ok(bool::from(mac.ct_eq(&raw)))
}

impl Transit {
    async fn sign_path(&self, c: Ctx<'_>) -> HandlerResult {
        let name = c.data.str_or("name", "")?;
        let o = sign_options(&c)?;
        let (items, batch) = items(&c)?;
        let k = self.must_load(c.storage, &name, "signing").await?;
        if !k.policy.key_type.signing() {
            return Err(LogicalError::invalid(format!(
                "key type {} does not support signing",
                k.policy.key_type.name()
            )));
        }
        let results = items.iter().map(|it| sign_one(&k, it, &o, batch)).collect();
        respond(&c, batch, &items, results, SIGN_ERRORS)
    }

    async fn verify_path(&self, c: Ctx<'_>) -> HandlerResult {
        let name = c.data.str_or("name", "")?;
        let (items, batch) = items(&c)?;
        let sigs = items.iter().filter(|i| i.signature.is_some()).count();
        let macs = items.iter().filter(|i| i.hmac.is_some()).count();
        let is_hmac = match (sigs, macs) {
            (0, 0) if !batch => {
                return Err(LogicalError::invalid(
                    "neither a 'signature' nor an 'hmac' were given to verify",
                ))
            }
            (0, 0) => {
                return Err(LogicalError::invalid(
                    "no batch_input elements have 'signature' or 'hmac'",
                ))
            }
            (s, h) if s > 0 && h > 0 => {
                return Err(LogicalError::invalid(if batch {
                    "elements of batch_input must all provide 'signature' or all provide 'hmac'"
                } else {
                    "provide one of 'signature' or 'hmac'"
                }))
            }
            (s, 0) if s < items.len() => {
                return Err(LogicalError::invalid(
                    "some elements of batch_input are missing 'signature'",
                ))
            }
            (0, h) if h < items.len() => {
                return Err(LogicalError::invalid(
                    "some elements of batch_input are missing 'hmac'",
                ))
            }
            (0, _) => true,
            _ => false,
        };
        let k = self
            .must_load(
                c.storage,
                &name,
                if is_hmac {
                    "encryption"
                } else {
                    "signature verification"
                },
            )
            .await?;
        let results: Vec<Result<Map<String, Value>, CryptoError>> = if is_hmac {
            let alg = hash_alg(&c, "sha2-256")?;
            items
                .iter()
                .map(|it| {
                    let mut m = Map::new();
                    m.insert("valid".into(), Value::from(verify_hmac(&k, it, alg)?));
                    Ok(m)
                })
                .collect()
        } else {
            if !k.policy.key_type.signing() {
                return Err(LogicalError::invalid(format!(
                    "key type {} does not support verification",
                    k.policy.key_type.name()
                )));
            }
            let o = sign_options(&c)?;
            items
                .iter()
                .map(|it| {
                    let mut m = Map::new();
                    m.insert("valid".into(), Value::from(verify_signature(&k, it, &o)?));
                    Ok(m)
                })
                .collect()
        };
        respond(&c, batch, &items, results, VERIFY_ERRORS)
    }

    async fn hmac_path(&self, c: Ctx<'_>) -> HandlerResult {
        let name = c.data.str_or("name", "")?;
        let alg = hash_alg(&c, "sha2-256")?;
        if alg == HashAlg::None {
            return Err(LogicalError::invalid("unsupported algorithm none"));
        }
        let (items, batch) = items(&c)?;
        if !batch && items[0].input.is_none() {
            return Err(LogicalError::invalid("missing input for HMAC"));
        }
        let k = self.must_load(c.storage, &name, "HMAC").await?;
        let results = items
            .iter()
            .map(|it| {
                if it.input.is_none() {
                    return Err(crypto::invalid("missing input for HMAC"));
                }
                hmac_one(&k, it, alg)
            })
            .collect();
        respond(&c, batch, &items, results, ITEM_ERRORS)
    }
}

fn common(p: Path<Transit>) -> Path<Transit> {
    p.field(name_field())
        .field(Field::new(
            "urlalgorithm",
            FieldType::String,
            "Hash algorithm (in the path).",
        ))
        .field(Field::new("input", FieldType::String, "Base64 input."))
        .field(Field::new(
            "context",
            FieldType::String,
            "Base64 context (derived ed25519 keys).",
        ))
        .field(
            Field::new(
                "hash_algorithm",
                FieldType::String,
                "Hash algorithm (default sha2-256).",
            )
            .default("sha2-256"),
        )
        .field(
            Field::new(
                "algorithm",
                FieldType::String,
                "Deprecated name of hash_algorithm.",
            )
            .default("sha2-256"),
        )
        .field(Field::new(
            "prehashed",
            FieldType::Bool,
            "The input is already a digest of hash_algorithm.",
        ))
        .field(Field::new(
            "signature_algorithm",
            FieldType::String,
            "RSA: pss (default) or pkcs1v15.",
        ))
        .field(
            Field::new(
                "marshaling_algorithm",
                FieldType::String,
                "asn1 (default) or jws (r‖s for ECDSA, URL-safe base64).",
            )
            .default("asn1"),
        )
        .field(
            Field::new(
                "salt_length",
                FieldType::String,
                "RSA-PSS salt: auto (default), hash, or a number of bytes.",
            )
            .default("auto"),
        )
        .field(Field::new(
            "key_version",
            FieldType::Int,
            "Key version (0: the latest).",
        ))
        .field(Field::new(
            "batch_input",
            FieldType::Raw,
            "Items to process in one request (failed items carry their error; the answer is 200).",
        ))
}

pub(crate) fn paths() -> Vec<Path<Transit>> {
    vec![
        common(Path::new(concat!(
            "sign/",
            name_re!(),
            "(?:/(?P<urlalgorithm>[\\w-]+))?"
        )))
        .op(Operation::Update, |b: &Transit, c| Box::pin(b.sign_path(c)))
        .help("Sign base64 input with a named key."),
        common(Path::new(concat!(
            "verify/",
            name_re!(),
            "(?:/(?P<urlalgorithm>[\\w-]+))?"
        )))
        .field(Field::new(
            "signature",
            FieldType::String,
            "The vault:v<N>: signature.",
        ))
        .field(Field::new(
            "hmac",
            FieldType::String,
            "The vault:v<N>: HMAC.",
        ))
        .op(Operation::Update, |b: &Transit, c| {
            Box::pin(b.verify_path(c))
        })
        .help("Verify a signature or HMAC of base64 input."),
        common(Path::new(concat!(
            "hmac/",
            name_re!(),
            "(?:/(?P<urlalgorithm>[\\w-]+))?"
        )))
        .op(Operation::Update, |b: &Transit, c| Box::pin(b.hmac_path(c)))
        .help("HMAC base64 input with a named key's HMAC key."),
    ]
}
