//! TLS settings of an API listener, with Vault's listener semantics, built
//! into a rustls [`ServerConfig`](rustls::ServerConfig).
//!
//! Invariants of a configuration returned by [`server_config`]:
//! * only TLS 1.2 and 1.3 exist (rustls has nothing older); the enabled
//!   versions are `tls_min_version ..= tls_max_version` (default 1.2 ..= 1.3);
//! * `tls_cipher_suites` uses Vault's (Go's) names. Listed TLS 1.2 suites
//!   are the only TLS 1.2 suites offered; TLS 1.3 suites are all offered
//!   unless the list names some (Go cannot restrict them, Arca can). A
//!   name rustls does not implement (CBC, RC4, 3DES, static RSA) or does not
//!   know is refused, naming the suite, as is a list that leaves an enabled
//!   version with no suite;
//! * client certificates, as Vault: by default requested but not required
//!   and not verified (an engine may look at them);
//!   `tls_require_and_verify_client_cert` requires one that chains to
//!   `tls_client_ca_file`; `tls_disable_client_certs` does not ask. Asking
//!   for both is refused. A `tls_client_ca_file` without
//!   `require_and_verify` is loaded (so a bad file is refused at start) and
//!   its subjects are sent as hints with the certificate request;
//! * ALPN offers `h2` and `http/1.1`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme, SupportedCipherSuite};

/// A TLS protocol version a listener may allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// `tls12`
    Tls12,
    /// `tls13`
    Tls13,
}

impl TlsVersion {
    /// Parses Vault's spelling (`tls12`, `tls13`). Older versions are
    /// refused: rustls does not implement them.
    pub fn from_vault_name(name: &str) -> Result<TlsVersion, TlsConfigError> {
        match name {
            "tls12" => Ok(TlsVersion::Tls12),
            "tls13" => Ok(TlsVersion::Tls13),
            "tls10" | "tls11" => Err(TlsConfigError::ObsoleteVersion {
                name: name.to_string(),
            }),
            _ => Err(TlsConfigError::UnknownVersion {
                name: name.to_string(),
            }),
        }
    }

    /// Vault's spelling.
    pub fn vault_name(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "tls12",
            TlsVersion::Tls13 => "tls13",
        }
    }

    fn rustls(self) -> &'static rustls::SupportedProtocolVersion {
        match self {
            TlsVersion::Tls12 => &rustls::version::TLS12,
            TlsVersion::Tls13 => &rustls::version::TLS13,
        }
    }
}

/// Whether the listener asks clients for certificates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientAuth {
    /// Vault's default: ask, accept a connection without one, do not verify.
    #[default]
    Request,
    /// `tls_require_and_verify_client_cert`: a certificate that chains to
    /// `tls_client_ca_file` is required.
    RequireAndVerify,
    /// `tls_disable_client_certs`: do not ask.
    Disabled,
}

/// The TLS settings of one listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsOptions {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
    /// Lowest version offered.
    pub min_version: TlsVersion,
    /// Highest version offered.
    pub max_version: TlsVersion,
    /// Vault/Go cipher-suite names; empty: rustls' defaults.
    pub cipher_suites: Vec<String>,
    /// CA bundle for client certificates.
    pub client_ca_file: Option<PathBuf>,
    /// Whether client certificates are asked for / required.
    pub client_auth: ClientAuth,
}

impl TlsOptions {
    /// A certificate and key with every other setting at Vault's default.
    pub fn new(cert_file: impl Into<PathBuf>, key_file: impl Into<PathBuf>) -> TlsOptions {
        TlsOptions {
            cert_file: cert_file.into(),
            key_file: key_file.into(),
            min_version: TlsVersion::Tls12,
            max_version: TlsVersion::Tls13,
            cipher_suites: Vec::new(),
            client_ca_file: None,
            client_auth: ClientAuth::Request,
        }
    }
}

