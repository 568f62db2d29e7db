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
//! - A password is stored only as a bcrypt hash of cost [`BCRYPT_COST`]
//!   (10, Vault's: Go's `bcrypt.DefaultCost`; `$2b$10$…`, a random salt),
//!   never returned, and the plaintext is zeroized after use. Users stored
//!   by earlier versions keep their argon2id hashes (PHC strings,
//!   `$argon2id$…`) until their password is next set: those still verify
//!   (the hash's prefix picks the algorithm), and logins never rewrite a
//!   hash.
//! - bcrypt reads only a password's first 72 bytes: a longer password is
//!   refused when a user is created or its password set (400, as Go's
//!   bcrypt refuses it in Vault), and a login with one fails as a wrong
//!   password does, after the same full check. (Against an argon2id hash
//!   any length is checked whole, as it was hashed.)
//! - Hashing and checking run on the blocking pool, at most
//!   [`max_hashing`] at a time (one per CPU): each is ~70 ms of one core,
//!   so a flood of logins queues (first come, first served) instead of
//!   taking every core and blocking-pool thread.
//! - A failed login says only "invalid username or password" (400, counted
//!   by core's user lockout for the username, known or not), and an
//!   unknown user costs the same check as a wrong password (against
//!   [`DUMMY_HASH`], of the same cost), so that names cannot be found by
//!   timing or by lockout. Exception: a user whose hash is still argon2id
//!   costs argon2id's time, not bcrypt's, until its password is set again.
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

/// bcrypt's cost (log2 of its rounds) for new hashes: Vault's.
pub const BCRYPT_COST: u32 = 10;

/// The longest password bcrypt hashes whole; it ignores the bytes after.
pub const MAX_PASSWORD_BYTES: usize = 72;

/// Password hashes computed or checked at the same time, at most: the
/// number of CPUs this process may use. bcrypt needs only 4 KiB of state,
/// so memory no longer bounds it (argon2id's 19 MiB did, at 4); it is
/// CPU-bound, so more checks in flight than cores would only make each
/// one slower, while tying up more of the blocking pool's threads that
/// storage also uses. Waiting checks are served in arrival order.
pub fn max_hashing() -> usize {
    std::thread::available_parallelism().map_or(4, |n| n.get())
}
static HASHING: std::sync::LazyLock<tokio::sync::Semaphore> =
    std::sync::LazyLock::new(|| tokio::sync::Semaphore::new(max_hashing()));

/// A username: what Vault's userpass accepts in its paths.
macro_rules! username {
    () => {
        r"(?P<username>\w(?:[\w.@-]*\w)?)"
    };
}

/// The hash checked when the user does not exist, so that an unknown user
/// costs what a wrong password does: bcrypt, cost 10, of a random password
/// nobody kept (and a match would not matter: there is no user to log in).
pub const DUMMY_HASH: &str = "$2b$10$ZspfPDPsyXqtWC3vxLqDeekKTp5wrdZBc/MdBfdJk4hLsaruxDXX.";

/// The prefix of the argon2id hashes (PHC strings) of earlier versions.
const ARGON2_PREFIX: &str = "$argon2";

/// A new hash of `password`. The caller has checked its length.
fn hash_blocking(password: &[u8]) -> Result<String, String> {
    bcrypt::hash(password, BCRYPT_COST).map_err(|e| e.to_string())
}

/// Does `password` match `hash` (bcrypt, or argon2id from an earlier
/// version)? A bcrypt check always runs in full, even for a password it
/// would truncate, which then fails.
fn verify_blocking(password: &[u8], hash: &str) -> bool {
    if hash.starts_with(ARGON2_PREFIX) {
        use argon2::password_hash::{PasswordHash, PasswordVerifier};
        return PasswordHash::new(hash).is_ok_and(|h| {
            argon2::Argon2::default()
                .verify_password(password, &h)
                .is_ok()
        });
    }
    let matches = bcrypt::verify(password, hash).unwrap_or(false);
    matches && password.len() <= MAX_PASSWORD_BYTES
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct User {
    /// bcrypt hash of the password (`$2b$10$…`), or the argon2id PHC
    /// string stored by an earlier version.
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
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(LogicalError::invalid(format!(
            "password is longer than {MAX_PASSWORD_BYTES} bytes, which bcrypt cannot hash"
        )));
    }
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
        verify_blocking(password.as_bytes(), hash.as_deref().unwrap_or(DUMMY_HASH))
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
        auth.alias = Some(arca_sdk::Alias {
            name: name.clone(),
            metadata: Default::default(),
        });
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
    use super::*;

    #[test]
    fn paths_are_declared_completely() {
        let f = super::backend();
        assert!(f.lint().is_empty(), "{:?}", f.lint());
    }

    #[test]
    fn new_hashes_are_bcrypt_cost_10() {
        let start = std::time::Instant::now();
        let h = hash_blocking(b"correct horse").unwrap();
        eprintln!("one bcrypt cost-{BCRYPT_COST} hash: {:?}", start.elapsed());
        assert!(h.starts_with("$2b$10$"), "{h}");
        assert_eq!(h.len(), 60);
        assert!(verify_blocking(b"correct horse", &h));
        assert!(!verify_blocking(b"correct horsf", &h));
    }

    /// The unknown-user check costs what a real one does: the dummy hash
    /// parses, with the same cost as new hashes.
    #[test]
    fn dummy_hash_is_bcrypt_cost_10() {
        assert!(DUMMY_HASH.starts_with("$2b$10$"), "{DUMMY_HASH}");
        let start = std::time::Instant::now();
        assert!(matches!(bcrypt::verify("x", DUMMY_HASH), Ok(false)));
        eprintln!("one bcrypt cost-{BCRYPT_COST} check: {:?}", start.elapsed());
    }

    /// bcrypt ignores the bytes after the 72nd: a login with a longer
    /// password whose first 72 bytes are right still fails.
    #[test]
    fn passwords_past_72_bytes_never_match_a_bcrypt_hash() {
        let right = [b'a'; MAX_PASSWORD_BYTES];
        let h = hash_blocking(&right).unwrap();
        assert!(verify_blocking(&right, &h), "72 bytes are hashed whole");
        let mut longer = right.to_vec();
        longer.push(b'b');
        assert!(!verify_blocking(&longer, &h));
    }

    /// A hash as the argon2id version stored it (the argon2 crate's
    /// defaults, a PHC string) still verifies, at any password length.
    #[test]
    fn argon2id_hashes_of_earlier_versions_still_verify() {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let password = "p".repeat(100);
        let salt = SaltString::encode_b64(b"a 16-byte salt..").unwrap();
        let h = argon2::Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .unwrap()
            .to_string();
        assert!(h.starts_with("$argon2id$"), "{h}");
        let start = std::time::Instant::now();
        assert!(verify_blocking(password.as_bytes(), &h));
        eprintln!("one argon2id (default) check: {:?}", start.elapsed());
        assert!(!verify_blocking(b"wrong", &h));
        assert!(!verify_blocking(&password.as_bytes()[..72], &h));
    }

    #[test]
    fn malformed_hashes_match_nothing() {
        for h in ["", "$argon2id$garbage", "$2b$10$short", "plain"] {
            assert!(!verify_blocking(b"", h), "{h}");
            assert!(!verify_blocking(h.as_bytes(), h), "{h}");
        }
    }
}
