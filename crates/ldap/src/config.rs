//! `config`: the directory to authenticate against and how to search it,
//! with the token settings every login gets.
//!
//! Invariants:
//! - A stored configuration always passes [`Config::validate`]: its URLs
//!   are `ldap://` or `ldaps://` URLs, its filter templates render into
//!   filters that parse, its CA certificate (and client certificate and
//!   key, when given) build a TLS client configuration, its TLS versions
//!   are ones rustls speaks with the minimum not above the maximum, and
//!   its timeouts are at least a second. A refused write changes nothing.
//! - Fields not sent keep their stored value; a first write starts from
//!   Vault's defaults.
//! - `bindpass` and `client_tls_key` are never returned by a read.
//! - Settings this method does not implement are refused with a 400 "not
//!   available yet" when set to anything but their default, and read back
//!   with the default: `deny_null_bind=false` (an empty password is always
//!   refused: no unauthenticated bind is ever made) and `use_token_groups`
//!   (Active Directory's tokenGroups).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use arca_sdk::storage::{get_json, put_json};
use arca_sdk::token_fields::{self, TokenParams};
use arca_sdk::{Ctx, Field, FieldType, HandlerResult, LogicalError, Operation, Path, Response};

use crate::filter;
use crate::Ldap;

const KEY: &str = "config";

/// Vault's default user search filter.
pub const DEFAULT_USER_FILTER: &str = "({{.UserAttr}}={{.Username}})";
/// Vault's default group membership filter.
pub const DEFAULT_GROUP_FILTER: &str =
    "(|(memberUid={{.Username}})(member={{.UserDN}})(uniqueMember={{.UserDN}}))";
/// Vault's default server URL.
pub const DEFAULT_URL: &str = "ldap://127.0.0.1";
pub const DEFAULT_REQUEST_TIMEOUT: u64 = 90;
pub const DEFAULT_CONNECTION_TIMEOUT: u64 = 30;

const TLS_VERSIONS: &[&str] = &["tls10", "tls11", "tls12", "tls13"];
const DEREF: &[&str] = &["never", "finding", "searching", "always"];

const USER_FILTER_WARNING: &str =
    "userfilter configured does not consider userattr and may result in colliding entity aliases on logins";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct Config {
    pub url: String,
    pub userdn: String,
    pub userattr: String,
    pub userfilter: String,
    pub upndomain: String,
    pub discoverdn: bool,
    pub binddn: String,
    pub bindpass: String,
    pub groupdn: String,
    pub groupfilter: String,
    pub groupattr: String,
    pub anonymous_group_search: bool,
    pub certificate: String,
    pub client_tls_cert: String,
    pub client_tls_key: String,
    pub starttls: bool,
    pub tls_min_version: String,
    pub tls_max_version: String,
    pub case_sensitive_names: bool,
    /// The identity alias is the login's username (else the user's
    /// `userattr` value, or its DN).
    pub username_as_alias: bool,
    /// Skip the check of the server's certificate (Vault's option; the
    /// handshake is still verified against the presented key).
    pub insecure_tls: bool,
    /// Group searches in pages of this size (0: no paging).
    pub max_page_size: i64,
    pub use_pre111_group_cn_behavior: bool,
    pub request_timeout: u64,
    pub connection_timeout: u64,
    pub dereference_aliases: String,
    #[serde(flatten)]
    pub token: TokenParams,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            url: DEFAULT_URL.into(),
            userdn: String::new(),
            userattr: "cn".into(),
            userfilter: DEFAULT_USER_FILTER.into(),
            upndomain: String::new(),
            discoverdn: false,
            binddn: String::new(),
            bindpass: String::new(),
            groupdn: String::new(),
            groupfilter: DEFAULT_GROUP_FILTER.into(),
            groupattr: "cn".into(),
            anonymous_group_search: false,
            certificate: String::new(),
            client_tls_cert: String::new(),
            client_tls_key: String::new(),
            starttls: false,
            tls_min_version: "tls12".into(),
            tls_max_version: "tls12".into(),
            case_sensitive_names: false,
            username_as_alias: false,
            insecure_tls: false,
            max_page_size: 0,
            use_pre111_group_cn_behavior: false,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            connection_timeout: DEFAULT_CONNECTION_TIMEOUT,
            dereference_aliases: "never".into(),
            token: TokenParams::default(),
        }
    }
}

