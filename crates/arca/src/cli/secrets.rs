//! `arca secrets …`: enable, disable, list, tune and move secrets engines.
//!
//! Requests: `enable` → `POST sys/mounts/<path>`; `disable` →
//! `DELETE sys/mounts/<path>`; `list` → `GET sys/mounts`; `tune` →
//! `POST sys/mounts/<path>/tune`; `move` → `POST sys/remount` `{from, to}`,
//! then `GET sys/remount/status/<id>` until the move succeeds or fails.
//! Durations given on the command line are validated locally and sent as
//! `"<seconds>s"`; `system` is passed through.

use serde_json::{json, Map, Value};

use super::data::parse_kv_flags;
use super::output::{self, Format};
use super::{
    missing_subcommand, parse, remote_error, sanitize_path, usage_error, CmdResult, Failure, Spec,
};
use crate::duration;
use crate::flags::Flag;

pub(super) const SUBCOMMANDS: &[(&str, &str)] = &[
    ("enable", "Enable a secrets engine"),
    ("disable", "Disable a secrets engine (destroys its data)"),
    ("list", "List enabled secrets engines"),
    ("tune", "Tune a secrets engine's configuration"),
    ("move", "Move a secrets engine to a new path"),
];

/// Dispatches `arca secrets <subcommand>`.
pub async fn run(argv: &[String]) -> CmdResult {
    let rest = argv.get(1..).unwrap_or(&[]);
    match argv.first().map(String::as_str) {
        Some("enable") => enable(rest).await,
        Some("disable") => disable(rest).await,
        Some("list") => list(rest).await,
        Some("tune") => tune(rest).await,
        Some("move") => move_engine(rest).await,
        other => Err(missing_subcommand(
            "secrets",
            "Manage secrets engines.",
            SUBCOMMANDS,
            other,
        )),
    }
}

/// A duration flag as the API wants it: `"<n>s"`, or `"system"`.
fn ttl_flag(name: &str, v: &str) -> Result<String, Failure> {
    if v == "system" {
        return Ok(v.to_string());
    }
    duration::parse_seconds(v)
        .map(|s| format!("{s}s"))
        .map_err(|e| usage_error(format!("invalid -{name}: {e}")))
}

const ENABLE: Spec = Spec {
    name: "secrets enable",
    usage: "[options] TYPE",
    help: "Enables a secrets engine of TYPE (kv, kv-v2, pki, transit, …) at -path\n\
           (default: the type name).",
    flags: &[
        Flag::string("path", "Mount path (default: TYPE)."),
        Flag::string("description", "Human-friendly description."),
        Flag::string("default-lease-ttl", "Default lease TTL (e.g. 1h)."),
        Flag::string("max-lease-ttl", "Maximum lease TTL."),
        Flag::int(
            "version",
            "Engine version (kv: 1 or 2); same as -options=version=N.",
        ),
        Flag::list("options", "Engine option k=v (repeatable)."),
        Flag::bool("local", "Do not replicate the mount to other clusters."),
        Flag::bool("seal-wrap", "Seal-wrap the mount's data."),
        Flag::bool("force-no-cache", "Disable caching for the mount."),
        Flag::list(
            "audit-non-hmac-request-keys",
            "Request key not HMAC'd in audit logs (repeatable).",
        ),
        Flag::list(
            "audit-non-hmac-response-keys",
            "Response key not HMAC'd in audit logs (repeatable).",
        ),
        Flag::list(
            "passthrough-request-headers",
            "Header passed to the engine (repeatable).",
        ),
        Flag::list(
            "allowed-response-headers",
            "Header the engine may set (repeatable).",
        ),
        Flag::string("listing-visibility", "\"unauth\" or \"hidden\"."),
    ],
    http: true,
    field: false,
};

/// The `sys/mounts/<path>` body and the path for `secrets enable`.
pub fn enable_request(cmd: &super::Cmd) -> Result<(String, Value), Failure> {
    let mut engine = cmd.args()[0].trim().to_string();
    let mut options = parse_kv_flags(&cmd.flags.list("options"), "options").map_err(usage_error)?;
    if engine == "kv-v2" {
        engine = "kv".to_string();
        options.insert("version".into(), json!("2"));
    }
    if let Some(v) = cmd.flags.int("version").filter(|v| *v > 0) {
        options.insert("version".into(), json!(v.to_string()));
    }
    let path = cmd
        .flags
        .string("path")
        .map(sanitize_path)
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| sanitize_path(&cmd.args()[0]));
    let mut config = mount_config(cmd)?;
    if cmd.flags.bool("force-no-cache") {
        config.insert("force_no_cache".into(), json!(true));
    }
    let mut body = json!({
        "type": engine,
        "description": cmd.flags.string_or("description", ""),
        "config": config,
        "local": cmd.flags.bool("local"),
        "seal_wrap": cmd.flags.bool("seal-wrap"),
    });
    if !options.is_empty() {
        body["options"] = Value::Object(options);
    }
    Ok((path, body))
}

