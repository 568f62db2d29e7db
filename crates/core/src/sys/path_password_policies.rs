//! `sys/policies/password[/:name[/generate]]`: Vault's password policies
//! (see `crate::password_policies` for the syntax and the store).
//!
//! As in Vault: writing (`policy`, optionally base64) answers 204 after the
//! policy parsed and generated [`TEST_DRAWS`] passwords; reading answers
//! the text as stored; a missing policy is a 404 ("policy does not exist")
//! for read and generate; delete answers 204 whether or not it existed; the
//! list is a 404 with no errors when empty. None needs sudo. A write on a
//! standby fails read-only at its storage write and is forwarded.

use base64::Engine;
use serde_json::{Map, Value};

use arca_sdk::{Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, Response};

use super::Sys;

/// Passwords generated from a policy before it is stored.
const TEST_DRAWS: usize = 10;

fn missing() -> LogicalError {
    LogicalError::Status {
        status: 404,
        message: "policy does not exist".into(),
    }
}

impl Sys {
    async fn password_policy_list(&self, _c: Ctx<'_>) -> HandlerResult {
        let st = self.core()?.unsealed()?;
        let names = st.password_policies.list().await?;
        if names.is_empty() {
            return Err(LogicalError::NotFound);
        }
        Ok(Some(Response::list(names)))
    }

    async fn password_policy_read(&self, c: Ctx<'_>) -> HandlerResult {
        let st = self.core()?.unsealed()?;
        let name = c.data.str_or("name", "")?;
        let text = st
            .password_policies
            .text(&name)
            .await?
            .ok_or_else(missing)?;
        let mut data = Map::new();
        data.insert("policy".into(), Value::from(text));
        Ok(Some(Response::data(data)))
    }

    async fn password_policy_write(&self, c: Ctx<'_>) -> HandlerResult {
        let st = self.core()?.unsealed()?;
        let name = c.data.str_or("name", "")?;
        if name.is_empty() || name.contains('/') {
            return Err(LogicalError::invalid(format!(
                "invalid password policy name {name:?}: it must not be empty or contain \"/\""
            )));
        }
        let mut text = c.data.get_str("policy")?.unwrap_or_default();
        if text.is_empty() {
            return Err(LogicalError::invalid("missing policy"));
        }
        // As Vault: the policy may be sent base64-encoded.
        if let Some(decoded) = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
        {
            text = decoded;
        }
        let policy = crate::password_policies::parse(&text)
            .map_err(|e| LogicalError::invalid(format!("invalid password policy: {e}")))?;
        for _ in 0..TEST_DRAWS {
            let pw = policy.generate().map_err(|e| {
                LogicalError::invalid(format!(
                    "unable to generate a password from the provided policy: {e}"
                ))
            })?;
            if !policy.passes(&pw) {
                return Err(LogicalError::invalid(
                    "unable to generate a password from the provided policy: are the rules impossible?",
                ));
            }
        }
        st.password_policies.put(&name, &text).await?;
        Ok(None)
    }

    async fn password_policy_delete(&self, c: Ctx<'_>) -> HandlerResult {
        let st = self.core()?.unsealed()?;
        let name = c.data.str_or("name", "")?;
        if !name.is_empty() && !name.contains('/') {
            st.password_policies.delete(&name).await?;
        }
        Ok(None)
    }

    async fn password_policy_generate(&self, c: Ctx<'_>) -> HandlerResult {
        let st = self.core()?.unsealed()?;
        let name = c.data.str_or("name", "")?;
        let policy = st.password_policies.get(&name).await?.ok_or_else(missing)?;
        let password = policy.generate().map_err(|e| {
            LogicalError::internal(format!("failed to generate password from policy: {e}"))
        })?;
        let mut data = Map::new();
        data.insert("password".into(), Value::from(password));
        Ok(Some(Response::data(data)))
    }
}

fn name_field() -> Field {
    Field::new(
        "name",
        FieldType::String,
        "The name of the password policy.",
    )
}

pub(super) fn paths() -> Vec<Path<Sys>> {
    vec![
        Path::new("policies/password/?")
            .op(Operation::List, |b: &Sys, c| {
                Box::pin(b.password_policy_list(c))
            })
            .help("List the password policies."),
        Path::new("policies/password/(?P<name>.+)/generate")
            .field(name_field())
            .op(Operation::Read, |b: &Sys, c| {
                Box::pin(b.password_policy_generate(c))
            })
            .help("Generate a password from an existing password policy."),
        Path::new("policies/password/(?P<name>.+)")
            .field(name_field())
            .field(Field::new(
                "policy",
                FieldType::String,
                "The password policy: `length = N` and `rule \"charset\" { charset = \"...\" min-chars = N }` blocks (HCL or JSON, optionally base64-encoded).",
            ))
            .op(Operation::Read, |b: &Sys, c| {
                Box::pin(b.password_policy_read(c))
            })
            .op(Operation::Update, |b: &Sys, c| {
                Box::pin(b.password_policy_write(c))
            })
            .op(Operation::Delete, |b: &Sys, c| {
                Box::pin(b.password_policy_delete(c))
            })
            .help("Read, write or delete a password policy."),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use arca_sdk::{Backend, Request};

    #[tokio::test]
    async fn the_paths_lint_clean_and_route_generate_apart() {
        let f = arca_sdk::Framework::new(
            "system",
            Sys {
                core: std::sync::Weak::new(),
            },
            paths(),
        );
        assert!(f.lint().is_empty(), "{:?}", f.lint());
        let storage = arca_sdk::testing::InmemStorage::new();
        let run = |op, path: &str| {
            let req = Request::new(op, path);
            let f = &f;
            let storage = &storage;
            async move { f.handle(&req, storage).await.unwrap_err() }
        };
        // `<name>/generate` only reads: a write there is not a policy write.
        assert_eq!(
            run(Operation::Update, "policies/password/x/generate").await,
            LogicalError::UnsupportedOperation
        );
        // These reach their handlers (which find no core here).
        for (op, path) in [
            (Operation::Read, "policies/password/x/generate"),
            (Operation::Update, "policies/password/x"),
            (Operation::Read, "policies/password/generate"),
            (Operation::List, "policies/password"),
            (Operation::List, "policies/password/"),
        ] {
            assert_eq!(run(op, path).await, LogicalError::Sealed, "{op:?} {path}");
        }
    }
}
