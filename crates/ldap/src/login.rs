//! `login/:username` and the renewal of the tokens it creates.
//!
//! A login: refuse a username holding LDAP filter characters and an empty
//! password (before any network call); connect; find the user's DN
//! (searched with `userfilter` under `userdn` after the service bind when
//! `binddn`+`bindpass` or `discoverdn` are set — exactly one entry must
//! match — else `username@upndomain`, else `userattr=username,userdn`);
//! bind as that DN with the password; re-bind as `binddn`; read the
//! user's groups (`groupfilter` under `groupdn`, the names from
//! `groupattr`, or from the `cn` of a DN); then the token's policies are
//! the union of `config.token_policies`, the `groups/` entries of the LDAP
//! groups and of the user's extra `users/` groups, and the user's own
//! `users/` policies.
//!
//! Invariants:
//! - A wrong password, an unknown user and a search that finds more than
//!   one entry all answer the same 400 ([`BIND_FAILED`]), counted by
//!   core's user lockout for the (lower-cased, trimmed) username. A server
//!   that cannot be reached, a refused service bind or a failed search
//!   answer a 400 that says so, and are not counted.
//! - The password never leaves this request: it is not stored in the token
//!   (the token keeps the username and the user's DN) and is zeroized
//!   after use.
//! - Renewal re-reads the user's groups with the service bind (`binddn`,
//!   else anonymous) and, when logins search for users, checks the user is
//!   still found with the same DN; the renewal is refused when the
//!   policies this gives differ from the token's, or the directory cannot
//!   be asked.

use std::collections::HashSet;

use serde_json::Value;
use zeroize::Zeroizing;

use arca_sdk::token_fields::{self, clean_policies};
use arca_sdk::{cidr, Auth, Ctx, HandlerResult, LogicalError, Response};
use ldap3::Scope;

use crate::client::{self, attr_values, BindError, Conn};
use crate::config::{self, Config};
use crate::filter::{escape_dn_value, escape_filter, group_cn, has_filter_chars, render};
use crate::{entries, Ldap};

/// The answer to a wrong password or an unknown user (Vault's words).
pub const BIND_FAILED: &str = "ldap operation failed: failed to bind as user";

fn bind_failed() -> LogicalError {
    LogicalError::InvalidCredentials(BIND_FAILED.into())
}

fn op_failed(what: impl std::fmt::Display) -> LogicalError {
    LogicalError::invalid(format!("ldap operation failed: {what}"))
}

/// Policies as compared at renewal: without `default`, sorted.
fn without_default(v: &[String]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().filter(|p| *p != "default").cloned().collect();
    v.sort();
    v.dedup();
    v
}

/// What a login found in the directory.
struct Found {
    user_dn: String,
    /// The identity alias name when not `username_as_alias`: the user's
    /// `userattr` value when the user was searched, else the bind DN.
    alias: String,
    /// Group names from LDAP, as found.
    groups: Vec<String>,
}

/// Checks a login's username (trimmed, and lower-cased unless names are
/// case-sensitive) before anything is sent to the server.
pub(crate) fn check_username(cfg: &Config, raw: &str) -> Result<String, LogicalError> {
    let username = cfg.canonical(raw.trim());
    if username.is_empty() {
        return Err(LogicalError::invalid("missing username"));
    }
    if has_filter_chars(&username) {
        return Err(LogicalError::invalid(
            "invalid username: LDAP filter characters (* ( ) \\ and NUL) are not allowed in usernames",
        ));
    }
    Ok(username)
}

/// The user search filter for `username`.
fn user_filter(cfg: &Config, username: &str) -> Result<String, LogicalError> {
    let (attr, name) = if cfg.upndomain.is_empty() {
        (escape_filter(&cfg.userattr), escape_filter(username))
    } else {
        (
            "userPrincipalName".to_string(),
            format!(
                "{}@{}",
                escape_filter(username),
                escape_filter(&cfg.upndomain)
            ),
        )
    };
    render(
        cfg.user_filter(),
        &[("UserAttr", &attr), ("Username", &name)],
    )
    .map_err(op_failed)
}

