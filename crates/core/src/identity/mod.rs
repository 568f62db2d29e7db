//! The identity store: entities, entity aliases, groups and group aliases,
//! served at the builtin `identity/` mount and consulted by core on every
//! login and every request of a token that has an entity.
//!
//! Invariants:
//! - Records live in the identity mount's barrier view, one key each:
//!   `entity/<id>` (with its aliases inside) and `group/<id>` (with its
//!   alias, and its parents: a group's members groups are the groups that
//!   list it in `parent_group_ids`). Every node keeps an in-memory index of
//!   all of them, loaded on first use after unseal and kept in step record
//!   by record by replication (`invalidate`); nothing else is cached.
//! - Writes run on the active node only (a standby's storage refuses
//!   them, so the request is forwarded) and one at a time (`write`), so a
//!   read-modify-write never loses a concurrent one.
//! - An alias (mount accessor, name, case-insensitive) belongs to at most
//!   one entity, and an entity has at most one alias per mount; a group
//!   has at most one alias, and only external groups have one.
//! - Group membership never forms a cycle; policies of a group apply to
//!   its member entities and to the members of its member groups.
//! - A token's identity policies are computed at request time: changing
//!   an entity's or group's policies changes what existing tokens may do;
//!   a token whose entity is disabled or gone is refused (not revoked).
//! - A login finds or creates the entity of its alias, and refreshes the
//!   entity's external groups from the group aliases the method reports
//!   (only groups whose alias is on the login's mount are left).

mod paths_entity;
mod paths_group;
mod paths_lookup;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Weak};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use arca_sdk::{Framework, LogicalError, Storage};

use crate::core::Core;

