//! `role/:name` and LIST `role`: what a token must say to log in with a
//! role, and the tokens its logins get.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use arca_sdk::storage::{get_json, put_json};
use arca_sdk::token_fields::{self, TokenParams};
use arca_sdk::{Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, Response};

use crate::config::refuse_unavailable;
use crate::token::{Leeways, DEFAULT_CLOCK_SKEW, DEFAULT_LEEWAY};
use crate::JwtAuth;

/// Metadata keys a claim mapping may not write.
const RESERVED_METADATA: &[&str] = &["role"];

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Role {
    /// Always `jwt` (the browser flow's `oidc` is not built).
    pub role_type: String,
    pub bound_audiences: Vec<String>,
    pub bound_subject: String,
    /// `string` or `glob`.
    pub bound_claims_type: String,
    pub bound_claims: Map<String, Value>,
    /// Claim (name or JSON pointer) -> metadata key.
    pub claim_mappings: BTreeMap<String, String>,
    pub user_claim: String,
    pub user_claim_json_pointer: bool,
    /// Claim (name or JSON pointer) listing the user's groups: each is
    /// reported as a group alias (identity external groups).
    pub groups_claim: String,
    /// Seconds; 0: the default; negative: none.
    pub clock_skew_leeway: i64,
    pub expiration_leeway: i64,
    pub not_before_leeway: i64,
    #[serde(flatten)]
    pub token: TokenParams,
}

impl Role {
    pub fn leeways(&self) -> Leeways {
        Leeways {
            clock_skew: self.clock_skew_leeway,
            expiration: self.expiration_leeway,
            not_before: self.not_before_leeway,
        }
    }

    pub fn is_glob(&self) -> bool {
        self.bound_claims_type == "glob"
    }
}

pub fn role_key(name: &str) -> String {
    format!("role/{}", name.to_lowercase())
}

pub async fn load(c: &Ctx<'_>, name: &str) -> Result<Option<Role>, LogicalError> {
    Ok(get_json(c.storage, &role_key(name)).await?)
}

/// A role name: what Vault accepts in its paths.
macro_rules! role_name {
    () => {
        r"(?P<name>\w(?:[\w.-]*\w)?)"
    };
}

/// Role fields of the browser OIDC flow and of identity, refused when
/// given a value.
const NOT_AVAILABLE: &[(&str, &str)] = &[
    (
        "allowed_redirect_uris",
        "the browser OIDC login flow is not built",
    ),
    ("oidc_scopes", "the browser OIDC login flow is not built"),
    ("callback_mode", "the browser OIDC login flow is not built"),
    ("poll_interval", "the browser OIDC login flow is not built"),
    ("max_age", "the browser OIDC login flow is not built"),
    (
        "oauth2_metadata",
        "the browser OIDC login flow is not built",
    ),
    (
        "verbose_oidc_logging",
        "the browser OIDC login flow is not built",
    ),
    (
        "oidc_disable_confirmation",
        "the browser OIDC login flow is not built",
    ),
    (
        "token_policies_template_claims",
        "policy templates over claims are not built",
    ),
    (
        "disable_bound_claims_parsing",
        "bound_claims values are never split at commas here, so there is nothing to disable",
    ),
];

