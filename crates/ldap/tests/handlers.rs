//! LDAP handlers on in-memory storage, without a directory: the
//! configuration is checked and stored all or nothing (`bindpass` never
//! read back, unimplemented settings refused), group and user entries are
//! case-insensitive by default, and logins are refused before any network
//! call for a username with LDAP filter characters or an empty password,
//! while an unreachable server is a plain 400 that user lockout does not
//! count.

use serde_json::{json, Value};

use arca_sdk::testing::InmemStorage;
use arca_sdk::{Backend, Connection, LogicalError, Operation, Request, Response};

struct Method {
    backend: arca_sdk::Framework<arca_ldap::Ldap>,
    storage: InmemStorage,
}

fn method() -> Method {
    std::env::set_var("ARCA_STRICT_FIELDS", "1");
    Method {
        backend: arca_ldap::backend(),
        storage: InmemStorage::default(),
    }
}

/// A loopback URL nothing listens on.
fn closed_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("ldap://127.0.0.1:{}", l.local_addr().unwrap().port())
}

impl Method {
    fn request(op: Operation, path: &str, data: Value) -> Request {
        let mut req = Request::new(op, path).with_data(data);
        req.mount_point = "auth/ldap/".into();
        req.connection = Some(Connection {
            remote_addr: "127.0.0.1".parse().unwrap(),
            remote_port: 40000,
            peer_certificates: Vec::new(),
        });
        req
    }

    async fn call(&self, op: Operation, path: &str, data: Value) -> Result<Response, LogicalError> {
        let req = Self::request(op, path, data);
        Ok(self
            .backend
            .handle(&req, &self.storage)
            .await?
            .unwrap_or_default())
    }

