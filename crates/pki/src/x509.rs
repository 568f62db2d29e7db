//! DER documents the engine signs itself: CRLs (complete and delta) and
//! OCSP responses. rcgen builds certificates; these two need extensions it
//! does not offer (the delta CRL indicator) or structures it does not know
//! (RFC 6960), so they are assembled with the RustCrypto `x509-cert` and
//! `x509-ocsp` types and signed with the issuer's rcgen key.
//!
//! Invariants: every document names its issuer by the issuer certificate's
//! own subject and key identifier, and carries the signature algorithm of
//! the issuer's key (RSA with SHA-256, ECDSA with SHA-256/384, Ed25519).

use der::asn1::{BitString, GeneralizedTime, Null, OctetString, Uint};
use der::{Decode, Encode};
use sha1::{Digest, Sha1};
use x509_cert::ext::pkix::crl::{BaseCrlNumber, CrlNumber};
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, SubjectKeyIdentifier};
use x509_cert::ext::{Extension, Extensions};
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_cert::time::Time;
use x509_cert::Certificate;

use arca_sdk::LogicalError;

fn internal(what: &str, e: impl std::fmt::Display) -> LogicalError {
    LogicalError::internal(format!("{what}: {e}"))
}

/// What a signed document needs to know about its issuer.
pub struct IssuerFacts {
    pub cert_der: Vec<u8>,
    pub subject: x509_cert::name::Name,
    /// DER of the subject name (OCSP's issuerNameHash input).
    pub subject_der: Vec<u8>,
    /// The subjectPublicKey BIT STRING's bytes (OCSP's issuerKeyHash input).
    pub public_key: Vec<u8>,
    /// The certificate's subject key identifier, if it has one.
    pub key_id: Option<Vec<u8>>,
}

impl IssuerFacts {
    pub fn from_der(der: &[u8]) -> Result<IssuerFacts, LogicalError> {
        let cert = Certificate::from_der(der).map_err(|e| internal("issuer certificate", e))?;
        let tbs = &cert.tbs_certificate;
        let key_id = tbs
            .extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == const_oid::db::rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER)
            .and_then(|e| SubjectKeyIdentifier::from_der(e.extn_value.as_bytes()).ok())
            .map(|s| s.0.as_bytes().to_vec());
        Ok(IssuerFacts {
            cert_der: der.to_vec(),
            subject_der: tbs
                .subject
                .to_der()
                .map_err(|e| internal("issuer name", e))?,
            subject: tbs.subject.clone(),
            public_key: tbs
                .subject_public_key_info
                .subject_public_key
                .raw_bytes()
                .to_vec(),
            key_id,
        })
    }

    /// SHA-1 of the public key: OCSP's responder id "by key".
    pub fn key_sha1(&self) -> Vec<u8> {
        Sha1::digest(&self.public_key).to_vec()
    }
}

/// The AlgorithmIdentifier of the signatures `key` makes.
pub fn signature_algorithm(key: &rcgen::KeyPair) -> Result<AlgorithmIdentifierOwned, LogicalError> {
    use const_oid::db::{rfc5912, rfc8410};
    let alg = key.algorithm();
    let (oid, null_params) = if alg == &rcgen::PKCS_RSA_SHA256 {
        (rfc5912::SHA_256_WITH_RSA_ENCRYPTION, true)
    } else if alg == &rcgen::PKCS_ECDSA_P256_SHA256 {
        (rfc5912::ECDSA_WITH_SHA_256, false)
    } else if alg == &rcgen::PKCS_ECDSA_P384_SHA384 {
        (rfc5912::ECDSA_WITH_SHA_384, false)
    } else if alg == &rcgen::PKCS_ECDSA_P521_SHA512 {
        (rfc5912::ECDSA_WITH_SHA_512, false)
    } else if alg == &rcgen::PKCS_ED25519 {
        (rfc8410::ID_ED_25519, false)
    } else {
        return Err(LogicalError::internal(
            "the issuer's key uses a signature algorithm this server cannot sign CRLs/OCSP with",
        ));
    };
    Ok(AlgorithmIdentifierOwned {
        oid,
        parameters: if null_params { Some(Null.into()) } else { None },
    })
}

fn sign(key: &rcgen::KeyPair, tbs: &[u8]) -> Result<BitString, LogicalError> {
    use rcgen::SigningKey;
    let sig = key.sign(tbs).map_err(|e| internal("signing", e))?;
    BitString::from_bytes(&sig).map_err(|e| internal("signature", e))
}

