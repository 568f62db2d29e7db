//! `arca auth …`: enable, disable, list, tune and describe auth methods.
//!
//! Requests (as the Vault CLI sends them): `enable` → `POST sys/auth/<path>`
//! `{type, description, config, local, options}`; `disable` → `DELETE
//! sys/auth/<path>`; `list` → `GET sys/auth`; `tune` → `POST
//! sys/mounts/auth/<path>/tune` with only the flags given; `help` → `GET
//! sys/auth` to find the method, then the help of its `arca login` handler
//! (token and userpass; other methods have none, exit 2 as in bao).
//!
//! Refused locally (exit 2, the server has no such feature): `-seal-wrap`,
//! `-external-entropy-access` and `-plugin-version` (Arca has no plugin
//! catalog). Config keys the server does not support for auth mounts
//! (audit HMAC keys, headers) are sent and refused by the server.

use arca_client::Method;
use serde_json::{json, Map, Value};

use super::data::parse_kv_flags;
use super::output::{self, Format};
use super::{
    missing_subcommand, parse, remote_error, sanitize_path, usage_error, Cmd, CmdResult, Failure,
    Spec,
};
use crate::duration;
use crate::flags::Flag;

pub(super) const SUBCOMMANDS: &[(&str, &str)] = &[
    ("disable", "Disables an auth method"),
    ("enable", "Enables a new auth method"),
    ("help", "Prints usage for an auth method"),
    ("list", "Lists enabled auth methods"),
    ("tune", "Tunes an auth method configuration"),
];

/// Dispatches `arca auth <subcommand>`.
pub async fn run(argv: &[String]) -> CmdResult {
    let rest = argv.get(1..).unwrap_or(&[]);
    match argv.first().map(String::as_str) {
        Some("enable") => enable(rest).await,
        Some("disable") => disable(rest).await,
        Some("list") => list(rest).await,
        Some("tune") => tune(rest).await,
        Some("help") => help(rest).await,
        other => Err(missing_subcommand(
            "auth",
            "Interact with auth methods.",
            SUBCOMMANDS,
            other,
        )),
    }
}

/// `path` sanitized, with exactly one trailing slash (`ensureTrailingSlash`).
pub fn mount_path(p: &str) -> String {
    format!("{}/", sanitize_path(p))
}

/// A duration flag as the API wants it: `"<n>s"`.
fn ttl_flag(name: &str, v: &str) -> Result<String, Failure> {
    duration::parse_seconds(v)
        .map(|s| format!("{s}s"))
        .map_err(|e| usage_error(format!("invalid value \"{v}\" for flag -{name}: {e}")))
}

/// Flags with no server side: refused with exit 2 naming what is missing.
fn refuse_unsupported(cmd: &Cmd) -> Result<(), Failure> {
    for (flag, what) in [
        (
            "seal-wrap",
            "seal wrapping of auth mounts (the barrier already encrypts everything)",
        ),
        ("external-entropy-access", "external entropy access"),
        ("plugin-version", "a plugin catalog (only built-in methods)"),
    ] {
        let set = match cmd.flags.string(flag) {
            Some(v) => !v.is_empty() && v != "false",
            None => cmd.flags.bool(flag),
        };
        if set {
            return Err(remote_error(format!(
                "Error: -{flag} is not supported: Arca has no {what}"
            )));
        }
    }
    Ok(())
}

const MOUNT_CONFIG_FLAGS: &[Flag] = &[
    Flag::string(
        "description",
        "Human-friendly description of the auth method.",
    ),
    Flag::string(
        "default-lease-ttl",
        "Default lease TTL of the method's tokens (e.g. 1h).",
    ),
    Flag::string("max-lease-ttl", "Maximum lease TTL of the method's tokens."),
    Flag::list(
        "audit-non-hmac-request-keys",
        "Request key not HMAC'd in audit logs (repeatable; refused by Arca).",
    ),
    Flag::list(
        "audit-non-hmac-response-keys",
        "Response key not HMAC'd in audit logs (repeatable; refused by Arca).",
    ),
    Flag::list(
        "passthrough-request-headers",
        "Header passed to the method (repeatable; refused by Arca).",
    ),
    Flag::list(
        "allowed-response-headers",
        "Header the method may set (repeatable; refused by Arca).",
    ),
    Flag::list("options", "Option k=v passed to the method (repeatable)."),
    Flag::string(
        "token-type",
        "Type of token issued: service, batch, default-service…",
    ),
    Flag::int(
        "version",
        "Version of the method (same as -options=version=N).",
    ),
    Flag::string(
        "plugin-version",
        "Plugin version (refused: Arca has no plugin catalog).",
    ),
];

