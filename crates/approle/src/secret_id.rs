//! `role/:role_name/secret-id` (generate, LIST), `custom-secret-id`,
//! `secret-id/lookup|destroy`, `secret-id-accessor/lookup|destroy`, and
//! `tidy/secret-id` (also run by the periodic hook).

use std::collections::{BTreeMap, HashSet};

use serde_json::{json, Map, Value};

use arca_sdk::storage::get_json;
use arca_sdk::{
    cidr, Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, Response, Storage,
    StorageOp,
};

use crate::store::{
    delete_ops, put_ops, role_folder, AccessorEntry, Role, SecretIdEntry, SecretIdKeys, MAX_INPUT,
};
use crate::{role_name, role_name_field, AppRole};

/// Seconds between two periodic tidies.
const TIDY_EVERY: i64 = 60;

fn options() -> Vec<Field> {
    use FieldType::*;
    vec![
        role_name_field(),
        Field::new(
            "metadata",
            Raw,
            "Metadata of the secret id, copied to the tokens its logins get: a JSON object of strings (or its JSON text), or k=v pairs separated by commas.",
        ),
        Field::new(
            "cidr_list",
            CommaStringSlice,
            "CIDR blocks logins with this secret id may come from (within the role's secret_id_bound_cidrs).",
        ),
        Field::new(
            "token_bound_cidrs",
            CommaStringSlice,
            "CIDR blocks the tokens of this secret id's logins may be used from (within the role's token_bound_cidrs; replaces them).",
        ),
        Field::new(
            "num_uses",
            Int,
            "Uses of this secret id (0: unlimited; at most the role's secret_id_num_uses).",
        ),
        Field::new(
            "ttl",
            Duration,
            "Life of this secret id (at most the role's secret_id_ttl).",
        ),
    ]
}

fn secret_id_field() -> Field {
    Field::new("secret_id", FieldType::String, "The secret id.").sensitive()
}

fn accessor_field() -> Field {
    Field::new(
        "secret_id_accessor",
        FieldType::String,
        "The accessor of the secret id.",
    )
}

pub fn paths() -> Vec<Path<AppRole>> {
    let with = |mut p: Path<AppRole>, fields: Vec<Field>| {
        for f in fields {
            p = p.field(f);
        }
        p
    };
    vec![
        with(
            Path::new(concat!("role/", role_name!(), "/secret-id/?")),
            options(),
        )
        .op(Operation::Update, |b: &AppRole, c| {
            Box::pin(b.generate(c, None))
        })
        .op(Operation::List, |b: &AppRole, c| {
            Box::pin(b.list_accessors(c))
        })
        .help("Generate a secret id for the role, or list the accessors of its secret ids."),
        with(
            Path::new(concat!("role/", role_name!(), "/custom-secret-id")),
            options(),
        )
        .field(secret_id_field())
        .op(Operation::Update, |b: &AppRole, c| {
            Box::pin(b.generate_custom(c))
        })
        .help("Register a secret id chosen by the caller."),
        Path::new(concat!("role/", role_name!(), "/secret-id/lookup/?"))
            .field(role_name_field())
            .field(secret_id_field())
            .op(Operation::Update, |b: &AppRole, c| {
                Box::pin(b.lookup_secret_id(c))
            })
            .help("Read the properties of a secret id."),
        Path::new(concat!("role/", role_name!(), "/secret-id/destroy/?"))
            .field(role_name_field())
            .field(secret_id_field())
            .op(Operation::Update, |b: &AppRole, c| {
                Box::pin(b.destroy_secret_id(c))
            })
            .op(Operation::Delete, |b: &AppRole, c| {
                Box::pin(b.destroy_secret_id(c))
            })
            .help("Destroy a secret id."),
        Path::new(concat!(
            "role/",
            role_name!(),
            "/secret-id-accessor/lookup/?"
        ))
        .field(role_name_field())
        .field(accessor_field())
        .op(Operation::Update, |b: &AppRole, c| {
            Box::pin(b.lookup_accessor(c))
        })
        .help("Read the properties of a secret id by its accessor."),
        Path::new(concat!(
            "role/",
            role_name!(),
            "/secret-id-accessor/destroy/?"
        ))
        .field(role_name_field())
        .field(accessor_field())
        .op(Operation::Update, |b: &AppRole, c| {
            Box::pin(b.destroy_accessor(c))
        })
        .op(Operation::Delete, |b: &AppRole, c| {
            Box::pin(b.destroy_accessor(c))
        })
        .help("Destroy a secret id by its accessor."),
    ]
}

