//! `login` and the renewal of the tokens it creates.

use serde_json::Value;

use arca_sdk::storage::{get_json, json_op};
use arca_sdk::{cidr, token_fields, Auth, Ctx, HandlerResult, LogicalError, Response};

use crate::store::{delete_ops, SecretIdEntry, SecretIdKeys};
use crate::AppRole;

fn invalid() -> LogicalError {
    LogicalError::invalid("invalid role or secret ID")
}

/// A secret id that does not match: counted by user lockout for the role
/// id (the same words as an unknown role id).
fn wrong_secret() -> LogicalError {
    LogicalError::InvalidCredentials("invalid role or secret ID".into())
}

/// Is the client inside `blocks`? (`what` names whose restriction failed.)
fn check_source(c: &Ctx<'_>, blocks: &[String], what: &str) -> Result<(), LogicalError> {
    if blocks.is_empty() {
        return Ok(());
    }
    let blocks = cidr::parse(blocks)?;
    let Some(conn) = &c.req.connection else {
        return Err(LogicalError::invalid(format!(
            "the client's address is unknown, so the CIDR restrictions on the {what} cannot be checked"
        )));
    };
    if !cidr::contains(&blocks, conn.remote_addr) {
        return Err(LogicalError::invalid(format!(
            "source address {:?} unauthorized by CIDR restrictions on the {what}",
            conn.remote_addr.to_canonical().to_string()
        )));
    }
    Ok(())
}

impl AppRole {
    pub(crate) async fn login(&self, c: Ctx<'_>) -> HandlerResult {
        let role_id = c.data.str_or("role_id", "")?.trim().to_string();
        if role_id.is_empty() {
            return Err(LogicalError::invalid("missing role_id"));
        }
        let Some((name, role)) = self.store.role_by_id(c.storage, &role_id).await? else {
            return Err(invalid());
        };
        let _r = self.store.role_read(&name).await;
        check_source(&c, &role.secret_id_bound_cidrs, "role")?;

        let mut metadata = Default::default();
        let mut token_cidrs = Vec::new();
        if role.bind_secret_id {
            let secret_id = c.data.str_or("secret_id", "")?.trim().to_string();
            if secret_id.is_empty() {
                return Err(LogicalError::invalid("missing secret_id"));
            }
            let keys = SecretIdKeys::new(&role, &name, &secret_id)?;
            let _s = self.store.secret_id(&keys.hmac).await;
            let now = self.system.now();
            let Some(mut entry) = get_json::<SecretIdEntry>(c.storage, &keys.entry())
                .await?
                .filter(|e| !e.expired(now))
            else {
                return Err(wrong_secret());
            };
            check_source(&c, &entry.cidr_list, "secret ID")?;
            // Take one use (the last one removes the secret id), under the
            // secret id's lock: two logins never share a use.
            match entry.secret_id_num_uses {
                0 => {}
                1 => {
                    let acc = self
                        .store
                        .accessor_key(c.storage, &entry.secret_id_accessor)
                        .await?;
                    c.storage.batch(delete_ops(&keys.entry(), &acc)).await?;
                }
                _ => {
                    entry.secret_id_num_uses -= 1;
                    entry.last_updated_time = now;
                    c.storage
                        .batch(vec![json_op(&keys.entry(), &entry)?])
                        .await?;
                }
            }
            metadata = entry.metadata;
            token_cidrs = entry.token_bound_cidrs;
        }
        let mut auth = Auth {
            metadata: metadata.into_iter().collect(),
            ..Default::default()
        };
        auth.metadata.insert("role_name".into(), name.clone());
        // The entity alias is the role id (as in Vault), with the same
        // metadata as the token.
        auth.alias = Some(arca_sdk::Alias {
            name: role_id.clone(),
            metadata: auth.metadata.clone(),
        });
        role.token.fill(&mut auth);
        // A secret id's own token CIDRs replace the role's.
        if !token_cidrs.is_empty() {
            auth.bound_cidrs = token_cidrs;
        }
        auth.internal_data
            .insert("role_name".into(), Value::from(name));
        Ok(Some(Response::login(auth)))
    }

    /// A login token is renewed: its role must still exist; the role's
    /// current TTLs apply.
    pub(crate) async fn renew(&self, c: Ctx<'_>) -> HandlerResult {
        let name = token_fields::renewing(c.req, "role_name")?;
        let role = self.store.role(c.storage, &name).await?.ok_or_else(|| {
            LogicalError::invalid(format!("role {name:?} does not exist during renewal"))
        })?;
        Ok(Some(token_fields::renewed(&role.token)))
    }
}
