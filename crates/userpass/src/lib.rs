//! The `userpass` auth method: users with a password log in at
//! `login/:username` and get a token with the user's policies, following
//! Vault's userpass API (paths, fields, answers).
//!
//! Paths: `users` (LIST), `users/:username` (create, update, read, delete;
//! `password` and the common token fields of `arca_sdk::token_fields`),
//! `users/:username/password`, `users/:username/policies`, and
//! `login/:username` (no token needed).
//!
//! Invariants:
//! - A password is stored only as an argon2id hash (PHC string, the argon2
//!   crate's defaults: 19 MiB, 2 passes, a random salt), never returned,
//!   and the plaintext is zeroized after use. Hashing and checking run on
//!   the blocking pool, at most [`MAX_HASHING`] at a time (each takes
//!   19 MiB): a flood of logins waits instead of exhausting memory.
//! - A failed login says only "invalid username or password" (400, counted
//!   by core's user lockout for the username, known or not), and an
//!   unknown user costs the same check as a wrong password, so that names
//!   cannot be found by timing or by lockout.
//! - Usernames are case-insensitive (stored lower-case), as in Vault.
//! - Renewing a login token asks this method: a deleted user, or a user
//!   whose policies changed, can no longer renew; the user's `token_max_ttl`
//!   caps the renewal.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use zeroize::Zeroizing;

use arca_sdk::storage::{get_json, put_json};
use arca_sdk::token_fields::{self, TokenParams};
use arca_sdk::{
    Auth, Backend, BackendConfig, Ctx, Field, FieldType, Framework, HandlerResult, LogicalError,
    Operation, Path, Response, SpecialPaths,
};

/// Password hashes computed or checked at the same time, at most.
pub const MAX_HASHING: usize = 4;
static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_HASHING);

/// A username: what Vault's userpass accepts in its paths.
macro_rules! username {
    () => {
        r"(?P<username>\w(?:[\w.@-]*\w)?)"
    };
}

/// A hash no password matches, checked when the user does not exist
/// (computed once, on the blocking pool, at the first such login).
static DUMMY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn hash_blocking(password: &[u8]) -> Result<String, String> {
    use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

fn verify_blocking(password: &[u8], hash: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(hash).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password, &h)
            .is_ok()
    })
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct User {
    /// argon2id hash of the password (PHC string).
    password_hash: String,
    #[serde(flatten)]
    token: TokenParams,
}

pub struct Userpass;

fn key(username: &str) -> String {
    format!("user/{}", username.to_lowercase())
}

async fn hash(password: String) -> Result<String, LogicalError> {
    let password = Zeroizing::new(password);
    let _permit = HASHING.acquire().await.map_err(LogicalError::internal)?;
    tokio::task::spawn_blocking(move || hash_blocking(password.as_bytes()))
        .await
        .map_err(LogicalError::internal)?
        .map_err(LogicalError::internal)
}

/// Checks a password against a user's hash, or against a hash nothing
/// matches when there is no such user (the same cost either way).
async fn verify(password: String, hash: Option<String>) -> bool {
    let password = Zeroizing::new(password);
    let Ok(_permit) = HASHING.acquire().await else {
        return false;
    };
    tokio::task::spawn_blocking(move || {
        let hash = hash.unwrap_or_else(|| {
            DUMMY_HASH
                .get_or_init(|| hash_blocking(b"arca userpass: no such user").unwrap_or_default())
                .clone()
        });
        verify_blocking(password.as_bytes(), &hash)
    })
    .await
    .unwrap_or(false)
}

impl Userpass {
    async fn user(&self, c: &Ctx<'_>) -> Result<Option<User>, LogicalError> {
        let name = c.data.str_or("username", "")?;
        Ok(get_json(c.storage, &key(&name)).await?)
    }

    async fn exists(&self, c: Ctx<'_>) -> Result<bool, LogicalError> {
        Ok(self.user(&c).await?.is_some())
    }

    async fn write_user(&self, c: Ctx<'_>) -> HandlerResult {
        let name = c.data.str_or("username", "")?;
        let existing = self.user(&c).await?;
        let creating = existing.is_none();
        let mut user = existing.unwrap_or_default();
        user.token.update(&c.data)?;
        match c.data.get_str("password")? {
            Some(p) if !p.is_empty() => user.password_hash = hash(p).await?,
            _ if creating => return Err(LogicalError::invalid("missing password")),
            _ => {}
        }
        put_json(c.storage, &key(&name), &user).await?;
        Ok(None)
    }

    async fn read_user(&self, c: Ctx<'_>) -> HandlerResult {
        match self.user(&c).await? {
            Some(u) => Ok(Some(Response::data(u.token.to_json()))),
            None => Ok(None),
        }
    }

    async fn delete_user(&self, c: Ctx<'_>) -> HandlerResult {
        let name = c.data.str_or("username", "")?;
        c.storage.delete(&key(&name)).await?;
        Ok(None)
    }

    async fn list_users(&self, c: Ctx<'_>) -> HandlerResult {
        Ok(Some(Response::list(c.storage.list("user/").await?)))
    }