/// The `config` object of enable/tune, from the flags that were given.
fn mount_config(cmd: &Cmd, tune: bool) -> Result<Map<String, Value>, Failure> {
    let mut config = Map::new();
    for (flag, key) in [
        ("default-lease-ttl", "default_lease_ttl"),
        ("max-lease-ttl", "max_lease_ttl"),
    ] {
        if let Some(v) = cmd.flags.string(flag) {
            let v = if tune && (v == "system" || v.is_empty()) {
                v.to_string()
            } else {
                ttl_flag(flag, v)?
            };
            config.insert(key.into(), json!(v));
        }
    }
    for (flag, key) in [
        ("audit-non-hmac-request-keys", "audit_non_hmac_request_keys"),
        (
            "audit-non-hmac-response-keys",
            "audit_non_hmac_response_keys",
        ),
        ("passthrough-request-headers", "passthrough_request_headers"),
        ("allowed-response-headers", "allowed_response_headers"),
    ] {
        let v = cmd.flags.list(flag);
        if !v.is_empty() {
            config.insert(key.into(), json!(v));
        }
    }
    if let Some(v) = cmd.flags.string("listing-visibility") {
        config.insert("listing_visibility".into(), json!(v));
    }
    if let Some(v) = cmd.flags.string("token-type") {
        config.insert("token_type".into(), json!(v));
    }
    Ok(config)
}

fn options(cmd: &Cmd) -> Result<Map<String, Value>, Failure> {
    let mut options = parse_kv_flags(&cmd.flags.list("options"), "options").map_err(usage_error)?;
    if let Some(v) = cmd.flags.int("version").filter(|v| *v > 0) {
        options.insert("version".into(), json!(v.to_string()));
    }
    Ok(options)
}

const ENABLE_FLAGS: &[Flag] = &[
    Flag::string(
        "path",
        "Place where the auth method is mounted (default: TYPE).",
    ),
    Flag::string("plugin-name", "Name of the auth method (default: TYPE)."),
    Flag::string(
        "listing-visibility",
        "\"unauth\" to show the method in the UI's login list.",
    ),
    Flag::bool("local", "Do not replicate the mount to other clusters."),
    Flag::bool(
        "seal-wrap",
        "Seal-wrap the mount (refused: not supported by Arca).",
    ),
    Flag::bool(
        "external-entropy-access",
        "External entropy access (refused: not supported by Arca).",
    ),
];

const fn concat_flags<const N: usize>(a: &[Flag], b: &[Flag]) -> [Flag; N] {
    let mut out = [Flag::bool("", ""); N];
    let mut i = 0;
    while i < a.len() {
        out[i] = a[i];
        i += 1;
    }
    let mut j = 0;
    while j < b.len() {
        out[i + j] = b[j];
        j += 1;
    }
    out
}

const ENABLE_ALL: [Flag; ENABLE_FLAGS.len() + MOUNT_CONFIG_FLAGS.len()] =
    concat_flags(ENABLE_FLAGS, MOUNT_CONFIG_FLAGS);

const ENABLE: Spec = Spec {
    name: "auth enable",
    usage: "[options] TYPE",
    help: "Enables a new auth method of TYPE (userpass, approle, ldap, jwt, cert…) at\n\
           -path (default: the type name). Logins then happen at auth/<path>/login.",
    flags: &ENABLE_ALL,
    http: true,
    field: false,
};

/// The path and `sys/auth/<path>` body of `auth enable`.
pub fn enable_request(cmd: &Cmd) -> Result<(String, Value), Failure> {
    let arg = cmd.args()[0].trim().to_string();
    let kind = cmd
        .flags
        .string("plugin-name")
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| arg.clone());
    let path = cmd
        .flags
        .string("path")
        .filter(|p| !sanitize_path(p).is_empty())
        .map(mount_path)
        .unwrap_or_else(|| mount_path(&arg));
    let mut body = json!({
        "type": kind,
        "description": cmd.flags.string_or("description", ""),
        "config": mount_config(cmd, false)?,
        "local": cmd.flags.bool("local"),
    });
    let options = options(cmd)?;
    if !options.is_empty() {
        body["options"] = Value::Object(options);
    }
    Ok((path, body))
}