fn fields() -> Vec<Field> {
    use FieldType::*;
    let mut f = vec![
        Field::new("name", String, "Name of the role."),
        Field::new("role_type", String, "Type of the role: jwt (oidc is not available yet)."),
        Field::new(
            "bound_audiences",
            CommaStringSlice,
            "aud values accepted; one must be in the token's aud. Without them a token with an aud is refused.",
        ),
        Field::new("bound_subject", String, "The sub claim required (optional)."),
        Field::new(
            "bound_claims",
            Map,
            "Claims (names or JSON pointers) and the values they must have: a value or a list of accepted values.",
        ),
        Field::new(
            "bound_claims_type",
            String,
            "How bound_claims values match: string (exactly) or glob (* matches any run of characters).",
        )
        .allowed(&["string", "glob"]),
        Field::new(
            "claim_mappings",
            StringMap,
            "Claims (names or JSON pointers) copied into the token's metadata, under the given keys.",
        ),
        Field::new(
            "user_claim",
            String,
            "The claim naming the user (the token's display name); a string claim. Default: sub.",
        ),
        Field::new(
            "user_claim_json_pointer",
            Bool,
            "Read user_claim as a JSON pointer (/a/b) into the claims.",
        ),
        Field::new(
            "clock_skew_leeway",
            Raw,
            "Leeway (seconds or a duration) for nbf, iat and exp: 0 means 60 s, negative means none.",
        )
        .default(DEFAULT_CLOCK_SKEW),
        Field::new(
            "expiration_leeway",
            Raw,
            "For a token without exp: how long after iat/nbf it is valid. 0 means 150 s, negative means none.",
        )
        .default(DEFAULT_LEEWAY),
        Field::new(
            "not_before_leeway",
            Raw,
            "For a token without nbf and iat: how long before exp it is valid. 0 means 150 s, negative means none.",
        )
        .default(DEFAULT_LEEWAY),
        Field::new("num_uses", Int, "Deprecated: use token_num_uses."),
        Field::new(
            "groups_claim",
            String,
            "Claim (name, or JSON pointer /a/b) with the user's groups: external identity groups with an alias of that name on this mount get the user as a member.",
        ),
        Field::new(
            "allowed_redirect_uris",
            CommaStringSlice,
            "Browser OIDC flow: not available yet.",
        ),
        Field::new("oidc_scopes", CommaStringSlice, "Browser OIDC flow: not available yet."),
        Field::new("callback_mode", String, "Browser OIDC flow: not available yet."),
        Field::new("poll_interval", Int, "Browser OIDC flow: not available yet."),
        Field::new("max_age", Duration, "Browser OIDC flow: not available yet."),
        Field::new(
            "oauth2_metadata",
            CommaStringSlice,
            "Browser OIDC flow: not available yet.",
        ),
        Field::new("verbose_oidc_logging", Bool, "Browser OIDC flow: not available yet."),
        Field::new(
            "oidc_disable_confirmation",
            Bool,
            "Browser OIDC flow: not available yet.",
        ),
        Field::new(
            "token_policies_template_claims",
            Bool,
            "Policy templates over claims: not available yet.",
        ),
        Field::new(
            "disable_bound_claims_parsing",
            Bool,
            "Not needed: bound_claims values are never split at commas.",
        ),
    ];
    f.extend(token_fields::fields());
    f
}

pub fn paths() -> Vec<Path<JwtAuth>> {
    vec![
        Path::new("role/?")
            .op(Operation::List, |b: &JwtAuth, c| Box::pin(b.list_roles(c)))
            .help("List the roles."),
        fields()
            .into_iter()
            .fold(Path::new(concat!("role/", role_name!())), |p, f| p.field(f))
            .existence(|b: &JwtAuth, c| Box::pin(b.role_exists(c)))
            .op(Operation::Create, |b: &JwtAuth, c| Box::pin(b.write_role(c)))
            .op(Operation::Update, |b: &JwtAuth, c| Box::pin(b.write_role(c)))
            .op(Operation::Read, |b: &JwtAuth, c| Box::pin(b.read_role(c)))
            .op(Operation::Delete, |b: &JwtAuth, c| Box::pin(b.delete_role(c)))
            .help("Create, read, update or delete a role: the claims a token must have and the tokens its logins get."),
    ]
}

/// A leeway as sent: seconds (possibly negative) or a duration string
/// (`"2m"`, `"-1"`).
fn signed_seconds(name: &str, v: &Value) -> Result<i64, LogicalError> {
    let bad = |why: &str| LogicalError::invalid(format!("invalid {name}: {why}"));
    match v {
        Value::Null => Ok(0),
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .ok_or_else(|| bad("not a number of seconds")),
        Value::String(s) => {
            let s = s.trim();
            let (neg, abs) = match s.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, s),
            };
            let secs = arca_sdk::field::parse_duration_str(abs).map_err(|e| bad(&e))?;
            let secs = i64::try_from(secs).map_err(|_| bad("too large"))?;
            Ok(if neg { -secs } else { secs })
        }
        _ => Err(bad("expected seconds or a duration such as \"2m\"")),
    }
}

