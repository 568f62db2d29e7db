//! AppRole handlers on in-memory storage with the sdk's test clock: a
//! secret id's uses are taken exactly once under concurrent logins (over a
//! storage that yields at every call, so interleavings happen), a secret
//! id stops working at the second its TTL ends and is reclaimed by tidy,
//! its TTL never exceeds the mount's max, and no secret id, role id or
//! accessor appears in a storage key, nor the secret id in any value.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Value};

use arca_sdk::testing::InmemStorage;
use arca_sdk::{
    Backend, Connection, LogicalError, Operation, Request, Response, Storage, StorageError,
    StorageOp, TestSystemView,
};

const NOW: i64 = 1_900_000_000;

/// In-memory storage that yields to the scheduler before every call.
#[derive(Default)]
struct Yielding(InmemStorage);

#[async_trait]
impl Storage for Yielding {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        tokio::task::yield_now().await;
        self.0.get(key).await
    }
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), StorageError> {
        tokio::task::yield_now().await;
        self.0.put(key, value).await
    }
    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        tokio::task::yield_now().await;
        self.0.delete(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        tokio::task::yield_now().await;
        self.0.list(prefix).await
    }
    async fn batch(&self, ops: Vec<StorageOp>) -> Result<(), StorageError> {
        tokio::task::yield_now().await;
        self.0.batch(ops).await
    }
}

struct AppRole {
    backend: arca_sdk::Framework<arca_approle::AppRole>,
    storage: Yielding,
    clock: Arc<TestSystemView>,
}

fn approle(max_ttl: u64) -> Arc<AppRole> {
    std::env::set_var("ARCA_STRICT_FIELDS", "1");
    let clock = Arc::new(TestSystemView::new(3600, max_ttl, NOW));
    Arc::new(AppRole {
        backend: arca_approle::factory(clock.clone()),
        storage: Yielding::default(),
        clock,
    })
}

impl AppRole {
    async fn try_call(
        &self,
        op: Operation,
        path: &str,
        data: Value,
    ) -> Result<Response, LogicalError> {
        let mut req = Request::new(op, path).with_data(data);
        req.mount_point = "auth/approle/".into();
        req.connection = Some(Connection {
            remote_addr: "127.0.0.1".parse().unwrap(),
            remote_port: 40000,
            peer_certificates: Vec::new(),
        });
        Ok(self
            .backend
            .handle(&req, &self.storage)
            .await?
            .unwrap_or_default())
    }

    async fn write(&self, path: &str, data: Value) -> Response {
        self.try_call(Operation::Update, path, data)
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    async fn login(&self, role_id: &str, secret_id: &str) -> Result<Response, LogicalError> {
        self.try_call(
            Operation::Update,
            "login",
            json!({"role_id": role_id, "secret_id": secret_id}),
        )
        .await
    }

    /// Is any secret id or accessor left in storage?
    fn holds_secret_ids(&self) -> bool {
        self.storage
            .0
            .keys()
            .iter()
            .any(|k| k.starts_with("secret_id/") || k.starts_with("accessor/"))
    }

    async fn role_id(&self, role: &str) -> String {
        let r = self
            .try_call(Operation::Read, &format!("role/{role}/role-id"), json!({}))
            .await
            .unwrap();
        r.data.unwrap()["role_id"].as_str().unwrap().to_string()
    }
}

fn field(r: &Response, name: &str) -> Value {
    r.data.as_ref().expect("data")[name].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_logins_take_each_use_exactly_once() {
    let a = approle(86400);
    a.write("role/r", json!({"secret_id_num_uses": 5})).await;
    let role_id = a.role_id("r").await;
    let s = a.write("role/r/secret-id", json!({})).await;
    let secret_id = field(&s, "secret_id").as_str().unwrap().to_string();

    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let (a, role_id, secret_id) = (a.clone(), role_id.clone(), secret_id.clone());
            tokio::spawn(async move { a.login(&role_id, &secret_id).await })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) => {
                assert!(r.auth.is_some());
                ok += 1
            }
            Err(e) => assert_eq!(
                e,
                LogicalError::InvalidCredentials("invalid role or secret ID".into())
            ),
        }
    }
    assert_eq!(ok, 5, "5 uses, 40 concurrent logins");
    // The last use removed the secret id and its accessor.
    assert!(!a.holds_secret_ids(), "{:?}", a.storage.0.keys());
}

