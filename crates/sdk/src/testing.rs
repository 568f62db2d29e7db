//! In-memory [`Storage`] for engine tests.

use crate::storage::{children_of, Storage, StorageError, StorageOp};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Default)]
pub struct InmemStorage {
    map: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl InmemStorage {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn len(&self) -> usize {
        self.map.lock().unwrap().len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn keys(&self) -> Vec<String> {
        self.map.lock().unwrap().keys().cloned().collect()
    }
}

#[async_trait]
impl Storage for InmemStorage {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.map.lock().unwrap().get(key).cloned())
    }
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), StorageError> {
        self.map.lock().unwrap().insert(key.to_string(), value);
        Ok(())
    }
    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.map.lock().unwrap().remove(key);
        Ok(())
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let m = self.map.lock().unwrap();
        let keys = m
            .range(prefix.to_string()..)
            .map(|(k, _)| k.as_str())
            .take_while(|k| k.starts_with(prefix));
        Ok(children_of(prefix, keys))
    }
    async fn batch(&self, ops: Vec<StorageOp>) -> Result<(), StorageError> {
        let mut m = self.map.lock().unwrap();
        for op in ops {
            match op {
                StorageOp::Put(k, v) => {
                    m.insert(k, v);
                }
                StorageOp::Delete(k) => {
                    m.remove(&k);
                }
            }
        }
        Ok(())
    }
}

