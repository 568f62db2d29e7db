//! Stored key material turned into usable key objects, and back: parsed
//! versions cached beside the policy they belong to, imported keys checked
//! and converted to the stored forms, exported keys in Vault's formats.
//!
//! Invariant: a [`Loaded`] key is immutable. Any change to a key builds a
//! new `Loaded` from the new policy, so a cached parsed version can never
//! disagree with the policy it came from.

use std::collections::HashMap;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use pkcs8::der::pem::LineEnding;
use pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use zeroize::Zeroizing;

use crate::crypto::{self, CryptoError, Curve, RsaDecryptor, Secret, SigningKey, VerifyingKey};
use crate::keys::{KeyType, KeyVersion, Policy};

/// The parsed forms of one version (what its type needs).
#[derive(Default)]
pub struct Parsed {
    /// Non-derived symmetric keys.
    pub aead: Option<aws_lc_rs::aead::LessSafeKey>,
    pub signer: Option<SigningKey>,
    pub verifier: Option<VerifyingKey>,
    pub rsa_decrypt: Option<RsaDecryptor>,
    pub rsa_public: Option<rsa::RsaPublicKey>,
}

/// A key as the engine serves it: the policy and its parsed versions.
pub struct Loaded {
    pub policy: Policy,
    parsed: parking_lot::Mutex<HashMap<u64, Arc<Parsed>>>,
}

impl Loaded {
    pub fn new(policy: Policy) -> Loaded {
        Loaded {
            policy,
            parsed: Default::default(),
        }
    }

    /// Version `v` parsed (once per loaded key).
    pub fn parsed(&self, v: u64) -> Result<Arc<Parsed>, CryptoError> {
        if let Some(p) = self.parsed.lock().get(&v) {
            return Ok(p.clone());
        }
        let p = Arc::new(parse(&self.policy, self.policy.version(v)?)?);
        self.parsed.lock().insert(v, p.clone());
        Ok(p)
    }
}

fn parse(policy: &Policy, e: &KeyVersion) -> Result<Parsed, CryptoError> {
    let t = policy.key_type;
    let mut p = Parsed::default();
    let bad = |what: &str| crypto::internal(format!("stored {what} key does not parse"));
    if let Some(c) = t.cipher() {
        if !policy.derived {
            p.aead = Some(c.key(&e.key)?);
        }
    } else if t == KeyType::Ed25519 {
        if !e.key.is_empty() && !policy.derived {
            p.signer = Some(SigningKey::Ed25519(
                aws_lc_rs::signature::Ed25519KeyPair::from_seed_unchecked(&e.key[..32])
                    .map_err(|_| bad("ed25519"))?,
            ));
        }
        if !policy.derived {
            p.verifier = Some(VerifyingKey::Ed25519(
                B64.decode(&e.public_key)
                    .map_err(|_| bad("ed25519 public"))?,
            ));
        }
    } else if let Some(curve) = t.curve() {
        macro_rules! ec {
            ($m:ident, $S:ident, $V:ident) => {{
                if !e.key.is_empty() {
                    let sk = $m::SecretKey::from_pkcs8_der(&e.key).map_err(|_| bad("ECDSA"))?;
                    let fast =
                        aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(curve.aws_signing(), &e.key)
                            .ok();
                    p.signer = Some(SigningKey::$S(
                        $m::ecdsa::SigningKey::from_bytes(&sk.to_bytes())
                            .map_err(|_| bad("ECDSA"))?,
                        fast,
                    ));
                }
                let pk = $m::PublicKey::from_public_key_pem(&e.public_key)
                    .map_err(|_| bad("ECDSA public"))?;
                use $m::elliptic_curve::sec1::ToEncodedPoint;
                let point = pk.to_encoded_point(false).as_bytes().to_vec();
                p.verifier = Some(VerifyingKey::$V(
                    $m::ecdsa::VerifyingKey::from_sec1_bytes(&point)
                        .map_err(|_| bad("ECDSA public"))?,
                    point,
                ));
            }};
        }
        match curve {
            Curve::P256 => ec!(p256, P256, P256),
            Curve::P384 => ec!(p384, P384, P384),
            Curve::P521 => ec!(p521, P521, P521),
        }
    } else if t.rsa_bits().is_some() {
        let public =
            rsa::RsaPublicKey::from_public_key_pem(&e.public_key).map_err(|_| bad("RSA public"))?;
        if !e.key.is_empty() {
            let k = rsa::RsaPrivateKey::from_pkcs8_der(&e.key).map_err(|_| bad("RSA"))?;
            p.signer = Some(SigningKey::Rsa(Box::new(k)));
            p.rsa_decrypt = Some(RsaDecryptor::from_pkcs8(&e.key)?);
        }
        p.verifier = Some(VerifyingKey::Rsa(Box::new(public.clone())));
        p.rsa_public = Some(public);
    }
    Ok(p)
}

