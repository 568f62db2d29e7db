//! Key generation, key loading and the small X.509 helpers the paths share.
//!
//! Keys are kept as PKCS#8 PEM in the engine's (barrier-encrypted) storage.
//! Keys are generated and used through rcgen on AWS-LC: RSA 2048/3072/4096,
//! EC P-256/P-384/P-521, Ed25519. The `rsa` crate converts to and from
//! PKCS#1.

use rcgen::{KeyPair, SignatureAlgorithm};
use rsa::pkcs8::EncodePrivateKey;
use x509_parser::prelude::*;

use arca_sdk::LogicalError;

/// A key type and size as Vault names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySpec {
    Rsa(usize),
    Ec(usize),
    Ed25519,
}

impl KeySpec {
    /// `key_type` + `key_bits` with Vault's defaults (rsa 2048, ec 256) and
    /// its accepted sizes.
    pub fn parse(key_type: &str, key_bits: i64) -> Result<KeySpec, LogicalError> {
        match key_type {
            "rsa" => match key_bits {
                0 => Ok(KeySpec::Rsa(2048)),
                2048 | 3072 | 4096 => Ok(KeySpec::Rsa(key_bits as usize)),
                b => Err(LogicalError::invalid(format!(
                    "unsupported bit length for RSA key: {b} (use 2048, 3072 or 4096)"
                ))),
            },
            "ec" => match key_bits {
                0 | 256 => Ok(KeySpec::Ec(256)),
                384 => Ok(KeySpec::Ec(384)),
                521 => Ok(KeySpec::Ec(521)),
                b => Err(LogicalError::invalid(format!(
                    "unsupported bit length for EC key: {b} (use 256, 384 or 521)"
                ))),
            },
            "ed25519" => Ok(KeySpec::Ed25519),
            other => Err(LogicalError::invalid(format!(
                "unknown key_type {other:?} (use rsa, ec or ed25519)"
            ))),
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            KeySpec::Rsa(_) => "rsa",
            KeySpec::Ec(_) => "ec",
            KeySpec::Ed25519 => "ed25519",
        }
    }

    pub fn bits(&self) -> usize {
        match self {
            KeySpec::Rsa(b) | KeySpec::Ec(b) => *b,
            KeySpec::Ed25519 => 0,
        }
    }

    pub fn algorithm(&self) -> &'static SignatureAlgorithm {
        match self {
            KeySpec::Rsa(_) => &rcgen::PKCS_RSA_SHA256,
            KeySpec::Ec(384) => &rcgen::PKCS_ECDSA_P384_SHA384,
            KeySpec::Ec(521) => &rcgen::PKCS_ECDSA_P521_SHA512,
            KeySpec::Ec(_) => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeySpec::Ed25519 => &rcgen::PKCS_ED25519,
        }
    }
}

fn internal(e: impl std::fmt::Display) -> LogicalError {
    LogicalError::internal(e.to_string())
}

/// A fresh key pair.
pub fn generate(spec: KeySpec) -> Result<KeyPair, LogicalError> {
    match spec {
        KeySpec::Rsa(bits) => {
            use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
            use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
            let size = match bits {
                2048 => KeySize::Rsa2048,
                3072 => KeySize::Rsa3072,
                4096 => KeySize::Rsa4096,
                b => return Err(internal(format!("unsupported RSA key size {b}"))),
            };
            let key = RsaKeyPair::generate(size).map_err(internal)?;
            let der: Pkcs8V1Der<'static> = key.as_der().map_err(internal)?;
            let der = rustls_pki_types::PrivatePkcs8KeyDer::from(der.as_ref().to_vec());
            KeyPair::from_pkcs8_der_and_sign_algo(&der, spec.algorithm()).map_err(internal)
        }
        _ => KeyPair::generate_for(spec.algorithm()).map_err(internal),
    }
}

/// Loads a stored PKCS#8 PEM key of the given type.
pub fn load(spec: KeySpec, pem: &str) -> Result<KeyPair, LogicalError> {
    KeyPair::from_pkcs8_pem_and_sign_algo(pem, spec.algorithm()).map_err(internal)
}

