//! `role`, `role/:role_name`, its per-property paths and `role-id`.

use serde_json::{json, Map, Value};

use arca_sdk::storage::{get_json, json_op};
use arca_sdk::token_fields;
use arca_sdk::{
    cidr, Ctx, Field, FieldData, FieldType, HandlerResult, LogicalError, Operation, Path, Response,
    StorageOp,
};

use crate::store::{
    random_hex, role_folder, role_key, AccessorEntry, Role, RoleIdEntry, SecretIdEntry, MAX_INPUT,
};
use crate::{role_name, role_name_field, AppRole};

/// Role fields besides the common token fields.
fn role_fields() -> Vec<Field> {
    use FieldType::*;
    let mut v = vec![
        role_name_field(),
        Field::new(
            "bind_secret_id",
            Bool,
            "Require a secret id at login (default true).",
        )
        .default(true),
        Field::new(
            "secret_id_bound_cidrs",
            CommaStringSlice,
            "CIDR blocks logins with this role may come from.",
        ),
        Field::new(
            "bound_cidr_list",
            CommaStringSlice,
            "Deprecated: use secret_id_bound_cidrs.",
        ),
        Field::new(
            "secret_id_num_uses",
            Int,
            "Uses of each secret id (0: unlimited).",
        ),
        Field::new(
            "secret_id_ttl",
            Duration,
            "Life of each secret id (0: until the mount's max TTL).",
        ),
        Field::new(
            "local_secret_ids",
            Bool,
            "Secret ids local to this cluster (set at creation only; Arca has one cluster, so every secret id is local to it).",
        ),
        Field::new("role_id", String, "The role id (generated when not given)."),
    ];
    v.extend(token_fields::fields());
    v
}

/// The per-property paths: `role/:role_name/<segment>` reads, sets and
/// resets the listed fields of the role.
pub const PROPERTIES: &[(&str, &[&str])] = &[
    ("policies", &["token_policies", "policies"]),
    ("secret-id-num-uses", &["secret_id_num_uses"]),
    ("secret-id-ttl", &["secret_id_ttl"]),
    ("token-ttl", &["token_ttl"]),
    ("token-max-ttl", &["token_max_ttl"]),
    ("token-num-uses", &["token_num_uses"]),
    ("bind-secret-id", &["bind_secret_id"]),
    ("secret-id-bound-cidrs", &["secret_id_bound_cidrs"]),
    ("token-bound-cidrs", &["token_bound_cidrs"]),
    ("period", &["token_period", "period"]),
    ("local-secret-ids", &["local_secret_ids"]),
];

macro_rules! property_path {
    ($seg:literal) => {
        Path::new(concat!("role/", role_name!(), "/", $seg))
    };
}

pub fn role_path() -> Path<AppRole> {
    let mut p = Path::new(concat!("role/", role_name!()));
    for f in role_fields() {
        p = p.field(f);
    }
    p.existence(|b: &AppRole, c| Box::pin(b.role_exists(c)))
        .op(Operation::Create, |b: &AppRole, c| {
            Box::pin(b.write_role(c))
        })
        .op(Operation::Update, |b: &AppRole, c| {
            Box::pin(b.write_role(c))
        })
        .op(Operation::Read, |b: &AppRole, c| Box::pin(b.read_role(c)))
        .op(Operation::Delete, |b: &AppRole, c| {
            Box::pin(b.delete_role(c))
        })
        .help("Create, read, update or delete a role: how its secret ids and tokens are issued.")
}

pub fn property_paths() -> Vec<Path<AppRole>> {
    let paths = [
        property_path!("policies"),
        property_path!("secret-id-num-uses"),
        property_path!("secret-id-ttl"),
        property_path!("token-ttl"),
        property_path!("token-max-ttl"),
        property_path!("token-num-uses"),
        property_path!("bind-secret-id"),
        property_path!("secret-id-bound-cidrs"),
        property_path!("token-bound-cidrs"),
        property_path!("period"),
        property_path!("local-secret-ids"),
    ];
    let all = role_fields();
    let mut out: Vec<Path<AppRole>> = paths
        .into_iter()
        .zip(PROPERTIES)
        .map(|(mut p, (seg, names))| {
            p = p.field(role_name_field());
            for f in all.iter().filter(|f| names.contains(&f.name)) {
                p = p.field(f.clone());
            }
            p = p.op(Operation::Read, |b: &AppRole, c| {
                Box::pin(b.read_property(c))
            });
            if *seg != "local-secret-ids" {
                p = p
                    .op(Operation::Update, |b: &AppRole, c| {
                        Box::pin(b.write_property(c))
                    })
                    .op(Operation::Delete, |b: &AppRole, c| {
                        Box::pin(b.reset_property(c))
                    })
                    .help("Read, set or reset one property of a role.");
            } else {
                p = p.help("Read whether a role's secret ids are local to the cluster.");
            }
            p
        })
        .collect();
    out.push(
        Path::new(concat!("role/", role_name!(), "/role-id"))
            .field(role_name_field())
            .field(Field::new("role_id", FieldType::String, "The new role id."))
            .op(Operation::Read, |b: &AppRole, c| {
                Box::pin(b.read_role_id(c))
            })
            .op(Operation::Update, |b: &AppRole, c| {
                Box::pin(b.write_role_id(c))
            })
            .help("Read or set a role's role id."),
    );
    out
}

