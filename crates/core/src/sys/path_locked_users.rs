//! `sys/locked-users` (list the aliases user lockout holds, optionally of
//! one `mount_accessor`) and `sys/locked-users/:mount_accessor/unlock/:alias`
//! (lift a lock at once). See `crate::lockout`.

use arca_sdk::{Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, Response};

use super::Sys;
use crate::core::now;

impl Sys {
    async fn locked_users(&self, c: Ctx<'_>) -> HandlerResult {
        let only = c.data.str_or("mount_accessor", "")?;
        let only = (!only.is_empty()).then_some(only.as_str());
        let data = self.core()?.locked_users(only, now()).await?;
        Ok(Some(Response::json(data)))
    }

    async fn unlock_user(&self, c: Ctx<'_>) -> HandlerResult {
        let core = self.core()?;
        let accessor = c.data.str_or("mount_accessor", "")?;
        let alias = c.data.str_or("alias_identifier", "")?;
        let (_, auth) = core.mount_tables()?;
        if !auth.entries.iter().any(|e| e.accessor == accessor) {
            return Err(LogicalError::invalid(format!(
                "no auth mount has the accessor {accessor:?}"
            )));
        }
        core.require_active()?;
        let st = core.unsealed()?;
        core.lockout_reset(&st, &accessor, &alias, true).await?;
        Ok(None)
    }
}

pub(super) fn paths() -> Vec<Path<Sys>> {
    vec![
        Path::new("locked-users/?")
            .field(Field::new(
                "mount_accessor",
                FieldType::String,
                "Only the aliases of this auth mount.",
            ))
            .op(Operation::Read, |b: &Sys, c| Box::pin(b.locked_users(c)))
            .help("List the aliases user lockout holds, by auth mount."),
        Path::new("locked-users/(?P<mount_accessor>[^/]+)/unlock/(?P<alias_identifier>.+)")
            .field(Field::new(
                "mount_accessor",
                FieldType::String,
                "Accessor of the auth mount.",
            ))
            .field(Field::new(
                "alias_identifier",
                FieldType::String,
                "The locked alias (username, role id).",
            ))
            .op(Operation::Update, |b: &Sys, c| Box::pin(b.unlock_user(c)))
            .help("Unlock an alias that user lockout holds."),
    ]
}
