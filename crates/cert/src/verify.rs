//! Deciding whether a presented client certificate chain logs in against
//! trusted certificate entries: pure functions over DER, the entries, the
//! revoked serial numbers and a clock, so that they can be tested without
//! storage or a network.
//!
//! The rules, in order (the first failure ends the login):
//! 1. The client presented a certificate; the leaf (the first one) parses.
//! 2. The leaf is valid at `now` (`notBefore <= now <= notAfter`) and, if
//!    it names extended key usages, TLS client authentication is one.
//! 3. Entries are tried in name order, first those holding the leaf
//!    itself (byte-for-byte: a trusted self-signed or leaf certificate),
//!    then CA entries through which the leaf chains: WebPKI builds a path
//!    from the leaf through the intermediates the client sent to one of
//!    the entry's certificates that is valid at `now` (the anchors), each
//!    certificate valid at `now` and allowing client authentication if it
//!    names extended key usages. A path with a revoked certificate is
//!    skipped and another one is tried.
//! 4. The entry's constraints hold for the leaf (every non-empty list
//!    needs at least one match; [`Constraints`]) and no certificate of the
//!    chain — leaf, intermediates, anchor; for a byte-for-byte match the
//!    entry's certificates — has a serial number on a stored CRL.
//!
//! The first entry that passes wins; the login then checks OCSP for it
//! when the entry asks for it (crate `ocsp`), and if OCSP refuses, the
//! entries are tried again without that one ([`authenticate_except`]).
//! A refusal says "invalid certificate or no client certificate supplied"
//! when no entry trusts the chain, and "no chain matching all constraints
//! could be found" when one does but its constraints, a CRL or OCSP refuse
//! it (Vault's words; an OCSP refusal adds "additionally got errors during
//! verification:" and what OCSP said).

use std::cell::Cell;
use std::collections::{BTreeMap, HashSet};

use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use serde::{Deserialize, Serialize};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

/// What an entry requires of the leaf beyond its chain. Globs (`*`) are
/// allowed in every pattern; an empty list allows anything.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Constraints {
    /// Deprecated: the common name, a DNS SAN or an email SAN matches.
    pub allowed_names: Vec<String>,
    pub allowed_common_names: Vec<String>,
    pub allowed_dns_sans: Vec<String>,
    pub allowed_email_sans: Vec<String>,
    pub allowed_uri_sans: Vec<String>,
    pub allowed_organizational_units: Vec<String>,
    /// `oid:pattern`: the leaf has the extension and its value, read as an
    /// ASN.1 string (empty when it is not one), matches the pattern. All
    /// of them must hold.
    pub required_extensions: Vec<String>,
    /// OIDs whose extension values (read as ASN.1 strings) are added to the
    /// token's metadata, under the OID with dashes for dots.
    pub allowed_metadata_extensions: Vec<String>,
}

/// A trusted entry as the verifier sees it.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub name: &'a str,
    /// The entry's PEM certificates.
    pub certificate: &'a str,
    pub constraints: &'a Constraints,
}

/// The certificates of an entry, parsed.
#[derive(Debug, Clone)]
pub struct TrustedCerts {
    /// DER, in the order given.
    pub ders: Vec<Vec<u8>>,
    /// The first certificate is a CA (`basicConstraints cA`): the entry
    /// trusts what chains to it. Otherwise the entry trusts only its own
    /// certificates, byte-for-byte.
    pub is_ca: bool,
}

/// A successful login: which entry, and what the token records of the
/// leaf.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// Index of the entry in the candidates given.
    pub entry: usize,
    /// The leaf's (last) common name, `""` when it has none.
    pub common_name: String,
    /// The leaf's serial number in decimal.
    pub serial_number: String,
    pub subject_key_id: Vec<u8>,
    pub authority_key_id: Vec<u8>,
    /// From `allowed_metadata_extensions`.
    pub extension_metadata: BTreeMap<String, String>,
    /// DER of the certificate that issued the leaf in the path that
    /// verified it (the client's first intermediate, or the entry's CA
    /// certificate); for a byte-for-byte match, an entry certificate that
    /// issued the leaf, if any. OCSP asks about the leaf under this issuer.
    pub issuer: Option<Vec<u8>>,
}

