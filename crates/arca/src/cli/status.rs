//! `arca status`: seal and HA status (`GET sys/seal-status`, then
//! `GET sys/leader`), shared with `operator unseal`, which prints the same.
//!
//! Invariants: exit 0 when unsealed, 2 when sealed, 1 on error. A `503` or
//! "sealed" error from `sys/leader` is expected while sealed and tolerated;
//! any other `sys/leader` error fails the command (exit 1), as in Vault.

use arca_client::{Client, Method};
use serde_json::{Map, Value};

use super::output::{self, Format};
use super::{parse, sys_field, sys_request, usage_error, Cmd, CmdResult, Failure, Spec};

const STATUS: Spec = Spec {
    name: "status",
    usage: "[options]",
    help: "Prints the seal and HA status of the server.\n\
           Exit code 0: unsealed; 2: sealed; 1: error.",
    flags: &[],
    http: true,
    field: false,
};

/// `arca status`.
pub async fn run(argv: &[String]) -> CmdResult {
    let cmd = parse(&STATUS, argv)?;
    cmd.expect_args(0, 0)?;
    let client = cmd.client()?;
    let status = sys_request(&client, Method::GET, "sys/seal-status", None)
        .await
        .map_err(|e| usage_error(format!("Error checking seal status: {e}")))?;
    let merged = with_leader(&client, status).await?;
    print_status(&cmd, &merged);
    let sealed = merged
        .get("sealed")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(if sealed { 2 } else { 0 })
}

/// Adds `sys/leader` fields to a seal status (the CLI's `SealStatusOutput`).
pub async fn with_leader(
    client: &Client,
    mut status: Map<String, Value>,
) -> Result<Map<String, Value>, Failure> {
    let leader = match sys_request(client, Method::GET, "sys/leader", None).await {
        Ok(l) => l,
        Err(e) if e.status == 503 || e.errors.iter().any(|m| m.contains("sealed")) => {
            let mut m = Map::new();
            m.insert("ha_enabled".into(), Value::Bool(true));
            m
        }
        Err(e) => return Err(usage_error(format!("Error checking leader status: {e}"))),
    };
    merge_leader(&mut status, &leader);
    Ok(status)
}

/// Copies the leader fields Vault's CLI shows (omitting empty ones).
pub fn merge_leader(status: &mut Map<String, Value>, leader: &Map<String, Value>) {
    let ha = sys_field(leader, "ha_enabled")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    status.insert("ha_enabled".into(), Value::Bool(ha));
    for key in [
        "is_self",
        "active_time",
        "leader_address",
        "leader_cluster_address",
        "raft_committed_index",
        "raft_applied_index",
    ] {
        let Some(v) = sys_field(leader, key) else {
            continue;
        };
        let empty = match v {
            Value::Null => true,
            Value::Bool(b) => !b,
            Value::String(s) => s.is_empty() || s.starts_with("0001-01-01"),
            Value::Number(n) => n.as_u64() == Some(0),
            _ => false,
        };
        if !empty {
            status.insert(key.into(), v.clone());
        }
    }
}

/// Prints a merged status in the command's format.
pub fn print_status(cmd: &Cmd, status: &Map<String, Value>) {
    match cmd.format {
        Format::Json => outln!("{}", output::json_text(status)),
        Format::Table | Format::Raw => outln!("{}", status_table(status)),
    }
}