/// A stored (PKCS#8) private key in the form a response gives it:
/// `private_key_format` "" / "der" / "pem" (Vault's default) is PKCS#1 for
/// RSA, SEC1 for EC and PKCS#8 for Ed25519; "pkcs8" is PKCS#8 for all.
pub fn output_key_pem(pkcs8_pem: &str, format: &str) -> Result<String, LogicalError> {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;
    match format {
        "" | "der" | "pem" => {}
        "pkcs8" => return Ok(pkcs8_pem.trim().to_string()),
        other => {
            return Err(LogicalError::invalid(format!(
                "invalid private_key_format {other:?}: use der, pem or pkcs8"
            )))
        }
    }
    if let Ok(k) = rsa::RsaPrivateKey::from_pkcs8_pem(pkcs8_pem) {
        let pem = k
            .to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)
            .map_err(internal)?;
        return Ok(pem.trim().to_string());
    }
    let (_, doc) = pkcs8::SecretDocument::from_pem(pkcs8_pem).map_err(internal)?;
    let info = pkcs8::PrivateKeyInfo::try_from(doc.as_bytes()).map_err(internal)?;
    if info.algorithm.oid != const_oid::db::rfc5912::ID_EC_PUBLIC_KEY {
        return Ok(pkcs8_pem.trim().to_string());
    }
    let curve = info
        .algorithm
        .parameters_oid()
        .map_err(|e| internal(format!("EC key without a curve: {e}")))?;
    let mut ec = sec1::EcPrivateKey::try_from(info.private_key).map_err(internal)?;
    ec.parameters = Some(sec1::EcParameters::NamedCurve(curve));
    use sec1::der::Encode;
    let der = ec.to_der().map_err(internal)?;
    Ok(der_to_pem(&der, "EC PRIVATE KEY"))
}

/// The request's `private_key_format`, checked before anything is made.
pub fn key_format(d: &arca_sdk::FieldData) -> Result<String, LogicalError> {
    let f = d.str_or("private_key_format", "")?;
    if !matches!(f.as_str(), "" | "der" | "pem" | "pkcs8") {
        return Err(LogicalError::invalid(format!(
            "invalid private_key_format {f:?}: use der, pem or pkcs8"
        )));
    }
    Ok(f)
}

/// A SEC1 (`EC PRIVATE KEY`) PEM as PKCS#8 DER.
fn sec1_to_pkcs8(pem: &str) -> Result<Vec<u8>, LogicalError> {
    use sec1::der::{Decode, Encode};
    let bad = |e: &dyn std::fmt::Display| {
        LogicalError::invalid(format!("not a valid SEC1 EC private key: {e}"))
    };
    let (label, der) = sec1::der::pem::decode_vec(pem.as_bytes()).map_err(|e| bad(&e))?;
    if label != "EC PRIVATE KEY" {
        return Err(LogicalError::invalid(
            "expected an EC PRIVATE KEY PEM block",
        ));
    }
    let mut ec = sec1::EcPrivateKey::from_der(&der).map_err(|e| bad(&e))?;
    let curve = match ec.parameters {
        Some(sec1::EcParameters::NamedCurve(oid)) => oid,
        None => {
            return Err(LogicalError::invalid(
                "the SEC1 EC key does not name its curve",
            ))
        }
    };
    ec.parameters = None;
    let inner = ec.to_der().map_err(internal)?;
    let info = pkcs8::PrivateKeyInfo {
        algorithm: pkcs8::AlgorithmIdentifierRef {
            oid: const_oid::db::rfc5912::ID_EC_PUBLIC_KEY,
            parameters: Some((&curve).into()),
        },
        private_key: &inner,
        public_key: None,
    };
    info.to_der().map_err(internal)
}