/// `tls12` → 12.
fn tls_rank(v: &str) -> Option<u8> {
    v.strip_prefix("tls").and_then(|n| n.parse().ok())
}

impl Config {
    /// The server URLs, in the order they are tried.
    pub fn urls(&self) -> Vec<&str> {
        self.url
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .collect()
    }

    /// The user search filter template (the default when unset).
    pub fn user_filter(&self) -> &str {
        if self.userfilter.trim().is_empty() {
            DEFAULT_USER_FILTER
        } else {
            &self.userfilter
        }
    }

    /// Does a login search for the user's DN (rather than build it)?
    pub fn searches_user(&self) -> bool {
        self.discoverdn || (!self.binddn.is_empty() && !self.bindpass.is_empty())
    }

    /// A name as the `users/` and `groups/` entries store it.
    pub fn canonical(&self, name: &str) -> String {
        if self.case_sensitive_names {
            name.to_string()
        } else {
            name.to_lowercase()
        }
    }

    /// TLS versions to offer, lowest first.
    pub fn tls_versions(&self) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, String> {
        let min = tls_rank(&self.tls_min_version)
            .ok_or_else(|| format!("invalid tls_min_version {:?}", self.tls_min_version))?;
        let max = tls_rank(&self.tls_max_version)
            .ok_or_else(|| format!("invalid tls_max_version {:?}", self.tls_max_version))?;
        for (name, v) in [("tls_min_version", min), ("tls_max_version", max)] {
            if !(10..=13).contains(&v) {
                return Err(format!("invalid {name}: use one of {TLS_VERSIONS:?}"));
            }
            if v < 12 {
                return Err(format!(
                    "{name}=tls{v} is not available: Arca's TLS client speaks TLS 1.2 and 1.3 only (use tls12 or tls13)"
                ));
            }
        }
        if max < min {
            return Err(
                "'tls_max_version' must be greater than or equal to 'tls_min_version'".into(),
            );
        }
        let mut v = Vec::new();
        if min <= 12 {
            v.push(&rustls::version::TLS12);
        }
        if max >= 13 {
            v.push(&rustls::version::TLS13);
        }
        Ok(v)
    }

    /// Checks the whole configuration (see the module's invariants);
    /// returns warnings about settings that are valid but probably wrong.
    pub fn validate(&self) -> Result<Vec<String>, String> {
        let urls = self.urls();
        if urls.is_empty() {
            return Err("at least one url must be provided".into());
        }
        for u in &urls {
            let parsed = url::Url::parse(u).map_err(|e| format!("error parsing url {u:?}: {e}"))?;
            if !matches!(parsed.scheme(), "ldap" | "ldaps") {
                return Err(format!(
                    "invalid LDAP scheme in url {u:?}: use ldap:// or ldaps://"
                ));
            }
            if parsed.host_str().unwrap_or("").is_empty() {
                return Err(format!("url {u:?} has no host"));
            }
        }
        if self.userattr.trim().is_empty() {
            return Err("userattr must not be empty".into());
        }
        let user_vars = [("UserAttr", "cn"), ("Username", "user")];
        filter::check_template("userfilter", self.user_filter(), &user_vars)?;
        if !self.groupfilter.trim().is_empty() {
            let group_vars = [("UserDN", "cn=user,dc=example"), ("Username", "user")];
            filter::check_template("groupfilter", &self.groupfilter, &group_vars)?;
        }
        if self.request_timeout == 0 {
            return Err("request_timeout must be at least 1 second".into());
        }
        if self.connection_timeout == 0 {
            return Err("connection_timeout must be at least 1 second".into());
        }
        if !DEREF.contains(&self.dereference_aliases.as_str()) {
            return Err(format!(
                "invalid dereference_aliases {:?}: use one of {DEREF:?}",
                self.dereference_aliases
            ));
        }
        self.tls_versions()?;
        if !self.certificate.trim().is_empty() {
            arca_sdk::tls::parse_certificates(&self.certificate)
                .map_err(|e| format!("failed to parse server tls cert: {e}"))?;
        }
        match (
            self.client_tls_cert.is_empty(),
            self.client_tls_key.is_empty(),
        ) {
            (true, true) => {}
            (false, false) => {}
            _ => return Err("both client_tls_cert and client_tls_key must be set".into()),
        }
        crate::client::tls_config(self)?;

        let mut warnings = Vec::new();
        let uf = self.user_filter();
        if !uf.contains("{{.UserAttr}}") && !uf.contains(&self.userattr) {
            warnings.push(USER_FILTER_WARNING.to_string());
        }
        if !self.searches_user() && self.upndomain.is_empty() && self.userdn.is_empty() {
            warnings.push(
                "logins cannot find users yet: set binddn and bindpass, discoverdn, upndomain or userdn"
                    .to_string(),
            );
        }
        Ok(warnings)
    }