/// Why a login is refused (each is a 400 with this text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No certificate on the connection (or no TLS connection).
    NoCertificate,
    /// The leaf is unusable or no entry trusts the chain; the text says why.
    Invalid(String),
    /// An entry trusts the chain but its constraints or a CRL refuse it.
    Constraints,
    /// Entries trust the chain and its constraints hold, but OCSP refused
    /// it (revoked, or no usable status without `ocsp_fail_open`): why.
    Ocsp(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NoCertificate => f.write_str(
                "no client certificate was presented: log in over TLS with a client certificate \
                 (bao login -method=cert -client-cert=... -client-key=...)",
            ),
            Refusal::Invalid(why) if why.is_empty() => {
                f.write_str("invalid certificate or no client certificate supplied")
            }
            Refusal::Invalid(why) => write!(
                f,
                "invalid certificate or no client certificate supplied: {why}"
            ),
            Refusal::Constraints => f.write_str(
                "no chain matching all constraints could be found for this login certificate",
            ),
            Refusal::Ocsp(why) => write!(
                f,
                "no chain matching all constraints could be found for this login certificate; \
                 additionally got errors during verification: {why}"
            ),
        }
    }
}

/// Parses an entry's `certificate`: one or more PEM `CERTIFICATE` blocks,
/// each a whole X.509 certificate (text around the blocks is ignored,
/// any other block is refused). A CA entry's certificates must all be
/// usable as trust anchors; a leaf entry's first certificate must allow
/// client authentication if it names extended key usages.
pub fn parse_trusted(pem: &str) -> Result<TrustedCerts, String> {
    let ders = pem_certificates(pem)?;
    let Some(first) = ders.first() else {
        return Err("no PEM certificate found".into());
    };
    let is_ca = parse_whole(first)?.is_ca();
    if is_ca {
        for (i, der) in ders.iter().enumerate() {
            let der = CertificateDer::from(der.as_slice());
            webpki::anchor_from_trusted_cert(&der).map_err(|e| {
                format!(
                    "certificate {} cannot be used as a trust anchor: {e}",
                    i + 1
                )
            })?;
        }
    } else if !allows_client_auth(&parse_whole(first)?)? {
        return Err(
            "nonCA certificates should have TLS client authentication set as an extended key usage"
                .into(),
        );
    }
    Ok(TrustedCerts { ders, is_ca })
}

/// The DER of PEM `CERTIFICATE` blocks, each a whole X.509 certificate
/// (text around the blocks is ignored, any other block is refused, and
/// there must be at least one).
pub fn pem_certificates(pem: &str) -> Result<Vec<Vec<u8>>, String> {
    let mut ders = Vec::new();
    for (i, block) in x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes()).enumerate() {
        let block = block.map_err(|e| format!("PEM block {} is malformed: {e}", i + 1))?;
        if block.label != "CERTIFICATE" {
            return Err(format!(
                "PEM block {} is a {:?}, not a CERTIFICATE: give only certificates",
                i + 1,
                block.label
            ));
        }
        parse_whole(&block.contents)
            .map_err(|e| format!("certificate {} does not parse: {e}", i + 1))?;
        ders.push(block.contents);
    }
    if ders.is_empty() {
        return Err("no PEM certificate found".into());
    }
    Ok(ders)
}

/// Parses one DER certificate with nothing after it.
fn parse_whole(der: &[u8]) -> Result<X509Certificate<'_>, String> {
    match X509Certificate::from_der(der) {
        Ok((rest, _)) if !rest.is_empty() => {
            Err(format!("{} bytes after the certificate", rest.len()))
        }
        Ok((_, c)) => Ok(c),
        Err(e) => Err(e.to_string()),
    }
}

/// No extended key usage, or one that includes TLS client authentication.
fn allows_client_auth(c: &X509Certificate<'_>) -> Result<bool, String> {
    match c.extended_key_usage() {
        Ok(None) => Ok(true),
        Ok(Some(eku)) => Ok(eku.value.client_auth),
        Err(e) => Err(format!("its extended key usage does not parse: {e}")),
    }
}

