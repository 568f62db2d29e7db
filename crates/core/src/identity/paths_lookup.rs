//! `identity/lookup/entity` and `identity/lookup/group`: find one record by
//! id, name, alias id, or alias name and mount accessor (exactly one of
//! them). Lookups are writes (POST), as in Vault: no match answers 204.

use serde_json::{Map, Value};

use arca_sdk::{Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, Response};

use super::paths_entity::entity_json;
use super::paths_group::group_json;
use super::IdentityBackend;

enum Key {
    Id(String),
    Name(String),
    AliasId(String),
    Alias(String, String),
}

fn key(c: &Ctx<'_>) -> Result<Key, LogicalError> {
    let get = |n: &str| c.data.str_or(n, "");
    let (id, name, alias_id, alias_name, accessor) = (
        get("id")?,
        get("name")?,
        get("alias_id")?,
        get("alias_name")?,
        get("alias_mount_accessor")?,
    );
    let given = [
        !id.is_empty(),
        !name.is_empty(),
        !alias_id.is_empty(),
        !alias_name.is_empty() || !accessor.is_empty(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if given == 0 {
        return Err(LogicalError::invalid("query parameter not supplied"));
    }
    if given > 1 {
        return Err(LogicalError::invalid(
            "query parameter conflict; please supply distinct set of query parameters",
        ));
    }
    Ok(if !id.is_empty() {
        Key::Id(id)
    } else if !name.is_empty() {
        Key::Name(name)
    } else if !alias_id.is_empty() {
        Key::AliasId(alias_id)
    } else {
        if alias_name.is_empty() || accessor.is_empty() {
            return Err(LogicalError::invalid(
                "both 'alias_name' and 'alias_mount_accessor' needs to be set",
            ));
        }
        Key::Alias(alias_name, accessor)
    })
}

fn data(v: Value) -> Option<Response> {
    match v {
        Value::Object(m) => Some(Response::data(m)),
        _ => Some(Response::data(Map::new())),
    }
}

impl IdentityBackend {
    async fn lookup_entity(&self, c: Ctx<'_>) -> HandlerResult {
        let k = key(&c)?;
        let mounts = self.mounts()?;
        self.store()?
            .read(|ix| {
                let e = match &k {
                    Key::Id(id) => ix.entities.get(id),
                    Key::Name(n) => ix.entity_by_name(n),
                    Key::AliasId(a) => ix.entity_by_alias_id(a),
                    Key::Alias(n, acc) => ix.entity_by_alias(acc, n),
                }?;
                data(entity_json(ix, e, &mounts))
            })
            .await
    }

    async fn lookup_group(&self, c: Ctx<'_>) -> HandlerResult {
        let k = key(&c)?;
        let mounts = self.mounts()?;
        self.store()?
            .read(|ix| {
                let g = match &k {
                    Key::Id(id) => ix.groups.get(id),
                    Key::Name(n) => ix.group_by_name(n),
                    Key::AliasId(a) => ix.group_by_alias_id(a),
                    Key::Alias(n, acc) => ix.group_by_alias(acc, n),
                }?;
                data(group_json(ix, g, &mounts))
            })
            .await
    }
}

fn lookup_fields(p: Path<IdentityBackend>) -> Path<IdentityBackend> {
    use FieldType::*;
    p.field(Field::new("id", String, "ID to look up."))
        .field(Field::new("name", String, "Name to look up."))
        .field(Field::new("alias_id", String, "ID of an alias to look up."))
        .field(Field::new(
            "alias_name",
            String,
            "Name of an alias (with alias_mount_accessor).",
        ))
        .field(Field::new(
            "alias_mount_accessor",
            String,
            "Accessor of the alias' mount (with alias_name).",
        ))
}

pub(super) fn paths() -> Vec<Path<IdentityBackend>> {
    vec![
        lookup_fields(Path::new("lookup/entity"))
            .op(Operation::Update, |b: &IdentityBackend, c| {
                Box::pin(b.lookup_entity(c))
            })
            .help("Look up an entity by id, name, alias id, or alias name and mount."),
        lookup_fields(Path::new("lookup/group"))
            .op(Operation::Update, |b: &IdentityBackend, c| {
                Box::pin(b.lookup_group(c))
            })
            .help("Look up a group by id, name, alias id, or alias name and mount."),
    ]
}