macro_rules! ec_forms {
    ($m:ident, $sk:expr) => {{
        let sk = $sk;
        let der = sk.to_pkcs8_der().map_err(crypto::internal)?;
        let pem = sk
            .public_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(crypto::internal)?;
        Ok((Zeroizing::new(der.as_bytes().to_vec()), pem))
    }};
}

/// A new ECDSA key: (PKCS#8 DER, public key PEM).
pub fn generate_ec(curve: Curve) -> Result<(Secret, String), CryptoError> {
    macro_rules! gen {
        ($m:ident) => {{
            let sk = $m::SecretKey::random(&mut rand::rngs::OsRng);
            ec_forms!($m, sk)
        }};
    }
    match curve {
        Curve::P256 => gen!(p256),
        Curve::P384 => gen!(p384),
        Curve::P521 => gen!(p521),
    }
}

/// The PKIX public key PEM of a PKCS#8 RSA private key.
pub fn rsa_public_pem(der: &[u8]) -> Result<String, CryptoError> {
    let k = rsa::RsaPrivateKey::from_pkcs8_der(der).map_err(crypto::internal)?;
    k.to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(crypto::internal)
}

/// The Ed25519 key pair a derived Ed25519 key gives for `context`: HKDF of
/// the stored 64-byte key, its first 32 bytes as the seed (Vault's reader
/// hands Go's key generator the HKDF stream).
pub fn derived_ed25519(
    policy: &Policy,
    v: u64,
    context: &[u8],
) -> Result<aws_lc_rs::signature::Ed25519KeyPair, CryptoError> {
    let seed = policy.symmetric_key(v, context, 32)?;
    aws_lc_rs::signature::Ed25519KeyPair::from_seed_unchecked(&seed).map_err(crypto::internal)
}

pub fn derived_ed25519_public(
    policy: &Policy,
    v: u64,
    context: &[u8],
) -> Result<String, CryptoError> {
    use aws_lc_rs::signature::KeyPair;
    Ok(B64.encode(derived_ed25519(policy, v, context)?.public_key().as_ref()))
}

const ED25519_OID: pkcs8::ObjectIdentifier = pkcs8::ObjectIdentifier::new_unwrap("1.3.101.112");

