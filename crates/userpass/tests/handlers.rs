//! userpass handlers on in-memory storage: new passwords are stored as
//! bcrypt cost 10 (Vault's), a password bcrypt cannot hash whole (over 72
//! bytes) is refused with a 400 when set and fails at login like a wrong
//! one, an unknown user gets the same answer, and a user stored with an
//! argon2id hash by an earlier version still logs in.

use serde_json::{json, Value};

use arca_sdk::testing::InmemStorage;
use arca_sdk::{Backend, Framework, LogicalError, Operation, Request, Response, Storage};

use arca_userpass::Userpass;

struct Mount {
    backend: Framework<Userpass>,
    storage: InmemStorage,
}

fn mount() -> Mount {
    std::env::set_var("ARCA_STRICT_FIELDS", "1");
    Mount {
        backend: arca_userpass::backend(),
        storage: InmemStorage::new(),
    }
}

impl Mount {
    async fn call(&self, op: Operation, path: &str, data: Value) -> Result<Response, LogicalError> {
        let mut req = Request::new(op, path).with_data(data);
        req.mount_point = "auth/userpass/".into();
        Ok(self
            .backend
            .handle(&req, &self.storage)
            .await?
            .unwrap_or_default())
    }

    async fn write(&self, path: &str, data: Value) -> Result<Response, LogicalError> {
        self.call(Operation::Update, path, data).await
    }

    async fn login(&self, user: &str, password: &str) -> Result<Response, LogicalError> {
        self.write(&format!("login/{user}"), json!({ "password": password }))
            .await
    }

    async fn stored(&self, user: &str) -> Value {
        let raw = self.storage.get(&format!("user/{user}")).await.unwrap();
        serde_json::from_slice(&raw.expect("user stored")).unwrap()
    }

    async fn store(&self, user: &str, v: &Value) {
        self.storage
            .put(&format!("user/{user}"), serde_json::to_vec(v).unwrap())
            .await
            .unwrap();
    }
}

fn assert_invalid_login(r: Result<Response, LogicalError>) {
    match r {
        Err(LogicalError::InvalidCredentials(m)) => {
            assert_eq!(m, "invalid username or password")
        }
        other => panic!("expected a failed login, got {other:?}"),
    }
}

fn assert_too_long(r: Result<Response, LogicalError>) {
    match r {
        // InvalidRequest is a 400 at the HTTP layer.
        Err(LogicalError::InvalidRequest(m)) => {
            assert!(m.contains("longer than 72 bytes"), "{m}")
        }
        other => panic!("expected a 400, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bcrypt_users_log_in_with_the_right_password_only() {
    let m = mount();
    m.write(
        "users/alice",
        json!({"password": "s3cret", "token_policies": "reader"}),
    )
    .await
    .unwrap();
    let hash = m.stored("alice").await["password_hash"].clone();
    assert!(
        hash.as_str().unwrap().starts_with("$2b$10$"),
        "stored: {hash}"
    );

    let r = m.login("Alice", "s3cret").await.unwrap();
    let auth = r.auth.expect("a login answers with auth");
    assert!(
        auth.token_policies.contains(&"reader".to_string()),
        "{auth:?}"
    );

    assert_invalid_login(m.login("alice", "s3creT").await);
    assert_invalid_login(m.login("nobody", "s3cret").await);
    // Never shown back.
    let read = m
        .call(Operation::Read, "users/alice", json!({}))
        .await
        .unwrap();
    let shown = serde_json::to_string(&read.data).unwrap();
    assert!(
        !shown.contains("password") && !shown.contains("$2b$"),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_over_72_bytes_are_refused_and_never_log_in() {
    let m = mount();
    let p72 = "x".repeat(72);
    let p73 = "x".repeat(73);
    assert_too_long(m.write("users/bob", json!({ "password": p73 })).await);
    assert!(m.storage.keys().is_empty(), "nothing stored");

    // 72 bytes are hashed whole, as Go's bcrypt does.
    m.write("users/bob", json!({ "password": p72 }))
        .await
        .unwrap();
    let before = m.stored("bob").await;
    assert_too_long(m.write("users/bob", json!({ "password": p73 })).await);
    assert_too_long(
        m.write("users/bob/password", json!({ "password": p73 }))
            .await,
    );
    assert_eq!(m.stored("bob").await, before, "the hash is unchanged");

    // bcrypt would read only the first 72 bytes, which match: still refused.
    assert_invalid_login(m.login("bob", &p73).await);
    m.login("bob", &p72).await.unwrap();
}

/// A user whose hash an argon2id version of userpass stored still logs
/// in; setting its password stores bcrypt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argon2id_users_of_earlier_versions_still_log_in() {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let m = mount();
    m.write("users/carol", json!({"password": "placeholder"}))
        .await
        .unwrap();
    // What the argon2id version stored: the argon2 crate's defaults.
    let old_password = "o".repeat(80);
    let salt = SaltString::encode_b64(b"a 16-byte salt..").unwrap();
    let argon2_hash = argon2::Argon2::default()
        .hash_password(old_password.as_bytes(), &salt)
        .unwrap()
        .to_string();
    assert!(argon2_hash.starts_with("$argon2id$"));
    let mut user = m.stored("carol").await;
    user["password_hash"] = json!(argon2_hash);
    m.store("carol", &user).await;

    m.login("carol", &old_password).await.unwrap();
    assert_invalid_login(m.login("carol", "wrong").await);
    assert_eq!(
        m.stored("carol").await["password_hash"],
        json!(argon2_hash),
        "a login does not rewrite the hash"
    );

    m.write("users/carol/password", json!({"password": "new one"}))
        .await
        .unwrap();
    let hash = m.stored("carol").await["password_hash"].clone();
    assert!(hash.as_str().unwrap().starts_with("$2b$10$"), "{hash}");
    m.login("carol", "new one").await.unwrap();
    assert_invalid_login(m.login("carol", &old_password).await);
}
