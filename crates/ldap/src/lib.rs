//! The `ldap` auth method: users log in with their directory username and
//! password and get a token with the policies of their LDAP groups,
//! following Vault's and OpenBao's LDAP auth API (paths, fields, answers).
//!
//! Paths: `config` (read, write: the server URLs, TLS, how users and groups
//! are found, the common token fields), `groups` (LIST), `groups/:name`
//! (`policies`), `users` (LIST), `users/:name` (`policies`, `groups`) and
//! `login/:username` (`password`; no token needed).
//!
//! Storage: `config`, `group/<name>`, `user/<name>`. Nothing is cached in
//! memory: every login reads the configuration and entries it needs, so a
//! write is seen by the next login on any node.
//!
//! Invariants:
//! - A username reaches the server only escaped (RFC 4515 in filters, RFC
//!   4514 in DNs, see [`filter`]), and a username holding LDAP filter
//!   characters (`*`, `(`, `)`, `\`, NUL) is refused with a 400 before
//!   anything is sent, so no username can widen a search.
//! - An empty password is always refused before any network call: the
//!   method never makes an unauthenticated bind, so no server that accepts
//!   one can be fooled into a login.
//! - A wrong password and an unknown user get the same 400 answer, counted
//!   by core's user lockout for the trimmed, lower-cased username.
//! - Every network call is bounded (`connection_timeout`,
//!   `request_timeout`); TLS always verifies the server (see [`client`]).
//! - Configuration settings that are not implemented are refused when set
//!   to anything but their default (see [`config`]); none is accepted and
//!   ignored.
//! - `login` runs on the active node (it creates a token): a standby
//!   forwards it.

mod client;
mod config;
mod entries;
pub mod filter;
mod login;

use std::sync::Arc;

use arca_sdk::{
    Backend, BackendConfig, Field, FieldType, Framework, LogicalError, Operation, OperationProps,
    Path, SpecialPaths,
};

pub use login::BIND_FAILED;

/// The engine state (everything lives in storage).
pub struct Ldap;

/// The registry's factory.
pub fn new_backend(_cfg: &BackendConfig) -> Result<Arc<dyn Backend>, LogicalError> {
    Ok(Arc::new(backend()))
}

pub fn backend() -> Framework<Ldap> {
    let mut paths: Vec<Path<Ldap>> = vec![config::path()];
    paths.extend(entries::paths());
    paths.push(
        Path::new("login/(?P<username>.+)")
            .field(Field::new(
                "username",
                FieldType::String,
                "Username of the LDAP user.",
            ))
            .field(
                Field::new("password", FieldType::String, "Password of the LDAP user.").sensitive(),
            )
            .op(Operation::Update, |b: &Ldap, c| Box::pin(b.login(c)))
            .props(
                Operation::Update,
                OperationProps {
                    summary: "Log in with an LDAP username and password.",
                    // It creates a token: only the active node runs it.
                    forward_on_standby: true,
                    available_without_leader: false,
                },
            )
            .help(
                "Log in with an LDAP username and password; the token has the policies of the \
                 user's LDAP groups and of its users/ entry.",
            ),
    );
    Framework::new("ldap", Ldap, paths)
        .with_special_paths(SpecialPaths {
            unauthenticated_writes: vec!["login/*".into()],
            forward_on_standby: vec!["login/*".into()],
            ..Default::default()
        })
        .with_auth_renew(|b: &Ldap, c| Box::pin(b.renew(c)))
        // User lockout counts failed logins per trimmed, lower-cased
        // username.
        .with_login_alias(|r| {
            r.path
                .strip_prefix("login/")
                .map(|u| u.trim().to_lowercase())
                .filter(|u| !u.is_empty())
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn paths_are_declared_completely() {
        let f = super::backend();
        assert!(f.lint().is_empty(), "{:?}", f.lint());
    }
}