/// A private key in PKCS#8 DER (or raw bytes for symmetric and HMAC
/// types) checked against `t` and turned into a stored version (without
/// its HMAC key).
pub fn import_private(t: KeyType, key: &[u8]) -> Result<KeyVersion, CryptoError> {
    let version = |key: Secret, public_key: String| KeyVersion {
        key,
        hmac_key: Zeroizing::new(Vec::new()),
        public_key,
        creation_time: chrono::Utc::now(),
    };
    if let Some(c) = t.cipher() {
        if key.len() != c.key_len() {
            return Err(crypto::invalid(format!(
                "invalid key size {} bytes for key type {}",
                key.len(),
                t.name()
            )));
        }
        return Ok(version(Zeroizing::new(key.to_vec()), String::new()));
    }
    if t == KeyType::Hmac {
        if !(crate::keys::HMAC_MIN_KEY..=crate::keys::HMAC_MAX_KEY).contains(&key.len()) {
            return Err(crypto::invalid(format!(
                "invalid key size {} bytes for key type hmac",
                key.len()
            )));
        }
        return Ok(version(Zeroizing::new(key.to_vec()), String::new()));
    }
    let info = pkcs8::PrivateKeyInfo::try_from(key)
        .map_err(|e| crypto::invalid(format!("error parsing asymmetric key: {e}")))?;
    let wrong = || {
        crypto::invalid(format!(
            "the imported key is not a {} private key",
            t.name()
        ))
    };
    if t == KeyType::Ed25519 {
        if info.algorithm.oid != ED25519_OID {
            return Err(wrong());
        }
        // CurvePrivateKey ::= OCTET STRING (the 32-byte seed).
        let inner = info.private_key;
        if inner.len() != 34 || inner[0] != 0x04 || inner[1] != 0x20 {
            return Err(crypto::invalid(
                "error parsing asymmetric key: bad Ed25519 seed",
            ));
        }
        let seed = Zeroizing::new(inner[2..].to_vec());
        let kp = aws_lc_rs::signature::Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|_| wrong())?;
        use aws_lc_rs::signature::KeyPair;
        let public = kp.public_key().as_ref().to_vec();
        let mut full = Zeroizing::new(seed.to_vec());
        full.extend_from_slice(&public);
        return Ok(version(full, B64.encode(public)));
    }
    if let Some(curve) = t.curve() {
        macro_rules! ec {
            ($m:ident) => {{
                let sk = $m::SecretKey::from_pkcs8_der(key).map_err(|_| wrong())?;
                let r: Result<(Secret, String), CryptoError> = ec_forms!($m, sk);
                r?
            }};
        }
        let (der, pem) = match curve {
            Curve::P256 => ec!(p256),
            Curve::P384 => ec!(p384),
            Curve::P521 => ec!(p521),
        };
        return Ok(version(der, pem));
    }
    if let Some(bits) = t.rsa_bits() {
        use rsa::traits::PublicKeyParts;
        let k = rsa::RsaPrivateKey::from_pkcs8_der(key).map_err(|_| wrong())?;
        if k.n().bits() != bits {
            return Err(crypto::invalid(format!(
                "the imported RSA key has {} bits, not the {bits} of {}",
                k.n().bits(),
                t.name()
            )));
        }
        let der = k.to_pkcs8_der().map_err(crypto::internal)?;
        let pem = k
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(crypto::internal)?;
        return Ok(version(Zeroizing::new(der.as_bytes().to_vec()), pem));
    }
    Err(crypto::invalid(format!(
        "cannot import keys of type {}",
        t.name()
    )))
}

/// A public key in PEM (PKIX) checked against `t`: a version that can verify
/// (and, for RSA, encrypt) but not sign.
pub fn import_public(t: KeyType, pem: &str) -> Result<KeyVersion, CryptoError> {
    let wrong = || {
        crypto::invalid(format!(
            "error parsing public key: not a {} public key",
            t.name()
        ))
    };
    let public_key = if t == KeyType::Ed25519 {
        let der = pem_body(pem)?;
        let spki = pkcs8::SubjectPublicKeyInfoRef::try_from(der.as_slice()).map_err(|_| wrong())?;
        if spki.algorithm.oid != ED25519_OID {
            return Err(wrong());
        }
        B64.encode(spki.subject_public_key.raw_bytes())
    } else if let Some(curve) = t.curve() {
        macro_rules! ec {
            ($m:ident) => {
                $m::PublicKey::from_public_key_pem(pem)
                    .map_err(|_| wrong())?
                    .to_public_key_pem(LineEnding::LF)
                    .map_err(crypto::internal)?
            };
        }
        match curve {
            Curve::P256 => ec!(p256),
            Curve::P384 => ec!(p384),
            Curve::P521 => ec!(p521),
        }
    } else if let Some(bits) = t.rsa_bits() {
        use rsa::traits::PublicKeyParts;
        let k = rsa::RsaPublicKey::from_public_key_pem(pem).map_err(|_| wrong())?;
        if k.n().bits() != bits {
            return Err(wrong());
        }
        k.to_public_key_pem(LineEnding::LF)
            .map_err(crypto::internal)?
    } else {
        return Err(crypto::invalid(format!(
            "public keys cannot be imported for key type {}",
            t.name()
        )));
    };
    Ok(KeyVersion {
        key: Zeroizing::new(Vec::new()),
        hmac_key: crypto::random(32),
        public_key,
        creation_time: chrono::Utc::now(),
    })
}

fn pem_body(pem: &str) -> Result<Vec<u8>, CryptoError> {
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    B64.decode(body.trim())
        .map_err(|_| crypto::invalid("error parsing public key: not in PEM format"))
}

/// What `export/:type/:name` can export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportType {
    Encryption,
    Signing,
    Hmac,
    Public,
}

