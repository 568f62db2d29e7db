//! `arca audit …`: enable, disable and list audit devices, as the Vault CLI
//! sends them: `enable` → `PUT sys/audit/<path>` `{type, description,
//! options, local}` with the `K=V` arguments as options; `disable` →
//! `DELETE sys/audit/<path>`; `list` → `GET sys/audit`.

use arca_client::Method;
use serde_json::{json, Map, Value};

use super::data::parse_args_data;
use super::output::{self, Format};
use super::{missing_subcommand, parse, remote_error, usage_error, CmdResult, Spec};
use crate::flags::Flag;

pub(super) const SUBCOMMANDS: &[(&str, &str)] = &[
    ("disable", "Disables an audit device"),
    ("enable", "Enables an audit device"),
    ("list", "Lists enabled audit devices"),
];

/// Dispatches `arca audit <subcommand>`.
pub async fn run(argv: &[String]) -> CmdResult {
    let rest = argv.get(1..).unwrap_or(&[]);
    match argv.first().map(String::as_str) {
        Some("enable") => enable(rest).await,
        Some("disable") => disable(rest).await,
        Some("list") => list(rest).await,
        other => Err(missing_subcommand(
            "audit",
            "Interact with audit devices.",
            SUBCOMMANDS,
            other,
        )),
    }
}

fn device_path(p: &str) -> String {
    format!("{}/", super::sanitize_path(p))
}

const ENABLE: Spec = Spec {
    name: "audit enable",
    usage: "[options] TYPE [CONFIG K=V...]",
    help: "Enables an audit device of TYPE; K=V pairs are its options, e.g.\n\
           \n    $ arca audit enable file file_path=/var/log/audit.log",
    flags: &[
        Flag::string(
            "description",
            "Human-friendly description for the purpose of this audit device.",
        ),
        Flag::bool(
            "local",
            "Mark the device local-only (refused by the server: every node has every device).",
        ),
        Flag::string(
            "path",
            "Place where the audit device will be accessible (default: its type).",
        ),
    ],
    http: true,
    field: false,
};

async fn enable(argv: &[String]) -> CmdResult {
    let cmd = parse(&ENABLE, argv)?;
    let Some(kind) = cmd.args().first().map(|t| t.trim().to_string()) else {
        return Err(usage_error(
            "Error enabling audit device: audit type missing. Valid types include 'file', 'socket' and 'syslog'.",
        ));
    };
    let options = parse_args_data(&cmd.args()[1..], &mut std::io::stdin())
        .map_err(|e| usage_error(format!("Failed to parse K=V data: {e}")))?;
    let options: Map<String, Value> = options
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            (k, Value::String(v))
        })
        .collect();
    let path = device_path(cmd.flags.string("path").unwrap_or(&kind));
    let body = json!({
        "type": kind,
        "description": cmd.flags.string("description").unwrap_or(""),
        "options": options,
        "local": cmd.flags.bool("local"),
    });
    let client = cmd.client()?;
    client
        .write(&format!("sys/audit/{}", path.trim_end_matches('/')), &body)
        .await
        .map_err(|e| remote_error(format!("Error enabling audit device: {e}")))?;
    cmd.success(format!(
        "Success! Enabled the {kind} audit device at: {path}"
    ))
}

const DISABLE: Spec = Spec {
    name: "audit disable",
    usage: "[options] PATH",
    help: "Disables the audit device at PATH (the path, not the type).",
    flags: &[],
    http: true,
    field: false,
};

async fn disable(argv: &[String]) -> CmdResult {
    let cmd = parse(&DISABLE, argv)?;
    cmd.expect_args(1, 1)?;
    let path = device_path(&cmd.args()[0]);
    let client = cmd.client()?;
    client
        .delete(&format!("sys/audit/{}", path.trim_end_matches('/')))
        .await
        .map_err(|e| remote_error(format!("Error disabling audit device: {e}")))?;
    cmd.success(format!(
        "Success! Disabled audit device (if it was enabled) at: {path}"
    ))
}

const LIST: Spec = Spec {
    name: "audit list",
    usage: "[options]",
    help: "Lists the enabled audit devices and their options.",
    flags: &[Flag::bool(
        "detailed",
        "Print detailed information such as options and replication status.",
    )],
    http: true,
    field: false,
};

async fn list(argv: &[String]) -> CmdResult {
    let cmd = parse(&LIST, argv)?;
    cmd.expect_args(0, 0)?;
    let client = cmd.client()?;
    let resp = super::sys_request(&client, Method::GET, "sys/audit", None)
        .await
        .map_err(|e| remote_error(format!("Error listing audits: {e}")))?;
    let devices = super::secrets::mounts_of(&resp);
    if devices.is_empty() {
        return Err(remote_error("No audit devices are enabled."));
    }
    match cmd.format {
        Format::Json => outln!("{}", output::json_text(&devices)),
        Format::Table | Format::Raw => {
            outln!("{}", audit_table(&devices, cmd.flags.bool("detailed")))
        }
    }
    Ok(0)
}

/// The `audit list` table, columns as the Vault CLI prints them.
pub fn audit_table(devices: &Map<String, Value>, detailed: bool) -> String {
    let s = |m: &Value, k: &str| m.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let mut rows = vec![if detailed {
        ["Path", "Type", "Description", "Replication", "Options"]
            .map(String::from)
            .to_vec()
    } else {
        ["Path", "Type", "Description"].map(String::from).to_vec()
    }];
    let mut paths: Vec<&String> = devices.keys().collect();
    paths.sort();
    for path in paths {
        let m = &devices[path];
        let mut row = vec![path.clone(), s(m, "type"), s(m, "description")];
        if detailed {
            let replication = if m.get("local").and_then(Value::as_bool) == Some(true) {
                "local"
            } else {
                "replicated"
            };
            let mut opts: Vec<String> = m
                .get("options")
                .and_then(Value::as_object)
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect()
                })
                .unwrap_or_default();
            opts.sort();
            row.push(replication.to_string());
            row.push(opts.join(" "));
        }
        rows.push(row);
    }
    output::columns(&rows, true)
}
