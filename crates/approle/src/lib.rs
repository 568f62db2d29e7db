//! The `approle` auth method: machines log in with a role id and a
//! secret id and get a token with the role's policies, following Vault's
//! AppRole API (paths, fields, answers, status codes).
//!
//! Paths: `role` (LIST), `role/:role_name` (create, update, read, delete;
//! `bind_secret_id`, `secret_id_bound_cidrs`, `secret_id_num_uses`,
//! `secret_id_ttl`, `local_secret_ids`, `role_id`, the common token fields),
//! one path per role property (`role/:role_name/policies`, `.../period`,
//! ...; see [`role::PROPERTIES`]), `role/:role_name/role-id`,
//! `role/:role_name/secret-id` (generate, LIST accessors),
//! `.../custom-secret-id`, `.../secret-id/lookup|destroy`,
//! `.../secret-id-accessor/lookup|destroy`, `login` (no token needed) and
//! `tidy/secret-id`.
//!
//! Storage (values are encrypted by the barrier; keys never hold a role id,
//! a secret id or an accessor in clear):
//! - `salt`: the mount's HMAC key, made once;
//! - `role/<name>`: the role, with its own HMAC key;
//! - `role_id/<HMAC(salt, role_id)>`: which role a role id belongs to;
//! - `secret_id/<HMAC(role key, name)>/<HMAC(role key, secret_id)>`: a
//!   secret id's properties (never the secret id itself);
//! - `accessor/<HMAC(salt, accessor)>`: the secret id an accessor names.
//!
//! Invariants:
//! - A secret id with a use limit is used exactly once per login: the
//!   login that consumes it holds the secret id's lock from read to write,
//!   and logins run on the active node only (they are forwarded), so two
//!   logins never both take its last use. Its CIDR restrictions are checked
//!   before a use is taken.
//! - An expired secret id fails login and lookup from the second its TTL
//!   ends (the periodic tidy only reclaims its storage); its TTL never
//!   exceeds the mount's max lease TTL.
//! - A secret id and its accessor are written and deleted in one batch.
//! - Failed logins say only "invalid role or secret ID" (400), whether the
//!   role id or the secret id was wrong; a wrong secret id counts towards
//!   the role id's user lockout (core).
//! - Renewing a login token needs the role to still exist; the role's
//!   current token TTLs apply.

mod login;
mod role;
mod secret_id;
mod store;

use std::sync::Arc;

use arca_sdk::{
    Backend, BackendConfig, Field, FieldType, Framework, LogicalError, Operation, OperationProps,
    Path, SpecialPaths, SystemView,
};

pub use role::PROPERTIES;

/// The engine state: the mount's system view (TTL limits, the clock) and
/// the locks that serialise changes to one role or one secret id.
pub struct AppRole {
    system: Arc<dyn SystemView>,
    store: store::Store,
    /// When the periodic tidy last ran (unix seconds).
    last_tidy: std::sync::atomic::AtomicI64,
}

/// A role name: what Vault's AppRole accepts in its paths.
macro_rules! role_name {
    () => {
        r"(?P<role_name>\w(?:[\w.-]*\w)?)"
    };
}
pub(crate) use role_name;

fn role_name_field() -> Field {
    Field::new("role_name", FieldType::String, "Name of the role.")
}

/// The registry's factory.
pub fn new_backend(cfg: &BackendConfig) -> Result<Arc<dyn Backend>, LogicalError> {
    Ok(Arc::new(factory(cfg.system.clone())))
}

/// The backend over a given system view (tests pass a test clock).
pub fn factory(system: Arc<dyn SystemView>) -> Framework<AppRole> {
    let state = AppRole {
        system,
        store: store::Store::new(),
        last_tidy: std::sync::atomic::AtomicI64::new(0),
    };
    let mut paths: Vec<Path<AppRole>> = vec![
        Path::new("role/?")
            .op(Operation::List, |b: &AppRole, c| Box::pin(b.list_roles(c)))
            .help("List the roles."),
        role::role_path(),
    ];
    paths.extend(role::property_paths());
    paths.extend(secret_id::paths());
    paths.push(
        Path::new("login")
            .field(Field::new(
                "role_id",
                FieldType::String,
                "The role's role id.",
            ))
            .field(
                Field::new("secret_id", FieldType::String, "A secret id of the role.").sensitive(),
            )
            .op(Operation::Update, |b: &AppRole, c| Box::pin(b.login(c)))
            .props(
                Operation::Update,
                OperationProps {
                    summary: "Log in with a role id and a secret id.",
                    // It creates a token and may take a secret id's use:
                    // only the active node runs it.
                    forward_on_standby: true,
                    available_without_leader: false,
                },
            )
            .help("Log in with a role id and a secret id; the token has the role's policies."),
    );
    paths.push(
        Path::new("tidy/secret-id")
            .op(Operation::Update, |b: &AppRole, c| Box::pin(b.tidy(c)))
            .help("Remove expired secret ids and entries left without their accessor."),
    );
    Framework::new("approle", state, paths)
        .with_special_paths(SpecialPaths {
            unauthenticated_writes: vec!["login".into()],
            forward_on_standby: vec!["login".into()],
            ..Default::default()
        })
        .with_auth_renew(|b: &AppRole, c| Box::pin(b.renew(c)))
        .with_periodic(|b: &AppRole, s| Box::pin(b.periodic_tidy(s)))
        // User lockout counts failed logins per role id.
        .with_login_alias(|r| {
            (r.path == "login")
                .then(|| r.data.get("role_id").and_then(|v| v.as_str()))
                .flatten()
                .map(|id| id.trim().to_string())
                .filter(|id| !id.is_empty())
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
