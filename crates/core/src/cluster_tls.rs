//! The cluster's own certificate authority for mutual TLS on the cluster
//! port (raft RPCs and request forwarding).
//!
//! Invariants:
//! - The CA (an ECDSA P-256 key and a self-signed certificate) is created
//!   when the cluster is initialised and stored only inside the barrier, at
//!   [`RECORD`]: it is encrypted at rest and replicated like any secret.
//! - Node certificates are issued by the CA; their keys are generated on
//!   the node that uses them and never leave its memory. A node issues its
//!   own certificate when it is unsealed; a joining node sends a CSR inside
//!   the MAC'd join answer and receives its certificate only after the
//!   leader checked that it holds the unseal key.
//! - A node certificate names its node (CN) and is valid for the host of its
//!   cluster address only (the SAN peers verify), for [`LEAF_TTL`]. Nodes
//!   issue themselves a fresh one at every unseal and when the one in use
//!   has less than half its life left.
//! - Configured certificate files (`cluster_cert_file` & co.) replace all of
//!   this; then core installs nothing.

use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use arca_sdk::storage::{get_json, put_json};
use arca_sdk::{LogicalError, Storage};

use crate::cluster::ClusterIdentity;

/// Where the CA lives in the barrier.
pub const RECORD: &str = "core/cluster/tls";
/// Lifetime of the cluster CA.
pub const CA_TTL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Lifetime of a node certificate.
pub const LEAF_TTL: Duration = Duration::from_secs(365 * 24 * 3600);
/// Slack for clocks that disagree a little.
const BACKDATE: Duration = Duration::from_secs(300);

/// Why a certificate could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ClusterTlsError {
    #[error("cluster TLS: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("cluster TLS: the certificate request is invalid: {0}")]
    Csr(rcgen::Error),
    #[error("cluster TLS: cluster address {0:?} has no host")]
    NoHost(String),
}

/// The stored CA (its key is wiped from memory on drop).
#[derive(Serialize, Deserialize, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
pub struct CaRecord {
    pub ca_cert_pem: String,
    pub ca_key_pem: String,
}

fn validity(params: &mut CertificateParams, ttl: Duration) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + ttl;
}

impl CaRecord {
    /// A new CA for the cluster `cluster_id`.
    pub fn generate(cluster_id: &str) -> Result<CaRecord, ClusterTlsError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("Arca cluster CA {cluster_id}"));
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        validity(&mut params, CA_TTL);
        let cert = params.self_signed(&key)?;
        Ok(CaRecord {
            ca_cert_pem: cert.pem(),
            ca_key_pem: key.serialize_pem(),
        })
    }

    fn issue(
        &self,
        node_name: &str,
        cluster_addr: &str,
        public_key: &impl rcgen::PublicKeyData,
    ) -> Result<String, ClusterTlsError> {
        let ca_key = KeyPair::from_pem(&self.ca_key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(&self.ca_cert_pem, ca_key)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, node_name);
        params.distinguished_name = dn;
        params.subject_alt_names = vec![san_of(cluster_addr)?];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        validity(&mut params, LEAF_TTL);
        Ok(params.signed_by(public_key, &issuer)?.pem())
    }

    /// A certificate and fresh key for this node.
    pub fn own_identity(
        &self,
        node_name: &str,
        cluster_addr: &str,
    ) -> Result<ClusterIdentity, ClusterTlsError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let cert_pem = self.issue(node_name, cluster_addr, &key)?;
        Ok(ClusterIdentity {
            cert_pem,
            key_pem: Zeroizing::new(key.serialize_pem()),
            ca_pem: self.ca_cert_pem.clone(),
        })
    }

    /// A certificate for a joining node, for the key its CSR proves it
    /// holds; the names come from the (MAC'd) join claim, not the CSR.
    pub fn issue_for_csr(
        &self,
        csr_pem: &str,
        node_name: &str,
        cluster_addr: &str,
    ) -> Result<String, ClusterTlsError> {
        let csr =
            CertificateSigningRequestParams::from_pem(csr_pem).map_err(ClusterTlsError::Csr)?;
        self.issue(node_name, cluster_addr, &csr.public_key)
    }
}