async fn enable(argv: &[String]) -> CmdResult {
    let cmd = parse(&ENABLE, argv)?;
    cmd.expect_args(1, 1)?;
    refuse_unsupported(&cmd)?;
    let (path, body) = enable_request(&cmd)?;
    let kind = body["type"].as_str().unwrap_or_default().to_string();
    let client = cmd.client()?;
    client
        .post(&format!("sys/auth/{}", path.trim_end_matches('/')), &body)
        .await
        .map_err(|e| remote_error(format!("Error enabling {kind} auth: {e}")))?;
    cmd.success(format!("Success! Enabled {kind} auth method at: {path}"))
}

const DISABLE: Spec = Spec {
    name: "auth disable",
    usage: "[options] PATH",
    help: "Disables the auth method at PATH. Every token it issued is revoked.",
    flags: &[],
    http: true,
    field: false,
};

async fn disable(argv: &[String]) -> CmdResult {
    let cmd = parse(&DISABLE, argv)?;
    cmd.expect_args(1, 1)?;
    let path = mount_path(&cmd.args()[0]);
    let client = cmd.client()?;
    client
        .delete(&format!("sys/auth/{}", path.trim_end_matches('/')))
        .await
        .map_err(|e| remote_error(format!("Error disabling auth method at {path}: {e}")))?;
    cmd.success(format!(
        "Success! Disabled the auth method (if it existed) at: {path}"
    ))
}

const LIST: Spec = Spec {
    name: "auth list",
    usage: "[options]",
    help: "Lists the enabled auth methods.",
    flags: &[Flag::bool(
        "detailed",
        "Show more columns: TTLs, token type, replication, options, UUID, versions.",
    )],
    http: true,
    field: false,
};

/// The auth mounts of a `sys/auth` answer (its `data`, or the legacy top level).
async fn auth_mounts(cmd: &Cmd) -> Result<Map<String, Value>, Failure> {
    let client = cmd.client()?;
    let resp = super::sys_request(&client, Method::GET, "sys/auth", None)
        .await
        .map_err(|e| remote_error(format!("Error listing enabled authentications: {e}")))?;
    Ok(super::secrets::mounts_of(&resp))
}

async fn list(argv: &[String]) -> CmdResult {
    let cmd = parse(&LIST, argv)?;
    cmd.expect_args(0, 0)?;
    let mounts = auth_mounts(&cmd).await?;
    match cmd.format {
        Format::Json => outln!("{}", output::json_text(&mounts)),
        Format::Table | Format::Raw => {
            outln!("{}", auth_table(&mounts, cmd.flags.bool("detailed")))
        }
    }
    Ok(0)
}

/// The `auth list` table, columns as the Vault CLI prints them.
pub fn auth_table(mounts: &Map<String, Value>, detailed: bool) -> String {
    let s = |m: &Value, k: &str| match m.get(k) {
        Some(Value::Null) | None => String::new(),
        Some(v) => output::go_fmt(v),
    };
    let cfg = |m: &Value, k: &str| m.get("config").and_then(|c| c.get(k)).cloned();
    // Whole seconds, as `strconv.Itoa`; 0 is "system".
    let ttl = |m: &Value, k: &str| match cfg(m, k).and_then(|v| v.as_u64()) {
        Some(0) | None => "system".to_string(),
        Some(n) => n.to_string(),
    };
    let header: &[&str] = if detailed {
        &[
            "Path",
            "Plugin",
            "Accessor",
            "Default TTL",
            "Max TTL",
            "Token Type",
            "Replication",
            "Seal Wrap",
            "External Entropy Access",
            "Options",
            "Description",
            "UUID",
            "Version",
            "Running Version",
            "Running SHA256",
            "Deprecation Status",
        ]
    } else {
        &["Path", "Type", "Accessor", "Description", "Version"]
    };
    let mut rows = vec![header.iter().map(|h| h.to_string()).collect::<Vec<_>>()];
    let mut paths: Vec<&String> = mounts.keys().collect();
    paths.sort();
    for path in paths {
        let m = &mounts[path];
        if detailed {
            let replication = if m.get("local").and_then(Value::as_bool).unwrap_or(false) {
                "local"
            } else {
                "replicated"
            };
            let options = match m.get("options") {
                Some(Value::Object(o)) => output::go_fmt(&Value::Object(o.clone())),
                _ => "map[]".to_string(),
            };
            let flag = |k: &str| {
                m.get(k)
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
                    .to_string()
            };
            rows.push(vec![
                path.clone(),
                s(m, "type"),
                s(m, "accessor"),
                ttl(m, "default_lease_ttl"),
                ttl(m, "max_lease_ttl"),
                cfg(m, "token_type")
                    .map(|v| output::go_fmt(&v))
                    .unwrap_or_default(),
                replication.to_string(),
                flag("seal_wrap"),
                flag("external_entropy_access"),
                options,
                s(m, "description"),
                s(m, "uuid"),
                s(m, "plugin_version"),
                s(m, "running_plugin_version"),
                s(m, "running_sha256"),
                s(m, "deprecation_status"),
            ]);
        } else {
            rows.push(vec![
                path.clone(),
                s(m, "type"),
                s(m, "accessor"),
                s(m, "description"),
                s(m, "plugin_version"),
            ]);
        }
    }
    output::columns(&rows, true)
}