/// Reads a private key given as PEM: PKCS#8 (`PRIVATE KEY`: RSA, EC P-256
/// or P-384, Ed25519), PKCS#1 (`RSA PRIVATE KEY`) or SEC1 (`EC PRIVATE
/// KEY`). Returns its type and
/// the key as PKCS#8 PEM, the form the engine stores.
pub fn import_key(pem: &str) -> Result<(KeySpec, KeyPair), LogicalError> {
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::traits::PublicKeyParts;
    let pem = pem.trim();
    if pem.contains("BEGIN EC PRIVATE KEY") {
        let der = sec1_to_pkcs8(pem)?;
        let der = rustls_pki_types::PrivatePkcs8KeyDer::from(der);
        for spec in [KeySpec::Ec(256), KeySpec::Ec(384), KeySpec::Ec(521)] {
            if let Ok(kp) = KeyPair::from_pkcs8_der_and_sign_algo(&der, spec.algorithm()) {
                return Ok((spec, kp));
            }
        }
        return Err(LogicalError::invalid(
            "unsupported EC curve: use P-256, P-384 or P-521",
        ));
    }
    let rsa_key = if pem.contains("BEGIN RSA PRIVATE KEY") {
        Some(rsa::RsaPrivateKey::from_pkcs1_pem(pem).map_err(|e| {
            LogicalError::invalid(format!("not a valid PKCS#1 RSA private key: {e}"))
        })?)
    } else {
        rsa::RsaPrivateKey::from_pkcs8_pem(pem).ok()
    };
    if let Some(k) = rsa_key {
        let spec = KeySpec::Rsa(k.size() * 8);
        if !matches!(spec, KeySpec::Rsa(2048 | 3072 | 4096)) {
            return Err(LogicalError::invalid(format!(
                "unsupported RSA key size {} (use 2048, 3072 or 4096)",
                k.size() * 8
            )));
        }
        let der = k.to_pkcs8_der().map_err(internal)?;
        let der = rustls_pki_types::PrivatePkcs8KeyDer::from(der.as_bytes().to_vec());
        let kp = KeyPair::from_pkcs8_der_and_sign_algo(&der, spec.algorithm()).map_err(internal)?;
        return Ok((spec, kp));
    }
    let kp = KeyPair::from_pem(pem).map_err(|e| {
        LogicalError::invalid(format!(
            "not a PEM private key this server can use (PKCS#8 RSA/EC P-256/P-384/Ed25519, or PKCS#1 RSA): {e}"
        ))
    })?;
    let alg = kp.algorithm();
    let spec = if alg == &rcgen::PKCS_ECDSA_P256_SHA256 {
        KeySpec::Ec(256)
    } else if alg == &rcgen::PKCS_ECDSA_P384_SHA384 {
        KeySpec::Ec(384)
    } else if alg == &rcgen::PKCS_ECDSA_P521_SHA512
        || alg == &rcgen::PKCS_ECDSA_P521_SHA256
        || alg == &rcgen::PKCS_ECDSA_P521_SHA384
    {
        KeySpec::Ec(521)
    } else if alg == &rcgen::PKCS_ED25519 {
        KeySpec::Ed25519
    } else {
        return Err(LogicalError::invalid("unsupported private key algorithm"));
    };
    Ok((spec, kp))
}

/// A random 20-byte serial number with the top bit clear (positive).
pub fn new_serial() -> Vec<u8> {
    let mut b: [u8; 20] = rand::random();
    b[0] &= 0x7f;
    if b[0] == 0 {
        b[0] = 1;
    }
    b.to_vec()
}

/// Vault's serial notation: lower-case hex pairs joined by `:`.
pub fn serial_string(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Accepts `aa:bb:..` or `aa-bb-..` (any case); returns the storage form.
pub fn normalize_serial(s: &str) -> String {
    s.trim().to_lowercase().replace('-', ":")
}

/// The key type (`rsa`, `ec`, `ed25519`) and size in bits (0 for
/// ed25519) of a PEM certificate request's public key.
pub fn csr_key(pem: &str) -> Result<(&'static str, usize), LogicalError> {
    use x509_parser::public_key::PublicKey;
    let bad = |e: String| {
        LogicalError::invalid(format!("csr is not a valid PEM certificate request: {e}"))
    };
    let der = pem_to_der(pem)?;
    let (_, req) = X509CertificationRequest::from_der(&der).map_err(|e| bad(e.to_string()))?;
    let spki = &req.certification_request_info.subject_pki;
    match spki.parsed() {
        Ok(PublicKey::RSA(k)) => Ok(("rsa", k.key_size())),
        Ok(PublicKey::EC(k)) => Ok(("ec", k.key_size())),
        _ if spki.algorithm.algorithm == x509_parser::oid_registry::OID_SIG_ED25519 => {
            Ok(("ed25519", 0))
        }
        Ok(_) => Err(LogicalError::invalid(
            "the csr's public key type is not supported (use rsa, ec or ed25519)",
        )),
        Err(e) => Err(bad(e.to_string())),
    }
}

/// Does a role with `key_type`/`key_bits` allow signing a key of this type
/// and size? Vault: `any` allows every key; otherwise the type must match
/// and the key must have at least the role's bits.
pub fn check_role_key(
    role_type: &str,
    role_bits: i64,
    (kind, bits): (&str, usize),
) -> Result<(), LogicalError> {
    if kind == "rsa" && bits < 2048 {
        return Err(LogicalError::invalid(format!(
            "RSA keys below 2048 bits are not accepted (the csr's key has {bits})"
        )));
    }
    if role_type == "any" {
        return Ok(());
    }
    if role_type != kind {
        return Err(LogicalError::invalid(format!(
            "role requires keys of type {role_type}, but the csr holds a {kind} key"
        )));
    }
    if kind != "ed25519" && role_bits > 0 && (bits as i64) < role_bits {
        return Err(LogicalError::invalid(format!(
            "role requires a minimum of {role_bits} bits for {kind} keys, but the csr's key has {bits}"
        )));
    }
    Ok(())
}

/// Facts read back from a certificate.
pub struct CertInfo {
    pub serial: String,
}

pub fn pem_to_der(pem: &str) -> Result<Vec<u8>, LogicalError> {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| LogicalError::invalid(format!("not a PEM certificate: {e}")))?;
    Ok(p.contents)
}