/// Checks `bound_claims` values: scalars or lists of scalars; strings only
/// for globs.
fn check_bound_claims(claims: &Map<String, Value>, glob: bool) -> Result<(), LogicalError> {
    for (k, v) in claims {
        let items: Vec<&Value> = match v {
            Value::Array(a) => a.iter().collect(),
            other => vec![other],
        };
        for item in items {
            let ok = match item {
                Value::String(_) => true,
                Value::Bool(_) | Value::Number(_) => !glob,
                _ => false,
            };
            if !ok {
                return Err(LogicalError::invalid(format!(
                    "bound_claims value of {k:?} must be {} or a list of them",
                    if glob {
                        "a string"
                    } else {
                        "a string, boolean or number"
                    }
                )));
            }
        }
    }
    Ok(())
}

impl JwtAuth {
    async fn role_exists(&self, c: Ctx<'_>) -> Result<bool, LogicalError> {
        let name = c.data.str_or("name", "")?;
        Ok(load(&c, &name).await?.is_some())
    }

    async fn list_roles(&self, c: Ctx<'_>) -> HandlerResult {
        Ok(Some(Response::list(c.storage.list("role/").await?)))
    }

    async fn delete_role(&self, c: Ctx<'_>) -> HandlerResult {
        let name = c.data.str_or("name", "")?;
        c.storage.delete(&role_key(&name)).await?;
        Ok(None)
    }

    async fn read_role(&self, c: Ctx<'_>) -> HandlerResult {
        let name = c.data.str_or("name", "")?;
        let Some(r) = load(&c, &name).await? else {
            return Ok(None);
        };
        let mut data = r.token.to_json();
        let fields = json!({
            "role_type": r.role_type,
            "bound_audiences": r.bound_audiences,
            "bound_subject": r.bound_subject,
            "bound_claims_type": r.bound_claims_type,
            "bound_claims": r.bound_claims,
            "claim_mappings": r.claim_mappings,
            "user_claim": r.user_claim,
            "user_claim_json_pointer": r.user_claim_json_pointer,
            "clock_skew_leeway": r.clock_skew_leeway,
            "expiration_leeway": r.expiration_leeway,
            "not_before_leeway": r.not_before_leeway,
            "groups_claim": r.groups_claim,
            // Features not built: always empty.
            "allowed_redirect_uris": Vec::<String>::new(),
            "oidc_scopes": Vec::<String>::new(),
            "oauth2_metadata": Vec::<String>::new(),
            "verbose_oidc_logging": false,
            "max_age": 0,
            "token_policies_template_claims": false,
        });
        if let Value::Object(m) = fields {
            data.extend(m);
        }
        Ok(Some(Response::data(data)))
    }