pub fn time(unix: i64) -> Result<Time, LogicalError> {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix.max(0) as u64);
    Time::try_from(t).map_err(|e| internal("time", e))
}

pub fn generalized(unix: i64) -> Result<GeneralizedTime, LogicalError> {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix.max(0) as u64);
    GeneralizedTime::from_system_time(t).map_err(|e| internal("time", e))
}

pub fn serial(bytes: &[u8]) -> Result<SerialNumber, LogicalError> {
    SerialNumber::new(bytes).map_err(|e| internal("serial number", e))
}

fn extension<T: Encode>(oid: der::oid::ObjectIdentifier, v: &T) -> Result<Extension, LogicalError> {
    Ok(Extension {
        extn_id: oid,
        critical: false,
        extn_value: OctetString::new(v.to_der().map_err(|e| internal("extension", e))?)
            .map_err(|e| internal("extension", e))?,
    })
}

fn uint(n: u64) -> Result<Uint, LogicalError> {
    Uint::new(&n.to_be_bytes()).map_err(|e| internal("CRL number", e))
}

/// The Authority Information Access extension's value (DER): CA issuer
/// and OCSP URLs.
pub fn aia_value(issuing: &[String], ocsp: &[String]) -> Result<Vec<u8>, LogicalError> {
    use x509_cert::ext::pkix::name::GeneralName;
    use x509_cert::ext::pkix::{AccessDescription, AuthorityInfoAccessSyntax};
    const CA_ISSUERS: der::oid::ObjectIdentifier =
        der::oid::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.2");
    const OCSP: der::oid::ObjectIdentifier =
        der::oid::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1");
    let mut v = vec![];
    for (method, urls) in [(OCSP, ocsp), (CA_ISSUERS, issuing)] {
        for u in urls {
            v.push(AccessDescription {
                access_method: method,
                access_location: GeneralName::UniformResourceIdentifier(
                    der::asn1::Ia5String::new(u).map_err(|e| internal("AIA URL", e))?,
                ),
            });
        }
    }
    AuthorityInfoAccessSyntax(v)
        .to_der()
        .map_err(|e| internal("AIA", e))
}

/// `sign-self-issued`: the same certificate (subject, key, serial,
/// validity, extensions) issued again by `issuer`: new issuer name,
/// signature algorithm, authority key identifier and signature.
pub fn resign(
    cert_der: &[u8],
    issuer: &IssuerFacts,
    key: &rcgen::KeyPair,
) -> Result<Vec<u8>, LogicalError> {
    use const_oid::db::rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER;
    let cert = Certificate::from_der(cert_der)
        .map_err(|e| LogicalError::invalid(format!("not a certificate: {e}")))?;
    let mut tbs = cert.tbs_certificate;
    let alg = signature_algorithm(key)?;
    tbs.issuer = issuer.subject.clone();
    tbs.signature = alg.clone();
    if let (Some(exts), Some(id)) = (tbs.extensions.as_mut(), issuer.key_id.as_ref()) {
        exts.retain(|e| e.extn_id != ID_CE_AUTHORITY_KEY_IDENTIFIER);
        exts.push(extension(
            ID_CE_AUTHORITY_KEY_IDENTIFIER,
            &AuthorityKeyIdentifier {
                key_identifier: Some(OctetString::new(id.clone()).map_err(|e| internal("AKI", e))?),
                ..Default::default()
            },
        )?);
    }
    let tbs_der = tbs.to_der().map_err(|e| internal("certificate", e))?;
    let signature = sign(key, &tbs_der)?;
    Certificate {
        tbs_certificate: tbs,
        signature_algorithm: alg,
        signature,
    }
    .to_der()
    .map_err(|e| internal("certificate", e))
}

/// What goes into one CRL.
pub struct CrlSpec<'a> {
    pub number: u64,
    /// For a delta CRL: the number of the complete CRL it extends.
    pub base_number: Option<u64>,
    pub this_update: i64,
    pub next_update: i64,
    /// (serial bytes, revocation time), in the order they are listed.
    pub revoked: &'a [(Vec<u8>, i64)],
    /// Where delta CRLs are published (a complete CRL's Freshest CRL).
    pub freshest: &'a [String],
}

