//! Vault-compatible ACL policies: parse (HCL or JSON), compile into an
//! [`Acl`], evaluate requests. Pure: no I/O, no async, no clocks.
//!
//! ```
//! let p = arca_policy::parse("dev", r#"
//!     path "secret/*"         { capabilities = ["read", "list"] }
//!     path "secret/admin/*"   { capabilities = ["deny"] }
//! "#).unwrap();
//! let acl = arca_policy::Acl::new(&[p]);
//! assert!(acl.check("secret/app", "read", None).allowed);
//! assert!(!acl.check("secret/admin/key", "read", None).allowed);
//! assert_eq!(acl.capabilities("secret/app"), ["list", "read"]);
//! ```
//!
//! Invariants:
//! - Deny by default: a path no rule matches is denied; an empty policy
//!   grants nothing.
//! - Patterns: an exact path; a trailing `*` makes a prefix glob (`*` is
//!   special only at the end); a `+` segment matches exactly one path
//!   segment. The deciding rule is the exact match, else the highest-priority
//!   non-exact match (see [`acl`] for the order); rules for different
//!   patterns never combine.
//! - The same pattern in several rules or policies merges: capabilities
//!   union, and `deny` anywhere leaves only `deny` for that pattern.
//! - Policy names are lower-cased. `root` is built in: it can be neither
//!   written nor deleted ([`ensure_writable`], [`ensure_deletable`]) and any
//!   policy set containing it compiles to [`Acl::root`]. `default` may be
//!   rewritten but not deleted.
//! - [`Policy::raw`] is the text exactly as supplied; parsing never rewrites
//!   it.
//! - Fail closed: a policy whose path uses identity templating
//!   (`{{identity...}}`) is refused by [`parse`] with
//!   [`PolicyError::TemplatedPath`] (Arca cannot resolve templates, and a
//!   dropped templated `deny` would deny nothing); see [`acl`] for the
//!   hand-built case.
//! - Parameter constraints apply to exactly the operations Vault checks:
//!   read (its query parameters), create, update, patch and recover — not
//!   list or delete ([`Operation::checks_parameters`]).
//! - Every error names what is wrong (capability, key, field) and where
//!   (the `path` block, and its line for HCL; line and column for syntax
//!   errors).

pub mod acl;
mod capability;
mod error;
mod parse;

pub use acl::{Acl, AclDecision, AclRequest};
pub use capability::{Capabilities, Capability, Operation};
pub use error::{PolicyError, RuleLocation};
pub use parse::{parse, PathRule, Permissions, Policy};

/// The built-in policy granting everything; never stored.
pub const ROOT_POLICY: &str = "root";
/// The policy attached to tokens by default; may be edited, not deleted.
pub const DEFAULT_POLICY: &str = "default";
/// Policy of response-wrapping tokens; built in and immutable.
pub const RESPONSE_WRAPPING_POLICY: &str = "response-wrapping";

/// Normalizes a policy name the way Vault does: trimmed and lower-cased.
pub fn normalize_name(name: &str) -> String {
    name.trim().to_lowercase()
}

/// Fails for the built-in policies that cannot be created or changed
/// (`root`, `response-wrapping`). The name is normalized first.
pub fn ensure_writable(name: &str) -> Result<(), PolicyError> {
    let name = normalize_name(name);
    match name.as_str() {
        "" => Err(PolicyError::InvalidName {
            name,
            reason: "name must not be empty".into(),
        }),
        ROOT_POLICY | RESPONSE_WRAPPING_POLICY => Err(PolicyError::Immutable {
            name,
            action: "update",
        }),
        _ => Ok(()),
    }
}

/// Fails for the built-in policies that cannot be deleted (`root`,
/// `default`, `response-wrapping`). The name is normalized first.
pub fn ensure_deletable(name: &str) -> Result<(), PolicyError> {
    let name = normalize_name(name);
    match name.as_str() {
        ROOT_POLICY | DEFAULT_POLICY | RESPONSE_WRAPPING_POLICY => Err(PolicyError::Immutable {
            name,
            action: "delete",
        }),
        _ => Ok(()),
    }
}