/// The `config` fields shared by enable and tune.
fn mount_config(cmd: &super::Cmd) -> Result<Map<String, Value>, Failure> {
    let mut config = Map::new();
    for (flag, key) in [
        ("default-lease-ttl", "default_lease_ttl"),
        ("max-lease-ttl", "max_lease_ttl"),
    ] {
        if let Some(v) = cmd.flags.string(flag) {
            config.insert(key.into(), json!(ttl_flag(flag, v)?));
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
    Ok(config)
}

async fn enable(argv: &[String]) -> CmdResult {
    let cmd = parse(&ENABLE, argv)?;
    cmd.expect_args(1, 1)?;
    let (path, body) = enable_request(&cmd)?;
    let client = cmd.client()?;
    client
        .post(&format!("sys/mounts/{path}"), &body)
        .await
        .map_err(|e| remote_error(format!("Error enabling: {e}")))?;
    let engine = body["type"].as_str().unwrap_or_default();
    cmd.success(format!(
        "Success! Enabled the {engine} secrets engine at: {path}/"
    ))
}

const DISABLE: Spec = Spec {
    name: "secrets disable",
    usage: "[options] PATH",
    help: "Disables the secrets engine at PATH. All its data is destroyed and its leases revoked.",
    flags: &[],
    http: true,
    field: false,
};

async fn disable(argv: &[String]) -> CmdResult {
    let cmd = parse(&DISABLE, argv)?;
    cmd.expect_args(1, 1)?;
    let path = sanitize_path(&cmd.args()[0]);
    let client = cmd.client()?;
    client
        .delete(&format!("sys/mounts/{path}"))
        .await
        .map_err(|e| remote_error(format!("Error disabling secrets engine at {path}/: {e}")))?;
    cmd.success(format!(
        "Success! Disabled the secrets engine (if it existed) at: {path}/"
    ))
}

const LIST: Spec = Spec {
    name: "secrets list",
    usage: "[options]",
    help: "Lists the enabled secrets engines.",
    flags: &[Flag::bool(
        "detailed",
        "Show more columns (TTLs, options, UUID…).",
    )],
    http: true,
    field: false,
};

async fn list(argv: &[String]) -> CmdResult {
    let cmd = parse(&LIST, argv)?;
    cmd.expect_args(0, 0)?;
    let client = cmd.client()?;
    let resp = super::sys_request(&client, arca_client::Method::GET, "sys/mounts", None)
        .await
        .map_err(|e| remote_error(format!("Error listing secrets engines: {e}")))?;
    let mounts = mounts_of(&resp);
    match cmd.format {
        Format::Json => outln!("{}", output::json_text(&mounts)),
        Format::Table | Format::Raw => {
            outln!("{}", mounts_table(&mounts, cmd.flags.bool("detailed")))
        }
    }
    Ok(0)
}

/// The mount table of a `sys/mounts` answer (`data`, or the legacy top level).
pub fn mounts_of(resp: &Map<String, Value>) -> Map<String, Value> {
    match resp.get("data") {
        Some(Value::Object(d)) => d.clone(),
        _ => resp
            .iter()
            .filter(|(k, v)| k.ends_with('/') && v.is_object())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

/// The `secrets list` table.
pub fn mounts_table(mounts: &Map<String, Value>, detailed: bool) -> String {
    let s = |m: &Value, k: &str| m.get(k).map(output::go_fmt).unwrap_or_default();
    let ttl = |m: &Value, k: &str| match m.get("config").and_then(|c| c.get(k)) {
        Some(v) if v.as_u64() == Some(0) => "system".to_string(),
        Some(v) => output::human_duration_value(v),
        None => "system".to_string(),
    };
    let mut rows = Vec::new();
    if detailed {
        rows.push(
            [
                "Path",
                "Plugin",
                "Accessor",
                "Default TTL",
                "Max TTL",
                "Force No Cache",
                "Replication",
                "Seal Wrap",
                "Options",
                "Description",
                "UUID",
            ]
            .map(String::from)
            .to_vec(),
        );
    } else {
        rows.push(
            ["Path", "Type", "Accessor", "Description"]
                .map(String::from)
                .to_vec(),
        );
    }
    for (path, m) in mounts {
        if detailed {
            let replication = if m.get("local").and_then(Value::as_bool).unwrap_or(false) {
                "local"
            } else {
                "replicated"
            };
            let options = match m.get("options") {
                Some(Value::Object(o)) if !o.is_empty() => {
                    output::go_fmt(&Value::Object(o.clone()))
                }
                _ => String::new(),
            };
            rows.push(vec![
                path.clone(),
                s(m, "type"),
                s(m, "accessor"),
                ttl(m, "default_lease_ttl"),
                ttl(m, "max_lease_ttl"),
                m.get("config")
                    .and_then(|c| c.get("force_no_cache"))
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
                    .to_string(),
                replication.to_string(),
                m.get("seal_wrap")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
                    .to_string(),
                options,
                s(m, "description"),
                s(m, "uuid"),
            ]);
        } else {
            rows.push(vec![
                path.clone(),
                s(m, "type"),
                s(m, "accessor"),
                s(m, "description"),
            ]);
        }
    }
    output::columns(&rows, true)
}

const TUNE: Spec = Spec {
    name: "secrets tune",
    usage: "[options] PATH",
    help: "Tunes the configuration of the secrets engine at PATH.",
    flags: &[
        Flag::string(
            "default-lease-ttl",
            "Default lease TTL (e.g. 1h, or \"system\").",
        ),
        Flag::string("max-lease-ttl", "Maximum lease TTL (or \"system\")."),
        Flag::string("description", "New description."),
        Flag::list("options", "Engine option k=v (repeatable), e.g. version=2."),
        Flag::list(
            "audit-non-hmac-request-keys",
            "Request key not HMAC'd in audit logs (repeatable).",
        ),
        Flag::list(
            "audit-non-hmac-response-keys",
            "Response key not HMAC'd in audit logs (repeatable).",
        ),
        Flag::list(
            "passthrough-request-headers",
            "Header passed to the engine (repeatable).",
        ),
        Flag::list(
            "allowed-response-headers",
            "Header the engine may set (repeatable).",
        ),
        Flag::string("listing-visibility", "\"unauth\" or \"hidden\"."),
    ],
    http: true,
    field: false,
};

/// The `sys/mounts/<path>/tune` body for `secrets tune`.
pub fn tune_request(cmd: &super::Cmd) -> Result<Value, Failure> {
    let mut body = mount_config(cmd)?;
    if let Some(d) = cmd.flags.string("description") {
        body.insert("description".into(), json!(d));
    }
    let options = parse_kv_flags(&cmd.flags.list("options"), "options").map_err(usage_error)?;
    if !options.is_empty() {
        body.insert("options".into(), Value::Object(options));
    }
    Ok(Value::Object(body))
}

async fn tune(argv: &[String]) -> CmdResult {
    let cmd = parse(&TUNE, argv)?;
    cmd.expect_args(1, 1)?;
    let path = sanitize_path(&cmd.args()[0]);
    let body = tune_request(&cmd)?;
    let client = cmd.client()?;
    client
        .post(&format!("sys/mounts/{path}/tune"), &body)
        .await
        .map_err(|e| remote_error(format!("Error tuning secrets engine {path}: {e}")))?;
    cmd.success(format!("Success! Tuned the secrets engine at: {path}/"))
}

const MOVE: Spec = Spec {
    name: "secrets move",
    usage: "[options] SOURCE DESTINATION",
    help: "Moves the secrets engine at SOURCE to DESTINATION, keeping its data,\n\
           then waits for the move to finish (sys/remount, sys/remount/status).",
    flags: &[],
    http: true,
    field: false,
};

/// How long `secrets move` waits between two status checks (the Vault CLI: 10 s).
const MOVE_POLL: std::time::Duration = std::time::Duration::from_secs(10);

async fn move_engine(argv: &[String]) -> CmdResult {
    let cmd = parse(&MOVE, argv)?;
    cmd.expect_args(2, 2)?;
    let src = format!("{}/", sanitize_path(&cmd.args()[0]));
    let dst = format!("{}/", sanitize_path(&cmd.args()[1]));
    let client = cmd.client()?;
    let moving = |e: arca_client::ClientError| {
        remote_error(format!("Error moving secrets engine {src} to {dst}: {e}"))
    };
    let resp = super::sys_request(
        &client,
        arca_client::Method::POST,
        "sys/remount",
        Some(&json!({"from": src, "to": dst})),
    )
    .await
    .map_err(moving)?;
    let id = super::sys_field(&resp, "migration_id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    outln!("Started moving secrets engine {src} to {dst}, with migration ID {id}");
    loop {
        let st = super::sys_request(
            &client,
            arca_client::Method::GET,
            &format!("sys/remount/status/{id}"),
            None,
        )
        .await
        .map_err(|e| {
            remote_error(format!(
                "Error checking migration status of secrets engine {src} to {dst}: {e}"
            ))
        })?;
        let status = super::sys_field(&st, "migration_info")
            .and_then(|i| i.get("status"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        match status {
            "success" => {
                outln!(
                    "Success! Finished moving secrets engine {src} to {dst}, with migration ID {id}"
                );
                return Ok(0);
            }
            "failure" => {
                // The Vault CLI reports a failed move but exits 0.
                eprintln!(
                    "Failure! Error encountered moving secrets engine {src} to {dst}, with migration ID {id}"
                );
                return Ok(0);
            }
            _ => {
                outln!(
                    "Waiting for terminal status in migration of secrets engine {src} to {dst}, with migration ID {id}"
                );
                tokio::time::sleep(MOVE_POLL).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(spec: &Spec, a: &[&str]) -> super::super::Cmd {
        parse(spec, &a.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn enable_body() {
        let c = cmd(
            &ENABLE,
            &[
                "-path=kv2",
                "-version=2",
                "-description=team",
                "-default-lease-ttl=1h",
                "kv",
            ],
        );
        let (path, body) = enable_request(&c).unwrap();
        assert_eq!(path, "kv2");
        assert_eq!(body["type"], "kv");
        assert_eq!(body["options"], json!({"version": "2"}));
        assert_eq!(body["config"], json!({"default_lease_ttl": "3600s"}));
        assert_eq!(body["description"], "team");
        let c = cmd(&ENABLE, &["kv-v2"]);
        let (path, body) = enable_request(&c).unwrap();
        assert_eq!(path, "kv-v2");
        assert_eq!(body["type"], "kv");
        assert_eq!(body["options"]["version"], "2");
        assert!(enable_request(&cmd(&ENABLE, &["-max-lease-ttl=soon", "kv"])).is_err());
    }

    #[test]
    fn tune_body() {
        let c = cmd(
            &TUNE,
            &[
                "-max-lease-ttl=768h",
                "-default-lease-ttl=system",
                "-options=version=2",
                "secret",
            ],
        );
        assert_eq!(
            tune_request(&c).unwrap(),
            json!({"max_lease_ttl": "2764800s", "default_lease_ttl": "system",
                   "options": {"version": "2"}})
        );
    }

    #[test]
    fn mounts_listing() {
        let resp = json!({"secret/": {"type": "kv", "accessor": "kv_1", "description": "",
                          "config": {"default_lease_ttl": 0, "max_lease_ttl": 0}},
                          "request_id": "x",
                          "data": {"secret/": {"type": "kv", "accessor": "kv_1", "description": "",
                                    "config": {"default_lease_ttl": 0, "max_lease_ttl": 3600},
                                    "options": {"version": "2"}},
                                   "sys/": {"type": "system", "accessor": "system_1",
                                    "description": "system endpoints"}}});
        let m = mounts_of(resp.as_object().unwrap());
        assert_eq!(m.len(), 2);
        let t = mounts_table(&m, false);
        assert_eq!(
            t,
            "Path       Type      Accessor    Description\n\
             ----       ----      --------    -----------\n\
             secret/    kv        kv_1        n/a\n\
             sys/       system    system_1    system endpoints"
        );
        let t = mounts_table(&m, true);
        assert!(t.contains("system         1h"), "{t}");
        assert!(t.contains("map[version:2]"));
        let legacy = json!({"secret/": {"type": "kv"}, "request_id": "x"});
        assert_eq!(mounts_of(legacy.as_object().unwrap()).len(), 1);
    }
}