    async fn write(&self, path: &str, data: Value) -> Response {
        self.call(Operation::Update, path, data)
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    async fn read(&self, path: &str) -> Option<Value> {
        let r = self.call(Operation::Read, path, json!({})).await.unwrap();
        r.data.map(Value::Object)
    }

    async fn login(&self, username: &str, password: &str) -> Result<Response, LogicalError> {
        self.call(
            Operation::Update,
            &format!("login/{username}"),
            json!({ "password": password }),
        )
        .await
    }
}

#[tokio::test]
async fn config_is_stored_whole_and_never_shows_bindpass() {
    let m = method();
    assert!(m.read("config").await.is_none(), "not configured yet");
    let r = m
        .write(
            "config",
            json!({
                "url": "ldap://127.0.0.1:3890",
                "userdn": "ou=people,dc=example,dc=com",
                "userattr": "uid",
                "groupdn": "ou=groups,dc=example,dc=com",
                "binddn": "cn=admin,dc=example,dc=com",
                "bindpass": "very-secret-bind",
                "token_policies": "base",
                "token_ttl": "1h",
            }),
        )
        .await;
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    let c = m.read("config").await.unwrap();
    assert_eq!(c["url"], "ldap://127.0.0.1:3890");
    assert_eq!(c["userattr"], "uid");
    assert_eq!(c["groupattr"], "cn");
    assert_eq!(c["request_timeout"], 90);
    assert_eq!(c["deny_null_bind"], true);
    assert_eq!(c["token_policies"], json!(["base"]));
    assert_eq!(c["token_ttl"], 3600);
    assert!(c.get("bindpass").is_none(), "{c}");
    assert!(!c.to_string().contains("very-secret-bind"));

    // A refused write changes nothing, whatever else it carried.
    for (bad, why) in [
        (
            json!({"url": "http://x", "userdn": "o=changed"}),
            "invalid LDAP scheme",
        ),
        (
            json!({"use_token_groups": true, "userdn": "o=changed"}),
            "not available",
        ),
        (json!({"deny_null_bind": false}), "not available"),
        (
            json!({"userfilter": "(uid={{.Password}})"}),
            "invalid userfilter",
        ),
        (json!({"tls_min_version": "tls11"}), "not available"),
        (json!({"tls_min_version": "tls99"}), "must be one of"),
        (json!({"request_timeout": "0s"}), "request_timeout"),
    ] {
        let e = m
            .call(Operation::Update, "config", bad.clone())
            .await
            .unwrap_err();
        assert!(
            matches!(&e, LogicalError::InvalidRequest(t) if t.contains(why)),
            "{bad}: {e:?}"
        );
    }
    let again = m.read("config").await.unwrap();
    assert_eq!(again, c);
    // Fields not sent keep their value.
    m.write(
        "config",
        json!({"starttls": false, "groupattr": "memberOf"}),
    )
    .await;
    let c = m.read("config").await.unwrap();
    assert_eq!(c["userdn"], "ou=people,dc=example,dc=com");
    assert_eq!(c["groupattr"], "memberOf");
}

#[tokio::test]
async fn groups_and_users_are_case_insensitive_by_default() {
    let m = method();
    m.write("groups/Devs", json!({"policies": "Read, write,read"}))
        .await;
    assert_eq!(
        m.read("groups/DEVS").await.unwrap(),
        json!({"policies": ["read", "write"]})
    );
    m.write("groups/ops/eu", json!({"policies": ["ops"]})).await;
    m.write(
        "users/Alice",
        json!({"policies": "mine", "groups": "Ops/EU, devs"}),
    )
    .await;
    assert_eq!(
        m.read("users/alice").await.unwrap(),
        json!({"policies": ["mine"], "groups": "ops/eu,devs"})
    );
    let l = m.call(Operation::List, "groups", json!({})).await.unwrap();
    assert_eq!(l.data.unwrap()["keys"], json!(["devs", "ops/eu"]));
    let l = m.call(Operation::List, "users/", json!({})).await.unwrap();
    assert_eq!(l.data.unwrap()["keys"], json!(["alice"]));
    m.call(Operation::Delete, "users/ALICE", json!({}))
        .await
        .unwrap();
    assert!(m.read("users/alice").await.is_none());

    // With case-sensitive names, entries keep their case.
    m.write(
        "config",
        json!({"userdn": "dc=x", "case_sensitive_names": true}),
    )
    .await;
    m.write("groups/Admins", json!({"policies": "admin"})).await;
    assert!(m.read("groups/admins").await.is_none());
    assert!(m.read("groups/Admins").await.is_some());
}

#[tokio::test]
async fn logins_refused_before_any_network_call() {
    let m = method();
    let e = m.login("alice", "pw").await.unwrap_err();
    assert!(
        matches!(&e, LogicalError::InvalidRequest(t) if t.contains("not configured")),
        "{e:?}"
    );
    // The server URL is a closed port: an error about the username or
    // the password (not about connecting) shows nothing was sent.
    m.write(
        "config",
        json!({"url": closed_url(), "userdn": "ou=people,dc=example,dc=com"}),
    )
    .await;
    for name in ["*", "alice)(uid=*", "a\\5c", "(cn=admin)", "x*"] {
        let e = m.login(name, "pw").await.unwrap_err();
        assert!(
            matches!(&e, LogicalError::InvalidRequest(t) if t.contains("LDAP filter characters")),
            "{name}: {e:?}"
        );
    }
    let e = m.login("alice", "").await.unwrap_err();
    assert!(
        matches!(&e, LogicalError::InvalidRequest(t) if t.contains("zero length")),
        "{e:?}"
    );
}

#[tokio::test]
async fn an_unreachable_server_is_a_clear_error_not_a_wrong_password() {
    let m = method();
    let url = closed_url();
    m.write(
        "config",
        json!({"url": url, "userdn": "ou=people,dc=example,dc=com"}),
    )
    .await;
    let e = m.login("alice", "pw").await.unwrap_err();
    match &e {
        LogicalError::InvalidRequest(t) => {
            assert!(t.contains("failed to connect to LDAP server"), "{t}");
            assert!(t.contains(&url), "{t}");
        }
        other => panic!("expected a 400 that is not counted by lockout: {other:?}"),
    }
}

#[test]
fn lockout_alias_is_the_trimmed_lowercased_username() {
    let b = arca_ldap::backend();
    let req = Method::request(Operation::Update, "login/ Alice ", json!({}));
    assert_eq!(b.login_alias(&req).as_deref(), Some("alice"));
    let req = Method::request(Operation::Update, "config", json!({}));
    assert_eq!(b.login_alias(&req), None);
}