/// Binds as `binddn` when it has a password, else anonymously.
async fn service_bind(conn: &mut Conn, cfg: &Config) -> Result<(), LogicalError> {
    let r = if !cfg.binddn.is_empty() && !cfg.bindpass.is_empty() {
        conn.bind(&cfg.binddn, &cfg.bindpass).await
    } else {
        conn.bind_anonymous().await
    };
    r.map_err(|e| op_failed(format!("LDAP bind (service) failed: {e}")))
}

/// The DN of the one entry the user filter finds, `None` when it finds
/// none or several.
async fn find_user(
    conn: &mut Conn,
    cfg: &Config,
    username: &str,
) -> Result<Option<(String, Option<String>)>, LogicalError> {
    let f = user_filter(cfg, username)?;
    let found = conn
        .search(&cfg.userdn, Scope::Subtree, &f, &[cfg.userattr.as_str()], 2)
        .await
        .map_err(|e| op_failed(format!("LDAP search for binddn failed: {e}")))?;
    Ok(match found.as_slice() {
        [one] => {
            // The user's `userattr` value, as the directory spells it.
            let attr = one
                .attrs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(&cfg.userattr))
                .and_then(|(_, v)| v.first().cloned());
            Some((one.dn.clone(), attr))
        }
        _ => None,
    })
}

/// The names of the groups `groupfilter` finds under `groupdn`.
async fn ldap_groups(
    conn: &mut Conn,
    cfg: &Config,
    user_dn: &str,
    username: &str,
) -> Result<Vec<String>, LogicalError> {
    if cfg.groupfilter.trim().is_empty() || cfg.groupdn.trim().is_empty() {
        return Ok(Vec::new());
    }
    let f = render(
        &cfg.groupfilter,
        &[
            ("UserDN", &escape_filter(user_dn)),
            ("Username", &escape_filter(username)),
        ],
    )
    .map_err(op_failed)?;
    let attrs = [cfg.groupattr.as_str()];
    let found = if cfg.max_page_size > 0 {
        let page = i32::try_from(cfg.max_page_size).unwrap_or(i32::MAX);
        conn.search_paged(&cfg.groupdn, Scope::Subtree, &f, &attrs, page)
            .await
    } else {
        conn.search(&cfg.groupdn, Scope::Subtree, &f, &attrs, 0)
            .await
    }
    .map_err(|e| op_failed(format!("LDAP group search failed: {e}")))?;
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for e in &found {
        let values = attr_values(e, &cfg.groupattr);
        let names: Vec<String> = if values.is_empty() {
            vec![group_cn(&e.dn, cfg.use_pre111_group_cn_behavior)]
        } else {
            values
                .iter()
                .map(|v| group_cn(v, cfg.use_pre111_group_cn_behavior))
                .collect()
        };
        for n in names {
            if seen.insert(n.clone()) {
                out.push(n);
            }
        }
    }
    Ok(out)
}

/// The groups, read on `conn` or, with `anonymous_group_search`, on a new
/// anonymous connection.
async fn groups(
    conn: &mut Conn,
    cfg: &Config,
    user_dn: &str,
    username: &str,
) -> Result<Vec<String>, LogicalError> {
    if !cfg.anonymous_group_search {
        return ldap_groups(conn, cfg, user_dn, username).await;
    }
    let mut anon = client::dial(cfg)
        .await
        .map_err(|e| op_failed(format!("failed to connect to LDAP server: {e}")))?;
    let r: Result<Vec<String>, LogicalError> = async {
        anon.bind_anonymous()
            .await
            .map_err(|e| op_failed(format!("anonymous bind for the group search failed: {e}")))?;
        ldap_groups(&mut anon, cfg, user_dn, username).await
    }
    .await;
    anon.close().await;
    r
}

