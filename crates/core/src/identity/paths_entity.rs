//! `identity/entity` (create, or update by name), `entity/id/:id`,
//! `entity/name/:name` (read, update, delete), their lists,
//! `entity/batch-delete`; `identity/entity-alias` and
//! `entity-alias/id/:id`, as Vault serves them.
//!
//! Creating answers `{id, name, aliases}` (or `{id, canonical_id}` for an
//! alias); updating an existing record answers 204, as Vault does.
//! Deleting an entity deletes its aliases and takes it out of every group.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::Utc;
use serde_json::{json, Map, Value};

use arca_sdk::{Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, Response};

use super::{
    add_mount, alias_json, clean_policies, generated_name, metadata, time, Alias, Changes, Entity,
    IdentityBackend, Index, MountInfo,
};

/// An entity as reads show it.
pub(crate) fn entity_json(ix: &Index, e: &Entity, mounts: &HashMap<String, MountInfo>) -> Value {
    let direct = ix.direct_groups(&e.id);
    let inherited: Vec<String> = ix
        .ancestors(&direct)
        .into_iter()
        .filter(|g| !direct.contains(g))
        .collect();
    let all: Vec<String> = direct.iter().chain(inherited.iter()).cloned().collect();
    json!({
        "id": e.id,
        "name": e.name,
        "metadata": e.metadata,
        "policies": e.policies,
        "disabled": e.disabled,
        "namespace_id": "root",
        "creation_time": time(&e.creation_time),
        "last_update_time": time(&e.last_update_time),
        "merged_entity_ids": null,
        "aliases": e.aliases.iter().map(|a| alias_json(a, mounts, true)).collect::<Vec<_>>(),
        "direct_group_ids": direct,
        "inherited_group_ids": inherited,
        "group_ids": all,
    })
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

impl IdentityBackend {
    /// Every entity write: `id` (path or body) picks the entity to update,
    /// else `name` (an existing name is updated, a new one created).
    async fn write_entity(&self, c: Ctx<'_>) -> HandlerResult {
        let id = c.data.str_or("id", "")?;
        let name = c.data.str_or("name", "")?;
        let meta = if c.data.is_set("metadata") {
            Some(metadata(c.data.get_map("metadata")?.unwrap_or_default())?)
        } else {
            None
        };
        let policies = if c.data.is_set("policies") {
            Some(clean_policies(
                c.data.get_list("policies")?.unwrap_or_default(),
            )?)
        } else {
            None
        };
        let disabled = if c.data.is_set("disabled") {
            c.data.get_bool("disabled")?
        } else {
            None
        };
        self.store()?
            .change(|ix| {
                let mut existing = None;
                if !id.is_empty() {
                    existing = Some(
                        ix.entities
                            .get(&id)
                            .ok_or_else(|| LogicalError::invalid("entity not found from id"))?,
                    );
                }
                if !name.is_empty() {
                    if let Some(other) = ix.entity_by_name(&name) {
                        match existing {
                            None => existing = Some(other),
                            Some(e) if e.id == other.id => {}
                            Some(_) => {
                                return Err(LogicalError::invalid("entity name is already in use"))
                            }
                        }
                    }
                }
                let now = Utc::now();
                let create = existing.is_none();
                let mut e = match existing {
                    Some(e) => (**e).clone(),
                    None => Entity {
                        id: uuid::Uuid::new_v4().to_string(),
                        name: generated_name("entity", |n| ix.entity_by_name(n).is_some()),
                        creation_time: now,
                        ..Default::default()
                    },
                };
                if !name.is_empty() {
                    e.name = name.clone();
                }
                if let Some(m) = &meta {
                    e.metadata = (!m.is_empty()).then(|| m.clone());
                }
                if let Some(p) = &policies {
                    e.policies = p.clone();
                }
                if let Some(d) = disabled {
                    e.disabled = d;
                }
                e.last_update_time = now;
                let answer = create.then(|| {
                    let aliases: Vec<&str> = e.aliases.iter().map(|a| a.id.as_str()).collect();
                    Response::data(obj(json!({
                        "id": e.id,
                        "name": e.name,
                        "aliases": if aliases.is_empty() { Value::Null } else { json!(aliases) },
                    })))
                });
                Ok((
                    Changes {
                        entities: vec![e],
                        ..Default::default()
                    },
                    answer,
                ))
            })
            .await
    }

    async fn read_entity(&self, c: Ctx<'_>) -> HandlerResult {
        let id = c.data.str_or("id", "")?;
        let name = c.data.str_or("name", "")?;
        let mounts = self.mounts()?;
        self.store()?
            .read(|ix| {
                let e = if !id.is_empty() {
                    ix.entities.get(&id)
                } else {
                    ix.entity_by_name(&name)
                };
                e.map(|e| Response::data(obj(entity_json(ix, e, &mounts))))
            })
            .await
    }

    async fn delete_entity(&self, c: Ctx<'_>) -> HandlerResult {
        let id = c.data.str_or("id", "")?;
        let name = c.data.str_or("name", "")?;
        if id.is_empty() && name.is_empty() {
            return Err(LogicalError::invalid("missing entity id"));
        }
        self.store()?
            .change(|ix| {
                let e = if !id.is_empty() {
                    ix.entities.get(&id)
                } else {
                    ix.entity_by_name(&name)
                };
                let ids: Vec<String> = e.map(|e| e.id.clone()).into_iter().collect();
                Ok((delete_entities(ix, &ids), None))
            })
            .await
    }

    async fn batch_delete(&self, c: Ctx<'_>) -> HandlerResult {
        let ids = c.data.get_list("entity_ids")?.unwrap_or_default();
        if ids.is_empty() {
            return Err(LogicalError::invalid("missing entity ids to delete"));
        }
        self.store()?
            .change(|ix| {
                let ids: Vec<String> = ids
                    .into_iter()
                    .filter(|id| ix.entities.contains_key(id))
                    .collect();
                Ok((delete_entities(ix, &ids), None))
            })
            .await
    }

    async fn list_entities(&self, c: Ctx<'_>, by_name: bool) -> HandlerResult {
        let _ = c;
        let mounts = self.mounts()?;
        self.store()?
            .read(|ix| {
                let mut es: Vec<&Arc<Entity>> = ix.entities.values().collect();
                if es.is_empty() {
                    return None;
                }
                if by_name {
                    let mut keys: Vec<String> = es.iter().map(|e| e.name.clone()).collect();
                    keys.sort();
                    return Some(Response::list(keys));
                }
                es.sort_by(|a, b| a.id.cmp(&b.id));
                let mut info = Map::new();
                for e in &es {
                    let mut m = json!({ "name": e.name });
                    if !e.aliases.is_empty() {
                        m["aliases"] = json!(e
                            .aliases
                            .iter()
                            .map(|a| {
                                let mut x = json!({
                                    "id": a.id,
                                    "name": a.name,
                                    "mount_accessor": a.mount_accessor,
                                });
                                add_mount(&mut x, &mounts, &a.mount_accessor);
                                x
                            })
                            .collect::<Vec<_>>());
                    }
                    info.insert(e.id.clone(), m);
                }
                Some(Response::data(obj(json!({
                    "keys": es.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
                    "key_info": info,
                }))))
            })
            .await
            .and_then(|r| r.map(Some).ok_or(LogicalError::NotFound))
    }

    /// `entity-alias` writes: by `id`, or by (mount_accessor, name), which
    /// updates the alias if it exists.
    async fn write_alias(&self, c: Ctx<'_>) -> HandlerResult {
        let id = c.data.str_or("id", "")?;
        let name = c.data.str_or("name", "")?;
        let accessor = c.data.str_or("mount_accessor", "")?;
        let mut canonical = c.data.str_or("canonical_id", "")?;
        if canonical.is_empty() {
            canonical = c.data.str_or("entity_id", "")?;
        }
        let custom = if c.data.is_set("custom_metadata") {
            Some(metadata(
                c.data.get_map("custom_metadata")?.unwrap_or_default(),
            )?)
        } else {
            None
        };
        let mounts = self.mounts()?;
        self.store()?
            .change(|ix| {
                let now = Utc::now();
                // The alias this write updates, if any.
                let current: Option<(Arc<Entity>, Alias)> = if !id.is_empty() {
                    let e = ix
                        .entity_by_alias_id(&id)
                        .ok_or_else(|| LogicalError::invalid("invalid alias ID provided"))?;
                    let a = e.aliases.iter().find(|a| a.id == id).cloned();
                    Some((e.clone(), a.ok_or_else(|| LogicalError::invalid("invalid alias ID provided"))?))
                } else {
                    if name.is_empty() || accessor.is_empty() {
                        return Err(LogicalError::invalid(
                            "'id' or 'mount_accessor' and 'name' must be provided",
                        ));
                    }
                    ix.entity_by_alias(&accessor, &name).map(|e| {
                        let a = e
                            .aliases
                            .iter()
                            .find(|a| {
                                a.mount_accessor == accessor
                                    && a.name.to_lowercase() == name.to_lowercase()
                            })
                            .cloned()
                            .unwrap_or_default();
                        (e.clone(), a)
                    })
                };
                let new_accessor = if accessor.is_empty() {
                    current.as_ref().map(|(_, a)| a.mount_accessor.clone()).unwrap_or_default()
                } else {
                    accessor.clone()
                };
                let mount = mounts.get(&new_accessor).ok_or_else(|| {
                    LogicalError::invalid(format!("invalid mount accessor {new_accessor:?}"))
                })?;
                let mut changes = Changes::default();
                let Some((owner, old)) = current else {
                    // A new alias, on the given entity or a new one.
                    let mut e = if canonical.is_empty() {
                        Entity {
                            id: uuid::Uuid::new_v4().to_string(),
                            name: generated_name("entity", |n| ix.entity_by_name(n).is_some()),
                            creation_time: now,
                            last_update_time: now,
                            ..Default::default()
                        }
                    } else {
                        (**ix
                            .entities
                            .get(&canonical)
                            .ok_or_else(|| LogicalError::invalid("invalid canonical ID"))?)
                        .clone()
                    };
                    if e.aliases.iter().any(|a| a.mount_accessor == new_accessor) {
                        return Err(LogicalError::invalid(
                            "Alias already exists for requested entity and mount accessor",
                        ));
                    }
                    let a = Alias {
                        id: uuid::Uuid::new_v4().to_string(),
                        canonical_id: e.id.clone(),
                        mount_accessor: new_accessor.clone(),
                        name: name.clone(),
                        metadata: None,
                        custom_metadata: Some(custom.clone().unwrap_or_default()),
                        local: mount.local,
                        creation_time: now,
                        last_update_time: now,
                    };
                    let answer = json!({ "id": a.id, "canonical_id": e.id });
                    e.aliases.push(a);
                    e.last_update_time = now;
                    changes.entities.push(e);
                    return Ok((changes, Some(Response::data(obj(answer)))));
                };
                // An update (in place, or a move to another entity).
                let new_name = if name.is_empty() { old.name.clone() } else { name.clone() };
                let target_id = if canonical.is_empty() { owner.id.clone() } else { canonical.clone() };
                let moved = target_id != owner.id;
                let renamed = new_name != old.name || new_accessor != old.mount_accessor;
                let custom_changed = custom.as_ref().is_some_and(|m| old.custom_metadata.as_ref() != Some(m));
                if !moved && !renamed && !custom_changed {
                    return Ok((changes, None));
                }
                if renamed {
                    if let Some(other) = ix.entity_by_alias(&new_accessor, &new_name) {
                        let same = other.aliases.iter().any(|a| a.id == old.id);
                        if !same {
                            return Err(LogicalError::invalid(
                                "alias with combination of mount accessor and name already exists",
                            ));
                        }
                    }
                }
                let mut alias = old.clone();
                alias.name = new_name;
                alias.mount_accessor = new_accessor.clone();
                if let Some(m) = &custom {
                    alias.custom_metadata = Some(m.clone());
                }
                alias.last_update_time = now;
                let mut from = (*owner).clone();
                from.aliases.retain(|a| a.id != old.id);
                if moved {
                    if old.local {
                        return Err(LogicalError::invalid(
                            "local aliases can't be moved between entities",
                        ));
                    }
                    let mut to = (**ix.entities.get(&target_id).ok_or_else(|| {
                        LogicalError::invalid("given 'canonical_id' is not associated with an entity")
                    })?)
                    .clone();
                    if to.aliases.iter().any(|a| a.mount_accessor == new_accessor) {
                        return Err(LogicalError::invalid(
                            "Alias cannot be updated as the given entity already has an alias for this mount ",
                        ));
                    }
                    alias.canonical_id = to.id.clone();
                    to.aliases.push(alias.clone());
                    to.last_update_time = now;
                    from.last_update_time = now;
                    changes.entities.push(from);
                    changes.entities.push(to);
                } else {
                    if from.aliases.iter().any(|a| a.mount_accessor == new_accessor) {
                        return Err(LogicalError::invalid(
                            "Alias cannot be updated as the entity already has an alias for the given 'mount_accessor' ",
                        ));
                    }
                    from.aliases.push(alias.clone());
                    from.last_update_time = now;
                    changes.entities.push(from);
                }
                let answer = json!({ "id": alias.id, "canonical_id": alias.canonical_id });
                Ok((changes, Some(Response::data(obj(answer)))))
            })
            .await
    }

    async fn read_alias(&self, c: Ctx<'_>) -> HandlerResult {
        let id = c.data.str_or("id", "")?;
        let mounts = self.mounts()?;
        self.store()?
            .read(|ix| {
                let e = ix.entity_by_alias_id(&id)?;
                let a = e.aliases.iter().find(|a| a.id == id)?;
                let mut v = alias_json(a, &mounts, true);
                v["namespace_id"] = json!("root");
                Some(Response::data(obj(v)))
            })
            .await
    }

    async fn delete_alias(&self, c: Ctx<'_>) -> HandlerResult {
        let id = c.data.str_or("id", "")?;
        self.store()?
            .change(|ix| {
                let mut changes = Changes::default();
                if let Some(e) = ix.entity_by_alias_id(&id) {
                    let mut e = (**e).clone();
                    e.aliases.retain(|a| a.id != id);
                    e.last_update_time = Utc::now();
                    changes.entities.push(e);
                }
                Ok((changes, None))
            })
            .await
    }

    async fn list_aliases(&self, _c: Ctx<'_>) -> HandlerResult {
        let mounts = self.mounts()?;
        self.store()?
            .read(|ix| {
                let mut all: Vec<&Alias> = ix
                    .entities
                    .values()
                    .flat_map(|e| e.aliases.iter())
                    .collect();
                if all.is_empty() {
                    return None;
                }
                all.sort_by(|a, b| a.id.cmp(&b.id));
                let mut info = Map::new();
                for a in &all {
                    let mut v = json!({
                        "name": a.name,
                        "canonical_id": a.canonical_id,
                        "mount_accessor": a.mount_accessor,
                        "metadata": a.metadata,
                        "custom_metadata": a.custom_metadata,
                        "local": a.local,
                    });
                    add_mount(&mut v, &mounts, &a.mount_accessor);
                    info.insert(a.id.clone(), v);
                }
                Some(Response::data(obj(json!({
                    "keys": all.iter().map(|a| a.id.clone()).collect::<Vec<_>>(),
                    "key_info": info,
                }))))
            })
            .await
            .and_then(|r| r.map(Some).ok_or(LogicalError::NotFound))
    }
}

/// Deleting entities: their records (with their aliases), and their
/// membership in every group.
fn delete_entities(ix: &Index, ids: &[String]) -> Changes {
    let mut changes = Changes::default();
    let mut groups: BTreeMap<String, super::Group> = BTreeMap::new();
    for id in ids {
        for gid in ix.direct_groups(id) {
            if let Some(g) = ix.groups.get(&gid) {
                let g = groups.entry(gid).or_insert_with(|| (**g).clone());
                if let Some(m) = g.member_entity_ids.as_mut() {
                    m.retain(|m| m != id);
                }
            }
        }
        changes.deleted_entities.push(id.clone());
    }
    for (_, mut g) in groups {
        g.modify_index += 1;
        g.last_update_time = Utc::now();
        changes.groups.push(g);
    }
    changes
}

fn entity_fields(p: Path<IdentityBackend>) -> Path<IdentityBackend> {
    use FieldType::*;
    p.field(Field::new("id", String, "ID of the entity."))
        .field(Field::new("name", String, "Name of the entity."))
        .field(Field::new(
            "metadata",
            StringMap,
            "Metadata of the entity (key=value pairs).",
        ))
        .field(Field::new(
            "policies",
            CommaStringSlice,
            "Policies the entity's tokens get.",
        ))
        .field(Field::new(
            "disabled",
            Bool,
            "A disabled entity's tokens are refused (not revoked).",
        ))
}

fn alias_fields(p: Path<IdentityBackend>) -> Path<IdentityBackend> {
    use FieldType::*;
    p.field(Field::new("id", String, "ID of the alias."))
        .field(Field::new(
            "name",
            String,
            "Name of the alias: the client's name at the auth mount.",
        ))
        .field(Field::new(
            "mount_accessor",
            String,
            "Accessor of the mount the alias belongs to.",
        ))
        .field(Field::new(
            "canonical_id",
            String,
            "ID of the entity the alias belongs to.",
        ))
        .field(Field::new("entity_id", String, "Old name of canonical_id."))
        .field(Field::new(
            "custom_metadata",
            StringMap,
            "Metadata set by operators (logins never change it).",
        ))
}

pub(super) fn paths() -> Vec<Path<IdentityBackend>> {
    vec![
        entity_fields(Path::new("entity"))
            .op(Operation::Update, |b: &IdentityBackend, c| {
                Box::pin(b.write_entity(c))
            })
            .help("Create an entity, or update the one with this id or name."),
        entity_fields(Path::new("entity/id/(?P<id>[^/]+)"))
            .op(Operation::Update, |b: &IdentityBackend, c| {
                Box::pin(b.write_entity(c))
            })
            .op(Operation::Read, |b: &IdentityBackend, c| {
                Box::pin(b.read_entity(c))
            })
            .op(Operation::Delete, |b: &IdentityBackend, c| {
                Box::pin(b.delete_entity(c))
            })
            .help("Read, update or delete an entity by its id."),
        entity_fields(Path::new("entity/name/(?P<name>[^/]+)"))
            .op(Operation::Update, |b: &IdentityBackend, c| {
                Box::pin(b.write_entity(c))
            })
            .op(Operation::Read, |b: &IdentityBackend, c| {
                Box::pin(b.read_entity(c))
            })
            .op(Operation::Delete, |b: &IdentityBackend, c| {
                Box::pin(b.delete_entity(c))
            })
            .help("Create, read, update or delete an entity by its name."),
        Path::new("entity/id/?")
            .op(Operation::List, |b: &IdentityBackend, c| {
                Box::pin(b.list_entities(c, false))
            })
            .help("List entities by id."),
        Path::new("entity/name/?")
            .op(Operation::List, |b: &IdentityBackend, c| {
                Box::pin(b.list_entities(c, true))
            })
            .help("List entities by name."),
        Path::new("entity/batch-delete")
            .field(Field::new(
                "entity_ids",
                FieldType::CommaStringSlice,
                "IDs of the entities to delete.",
            ))
            .op(Operation::Update, |b: &IdentityBackend, c| {
                Box::pin(b.batch_delete(c))
            })
            .help("Delete several entities."),
        alias_fields(Path::new("entity-alias"))
            .op(Operation::Update, |b: &IdentityBackend, c| {
                Box::pin(b.write_alias(c))
            })
            .help("Create an entity alias, or update the one with this id or mount and name."),
        alias_fields(Path::new("entity-alias/id/(?P<id>[^/]+)"))
            .op(Operation::Update, |b: &IdentityBackend, c| {
                Box::pin(b.write_alias(c))
            })
            .op(Operation::Read, |b: &IdentityBackend, c| {
                Box::pin(b.read_alias(c))
            })
            .op(Operation::Delete, |b: &IdentityBackend, c| {
                Box::pin(b.delete_alias(c))
            })
            .help("Read, update or delete an entity alias."),
        Path::new("entity-alias/id/?")
            .op(Operation::List, |b: &IdentityBackend, c| {
                Box::pin(b.list_aliases(c))
            })
            .help("List entity aliases by id."),
    ]
}
