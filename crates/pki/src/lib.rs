//! The PKI secrets engine: a CA that issues X.509 certificates by role,
//! revokes them and publishes CRLs, following Vault's PKI API (paths, field
//! names, defaults, response shapes). Built against the sdk only.
//!
//! This first slice covers: `root/generate/:type` and `DELETE root`,
//! the intermediate flow (`intermediate/generate/:type`,
//! `root/sign-intermediate`, `intermediate/set-signed`), `sign/:role`,
//! `roles/:name`, `issue/:role`, `cert/:serial`, `certs`, `ca`, `ca/pem`,
//! `ca_chain`, `cert/ca`, `revoke`, `crl`, `crl/pem`, `cert/crl`,
//! `crl/rotate`, `config/urls`, `issuers`. OCSP, delta CRLs, key and issuer
//! management and tidy are still to come.
//!
//! Invariants: CA private keys leave the engine only in the answer of the
//! `exported` generation that made them; names outside a role are refused
//! with a 400 that names them; a certificate never outlives its issuer; the
//! read paths for CA certificates and CRLs are unauthenticated and answer
//! from local state (declared available without a leader).

mod backend;
mod crl;
mod crypto;
mod model;
mod path_fetch;
mod path_intermediate;
mod path_issue;
mod path_manage;
mod path_ocsp;
mod path_revoke;
mod path_roles;
mod path_root;
mod path_tidy;
mod role;
mod x509;

pub use backend::{factory, new_backend, Pki};
