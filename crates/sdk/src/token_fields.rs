//! The token fields every auth method accepts on its roles and users
//! (Vault's `tokenutil`): `token_policies`, `token_ttl`, `token_max_ttl`,
//! `token_period`, `token_num_uses`, `token_no_default_policy`,
//! `token_explicit_max_ttl`, `token_type`, `token_bound_cidrs`, with the
//! deprecated `policies`, `ttl`, `max_ttl`, `period`, `bound_cidrs` as
//! aliases.
//!
//! Invariants: a combination that cannot work (a periodic or limited-use
//! batch token) is refused with a 400 that says so; a TTL above the
//! max is refused at write time, as Vault does; bound CIDRs are parsed
//! (and refused when malformed) at write time and stored normalised.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::field::{Field, FieldData, FieldType};
use crate::logical::{Auth, LogicalError};

/// What a role or user says about the tokens its logins get.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TokenParams {
    pub token_policies: Vec<String>,
    pub token_ttl: u64,
    pub token_max_ttl: u64,
    pub token_period: u64,
    pub token_num_uses: i64,
    pub token_no_default_policy: bool,
    pub token_explicit_max_ttl: u64,
    /// `default`, `service` or `batch` (token roles also take
    /// `default-service` and `default-batch`).
    pub token_type: String,
    /// CIDR blocks the tokens may be used from (normalised).
    pub token_bound_cidrs: Vec<String>,
}

/// The field declarations, to add to a path's own.
pub fn fields() -> Vec<Field> {
    use FieldType::*;
    vec![
        Field::new(
            "token_policies",
            CommaStringSlice,
            "Policies of the tokens logins get.",
        ),
        Field::new(
            "policies",
            CommaStringSlice,
            "Deprecated: use token_policies.",
        ),
        Field::new(
            "token_ttl",
            Duration,
            "Initial TTL of the tokens logins get.",
        ),
        Field::new("ttl", Duration, "Deprecated: use token_ttl."),
        Field::new(
            "token_max_ttl",
            Duration,
            "Maximum life of the tokens (renewals stop there).",
        ),
        Field::new("max_ttl", Duration, "Deprecated: use token_max_ttl."),
        Field::new(
            "token_period",
            Duration,
            "Makes the tokens periodic with this period.",
        ),
        Field::new("period", Duration, "Deprecated: use token_period."),
        Field::new("token_num_uses", Int, "Uses of each token (0: unlimited)."),
        Field::new(
            "token_no_default_policy",
            Bool,
            "Leave the default policy out of the tokens.",
        ),
        Field::new(
            "token_explicit_max_ttl",
            Duration,
            "Hard limit on the tokens' life, even for periodic tokens.",
        ),
        Field::new(
            "token_type",
            String,
            "Token type: default, service or batch.",
        )
        .allowed(&[
            "",
            "default",
            "service",
            "batch",
            "default-service",
            "default-batch",
        ]),
        Field::new(
            "token_bound_cidrs",
            CommaStringSlice,
            "CIDR blocks the tokens may be used from (empty: anywhere).",
        ),
        Field::new(
            "bound_cidrs",
            CommaStringSlice,
            "Deprecated: use token_bound_cidrs.",
        ),
    ]
}

impl TokenParams {
    /// Applies the fields a write sent (new name first, else the
    /// deprecated alias); fields not sent keep their value. All or
    /// nothing: on an error `self` is unchanged.
    pub fn update(&mut self, d: &FieldData) -> Result<(), LogicalError> {
        let mut next = self.clone();
        next.apply(d)?;
        *self = next;
        Ok(())
    }

    fn apply(&mut self, d: &FieldData) -> Result<(), LogicalError> {
        let list =
            |new: &str, old: &str| -> Result<Option<Vec<std::string::String>>, LogicalError> {
                Ok(match d.get_list(new)? {
                    Some(v) => Some(v),
                    None => d.get_list(old)?,
                })
            };
        let dur = |new: &str, old: &str| -> Result<Option<u64>, LogicalError> {
            Ok(match d.get_duration(new)? {
                Some(v) => Some(v),
                None => d.get_duration(old)?,
            })
        };
        if let Some(p) = list("token_policies", "policies")? {
            self.token_policies = clean_policies(p);
        }
        if let Some(v) = dur("token_ttl", "ttl")? {
            self.token_ttl = v;
        }
        if let Some(v) = dur("token_max_ttl", "max_ttl")? {
            self.token_max_ttl = v;
        }
        if let Some(v) = dur("token_period", "period")? {
            self.token_period = v;
        }
        if let Some(v) = d.get_i64("token_num_uses")? {
            if v < 0 {
                return Err(LogicalError::invalid("token_num_uses cannot be negative"));
            }
            self.token_num_uses = v;
        }
        if let Some(v) = d.get_bool("token_no_default_policy")? {
            self.token_no_default_policy = v;
        }
        if let Some(v) = d.get_duration("token_explicit_max_ttl")? {
            self.token_explicit_max_ttl = v;
        }
        if let Some(t) = d.get_str("token_type")? {
            match t.as_str() {
                "" | "default" | "service" | "default-service" | "batch" | "default-batch" => {
                    self.token_type = if t.is_empty() { "default".into() } else { t }
                }
                other => {
                    return Err(LogicalError::invalid(format!(
                        "invalid token_type {other:?}: use default, service or batch"
                    )))
                }
            }
        }
        if self.is_batch() {
            if self.token_period > 0 {
                return Err(LogicalError::invalid(
                    "batch tokens cannot be periodic: remove token_period or use token_type=service",
                ));
            }
            if self.token_num_uses > 0 {
                return Err(LogicalError::invalid(
                    "batch tokens cannot be limited-use: remove token_num_uses or use token_type=service",
                ));
            }
        }
        if let Some(c) = list("token_bound_cidrs", "bound_cidrs")? {
            self.token_bound_cidrs = crate::cidr::to_strings(&crate::cidr::parse(&c)?);
        }
        if self.token_max_ttl > 0 && self.token_ttl > self.token_max_ttl {
            return Err(LogicalError::invalid(
                "\"token_ttl\" value must be less than or equal to \"token_max_ttl\" value",
            ));
        }
        Ok(())
    }