/// Authenticates `username` with `password` against the directory.
async fn authenticate(cfg: &Config, username: &str, password: &str) -> Result<Found, LogicalError> {
    let mut conn = client::dial(cfg)
        .await
        .map_err(|e| op_failed(format!("failed to connect to LDAP server: {e}")))?;
    let r: Result<Found, LogicalError> = async {
        let (bind_dn, attr) = if cfg.searches_user() {
            service_bind(&mut conn, cfg).await?;
            find_user(&mut conn, cfg, username)
                .await?
                .ok_or_else(bind_failed)?
        } else if !cfg.upndomain.is_empty() {
            (
                format!("{}@{}", escape_dn_value(username), cfg.upndomain),
                None,
            )
        } else {
            (
                format!(
                    "{}={},{}",
                    cfg.userattr,
                    escape_dn_value(username),
                    cfg.userdn
                ),
                None,
            )
        };
        let alias = attr.unwrap_or_else(|| bind_dn.clone());
        match conn.bind(&bind_dn, password).await {
            Ok(()) => {}
            Err(BindError::Refused(e)) => {
                tracing::debug!(error = %e, "ldap login: the user's bind was refused");
                return Err(bind_failed());
            }
            Err(BindError::Failed(e)) => return Err(op_failed(e)),
        }
        // The service account, not the user, searches from here on.
        if !cfg.binddn.is_empty() && !cfg.bindpass.is_empty() {
            conn.bind(&cfg.binddn, &cfg.bindpass)
                .await
                .map_err(|e| op_failed(format!("failed to re-bind with the BindDN user: {e}")))?;
        }
        let user_dn = if cfg.upndomain.is_empty() {
            bind_dn
        } else {
            let f = format!(
                "(userPrincipalName={}@{})",
                escape_filter(username),
                escape_filter(&cfg.upndomain)
            );
            let found = conn
                .search(&cfg.userdn, Scope::Subtree, &f, &["1.1"], 0)
                .await
                .map_err(|e| op_failed(format!("LDAP search failed for detecting user: {e}")))?;
            found.last().map(|e| e.dn.clone()).ok_or_else(|| {
                op_failed(format!(
                    "no entry under userdn {:?} has userPrincipalName {username}@{}",
                    cfg.userdn, cfg.upndomain
                ))
            })?
        };
        let groups = groups(&mut conn, cfg, &user_dn, username).await?;
        Ok(Found {
            user_dn,
            alias,
            groups,
        })
    }
    .await;
    conn.close().await;
    r
}

/// The token policies a user with these LDAP groups gets; and every group
/// it is in (its extra `users/` groups, then the LDAP ones).
async fn policies_for(
    s: &dyn arca_sdk::Storage,
    cfg: &Config,
    username: &str,
    ldap_groups: &[String],
) -> Result<(Vec<String>, Vec<String>), LogicalError> {
    let user = entries::user(s, username).await?;
    let mut all: Vec<String> = user.as_ref().map(|u| u.groups.clone()).unwrap_or_default();
    all.extend(ldap_groups.iter().cloned());
    let mut policies = cfg.token.token_policies.clone();
    let mut seen = HashSet::new();
    for g in &all {
        let g = cfg.canonical(g);
        if seen.insert(g.clone()) {
            if let Some(e) = entries::group(s, &g).await? {
                policies.extend(e.policies);
            }
        }
    }
    if let Some(u) = user {
        policies.extend(u.policies);
    }
    Ok((clean_policies(policies), all))
}

