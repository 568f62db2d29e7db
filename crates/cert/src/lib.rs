//! The `cert` auth method: a client logs in with the TLS client
//! certificate it presented on the connection and gets a token with the
//! policies of the trusted certificate entry its certificate matches,
//! following Vault's and OpenBao's TLS certificate auth API (paths,
//! fields, answers).
//!
//! Paths: `certs` (LIST), `certs/:name` (create, update, read, delete;
//! `certificate`, the `allowed_*` name constraints, `required_extensions`,
//! `allowed_metadata_extensions`, `display_name`, the `ocsp_*` settings,
//! the common token fields), `crls` (LIST), `crls/:name` (write, read,
//! delete; `crl`), `config` (read, write: `disable_binding`,
//! `enable_identity_alias_metadata`, `ocsp_cache_size`) and `login` (no
//! token needed; optional `name`).
//!
//! Storage: `cert/<name>` (an entry: certificate, constraints, OCSP and
//! token settings; names lower-cased), `crls/<name>` (a CRL's revoked
//! serial numbers, issuer and update times) and `config`. Every login reads
//! the entries, CRLs and config it needs, so a write is seen by the next
//! login on any node. The only thing kept in memory is the OCSP answer
//! cache ([`ocsp`]), per node.
//!
//! Invariants:
//! - A certificate entry holds only PEM certificates that parse (a CA
//!   entry's are also usable as WebPKI trust anchors); anything else is
//!   refused with a 400 and nothing is stored. An entry whose first
//!   certificate is not a CA (no `basicConstraints cA`) is a trusted leaf:
//!   it must allow TLS client authentication when it names extended key
//!   usages.
//! - A login succeeds only for a presented leaf that is valid at the
//!   engine's clock (`SystemView::now`), allows TLS client authentication
//!   when it names extended key usages, and either is byte-for-byte one of
//!   an entry's certificates or chains (through the intermediates the
//!   client sent) to one of a CA entry's certificates valid at that time,
//!   verified by WebPKI with the same clock; then the entry's constraints
//!   must all hold and no certificate of the chain may be on a stored CRL
//!   (see [`verify`]); for an entry with `ocsp_enabled`, OCSP must then
//!   allow the leaf (see [`ocsp`]: "revoked" always refuses, no known status
//!   refuses unless `ocsp_fail_open`), else the next trusting entry is
//!   tried. Each of these refusals is a 400 that says which stage failed,
//!   never which entry came close.
//! - A CRL is applied as Vault applies it: a serial number on any stored
//!   CRL refuses every chain holding a certificate with that serial (the
//!   CRL's issuer is not compared, so a revocation is never missed over a
//!   name encoding; the CRL's signature is not checked — writing one
//!   needs a token allowed to).
//! - OCSP requests go only to the entry's `ocsp_servers_override` or the
//!   leaf's AIA OCSP URLs, bounded in time and size; answers count only when
//!   signed by the issuer, its delegated responder or an
//!   `ocsp_ca_certificates` certificate, for this certificate, and current
//!   by the engine's clock.
//! - The Vault option this method does not implement (CRL distribution
//!   point URLs, `crls/:name url`) is refused with a 400 "not available
//!   yet"; it is never accepted and ignored.
//! - A login token carries the entry's name and the login certificate.
//!   Renewing it needs the entry to still exist with the same policies;
//!   unless `config.disable_binding` is set, the login certificate (and
//!   the chain it came with) must also still verify against the entry as
//!   it is now — still valid, not revoked (CRLs, and OCSP when the entry
//!   enables it), constraints still met — and, when the renew request
//!   carries its connection, the presented leaf must be the one the login
//!   used (core does not pass the connection to auth-renew callbacks today,
//!   so a renewal is not yet bound to the certificate presented on the
//!   renewing connection).
//! - With `config.enable_identity_alias_metadata` the identity alias (the
//!   common name) carries the token's metadata; without it, none.
//! - An entry's `token_bound_cidrs` refuse logins from other addresses
//!   (403) and bind the token (core enforces it on every use).
//! - `login` runs on the active node (it creates a token): a standby
//!   forwards it, with the client's certificates.