fn name_of(c: &Ctx<'_>) -> Result<String, LogicalError> {
    let name = c.data.str_or("role_name", "")?.to_lowercase();
    if name.is_empty() {
        return Err(LogicalError::invalid("missing role_name"));
    }
    if name.len() > MAX_INPUT {
        return Err(LogicalError::invalid(format!(
            "role_name is longer than maximum of {MAX_INPUT} bytes"
        )));
    }
    Ok(name)
}

/// The property segment of a `role/:name/<segment>` request.
fn segment(c: &Ctx<'_>) -> &'static str {
    let last = c.req.path.rsplit('/').next().unwrap_or_default();
    PROPERTIES
        .iter()
        .map(|(s, _)| *s)
        .find(|s| *s == last)
        .unwrap_or_default()
}

fn no_role(name: &str) -> LogicalError {
    LogicalError::Status {
        status: 404,
        message: format!("role {name:?} does not exist"),
    }
}

impl Role {
    /// The role as a read shows it.
    fn to_json(&self) -> Map<String, Value> {
        let mut m = self.token.to_json();
        m.insert("bind_secret_id".into(), json!(self.bind_secret_id));
        m.insert(
            "secret_id_bound_cidrs".into(),
            json!(self.secret_id_bound_cidrs),
        );
        m.insert("secret_id_num_uses".into(), json!(self.secret_id_num_uses));
        m.insert("secret_id_ttl".into(), json!(self.secret_id_ttl));
        m.insert("local_secret_ids".into(), json!(self.local_secret_ids));
        // The deprecated names, as Vault still shows them.
        m.insert("policies".into(), json!(self.token.token_policies));
        m.insert("period".into(), json!(self.token.token_period));
        m
    }

    /// Applies the fields a write sent; `creating` applies the defaults of
    /// the fields it did not send.
    fn apply(&mut self, d: &FieldData, creating: bool) -> Result<(), LogicalError> {
        self.token.update(d)?;
        // (`get_bool` answers the declared default for an absent field.)
        if d.is_set("bind_secret_id") {
            self.bind_secret_id = d.bool_or("bind_secret_id", true)?;
        } else if creating {
            self.bind_secret_id = true;
        }
        let cidrs = match d.get_list("secret_id_bound_cidrs")? {
            Some(v) => Some(v),
            None => d.get_list("bound_cidr_list")?,
        };
        if let Some(v) = cidrs {
            let blocks = cidr::parse(&v)?;
            self.secret_id_bound_cidrs = cidr::to_strings(&blocks);
        }
        if let Some(v) = d.get_i64("secret_id_num_uses")? {
            if v < 0 {
                return Err(LogicalError::invalid(
                    "secret_id_num_uses cannot be negative",
                ));
            }
            self.secret_id_num_uses = v;
        }
        if let Some(v) = d.get_duration("secret_id_ttl")? {
            self.secret_id_ttl = v;
        }
        if let Some(v) = d.get_bool("local_secret_ids")? {
            if !creating && v != self.local_secret_ids {
                return Err(LogicalError::invalid(
                    "local_secret_ids can only be modified during role creation",
                ));
            }
            self.local_secret_ids = v;
        }
        Ok(())
    }

    fn check_constraints(&self) -> Result<(), LogicalError> {
        if !self.bind_secret_id
            && self.secret_id_bound_cidrs.is_empty()
            && self.token.token_bound_cidrs.is_empty()
        {
            return Err(LogicalError::invalid(
                "at least one constraint should be enabled on the role: bind_secret_id, secret_id_bound_cidrs or token_bound_cidrs",
            ));
        }
        Ok(())
    }
}

impl AppRole {
    pub(crate) async fn list_roles(&self, c: Ctx<'_>) -> HandlerResult {
        let keys = c.storage.list("role/").await?;
        if keys.is_empty() {
            return Err(LogicalError::NotFound);
        }
        Ok(Some(Response::list(keys)))
    }

    async fn role_exists(&self, c: Ctx<'_>) -> Result<bool, LogicalError> {
        Ok(self.store.role(c.storage, &name_of(&c)?).await?.is_some())
    }

    /// Stores a role and its role-id index (dropping the old index when
    /// the role id changed), refusing a role id another role has.
    async fn save_role(
        &self,
        c: &Ctx<'_>,
        name: &str,
        role: &Role,
        previous_role_id: &str,
    ) -> Result<(), LogicalError> {
        if role.role_id.is_empty() {
            return Err(LogicalError::invalid("role_id cannot be empty"));
        }
        if role.role_id.len() > MAX_INPUT {
            return Err(LogicalError::invalid(format!(
                "role_id is longer than maximum of {MAX_INPUT} bytes"
            )));
        }
        let index = self.store.role_id_key(c.storage, &role.role_id).await?;
        if let Some(owner) = get_json::<RoleIdEntry>(c.storage, &index).await? {
            if owner.name != name {
                return Err(LogicalError::invalid("role_id already in use"));
            }
        }
        let mut ops = vec![
            json_op(&role_key(name), role)?,
            json_op(
                &index,
                &RoleIdEntry {
                    name: name.to_string(),
                },
            )?,
        ];
        if !previous_role_id.is_empty() && previous_role_id != role.role_id {
            ops.push(StorageOp::Delete(
                self.store.role_id_key(c.storage, previous_role_id).await?,
            ));
        }
        c.storage.batch(ops).await?;
        Ok(())
    }

    async fn write_role(&self, c: Ctx<'_>) -> HandlerResult {
        let name = name_of(&c)?;
        let _g = self.store.role_write(&name).await;
        let existing = self.store.role(c.storage, &name).await?;
        let creating = existing.is_none();
        let mut role = existing.unwrap_or_default();
        let previous = role.role_id.clone();
        role.apply(&c.data, creating)?;
        match c.data.get_str("role_id")? {
            Some(id) => role.role_id = id,
            None if creating => role.role_id = uuid::Uuid::new_v4().to_string(),
            None => {}
        }
        if creating {
            role.hmac_key = random_hex(32);
        }
        role.check_constraints()?;
        let max = self.system.max_lease_ttl();
        if role.token.token_period > max {
            return Err(LogicalError::invalid(format!(
                "period of {}s is greater than the backend's maximum lease TTL of {max}s",
                role.token.token_period
            )));
        }
        self.save_role(&c, &name, &role, &previous).await?;
        let mut resp = Response::default();
        if role.token.token_max_ttl > max {
            resp.warnings.push(
                "token_max_ttl is greater than the backend mount's maximum TTL value; issued tokens' max TTL value will be truncated".into(),
            );
        }
        Ok((!resp.warnings.is_empty()).then_some(resp))
    }

    async fn read_role(&self, c: Ctx<'_>) -> HandlerResult {
        let name = name_of(&c)?;
        Ok(self
            .store
            .role(c.storage, &name)
            .await?
            .map(|r| Response::data(r.to_json())))
    }

    async fn delete_role(&self, c: Ctx<'_>) -> HandlerResult {
        let name = name_of(&c)?;
        let _g = self.store.role_write(&name).await;
        let Some(role) = self.store.role(c.storage, &name).await? else {
            return Ok(None);
        };
        // Its secret ids and their accessors go first, in bounded batches,
        // then the role-id index and the role.
        let folder = role_folder(&role, &name)?;
        let mut ops = Vec::new();
        for k in c.storage.list(&folder).await? {
            let key = format!("{folder}{k}");
            if let Some(e) = get_json::<SecretIdEntry>(c.storage, &key).await? {
                ops.push(StorageOp::Delete(
                    self.store
                        .accessor_key(c.storage, &e.secret_id_accessor)
                        .await?,
                ));
            }
            ops.push(StorageOp::Delete(key));
            if ops.len() >= 512 {
                c.storage.batch(std::mem::take(&mut ops)).await?;
            }
        }
        ops.push(StorageOp::Delete(
            self.store.role_id_key(c.storage, &role.role_id).await?,
        ));
        ops.push(StorageOp::Delete(role_key(&name)));
        c.storage.batch(ops).await?;
        Ok(None)
    }

    async fn read_property(&self, c: Ctx<'_>) -> HandlerResult {
        let name = name_of(&c)?;
        let seg = segment(&c);
        let Some(role) = self.store.role(c.storage, &name).await? else {
            return Ok(None);
        };
        let all = role.to_json();
        let names = PROPERTIES
            .iter()
            .find(|(s, _)| *s == seg)
            .map(|(_, n)| *n)
            .unwrap_or_default();
        let data: Map<String, Value> = names
            .iter()
            .filter_map(|n| all.get(*n).map(|v| (n.to_string(), v.clone())))
            .collect();
        Ok(Some(Response::data(data)))
    }

    async fn write_property(&self, c: Ctx<'_>) -> HandlerResult {
        let seg = segment(&c);
        let names = PROPERTIES
            .iter()
            .find(|(s, _)| *s == seg)
            .map(|(_, n)| *n)
            .unwrap_or_default();
        if !names.iter().any(|n| c.data.is_set(n)) {
            return Err(LogicalError::invalid(format!(
                "missing {}",
                names.first().copied().unwrap_or_default()
            )));
        }
        self.change_property(c, None).await
    }

    async fn reset_property(&self, c: Ctx<'_>) -> HandlerResult {
        let seg = segment(&c);
        let reset = match seg {
            "policies" => json!({"token_policies": []}),
            "secret-id-num-uses" => json!({"secret_id_num_uses": 0}),
            "secret-id-ttl" => json!({"secret_id_ttl": 0}),
            "token-ttl" => json!({"token_ttl": 0}),
            "token-max-ttl" => json!({"token_max_ttl": 0}),
            "token-num-uses" => json!({"token_num_uses": 0}),
            "bind-secret-id" => json!({"bind_secret_id": true}),
            "secret-id-bound-cidrs" => json!({"secret_id_bound_cidrs": []}),
            "token-bound-cidrs" => json!({"token_bound_cidrs": []}),
            "period" => json!({"token_period": 0}),
            _ => return Err(LogicalError::UnsupportedOperation),
        };
        self.change_property(c, Some(reset)).await
    }

    /// Applies a property write (the request's fields, or `reset`) to an
    /// existing role, with the same checks as a role write.
    async fn change_property(&self, c: Ctx<'_>, reset: Option<Value>) -> HandlerResult {
        let name = name_of(&c)?;
        let _g = self.store.role_write(&name).await;
        let mut role = self
            .store
            .role(c.storage, &name)
            .await?
            .ok_or_else(|| no_role(&name))?;
        let previous = role.role_id.clone();
        // The property path declares only its own fields; the role's
        // update reads them all (the others are absent).
        let raw = match reset {
            Some(Value::Object(m)) => m,
            _ => c.data.raw().clone(),
        };
        role.apply(&FieldData::new(raw, &role_fields()), false)?;
        role.check_constraints()?;
        self.save_role(&c, &name, &role, &previous).await?;
        Ok(None)
    }

    async fn read_role_id(&self, c: Ctx<'_>) -> HandlerResult {
        let name = name_of(&c)?;
        Ok(self
            .store
            .role(c.storage, &name)
            .await?
            .map(|r| Response::data(Map::from_iter([("role_id".into(), json!(r.role_id))]))))
    }

    async fn write_role_id(&self, c: Ctx<'_>) -> HandlerResult {
        let name = name_of(&c)?;
        let id = c.data.str_or("role_id", "")?;
        if id.trim().is_empty() {
            return Err(LogicalError::invalid("missing role_id"));
        }
        let _g = self.store.role_write(&name).await;
        let mut role = self
            .store
            .role(c.storage, &name)
            .await?
            .ok_or_else(|| no_role(&name))?;
        let previous = std::mem::replace(&mut role.role_id, id);
        self.save_role(&c, &name, &role, &previous).await?;
        Ok(None)
    }
}

// Used by the other path groups.
impl AppRole {
    /// The role, or the 404 a missing role gets on its sub-paths.
    pub(crate) async fn existing_role(&self, c: &Ctx<'_>) -> Result<(String, Role), LogicalError> {
        let name = name_of(c)?;
        let role = self
            .store
            .role(c.storage, &name)
            .await?
            .ok_or_else(|| no_role(&name))?;
        Ok((name, role))
    }

    pub(crate) async fn accessor_entry(
        &self,
        c: &Ctx<'_>,
        accessor: &str,
    ) -> Result<Option<(String, AccessorEntry)>, LogicalError> {
        let key = self.store.accessor_key(c.storage, accessor).await?;
        Ok(get_json::<AccessorEntry>(c.storage, &key)
            .await?
            .map(|e| (key, e)))
    }
}