const TUNE_FLAGS: &[Flag] = &[
    Flag::string(
        "user-lockout-threshold",
        "Failed logins before the user is locked out (userpass, approle, ldap).",
    ),
    Flag::string(
        "user-lockout-duration",
        "How long a locked-out user stays locked (e.g. 15m).",
    ),
    Flag::string(
        "user-lockout-counter-reset-duration",
        "Time after which the failed-login counter is reset.",
    ),
    Flag::bool(
        "user-lockout-disable",
        "Disable user lockout for this mount.",
    ),
];

const TUNE_ALL: [Flag; TUNE_FLAGS.len() + MOUNT_CONFIG_FLAGS.len()] =
    concat_flags(MOUNT_CONFIG_FLAGS, TUNE_FLAGS);

const TUNE: Spec = Spec {
    name: "auth tune",
    usage: "[options] PATH",
    help: "Tunes the configuration of the auth method at PATH. Only the options\n\
           given change.",
    flags: &TUNE_ALL,
    http: true,
    field: false,
};

/// The `sys/mounts/auth/<path>/tune` body of `auth tune`: only what was given.
pub fn tune_request(cmd: &Cmd) -> Result<Value, Failure> {
    let mut body = mount_config(cmd, true)?;
    if let Some(d) = cmd.flags.string("description") {
        body.insert("description".into(), json!(d));
    }
    let options = options(cmd)?;
    if !options.is_empty() {
        body.insert("options".into(), Value::Object(options));
    }
    let mut lockout = Map::new();
    if let Some(v) = cmd.flags.string("user-lockout-threshold") {
        let n: u64 = v.trim().parse().map_err(|_| {
            usage_error(format!(
                "invalid value \"{v}\" for flag -user-lockout-threshold: parse error"
            ))
        })?;
        lockout.insert("lockout_threshold".into(), json!(n.to_string()));
    }
    for (flag, key) in [
        ("user-lockout-duration", "lockout_duration"),
        (
            "user-lockout-counter-reset-duration",
            "lockout_counter_reset_duration",
        ),
    ] {
        if let Some(v) = cmd.flags.string(flag) {
            lockout.insert(key.into(), json!(ttl_flag(flag, v)?));
        }
    }
    if cmd.flags.is_set("user-lockout-disable") {
        lockout.insert(
            "lockout_disable".into(),
            json!(cmd.flags.bool("user-lockout-disable")),
        );
    }
    if !lockout.is_empty() {
        body.insert("user_lockout_config".into(), Value::Object(lockout));
    }
    Ok(Value::Object(body))
}

async fn tune(argv: &[String]) -> CmdResult {
    let cmd = parse(&TUNE, argv)?;
    cmd.expect_args(1, 1)?;
    refuse_unsupported(&cmd)?;
    let path = mount_path(&cmd.args()[0]);
    let body = tune_request(&cmd)?;
    let client = cmd.client()?;
    client
        .post(
            &format!("sys/mounts/auth/{}/tune", path.trim_end_matches('/')),
            &body,
        )
        .await
        .map_err(|e| remote_error(format!("Error tuning auth method {path}: {e}")))?;
    cmd.success(format!("Success! Tuned the auth method at: {path}"))
}

const HELP: Spec = Spec {
    name: "auth help",
    usage: "[options] TYPE | PATH",
    help: "Prints how to log in with an auth method, given its type or the path\n\
           where it is enabled.",
    flags: &[],
    http: true,
    field: false,
};

const TOKEN_LOGIN_HELP: &str = "Usage: arca login TOKEN [CONFIG K=V...]

  The token auth method allows logging in directly with a token. This
  can be a token from the \"token create\" command or API. There are no
  configuration options for this auth method.

  Authenticate using a token:

      $ arca login 96ddf4bc-d217-f3ba-f9bd-017055595017

  Authenticate but do not lookup information about the token:

      $ arca login token=96ddf4bc-d217-f3ba-f9bd-017055595017 lookup=false

  This token usually comes from a different source such as the API or via
  the built-in \"arca token create\" command.