fn valid_at(c: &X509Certificate<'_>, now: i64) -> bool {
    let v = c.validity();
    v.not_before.timestamp() <= now && now <= v.not_after.timestamp()
}

/// Checks a login: `presented` is the client's chain (DER, leaf first),
/// `candidates` the entries to try (in this order), `revoked` the decimal
/// serial numbers of every stored CRL, `now` unix seconds.
pub fn authenticate(
    presented: &[Vec<u8>],
    candidates: &[Candidate<'_>],
    revoked: &HashSet<String>,
    now: i64,
) -> Result<Verified, Refusal> {
    authenticate_except(presented, candidates, revoked, now, &HashSet::new())
}

/// [`authenticate`], passing over the candidates whose index is in `skip`
/// (entries that OCSP refused): the next entry that passes wins.
pub fn authenticate_except(
    presented: &[Vec<u8>],
    candidates: &[Candidate<'_>],
    revoked: &HashSet<String>,
    now: i64,
    skip: &HashSet<usize>,
) -> Result<Verified, Refusal> {
    let Some(leaf_der) = presented.first() else {
        return Err(Refusal::NoCertificate);
    };
    let leaf = parse_whole(leaf_der)
        .map_err(|e| Refusal::Invalid(format!("the client certificate does not parse: {e}")))?;
    if !valid_at(&leaf, now) {
        let v = leaf.validity();
        return Err(Refusal::Invalid(format!(
            "the client certificate is not valid at this time (valid from {} to {})",
            v.not_before, v.not_after
        )));
    }
    match allows_client_auth(&leaf) {
        Ok(true) => {}
        Ok(false) => {
            return Err(Refusal::Invalid(
                "the client certificate's extended key usage does not include TLS client authentication"
                    .into(),
            ))
        }
        Err(e) => return Err(Refusal::Invalid(format!("the client certificate: {e}"))),
    }
    let parsed: Vec<Option<TrustedCerts>> = candidates
        .iter()
        .map(|c| parse_trusted(c.certificate).ok())
        .collect();
    let leaf_serial = leaf.serial.to_string();
    let mut trusted_somewhere = false;

    // Pass 1: the leaf is one of the entry's own certificates.
    for (i, (cand, certs)) in candidates.iter().zip(&parsed).enumerate() {
        let Some(certs) = certs else { continue };
        if !certs.ders.iter().any(|d| d == leaf_der) {
            continue;
        }
        trusted_somewhere = true;
        if skip.contains(&i) {
            continue;
        }
        let chain_revoked = revoked.contains(&leaf_serial)
            || certs
                .ders
                .iter()
                .filter_map(|d| parse_whole(d).ok())
                .any(|c| revoked.contains(&c.serial.to_string()));
        if !chain_revoked && matches_constraints(&leaf, cand.constraints) {
            let issuer = find_issuer(leaf_der, &certs.ders, now);
            return Ok(verified(i, &leaf, cand.constraints, issuer));
        }
    }

    // Pass 2: the leaf chains to a CA entry's certificate.
    let leaf_cert = CertificateDer::from(leaf_der.as_slice());
    let ee = match webpki::EndEntityCert::try_from(&leaf_cert) {
        Ok(ee) => ee,
        Err(_) if trusted_somewhere => return Err(Refusal::Constraints),
        Err(e) => {
            return Err(Refusal::Invalid(format!(
                "the client certificate cannot be verified: {e}"
            )))
        }
    };
    let intermediates: Vec<CertificateDer<'_>> = presented[1..]
        .iter()
        .map(|d| CertificateDer::from(d.as_slice()))
        .collect();
    let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(now.max(0) as u64));
    for (i, (cand, certs)) in candidates.iter().zip(&parsed).enumerate() {
        let Some(certs) = certs.as_ref().filter(|c| c.is_ca) else {
            continue;
        };
        if skip.contains(&i) {
            continue;
        }
        // The anchors: the entry's certificates valid now, with their
        // serial numbers (to check the anchor against the CRLs).
        let ders: Vec<CertificateDer<'_>> = certs
            .ders
            .iter()
            .filter(|d| parse_whole(d).is_ok_and(|c| valid_at(&c, now)))
            .map(|d| CertificateDer::from(d.as_slice()))
            .collect();
        let mut anchors: Vec<TrustAnchor<'_>> = Vec::new();
        let mut anchor_serials: Vec<String> = Vec::new();
        let mut anchor_ders: Vec<&[u8]> = Vec::new();
        for d in &ders {
            if let (Ok(a), Ok(c)) = (webpki::anchor_from_trusted_cert(d), parse_whole(d)) {
                anchors.push(a);
                anchor_serials.push(c.serial.to_string());
                anchor_ders.push(d.as_ref());
            }
        }
        if anchors.is_empty() {
            continue;
        }
        let saw_revoked = Cell::new(false);
        let not_revoked = |path: &webpki::VerifiedPath<'_>| -> Result<(), webpki::Error> {
            let mut serials = vec![leaf_serial.clone()];
            for c in path.intermediate_certificates() {
                match parse_whole(c.der().as_ref()) {
                    Ok(c) => serials.push(c.serial.to_string()),
                    Err(_) => return Err(webpki::Error::BadDer),
                }
            }
            let a = path.anchor();
            if let Some(k) = anchors.iter().position(|x| {
                x.subject.as_ref() == a.subject.as_ref()
                    && x.subject_public_key_info.as_ref() == a.subject_public_key_info.as_ref()
            }) {
                serials.push(anchor_serials[k].clone());
            }
            if serials.iter().any(|s| revoked.contains(s)) {
                saw_revoked.set(true);
                return Err(webpki::Error::CertRevoked);
            }
            Ok(())
        };
        let result = ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &intermediates,
            time,
            webpki::KeyUsage::client_auth(),
            None,
            Some(&not_revoked),
        );
        match result {
            Ok(path) => {
                trusted_somewhere = true;
                if matches_constraints(&leaf, cand.constraints) {
                    // The leaf's issuer: the first intermediate, else the
                    // anchor (one of the entry's certificates).
                    let issuer = match path.intermediate_certificates().next() {
                        Some(c) => Some(c.der().as_ref().to_vec()),
                        None => {
                            let a = path.anchor();
                            anchors
                                .iter()
                                .position(|x| {
                                    x.subject.as_ref() == a.subject.as_ref()
                                        && x.subject_public_key_info.as_ref()
                                            == a.subject_public_key_info.as_ref()
                                })
                                .map(|k| anchor_ders[k].to_vec())
                        }
                    };
                    return Ok(verified(i, &leaf, cand.constraints, issuer));
                }
            }
            Err(_) if saw_revoked.get() => trusted_somewhere = true,
            Err(_) => {}
        }
    }
    if trusted_somewhere {
        Err(Refusal::Constraints)
    } else {
        Err(Refusal::Invalid(String::new()))
    }
}