mod config;
mod crl;
mod entry;
mod login;
pub mod ocsp;
pub mod verify;

use std::sync::Arc;

use arca_sdk::{
    Backend, BackendConfig, Field, FieldType, Framework, LogicalError, Operation, OperationProps,
    Path, SpecialPaths, SystemView,
};

/// The engine state: the mount's system view (the clock, TTL limits) and
/// this node's OCSP answer cache.
pub struct CertAuth {
    system: Arc<dyn SystemView>,
    ocsp_cache: ocsp::Cache,
}

/// An entry or CRL name: what Vault's `GenericNameRegex` accepts.
macro_rules! name_re {
    () => {
        r"(?P<name>\w(?:[\w.-]*\w)?)"
    };
}
pub(crate) use name_re;

pub(crate) fn name_field(what: &'static str) -> Field {
    Field::new("name", FieldType::String, what)
}

/// LIST paging fields (`after`, `limit`), as Vault's.
pub(crate) fn paging_fields() -> [Field; 2] {
    [
        Field::new(
            "after",
            FieldType::String,
            "List only the names after this one (it need not exist).",
        ),
        Field::new(
            "limit",
            FieldType::Int,
            "Return at most this many names (0: all).",
        ),
    ]
}

/// Applies `after` and `limit` to sorted keys.
pub(crate) fn page(
    keys: Vec<String>,
    data: &arca_sdk::FieldData,
) -> Result<Vec<String>, LogicalError> {
    let after = data.str_or("after", "")?;
    let limit = data.get_i64("limit")?.unwrap_or(0);
    let iter = keys.into_iter().filter(|k| after.is_empty() || *k > after);
    Ok(if limit > 0 {
        iter.take(limit as usize).collect()
    } else {
        iter.collect()
    })
}

/// The registry's factory.
pub fn new_backend(cfg: &BackendConfig) -> Result<Arc<dyn Backend>, LogicalError> {
    Ok(Arc::new(factory(cfg.system.clone())))
}

/// The backend over a given system view (tests pass a test clock).
pub fn factory(system: Arc<dyn SystemView>) -> Framework<CertAuth> {
    let mut paths: Vec<Path<CertAuth>> = vec![config::path()];
    paths.extend(entry::paths());
    paths.extend(crl::paths());
    paths.push(
        Path::new("login")
            .field(Field::new(
                "name",
                FieldType::String,
                "Authenticate against only this certificate entry (default: any that matches).",
            ))
            .op(Operation::Update, |b: &CertAuth, c| Box::pin(b.login(c)))
            .props(
                Operation::Update,
                OperationProps {
                    summary: "Log in with the TLS client certificate of the connection.",
                    // It creates a token: only the active node runs it.
                    forward_on_standby: true,
                    available_without_leader: false,
                },
            )
            .help(
                "Log in with the TLS client certificate presented on the connection; the token \
                 has the policies of the trusted certificate entry it matches.",
            ),
    );
    let state = CertAuth {
        system,
        ocsp_cache: ocsp::Cache::new(config::DEFAULT_OCSP_CACHE_SIZE as usize),
    };
    Framework::new("cert", state, paths)
        .with_special_paths(SpecialPaths {
            unauthenticated_writes: vec!["login".into()],
            forward_on_standby: vec!["login".into()],
            ..Default::default()
        })
        .with_auth_renew(|b: &CertAuth, c| Box::pin(b.renew(c)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn paths_are_declared_completely() {
        let f = super::factory(std::sync::Arc::new(arca_sdk::StaticSystemView::default()));
        assert!(f.lint().is_empty(), "{:?}", f.lint());
    }
}