impl ExportType {
    pub fn parse(s: &str) -> Option<ExportType> {
        Some(match s {
            "encryption-key" => ExportType::Encryption,
            "signing-key" => ExportType::Signing,
            "hmac-key" => ExportType::Hmac,
            "public-key" => ExportType::Public,
            _ => return None,
        })
    }
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let b = B64.encode(der);
    let mut s = format!("-----BEGIN {label}-----\n");
    for chunk in b.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s
}

/// One version exported as Vault formats it (`format`: "", raw, der, pem).
pub fn export(
    t: KeyType,
    e: &KeyVersion,
    what: ExportType,
    format: &str,
) -> Result<Zeroizing<String>, CryptoError> {
    let fmt_err = |allowed: &str| {
        crypto::invalid(format!(
            "unknown format {format:?} for this key; supported values are {allowed}"
        ))
    };
    let private_missing =
        || crypto::invalid("this key version has no private key (it was imported as a public key)");
    match what {
        ExportType::Hmac => {
            if !matches!(format, "" | "raw") {
                return Err(fmt_err("`` or `raw`"));
            }
            Ok(Zeroizing::new(B64.encode(&*e.hmac_key)))
        }
        ExportType::Encryption | ExportType::Signing => {
            if t.cipher().is_some() {
                if !matches!(format, "" | "raw") {
                    return Err(fmt_err("`` or `raw`"));
                }
                return Ok(Zeroizing::new(B64.encode(&*e.key)));
            }
            if e.key.is_empty() {
                return Err(private_missing());
            }
            if t == KeyType::Ed25519 {
                return match format {
                    "" | "raw" => Ok(Zeroizing::new(B64.encode(&*e.key))),
                    "der" | "pem" => {
                        let mut der = Zeroizing::new(vec![
                            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70,
                            0x04, 0x22, 0x04, 0x20,
                        ]);
                        der.extend_from_slice(&e.key[..32]);
                        Ok(Zeroizing::new(if format == "der" {
                            B64.encode(&*der)
                        } else {
                            pem_encode("PRIVATE KEY", &der)
                        }))
                    }
                    _ => Err(fmt_err("``, `raw`, `der` or `pem`")),
                };
            }
            match format {
                "der" => Ok(Zeroizing::new(B64.encode(&*e.key))),
                "pem" => Ok(Zeroizing::new(pem_encode("PRIVATE KEY", &e.key))),
                "" => {
                    if let Some(curve) = t.curve() {
                        macro_rules! sec1 {
                            ($m:ident) => {{
                                let sk = $m::SecretKey::from_pkcs8_der(&e.key)
                                    .map_err(crypto::internal)?;
                                let pem =
                                    sk.to_sec1_pem(LineEnding::LF).map_err(crypto::internal)?;
                                Ok(Zeroizing::new(pem.to_string()))
                            }};
                        }
                        match curve {
                            Curve::P256 => sec1!(p256),
                            Curve::P384 => sec1!(p384),
                            Curve::P521 => sec1!(p521),
                        }
                    } else {
                        use rsa::pkcs1::EncodeRsaPrivateKey;
                        let k =
                            rsa::RsaPrivateKey::from_pkcs8_der(&e.key).map_err(crypto::internal)?;
                        let pem = k.to_pkcs1_pem(LineEnding::LF).map_err(crypto::internal)?;
                        Ok(Zeroizing::new(pem.to_string()))
                    }
                }
                _ => Err(fmt_err("``, `der` or `pem`")),
            }
        }
        ExportType::Public => {
            if t == KeyType::Ed25519 {
                let raw = B64.decode(&e.public_key).map_err(crypto::internal)?;
                let mut der = vec![
                    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
                ];
                der.extend_from_slice(&raw);
                return match format {
                    "" | "raw" => Ok(Zeroizing::new(e.public_key.clone())),
                    "der" => Ok(Zeroizing::new(B64.encode(&der))),
                    "pem" => Ok(Zeroizing::new(pem_encode("PUBLIC KEY", &der))),
                    _ => Err(fmt_err("``, `raw`, `der` or `pem`")),
                };
            }
            match format {
                "" | "pem" => Ok(Zeroizing::new(e.public_key.clone())),
                "der" => Ok(Zeroizing::new(B64.encode(pem_body(&e.public_key)?))),
                _ => Err(fmt_err("``, `der` or `pem`")),
            }
        }
    }
}