impl Ldap {
    pub(crate) async fn login(&self, c: Ctx<'_>) -> HandlerResult {
        let cfg = config::load(c.storage).await?.ok_or_else(|| {
            LogicalError::invalid("auth method not configured: write its config first")
        })?;
        if !cfg.token.token_bound_cidrs.is_empty() {
            let blocks = cidr::parse(&cfg.token.token_bound_cidrs)?;
            let inside = c
                .req
                .connection
                .as_ref()
                .is_some_and(|conn| cidr::contains(&blocks, conn.remote_addr));
            if !inside {
                return Err(LogicalError::PermissionDenied);
            }
        }
        let username = check_username(&cfg, &c.data.str_or("username", "")?)?;
        let password = Zeroizing::new(c.data.str_or("password", "")?);
        if password.is_empty() {
            return Err(LogicalError::invalid(
                "password cannot be of zero length when passwordless binds are being denied",
            ));
        }
        let found = authenticate(&cfg, &username, &password).await?;
        drop(password);
        let (policies, _) = policies_for(c.storage, &cfg, &username, &found.groups).await?;

        let mut auth = Auth {
            display_name: username.clone(),
            metadata: [("username".to_string(), username.clone())]
                .into_iter()
                .collect(),
            ..Default::default()
        };
        cfg.token.fill(&mut auth);
        auth.alias = Some(arca_sdk::Alias {
            name: if cfg.username_as_alias {
                username.clone()
            } else {
                found.alias.clone()
            },
            metadata: [("name".to_string(), username.clone())]
                .into_iter()
                .collect(),
        });
        auth.group_aliases = found
            .groups
            .iter()
            .filter(|g| !g.is_empty())
            .map(|g| arca_sdk::Alias {
                name: g.clone(),
                metadata: Default::default(),
            })
            .collect();
        auth.policies = policies.clone();
        auth.token_policies = policies;
        auth.internal_data
            .insert("username".into(), Value::from(username));
        auth.internal_data
            .insert("user_dn".into(), Value::from(found.user_dn));
        let mut r = Response::login(auth);
        if found.groups.is_empty() {
            r.warnings.push(format!(
                "no LDAP groups found in groupDN {:?}; only policies from locally-defined groups available",
                cfg.groupdn
            ));
        }
        Ok(Some(r))
    }

    /// A login token is renewed: the user's groups are read again (see the
    /// module docs) and must give the token's policies.
    pub(crate) async fn renew(&self, c: Ctx<'_>) -> HandlerResult {
        let username = token_fields::renewing(c.req, "username")?;
        let login = c
            .req
            .auth
            .as_ref()
            .ok_or_else(|| LogicalError::invalid("no login to renew"))?;
        let user_dn = login
            .internal_data
            .get("user_dn")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let cfg = config::load(c.storage)
            .await?
            .ok_or_else(|| LogicalError::invalid("auth method not configured, not renewing"))?;
        let mut conn = client::dial(&cfg)
            .await
            .map_err(|e| op_failed(format!("failed to connect to LDAP server: {e}")))?;
        let groups: Result<Vec<String>, LogicalError> = async {
            service_bind(&mut conn, &cfg).await?;
            if cfg.searches_user() {
                match find_user(&mut conn, &cfg, &username).await? {
                    Some((dn, _)) if dn.eq_ignore_ascii_case(&user_dn) => {}
                    _ => {
                        return Err(LogicalError::invalid(format!(
                            "user {username:?} is no longer found in the directory, not renewing"
                        )))
                    }
                }
            }
            groups(&mut conn, &cfg, &user_dn, &username).await
        }
        .await;
        conn.close().await;
        let groups = groups?;
        let (policies, _) = policies_for(c.storage, &cfg, &username, &groups).await?;
        if without_default(&policies) != without_default(&login.token_policies) {
            return Err(LogicalError::invalid("policies have changed, not renewing"));
        }
        // The groups as the directory has them now: the entity's external
        // groups follow (core refreshes them).
        let mut r = token_fields::renewed(&cfg.token);
        if let Some(a) = r.auth.as_mut() {
            a.alias = Some(arca_sdk::Alias {
                name: username.clone(),
                metadata: Default::default(),
            });
            a.group_aliases = groups
                .iter()
                .filter(|g| !g.is_empty())
                .map(|g| arca_sdk::Alias {
                    name: g.clone(),
                    metadata: Default::default(),
                })
                .collect();
        }
        Ok(Some(r))
    }
}