pub fn der_to_pem(der: &[u8], label: &str) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----"));
    out
}

pub fn cert_info(der: &[u8]) -> Result<CertInfo, LogicalError> {
    let (_, c) = X509Certificate::from_der(der)
        .map_err(|e| LogicalError::invalid(format!("not a certificate: {e}")))?;
    Ok(CertInfo {
        serial: serial_string(c.raw_serial()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_specs_follow_vault_defaults() {
        assert_eq!(KeySpec::parse("rsa", 0).unwrap(), KeySpec::Rsa(2048));
        assert_eq!(KeySpec::parse("ec", 0).unwrap(), KeySpec::Ec(256));
        assert_eq!(KeySpec::parse("ec", 384).unwrap(), KeySpec::Ec(384));
        assert_eq!(KeySpec::parse("ec", 521).unwrap(), KeySpec::Ec(521));
        assert!(KeySpec::parse("ec", 512).is_err());
        assert!(KeySpec::parse("rsa", 1024).is_err());
        assert!(KeySpec::parse("dsa", 0).is_err());
    }

    #[test]
    fn serials_are_positive_and_formatted_like_vault() {
        let s = new_serial();
        assert_eq!(s.len(), 20);
        assert!(s[0] & 0x80 == 0 && s[0] != 0);
        assert_eq!(serial_string(&[0x0a, 0xff, 0x01]), "0a:ff:01");
        assert_eq!(normalize_serial("0A-FF-01"), "0a:ff:01");
    }

    #[test]
    fn keys_come_out_in_vaults_default_forms_and_import_back() {
        for (spec, label) in [
            (KeySpec::Ec(256), "EC PRIVATE KEY"),
            (KeySpec::Ec(384), "EC PRIVATE KEY"),
            (KeySpec::Ec(521), "EC PRIVATE KEY"),
            (KeySpec::Rsa(2048), "RSA PRIVATE KEY"),
            (KeySpec::Ed25519, "BEGIN PRIVATE KEY"),
        ] {
            let k = generate(spec).unwrap();
            let out = output_key_pem(&k.serialize_pem(), "").unwrap();
            assert!(out.contains(label), "{spec:?}: {out}");
            let (back_spec, back) = import_key(&out).unwrap();
            assert_eq!(back_spec, spec);
            assert_eq!(back.public_key_pem(), k.public_key_pem());
            let p8 = output_key_pem(&k.serialize_pem(), "pkcs8").unwrap();
            assert!(p8.contains("BEGIN PRIVATE KEY"));
        }
        assert!(output_key_pem("x", "jwk").is_err());
    }

    #[test]
    fn generated_keys_round_trip_through_pem() {
        for spec in [
            KeySpec::Ec(256),
            KeySpec::Ec(384),
            KeySpec::Ed25519,
            KeySpec::Rsa(2048),
        ] {
            let k = generate(spec).unwrap();
            let pem = k.serialize_pem();
            assert!(pem.contains("PRIVATE KEY"));
            let back = load(spec, &pem).unwrap();
            assert_eq!(back.public_key_pem(), k.public_key_pem());
        }
    }
}