#[tokio::test]
async fn a_secret_id_ends_at_its_ttl_and_tidy_reclaims_it() {
    let a = approle(86400);
    a.write("role/r", json!({"secret_id_ttl": "60s"})).await;
    let role_id = a.role_id("r").await;
    let s = a.write("role/r/secret-id", json!({})).await;
    assert_eq!(field(&s, "secret_id_ttl"), 60);
    let secret_id = field(&s, "secret_id").as_str().unwrap().to_string();
    let look = a
        .write("role/r/secret-id/lookup", json!({"secret_id": secret_id}))
        .await;
    assert_eq!(field(&look, "creation_time"), "2030-03-17T17:46:40Z");
    assert_eq!(field(&look, "expiration_time"), "2030-03-17T17:47:40Z");

    a.clock.advance(59);
    a.login(&role_id, &secret_id).await.expect("valid for 59 s");
    a.clock.advance(1);
    assert_eq!(
        a.login(&role_id, &secret_id).await.unwrap_err(),
        LogicalError::InvalidCredentials("invalid role or secret ID".into())
    );
    let look = a
        .write("role/r/secret-id/lookup", json!({"secret_id": secret_id}))
        .await;
    assert!(look.data.is_none(), "an expired secret id is not found");
    assert!(a
        .storage
        .0
        .keys()
        .iter()
        .any(|k| k.starts_with("secret_id/")));
    let t = a.write("tidy/secret-id", json!({})).await;
    assert_eq!(t.status, Some(202));
    assert!(!a.holds_secret_ids(), "{:?}", a.storage.0.keys());
}

#[tokio::test]
async fn secret_id_ttl_is_capped_by_the_mount_and_zero_never_expires() {
    let a = approle(300);
    a.write("role/capped", json!({"secret_id_ttl": "1h"})).await;
    let s = a.write("role/capped/secret-id", json!({})).await;
    assert_eq!(field(&s, "secret_id_ttl"), 300);
    a.write("role/forever", json!({})).await;
    let s = a.write("role/forever/secret-id", json!({})).await;
    assert_eq!(field(&s, "secret_id_ttl"), 0);
    let role_id = a.role_id("forever").await;
    a.clock.advance(10 * 365 * 86400);
    a.login(&role_id, field(&s, "secret_id").as_str().unwrap())
        .await
        .expect("a secret id without TTL does not expire");
}

#[tokio::test]
async fn storage_keys_never_hold_credentials() {
    let a = approle(86400);
    a.write("role/keys", json!({"role_id": "visible-role-id"}))
        .await;
    let s = a
        .write(
            "role/keys/custom-secret-id",
            json!({"secret_id": "visible-secret-id"}),
        )
        .await;
    let accessor = field(&s, "secret_id_accessor")
        .as_str()
        .unwrap()
        .to_string();
    a.login("visible-role-id", "visible-secret-id")
        .await
        .unwrap();
    for k in a.storage.0.keys() {
        assert!(
            !k.contains("visible") && !k.contains(&accessor),
            "key {k:?} holds a credential"
        );
        let v = a.storage.0.get(&k).await.unwrap().unwrap();
        assert!(
            !String::from_utf8_lossy(&v).contains("visible-secret-id"),
            "value of {k:?} holds the secret id"
        );
    }
    // Deleting the role removes everything but the mount's salt.
    a.try_call(Operation::Delete, "role/keys", json!({}))
        .await
        .unwrap();
    assert_eq!(a.storage.0.keys(), vec!["salt".to_string()]);
}