/// Arca's built-in `default` policy: the self-service grants every token
/// needs (look itself up, renew and revoke itself, check its capabilities,
/// its cubbyhole, response wrapping, lease renewal and lookup, hashing).
/// Written at initialization; operators may change it afterwards.
pub fn default_policy_text() -> &'static str {
    DEFAULT_POLICY_TEXT
}

/// The policy given to response-wrapping tokens: read the wrapped response
/// from their cubbyhole and unwrap.
pub fn response_wrapping_policy_text() -> &'static str {
    RESPONSE_WRAPPING_POLICY_TEXT
}

const DEFAULT_POLICY_TEXT: &str = r#"# Arca built-in "default" policy: what every token may do for itself.
# Edit it to suit your deployment; it can be changed but not deleted.

# Read the calling token's own properties.
path "auth/token/lookup-self" {
  capabilities = ["read"]
}

# Renew and revoke the calling token.
path "auth/token/renew-self" {
  capabilities = ["update"]
}
path "auth/token/revoke-self" {
  capabilities = ["update"]
}

# Ask which capabilities the calling token has on given paths.
path "sys/capabilities-self" {
  capabilities = ["update"]
}

# The combined ACL of the calling token, for user interfaces.
path "sys/internal/ui/resultant-acl" {
  capabilities = ["read"]
}

# Renew a lease whose ID the caller knows (old and new endpoints).
path "sys/renew" {
  capabilities = ["update"]
}
path "sys/leases/renew" {
  capabilities = ["update"]
}

# Look up a lease whose ID the caller knows.
path "sys/leases/lookup" {
  capabilities = ["update"]
}

# The token's private cubbyhole.
path "cubbyhole/*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}

# Response wrapping: wrap data, inspect and unwrap a wrapping token.
path "sys/wrapping/wrap" {
  capabilities = ["update"]
}
path "sys/wrapping/lookup" {
  capabilities = ["update"]
}
path "sys/wrapping/unwrap" {
  capabilities = ["update"]
}

# Hash data with the general-purpose tools endpoint.
path "sys/tools/hash" {
  capabilities = ["update"]
}
path "sys/tools/hash/*" {
  capabilities = ["update"]
}

# Check on a control group request the caller holds the accessor of.
path "sys/control-group/request" {
  capabilities = ["update"]
}

# Use the authorization endpoint of identity OIDC providers.
path "identity/oidc/provider/+/authorize" {
  capabilities = ["read", "update"]
}
"#;

const RESPONSE_WRAPPING_POLICY_TEXT: &str = r#"# Arca built-in "response-wrapping" policy.
path "cubbyhole/response" {
  capabilities = ["create", "read"]
}
path "sys/wrapping/unwrap" {
  capabilities = ["update"]
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalized() {
        assert_eq!(normalize_name("  Dev-OPS "), "dev-ops");
        assert_eq!(parse("ADMIN", "").unwrap().name, "admin");
    }

    #[test]
    fn builtin_policy_guards() {
        assert_eq!(
            ensure_writable("Root").unwrap_err().to_string(),
            "cannot update \"root\" policy"
        );
        assert!(ensure_writable("response-wrapping").is_err());
        assert!(ensure_writable("default").is_ok());
        assert!(ensure_writable("dev").is_ok());
        assert!(ensure_writable(" ").is_err());
        assert_eq!(
            ensure_deletable("default").unwrap_err().to_string(),
            "cannot delete \"default\" policy"
        );
        assert!(ensure_deletable("root").is_err());
        assert!(ensure_deletable("dev").is_ok());
    }

    #[test]
    fn builtin_texts_parse() {
        let d = parse(DEFAULT_POLICY, default_policy_text()).unwrap();
        assert!(d.rules.len() >= 15);
        assert_eq!(d.raw, default_policy_text());
        let w = parse(RESPONSE_WRAPPING_POLICY, response_wrapping_policy_text()).unwrap();
        let acl = Acl::new(&[w]);
        assert!(acl.check("cubbyhole/response", "read", None).allowed);
        assert!(!acl.check("cubbyhole/other", "read", None).allowed);
    }
}