/// A test engine that answers every read with what it was given: the
/// request's client token, mount point, type and accessor, connection and
/// forwarded flag, and its system view's TTLs. Register it under any type
/// (`Registry::secrets("echo", echo_backend)`) in tests of core and http.
pub fn echo_backend(
    cfg: &crate::BackendConfig,
) -> Result<std::sync::Arc<dyn crate::Backend>, crate::LogicalError> {
    use crate::{Field, FieldType, Framework, Operation, Path, Response};
    use serde_json::json;
    struct Echo(std::sync::Arc<dyn crate::SystemView>);
    let path = Path::new("(?P<rest>.*)")
        .field(Field::new("rest", FieldType::String, "Anything."))
        .op(Operation::Read, |b: &Echo, c| {
            Box::pin(async move {
                let conn = c.req.connection.as_ref();
                let data: serde_json::Map<String, serde_json::Value> = [
                    ("client_token", json!(c.req.client_token)),
                    ("mount_point", json!(c.req.mount_point)),
                    ("mount_type", json!(c.req.mount_type)),
                    ("mount_accessor", json!(c.req.mount_accessor)),
                    ("forwarded", json!(c.req.forwarded)),
                    (
                        "remote_addr",
                        json!(conn.map(|c| c.remote_addr.to_string())),
                    ),
                    ("remote_port", json!(conn.map(|c| c.remote_port))),
                    (
                        "peer_certificates",
                        json!(conn.map(|c| c.peer_certificates.len())),
                    ),
                    ("default_lease_ttl", json!(b.0.default_lease_ttl())),
                    ("max_lease_ttl", json!(b.0.max_lease_ttl())),
                    ("standby", json!(b.0.is_standby())),
                    ("cluster_id", json!(b.0.cluster_id())),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
                Ok(Some(Response::data(data)))
            })
        })
        .help("Echoes what the engine is given.");
    Ok(std::sync::Arc::new(Framework::new(
        "echo",
        Echo(cfg.system.clone()),
        vec![path],
    )))
}

/// A test engine for leases and logins, registered by core's and http's
/// tests (`Registry::secrets("leases", lease_backend)` and
/// `.auth("leases", lease_backend)`):
/// - `creds/:name` (read or write; `ttl`, `max_ttl`, `renewable`) answers
///   with a leased secret of type `test`;
/// - its renew callback grants the increment asked for; its revoke
///   callback records `revoked/:name` = lease id (LIST `revoked/` shows
///   them), or fails while `config` has `fail_revoke` (`fail_renew` for
///   renewals, of secrets and of logins);
/// - `login` (no token needed; `username`, `policies`, `ttl`, `max_ttl`,
///   `period`, `renewable`) answers with an `Auth`; its auth-renew callback
///   refuses users written to `blocked/:username`;
/// - its cleanup hook records the mount ([`was_cleaned_up`]).
pub fn lease_backend(
    cfg: &crate::BackendConfig,
) -> Result<std::sync::Arc<dyn crate::Backend>, crate::LogicalError> {
    use crate::storage::{get_json, put_json};
    use crate::{
        Auth, Ctx, Field, FieldType, Framework, HandlerResult, LogicalError, Operation, Path,
        Response, Secret, SecretType, SpecialPaths,
    };
    use serde_json::{json, Map, Value};

    /// The mount's uuid (reported by the cleanup hook).
    struct Leases(String);

    async fn flag(c: &Ctx<'_>, name: &str) -> Result<bool, LogicalError> {
        let cfg: Option<Map<String, Value>> = get_json(c.storage, "config").await?;
        Ok(cfg
            .and_then(|m| m.get(name).and_then(Value::as_bool))
            .unwrap_or(false))
    }

    async fn creds(c: Ctx<'_>) -> HandlerResult {
        let name = c.data.str_or("name", "")?;
        let mut internal = Map::new();
        internal.insert("name".into(), Value::from(name.clone()));
        let mut secret = Secret::leased("test", c.data.get_duration("ttl")?.unwrap_or(0), internal);
        secret.max_ttl = c.data.get_duration("max_ttl")?.unwrap_or(0);
        secret.renewable = c.data.bool_or("renewable", true)?;
        let mut r = Response::json(json!({ "name": name, "password": "not-a-real-secret" }));
        r.secret = Some(secret);
        Ok(Some(r))
    }

    async fn renew(c: Ctx<'_>) -> HandlerResult {
        if flag(&c, "fail_renew").await? {
            return Err(LogicalError::invalid("renewal refused by the test engine"));
        }
        let s = c.req.secret.clone().unwrap_or_default();
        Ok(Some(Response {
            secret: Some(Secret {
                ttl: s.increment,
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn revoke(c: Ctx<'_>) -> HandlerResult {
        if flag(&c, "fail_revoke").await? {
            return Err(LogicalError::internal(
                "revocation refused by the test engine",
            ));
        }
        let s = c.req.secret.clone().unwrap_or_default();
        let name = s
            .internal_data
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        put_json(c.storage, &format!("revoked/{name}"), &s.lease_id).await?;
        Ok(None)
    }

    async fn login(c: Ctx<'_>) -> HandlerResult {
        let username = c.data.str_or("username", "")?;
        if username.is_empty() {
            return Err(LogicalError::invalid("missing username"));
        }
        let mut internal = Map::new();
        internal.insert("username".into(), Value::from(username.clone()));
        Ok(Some(Response {
            auth: Some(Auth {
                policies: c.data.get_list("policies")?.unwrap_or_default(),
                display_name: username.clone(),
                metadata: [("username".to_string(), username)].into_iter().collect(),
                ttl: c.data.get_duration("ttl")?.unwrap_or(0),
                max_ttl: c.data.get_duration("max_ttl")?.unwrap_or(0),
                period: c.data.get_duration("period")?.unwrap_or(0),
                renewable: c.data.bool_or("renewable", true)?,
                internal_data: internal,
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn auth_renew(c: Ctx<'_>) -> HandlerResult {
        let user = c
            .req
            .auth
            .as_ref()
            .and_then(|a| a.internal_data.get("username"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if c.storage.get(&format!("blocked/{user}")).await?.is_some()
            || flag(&c, "fail_renew").await?
        {
            return Err(LogicalError::invalid(format!(
                "user {user:?} may no longer renew"
            )));
        }
        Ok(None)
    }

    async fn write_raw(c: Ctx<'_>, key: String) -> HandlerResult {
        let body = Value::Object(c.req.data.clone());
        put_json(c.storage, &key, &body).await?;
        Ok(None)
    }

    let flags = |p: Path<Leases>| {
        p.field(Field::new(
            "fail_revoke",
            FieldType::Bool,
            "Revocations fail.",
        ))
        .field(Field::new("fail_renew", FieldType::Bool, "Renewals fail."))
    };
    let paths = vec![
        Path::new("creds/(?P<name>.+)")
            .field(Field::new("name", FieldType::String, "Name of the secret."))
            .field(Field::new("ttl", FieldType::Duration, "Lease TTL."))
            .field(Field::new("max_ttl", FieldType::Duration, "Lease max TTL."))
            .field(Field::new("renewable", FieldType::Bool, "Renewable lease.").default(true))
            .op(Operation::Read, |_: &Leases, c| Box::pin(creds(c)))
            .op(Operation::Update, |_: &Leases, c| Box::pin(creds(c)))
            .help("A leased test secret."),
        flags(Path::new("config"))
            .op(Operation::Update, |_: &Leases, c| {
                Box::pin(write_raw(c, "config".into()))
            })
            .help("Make callbacks fail."),
        Path::new("blocked/(?P<username>.+)")
            .field(Field::new("username", FieldType::String, "User."))
            .op(Operation::Update, |_: &Leases, c| {
                Box::pin(async move {
                    let u = c.data.str_or("username", "")?;
                    c.storage
                        .put(&format!("blocked/{u}"), b"1".to_vec())
                        .await?;
                    Ok(None)
                })
            })
            .help("Block a user's renewals."),
        Path::new("revoked/?")
            .op(Operation::List, |_: &Leases, c| {
                Box::pin(async move { Ok(Some(Response::list(c.storage.list("revoked/").await?))) })
            })
            .help("Secrets whose lease was revoked."),
        Path::new("login")
            .field(Field::new("username", FieldType::String, "User."))
            .field(Field::new(
                "policies",
                FieldType::CommaStringSlice,
                "Policies.",
            ))
            .field(Field::new("ttl", FieldType::Duration, "Token TTL."))
            .field(Field::new("max_ttl", FieldType::Duration, "Token max TTL."))
            .field(Field::new("period", FieldType::Duration, "Token period."))
            .field(Field::new("renewable", FieldType::Bool, "Renewable token.").default(true))
            .op(Operation::Update, |_: &Leases, c| Box::pin(login(c)))
            .help("Log in as anyone (tests only)."),
    ];
    Ok(std::sync::Arc::new(
        Framework::new("leases", Leases(cfg.mount_uuid.clone()), paths)
            .with_special_paths(SpecialPaths {
                unauthenticated_writes: vec!["login".into()],
                ..Default::default()
            })
            .with_secret(SecretType {
                name: "test",
                renew: Some(|_: &Leases, c| Box::pin(renew(c))),
                revoke: |_: &Leases, c| Box::pin(revoke(c)),
            })
            .with_auth_renew(|_: &Leases, c| Box::pin(auth_renew(c)))
            .with_cleanup(|b: &Leases| {
                Box::pin(async move {
                    CLEANED_UP.lock().unwrap().push(b.0.clone());
                })
            }),
    ))
}

/// Mount uuids whose `lease_backend` was cleaned up (unmount, seal).
static CLEANED_UP: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Whether the `lease_backend` of the mount with this uuid was cleaned up.
pub fn was_cleaned_up(mount_uuid: &str) -> bool {
    CLEANED_UP.lock().unwrap().iter().any(|u| u == mount_uuid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn list_shows_immediate_children_and_folders() {
        let s = InmemStorage::new();
        for k in ["a/b", "a/c/d", "a/c/e", "a/d", "b", "ab"] {
            s.put(k, vec![1]).await.unwrap();
        }
        assert_eq!(s.list("a/").await.unwrap(), vec!["b", "c/", "d"]);
        assert_eq!(s.list("").await.unwrap(), vec!["a/", "ab", "b"]);
        assert_eq!(s.list("zz/").await.unwrap(), Vec::<String>::new());
    }
}
