//! `sys/internal/ui/mounts[/:path]`: the CLI asks it before every `kv`
//! command to find the mount and its KV version. It is unauthenticated at the
//! ACL layer and filters by the caller's token itself: a token sees a mount
//! when it has any capability under it (so a limited token can use `kv get`).
//! A missing mount answers 403, like a hidden one, so mounts cannot be probed.

use serde_json::{Map, Value};

use arca_sdk::{Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, Response};

use super::path_mounts::mount_json;
use super::Sys;
use crate::core::now;
use crate::tokens::TokenEntry;

impl Sys {
    async fn caller(
        &self,
        c: &Ctx<'_>,
    ) -> Result<Option<std::sync::Arc<TokenEntry>>, LogicalError> {
        let st = self.core()?.unsealed()?;
        match c.req.client_token.as_deref() {
            Some(t) if !t.is_empty() => st.tokens.lookup(t, now()).await,
            _ => Ok(None),
        }
    }

    async fn visible(&self, t: &TokenEntry, full_mount_path: &str) -> Result<bool, LogicalError> {
        let st = self.core()?.unsealed()?;
        let acl = self.core()?.token_acl(&st, t).await?;
        Ok(acl.has_mount_access(full_mount_path))
    }

    async fn ui_mounts(&self, c: Ctx<'_>) -> HandlerResult {
        let core = self.core()?;
        let t = self
            .caller(&c)
            .await?
            .ok_or(LogicalError::PermissionDenied)?;
        let (mounts, auth) = core.mount_tables()?;
        let mut secret = Map::new();
        for e in &mounts.entries {
            if self.visible(&t, &e.path).await? {
                secret.insert(e.path.clone(), mount_json(e));
            }
        }
        let mut auth_m = Map::new();
        for e in &auth.entries {
            if self.visible(&t, &format!("auth/{}", e.path)).await? {
                auth_m.insert(e.path.clone(), mount_json(e));
            }
        }
        let mut data = Map::new();
        data.insert("secret".into(), Value::Object(secret));
        data.insert("auth".into(), Value::Object(auth_m));
        Ok(Some(Response::data(data)))
    }

    async fn ui_mount(&self, c: Ctx<'_>) -> HandlerResult {
        let core = self.core()?;
        let t = self
            .caller(&c)
            .await?
            .ok_or(LogicalError::PermissionDenied)?;
        let path = c.data.str_or("path", "")?;
        let path = path.trim_start_matches('/');
        let router = core.router()?;
        let (route, _) = router.resolve(path).ok_or(LogicalError::PermissionDenied)?;
        if !self.visible(&t, &route.full_path).await? {
            return Err(LogicalError::PermissionDenied);
        }
        let mut v = mount_json(&route.entry);
        if let Value::Object(m) = &mut v {
            m.insert("path".into(), Value::from(route.entry.path.clone()));
        }
        Ok(Some(Response::json(v)))
    }
}

pub(super) fn paths() -> Vec<Path<Sys>> {
    vec![
        Path::new("internal/ui/mounts/?")
            .op(Operation::Read, |b: &Sys, c| Box::pin(b.ui_mounts(c)))
            .help("Mounts visible to the calling token."),
        Path::new("internal/ui/mounts/(?P<path>.+)")
            .field(Field::new(
                "path",
                FieldType::String,
                "A path inside the mount.",
            ))
            .op(Operation::Read, |b: &Sys, c| Box::pin(b.ui_mount(c)))
            .help("The mount serving a path, if the calling token can use it."),
    ]
}
