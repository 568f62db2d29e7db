//! `arca operator raft …` and `arca operator step-down`.
//!
//! Requests (as the Vault CLI sends them): `raft join` → `POST
//! sys/storage/raft/join` on the joining node; `raft list-peers` → `GET
//! sys/storage/raft/configuration`; `raft remove-peer` → `PUT
//! sys/storage/raft/remove-peer`; `step-down` → `PUT sys/step-down`.

use arca_client::Method;
use serde_json::{json, Map, Value};

use super::output::{self, Format};
use super::{
    missing_subcommand, parse, remote_error, sys_field, sys_request, usage_error, CmdResult, Spec,
};
use crate::flags::Flag;

pub(super) const SUBCOMMANDS: &[(&str, &str)] = &[
    ("join", "Join this node to a raft cluster"),
    ("list-peers", "List the members of the raft cluster"),
    ("remove-peer", "Remove a member from the raft cluster"),
    (
        "snapshot",
        "Save or restore a snapshot of the cluster's data",
    ),
];

/// Dispatches `arca operator raft <subcommand>`.
pub async fn run(argv: &[String]) -> CmdResult {
    let rest = argv.get(1..).unwrap_or(&[]);
    match argv.first().map(String::as_str) {
        Some("join") => join(rest).await,
        Some("list-peers") => list_peers(rest).await,
        Some("remove-peer") => remove_peer(rest).await,
        Some("snapshot") => snapshot(rest).await,
        other => Err(missing_subcommand(
            "operator raft",
            "Raft cluster commands: join, list-peers, remove-peer, snapshot.",
            SUBCOMMANDS,
            other,
        )),
    }
}

fn file_or_text(v: Option<&str>) -> Result<String, super::Failure> {
    match v {
        None | Some("") => Ok(String::new()),
        Some(s) => match s.strip_prefix('@') {
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| usage_error(format!("Error reading {path}: {e}"))),
            None => Ok(s.to_string()),
        },
    }
}

const JOIN: Spec = Spec {
    name: "operator raft join",
    usage: "[options] <leader-api-addr>",
    help: "Joins the node at ARCA_ADDR (VAULT_ADDR) to the raft cluster whose leader\n\
           answers at <leader-api-addr>. Then unseal the node with the cluster's key\n\
           shares to finish the join.",
    flags: &[
        Flag::string(
            "leader-ca-cert",
            "CA certificate of the leader's API (PEM text or @file).",
        ),
        Flag::string(
            "leader-client-cert",
            "Client certificate for the leader (PEM or @file).",
        ),
        Flag::string(
            "leader-client-key",
            "Client key for the leader (PEM or @file).",
        ),
        Flag::bool(
            "retry",
            "Keep retrying in the background until the join succeeds.",
        ),
        Flag::bool("non-voter", "Join as a non-voting member."),
    ],
    http: true,
    field: false,
};

async fn join(argv: &[String]) -> CmdResult {
    let cmd = parse(&JOIN, argv)?;
    cmd.expect_args(1, 1)?;
    let client = cmd.client()?;
    let body = json!({
        "leader_api_addr": cmd.args()[0],
        "leader_ca_cert": file_or_text(cmd.flags.string("leader-ca-cert"))?,
        "leader_client_cert": file_or_text(cmd.flags.string("leader-client-cert"))?,
        "leader_client_key": file_or_text(cmd.flags.string("leader-client-key"))?,
        "retry": cmd.flags.bool("retry"),
        "non_voter": cmd.flags.bool("non-voter"),
    });
    let resp = sys_request(&client, Method::POST, "sys/storage/raft/join", Some(&body))
        .await
        .map_err(|e| remote_error(format!("Error joining the node to the Raft cluster: {e}")))?;
    let joined = sys_field(&resp, "joined")
        .cloned()
        .unwrap_or(Value::Bool(false));
    match cmd.format {
        Format::Json => outln!("{}", output::json_text(&json!({ "joined": joined }))),
        _ => outln!(
            "{}",
            output::kv_table(vec![("Joined".into(), output::go_fmt(&joined))])
        ),
    }
    Ok(0)
}