Configuration:

  token=<string>
      The token to use for authentication. This is usually provided directly
      via the \"arca login\" command.
";

const USERPASS_LOGIN_HELP: &str = "Usage: arca login -method=userpass [CONFIG K=V...]

  The userpass auth method allows users to authenticate using Vault's
  internal user database.

  Authenticate as \"sally\":

      $ arca login -method=userpass username=sally
      Password (will be hidden):

  Authenticate as \"bob\":

      $ arca login -method=userpass username=bob password=password

Configuration:

  password=<string>
      Password to use for authentication. If not provided, the CLI will prompt
      for this on stdin.

  username=<string>
      Username to use for authentication.
";

async fn help(argv: &[String]) -> CmdResult {
    let cmd = parse(&HELP, argv)?;
    cmd.expect_args(1, 1)?;
    let arg = cmd.args()[0].trim().to_string();
    let mounts = auth_mounts(&cmd).await?;
    // A type that is enabled somewhere, else the path of a mount.
    let kind = if mounts
        .values()
        .any(|m| m.get("type").and_then(Value::as_str) == Some(arg.as_str()))
    {
        arg.clone()
    } else {
        let p = mount_path(&arg);
        match mounts.get(&p) {
            Some(m) => m
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            None => {
                return Err(usage_error(format!(
                    "No auth method available on the server at \"{p}\""
                )))
            }
        }
    };
    match kind.as_str() {
        "token" => out!("{TOKEN_LOGIN_HELP}"),
        "userpass" => out!("{USERPASS_LOGIN_HELP}"),
        // `arca login` has no handler for other methods (nor has bao's).
        other => {
            return Err(remote_error(format!(
                "No method-specific CLI handler available for auth method \"{other}\""
            )))
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(spec: &Spec, a: &[&str]) -> Cmd {
        parse(spec, &a.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn enable_body() {
        let c = cmd(
            &ENABLE,
            &[
                "-path=/up/",
                "-description=people",
                "-default-lease-ttl=1h",
                "-token-type=batch",
                "-version=2",
                "userpass",
            ],
        );
        let (path, body) = enable_request(&c).unwrap();
        assert_eq!(path, "up/");
        assert_eq!(
            body,
            json!({"type": "userpass", "description": "people", "local": false,
                   "config": {"default_lease_ttl": "3600s", "token_type": "batch"},
                   "options": {"version": "2"}})
        );
        let (path, body) = enable_request(&cmd(&ENABLE, &["approle"])).unwrap();
        assert_eq!(path, "approle/");
        assert_eq!(body["config"], json!({}));
        assert_eq!(
            refuse_unsupported(&cmd(&ENABLE, &["-seal-wrap", "approle"]))
                .unwrap_err()
                .code,
            2
        );
    }

    #[test]
    fn tune_body_has_only_given_flags() {
        let c = cmd(
            &TUNE,
            &[
                "-max-lease-ttl=2h",
                "-user-lockout-threshold=3",
                "-user-lockout-disable",
                "up",
            ],
        );
        assert_eq!(
            tune_request(&c).unwrap(),
            json!({"max_lease_ttl": "7200s",
                   "user_lockout_config": {"lockout_threshold": "3", "lockout_disable": true}})
        );
        assert_eq!(tune_request(&cmd(&TUNE, &["up"])).unwrap(), json!({}));
    }

    #[test]
    fn list_table() {
        let m = json!({"token/": {"type": "token", "accessor": "token_1",
                        "description": "token based credentials", "options": null,
                        "config": {"default_lease_ttl": 0, "max_lease_ttl": 0,
                                   "token_type": "default-service"}},
                       "up/": {"type": "userpass", "accessor": "auth_userpass_2",
                        "description": "", "options": {"a": "b"}, "local": true,
                        "config": {"default_lease_ttl": 3600, "max_lease_ttl": 0,
                                   "token_type": "batch"}}});
        let t = auth_table(m.as_object().unwrap(), false);
        assert_eq!(
            t.lines().next().unwrap(),
            "Path      Type        Accessor           Description                Version"
        );
        assert!(t.contains("up/       userpass    auth_userpass_2    n/a"));
        let t = auth_table(m.as_object().unwrap(), true);
        assert!(t.contains("3600"), "{t}");
        assert!(t.contains("map[a:b]"), "{t}");
        assert!(t.contains("local"), "{t}");
    }
}