/// An alias of an entity or a group: who the client is at one auth mount.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub(crate) struct Alias {
    pub id: String,
    pub canonical_id: String,
    pub mount_accessor: String,
    pub name: String,
    pub metadata: Option<BTreeMap<String, String>>,
    pub custom_metadata: Option<BTreeMap<String, String>>,
    pub local: bool,
    pub creation_time: DateTime<Utc>,
    pub last_update_time: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub(crate) struct Entity {
    pub id: String,
    pub name: String,
    pub metadata: Option<BTreeMap<String, String>>,
    pub policies: Vec<String>,
    pub disabled: bool,
    pub creation_time: DateTime<Utc>,
    pub last_update_time: DateTime<Utc>,
    pub aliases: Vec<Alias>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub(crate) struct Group {
    pub id: String,
    pub name: String,
    /// `internal` or `external`.
    #[serde(rename = "type")]
    pub kind: String,
    pub metadata: Option<BTreeMap<String, String>>,
    pub policies: Option<Vec<String>>,
    pub member_entity_ids: Option<Vec<String>>,
    pub parent_group_ids: Option<Vec<String>>,
    pub creation_time: DateTime<Utc>,
    pub last_update_time: DateTime<Utc>,
    pub modify_index: u64,
    pub alias: Option<Alias>,
}

impl Group {
    pub(crate) fn external(&self) -> bool {
        self.kind == "external"
    }
    fn parents(&self) -> &[String] {
        self.parent_group_ids.as_deref().unwrap_or(&[])
    }
    fn members(&self) -> &[String] {
        self.member_entity_ids.as_deref().unwrap_or(&[])
    }
}

pub(crate) fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn lower(s: &str) -> String {
    s.to_lowercase()
}

#[derive(Debug, Default, Clone, Copy, PartialEq)]
enum LoadState {
    #[default]
    Unloaded,
    Loading,
    Loaded,
}

/// Every record, and the lookups requests need, in memory.
#[derive(Default)]
pub(crate) struct Index {
    state: LoadState,
    /// Keys replication changed while the index was loading.
    dirty: Vec<String>,
    pub entities: HashMap<String, Arc<Entity>>,
    entity_names: HashMap<String, String>,
    /// (mount accessor, lowercased alias name) → entity id.
    aliases: HashMap<(String, String), String>,
    /// alias id → entity id.
    alias_ids: HashMap<String, String>,
    pub groups: HashMap<String, Arc<Group>>,
    group_names: HashMap<String, String>,
    group_aliases: HashMap<(String, String), String>,
    group_alias_ids: HashMap<String, String>,
    /// entity id → groups that list it as a member.
    entity_groups: HashMap<String, BTreeSet<String>>,
    /// group id → groups that name it as their parent (its member groups).
    children: HashMap<String, BTreeSet<String>>,
}

impl Index {
    fn put_entity(&mut self, e: Entity) {
        self.remove_entity(&e.id);
        self.entity_names.insert(lower(&e.name), e.id.clone());
        for a in &e.aliases {
            self.aliases
                .insert((a.mount_accessor.clone(), lower(&a.name)), e.id.clone());
            self.alias_ids.insert(a.id.clone(), e.id.clone());
        }
        self.entities.insert(e.id.clone(), Arc::new(e));
    }

    fn remove_entity(&mut self, id: &str) -> Option<Arc<Entity>> {
        let old = self.entities.remove(id)?;
        if self.entity_names.get(&lower(&old.name)).map(String::as_str) == Some(id) {
            self.entity_names.remove(&lower(&old.name));
        }
        for a in &old.aliases {
            let k = (a.mount_accessor.clone(), lower(&a.name));
            if self.aliases.get(&k).map(String::as_str) == Some(id) {
                self.aliases.remove(&k);
            }
            if self.alias_ids.get(&a.id).map(String::as_str) == Some(id) {
                self.alias_ids.remove(&a.id);
            }
        }
        Some(old)
    }

    fn put_group(&mut self, g: Group) {
        self.remove_group(&g.id);
        self.group_names.insert(lower(&g.name), g.id.clone());
        if let Some(a) = &g.alias {
            self.group_aliases
                .insert((a.mount_accessor.clone(), lower(&a.name)), g.id.clone());
            self.group_alias_ids.insert(a.id.clone(), g.id.clone());
        }
        for m in g.members() {
            self.entity_groups
                .entry(m.clone())
                .or_default()
                .insert(g.id.clone());
        }
        for p in g.parents() {
            self.children
                .entry(p.clone())
                .or_default()
                .insert(g.id.clone());
        }
        self.groups.insert(g.id.clone(), Arc::new(g));
    }

    fn remove_group(&mut self, id: &str) -> Option<Arc<Group>> {
        let old = self.groups.remove(id)?;
        if self.group_names.get(&lower(&old.name)).map(String::as_str) == Some(id) {
            self.group_names.remove(&lower(&old.name));
        }
        if let Some(a) = &old.alias {
            let k = (a.mount_accessor.clone(), lower(&a.name));
            if self.group_aliases.get(&k).map(String::as_str) == Some(id) {
                self.group_aliases.remove(&k);
            }
            if self.group_alias_ids.get(&a.id).map(String::as_str) == Some(id) {
                self.group_alias_ids.remove(&a.id);
            }
        }
        for m in old.members() {
            if let Some(s) = self.entity_groups.get_mut(m) {
                s.remove(id);
                if s.is_empty() {
                    self.entity_groups.remove(m);
                }
            }
        }
        for p in old.parents() {
            if let Some(s) = self.children.get_mut(p) {
                s.remove(id);
                if s.is_empty() {
                    self.children.remove(p);
                }
            }
        }
        Some(old)
    }

    /// A record as replication wrote it (`None`: deleted).
    fn apply(&mut self, key: &str, value: Option<&[u8]>) {
        if let Some(id) = key.strip_prefix("entity/") {
            match value.map(serde_json::from_slice::<Entity>) {
                Some(Ok(e)) => self.put_entity(e),
                Some(Err(err)) => tracing::error!(key, "unreadable identity entity: {err}"),
                None => {
                    self.remove_entity(id);
                }
            }
        } else if let Some(id) = key.strip_prefix("group/") {
            match value.map(serde_json::from_slice::<Group>) {
                Some(Ok(g)) => self.put_group(g),
                Some(Err(err)) => tracing::error!(key, "unreadable identity group: {err}"),
                None => {
                    self.remove_group(id);
                }
            }
        }
    }

    pub(crate) fn entity_by_name(&self, name: &str) -> Option<&Arc<Entity>> {
        self.entity_names
            .get(&lower(name))
            .and_then(|id| self.entities.get(id))
    }

    pub(crate) fn entity_by_alias(&self, accessor: &str, name: &str) -> Option<&Arc<Entity>> {
        self.aliases
            .get(&(accessor.to_string(), lower(name)))
            .and_then(|id| self.entities.get(id))
    }

    pub(crate) fn entity_by_alias_id(&self, alias_id: &str) -> Option<&Arc<Entity>> {
        self.alias_ids
            .get(alias_id)
            .and_then(|id| self.entities.get(id))
    }

    pub(crate) fn group_by_name(&self, name: &str) -> Option<&Arc<Group>> {
        self.group_names
            .get(&lower(name))
            .and_then(|id| self.groups.get(id))
    }

    pub(crate) fn group_by_alias(&self, accessor: &str, name: &str) -> Option<&Arc<Group>> {
        self.group_aliases
            .get(&(accessor.to_string(), lower(name)))
            .and_then(|id| self.groups.get(id))
    }

    pub(crate) fn group_by_alias_id(&self, alias_id: &str) -> Option<&Arc<Group>> {
        self.group_alias_ids
            .get(alias_id)
            .and_then(|id| self.groups.get(id))
    }

    /// Groups that list the entity as a member, sorted.
    pub(crate) fn direct_groups(&self, entity_id: &str) -> Vec<String> {
        self.entity_groups
            .get(entity_id)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Ancestors of these groups (not themselves unless reached again),
    /// sorted; missing groups are skipped, cycles cannot loop.
    pub(crate) fn ancestors(&self, start: &[String]) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<&str> = Vec::new();
        for g in start {
            if let Some(g) = self.groups.get(g) {
                stack.extend(g.parents().iter().map(String::as_str));
            }
        }
        while let Some(id) = stack.pop() {
            if !seen.insert(id.to_string()) {
                continue;
            }
            if let Some(g) = self.groups.get(id) {
                stack.extend(g.parents().iter().map(String::as_str));
            }
        }
        seen
    }

    /// Groups whose parent is `id` (its member groups), sorted.
    pub(crate) fn member_groups(&self, id: &str) -> Vec<String> {
        self.children
            .get(id)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The policies an entity's tokens get besides their own; `None` when
    /// the entity is gone or disabled (its tokens are refused).
    fn policies(&self, entity_id: &str) -> Option<Vec<String>> {
        let e = self.entities.get(entity_id)?;
        if e.disabled {
            return None;
        }
        let mut out: BTreeSet<String> = e.policies.iter().cloned().collect();
        let direct = self.direct_groups(entity_id);
        let all = direct.iter().cloned().chain(self.ancestors(&direct));
        for g in all {
            if let Some(g) = self.groups.get(&g) {
                out.extend(g.policies.iter().flatten().cloned());
            }
        }
        Some(out.into_iter().collect())
    }
}

/// What core asks of the identity store, and what its paths change.
pub(crate) struct IdentityStore {
    storage: Arc<dyn Storage>,
    index: parking_lot::RwLock<Index>,
    /// Serializes writes (read-modify-write of records) and loading.
    write: tokio::sync::Mutex<()>,
}

/// The login's view of who logged in, from the method's [`arca_sdk::Auth`].
pub(crate) struct LoginAlias<'a> {
    pub accessor: &'a str,
    pub local: bool,
    pub alias: &'a arca_sdk::Alias,
    pub group_aliases: &'a [arca_sdk::Alias],
}

impl IdentityStore {
    pub(crate) fn new(storage: Arc<dyn Storage>) -> Self {
        IdentityStore {
            storage,
            index: Default::default(),
            write: tokio::sync::Mutex::new(()),
        }
    }

    /// Loads every record once (after unseal, or after a reset).
    async fn ensure_loaded(&self) -> Result<(), LogicalError> {
        if self.index.read().state == LoadState::Loaded {
            return Ok(());
        }
        let _w = self.write.lock().await;
        self.load_locked().await
    }

    async fn load_locked(&self) -> Result<(), LogicalError> {
        {
            let mut ix = self.index.write();
            if ix.state == LoadState::Loaded {
                return Ok(());
            }
            *ix = Index {
                state: LoadState::Loading,
                ..Default::default()
            };
        }
        let res = async {
            let mut records = Vec::new();
            for prefix in ["entity/", "group/"] {
                for k in self.storage.list(prefix).await? {
                    let key = format!("{prefix}{k}");
                    let v = self.storage.get(&key).await?;
                    records.push((key, v));
                }
            }
            Ok::<_, LogicalError>(records)
        }
        .await;
        let records = match res {
            Ok(r) => r,
            Err(e) => {
                self.index.write().state = LoadState::Unloaded;
                return Err(e);
            }
        };
        {
            let mut ix = self.index.write();
            for (k, v) in &records {
                ix.apply(k, v.as_deref());
            }
        }
        // What replication changed meanwhile is read again.
        loop {
            let dirty = std::mem::take(&mut self.index.write().dirty);
            if dirty.is_empty() {
                break;
            }
            for k in dirty {
                let v = self.storage.get(&k).await?;
                self.index.write().apply(&k, v.as_deref());
            }
        }
        let mut ix = self.index.write();
        if ix.dirty.is_empty() {
            ix.state = LoadState::Loaded;
        }
        Ok(())
    }

    /// Replication changed this key of the identity mount ("" = anything).
    pub(crate) async fn invalidate(&self, key: &str) {
        {
            let mut ix = self.index.write();
            if key.is_empty() {
                *ix = Index::default();
                return;
            }
            match ix.state {
                LoadState::Unloaded => return,
                LoadState::Loading => {
                    ix.dirty.push(key.to_string());
                    return;
                }
                LoadState::Loaded => {}
            }
        }
        match self.storage.get(key).await {
            Ok(v) => self.index.write().apply(key, v.as_deref()),
            Err(e) => {
                tracing::warn!(key, "re-reading an identity record failed ({e}); reloading");
                *self.index.write() = Index::default();
            }
        }
    }

    /// Reads the index (loaded first).
    pub(crate) async fn read<T>(&self, f: impl FnOnce(&Index) -> T) -> Result<T, LogicalError> {
        self.ensure_loaded().await?;
        Ok(f(&self.index.read()))
    }

    /// Runs a change: `f` sees the index and returns the records to write
    /// (and delete) and an answer; they are stored, then indexed.
    pub(crate) async fn change<T>(
        &self,
        f: impl FnOnce(&Index) -> Result<(Changes, T), LogicalError>,
    ) -> Result<T, LogicalError> {
        let _w = self.write.lock().await;
        self.load_locked().await?;
        let (changes, out) = {
            let ix = self.index.read();
            f(&ix)?
        };
        self.commit(changes).await?;
        Ok(out)
    }

    async fn commit(&self, c: Changes) -> Result<(), LogicalError> {
        for e in &c.entities {
            let v = serde_json::to_vec(e).map_err(LogicalError::internal)?;
            self.storage.put(&format!("entity/{}", e.id), v).await?;
        }
        for g in &c.groups {
            let v = serde_json::to_vec(g).map_err(LogicalError::internal)?;
            self.storage.put(&format!("group/{}", g.id), v).await?;
        }
        for id in &c.deleted_entities {
            self.storage.delete(&format!("entity/{id}")).await?;
        }
        for id in &c.deleted_groups {
            self.storage.delete(&format!("group/{id}")).await?;
        }
        let mut ix = self.index.write();
        for id in &c.deleted_entities {
            ix.remove_entity(id);
        }
        for id in &c.deleted_groups {
            ix.remove_group(id);
        }
        for e in c.entities {
            ix.put_entity(e);
        }
        for g in c.groups {
            ix.put_group(g);
        }
        Ok(())
    }

    /// The identity policies of a token's entity; permission denied when
    /// the entity is disabled or gone.
    pub(crate) async fn token_policies(
        &self,
        entity_id: &str,
    ) -> Result<Vec<String>, LogicalError> {
        self.read(|ix| ix.policies(entity_id))
            .await?
            .ok_or(LogicalError::PermissionDenied)
    }

    /// The identity policies of an entity for display (none when it is
    /// gone or disabled, or `entity_id` is empty).
    pub(crate) async fn policies_of(&self, entity_id: &str) -> Result<Vec<String>, LogicalError> {
        if entity_id.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self
            .read(|ix| ix.policies(entity_id))
            .await?
            .unwrap_or_default())
    }

    /// A login: finds or creates the entity of the alias (updating the
    /// alias' metadata when the method reports other values), refuses a
    /// disabled entity, and refreshes its external groups. Returns the
    /// entity id and its identity policies.
    pub(crate) async fn login(
        &self,
        l: &LoginAlias<'_>,
    ) -> Result<(String, Vec<String>), LogicalError> {
        if l.alias.name.is_empty() {
            return Err(LogicalError::internal("missing name in alias"));
        }
        let metadata: Option<BTreeMap<String, String>> =
            (!l.alias.metadata.is_empty()).then(|| {
                l.alias
                    .metadata
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            });
        // Fast path (every node, no write): the alias is known, its
        // metadata unchanged, and its external groups are as reported.
        let known = self
            .read(|ix| {
                let e = ix.entity_by_alias(l.accessor, &l.alias.name)?;
                let same = e.aliases.iter().any(|a| {
                    a.mount_accessor == l.accessor
                        && a.name == l.alias.name
                        && a.metadata == metadata
                });
                let groups_ok = external_changes(ix, e, l).is_empty();
                (same && groups_ok).then(|| (e.id.clone(), e.disabled))
            })
            .await?;
        let (id, disabled) = match known {
            Some(x) => x,
            None => {
                self.change(|ix| {
                    let now = Utc::now();
                    let mut changes = Changes::default();
                    let mut entity = match ix.entity_by_alias(l.accessor, &l.alias.name) {
                        Some(e) => (**e).clone(),
                        None => {
                            let id = uuid::Uuid::new_v4().to_string();
                            Entity {
                                name: generated_name("entity", |n| ix.entity_by_name(n).is_some()),
                                id,
                                creation_time: now,
                                last_update_time: now,
                                ..Default::default()
                            }
                        }
                    };
                    let eid = entity.id.clone();
                    match entity.aliases.iter_mut().find(|a| {
                        a.mount_accessor == l.accessor && lower(&a.name) == lower(&l.alias.name)
                    }) {
                        Some(a) => {
                            if a.metadata != metadata || a.name != l.alias.name {
                                a.metadata = metadata.clone();
                                a.name = l.alias.name.clone();
                                a.last_update_time = now;
                                changes.entities.push(entity.clone());
                            }
                        }
                        None => {
                            entity.aliases.push(Alias {
                                id: uuid::Uuid::new_v4().to_string(),
                                canonical_id: eid.clone(),
                                mount_accessor: l.accessor.to_string(),
                                name: l.alias.name.clone(),
                                metadata: metadata.clone(),
                                custom_metadata: None,
                                local: l.local,
                                creation_time: now,
                                last_update_time: now,
                            });
                            changes.entities.push(entity.clone());
                        }
                    }
                    changes.groups = external_changes(ix, &entity, l);
                    for g in &mut changes.groups {
                        g.last_update_time = now;
                    }
                    Ok((changes, (eid, entity.disabled)))
                })
                .await?
            }
        };
        if disabled {
            return Err(LogicalError::PermissionDenied);
        }
        let policies = self.read(|ix| ix.policies(&id)).await?.unwrap_or_default();
        Ok((id, policies))
    }

    /// A renewal of an entity's token: its external groups follow the
    /// group aliases the method reports now (LDAP groups, JWT claims).
    pub(crate) async fn refresh_groups(
        &self,
        entity_id: &str,
        l: &LoginAlias<'_>,
    ) -> Result<(), LogicalError> {
        let pending = self
            .read(|ix| {
                ix.entities
                    .get(entity_id)
                    .is_some_and(|e| !external_changes(ix, e, l).is_empty())
            })
            .await?;
        if !pending {
            return Ok(());
        }
        self.change(|ix| {
            let mut changes = Changes::default();
            if let Some(e) = ix.entities.get(entity_id) {
                changes.groups = external_changes(ix, e, l);
            }
            Ok((changes, ()))
        })
        .await
    }
}

