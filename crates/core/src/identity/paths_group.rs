//! `identity/group` (create, or update by id or name), `group/id/:id`,
//! `group/name/:name`, their lists; `identity/group-alias` and
//! `group-alias/id/:id`, as Vault serves them.
//!
//! Internal groups list their members (entities, and groups: a member
//! group names this one in its `parent_group_ids`); external groups get
//! their members from logins, through their one alias on an auth mount.
//! Membership never forms a cycle.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use chrono::Utc;
use serde_json::{json, Map, Value};

use arca_sdk::{Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, Response};

use super::{
    add_mount, alias_json, clean_policies, generated_name, metadata, time, Alias, Changes, Group,
    IdentityBackend, Index, MountInfo,
};

/// A group as reads show it.
pub(crate) fn group_json(ix: &Index, g: &Group, mounts: &HashMap<String, MountInfo>) -> Value {
    let members = ix.member_groups(&g.id);
    json!({
        "id": g.id,
        "name": g.name,
        "type": g.kind,
        "policies": g.policies,
        "metadata": g.metadata,
        "member_entity_ids": g.member_entity_ids,
        "member_group_ids": if members.is_empty() { Value::Null } else { json!(members) },
        "parent_group_ids": g.parent_group_ids,
        "creation_time": time(&g.creation_time),
        "last_update_time": time(&g.last_update_time),
        "modify_index": g.modify_index,
        "namespace_id": "root",
        "alias": g.alias.as_ref().map(|a| alias_json(a, mounts, false)).unwrap_or_else(|| json!({})),
    })
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

impl IdentityBackend {
    async fn write_group(&self, c: Ctx<'_>) -> HandlerResult {
        let id = c.data.str_or("id", "")?;
        let name = c.data.str_or("name", "")?;
        let kind = c.data.str_or("type", "")?.to_lowercase();
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
        let member_entities = if c.data.is_set("member_entity_ids") {
            let mut v = c.data.get_list("member_entity_ids")?.unwrap_or_default();
            v.retain(|s| !s.is_empty());
            v.sort();
            v.dedup();
            Some(v)
        } else {
            None
        };
        let member_groups = if c.data.is_set("member_group_ids") {
            let mut v = c.data.get_list("member_group_ids")?.unwrap_or_default();
            v.retain(|s| !s.is_empty());
            v.sort();
            v.dedup();
            Some(v)
        } else {
            None
        };
        self.store()?
            .change(|ix| {
                let mut existing = None;
                if !id.is_empty() {
                    existing = Some(
                        ix.groups
                            .get(&id)
                            .ok_or_else(|| LogicalError::invalid("invalid group ID"))?,
                    );
                }
                if !name.is_empty() {
                    if let Some(other) = ix.group_by_name(&name) {
                        match existing {
                            None => existing = Some(other),
                            Some(g) if g.id == other.id => {}
                            Some(_) => {
                                return Err(LogicalError::invalid("group name is already in use"))
                            }
                        }
                    }
                }
                let now = Utc::now();
                let create = existing.is_none();
                let mut g = match existing {
                    Some(g) => (**g).clone(),
                    None => Group {
                        id: uuid::Uuid::new_v4().to_string(),
                        name: generated_name("group", |n| ix.group_by_name(n).is_some()),
                        kind: "internal".into(),
                        creation_time: now,
                        ..Default::default()
                    },
                };
                if !kind.is_empty() {
                    if kind != "internal" && kind != "external" {
                        return Err(LogicalError::invalid(format!(
                            "invalid group type {kind:?}"
                        )));
                    }
                    if create {
                        g.kind = kind.clone();
                    } else if g.kind != kind {
                        return Err(LogicalError::invalid("group type cannot be changed"));
                    }
                }
                if !name.is_empty() {
                    g.name = name.clone();
                }
                if let Some(m) = &meta {
                    g.metadata = (!m.is_empty()).then(|| m.clone());
                }
                if let Some(p) = &policies {
                    g.policies = Some(p.clone());
                }
                if let Some(m) = &member_entities {
                    if g.external() {
                        return Err(LogicalError::invalid(
                            "member entities can't be set manually for external groups",
                        ));
                    }
                    for e in m {
                        if !ix.entities.contains_key(e) {
                            return Err(LogicalError::invalid(format!("invalid entity ID {e:?}")));
                        }
                    }
                    g.member_entity_ids = Some(m.clone());
                }
                let mut changes = Changes::default();
                if let Some(m) = &member_groups {
                    if g.external() {
                        return Err(LogicalError::invalid(
                            "member groups can't be set for external groups",
                        ));
                    }
                    let ancestors = ix.ancestors(std::slice::from_ref(&g.id));
                    for child in m {
                        if *child == g.id {
                            return Err(LogicalError::invalid(format!(
                                "member group ID {child:?} is same as the ID of the group"
                            )));
                        }
                        if !ix.groups.contains_key(child) {
                            return Err(LogicalError::invalid(format!(
                                "invalid member group ID {child:?}"
                            )));
                        }
                        if ancestors.contains(child) {
                            return Err(LogicalError::invalid(format!(
                                "cyclic relationship detected for member group ID {child:?}"
                            )));
                        }
                    }
                    let old: BTreeSet<String> = ix.member_groups(&g.id).into_iter().collect();
                    let new: BTreeSet<String> = m.iter().cloned().collect();
                    for added in new.difference(&old) {
                        let mut c = (**ix.groups.get(added).expect("checked above")).clone();
                        let mut p = c.parent_group_ids.take().unwrap_or_default();
                        p.push(g.id.clone());
                        p.sort();
                        p.dedup();
                        c.parent_group_ids = Some(p);
                        c.modify_index += 1;
                        c.last_update_time = now;
                        changes.groups.push(c);
                    }
                    for removed in old.difference(&new) {
                        if let Some(c) = ix.groups.get(removed) {
                            let mut c = (**c).clone();
                            if let Some(p) = c.parent_group_ids.as_mut() {
                                p.retain(|p| *p != g.id);
                            }
                            c.modify_index += 1;
                            c.last_update_time = now;
                            changes.groups.push(c);
                        }
                    }
                }
                g.modify_index += 1;
                g.last_update_time = now;
                let answer =
                    create.then(|| Response::data(obj(json!({ "id": g.id, "name": g.name }))));
                changes.groups.push(g);
                Ok((changes, answer))
            })
            .await
    }

    async fn read_group(&self, c: Ctx<'_>) -> HandlerResult {
        let id = c.data.str_or("id", "")?;
        let name = c.data.str_or("name", "")?;
        let mounts = self.mounts()?;
        self.store()?
            .read(|ix| {
                let g = if !id.is_empty() {
                    ix.groups.get(&id)
                } else {
                    ix.group_by_name(&name)
                };
                g.map(|g| Response::data(obj(group_json(ix, g, &mounts))))
            })
            .await
    }

    async fn delete_group(&self, c: Ctx<'_>) -> HandlerResult {
        let id = c.data.str_or("id", "")?;
        let name = c.data.str_or("name", "")?;
        self.store()?
            .change(|ix| {
                let mut changes = Changes::default();
                let g = if !id.is_empty() {
                    ix.groups.get(&id)
                } else {
                    ix.group_by_name(&name)
                };
                if let Some(g) = g {
                    // Its member groups lose it as a parent.
                    for child in ix.member_groups(&g.id) {
                        if let Some(c) = ix.groups.get(&child) {
                            let mut c = (**c).clone();
                            if let Some(p) = c.parent_group_ids.as_mut() {
                                p.retain(|p| *p != g.id);
                            }
                            c.modify_index += 1;
                            c.last_update_time = Utc::now();
                            changes.groups.push(c);
                        }
                    }
                    changes.deleted_groups.push(g.id.clone());
                }
                Ok((changes, None))
            })
            .await
    }

    async fn list_groups(&self, by_name: bool) -> HandlerResult {
        let mounts = self.mounts()?;
        self.store()?
            .read(|ix| {
                let mut gs: Vec<&Arc<Group>> = ix.groups.values().collect();
                if gs.is_empty() {
                    return None;
                }
                if by_name {
                    let mut keys: Vec<String> = gs.iter().map(|g| g.name.clone()).collect();
                    keys.sort();
                    return Some(Response::list(keys));
                }
                gs.sort_by(|a, b| a.id.cmp(&b.id));
                let mut info = Map::new();
                for g in &gs {
                    let mut v = json!({
                        "name": g.name,
                        "num_member_entities": g.members().len(),
                        "num_parent_groups": g.parents().len(),
                    });
                    if let Some(a) = &g.alias {
                        let mut x = json!({
                            "id": a.id,
                            "name": a.name,
                            "mount_accessor": a.mount_accessor,
                        });
                        add_mount(&mut x, &mounts, &a.mount_accessor);
                        v["alias"] = x;
                    }
                    info.insert(g.id.clone(), v);
                }
                Some(Response::data(obj(json!({
                    "keys": gs.iter().map(|g| g.id.clone()).collect::<Vec<_>>(),
                    "key_info": info,
                }))))
            })
            .await
            .and_then(|r| r.map(Some).ok_or(LogicalError::NotFound))
    }

    async fn write_group_alias(&self, c: Ctx<'_>) -> HandlerResult {
        let id = c.data.str_or("id", "")?;
        let name = c.data.str_or("name", "")?;
        let accessor = c.data.str_or("mount_accessor", "")?;
        let canonical = c.data.str_or("canonical_id", "")?;
        if name.is_empty() {
            return Err(LogicalError::invalid("missing alias name"));
        }
        if accessor.is_empty() {
            return Err(LogicalError::invalid("missing mount_accessor"));
        }
        let mounts = self.mounts()?;
        let mount = mounts
            .get(&accessor)
            .ok_or_else(|| LogicalError::invalid(format!("invalid mount accessor {accessor:?}")))?;
        if mount.local {
            return Err(LogicalError::invalid(format!(
                "mount accessor {accessor:?} is a local mount"
            )));
        }
        self.store()?
            .change(|ix| {
                let now = Utc::now();
                let current: Option<&Arc<Group>> = if id.is_empty() {
                    None
                } else {
                    Some(
                        ix.group_by_alias_id(&id)
                            .ok_or_else(|| LogicalError::invalid("invalid group alias ID"))?,
                    )
                };
                if let Some(other) = ix.group_by_alias(&accessor, &name) {
                    let same = current.is_some_and(|c| c.id == other.id);
                    if !same {
                        return Err(LogicalError::invalid(
                            "combination of mount and group alias name is already in use",
                        ));
                    }
                }
                let mut changes = Changes::default();
                let mut target = if !canonical.is_empty() {
                    let g = ix.groups.get(&canonical).ok_or_else(|| {
                        LogicalError::invalid("invalid group ID given in 'canonical_id'")
                    })?;
                    (**g).clone()
                } else if let Some(g) = current {
                    (**g).clone()
                } else {
                    Group {
                        id: uuid::Uuid::new_v4().to_string(),
                        name: generated_name("group", |n| ix.group_by_name(n).is_some()),
                        kind: "external".into(),
                        creation_time: now,
                        ..Default::default()
                    }
                };
                if !target.external() {
                    return Err(LogicalError::invalid(
                        "alias can't be set on an internal group",
                    ));
                }
                let old: Option<Alias> = current.and_then(|g| g.alias.clone());
                if let Some(old) = &old {
                    if old.name == name
                        && old.mount_accessor == accessor
                        && old.canonical_id == target.id
                    {
                        return Ok((changes, None));
                    }
                }
                let alias = Alias {
                    id: old
                        .as_ref()
                        .map(|a| a.id.clone())
                        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
                    canonical_id: target.id.clone(),
                    mount_accessor: accessor.clone(),
                    name: name.clone(),
                    creation_time: old.as_ref().map(|a| a.creation_time).unwrap_or(now),
                    last_update_time: now,
                    ..Default::default()
                };
                // Moved from another group: that one has no alias now.
                if let Some(prev) = current.filter(|g| g.id != target.id) {
                    let mut prev = (**prev).clone();
                    prev.alias = None;
                    prev.modify_index += 1;
                    prev.last_update_time = now;
                    changes.groups.push(prev);
                }
                let answer = json!({ "id": alias.id, "canonical_id": target.id });
                target.alias = Some(alias);
                target.modify_index += 1;
                target.last_update_time = now;
                changes.groups.push(target);
                Ok((changes, Some(Response::data(obj(answer)))))
            })
            .await
    }

    async fn read_group_alias(&self, c: Ctx<'_>) -> HandlerResult {
        let id = c.data.str_or("id", "")?;
        let mounts = self.mounts()?;
        self.store()?
            .read(|ix| {
                let g = ix.group_by_alias_id(&id)?;
                let a = g.alias.as_ref()?;
                let mut v = alias_json(a, &mounts, true);
                v["namespace_id"] = json!("root");
                Some(Response::data(obj(v)))
            })
            .await
    }

    async fn delete_group_alias(&self, c: Ctx<'_>) -> HandlerResult {
        let id = c.data.str_or("id", "")?;
        self.store()?
            .change(|ix| {
                let mut changes = Changes::default();
                if let Some(g) = ix.group_by_alias_id(&id) {
                    let mut g = (**g).clone();
                    g.alias = None;
                    g.modify_index += 1;
                    g.last_update_time = Utc::now();
                    changes.groups.push(g);
                }
                Ok((changes, None))
            })
            .await
    }

    async fn list_group_aliases(&self) -> HandlerResult {
        let mounts = self.mounts()?;
        self.store()?
            .read(|ix| {
                let mut all: Vec<&Alias> = ix
                    .groups
                    .values()
                    .filter_map(|g| g.alias.as_ref())
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
                        "metadata": null,
                        "custom_metadata": null,
                        "local": false,
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

fn group_fields(p: Path<IdentityBackend>) -> Path<IdentityBackend> {
    use FieldType::*;
    p.field(Field::new("id", String, "ID of the group."))
        .field(Field::new("name", String, "Name of the group."))
        .field(
            Field::new(
                "type",
                String,
                "internal (members listed) or external (members from logins).",
            )
            .allowed(&["internal", "external", ""]),
        )
        .field(Field::new(
            "metadata",
            StringMap,
            "Metadata of the group (key=value pairs).",
        ))
        .field(Field::new(
            "policies",
            CommaStringSlice,
            "Policies the members' tokens get.",
        ))
        .field(Field::new(
            "member_entity_ids",
            CommaStringSlice,
            "Entities that are members (internal groups).",
        ))
        .field(Field::new(
            "member_group_ids",
            CommaStringSlice,
            "Groups that are members (internal groups).",
        ))
}

fn group_alias_fields(p: Path<IdentityBackend>) -> Path<IdentityBackend> {
    use FieldType::*;
    p.field(Field::new("id", String, "ID of the group alias."))
        .field(Field::new(
            "name",
            String,
            "The group's name at the auth mount.",
        ))
        .field(Field::new(
            "mount_accessor",
            String,
            "Accessor of the auth mount.",
        ))
        .field(Field::new(
            "canonical_id",
            String,
            "ID of the (external) group.",
        ))
}

pub(super) fn paths() -> Vec<Path<IdentityBackend>> {
    vec![
        group_fields(Path::new("group"))
            .op(Operation::Update, |b: &IdentityBackend, c| {
                Box::pin(b.write_group(c))
            })
            .help("Create a group, or update the one with this id or name."),
        group_fields(Path::new("group/id/(?P<id>[^/]+)"))
            .op(Operation::Update, |b: &IdentityBackend, c| {
                Box::pin(b.write_group(c))
            })
            .op(Operation::Read, |b: &IdentityBackend, c| {
                Box::pin(b.read_group(c))
            })
            .op(Operation::Delete, |b: &IdentityBackend, c| {
                Box::pin(b.delete_group(c))
            })
            .help("Read, update or delete a group by its id."),
        group_fields(Path::new("group/name/(?P<name>[^/]+)"))
            .op(Operation::Update, |b: &IdentityBackend, c| {
                Box::pin(b.write_group(c))
            })
            .op(Operation::Read, |b: &IdentityBackend, c| {
                Box::pin(b.read_group(c))
            })
            .op(Operation::Delete, |b: &IdentityBackend, c| {
                Box::pin(b.delete_group(c))
            })
            .help("Create, read, update or delete a group by its name."),
        Path::new("group/id/?")
            .op(Operation::List, |b: &IdentityBackend, _c| {
                Box::pin(b.list_groups(false))
            })
            .help("List groups by id."),
        Path::new("group/name/?")
            .op(Operation::List, |b: &IdentityBackend, _c| {
                Box::pin(b.list_groups(true))
            })
            .help("List groups by name."),
        group_alias_fields(Path::new("group-alias"))
            .op(Operation::Update, |b: &IdentityBackend, c| {
                Box::pin(b.write_group_alias(c))
            })
            .help("Create a group alias, or update the one with this id."),
        group_alias_fields(Path::new("group-alias/id/(?P<id>[^/]+)"))
            .op(Operation::Update, |b: &IdentityBackend, c| {
                Box::pin(b.write_group_alias(c))
            })
            .op(Operation::Read, |b: &IdentityBackend, c| {
                Box::pin(b.read_group_alias(c))
            })
            .op(Operation::Delete, |b: &IdentityBackend, c| {
                Box::pin(b.delete_group_alias(c))
            })
            .help("Read, update or delete a group alias."),
        Path::new("group-alias/id/?")
            .op(Operation::List, |b: &IdentityBackend, _c| {
                Box::pin(b.list_group_aliases())
            })
            .help("List group aliases by id."),
    ]
}
