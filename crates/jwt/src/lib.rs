//! The `jwt` auth method: a client logs in with a JSON Web Token signed by
//! an identity provider (a CI system, Kubernetes, an OIDC provider) and
//! gets a token with the policies of the role whose bindings the token's
//! claims satisfy, following Vault's and OpenBao's JWT auth API (paths,
//! fields, answers). The browser OIDC flow (`oidc/auth_url`,
//! `oidc/callback`, `role_type=oidc`) is not built.
//!
//! Paths: `config` (read, write), `role` (LIST), `role/:name` (create,
//! update, read, delete) and `login` (no token needed; `role`, `jwt`).
//!
//! Storage: `config` (the [`config::Config`]) and `role/<name>` (a
//! [`role::Role`], names lower-cased). Fetched keys are kept in memory
//! only ([`keys::KeyCache`]).
//!
//! Invariants:
//! - Exactly one key source is configured: `jwt_validation_pubkeys`,
//!   `jwks_url` or `oidc_discovery_url`. A config whose keys cannot be
//!   read or fetched is refused (400, with the reason) and not stored,
//!   unless `skip_jwks_validation` asks to store it with a warning.
//! - Every Vault field this method does not implement (the browser flow's,
//!   identity groups, provider configs) is refused with a 400 "not
//!   available yet" when given a value; none is accepted and ignored.
//! - A login verifies the signature before it reads any claim, then the
//!   time claims with the role's leeways against the engine's clock
//!   (`SystemView::now`), the issuer, subject, audience, `bound_claims`;
//!   each refusal is a 400 that says which check failed, never the key.
//!   See [`token`] for the exact rules.
//! - Fetched keys are refreshed when a token names an unknown key id, at
//!   most once per [`keys::MIN_REFRESH_INTERVAL`] (see [`keys`]).
//! - A role's `token_bound_cidrs` refuse logins from other addresses (403,
//!   before the token is looked at), and bind the token (core enforces it).
//! - A login token carries the role name; renewing it needs the role to
//!   still exist, and the role's current token settings apply.
//! - `login` runs on the active node (it may fetch keys and it creates a
//!   token): a standby forwards it.

mod config;
mod keys;
mod login;
mod role;
mod token;

use std::sync::{Arc, RwLock};

use arca_sdk::{
    Backend, BackendConfig, Field, FieldType, Framework, LogicalError, Operation, OperationProps,
    Path, SpecialPaths, SystemView,
};

pub use keys::{FETCH_TIMEOUT, MAX_DOCUMENT, MAX_KEY_AGE, MIN_REFRESH_INTERVAL};

/// The engine state: the mount's system view (the clock, TTL limits) and
/// the keys kept in memory.
pub struct JwtAuth {
    system: Arc<dyn SystemView>,
    /// Keys fetched from `jwks_url` or the discovery document.
    keys: keys::KeyCache,
    /// `jwt_validation_pubkeys` as last parsed.
    static_keys: RwLock<Option<ParsedPems>>,
}

/// A PEM list and the keys parsed from it.
type ParsedPems = (Vec<String>, Arc<Vec<keys::Key>>);

/// The registry's factory.
pub fn new_backend(cfg: &BackendConfig) -> Result<Arc<dyn Backend>, LogicalError> {
    Ok(Arc::new(factory(cfg.system.clone())))
}

/// The backend over a given system view (tests pass a test clock).
pub fn factory(system: Arc<dyn SystemView>) -> Framework<JwtAuth> {
    let state = JwtAuth {
        system,
        keys: keys::KeyCache::default(),
        static_keys: RwLock::new(None),
    };
    let mut paths: Vec<Path<JwtAuth>> = vec![config::fields()
        .into_iter()
        .fold(Path::new("config"), |p, f| p.field(f))
        .op(Operation::Read, |b: &JwtAuth, c| Box::pin(b.read_config(c)))
        .op(Operation::Update, |b: &JwtAuth, c| Box::pin(b.write_config(c)))
        .props(
            Operation::Update,
            OperationProps {
                summary: "Configure where signing keys come from and the issuer tokens must have.",
                // It fetches the key set from another system.
                forward_on_standby: true,
                available_without_leader: false,
            },
        )
        .help("Configure the key source (public keys, a JWKS URL or OIDC discovery), the accepted algorithms, the bound issuer and the default role.")];
    paths.extend(role::paths());
    paths.push(
        Path::new("login")
            .field(Field::new(
                "role",
                FieldType::String,
                "The role to log in with (default: the config's default_role).",
            ))
            .field(Field::new("jwt", FieldType::String, "The signed JWT.").sensitive())
            .op(Operation::Update, |b: &JwtAuth, c| Box::pin(b.login(c)))
            .props(
                Operation::Update,
                OperationProps {
                    summary: "Log in with a signed JWT.",
                    // It may fetch keys and it creates a token: only the
                    // active node runs it.
                    forward_on_standby: true,
                    available_without_leader: false,
                },
            )
            .help("Log in with a signed JWT; the token has the role's policies."),
    );
    Framework::new("jwt", state, paths)
        .with_special_paths(SpecialPaths {
            unauthenticated_writes: vec!["login".into()],
            forward_on_standby: vec!["login".into()],
            ..Default::default()
        })
        .with_auth_renew(|b: &JwtAuth, c| Box::pin(b.renew(c)))
        .with_cleanup(|b: &JwtAuth| {
            Box::pin(async move {
                b.keys.clear();
                *b.static_keys.write().unwrap_or_else(|e| e.into_inner()) = None;
            })
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn paths_are_declared_completely() {
        let f = super::factory(std::sync::Arc::new(arca_sdk::StaticSystemView::default()));
        assert!(f.lint().is_empty(), "{:?}", f.lint());
    }
}