/// Among `certs` (DER), one that issued `leaf_der` (its subject is the
/// leaf's issuer and its key verifies the leaf's signature), other than the
/// leaf itself.
pub fn find_issuer(leaf_der: &[u8], certs: &[Vec<u8>], now: i64) -> Option<Vec<u8>> {
    let leaf = parse_whole(leaf_der).ok()?;
    let leaf_cert = CertificateDer::from(leaf_der);
    let ee = webpki::EndEntityCert::try_from(&leaf_cert).ok()?;
    let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(now.max(0) as u64));
    certs
        .iter()
        .filter(|d| d.as_slice() != leaf_der)
        .filter(|d| parse_whole(d).is_ok_and(|c| c.subject().as_raw() == leaf.issuer().as_raw()))
        .find(|d| {
            let der = CertificateDer::from(d.as_slice());
            let Ok(anchor) = webpki::anchor_from_trusted_cert(&der) else {
                return false;
            };
            ee.verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                &[anchor],
                &[],
                time,
                webpki::KeyUsage::client_auth(),
                None,
                None,
            )
            .is_ok()
        })
        .cloned()
}

fn verified(
    entry: usize,
    leaf: &X509Certificate<'_>,
    c: &Constraints,
    issuer: Option<Vec<u8>>,
) -> Verified {
    let mut skid = Vec::new();
    let mut akid = Vec::new();
    for ext in leaf.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => skid = k.0.to_vec(),
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                if let Some(k) = &a.key_identifier {
                    akid = k.0.to_vec();
                }
            }
            _ => {}
        }
    }
    let mut extension_metadata = BTreeMap::new();
    for ext in leaf.extensions() {
        let oid = ext.oid.to_id_string();
        if c.allowed_metadata_extensions.contains(&oid) {
            extension_metadata.insert(oid.replace('.', "-"), asn1_string(ext.value));
        }
    }
    Verified {
        entry,
        common_name: common_name(leaf),
        serial_number: leaf.serial.to_string(),
        subject_key_id: skid,
        authority_key_id: akid,
        extension_metadata,
        issuer,
    }
}

