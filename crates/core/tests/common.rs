//! Shared helpers: an initialized, unsealed core over in-memory storage.

use std::sync::Arc;

use arca_core::{Core, CoreConfig};
use arca_physical::InmemBackend;
use arca_sdk::{LogicalError, Operation, Registry, Request};
use serde_json::{json, Value};

pub struct TestCore {
    pub core: Arc<Core>,
    pub root: String,
    pub keys: Vec<Vec<u8>>,
}

pub async fn unsealed() -> TestCore {
    unsealed_with(|engines| engines).await
}

/// As [`unsealed`], with the engine registry passed through `engines` first
/// (to add an engine type, or replace one: a later registration wins).
pub async fn unsealed_with(engines: impl FnOnce(Registry) -> Registry) -> TestCore {
    // Reading an undeclared field fails loudly under tests.
    std::env::set_var("ARCA_STRICT_FIELDS", "1");
    let core = Core::new(
        Arc::new(InmemBackend::new()),
        CoreConfig {
            engines: engines(
                Registry::new()
                    .secrets("kv", arca_kv::new_backend)
                    .secrets("pki", arca_pki::new_backend)
                    .secrets("echo", arca_sdk::testing::echo_backend)
                    .secrets("leases", arca_sdk::testing::lease_backend)
                    .auth("leases", arca_sdk::testing::lease_backend),
            ),
            ..CoreConfig::default()
        },
    );
    let init = core.initialize(3, 2).await.unwrap();
    assert!(core.is_sealed(), "a fresh init leaves the node sealed");
    let keys: Vec<Vec<u8>> = init.keys.iter().map(|k| k.to_vec()).collect();
    core.unseal_step(Some(&hex::encode(&keys[0])))
        .await
        .unwrap();
    assert!(core.is_sealed());
    core.unseal_step(Some(&hex::encode(&keys[2])))
        .await
        .unwrap();
    assert!(!core.is_sealed());
    TestCore {
        core,
        root: init.root_token,
        keys,
    }
}

impl TestCore {
    pub async fn call(
        &self,
        token: &str,
        op: Operation,
        path: &str,
        data: Value,
    ) -> Result<Option<Value>, LogicalError> {
        let mut req = Request::new(op, path).with_data(data);
        req.client_token = Some(token.to_string());
        let reply = self.core.handle(req).await?;
        Ok(reply.response.map(|r| {
            if let Some(raw) = r.raw {
                return serde_json::from_slice(&raw.body).unwrap_or(Value::Null);
            }
            json!({
                "data": r.data.map(Value::Object).unwrap_or(Value::Null),
                "auth": r.auth.map(|a| json!({
                    "client_token": a.client_token, "accessor": a.accessor, "policies": a.policies,
                    "lease_duration": a.ttl, "renewable": a.renewable, "orphan": a.orphan,
                })).unwrap_or(Value::Null),
                "warnings": r.warnings,
                "lease_duration": reply.lease_duration,
                "lease_id": reply.lease_id,
                "renewable": reply.renewable,
            })
        }))
    }

    pub async fn root(
        &self,
        op: Operation,
        path: &str,
        data: Value,
    ) -> Result<Option<Value>, LogicalError> {
        self.call(&self.root.clone(), op, path, data).await
    }

    /// Creates a token with the given policies; returns (token, accessor).
    pub async fn token(&self, policies: &[&str], extra: Value) -> (String, String) {
        let mut body = json!({ "policies": policies });
        if let Value::Object(m) = extra {
            for (k, v) in m {
                body[k] = v;
            }
        }
        let r = self
            .root(Operation::Update, "auth/token/create", body)
            .await
            .unwrap()
            .unwrap();
        (
            r["auth"]["client_token"].as_str().unwrap().to_string(),
            r["auth"]["accessor"].as_str().unwrap().to_string(),
        )
    }
}