fn rfc3339(t: i64) -> Value {
    let t = if t == 0 { -62_135_596_800 } else { t }; // 0001-01-01T00:00:00Z
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| Value::from(d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
        .unwrap_or(Value::Null)
}

impl SecretIdEntry {
    fn to_json(&self) -> Map<String, Value> {
        match json!({
            "secret_id_accessor": self.secret_id_accessor,
            "secret_id_num_uses": self.secret_id_num_uses,
            "secret_id_ttl": self.secret_id_ttl,
            "creation_time": rfc3339(self.creation_time),
            "expiration_time": rfc3339(self.expiration_time),
            "last_updated_time": rfc3339(self.last_updated_time),
            "metadata": self.metadata,
            "cidr_list": self.cidr_list,
            "token_bound_cidrs": self.token_bound_cidrs,
        }) {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }
}

/// Vault's metadata forms: a JSON object of strings, its JSON text, or
/// `k1=v1,k2=v2`.
fn parse_metadata(v: Option<Value>) -> Result<BTreeMap<String, String>, LogicalError> {
    let bad = |why: &str| LogicalError::invalid(format!("failed to parse metadata: {why}"));
    let obj = match v {
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m,
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(BTreeMap::new()),
        Some(Value::String(s)) if s.trim_start().starts_with('{') => {
            match serde_json::from_str::<Value>(&s) {
                Ok(Value::Object(m)) => m,
                _ => return Err(bad("not a JSON object")),
            }
        }
        Some(Value::String(s)) => {
            let mut out = BTreeMap::new();
            for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let (k, v) = pair
                    .split_once('=')
                    .ok_or_else(|| bad(&format!("{pair:?} is not key=value")))?;
                out.insert(k.trim().to_string(), v.trim().to_string());
            }
            return Ok(out);
        }
        Some(_) => return Err(bad("expected a JSON object of strings")),
    };
    obj.into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k, s)),
            _ => Err(bad(&format!("the value of {k:?} is not a string"))),
        })
        .collect()
}

impl AppRole {
    async fn generate_custom(&self, c: Ctx<'_>) -> HandlerResult {
        let id = c.data.str_or("secret_id", "")?;
        if id.is_empty() {
            return Err(LogicalError::invalid("missing secret_id"));
        }
        if id.len() > MAX_INPUT {
            return Err(LogicalError::invalid(format!(
                "secret_id is longer than maximum of {MAX_INPUT} bytes"
            )));
        }
        self.generate(c, Some(id)).await
    }