    async fn set_password(&self, c: Ctx<'_>) -> HandlerResult {
        let name = c.data.str_or("username", "")?;
        let mut user = self
            .user(&c)
            .await?
            .ok_or_else(|| LogicalError::invalid(format!("username {name:?} does not exist")))?;
        let p = c.data.str_or("password", "")?;
        if p.is_empty() {
            return Err(LogicalError::invalid("missing password"));
        }
        user.password_hash = hash(p).await?;
        put_json(c.storage, &key(&name), &user).await?;
        Ok(None)
    }

    async fn set_policies(&self, c: Ctx<'_>) -> HandlerResult {
        let name = c.data.str_or("username", "")?;
        let mut user = self
            .user(&c)
            .await?
            .ok_or_else(|| LogicalError::invalid(format!("username {name:?} does not exist")))?;
        user.token.update(&c.data)?;
        put_json(c.storage, &key(&name), &user).await?;
        Ok(None)
    }

    async fn login(&self, c: Ctx<'_>) -> HandlerResult {
        let name = c.data.str_or("username", "")?.to_lowercase();
        let password = c.data.str_or("password", "")?;
        let user = self.user(&c).await?;
        let ok = verify(password, user.as_ref().map(|u| u.password_hash.clone())).await;
        let Some(user) = user.filter(|_| ok) else {
            return Err(LogicalError::InvalidCredentials(
                "invalid username or password".into(),
            ));
        };
        let mut auth = Auth {
            display_name: name.clone(),
            metadata: [("username".to_string(), name.clone())]
                .into_iter()
                .collect(),
            ..Default::default()
        };
        user.token.fill(&mut auth);
        auth.internal_data
            .insert("username".into(), Value::from(name));
        Ok(Some(Response::login(auth)))
    }

    /// A login token is renewed: the user must still exist with the same
    /// policies; its max TTL caps the renewal.
    async fn renew(&self, c: Ctx<'_>) -> HandlerResult {
        let name = token_fields::renewing(c.req, "username")?;
        let user: User = get_json(c.storage, &key(&name))
            .await?
            .ok_or_else(|| LogicalError::invalid(format!("user {name:?} no longer exists")))?;
        let without_default = |v: &[String]| {
            let mut v: Vec<String> = v.iter().filter(|p| *p != "default").cloned().collect();
            v.sort();
            v
        };
        let had = c
            .req
            .auth
            .as_ref()
            .map(|a| a.token_policies.clone())
            .unwrap_or_default();
        if without_default(&user.token.token_policies) != without_default(&had) {
            return Err(LogicalError::invalid("policies have changed, not renewing"));
        }
        Ok(Some(token_fields::renewed(&user.token)))
    }
}

fn username() -> Field {
    Field::new("username", FieldType::String, "Username of the user.")
}

fn password() -> Field {
    Field::new("password", FieldType::String, "Password of the user.").sensitive()
}

fn with_token_fields(mut p: Path<Userpass>) -> Path<Userpass> {
    for f in token_fields::fields() {
        p = p.field(f);
    }
    p
}

/// The registry's factory.
pub fn new_backend(_cfg: &BackendConfig) -> Result<Arc<dyn Backend>, LogicalError> {
    Ok(Arc::new(backend()))
}

pub fn backend() -> Framework<Userpass> {
    let paths =
        vec![
        Path::new("users/?")
            .op(Operation::List, |b: &Userpass, c| Box::pin(b.list_users(c)))
            .help("List the users."),
        with_token_fields(
            Path::new(concat!("users/", username!()))
                .field(username())
                .field(password()),
        )
        .existence(|b: &Userpass, c| Box::pin(b.exists(c)))
        .op(Operation::Create, |b: &Userpass, c| Box::pin(b.write_user(c)))
        .op(Operation::Update, |b: &Userpass, c| Box::pin(b.write_user(c)))
        .op(Operation::Read, |b: &Userpass, c| Box::pin(b.read_user(c)))
        .op(Operation::Delete, |b: &Userpass, c| Box::pin(b.delete_user(c)))
        .help("Create, read, update or delete a user: its password and the tokens its logins get."),
        Path::new(concat!("users/", username!(), "/password"))
            .field(username())
            .field(password())
            .op(Operation::Update, |b: &Userpass, c| Box::pin(b.set_password(c)))
            .help("Change a user's password."),
        with_token_fields(
            Path::new(concat!("users/", username!(), "/policies"))
                .field(username()),
        )
        .op(Operation::Update, |b: &Userpass, c| Box::pin(b.set_policies(c)))
        .help("Change a user's token policies."),
        Path::new(concat!("login/", username!()))
            .field(username())
            .field(password())
            .op(Operation::Update, |b: &Userpass, c| Box::pin(b.login(c)))
            .help("Log in with a username and password."),
    ];
    Framework::new("userpass", Userpass, paths)
        .with_special_paths(SpecialPaths {
            unauthenticated_writes: vec!["login/*".into()],
            ..Default::default()
        })
        .with_auth_renew(|b: &Userpass, c| Box::pin(b.renew(c)))
        // User lockout counts failed logins per (lower-cased) username.
        .with_login_alias(|r| {
            r.path
                .strip_prefix("login/")
                .filter(|u| !u.is_empty())
                .map(str::to_lowercase)
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