/// The `Key / Value` table of `vault status`.
pub fn status_table(st: &Map<String, Value>) -> String {
    let s = |k: &str| st.get(k).map(output::go_fmt).unwrap_or_default();
    let b = |k: &str| st.get(k).and_then(Value::as_bool).unwrap_or(false);
    let present = |k: &str| st.get(k).is_some_and(|v| !v.is_null() && v != "");
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut row = |k: &str, v: String| rows.push((k.to_string(), v));
    let recovery = b("recovery_seal");
    row("Seal Type", s("type"));
    if recovery {
        row("Recovery Seal Type", s("recovery_seal_type"));
    }
    row("Initialized", b("initialized").to_string());
    row("Sealed", b("sealed").to_string());
    let prefix = if recovery { "Recovery " } else { "" };
    row(&format!("Total {prefix}Shares"), s("n"));
    row("Threshold", s("t"));
    if b("sealed") {
        row("Unseal Progress", format!("{}/{}", s("progress"), s("t")));
        row("Unseal Nonce", s("nonce"));
    }
    if b("migration") {
        row("Seal Migration in Progress", "true".into());
    }
    if present("version") {
        row("Version", s("version"));
    }
    if present("build_date") {
        row("Build Date", s("build_date"));
    }
    if present("storage_type") {
        row("Storage Type", s("storage_type"));
    }
    if present("cluster_name") && present("cluster_id") {
        row("Cluster Name", s("cluster_name"));
        row("Cluster ID", s("cluster_id"));
    }
    row("HA Enabled", b("ha_enabled").to_string());
    if b("ha_enabled") && !b("sealed") {
        row("HA Cluster", s("leader_cluster_address"));
        let is_self = b("is_self");
        row("HA Mode", if is_self { "active" } else { "standby" }.into());
        if is_self && present("active_time") {
            row("Active Since", s("active_time"));
        }
        if !is_self && present("leader_address") {
            row("Active Node Address", s("leader_address"));
        }
    }
    if present("raft_committed_index") {
        row("Raft Committed Index", s("raft_committed_index"));
    }
    if present("raft_applied_index") {
        row("Raft Applied Index", s("raft_applied_index"));
    }
    output::kv_table(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(o) => o,
            _ => panic!(),
        }
    }

    #[test]
    fn sealed_table() {
        let st = obj(
            json!({"type": "shamir", "initialized": true, "sealed": true, "t": 3, "n": 5,
                            "progress": 1, "nonce": "abc", "version": "0.1.0", "ha_enabled": true}),
        );
        let t = status_table(&st);
        assert!(
            t.starts_with(
                "Key                Value\n---                -----\nSeal Type          shamir\n"
            ),
            "{t}"
        );
        assert!(t.contains("\nUnseal Progress    1/3\n"));
        assert!(t.contains("\nUnseal Nonce       abc\n"));
        assert!(!t.contains("HA Mode"));
    }

    #[test]
    fn unsealed_active_table() {
        let mut st = obj(
            json!({"type": "shamir", "initialized": true, "sealed": false, "t": 1, "n": 1,
                                "storage_type": "raft", "cluster_name": "c", "cluster_id": "id"}),
        );
        let leader = obj(
            json!({"ha_enabled": true, "is_self": true, "active_time": "2024-01-01T00:00:00Z",
                                "leader_address": "https://a:8200", "leader_cluster_address": "https://a:8201",
                                "raft_committed_index": 42, "raft_applied_index": 0}),
        );
        merge_leader(&mut st, &leader);
        assert_eq!(st.get("raft_applied_index"), None);
        let t = status_table(&st);
        assert!(t.contains("\nHA Mode                 active\n"), "{t}");
        assert!(t.contains("\nActive Since            2024-01-01T00:00:00Z\n"));
        assert!(t.contains("\nHA Cluster              https://a:8201\n"));
        assert!(t.ends_with("Raft Committed Index    42"));
        assert!(!t.contains("Unseal Progress"));
    }

    #[test]
    fn standby_table() {
        let mut st = obj(json!({"sealed": false}));
        merge_leader(
            &mut st,
            &obj(json!({"ha_enabled": true, "is_self": false,
            "active_time": "0001-01-01T00:00:00Z", "leader_address": "https://b:8200"})),
        );
        assert_eq!(st.get("active_time"), None);
        let t = status_table(&st);
        assert!(t.contains("HA Mode                standby"), "{t}");
        assert!(t.contains("Active Node Address    https://b:8200"));
    }
}