/// The external groups to rewrite so that the entity is a member of
/// exactly the groups its group aliases (on the login's mount) name;
/// groups with an alias on another mount are left alone.
fn external_changes(ix: &Index, e: &Entity, l: &LoginAlias<'_>) -> Vec<Group> {
    let wanted: BTreeSet<String> = l
        .group_aliases
        .iter()
        .filter_map(|a| ix.group_by_alias(l.accessor, &a.name))
        .filter(|g| g.external())
        .map(|g| g.id.clone())
        .collect();
    let current: BTreeSet<String> = ix
        .direct_groups(&e.id)
        .into_iter()
        .filter(|g| ix.groups.get(g).is_some_and(|g| g.external()))
        .collect();
    let mut out = Vec::new();
    for id in wanted.difference(&current) {
        if let Some(g) = ix.groups.get(id) {
            let mut g = (**g).clone();
            let mut m = g.member_entity_ids.take().unwrap_or_default();
            m.push(e.id.clone());
            m.sort();
            m.dedup();
            g.member_entity_ids = Some(m);
            g.modify_index += 1;
            out.push(g);
        }
    }
    for id in current.difference(&wanted) {
        if let Some(g) = ix.groups.get(id) {
            let on_this_mount = g
                .alias
                .as_ref()
                .is_none_or(|a| a.mount_accessor == l.accessor);
            if !on_this_mount {
                continue;
            }
            let mut g = (**g).clone();
            let m: Vec<String> = g
                .members()
                .iter()
                .filter(|m| **m != e.id)
                .cloned()
                .collect();
            g.member_entity_ids = Some(m);
            g.modify_index += 1;
            out.push(g);
        }
    }
    out
}