/// A key pair and the CSR a joining node sends with its answer.
pub struct JoinKey {
    key: KeyPair,
    pub csr_pem: String,
}

impl JoinKey {
    pub fn generate(node_name: &str) -> Result<JoinKey, ClusterTlsError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, node_name);
        params.distinguished_name = dn;
        let csr_pem = params.serialize_request(&key)?.pem()?;
        Ok(JoinKey { key, csr_pem })
    }

    /// The identity made of this key and the certificate the leader issued.
    pub fn identity(&self, cert_pem: String, ca_pem: String) -> ClusterIdentity {
        ClusterIdentity {
            cert_pem,
            key_pem: Zeroizing::new(self.key.serialize_pem()),
            ca_pem,
        }
    }
}

/// The SAN a node certificate carries: the host of its cluster address
/// (`https://host:port`), an IP address or a DNS name.
fn san_of(cluster_addr: &str) -> Result<SanType, ClusterTlsError> {
    let url = if cluster_addr.contains("://") {
        reqwest::Url::parse(cluster_addr)
    } else {
        reqwest::Url::parse(&format!("https://{cluster_addr}"))
    }
    .map_err(|_| ClusterTlsError::NoHost(cluster_addr.to_string()))?;
    Ok(match url.host() {
        Some(url::Host::Ipv4(ip)) => SanType::IpAddress(ip.into()),
        Some(url::Host::Ipv6(ip)) => SanType::IpAddress(ip.into()),
        Some(url::Host::Domain(d)) => SanType::DnsName(d.to_string().try_into()?),
        None => return Err(ClusterTlsError::NoHost(cluster_addr.to_string())),
    })
}