/// The subject's common name; with several, the last (as Go reads it).
fn common_name(c: &X509Certificate<'_>) -> String {
    c.subject()
        .iter_common_name()
        .filter_map(|a| a.as_str().ok())
        .last()
        .unwrap_or_default()
        .to_string()
}

struct Sans {
    dns: Vec<String>,
    email: Vec<String>,
    uri: Vec<String>,
}

fn sans(c: &X509Certificate<'_>) -> Sans {
    let mut s = Sans {
        dns: Vec::new(),
        email: Vec::new(),
        uri: Vec::new(),
    };
    if let Ok(Some(san)) = c.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(v) => s.dns.push(v.to_string()),
                GeneralName::RFC822Name(v) => s.email.push(v.to_string()),
                GeneralName::URI(v) => s.uri.push(v.to_string()),
                _ => {}
            }
        }
    }
    s
}

/// Does any pattern match any value? An empty pattern list allows all.
fn any_match(patterns: &[String], values: &[String]) -> bool {
    patterns.is_empty()
        || patterns
            .iter()
            .any(|p| values.iter().any(|v| arca_sdk::glob::matches(p, v)))
}

/// The entry's constraints on the leaf (see [`Constraints`]).
pub fn matches_constraints(leaf: &X509Certificate<'_>, c: &Constraints) -> bool {
    let cn = vec![common_name(leaf)];
    let s = sans(leaf);
    let ous: Vec<String> = leaf
        .subject()
        .iter_organizational_unit()
        .filter_map(|a| a.as_str().ok())
        .map(str::to_string)
        .collect();
    let names: Vec<String> = cn.iter().chain(&s.dns).chain(&s.email).cloned().collect();
    any_match(&c.allowed_names, &names)
        && any_match(&c.allowed_common_names, &cn)
        && any_match(&c.allowed_dns_sans, &s.dns)
        && any_match(&c.allowed_email_sans, &s.email)
        && any_match(&c.allowed_uri_sans, &s.uri)
        && any_match(&c.allowed_organizational_units, &ous)
        && matches_extensions(leaf, &c.required_extensions)
}

fn matches_extensions(leaf: &X509Certificate<'_>, required: &[String]) -> bool {
    required.iter().all(|r| {
        let Some((oid, pattern)) = r.split_once(':') else {
            return false;
        };
        leaf.extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == oid.trim())
            .is_some_and(|e| arca_sdk::glob::matches(pattern, &asn1_string(e.value)))
    })
}

/// Checks a `required_extensions` item: `oid:pattern` with a dotted OID.
pub fn check_required_extension(r: &str) -> Result<(), String> {
    let Some((oid, _)) = r.split_once(':') else {
        return Err(format!(
            "required_extensions item {r:?} must be \"oid:value\" (globs allowed in the value)"
        ));
    };
    check_oid(oid.trim()).map_err(|e| format!("required_extensions item {r:?}: {e}"))
}

