//! `sys/leases/*` and the legacy `sys/renew`, `sys/revoke*`: lookup,
//! renewal and revocation of leases (see `crate::expiration`).
//!
//! Every write here changes leases and calls backends, so it is declared
//! `forward_on_standby`: a standby forwards it to the active node before
//! anything runs (the core functions also answer read-only there);
//! `LIST sys/leases/lookup/:prefix` reads replicated state locally.
//! Listing, prefix revocation and forced revocation need `sudo`.

use serde_json::json;

use arca_sdk::{
    Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, OperationProps, Path, Response,
};

use super::Sys;

/// The lease id a request names: in the URL, else in the body.
fn lease_id(c: &Ctx<'_>) -> Result<String, LogicalError> {
    let id = match c.data.get_str("url_lease_id")? {
        Some(id) if !id.is_empty() => id,
        _ => c.data.get_str("lease_id")?.unwrap_or_default(),
    };
    if id.is_empty() {
        return Err(LogicalError::invalid("missing lease ID"));
    }
    Ok(id)
}

impl Sys {
    async fn lease_lookup(&self, c: Ctx<'_>) -> HandlerResult {
        let id = c.data.get_str("lease_id")?.unwrap_or_default();
        if id.is_empty() {
            return Err(LogicalError::invalid("missing lease ID"));
        }
        Ok(Some(self.core()?.lookup_lease(&id).await?))
    }

    async fn lease_list(&self, c: Ctx<'_>) -> HandlerResult {
        let prefix = c.data.get_str("prefix")?.unwrap_or_default();
        let keys = self.core()?.list_leases(&prefix).await?;
        if keys.is_empty() {
            return Err(LogicalError::NotFound);
        }
        Ok(Some(Response::list(keys)))
    }

    async fn lease_renew(&self, c: Ctx<'_>) -> HandlerResult {
        let id = lease_id(&c)?;
        let inc = c.data.get_duration("increment")?.unwrap_or(0);
        let reply = self.core()?.renew_lease(&id, inc).await?;
        // The lease fields go to the top level of Vault's envelope.
        let mut r = reply.response.clone().unwrap_or_default();
        r.secret = Some(arca_sdk::Secret {
            ttl: reply.lease_duration,
            renewable: reply.renewable,
            lease_id: reply.lease_id,
            ..Default::default()
        });
        Ok(Some(r))
    }

    async fn lease_revoke(&self, c: Ctx<'_>) -> HandlerResult {
        let id = lease_id(&c)?;
        let core = self.core()?;
        if c.data.bool_or("sync", true)? {
            core.revoke_lease(&id, false).await?;
        } else {
            // Asynchronous: due now, the expiration manager revokes it
            // (and retries a failure) at its next tick.
            core.expire_lease_now(&id).await?;
        }
        Ok(None)
    }

    async fn lease_revoke_prefix(&self, c: Ctx<'_>, force: bool) -> HandlerResult {
        let prefix = c.data.get_str("prefix")?.unwrap_or_default();
        if prefix.is_empty() {
            return Err(LogicalError::invalid("missing prefix"));
        }
        self.core()?.revoke_lease_prefix(&prefix, force).await?;
        Ok(None)
    }

    async fn lease_tidy(&self, _c: Ctx<'_>) -> HandlerResult {
        let core = self.core()?;
        core.require_active()?;
        tokio::spawn(async move {
            match core.tidy_leases().await {
                Ok((orphaned, reindexed)) => tracing::info!(
                    orphaned,
                    reindexed,
                    "lease tidy done: leases of tokens that no longer exist are revoked at the next tick"
                ),
                Err(e) => tracing::warn!("lease tidy failed: {e}"),
            }
        });
        Ok(Some(
            Response {
                status: Some(202),
                ..Response::json(json!({}))
            }
            .with_warning(
                "Tidy operation successfully started. Any information from the operation will be printed to the server's logs.",
            ),
        ))
    }
}

fn lease_fields(p: Path<Sys>) -> Path<Sys> {
    p.field(Field::new(
        "lease_id",
        FieldType::String,
        "The lease ID (`<path>/<random>`), as returned with the secret.",
    ))
    .field(Field::new(
        "url_lease_id",
        FieldType::String,
        "The lease ID, given in the URL.",
    ))
}