    /// The fields a read shows (never `bindpass` nor `client_tls_key`).
    fn to_json(&self) -> Value {
        let mut m = self.token.to_json();
        let extra = json!({
            "url": self.url,
            "userdn": self.userdn,
            "userattr": self.userattr,
            "userfilter": self.userfilter,
            "upndomain": self.upndomain,
            "discoverdn": self.discoverdn,
            "binddn": self.binddn,
            "groupdn": self.groupdn,
            "groupfilter": self.groupfilter,
            "groupattr": self.groupattr,
            "anonymous_group_search": self.anonymous_group_search,
            "certificate": self.certificate,
            "client_tls_cert": self.client_tls_cert,
            "starttls": self.starttls,
            "insecure_tls": self.insecure_tls,
            "tls_min_version": self.tls_min_version,
            "tls_max_version": self.tls_max_version,
            "deny_null_bind": true,
            "case_sensitive_names": self.case_sensitive_names,
            "use_pre111_group_cn_behavior": self.use_pre111_group_cn_behavior,
            "username_as_alias": self.username_as_alias,
            "use_token_groups": false,
            "max_page_size": self.max_page_size,
            "request_timeout": self.request_timeout,
            "connection_timeout": self.connection_timeout,
            "dereference_aliases": self.dereference_aliases,
        });
        if let Value::Object(e) = extra {
            m.extend(e);
        }
        Value::Object(m)
    }

    /// Applies the fields a write sent. Settings this method does not
    /// implement are refused (see the module docs).
    pub fn apply(&mut self, d: &arca_sdk::FieldData) -> Result<(), LogicalError> {
        let refusals: [(&str, bool, &str); 2] = [
            (
                "deny_null_bind",
                false,
                "deny_null_bind=false is not available: an empty password is always refused (no unauthenticated bind is made)",
            ),
            (
                "use_token_groups",
                true,
                "use_token_groups is not available yet: groups are read with groupfilter under groupdn",
            ),
        ];
        for (name, refused, why) in refusals {
            if d.is_set(name) && d.get_bool(name)? == Some(refused) {
                return Err(LogicalError::invalid(why));
            }
        }
        if d.is_set("max_page_size") {
            // 0 or less: one search without paging (Vault's default).
            self.max_page_size = d.get_i64("max_page_size")?.unwrap_or(0).max(0);
        }
        let strings: [(&str, &mut String); 15] = [
            ("url", &mut self.url),
            ("userdn", &mut self.userdn),
            ("userattr", &mut self.userattr),
            ("userfilter", &mut self.userfilter),
            ("upndomain", &mut self.upndomain),
            ("binddn", &mut self.binddn),
            ("bindpass", &mut self.bindpass),
            ("groupdn", &mut self.groupdn),
            ("groupfilter", &mut self.groupfilter),
            ("groupattr", &mut self.groupattr),
            ("certificate", &mut self.certificate),
            ("client_tls_cert", &mut self.client_tls_cert),
            ("client_tls_key", &mut self.client_tls_key),
            ("tls_min_version", &mut self.tls_min_version),
            ("tls_max_version", &mut self.tls_max_version),
        ];
        for (name, target) in strings {
            if d.is_set(name) {
                *target = d.str_or(name, "")?;
            }
        }
        if d.is_set("dereference_aliases") {
            self.dereference_aliases = d.str_or("dereference_aliases", "never")?;
        }
        self.url = self.url.trim().to_lowercase();
        self.userattr = self.userattr.trim().to_lowercase();
        let bools: [(&str, &mut bool); 7] = [
            ("discoverdn", &mut self.discoverdn),
            ("anonymous_group_search", &mut self.anonymous_group_search),
            ("starttls", &mut self.starttls),
            ("case_sensitive_names", &mut self.case_sensitive_names),
            ("username_as_alias", &mut self.username_as_alias),
            ("insecure_tls", &mut self.insecure_tls),
            (
                "use_pre111_group_cn_behavior",
                &mut self.use_pre111_group_cn_behavior,
            ),
        ];
        for (name, target) in bools {
            if d.is_set(name) {
                *target = d.bool_or(name, false)?;
            }
        }
        for (name, target) in [
            ("request_timeout", &mut self.request_timeout),
            ("connection_timeout", &mut self.connection_timeout),
        ] {
            if d.is_set(name) {
                *target = d.get_duration(name)?.unwrap_or(0);
            }
        }
        self.token.update(d)?;
        Ok(())
    }
}