/// Why a listener's TLS settings were refused.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("cannot read {setting} {}: {source}", path.display())]
    Read {
        setting: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{setting} {} holds no {what}; give a PEM file", path.display())]
    Empty {
        setting: &'static str,
        path: PathBuf,
        what: &'static str,
    },
    #[error("tls_client_ca_file {}: a certificate is not usable as a trust anchor: {source}", path.display())]
    BadClientCa {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("tls_cert_file and tls_key_file do not form a valid pair: {source}")]
    KeyPair {
        #[source]
        source: rustls::Error,
    },
    #[error("unknown TLS version {name:?}; use \"tls12\" or \"tls13\"")]
    UnknownVersion { name: String },
    #[error("TLS version {name:?} is not supported (only TLS 1.2 and 1.3 are); use \"tls12\" or \"tls13\"")]
    ObsoleteVersion { name: String },
    #[error("tls_min_version {} is above tls_max_version {}; swap them", min.vault_name(), max.vault_name())]
    VersionRange { min: TlsVersion, max: TlsVersion },
    #[error("unknown cipher suite {name:?} in tls_cipher_suites; supported: {}", SUITES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "))]
    UnknownCipherSuite { name: String },
    #[error("cipher suite {name:?} in tls_cipher_suites is not supported (no forward secrecy or no AEAD); supported: {}", SUITES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "))]
    UnsupportedCipherSuite { name: String },
    #[error("tls_cipher_suites leaves TLS {version} without a cipher suite; add one of its suites or change tls_min_version/tls_max_version")]
    NoSuiteForVersion { version: &'static str },
    #[error("tls_cipher_suites names only suites of a TLS version this listener does not enable ({names}); they would have no effect")]
    SuitesUnused { names: String },
    #[error("tls_require_and_verify_client_cert needs tls_client_ca_file (the CA that issues client certificates)")]
    RequireWithoutCa,
    #[error("client certificate verifier: {source}")]
    Verifier {
        #[source]
        source: rustls::server::VerifierBuilderError,
    },
    #[error("TLS settings refused by rustls: {source}")]
    Rustls {
        #[source]
        source: rustls::Error,
    },
}

/// Vault's (Go's) names of the suites rustls implements, with aliases.
static SUITES: &[(&str, &SupportedCipherSuite)] = {
    use rustls::crypto::ring::cipher_suite as cs;
    &[
        ("TLS_AES_128_GCM_SHA256", &cs::TLS13_AES_128_GCM_SHA256),
        ("TLS_AES_256_GCM_SHA384", &cs::TLS13_AES_256_GCM_SHA384),
        (
            "TLS_CHACHA20_POLY1305_SHA256",
            &cs::TLS13_CHACHA20_POLY1305_SHA256,
        ),
        (
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            &cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        ),
        (
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            &cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        ),
        (
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
            &cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ),
        (
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
            &cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ),
        (
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            &cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        ),
        (
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            &cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        ),
        (
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
            &cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ),
        (
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
            &cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ),
    ]
};

/// Go's suites that rustls deliberately does not implement.
const REFUSED_SUITES: &[&str] = &[
    "TLS_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
];

/// The rustls suite for a Vault/Go cipher-suite name (exact, as Go).
pub fn cipher_suite(name: &str) -> Result<SupportedCipherSuite, TlsConfigError> {
    if let Some((_, s)) = SUITES.iter().find(|(n, _)| *n == name) {
        return Ok(**s);
    }
    if REFUSED_SUITES.contains(&name) {
        return Err(TlsConfigError::UnsupportedCipherSuite {
            name: name.to_string(),
        });
    }
    Err(TlsConfigError::UnknownCipherSuite {
        name: name.to_string(),
    })
}

fn version_of(s: &SupportedCipherSuite) -> TlsVersion {
    match s {
        SupportedCipherSuite::Tls12(_) => TlsVersion::Tls12,
        SupportedCipherSuite::Tls13(_) => TlsVersion::Tls13,
    }
}

/// The suites to offer: see the module invariants.
fn suites_for(opts: &TlsOptions) -> Result<Vec<SupportedCipherSuite>, TlsConfigError> {
    let all = rustls::crypto::ring::DEFAULT_CIPHER_SUITES;
    if opts.cipher_suites.is_empty() {
        return Ok(all.to_vec());
    }
    let mut listed = Vec::new();
    for name in &opts.cipher_suites {
        let s = cipher_suite(name)?;
        if !listed.contains(&s) {
            listed.push(s);
        }
    }
    let enabled = |v: TlsVersion| opts.min_version <= v && v <= opts.max_version;
    let unused: Vec<&str> = opts
        .cipher_suites
        .iter()
        .filter(|n| cipher_suite(n).is_ok_and(|s| !enabled(version_of(&s))))
        .map(String::as_str)
        .collect();
    if unused.len() == opts.cipher_suites.len() {
        return Err(TlsConfigError::SuitesUnused {
            names: unused.join(", "),
        });
    }
    let mut out: Vec<SupportedCipherSuite> = listed
        .iter()
        .copied()
        .filter(|s| enabled(version_of(s)))
        .collect();
    let lists_13 = out.iter().any(|s| version_of(s) == TlsVersion::Tls13);
    if enabled(TlsVersion::Tls13) && !lists_13 {
        out.extend(
            all.iter()
                .copied()
                .filter(|s| version_of(s) == TlsVersion::Tls13),
        );
    }
    if enabled(TlsVersion::Tls12) && !out.iter().any(|s| version_of(s) == TlsVersion::Tls12) {
        return Err(TlsConfigError::NoSuiteForVersion { version: "1.2" });
    }
    Ok(out)
}

fn read_certs(
    setting: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let read = |source| TlsConfigError::Read {
        setting,
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read)?;
    let certs = rustls_pemfile::certs(&mut std::io::BufReader::new(file))
        .collect::<Result<Vec<_>, _>>()
        .map_err(read)?;
    if certs.is_empty() {
        return Err(TlsConfigError::Empty {
            setting,
            path: path.to_path_buf(),
            what: "certificate",
        });
    }
    Ok(certs)
}

/// Builds the rustls configuration of a listener from its settings.
pub fn server_config(opts: &TlsOptions) -> Result<rustls::ServerConfig, TlsConfigError> {
    if opts.min_version > opts.max_version {
        return Err(TlsConfigError::VersionRange {
            min: opts.min_version,
            max: opts.max_version,
        });
    }
    let certs = read_certs("tls_cert_file", &opts.cert_file)?;
    let key_read = |source| TlsConfigError::Read {
        setting: "tls_key_file",
        path: opts.key_file.clone(),
        source,
    };
    let key = rustls_pemfile::private_key(&mut std::io::BufReader::new(
        std::fs::File::open(&opts.key_file).map_err(key_read)?,
    ))
    .map_err(key_read)?
    .ok_or_else(|| TlsConfigError::Empty {
        setting: "tls_key_file",
        path: opts.key_file.clone(),
        what: "private key",
    })?;
    let provider = Arc::new(CryptoProvider {
        cipher_suites: suites_for(opts)?,
        ..rustls::crypto::ring::default_provider()
    });
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [TlsVersion::Tls12, TlsVersion::Tls13]
            .into_iter()
            .filter(|v| opts.min_version <= *v && *v <= opts.max_version)
            .map(TlsVersion::rustls)
            .collect();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|source| TlsConfigError::Rustls { source })?;
    let roots = match &opts.client_ca_file {
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in read_certs("tls_client_ca_file", path)? {
                roots.add(c).map_err(|source| TlsConfigError::BadClientCa {
                    path: path.clone(),
                    source,
                })?;
            }
            Some(roots)
        }
        None => None,
    };
    let builder = match opts.client_auth {
        ClientAuth::Disabled => builder.with_no_client_auth(),
        ClientAuth::RequireAndVerify => {
            let roots = roots.ok_or(TlsConfigError::RequireWithoutCa)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|source| TlsConfigError::Verifier { source })?;
            builder.with_client_cert_verifier(verifier)
        }
        ClientAuth::Request => builder.with_client_cert_verifier(Arc::new(RequestClientCert {
            hints: roots.map(|r| r.subjects()).unwrap_or_default(),
            provider,
        })),
    };
    let mut cfg = builder
        .with_single_cert(certs, key)
        .map_err(|source| TlsConfigError::KeyPair { source })?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Go's `tls.RequestClientCert`: ask for a certificate, accept any or none.