    /// Issues a secret id (generated, or the caller's) within the role's
    /// limits.
    async fn generate(&self, c: Ctx<'_>, custom: Option<String>) -> HandlerResult {
        let (name, role) = self.existing_role(&c).await?;
        let _g = self.store.role_read(&name).await;
        if !role.bind_secret_id {
            return Err(LogicalError::invalid(
                "bind_secret_id is not set on the role",
            ));
        }
        let cidrs = cidr::parse(&c.data.get_list("cidr_list")?.unwrap_or_default())?;
        let role_cidrs = cidr::parse(&role.secret_id_bound_cidrs)?;
        if !cidr::is_subset(&cidrs, &role_cidrs) {
            return Err(LogicalError::invalid(format!(
                "failed to verify the CIDR restrictions set on the secret ID: cidr_list {:?} is not within the role's secret_id_bound_cidrs {:?}",
                cidr::to_strings(&cidrs),
                role.secret_id_bound_cidrs
            )));
        }
        let token_cidrs = cidr::parse(&c.data.get_list("token_bound_cidrs")?.unwrap_or_default())?;
        if !cidr::is_subset(&token_cidrs, &cidr::parse(&role.token.token_bound_cidrs)?) {
            return Err(LogicalError::invalid(format!(
                "failed to verify the CIDR restrictions set on the secret ID: token_bound_cidrs {:?} is not within the role's token_bound_cidrs {:?}",
                cidr::to_strings(&token_cidrs),
                role.token.token_bound_cidrs
            )));
        }
        let num_uses = match c.data.get_i64("num_uses")? {
            Some(n) if n < 0 => return Err(LogicalError::invalid("num_uses cannot be negative")),
            Some(n) if role.secret_id_num_uses > 0 && (n == 0 || n > role.secret_id_num_uses) => {
                return Err(LogicalError::invalid(
                    "num_uses cannot be higher than the role's secret_id_num_uses",
                ))
            }
            Some(n) => n,
            None => role.secret_id_num_uses,
        };
        let ttl = match c.data.get_duration("ttl")? {
            Some(t) if role.secret_id_ttl > 0 && (t == 0 || t > role.secret_id_ttl) => {
                return Err(LogicalError::invalid(
                    "ttl cannot be longer than the role's secret_id_ttl",
                ))
            }
            Some(t) => t,
            None => role.secret_id_ttl,
        };
        // Never beyond the mount's max lease TTL; 0 stays "never expires".
        let max = self.system.max_lease_ttl();
        let ttl = if max > 0 && ttl > max { max } else { ttl };
        let metadata = parse_metadata(c.data.get("metadata")?)?;

        let secret_id = custom.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let keys = SecretIdKeys::new(&role, &name, &secret_id)?;
        let _s = self.store.secret_id(&keys.hmac).await;
        if c.storage.get(&keys.entry()).await?.is_some() {
            return Err(LogicalError::invalid("SecretID is already registered"));
        }
        let accessor = uuid::Uuid::new_v4().to_string();
        let now = self.system.now();
        let entry = SecretIdEntry {
            secret_id_accessor: accessor.clone(),
            secret_id_num_uses: num_uses,
            secret_id_ttl: ttl,
            creation_time: now,
            expiration_time: if ttl > 0 { now + ttl as i64 } else { 0 },
            last_updated_time: now,
            metadata,
            cidr_list: cidr::to_strings(&cidrs),
            token_bound_cidrs: cidr::to_strings(&token_cidrs),
        };
        let acc_key = self.store.accessor_key(c.storage, &accessor).await?;
        c.storage
            .batch(put_ops(
                &keys.entry(),
                &entry,
                &acc_key,
                &AccessorEntry {
                    secret_id_hmac: keys.hmac.clone(),
                    role_name: name.clone(),
                },
            )?)
            .await?;
        Ok(Some(Response::json(json!({
            "secret_id": secret_id,
            "secret_id_accessor": accessor,
            "secret_id_ttl": ttl,
            "secret_id_num_uses": num_uses,
        }))))
    }

    async fn list_accessors(&self, c: Ctx<'_>) -> HandlerResult {
        let (name, role) = self.existing_role(&c).await?;
        let folder = role_folder(&role, &name)?;
        let now = self.system.now();
        let mut keys = Vec::new();
        for k in c.storage.list(&folder).await? {
            if let Some(e) = get_json::<SecretIdEntry>(c.storage, &format!("{folder}{k}")).await? {
                if !e.expired(now) {
                    keys.push(e.secret_id_accessor);
                }
            }
        }
        if keys.is_empty() {
            return Err(LogicalError::NotFound);
        }
        keys.sort();
        Ok(Some(Response::list(keys)))
    }

    /// The live entry of a secret id of the role (`None` when unknown or
    /// expired).
    async fn live_entry(
        &self,
        c: &Ctx<'_>,
        role: &Role,
        name: &str,
        secret_id: &str,
    ) -> Result<Option<(SecretIdKeys, SecretIdEntry)>, LogicalError> {
        let keys = SecretIdKeys::new(role, name, secret_id)?;
        let now = self.system.now();
        Ok(get_json::<SecretIdEntry>(c.storage, &keys.entry())
            .await?
            .filter(|e| !e.expired(now))
            .map(|e| (keys, e)))
    }

    async fn lookup_secret_id(&self, c: Ctx<'_>) -> HandlerResult {
        let secret_id = c.data.str_or("secret_id", "")?;
        if secret_id.is_empty() {
            return Err(LogicalError::invalid("missing secret_id"));
        }
        let (name, role) = self.existing_role(&c).await?;
        Ok(self
            .live_entry(&c, &role, &name, &secret_id)
            .await?
            .map(|(_, e)| Response::data(e.to_json())))
    }

    async fn destroy_secret_id(&self, c: Ctx<'_>) -> HandlerResult {
        let secret_id = c.data.str_or("secret_id", "")?;
        if secret_id.is_empty() {
            return Err(LogicalError::invalid("missing secret_id"));
        }
        let (name, role) = self.existing_role(&c).await?;
        let keys = SecretIdKeys::new(&role, &name, &secret_id)?;
        let _s = self.store.secret_id(&keys.hmac).await;
        if let Some(e) = get_json::<SecretIdEntry>(c.storage, &keys.entry()).await? {
            let acc = self
                .store
                .accessor_key(c.storage, &e.secret_id_accessor)
                .await?;
            c.storage.batch(delete_ops(&keys.entry(), &acc)).await?;
        }
        Ok(None)
    }