/// Records a change writes.
#[derive(Default)]
pub(crate) struct Changes {
    pub entities: Vec<Entity>,
    pub groups: Vec<Group>,
    pub deleted_entities: Vec<String>,
    pub deleted_groups: Vec<String>,
}

/// `entity_1a2b3c4d`, as Vault names what it creates unnamed.
pub(crate) fn generated_name(kind: &str, taken: impl Fn(&str) -> bool) -> String {
    loop {
        let n = format!("{kind}_{:08x}", rand::random::<u32>());
        if !taken(&n) {
            return n;
        }
    }
}

/// Policies as identity stores them: trimmed, lowercased, sorted, no
/// duplicates, never `root`.
pub(crate) fn clean_policies(v: Vec<String>) -> Result<Vec<String>, LogicalError> {
    let mut out: Vec<String> = v
        .into_iter()
        .map(|p| p.trim().to_lowercase())
        .filter(|p| !p.is_empty())
        .collect();
    out.sort();
    out.dedup();
    if out.iter().any(|p| p == "root") {
        return Err(LogicalError::invalid("policies cannot contain root"));
    }
    Ok(out)
}

/// Metadata as a field gives it, within Vault's limits.
pub(crate) fn metadata(m: Map<String, Value>) -> Result<BTreeMap<String, String>, LogicalError> {
    if m.len() > 64 {
        return Err(LogicalError::invalid(
            "metadata cannot contain more than 64 key/value pairs",
        ));
    }
    let mut out = BTreeMap::new();
    for (k, v) in m {
        let v = match v {
            Value::String(s) => s,
            other => other.to_string(),
        };
        if k.is_empty() || k.len() > 128 {
            return Err(LogicalError::invalid(format!(
                "metadata key {k:?} must have 1 to 128 characters"
            )));
        }
        if v.len() > 512 {
            return Err(LogicalError::invalid(format!(
                "metadata value of {k:?} has more than 512 characters"
            )));
        }
        if k.starts_with("vault-") {
            return Err(LogicalError::invalid(format!(
                "metadata key {k:?} cannot begin with \"vault-\""
            )));
        }
        out.insert(k, v);
    }
    Ok(out)
}