/// When a certificate (PEM) stops being valid; `None` if unreadable.
pub fn not_after(cert_pem: &str) -> Option<std::time::SystemTime> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).ok()?;
    let cert = pem.parse_x509().ok()?;
    let secs = cert.validity().not_after.timestamp();
    Some(std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

impl crate::core::Core {
    /// The cluster CA from the barrier (unsealed nodes only).
    pub(crate) async fn cluster_ca(&self) -> Result<Option<CaRecord>, LogicalError> {
        let st = self.unsealed()?;
        Ok(get_json(st.root_view.as_ref(), RECORD).await?)
    }

    /// `sys/init` in a cluster: the CA is created with the barrier.
    pub(crate) async fn create_cluster_ca(
        &self,
        root_view: &dyn Storage,
        cluster_id: &str,
    ) -> Result<(), LogicalError> {
        let ca =
            CaRecord::generate(cluster_id).map_err(|e| LogicalError::internal(e.to_string()))?;
        Ok(put_json(root_view, RECORD, &ca).await?)
    }

    /// After an unseal (and when due for renewal): issues this node a fresh
    /// certificate from the cluster CA and installs it. A node of a cluster
    /// created before the CA existed creates it when it is the active node.
    pub(crate) async fn install_cluster_identity(&self) -> Result<(), LogicalError> {
        let Some(c) = self.cluster() else {
            return Ok(());
        };
        if !c.managed_identity() {
            return Ok(());
        }
        let ca =
            match self.cluster_ca().await? {
                Some(ca) => ca,
                None if c.state().is_active => {
                    let st = self.unsealed()?;
                    let id = self.cluster_id.read().clone();
                    self.create_cluster_ca(st.root_view.as_ref(), &id).await?;
                    self.cluster_ca().await?.ok_or_else(|| {
                        LogicalError::internal("the cluster CA vanished after it was written")
                    })?
                }
                // A node that has just joined holds the certificate the
                // leader issued; the CA record may still be on its way. It
                // keeps that one and issues its own at a later tick.
                None if self.cluster_cert_renew_at.lock().is_some() => return Ok(()),
                None => return Err(LogicalError::internal(
                    "this cluster has no CA for its cluster port yet; unseal the active node first",
                )),
            };
        let me = c.state().this;
        let id = ca
            .own_identity(&me.node_id, &me.cluster_addr)
            .map_err(|e| LogicalError::internal(e.to_string()))?;
        let renew = not_after(&id.cert_pem).map(|end| {
            let left = end
                .duration_since(std::time::SystemTime::now())
                .unwrap_or_default();
            std::time::SystemTime::now() + left / 2
        });
        c.set_identity(Some(id))
            .map_err(|e| LogicalError::internal(e.to_string()))?;
        *self.cluster_cert_renew_at.lock() = renew;
        Ok(())
    }

    /// Sealing: the node forgets its cluster key and leaves the cluster's
    /// traffic until it is unsealed again.
    pub(crate) fn drop_cluster_identity(&self) {
        let Some(c) = self.cluster() else { return };
        if !c.managed_identity() {
            return;
        }
        *self.cluster_cert_renew_at.lock() = None;
        if let Err(e) = c.set_identity(None) {
            tracing::warn!("sealing: cluster identity not removed: {e}");
        }
    }

    /// Called on every tick, on every node: renews this node's certificate
    /// once it has less than half its life left.
    pub(crate) async fn renew_cluster_identity_if_due(&self) {
        let due = matches!(*self.cluster_cert_renew_at.lock(), Some(t) if t <= std::time::SystemTime::now());
        if !due || self.is_sealed() {
            return;
        }
        match self.install_cluster_identity().await {
            Ok(()) => tracing::info!("cluster port: certificate renewed"),
            Err(e) => tracing::warn!(
                "cluster port: certificate renewal failed, retrying at the next tick: {e}"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The common name and SANs of a certificate (PEM), and its DER.
    fn names(pem: &str) -> (String, Vec<String>, Vec<u8>) {
        let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        let cert = p.parse_x509().unwrap();
        let cn = cert.subject().iter_common_name().next().unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap();
        let sans = san
            .value
            .general_names
            .iter()
            .map(|n| n.to_string())
            .collect();
        (cn.as_str().unwrap().to_string(), sans, p.contents.clone())
    }

    #[test]
    fn node_certificates_chain_to_the_ca_and_name_the_cluster_host() {
        let ca = CaRecord::generate("c1").unwrap();
        let id = ca.own_identity("node-a", "https://10.1.2.3:8201").unwrap();
        let (cn, sans, der) = names(&id.cert_pem);
        assert_eq!(cn, "node-a");
        assert_eq!(sans, vec!["IPAddress(0a:01:02:03)".to_string()]);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let (_, ca_pem) = x509_parser::pem::parse_x509_pem(ca.ca_cert_pem.as_bytes()).unwrap();
        let ca_cert = ca_pem.parse_x509().unwrap();
        cert.verify_signature(Some(ca_cert.public_key())).unwrap();
        // The lifetime from the certificate itself, not from the clock.
        let validity = cert.validity();
        let lifetime = validity.not_after.timestamp() - validity.not_before.timestamp();
        assert_eq!(lifetime as u64, (LEAF_TTL + BACKDATE).as_secs());
        assert!(not_after(&id.cert_pem).is_some());
        let v6 = ca.own_identity("node-c", "https://[fd00::7]:8201").unwrap();
        assert_eq!(
            names(&v6.cert_pem).1,
            vec![format!("IPAddress(fd{}:07)", ":00".repeat(14))]
        );
    }

    #[test]
    fn a_csr_gets_a_certificate_for_the_claimed_names_only() {
        let ca = CaRecord::generate("c1").unwrap();
        let jk = JoinKey::generate("evil.example").unwrap();
        let pem = ca
            .issue_for_csr(&jk.csr_pem, "node-b", "https://node-b.internal:8201")
            .unwrap();
        let (cn, sans, _) = names(&pem);
        assert_eq!(cn, "node-b");
        assert_eq!(sans, vec!["DNSName(node-b.internal)".to_string()]);
        // A tampered request is refused.
        let mut bad = jk.csr_pem.clone().into_bytes();
        let mid = bad.len() / 2;
        bad[mid] = if bad[mid] == b'A' { b'B' } else { b'A' };
        assert!(ca
            .issue_for_csr(&String::from_utf8(bad).unwrap(), "node-b", "https://x:1")
            .is_err());
    }
}
