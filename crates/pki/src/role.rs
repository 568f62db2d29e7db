//! Roles: what a role allows (names, key types, TTLs, usages), with Vault's
//! field names and defaults, and the name checks issuance applies.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use arca_sdk::{FieldData, LogicalError};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Role {
    pub ttl: u64,
    pub max_ttl: u64,
    pub allow_localhost: bool,
    pub allowed_domains: Vec<String>,
    pub allow_bare_domains: bool,
    pub allow_subdomains: bool,
    pub allow_glob_domains: bool,
    /// Wildcard names (`*.example.com`) may be issued (Vault's default).
    #[serde(default = "yes")]
    pub allow_wildcard_certificates: bool,
    pub allow_any_name: bool,
    pub enforce_hostnames: bool,
    pub allow_ip_sans: bool,
    pub allowed_uri_sans: Vec<String>,
    pub server_flag: bool,
    pub client_flag: bool,
    pub key_type: String,
    pub key_bits: i64,
    pub key_usage: Vec<String>,
    pub ext_key_usage: Vec<String>,
    pub no_store: bool,
    pub generate_lease: bool,
    pub require_cn: bool,
    #[serde(default = "yes")]
    pub use_csr_common_name: bool,
    #[serde(default = "yes")]
    pub use_csr_sans: bool,
    pub organization: Vec<String>,
    pub ou: Vec<String>,
    pub country: Vec<String>,
    pub locality: Vec<String>,
    pub province: Vec<String>,
    pub not_before_duration: u64,
    pub issuer_ref: String,
}

impl Default for Role {
    fn default() -> Self {
        Role {
            ttl: 0,
            max_ttl: 0,
            allow_localhost: true,
            allowed_domains: vec![],
            allow_bare_domains: false,
            allow_subdomains: false,
            allow_glob_domains: false,
            allow_wildcard_certificates: true,
            allow_any_name: false,
            enforce_hostnames: true,
            allow_ip_sans: true,
            allowed_uri_sans: vec![],
            server_flag: true,
            client_flag: true,
            key_type: "rsa".into(),
            key_bits: 2048,
            key_usage: vec![
                "DigitalSignature".into(),
                "KeyAgreement".into(),
                "KeyEncipherment".into(),
            ],
            ext_key_usage: vec![],
            no_store: false,
            generate_lease: false,
            require_cn: true,
            use_csr_common_name: true,
            use_csr_sans: true,
            organization: vec![],
            ou: vec![],
            country: vec![],
            locality: vec![],
            province: vec![],
            not_before_duration: 30,
            issuer_ref: "default".into(),
        }
    }
}

impl Role {
    /// Applies the fields set in a write onto `self` (create or update).
    pub fn update(&mut self, d: &FieldData) -> Result<(), LogicalError> {
        macro_rules! set {
            ($f:ident, bool) => {
                if let Some(v) = d.get_bool(stringify!($f))? {
                    self.$f = v;
                }
            };
            ($f:ident, list) => {
                if let Some(v) = d.get_list(stringify!($f))? {
                    self.$f = v.into_iter().filter(|s| !s.is_empty()).collect();
                }
            };
            ($f:ident, dur) => {
                if let Some(v) = d.get_duration(stringify!($f))? {
                    self.$f = v;
                }
            };
        }
        set!(ttl, dur);
        set!(max_ttl, dur);
        set!(allow_localhost, bool);
        set!(allowed_domains, list);
        set!(allow_bare_domains, bool);
        set!(allow_subdomains, bool);
        set!(allow_glob_domains, bool);
        set!(allow_wildcard_certificates, bool);
        set!(allow_any_name, bool);
        set!(enforce_hostnames, bool);
        set!(allow_ip_sans, bool);
        set!(allowed_uri_sans, list);
        set!(server_flag, bool);
        set!(client_flag, bool);
        set!(key_usage, list);
        set!(ext_key_usage, list);
        set!(no_store, bool);
        set!(generate_lease, bool);
        set!(require_cn, bool);
        set!(use_csr_common_name, bool);
        set!(use_csr_sans, bool);
        set!(organization, list);
        set!(ou, list);
        set!(country, list);
        set!(locality, list);
        set!(province, list);
        set!(not_before_duration, dur);
        if let Some(t) = d.get_str("key_type")? {
            if t != self.key_type {
                // The old size belongs to the old type: take the new default.
                self.key_bits = 0;
            }
            self.key_type = t;
        }
        if let Some(b) = d.get_i64("key_bits")? {
            self.key_bits = b;
        }
        if let Some(r) = d.get_str("issuer_ref")? {
            self.issuer_ref = if r.is_empty() { "default".into() } else { r };
        }
        match self.key_type.as_str() {
            "any" => {}
            t => {
                let spec = crate::crypto::KeySpec::parse(t, self.key_bits)?;
                self.key_bits = spec.bits() as i64;
            }
        }
        if self.generate_lease && self.no_store {
            return Err(LogicalError::invalid(
                "generate_lease needs stored certificates (a lease revokes its certificate by serial): set no_store=false or generate_lease=false",
            ));
        }
        if self.max_ttl > 0 && self.ttl > self.max_ttl {
            return Err(LogicalError::invalid(
                "\"ttl\" value must be less than \"max_ttl\" value",
            ));
        }
        Ok(())
    }