fn increment() -> Field {
    Field::new(
        "increment",
        FieldType::Duration,
        "The requested extension of the lease (seconds or a duration); 0 renews it for its original TTL.",
    )
}

fn sync() -> Field {
    Field::new(
        "sync",
        FieldType::Bool,
        "Wait for the backend to revoke (default); false schedules it for the expiration manager.",
    )
    .default(true)
}

fn prefix() -> Field {
    Field::new(
        "prefix",
        FieldType::String,
        "Lease ID prefix (a mount path, a role path, ...).",
    )
}

/// A lease write: runs on the active node.
fn active(summary: &'static str) -> OperationProps {
    OperationProps {
        summary,
        forward_on_standby: true,
        available_without_leader: false,
    }
}

pub(super) fn paths() -> Vec<Path<Sys>> {
    let renew = |p: &'static str| {
        lease_fields(Path::new(p))
            .field(increment())
            .op(Operation::Update, |b: &Sys, c| Box::pin(b.lease_renew(c)))
            .props(Operation::Update, active("Renew a lease."))
            .help("Renew a lease: extend it by `increment`, within its max TTL.")
    };
    let revoke = |p: &'static str| {
        lease_fields(Path::new(p))
            .field(sync())
            .op(Operation::Update, |b: &Sys, c| Box::pin(b.lease_revoke(c)))
            .props(Operation::Update, active("Revoke a lease."))
            .help("Revoke a lease: the backend undoes the secret, and the lease is deleted.")
    };
    let revoke_prefix = |p: &'static str| {
        Path::new(p)
            .field(prefix())
            .field(sync())
            .op(Operation::Update, |b: &Sys, c| {
                Box::pin(b.lease_revoke_prefix(c, false))
            })
            .props(
                Operation::Update,
                active("Revoke every lease under a prefix."),
            )
            .help("Revoke every lease under a prefix (sudo).")
    };
    let revoke_force = |p: &'static str| {
        Path::new(p)
            .field(prefix())
            .op(Operation::Update, |b: &Sys, c| {
                Box::pin(b.lease_revoke_prefix(c, true))
            })
            .props(Operation::Update, active("Delete every lease under a prefix, forcibly."))
            .help("Delete every lease under a prefix even when its backend fails to revoke it (sudo). The secrets may stay valid outside the server.")
    };
    vec![
        Path::new("leases/lookup/?")
            .field(Field::new(
                "lease_id",
                FieldType::String,
                "The lease ID to look up.",
            ))
            .op(Operation::Update, |b: &Sys, c| Box::pin(b.lease_lookup(c)))
            .props(
                Operation::Update,
                OperationProps {
                    summary: "Look up a lease.",
                    ..Default::default()
                },
            )
            .op(Operation::List, |b: &Sys, c| Box::pin(b.lease_list(c)))
            .help("Look up a lease: issue and expire time, TTL, renewability."),
        Path::new("leases/lookup/(?P<prefix>.+)")
            .field(prefix())
            .op(Operation::List, |b: &Sys, c| Box::pin(b.lease_list(c)))
            .help("List lease IDs under a prefix (sudo)."),
        renew("leases/renew(?:/(?P<url_lease_id>.+))?"),
        renew("renew(?:/(?P<url_lease_id>.+))?"),
        revoke("leases/revoke(?:/(?P<url_lease_id>.+))?"),
        revoke("revoke(?:/(?P<url_lease_id>.+))?"),
        revoke_prefix("leases/revoke-prefix/(?P<prefix>.+)"),
        revoke_prefix("revoke-prefix/(?P<prefix>.+)"),
        revoke_force("leases/revoke-force/(?P<prefix>.+)"),
        revoke_force("revoke-force/(?P<prefix>.+)"),
        Path::new("leases/tidy/?")
            .op(Operation::Update, |b: &Sys, c| Box::pin(b.lease_tidy(c)))
            .props(Operation::Update, active("Tidy the lease indexes."))
            .help("Clean up the lease indexes and revoke leases whose token no longer exists."),
    ]
}