    /// The fields as a read shows them.
    pub fn to_json(&self) -> Map<String, Value> {
        match json!({
            "token_policies": self.token_policies,
            "token_ttl": self.token_ttl,
            "token_max_ttl": self.token_max_ttl,
            "token_period": self.token_period,
            "token_num_uses": self.token_num_uses,
            "token_no_default_policy": self.token_no_default_policy,
            "token_explicit_max_ttl": self.token_explicit_max_ttl,
            "token_type": if self.token_type.is_empty() { "default" } else { self.token_type.as_str() },
            "token_bound_cidrs": self.token_bound_cidrs,
        }) {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    /// Do the tokens come out as batch tokens?
    pub fn is_batch(&self) -> bool {
        matches!(self.token_type.as_str(), "batch" | "default-batch")
    }

    /// Fills a login's [`Auth`] with these settings.
    pub fn fill(&self, auth: &mut Auth) {
        auth.policies = self.token_policies.clone();
        auth.token_policies = self.token_policies.clone();
        auth.ttl = self.token_ttl;
        auth.max_ttl = self.token_max_ttl;
        auth.period = self.token_period;
        auth.num_uses = self.token_num_uses;
        auth.no_default_policy = self.token_no_default_policy;
        auth.explicit_max_ttl = self.token_explicit_max_ttl;
        // `default` leaves the choice to the auth mount's token type.
        auth.token_type = match self.token_type.as_str() {
            "" | "default" => "default",
            _ if self.is_batch() => "batch",
            _ => "service",
        }
        .into();
        auth.renewable = !self.is_batch();
        auth.bound_cidrs = self.token_bound_cidrs.clone();
    }
}

/// What a login kept under `key` in its `internal_data` (the user or role
/// it was for), read back by the method's auth-renew callback; a 400 when
/// the request is not a renewal or the login kept nothing there.
pub fn renewing(req: &crate::Request, key: &str) -> Result<String, LogicalError> {
    let a = req
        .auth
        .as_ref()
        .ok_or_else(|| LogicalError::invalid("no login to renew"))?;
    match a.internal_data.get(key).and_then(Value::as_str) {
        Some(v) if !v.is_empty() => Ok(v.to_string()),
        _ => Err(LogicalError::invalid(format!(
            "the login has no {key} to renew it by"
        ))),
    }
}

/// An auth-renew callback's answer: the token settings as they are now.
pub fn renewed(params: &TokenParams) -> crate::Response {
    let mut auth = Auth::default();
    params.fill(&mut auth);
    crate::Response::login(auth)
}

/// Policy names as stored: lower-cased, trimmed, without empties and
/// duplicates, sorted.
pub fn clean_policies(v: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = v
        .into_iter()
        .map(|p| p.trim().to_lowercase())
        .filter(|p| !p.is_empty())
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(v: Value) -> FieldData {
        let d = FieldData::new(v.as_object().unwrap().clone(), &fields());
        d.validate().unwrap();
        d
    }

    #[test]
    fn new_names_deprecated_aliases_and_refusals() {
        let mut p = TokenParams::default();
        p.update(&data(
            json!({"policies": "B,a", "ttl": "1h", "token_max_ttl": "2h"}),
        ))
        .unwrap();
        assert_eq!(p.token_policies, ["a", "b"]);
        assert_eq!((p.token_ttl, p.token_max_ttl), (3600, 7200));
        p.update(&data(json!({"token_policies": ["c"]}))).unwrap();
        assert_eq!(p.token_policies, ["c"]);
        assert_eq!(p.token_ttl, 3600, "unsent fields keep their value");
        let mut q = p.clone();
        assert!(q
            .update(&data(json!({"token_type": "batch", "token_period": "1h"})))
            .is_err());
        let bulk = FieldData::new(
            json!({"token_type": "bulk"}).as_object().unwrap().clone(),
            &fields(),
        );
        assert!(q.update(&bulk).is_err());
        assert!(q
            .update(&data(json!({"token_bound_cidrs": "10.0.0.0/8,bad"})))
            .is_err());
        assert!(q.update(&data(json!({"token_ttl": "3h"}))).is_err());
        assert_eq!(q, p, "a refused update changes nothing");
        p.update(&data(json!({"bound_cidrs": "10.1.2.3/8, 127.0.0.1"})))
            .unwrap();
        assert_eq!(p.token_bound_cidrs, ["10.0.0.0/8", "127.0.0.1/32"]);
        let mut a = Auth::default();
        p.fill(&mut a);
        assert_eq!((a.ttl, a.max_ttl, a.renewable), (3600, 7200, true));
        assert_eq!(a.bound_cidrs, ["10.0.0.0/8", "127.0.0.1/32"]);
    }
}