/// A mount as alias reads show it.
#[derive(Clone)]
pub(crate) struct MountInfo {
    pub path: String,
    pub kind: String,
    pub local: bool,
}

/// The identity mount's backend (paths in `paths_*`).
pub(crate) struct IdentityBackend {
    core: Weak<Core>,
}

impl IdentityBackend {
    pub(crate) fn core(&self) -> Result<Arc<Core>, LogicalError> {
        self.core.upgrade().ok_or(LogicalError::Sealed)
    }

    pub(crate) fn store(&self) -> Result<Arc<IdentityStore>, LogicalError> {
        Ok(self.core()?.unsealed()?.identity.clone())
    }

    /// Every mount by accessor (secret and auth mounts).
    pub(crate) fn mounts(&self) -> Result<HashMap<String, MountInfo>, LogicalError> {
        let router = self.core()?.router()?;
        Ok(router
            .routes()
            .iter()
            .map(|r| {
                (
                    r.entry.accessor.clone(),
                    MountInfo {
                        path: r.full_path.clone(),
                        kind: r.entry.kind.clone(),
                        local: r.entry.local,
                    },
                )
            })
            .collect())
    }
}

/// An alias as reads show it.
pub(crate) fn alias_json(a: &Alias, mounts: &HashMap<String, MountInfo>, full: bool) -> Value {
    let mut m = json!({
        "id": a.id,
        "canonical_id": a.canonical_id,
        "mount_accessor": a.mount_accessor,
        "name": a.name,
        "metadata": a.metadata,
        "merged_from_canonical_ids": null,
        "creation_time": time(&a.creation_time),
        "last_update_time": time(&a.last_update_time),
    });
    if full {
        m["custom_metadata"] = json!(a.custom_metadata);
        m["local"] = json!(a.local);
    }
    add_mount(&mut m, mounts, &a.mount_accessor);
    m
}