/// The handshake signature is still checked, so a presented certificate
/// is one whose key the client holds.
#[derive(Debug)]
struct RequestClientCert {
    hints: Vec<DistinguishedName>,
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for RequestClientCert {
    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(suites: &[&str], min: TlsVersion, max: TlsVersion) -> TlsOptions {
        TlsOptions {
            cipher_suites: suites.iter().map(|s| s.to_string()).collect(),
            min_version: min,
            max_version: max,
            ..TlsOptions::new("c", "k")
        }
    }

    #[test]
    fn vault_version_names() {
        assert_eq!(
            TlsVersion::from_vault_name("tls12").unwrap(),
            TlsVersion::Tls12
        );
        assert_eq!(
            TlsVersion::from_vault_name("tls13").unwrap(),
            TlsVersion::Tls13
        );
        assert!(matches!(
            TlsVersion::from_vault_name("tls10"),
            Err(TlsConfigError::ObsoleteVersion { .. })
        ));
        assert!(matches!(
            TlsVersion::from_vault_name("ssl3"),
            Err(TlsConfigError::UnknownVersion { .. })
        ));
    }

    #[test]
    fn cipher_suite_names_map_to_rustls_or_are_refused_by_name() {
        let s = cipher_suite("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305").unwrap();
        assert_eq!(
            s,
            rustls::crypto::ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        );
        let e = cipher_suite("TLS_RSA_WITH_AES_128_CBC_SHA").unwrap_err();
        assert!(matches!(e, TlsConfigError::UnsupportedCipherSuite { .. }));
        assert!(
            e.to_string().contains("TLS_RSA_WITH_AES_128_CBC_SHA"),
            "{e}"
        );
        let e = cipher_suite("TLS_MADE_UP").unwrap_err();
        assert!(matches!(e, TlsConfigError::UnknownCipherSuite { .. }));
        assert!(e.to_string().contains("TLS_MADE_UP"), "{e}");
    }

    #[test]
    fn listed_tls12_suites_restrict_tls12_and_keep_tls13() {
        let got = suites_for(&opts(
            &["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"],
            TlsVersion::Tls12,
            TlsVersion::Tls13,
        ))
        .unwrap();
        let v12: Vec<_> = got
            .iter()
            .filter(|s| version_of(s) == TlsVersion::Tls12)
            .collect();
        assert_eq!(v12.len(), 1);
        assert_eq!(
            got.iter()
                .filter(|s| version_of(s) == TlsVersion::Tls13)
                .count(),
            3
        );
    }

    #[test]
    fn suite_lists_that_cannot_work_are_refused() {
        // Only TLS 1.3 suites while TLS 1.2 is enabled: 1.2 has none.
        assert!(matches!(
            suites_for(&opts(
                &["TLS_AES_128_GCM_SHA256"],
                TlsVersion::Tls12,
                TlsVersion::Tls13
            )),
            Err(TlsConfigError::NoSuiteForVersion { .. })
        ));
        // Only TLS 1.2 suites on a TLS 1.3-only listener: no effect.
        assert!(matches!(
            suites_for(&opts(
                &["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"],
                TlsVersion::Tls13,
                TlsVersion::Tls13
            )),
            Err(TlsConfigError::SuitesUnused { .. })
        ));
        let ok = suites_for(&opts(
            &["TLS_AES_256_GCM_SHA384"],
            TlsVersion::Tls13,
            TlsVersion::Tls13,
        ))
        .unwrap();
        assert_eq!(ok.len(), 1);
    }
}