/// The stored configuration, if the method has been configured.
pub(crate) async fn load(s: &dyn arca_sdk::Storage) -> Result<Option<Config>, LogicalError> {
    Ok(get_json(s, KEY).await?)
}

/// The stored configuration, or the defaults.
pub(crate) async fn load_or_default(s: &dyn arca_sdk::Storage) -> Result<Config, LogicalError> {
    Ok(load(s).await?.unwrap_or_default())
}

pub(crate) fn fields() -> Vec<Field> {
    use FieldType::*;
    let mut v = vec![
        Field::new(
            "url",
            String,
            "LDAP server URL(s), comma-separated and tried in order: ldap://host[:port] or ldaps://host[:port].",
        )
        .default(DEFAULT_URL),
        Field::new(
            "userdn",
            String,
            "Base DN under which users are searched (e.g. ou=Users,dc=example,dc=com).",
        ),
        Field::new(
            "userattr",
            String,
            "Attribute of user entries that holds the username (e.g. cn, uid, samaccountname).",
        )
        .default("cn"),
        Field::new(
            "userfilter",
            String,
            "User search filter template; it may use {{.UserAttr}} and {{.Username}} (escaped).",
        )
        .default(DEFAULT_USER_FILTER),
        Field::new(
            "upndomain",
            String,
            "Bind as username@upndomain (userPrincipalName) instead of a DN.",
        ),
        Field::new(
            "discoverdn",
            Bool,
            "Search for the user's DN with an anonymous bind (or binddn) before binding as the user.",
        ),
        Field::new(
            "binddn",
            String,
            "DN to bind as to search for users and groups.",
        ),
        Field::new("bindpass", String, "Password of binddn (never returned).").sensitive(),
        Field::new(
            "groupdn",
            String,
            "Base DN under which groups are searched (e.g. ou=Groups,dc=example,dc=com).",
        ),
        Field::new(
            "groupfilter",
            String,
            "Group membership filter template; it may use {{.UserDN}} and {{.Username}} (escaped).",
        )
        .default(DEFAULT_GROUP_FILTER),
        Field::new(
            "groupattr",
            String,
            "Attribute of the entries groupfilter finds that names the groups (cn for group entries, memberOf for user entries).",
        )
        .default("cn"),
        Field::new(
            "anonymous_group_search",
            Bool,
            "Search groups on a new, anonymous connection.",
        ),
        Field::new(
            "certificate",
            String,
            "PEM CA certificate(s) that verify the server's certificate (default: the system's CAs).",
        ),
        Field::new(
            "client_tls_cert",
            String,
            "PEM client certificate to present to the server (with client_tls_key).",
        ),
        Field::new(
            "client_tls_key",
            String,
            "PEM private key of client_tls_cert (never returned).",
        )
        .sensitive(),
        Field::new(
            "starttls",
            Bool,
            "Issue StartTLS on ldap:// connections.",
        ),
        Field::new(
            "insecure_tls",
            Bool,
            "Skip the server certificate check: not available (always verified).",
        ),
        Field::new(
            "tls_min_version",
            String,
            "Minimum TLS version: tls12 or tls13.",
        )
        .default("tls12")
        .allowed(TLS_VERSIONS),
        Field::new(
            "tls_max_version",
            String,
            "Maximum TLS version: tls12 or tls13.",
        )
        .default("tls12")
        .allowed(TLS_VERSIONS),
        Field::new(
            "deny_null_bind",
            Bool,
            "Refuse empty passwords: always true (an unauthenticated bind is never made).",
        )
        .default(true),
        Field::new(
            "case_sensitive_names",
            Bool,
            "Match user and group names to users/ and groups/ entries case-sensitively.",
        ),
        Field::new(
            "use_pre111_group_cn_behavior",
            Bool,
            "Read group names only from upper-case CN attributes of group DNs (Vault before 1.1.1).",
        ),
        Field::new(
            "username_as_alias",
            Bool,
            "Use the username as the identity alias: not available yet (identity is not built).",
        ),
        Field::new(
            "use_token_groups",
            Bool,
            "Read Active Directory tokenGroups: not available yet.",
        ),
        Field::new(
            "max_page_size",
            Int,
            "Page size of group searches: not available yet (0 only).",
        )
        .default(0),
        Field::new(
            "request_timeout",
            Duration,
            "Time limit of each request to the server (at least 1 second).",
        )
        .default(DEFAULT_REQUEST_TIMEOUT),
        Field::new(
            "connection_timeout",
            Duration,
            "Time limit to connect to one server before trying the next URL (at least 1 second).",
        )
        .default(DEFAULT_CONNECTION_TIMEOUT),
        Field::new(
            "dereference_aliases",
            String,
            "When searches dereference aliases: never, finding, searching or always.",
        )
        .default("never")
        .allowed(DEREF),
    ];
    v.extend(token_fields::fields());
    v
}

