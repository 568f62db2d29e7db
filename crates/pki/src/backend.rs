//! Assembles the PKI engine from its path groups.

use arca_sdk::{Framework, SpecialPaths};
use tokio::sync::Mutex;

use crate::{
    path_fetch, path_intermediate, path_issue, path_manage, path_ocsp, path_revoke, path_roles,
    path_root, path_tidy,
};

/// Engine state: a lock that serializes CA changes and revocations on the
/// active node, each node's CRL index and signed CRLs (rebuilt from
/// replicated state; see `crl`), and parsed issuer signing keys (checked
/// against the stored issuer on every use). Nothing else is cached.
pub struct Pki {
    /// The mount's TTL limits (Vault: issued lifetimes are capped at the
    /// mount's max lease TTL unless a role says less).
    pub(crate) system: std::sync::Arc<dyn arca_sdk::SystemView>,
    pub(crate) ca_lock: Mutex<()>,
    pub(crate) crls: crate::crl::CrlCache,
    /// Parsed issuer certificates and keys, by issuer id (see `signer`).
    pub(crate) signers: parking_lot::Mutex<
        std::collections::HashMap<String, std::sync::Arc<crate::model::CachedSigner>>,
    >,
}

impl Pki {
    async fn periodic(&self, s: &dyn arca_sdk::Storage) -> Result<(), arca_sdk::LogicalError> {
        self.crl_periodic(s).await?;
        self.auto_tidy_periodic(s).await
    }

    async fn invalidate(&self, key: &str) {
        // A snapshot restore can move every header backwards.
        if key.is_empty() {
            self.crls.clear().await;
            self.signers.lock().clear();
        }
    }
}

/// The secret type of a certificate issued with a role's `generate_lease`.
pub(crate) const SECRET_CERTS: &str = "pki";

/// Paths served without a token and from local state during elections.
const PUBLIC: &[&str] = &[
    "cert/*",
    "ca",
    "ca/pem",
    "ca_chain",
    "crl",
    "crl/pem",
    "crl/delta",
    "crl/delta/pem",
    "issuers",
    "issuer/+/pem",
    "issuer/+/der",
    "issuer/+/json",
    "issuer/+/crl*",
    "ocsp",
    "ocsp/*",
];

/// The registry's factory.
pub fn new_backend(
    cfg: &arca_sdk::BackendConfig,
) -> Result<std::sync::Arc<dyn arca_sdk::Backend>, arca_sdk::LogicalError> {
    Ok(std::sync::Arc::new(factory(cfg.system.clone())))
}

pub fn factory(system: std::sync::Arc<dyn arca_sdk::SystemView>) -> Framework<Pki> {
    let mut paths = Vec::new();
    paths.extend(path_root::paths());
    paths.extend(path_intermediate::paths());
    paths.extend(path_roles::paths());
    paths.extend(path_issue::paths());
    paths.extend(path_fetch::paths());
    paths.extend(path_revoke::paths());
    paths.extend(path_tidy::paths());
    paths.extend(path_ocsp::paths());
    paths.extend(path_manage::paths());
    let pki = Pki {
        system,
        ca_lock: Default::default(),
        crls: Default::default(),
        signers: Default::default(),
    };
    Framework::new("pki", pki, paths)
        .with_special_paths(SpecialPaths {
            // Vault's sudo-protected PKI paths: deleting every issuer and
            // key, and signing self-issued certificates (cross-signing).
            root: ["root", "root/sign-self-issued", "issuer/+/sign-self-issued"]
                .map(String::from)
                .to_vec(),
            unauthenticated: PUBLIC.iter().map(|s| s.to_string()).collect(),
            // OCSP requests are POSTed by relying parties without a token.
            unauthenticated_writes: vec!["ocsp".into()],
            // Issuance never waits for a leader: with no_store it writes
            // nothing and is served locally; a stored one forwards its write.
            available_without_leader: PUBLIC
                .iter()
                .chain(["issue/*", "sign/*", "issuer/+/issue/*", "issuer/+/sign/*"].iter())
                .map(|s| s.to_string())
                .collect(),
            forward_on_standby: vec![],
        })
        .with_secret(arca_sdk::SecretType {
            name: SECRET_CERTS,
            renew: None,
            revoke: |b: &Pki, c| Box::pin(b.revoke_leased_cert(c)),
        })
        .with_periodic(|b: &Pki, s| Box::pin(b.periodic(s)))
        .with_invalidate(|b: &Pki, k| Box::pin(b.invalidate(k)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_path_declares_its_captures_and_has_help() {
        let lint =
            super::factory(std::sync::Arc::new(arca_sdk::StaticSystemView::default())).lint();
        assert!(lint.is_empty(), "{lint:?}");
    }
}
