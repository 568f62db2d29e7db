//! Test identities for the cluster port: one CA per test process, and a
//! certificate for 127.0.0.1 per node (what core's `cluster_tls` issues
//! in a real cluster).

use std::sync::OnceLock;

use super::ClusterTls;
use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, SanType,
};

struct Ca {
    cert_pem: String,
    key_pem: String,
}

fn ca() -> &'static Ca {
    static CA: OnceLock<Ca> = OnceLock::new();
    CA.get_or_init(|| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = p.self_signed(&key).unwrap();
        Ca {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    })
}

/// A certificate for a node listening on 127.0.0.1, from the test CA.
pub fn loopback_identity() -> ClusterTls {
    let ca = ca();
    let issuer =
        Issuer::from_ca_cert_pem(&ca.cert_pem, KeyPair::from_pem(&ca.key_pem).unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.subject_alt_names = vec![SanType::IpAddress([127, 0, 0, 1].into())];
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = p.signed_by(&key, &issuer).unwrap();
    ClusterTls {
        cert_pem: cert.pem().into_bytes(),
        key_pem: zeroize::Zeroizing::new(key.serialize_pem().into_bytes()),
        ca_pem: ca.cert_pem.clone().into_bytes(),
    }
}