/// The `Node | Address | State | Voter` rows of a raft configuration.
pub fn peer_rows(resp: &Map<String, Value>) -> Option<Vec<Vec<String>>> {
    let servers = sys_field(resp, "config")?.get("servers")?.as_array()?;
    let mut rows = vec![vec![
        "Node".to_string(),
        "Address".to_string(),
        "State".to_string(),
        "Voter".to_string(),
    ]];
    for s in servers {
        let leader = s.get("leader").and_then(Value::as_bool).unwrap_or(false);
        rows.push(vec![
            s.get("node_id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            s.get("address")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            if leader { "leader" } else { "follower" }.to_string(),
            s.get("voter")
                .and_then(Value::as_bool)
                .unwrap_or(false)
                .to_string(),
        ]);
    }
    Some(rows)
}

const LIST_PEERS: Spec = Spec {
    name: "operator raft list-peers",
    usage: "[options]",
    help: "Lists the members of the raft cluster, their addresses and roles.",
    flags: &[],
    http: true,
    field: false,
};

async fn list_peers(argv: &[String]) -> CmdResult {
    let cmd = parse(&LIST_PEERS, argv)?;
    cmd.expect_args(0, 0)?;
    let client = cmd.client()?;
    let resp = sys_request(&client, Method::GET, "sys/storage/raft/configuration", None)
        .await
        .map_err(|e| remote_error(format!("Error reading the raft cluster configuration: {e}")))?;
    if cmd.format == Format::Json {
        outln!("{}", output::json_text(&resp));
        return Ok(0);
    }
    match peer_rows(&resp) {
        Some(rows) => {
            outln!("{}", output::columns(&rows, true));
            Ok(0)
        }
        None => Err(remote_error("No raft cluster configuration found")),
    }
}

const REMOVE_PEER: Spec = Spec {
    name: "operator raft remove-peer",
    usage: "[options] <server-id>",
    help: "Removes the node with the given node_id from the raft cluster.",
    flags: &[],
    http: true,
    field: false,
};

async fn remove_peer(argv: &[String]) -> CmdResult {
    let cmd = parse(&REMOVE_PEER, argv)?;
    cmd.expect_args(1, 1)?;
    let client = cmd.client()?;
    sys_request(
        &client,
        Method::PUT,
        "sys/storage/raft/remove-peer",
        Some(&json!({ "server_id": cmd.args()[0] })),
    )
    .await
    .map_err(|e| remote_error(format!("Error removing the peer from raft cluster: {e}")))?;
    outln!("Peer removed successfully!");
    Ok(0)
}

const SNAPSHOT_SUBCOMMANDS: &[(&str, &str)] = &[
    ("save", "Save a snapshot of the cluster's data to a file"),
    ("restore", "Restore the cluster's data from a snapshot file"),
];

async fn snapshot(argv: &[String]) -> CmdResult {
    let rest = argv.get(1..).unwrap_or(&[]);
    match argv.first().map(String::as_str) {
        Some("save") => snapshot_save(rest).await,
        Some("restore") => snapshot_restore(rest).await,
        other => Err(missing_subcommand(
            "operator raft snapshot",
            "Save or restore snapshots of the raft cluster's data.",
            SNAPSHOT_SUBCOMMANDS,
            other,
        )),
    }
}

const SNAPSHOT_SAVE: Spec = Spec {
    name: "operator raft snapshot save",
    usage: "[options] <file>",
    help: "Saves a snapshot of the cluster's data (encrypted, as stored) to <file>.",
    flags: &[],
    http: true,
    field: false,
};

async fn snapshot_save(argv: &[String]) -> CmdResult {
    let cmd = parse(&SNAPSHOT_SAVE, argv)?;
    cmd.expect_args(1, 1)?;
    let client = cmd.client()?;
    let resp = client
        .raw_bytes(Method::GET, "sys/storage/raft/snapshot", None)
        .await
        .map_err(|e| remote_error(format!("Error taking the snapshot: {e}")))?;
    if !resp.is_success() {
        return Err(remote_error(format!(
            "Error taking the snapshot: Code: {}. {}",
            resp.status,
            resp.text()
        )));
    }
    let path = &cmd.args()[0];
    write_private(path, &resp.body)
        .map_err(|e| usage_error(format!("Error writing the snapshot to {path}: {e}")))?;
    Ok(0)
}

/// Writes `bytes` to a new file readable by the owner only.
fn write_private(path: &str, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

const SNAPSHOT_RESTORE: Spec = Spec {
    name: "operator raft snapshot restore",
    usage: "[options] <file>",
    help: "Replaces the cluster's data with a snapshot taken by `snapshot save`.\n\
           A snapshot made under other unseal keys is refused unless -force is set.",
    flags: &[Flag::bool(
        "force",
        "Restore even if the snapshot was made under other unseal keys.",
    )],
    http: true,
    field: false,
};

async fn snapshot_restore(argv: &[String]) -> CmdResult {
    let cmd = parse(&SNAPSHOT_RESTORE, argv)?;
    cmd.expect_args(1, 1)?;
    let client = cmd.client()?;
    let path = &cmd.args()[0];
    let bytes = std::fs::read(path)
        .map_err(|e| usage_error(format!("Error reading the snapshot {path}: {e}")))?;
    let api = if cmd.flags.bool("force") {
        "sys/storage/raft/snapshot-force"
    } else {
        "sys/storage/raft/snapshot"
    };
    let resp = client
        .raw_bytes(Method::POST, api, Some((bytes, "application/octet-stream")))
        .await
        .map_err(|e| remote_error(format!("Error installing the snapshot: {e}")))?;
    if !resp.is_success() {
        return Err(remote_error(format!(
            "Error installing the snapshot: Code: {}. {}",
            resp.status,
            resp.text()
        )));
    }
    Ok(0)
}

pub const STEP_DOWN: Spec = Spec {
    name: "operator step-down",
    usage: "[options]",
    help: "Makes the active node hand leadership to another voter.",
    flags: &[],
    http: true,
    field: false,
};

pub async fn step_down(argv: &[String]) -> CmdResult {
    let cmd = parse(&STEP_DOWN, argv)?;
    cmd.expect_args(0, 0)?;
    let client = cmd.client()?;
    sys_request(&client, Method::PUT, "sys/step-down", Some(&json!({})))
        .await
        .map_err(|e| remote_error(format!("Error stepping down: {e}")))?;
    outln!(
        "Success! Stepped down: {}",
        client.url("").trim_end_matches("/v1/")
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_table_rows() {
        let resp = json!({"data": {"config": {"index": 3, "servers": [
            {"node_id": "n1", "address": "10.0.0.1:8201", "leader": true, "voter": true, "protocol_version": "3"},
            {"node_id": "n2", "address": "10.0.0.2:8201", "leader": false, "voter": false, "protocol_version": "3"}
        ]}}});
        let rows = peer_rows(resp.as_object().unwrap()).unwrap();
        assert_eq!(rows[1], vec!["n1", "10.0.0.1:8201", "leader", "true"]);
        assert_eq!(rows[2], vec!["n2", "10.0.0.2:8201", "follower", "false"]);
        assert!(peer_rows(json!({"data": null}).as_object().unwrap()).is_none());
    }
}