    pub fn to_json(&self) -> Map<String, Value> {
        match json!({
            "ttl": self.ttl,
            "max_ttl": self.max_ttl,
            "allow_localhost": self.allow_localhost,
            "allowed_domains": self.allowed_domains,
            "allow_bare_domains": self.allow_bare_domains,
            "allow_subdomains": self.allow_subdomains,
            "allow_glob_domains": self.allow_glob_domains,
            "allow_wildcard_certificates": self.allow_wildcard_certificates,
            "allow_any_name": self.allow_any_name,
            "enforce_hostnames": self.enforce_hostnames,
            "allow_ip_sans": self.allow_ip_sans,
            "allowed_uri_sans": self.allowed_uri_sans,
            "server_flag": self.server_flag,
            "client_flag": self.client_flag,
            "key_type": self.key_type,
            "key_bits": self.key_bits,
            "key_usage": self.key_usage,
            "ext_key_usage": self.ext_key_usage,
            "no_store": self.no_store,
            "generate_lease": self.generate_lease,
            "require_cn": self.require_cn,
            "use_csr_common_name": self.use_csr_common_name,
            "use_csr_sans": self.use_csr_sans,
            "organization": self.organization,
            "ou": self.ou,
            "country": self.country,
            "locality": self.locality,
            "province": self.province,
            "not_before_duration": self.not_before_duration,
            "issuer_ref": self.issuer_ref,
        }) {
            Value::Object(m) => m,
            _ => unreachable!("a JSON object literal"),
        }
    }

    /// Refuses a DNS/CN name the role does not allow, naming it.
    pub fn check_name(&self, name: &str) -> Result<(), LogicalError> {
        let refuse =
            || LogicalError::invalid(format!("common name {name} not allowed by this role"));
        if self.enforce_hostnames && !valid_hostname(name.trim_start_matches("*.")) {
            return Err(LogicalError::invalid(format!(
                "{name} is not a valid hostname (enforce_hostnames is set on this role)"
            )));
        }
        if name.contains('*') && !self.allow_wildcard_certificates {
            return Err(LogicalError::invalid(format!(
                "wildcard name {name} not allowed: the role sets allow_wildcard_certificates=false"
            )));
        }
        if self.allow_any_name {
            return Ok(());
        }
        let lower = name.to_lowercase();
        if self.allow_localhost && (lower == "localhost" || lower == "localdomain") {
            return Ok(());
        }
        for d in &self.allowed_domains {
            let d = d.to_lowercase();
            if self.allow_bare_domains && lower == d {
                return Ok(());
            }
            if self.allow_subdomains && lower.ends_with(&format!(".{d}")) {
                return Ok(());
            }
            if self.allow_glob_domains && d.contains('*') && arca_sdk::glob::matches(&d, &lower) {
                return Ok(());
            }
        }
        Err(refuse())
    }

    pub fn check_ip(&self, ip: &str) -> Result<IpAddr, LogicalError> {
        if !self.allow_ip_sans {
            return Err(LogicalError::invalid(format!(
                "IP Subject Alternative Names are not allowed in this role, but was provided {ip}"
            )));
        }
        ip.parse().map_err(|_| {
            LogicalError::invalid(format!("the value {ip:?} is not a valid IP address"))
        })
    }
}

fn yes() -> bool {
    true
}

fn valid_hostname(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(domains: &[&str], bare: bool, sub: bool, glob: bool) -> Role {
        Role {
            allowed_domains: domains.iter().map(|s| s.to_string()).collect(),
            allow_bare_domains: bare,
            allow_subdomains: sub,
            allow_glob_domains: glob,
            ..Role::default()
        }
    }

    #[test]
    fn wildcards_follow_allow_wildcard_certificates() {
        let mut r = role(&["example.com"], false, true, false);
        assert!(r.check_name("*.example.com").is_ok());
        r.allow_wildcard_certificates = false;
        let e = r.check_name("*.example.com").unwrap_err().to_string();
        assert!(e.contains("allow_wildcard_certificates"), "{e}");
        assert!(r.check_name("www.example.com").is_ok());
    }

    #[test]
    fn name_rules_follow_vault() {
        let r = role(&["example.com"], false, true, false);
        assert!(r.check_name("www.example.com").is_ok());
        assert!(r.check_name("a.b.example.com").is_ok());
        assert!(
            r.check_name("example.com").is_err(),
            "bare needs allow_bare_domains"
        );
        let e = r.check_name("www.evil.com").unwrap_err().to_string();
        assert!(e.contains("www.evil.com"), "the error names the name: {e}");
        let r = role(&["example.com"], true, false, false);
        assert!(r.check_name("example.com").is_ok());
        assert!(r.check_name("www.example.com").is_err());
        let r = role(&["*.dev.example.com"], false, false, true);
        assert!(r.check_name("api.dev.example.com").is_ok());
        assert!(r.check_name("api.prod.example.com").is_err());
        let r = role(&[], false, false, false);
        assert!(
            r.check_name("localhost").is_ok(),
            "allow_localhost defaults to true"
        );
        assert!(r.check_name("bad name.example.com").is_err());
        assert!(Role {
            allow_any_name: true,
            ..Role::default()
        }
        .check_name("x.y")
        .is_ok());
        assert!(Role {
            allow_ip_sans: false,
            ..Role::default()
        }
        .check_ip("10.0.0.1")
        .is_err());
        assert!(Role::default().check_ip("10.0.0.1").is_ok());
    }
}