    /// The secret id entry an accessor of this role names, or a 404.
    async fn by_accessor(
        &self,
        c: &Ctx<'_>,
    ) -> Result<(String, String, SecretIdEntry), LogicalError> {
        let accessor = c.data.str_or("secret_id_accessor", "")?;
        if accessor.is_empty() {
            return Err(LogicalError::invalid("missing secret_id_accessor"));
        }
        let (name, role) = self.existing_role(c).await?;
        let missing = || LogicalError::Status {
            status: 404,
            message: format!("failed to find accessor entry for secret_id_accessor: {accessor:?}"),
        };
        let (acc_key, acc) = self
            .accessor_entry(c, &accessor)
            .await?
            .filter(|(_, a)| a.role_name == name)
            .ok_or_else(missing)?;
        let entry_key = format!("{}{}", role_folder(&role, &name)?, acc.secret_id_hmac);
        let now = self.system.now();
        let entry = get_json::<SecretIdEntry>(c.storage, &entry_key)
            .await?
            .filter(|e| !e.expired(now))
            .ok_or_else(missing)?;
        Ok((acc_key, entry_key, entry))
    }

    async fn lookup_accessor(&self, c: Ctx<'_>) -> HandlerResult {
        let (_, _, entry) = self.by_accessor(&c).await?;
        Ok(Some(Response::data(entry.to_json())))
    }

    async fn destroy_accessor(&self, c: Ctx<'_>) -> HandlerResult {
        let (acc_key, entry_key, _) = self.by_accessor(&c).await?;
        let hmac = entry_key.rsplit('/').next().unwrap_or_default().to_string();
        let _s = self.store.secret_id(&hmac).await;
        c.storage.batch(delete_ops(&entry_key, &acc_key)).await?;
        Ok(None)
    }

    pub(crate) async fn tidy(&self, c: Ctx<'_>) -> HandlerResult {
        let (expired, dangling) = self.tidy_storage(c.storage).await?;
        let r = Response {
            status: Some(202),
            warnings: vec![format!(
                "Tidy of secret IDs done: {expired} expired or orphaned secret IDs and {dangling} dangling accessors removed."
            )],
            ..Default::default()
        };
        Ok(Some(r))
    }

    pub(crate) async fn periodic_tidy(&self, s: &dyn Storage) -> Result<(), LogicalError> {
        let now = self.system.now();
        let last = self.last_tidy.load(std::sync::atomic::Ordering::Relaxed);
        if now - last < TIDY_EVERY {
            return Ok(());
        }
        self.last_tidy
            .store(now, std::sync::atomic::Ordering::Relaxed);
        self.tidy_storage(s).await.map(|_| ())
    }

    /// Removes expired secret ids, secret ids whose role is gone, and
    /// accessors whose secret id is gone. Returns the counts.
    async fn tidy_storage(&self, s: &dyn Storage) -> Result<(usize, usize), LogicalError> {
        let now = self.system.now();
        let mut folders = HashSet::new();
        for name in s.list("role/").await? {
            if let Some(role) = self.store.role(s, &name).await? {
                folders.insert(role_folder(&role, &name)?);
            }
        }
        let mut removed = 0;
        for f in s.list("secret_id/").await? {
            let folder = format!("secret_id/{f}");
            let orphaned = !folders.contains(&folder);
            for k in s.list(&folder).await? {
                let key = format!("{folder}{k}");
                let _l = self.store.secret_id(&k).await;
                let Some(e) = get_json::<SecretIdEntry>(s, &key).await? else {
                    continue;
                };
                if orphaned || e.expired(now) {
                    let acc = self.store.accessor_key(s, &e.secret_id_accessor).await?;
                    s.batch(delete_ops(&key, &acc)).await?;
                    removed += 1;
                }
            }
        }
        let mut dangling = 0;
        for k in s.list("accessor/").await? {
            let key = format!("accessor/{k}");
            let Some(a) = get_json::<AccessorEntry>(s, &key).await? else {
                continue;
            };
            let _l = self.store.secret_id(&a.secret_id_hmac).await;
            let live = match self.store.role(s, &a.role_name).await? {
                Some(role) => {
                    let entry =
                        format!("{}{}", role_folder(&role, &a.role_name)?, a.secret_id_hmac);
                    s.get(&entry).await?.is_some()
                }
                None => false,
            };
            if !live {
                s.batch(vec![StorageOp::Delete(key)]).await?;
                dangling += 1;
            }
        }
        Ok((removed, dangling))
    }
}