/// Checks a dotted OID (`1.2.3.4`).
pub fn check_oid(oid: &str) -> Result<(), String> {
    let parts: Vec<&str> = oid.split('.').collect();
    let ok = parts.len() >= 2
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if ok {
        Ok(())
    } else {
        Err(format!("{oid:?} is not a dotted OID such as 1.2.3.4"))
    }
}

/// An extension value read as one DER string (UTF8String, PrintableString,
/// IA5String, NumericString, VisibleString, T61String, GeneralString or
/// BMPString), as Vault reads it; `""` when it is not one.
pub fn asn1_string(v: &[u8]) -> String {
    let Some((&tag, rest)) = v.split_first() else {
        return String::new();
    };
    let Some((&first, rest)) = rest.split_first() else {
        return String::new();
    };
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return String::new();
        }
        let len = rest[..n].iter().fold(0usize, |a, b| (a << 8) | *b as usize);
        (len, &rest[n..])
    };
    let Some(body) = rest.get(..len) else {
        return String::new();
    };
    let text = match tag {
        // UTF8String, T61String, GeneralString
        0x0c | 0x14 | 0x1b => std::str::from_utf8(body).ok().map(str::to_string),
        // PrintableString
        0x13 => body
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b" '()+,-./:=?*&".contains(b))
            .then(|| String::from_utf8_lossy(body).into_owned()),
        // IA5String, VisibleString
        0x16 | 0x1a => body
            .is_ascii()
            .then(|| String::from_utf8_lossy(body).into_owned()),
        // NumericString
        0x12 => body
            .iter()
            .all(|b| b.is_ascii_digit() || *b == b' ')
            .then(|| String::from_utf8_lossy(body).into_owned()),
        // BMPString: UTF-16BE
        0x1e if body.len() % 2 == 0 => String::from_utf16(
            &body
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect::<Vec<u16>>(),
        )
        .ok(),
        _ => None,
    };
    text.unwrap_or_default()
}

/// `aa:bb:cc`, as Vault shows key identifiers in metadata.
pub fn hex_colons(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Does `presented[0]` equal `der`? (Renewal binding.)
pub fn same_leaf(presented: &[Vec<u8>], der: &[u8]) -> bool {
    presented.first().is_some_and(|l| l.as_slice() == der)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asn1_strings_are_read_like_vault() {
        assert_eq!(asn1_string(&[0x0c, 3, b'a', b'b', b'c']), "abc");
        assert_eq!(asn1_string(&[0x13, 2, b'A', b'1']), "A1");
        assert_eq!(asn1_string(&[0x16, 1, b'x']), "x");
        assert_eq!(asn1_string(&[0x1e, 4, 0, b'h', 0, b'i']), "hi");
        assert_eq!(
            asn1_string(&[0x04, 1, b'x']),
            "",
            "an OCTET STRING is not a string"
        );
        assert_eq!(asn1_string(&[0x0c, 5, b'a']), "", "truncated");
        assert_eq!(asn1_string(&[]), "");
        let long: Vec<u8> = [vec![0x0c, 0x81, 200], vec![b'z'; 200]].concat();
        assert_eq!(asn1_string(&long), "z".repeat(200));
    }

    #[test]
    fn oids_and_required_extensions_are_checked() {
        assert!(check_required_extension("1.2.3.4:web-*").is_ok());
        assert!(check_required_extension("1.2.3.4:").is_ok());
        assert!(check_required_extension("1.2.3.4").is_err());
        assert!(check_required_extension("name:x").is_err());
        assert!(check_oid("2.5.29.17").is_ok());
        assert!(check_oid("2..5").is_err());
        assert_eq!(hex_colons(&[0xab, 0x01]), "ab:01");
    }

    #[test]
    fn garbage_is_not_a_trusted_certificate() {
        assert!(parse_trusted("").is_err());
        assert!(parse_trusted("not a certificate").is_err());
        let bad = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(parse_trusted(bad).unwrap_err().contains("does not parse"));
        let key = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(parse_trusted(key)
            .unwrap_err()
            .contains("not a CERTIFICATE"));
    }
}
