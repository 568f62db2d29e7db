//! `sys/policy[/:name]` (legacy shape) and `sys/policies/acl[/:name]`.

use serde_json::{Map, Value};

use arca_sdk::{Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, Response};

use super::{legacy, Sys};

impl Sys {
    async fn policy_list_legacy(&self, c: Ctx<'_>) -> HandlerResult {
        let st = self.core()?.unsealed()?;
        let names = st.policies.list().await?;
        let mut data = Map::new();
        data.insert("keys".into(), Value::from(names.clone()));
        data.insert("policies".into(), Value::from(names));
        Ok(Some(legacy(c.req, data)))
    }

    async fn policy_list(&self, _c: Ctx<'_>) -> HandlerResult {
        let st = self.core()?.unsealed()?;
        Ok(Some(Response::list(st.policies.list().await?)))
    }

    async fn policy_read(&self, c: Ctx<'_>, legacy_shape: bool) -> HandlerResult {
        let st = self.core()?.unsealed()?;
        let name = c.data.str_or("name", "")?.to_lowercase();
        let text = if name == "root" {
            Some(String::new())
        } else {
            st.policies.get(&name).await?.map(|p| p.raw.clone())
        };
        let Some(text) = text else {
            return Err(LogicalError::NotFound);
        };
        let mut data = Map::new();
        data.insert("name".into(), Value::from(name));
        if legacy_shape {
            data.insert("rules".into(), Value::from(text));
            Ok(Some(legacy(c.req, data)))
        } else {
            data.insert("policy".into(), Value::from(text));
            Ok(Some(Response::data(data)))
        }
    }

    async fn policy_write(&self, c: Ctx<'_>) -> HandlerResult {
        let st = self.core()?.unsealed()?;
        let name = c.data.str_or("name", "")?;
        let text = match c.data.get_str("policy")? {
            Some(t) if !t.is_empty() => t,
            _ => c.data.get_str("rules")?.unwrap_or_default(),
        };
        if text.trim().is_empty() {
            return Err(LogicalError::invalid(
                "'policy' parameter not supplied or empty",
            ));
        }
        st.policies.set(&name, &text).await?;
        Ok(None)
    }

    async fn policy_delete(&self, c: Ctx<'_>) -> HandlerResult {
        let st = self.core()?.unsealed()?;
        st.policies.delete(&c.data.str_or("name", "")?).await?;
        Ok(None)
    }

    async fn policy_exists(&self, c: Ctx<'_>) -> Result<bool, LogicalError> {
        let st = self.core()?.unsealed()?;
        Ok(st
            .policies
            .get(&c.data.str_or("name", "")?)
            .await?
            .is_some())
    }
}

fn name_field() -> Field {
    Field::new("name", FieldType::String, "The name of the policy.")
}

pub(super) fn paths() -> Vec<Path<Sys>> {
    vec![
        Path::new("policy/?")
            .op(Operation::Read, |b: &Sys, c| {
                Box::pin(b.policy_list_legacy(c))
            })
            .op(Operation::List, |b: &Sys, c| Box::pin(b.policy_list(c)))
            .help("List the ACL policies."),
        Path::new("policy/(?P<name>.+)")
            .field(name_field())
            .field(Field::new(
                "policy",
                FieldType::String,
                "The policy document (HCL or JSON).",
            ))
            .field(Field::new(
                "rules",
                FieldType::String,
                "Deprecated alias of policy.",
            ))
            .op(Operation::Read, |b: &Sys, c| {
                Box::pin(b.policy_read(c, true))
            })
            .op(Operation::Update, |b: &Sys, c| Box::pin(b.policy_write(c)))
            .op(Operation::Delete, |b: &Sys, c| Box::pin(b.policy_delete(c)))
            .existence(|b: &Sys, c| Box::pin(b.policy_exists(c)))
            .help("Read, write or delete an ACL policy (legacy path)."),
        Path::new("policies/acl/?")
            .op(Operation::List, |b: &Sys, c| Box::pin(b.policy_list(c)))
            .help("List the ACL policies."),
        Path::new("policies/acl/(?P<name>.+)")
            .field(name_field())
            .field(Field::new(
                "policy",
                FieldType::String,
                "The policy document (HCL or JSON).",
            ))
            .op(Operation::Read, |b: &Sys, c| {
                Box::pin(b.policy_read(c, false))
            })
            .op(Operation::Update, |b: &Sys, c| Box::pin(b.policy_write(c)))
            .op(Operation::Delete, |b: &Sys, c| Box::pin(b.policy_delete(c)))
            .existence(|b: &Sys, c| Box::pin(b.policy_exists(c)))
            .help("Read, write or delete an ACL policy."),
    ]
}