/// Adds `mount_path` and `mount_type` of the alias' mount (none when the
/// mount is gone), as Vault shows them.
pub(crate) fn add_mount(v: &mut Value, mounts: &HashMap<String, MountInfo>, accessor: &str) {
    if let Some(mi) = mounts.get(accessor) {
        v["mount_path"] = json!(mi.path);
        v["mount_type"] = json!(mi.kind);
    }
}

pub(crate) fn backend(core: Weak<Core>) -> Framework<IdentityBackend> {
    let mut paths = Vec::new();
    paths.extend(paths_entity::paths());
    paths.extend(paths_group::paths());
    paths.extend(paths_lookup::paths());
    Framework::new("identity", IdentityBackend { core }, paths).with_invalidate(
        |b: &IdentityBackend, key: &str| {
            let store = b.store().ok();
            let key = key.to_string();
            Box::pin(async move {
                if let Some(s) = store {
                    s.invalidate(&key).await;
                }
            })
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(id: &str, parents: &[&str], members: &[&str], policies: &[&str]) -> Group {
        Group {
            id: id.into(),
            name: id.into(),
            kind: "internal".into(),
            parent_group_ids: Some(parents.iter().map(|s| s.to_string()).collect()),
            member_entity_ids: Some(members.iter().map(|s| s.to_string()).collect()),
            policies: Some(policies.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        }
    }

    #[test]
    fn policies_come_from_the_entity_its_groups_and_their_ancestors() {
        let mut ix = Index::default();
        ix.put_entity(Entity {
            id: "e".into(),
            name: "e".into(),
            policies: vec!["own".into()],
            ..Default::default()
        });
        ix.put_group(group("top", &[], &[], &["top"]));
        ix.put_group(group("mid", &["top"], &[], &["mid"]));
        ix.put_group(group("leaf", &["mid"], &["e"], &["leaf"]));
        ix.put_group(group("other", &[], &[], &["other"]));
        assert_eq!(ix.policies("e").unwrap(), vec!["leaf", "mid", "own", "top"]);
        assert_eq!(ix.member_groups("top"), vec!["mid"]);
        // A parent's policies change what the member gets.
        ix.put_group(group("top", &[], &[], &["changed"]));
        assert!(ix.policies("e").unwrap().contains(&"changed".to_string()));
        // Removing the member group cuts the chain.
        ix.remove_group("mid");
        assert_eq!(ix.policies("e").unwrap(), vec!["leaf", "own"]);
    }

    #[test]
    fn a_disabled_or_missing_entity_has_no_policies() {
        let mut ix = Index::default();
        ix.put_entity(Entity {
            id: "e".into(),
            disabled: true,
            ..Default::default()
        });
        assert!(ix.policies("e").is_none());
        assert!(ix.policies("nobody").is_none());
    }

    #[test]
    fn aliases_are_found_case_insensitively_and_forgotten_with_their_entity() {
        let mut ix = Index::default();
        ix.put_entity(Entity {
            id: "e".into(),
            name: "Bob".into(),
            aliases: vec![Alias {
                id: "a".into(),
                mount_accessor: "auth_userpass_1".into(),
                name: "Bob".into(),
                ..Default::default()
            }],
            ..Default::default()
        });
        assert!(ix.entity_by_alias("auth_userpass_1", "bob").is_some());
        assert!(ix.entity_by_alias("auth_userpass_2", "bob").is_none());
        assert!(ix.entity_by_name("BOB").is_some());
        assert!(ix.entity_by_alias_id("a").is_some());
        ix.apply("entity/e", None);
        assert!(ix.entity_by_alias("auth_userpass_1", "bob").is_none());
        assert!(ix.entity_by_alias_id("a").is_none());
    }

    #[test]
    fn cycles_in_stored_groups_do_not_loop() {
        let mut ix = Index::default();
        ix.put_group(group("a", &["b"], &["e"], &["pa"]));
        ix.put_group(group("b", &["a"], &[], &["pb"]));
        ix.put_entity(Entity {
            id: "e".into(),
            ..Default::default()
        });
        assert_eq!(ix.policies("e").unwrap(), vec!["pa", "pb"]);
    }

    #[test]
    fn policies_are_cleaned_and_root_is_refused() {
        assert_eq!(
            clean_policies(vec![" B".into(), "a".into(), "b".into(), "".into()]).unwrap(),
            vec!["a", "b"]
        );
        assert!(clean_policies(vec!["Root".into()]).is_err());
    }
}