pub(crate) fn path() -> Path<Ldap> {
    let mut p = Path::new("config");
    for f in fields() {
        p = p.field(f);
    }
    p.op(Operation::Read, |b: &Ldap, c| Box::pin(b.read_config(c)))
        .op(Operation::Update, |b: &Ldap, c| Box::pin(b.write_config(c)))
        .help(
            "Read or change the LDAP server to authenticate against, how users and their \
             groups are found, and the token settings of every login.",
        )
}

impl Ldap {
    async fn read_config(&self, c: Ctx<'_>) -> HandlerResult {
        let Some(cfg) = load(c.storage).await? else {
            return Ok(None);
        };
        let mut r = Response::json(cfg.to_json());
        let uf = cfg.user_filter();
        if !uf.contains("{{.UserAttr}}") && !uf.contains(&cfg.userattr) {
            r.warnings.push(USER_FILTER_WARNING.to_string());
        }
        Ok(Some(r))
    }

    async fn write_config(&self, c: Ctx<'_>) -> HandlerResult {
        let mut cfg = load_or_default(c.storage).await?;
        cfg.apply(&c.data)?;
        let warnings = cfg.validate().map_err(LogicalError::invalid)?;
        put_json(c.storage, KEY, &cfg).await?;
        if warnings.is_empty() {
            return Ok(None);
        }
        Ok(Some(Response {
            warnings,
            ..Default::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arca_sdk::FieldData;

    fn data(v: Value) -> FieldData {
        let d = FieldData::new(v.as_object().unwrap().clone(), &fields());
        d.validate().unwrap();
        d
    }

    fn applied(v: Value) -> Result<Config, String> {
        let mut cfg = Config::default();
        cfg.apply(&data(v)).map_err(|e| e.to_string())?;
        cfg.validate()?;
        Ok(cfg)
    }

    #[test]
    fn defaults_are_vaults_and_valid() {
        let cfg = Config::default();
        assert_eq!(cfg.userattr, "cn");
        assert_eq!(cfg.groupattr, "cn");
        assert_eq!(cfg.userfilter, "({{.UserAttr}}={{.Username}})");
        assert_eq!(
            cfg.groupfilter,
            "(|(memberUid={{.Username}})(member={{.UserDN}})(uniqueMember={{.UserDN}}))"
        );
        assert_eq!(cfg.request_timeout, 90);
        let warnings = cfg.validate().unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("cannot find users"));
        let j = cfg.to_json();
        assert_eq!(j["deny_null_bind"], true);
        assert_eq!(j["insecure_tls"], false);
        assert!(j.get("bindpass").is_none() && j.get("client_tls_key").is_none());
    }

    #[test]
    fn urls_are_checked_and_kept_in_order() {
        let cfg = applied(json!({
            "url": "LDAP://a.example:389, ldaps://b.example",
            "userdn": "ou=people,dc=example,dc=com",
        }))
        .unwrap();
        assert_eq!(
            cfg.urls(),
            vec!["ldap://a.example:389", "ldaps://b.example"]
        );
        for bad in ["http://x", "ldapi:///run/ldap.sock", "not a url", " , "] {
            assert!(applied(json!({ "url": bad })).is_err(), "{bad}");
        }
    }

    #[test]
    fn templates_tls_and_timeouts_are_checked() {
        let e = applied(json!({"userfilter": "(uid={{.UserDN}})"})).unwrap_err();
        assert!(e.contains("invalid userfilter"), "{e}");
        let e = applied(json!({"groupfilter": "(member={{.UserDN}}"})).unwrap_err();
        assert!(e.contains("invalid groupfilter"), "{e}");
        applied(json!({"groupfilter": ""})).unwrap();
        let e = applied(json!({"tls_min_version": "tls10"})).unwrap_err();
        assert!(e.contains("not available"), "{e}");
        let e = applied(json!({"tls_min_version": "tls13"})).unwrap_err();
        assert!(e.contains("greater than or equal"), "{e}");
        let cfg = applied(json!({"tls_min_version": "tls13", "tls_max_version": "tls13"})).unwrap();
        assert_eq!(cfg.tls_versions().unwrap().len(), 1);
        let cfg = applied(json!({"tls_max_version": "tls13"})).unwrap();
        assert_eq!(cfg.tls_versions().unwrap().len(), 2);
        let e = applied(json!({"request_timeout": 0})).unwrap_err();
        assert!(e.contains("request_timeout"), "{e}");
        let cfg = applied(json!({"request_timeout": "2m"})).unwrap();
        assert_eq!(cfg.request_timeout, 120);
        let e = applied(json!({"certificate": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}))
            .unwrap_err();
        assert!(e.contains("failed to parse server tls cert"), "{e}");
        let e = applied(json!({"client_tls_cert": "x"})).unwrap_err();
        assert!(e.contains("both client_tls_cert and client_tls_key"), "{e}");
    }

    #[test]
    fn unimplemented_settings_are_refused_not_ignored() {
        for (k, v) in [
            ("deny_null_bind", json!(false)),
            ("use_token_groups", json!(true)),
        ] {
            let e = applied(json!({ k: v })).unwrap_err();
            assert!(e.contains("not available"), "{k}: {e}");
        }
        // Their defaults are accepted; the implemented ones are kept.
        let cfg =
            applied(json!({"insecure_tls": true, "max_page_size": 100, "username_as_alias": true}))
                .unwrap();
        assert!(cfg.insecure_tls && cfg.username_as_alias);
        assert_eq!(cfg.max_page_size, 100);
        assert_eq!(
            applied(json!({"max_page_size": -1})).unwrap().max_page_size,
            0
        );
        applied(json!({
            "insecure_tls": false, "deny_null_bind": true, "username_as_alias": false,
            "use_token_groups": false, "max_page_size": 0,
        }))
        .unwrap();
    }

    #[test]
    fn a_user_filter_without_userattr_warns() {
        let cfg = applied(json!({
            "userdn": "dc=x", "userattr": "UID", "userfilter": "(mail={{.Username}})",
        }))
        .unwrap();
        assert_eq!(cfg.userattr, "uid");
        assert_eq!(
            cfg.validate().unwrap(),
            vec![USER_FILTER_WARNING.to_string()]
        );
    }
}