/// A signed v2 CRL (DER) with CRL number, authority key identifier and,
/// for a delta CRL, the (critical) delta CRL indicator.
pub fn sign_crl(
    issuer: &IssuerFacts,
    key: &rcgen::KeyPair,
    spec: &CrlSpec<'_>,
) -> Result<Vec<u8>, LogicalError> {
    use const_oid::db::rfc5280;
    let alg = signature_algorithm(key)?;
    let mut exts: Extensions = Vec::new();
    if let Some(id) = &issuer.key_id {
        exts.push(extension(
            rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER,
            &AuthorityKeyIdentifier {
                key_identifier: Some(OctetString::new(id.clone()).map_err(|e| internal("AKI", e))?),
                ..Default::default()
            },
        )?);
    }
    exts.push(extension(
        rfc5280::ID_CE_CRL_NUMBER,
        &CrlNumber(uint(spec.number)?),
    )?);
    if !spec.freshest.is_empty() && spec.base_number.is_none() {
        use x509_cert::ext::pkix::crl::dp::DistributionPoint;
        use x509_cert::ext::pkix::crl::FreshestCrl;
        use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
        let mut names = vec![];
        for u in spec.freshest {
            names.push(GeneralName::UniformResourceIdentifier(
                der::asn1::Ia5String::new(u).map_err(|e| internal("delta CRL URL", e))?,
            ));
        }
        exts.push(extension(
            rfc5280::ID_CE_FRESHEST_CRL,
            &FreshestCrl(vec![DistributionPoint {
                distribution_point: Some(DistributionPointName::FullName(names)),
                reasons: None,
                crl_issuer: None,
            }]),
        )?);
    }
    if let Some(base) = spec.base_number {
        let mut e = extension(
            rfc5280::ID_CE_DELTA_CRL_INDICATOR,
            &BaseCrlNumber(uint(base)?),
        )?;
        e.critical = true;
        exts.push(e);
    }
    let mut revoked = Vec::with_capacity(spec.revoked.len());
    for (s, t) in spec.revoked {
        revoked.push(x509_cert::crl::RevokedCert {
            serial_number: serial(s)?,
            revocation_date: time(*t)?,
            crl_entry_extensions: None,
        });
    }
    let tbs = x509_cert::crl::TbsCertList {
        version: x509_cert::Version::V2,
        signature: alg.clone(),
        issuer: issuer.subject.clone(),
        this_update: time(spec.this_update)?,
        next_update: Some(time(spec.next_update)?),
        revoked_certificates: (!revoked.is_empty()).then_some(revoked),
        crl_extensions: Some(exts),
    };
    let tbs_der = tbs.to_der().map_err(|e| internal("CRL", e))?;
    let signature = sign(key, &tbs_der)?;
    x509_cert::crl::CertificateList {
        tbs_cert_list: tbs,
        signature_algorithm: alg,
        signature,
    }
    .to_der()
    .map_err(|e| internal("CRL", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca() -> (rcgen::KeyPair, Vec<u8>) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p = rcgen::CertificateParams::new(vec![]).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "test root");
        p.key_identifier_method = rcgen::KeyIdMethod::Sha256;
        let cert = p.self_signed(&key).unwrap();
        (key, cert.der().to_vec())
    }

    #[test]
    fn crl_round_trips_through_x509_parser() {
        let (key, der) = ca();
        let facts = IssuerFacts::from_der(&der).unwrap();
        assert!(facts.key_id.is_some());
        let revoked = vec![
            (vec![0x01, 0x02], 1_700_000_000),
            (vec![0x7f; 20], 1_700_000_100),
        ];
        let crl = sign_crl(
            &facts,
            &key,
            &CrlSpec {
                number: 7,
                base_number: Some(5),
                this_update: 1_700_000_200,
                next_update: 1_700_100_000,
                revoked: &revoked,
                freshest: &[],
            },
        )
        .unwrap();
        let (_, parsed) = x509_parser::parse_x509_crl(&crl).unwrap();
        assert_eq!(parsed.crl_number().map(|n| n.to_string()), Some("7".into()));
        let serials: Vec<_> = parsed
            .iter_revoked_certificates()
            .map(|r| r.raw_serial().to_vec())
            .collect();
        assert_eq!(serials, vec![vec![0x01, 0x02], vec![0x7f; 20]]);
        let delta = parsed
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "2.5.29.27")
            .expect("delta CRL indicator");
        assert!(delta.critical);
    }
}