    async fn write_role(&self, c: Ctx<'_>) -> HandlerResult {
        let name = c.data.str_or("name", "")?.to_lowercase();
        if name.is_empty() {
            return Err(LogicalError::invalid("missing role name"));
        }
        refuse_unavailable(&c, NOT_AVAILABLE)?;
        let d = &c.data;
        let existing = load(&c, &name).await?;
        let creating = existing.is_none();
        let mut role = existing.unwrap_or_else(|| Role {
            clock_skew_leeway: DEFAULT_CLOCK_SKEW,
            expiration_leeway: DEFAULT_LEEWAY,
            not_before_leeway: DEFAULT_LEEWAY,
            bound_claims_type: "string".into(),
            user_claim: "sub".into(),
            ..Default::default()
        });

        // Vault's default role type is oidc, the browser flow.
        let role_type = match d.get_str("role_type")? {
            Some(t) if !t.trim().is_empty() => t.trim().to_lowercase(),
            _ if creating => "oidc".into(),
            _ => role.role_type.clone(),
        };
        match role_type.as_str() {
            "jwt" => role.role_type = role_type,
            "oidc" => {
                return Err(LogicalError::invalid(
                    "role_type \"oidc\" (the default) is not available yet: the browser OIDC login flow is not built; set role_type=jwt",
                ))
            }
            other => {
                return Err(LogicalError::invalid(format!(
                    "invalid role_type {other:?}: must be jwt"
                )))
            }
        }

        role.token.update(d)?;
        if d.is_set("num_uses") && !d.is_set("token_num_uses") {
            let n = d.get_i64("num_uses")?.unwrap_or(0);
            if n < 0 {
                return Err(LogicalError::invalid("num_uses cannot be negative"));
            }
            role.token.token_num_uses = n;
        }
        let max_lease = self.system.max_lease_ttl();
        if role.token.token_period > max_lease {
            return Err(LogicalError::invalid(format!(
                "token_period of {}s is greater than the mount's maximum lease TTL of {max_lease}s",
                role.token.token_period
            )));
        }

        for (field, slot) in [
            ("clock_skew_leeway", &mut role.clock_skew_leeway),
            ("expiration_leeway", &mut role.expiration_leeway),
            ("not_before_leeway", &mut role.not_before_leeway),
        ] {
            if d.is_set(field) {
                *slot = signed_seconds(field, &d.get(field)?.unwrap_or(Value::Null))?;
            }
        }
        if let Some(a) = d.get_list("bound_audiences")? {
            role.bound_audiences = a.into_iter().filter(|s| !s.is_empty()).collect();
        }
        if let Some(s) = d.get_str("bound_subject")? {
            role.bound_subject = s;
        }
        if let Some(t) = d.get_str("bound_claims_type")? {
            role.bound_claims_type = if t.is_empty() { "string".into() } else { t };
        }
        if d.is_set("bound_claims") {
            role.bound_claims = d.get_map("bound_claims")?.unwrap_or_default();
        }
        check_bound_claims(&role.bound_claims, role.is_glob())?;
        if d.is_set("claim_mappings") {
            let mut mappings = BTreeMap::new();
            let mut targets = std::collections::BTreeSet::new();
            for (claim, target) in d.get_map("claim_mappings")?.unwrap_or_default() {
                let target = target.as_str().unwrap_or_default().to_string();
                if target.is_empty() {
                    return Err(LogicalError::invalid(format!(
                        "claim_mappings: the claim {claim:?} is mapped to an empty metadata key"
                    )));
                }
                if RESERVED_METADATA.contains(&target.as_str()) {
                    return Err(LogicalError::invalid(format!(
                        "claim_mappings: the metadata key {target:?} is reserved"
                    )));
                }
                if !targets.insert(target.clone()) {
                    return Err(LogicalError::invalid(format!(
                        "claim_mappings: several claims are mapped to the metadata key {target:?}"
                    )));
                }
                mappings.insert(claim, target);
            }
            role.claim_mappings = mappings;
        }
        if let Some(u) = d.get_str("user_claim")? {
            role.user_claim = u.trim().to_string();
        }
        if role.user_claim.is_empty() {
            return Err(LogicalError::invalid("a role needs a user_claim"));
        }
        if let Some(g) = d.get_str("groups_claim")? {
            role.groups_claim = g.trim().to_string();
        }
        if let Some(p) = d.get_bool("user_claim_json_pointer")? {
            role.user_claim_json_pointer = p;
        }
        if role.user_claim_json_pointer && !role.user_claim.starts_with('/') {
            return Err(LogicalError::invalid(
                "user_claim_json_pointer is set but user_claim is not a JSON pointer (it must start with /)",
            ));
        }
        if role.bound_audiences.is_empty()
            && role.bound_subject.is_empty()
            && role.bound_claims.is_empty()
            && role.token.token_bound_cidrs.is_empty()
        {
            return Err(LogicalError::invalid(
                "a jwt role needs at least one bound constraint: bound_audiences, bound_subject, bound_claims or token_bound_cidrs",
            ));
        }

        put_json(c.storage, &role_key(&name), &role).await?;
        if role.token.token_max_ttl > max_lease {
            return Ok(Some(Response::default().with_warning(format!(
                "token_max_ttl of {}s is greater than the mount's maximum lease TTL of {max_lease}s: the tokens' max TTL is capped there",
                role.token.token_max_ttl
            ))));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leeways_take_seconds_durations_and_negatives() {
        assert_eq!(signed_seconds("x", &json!(-1)).unwrap(), -1);
        assert_eq!(signed_seconds("x", &json!("-1")).unwrap(), -1);
        assert_eq!(signed_seconds("x", &json!("2m")).unwrap(), 120);
        assert_eq!(signed_seconds("x", &json!("-5s")).unwrap(), -5);
        assert_eq!(signed_seconds("x", &json!(30)).unwrap(), 30);
        assert!(signed_seconds("x", &json!("soon")).is_err());
        assert!(signed_seconds("x", &json!([1])).is_err());
    }
}
