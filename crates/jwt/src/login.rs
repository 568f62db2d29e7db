//! `login` and the renewal of the tokens it creates.

use std::sync::Arc;

use serde_json::Value;

use arca_sdk::{cidr, token_fields, Auth, Ctx, HandlerResult, LogicalError, Response};

use crate::config::{self, KeySource};
use crate::keys::{self, Key};
use crate::role;
use crate::token::{self, Expected, VerifyError};
use crate::JwtAuth;

fn refused(why: impl std::fmt::Display) -> LogicalError {
    LogicalError::invalid(format!("error validating token: {why}"))
}

impl JwtAuth {
    /// The PEM keys of the config, parsed once per distinct list.
    fn static_keys(&self, pems: &[String]) -> Result<Arc<Vec<Key>>, LogicalError> {
        {
            let g = self.static_keys.read().unwrap_or_else(|e| e.into_inner());
            if let Some((p, k)) = g.as_ref() {
                if p.as_slice() == pems {
                    return Ok(k.clone());
                }
            }
        }
        let parsed = pems
            .iter()
            .map(|p| keys::parse_pem_key(p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                LogicalError::internal(format!("a stored public key cannot be used: {e}"))
            })?;
        let parsed = Arc::new(parsed);
        *self.static_keys.write().unwrap_or_else(|e| e.into_inner()) =
            Some((pems.to_vec(), parsed.clone()));
        Ok(parsed)
    }

    pub(crate) async fn login(&self, c: Ctx<'_>) -> HandlerResult {
        let cfg = config::load(&c).await?.ok_or_else(|| {
            LogicalError::invalid(
                "the jwt auth method is not configured yet (write its config first)",
            )
        })?;
        let mut role_name = c.data.str_or("role", "")?.trim().to_lowercase();
        if role_name.is_empty() {
            role_name = cfg.default_role.clone();
        }
        if role_name.is_empty() {
            return Err(LogicalError::invalid(
                "missing role (and the config has no default_role)",
            ));
        }
        let role = role::load(&c, &role_name).await?.ok_or_else(|| {
            LogicalError::invalid(format!("role {role_name:?} could not be found"))
        })?;
        if role.role_type != "jwt" {
            return Err(LogicalError::invalid(format!(
                "role {role_name:?} is not a jwt role"
            )));
        }
        let jwt = c.data.str_or("jwt", "")?;
        if jwt.trim().is_empty() {
            return Err(LogicalError::invalid("missing jwt"));
        }
        // As in Vault: a client outside the role's token_bound_cidrs is
        // refused before its token is looked at.
        if !role.token.token_bound_cidrs.is_empty() {
            let blocks = cidr::parse(&role.token.token_bound_cidrs)?;
            let inside = c
                .req
                .connection
                .as_ref()
                .is_some_and(|conn| cidr::contains(&blocks, conn.remote_addr));
            if !inside {
                return Err(LogicalError::PermissionDenied);
            }
        }

        let tok = token::parse(&jwt, &cfg.jwt_supported_algs).map_err(refused)?;
        let now = self.system.now();
        match cfg.key_source() {
            KeySource::Static(pems) => {
                let keys = self.static_keys(pems)?;
                tok.verify(&keys, false).map_err(refused)?;
            }
            KeySource::Remote(src) => {
                let fetched = self.keys.keys(&src, now).await.map_err(refused)?;
                if let Err(first) = tok.verify(&fetched.keys, true) {
                    // A key id the cache lacks, or a token without key id
                    // that no cached key verifies: the set may have
                    // rotated. Fetch it again (rate-limited), retry once.
                    if !(matches!(first, VerifyError::UnknownKid(_)) || tok.kid.is_none()) {
                        return Err(refused(first));
                    }
                    match self.keys.refresh(&src, now, Some(fetched.generation)).await {
                        Ok(Some(newer)) => tok.verify(&newer.keys, true).map_err(refused)?,
                        _ => return Err(refused(first)),
                    }
                }
            }
        }

        let claims = tok.claims().map_err(refused)?;
        token::validate_claims(
            &claims,
            &Expected {
                issuer: &cfg.bound_issuer,
                subject: &role.bound_subject,
                audiences: &role.bound_audiences,
                leeways: role.leeways(),
                now,
            },
        )
        .map_err(refused)?;

        let user = match token::lookup(&claims, &role.user_claim, role.user_claim_json_pointer) {
            None => {
                return Err(LogicalError::invalid(format!(
                    "the token has no {:?} claim (the role's user_claim)",
                    role.user_claim
                )))
            }
            Some(Value::String(s)) => s.clone(),
            Some(_) => {
                return Err(LogicalError::invalid(format!(
                    "the {:?} claim (the role's user_claim) is not a string",
                    role.user_claim
                )))
            }
        };
        let mut metadata = std::collections::HashMap::new();
        for (claim, key) in &role.claim_mappings {
            match token::lookup_auto(&claims, claim) {
                None => {}
                Some(Value::String(s)) => {
                    metadata.insert(key.clone(), s.clone());
                }
                Some(_) => {
                    return Err(LogicalError::invalid(format!(
                        "the {claim:?} claim named in claim_mappings is not a string"
                    )))
                }
            }
        }
        token::validate_bound_claims(&role.bound_claims, role.is_glob(), &claims)
            .map_err(|e| LogicalError::invalid(format!("error validating claims: {e}")))?;

        let mut group_aliases = Vec::new();
        if !role.groups_claim.is_empty() {
            let groups = token::lookup_auto(&claims, &role.groups_claim).ok_or_else(|| {
                LogicalError::invalid(format!(
                    "{:?} claim not found in token (the role's groups_claim)",
                    role.groups_claim
                ))
            })?;
            let names: Vec<&Value> = match groups {
                Value::Array(a) => a.iter().collect(),
                v => vec![v],
            };
            for n in names {
                match n {
                    Value::String(s) if !s.is_empty() => group_aliases.push(arca_sdk::Alias {
                        name: s.clone(),
                        metadata: Default::default(),
                    }),
                    Value::String(_) => {}
                    _ => {
                        return Err(LogicalError::invalid(format!(
                            "the {:?} claim (the role's groups_claim) is not a string or a list of strings",
                            role.groups_claim
                        )))
                    }
                }
            }
        }
        metadata.insert("role".into(), role_name.clone());
        let mut auth = Auth {
            display_name: user.clone(),
            alias: Some(arca_sdk::Alias {
                name: user,
                metadata: metadata.clone(),
            }),
            group_aliases,
            metadata,
            ..Default::default()
        };
        role.token.fill(&mut auth);
        auth.internal_data
            .insert("role".into(), Value::from(role_name));
        Ok(Some(Response::login(auth)))
    }

    /// A login token is renewed: its role must still exist; the role's
    /// current token settings apply.
    pub(crate) async fn renew(&self, c: Ctx<'_>) -> HandlerResult {
        let name = token_fields::renewing(c.req, "role")?;
        let role = role::load(&c, &name).await?.ok_or_else(|| {
            LogicalError::invalid(format!("role {name:?} does not exist during renewal"))
        })?;
        Ok(Some(token_fields::renewed(&role.token)))
    }
}
