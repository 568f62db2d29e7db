//! `arca operator …`: init, unseal, seal, key-status and rotate.
//!
//! Requests (as the Vault CLI sends them): `init` → `GET sys/seal-status`
//! then `PUT sys/init`; `init -status` → `GET sys/init`; `unseal` →
//! `PUT sys/unseal` then `GET sys/leader`; `seal` → `PUT sys/seal`;
//! `key-status` → `GET sys/key-status`; `rotate` → `POST sys/rotate/keyring`
//! then `GET sys/key-status`.
//!
//! Invariant: unseal keys are never put on the command line by the CLI
//! itself; when none is given it prompts with echo off.

use arca_client::Method;
use serde_json::{json, Map, Value};

use super::output::{self, Format};
use super::status::{print_status, with_leader};
use super::{
    missing_subcommand, parse, prompt_hidden, remote_error, sys_field, sys_request, usage_error,
    CmdResult, Spec,
};
use crate::flags::Flag;

pub(super) const SUBCOMMANDS: &[(&str, &str)] = &[
    (
        "init",
        "Initialize a server: create the root key shares and a root token",
    ),
    ("unseal", "Provide one unseal key share"),
    ("seal", "Seal the server"),
    ("key-status", "Show the barrier keyring's current term"),
    ("rotate", "Add a new encryption key to the barrier keyring"),
    ("rotate-keys", "Generate new unseal key shares"),
    (
        "generate-root",
        "Generate a new root token from unseal key shares",
    ),
    (
        "raft",
        "Raft cluster commands: join, list-peers, remove-peer",
    ),
    (
        "step-down",
        "Make the active node hand leadership to another voter",
    ),
];

/// Dispatches `arca operator <subcommand>`.
pub async fn run(argv: &[String]) -> CmdResult {
    let rest = argv.get(1..).unwrap_or(&[]);
    match argv.first().map(String::as_str) {
        Some("init") => init(rest).await,
        Some("unseal") => unseal(rest).await,
        Some("seal") => seal(rest).await,
        Some("key-status") => key_status(rest).await,
        Some("rotate") => rotate(rest).await,
        Some("rotate-keys") => super::ceremony::rotate_keys(rest).await,
        Some("generate-root") => super::ceremony::generate_root(rest).await,
        Some("raft") => super::raft::run(rest).await,
        Some("step-down") => super::raft::step_down(rest).await,
        other => Err(missing_subcommand(
            "operator",
            "Operator commands: initialize, unseal, seal and rotate the server.",
            SUBCOMMANDS,
            other,
        )),
    }
}

const INIT: Spec = Spec {
    name: "operator init",
    usage: "[options]",
    help: "Initializes the server: splits a new root key into key shares and creates\n\
           the initial root token. Run once per cluster.",
    flags: &[
        Flag::int("key-shares", "Number of key shares to create.").default("5"),
        Flag::int("key-threshold", "Number of shares needed to unseal.").default("3"),
        Flag::list(
            "pgp-keys",
            "Files with PGP public keys to encrypt the shares with, one per share (comma separated).",
        ),
        Flag::string(
            "root-token-pgp-key",
            "A file with the PGP public key to encrypt the root token with.",
        ),
        Flag::bool(
            "status",
            "Only report whether the server is initialized (exit 0: yes, 2: no).",
        ),
        Flag::int(
            "recovery-shares",
            "Auto seals: number of key shares to split the recovery key into.",
        )
        .default("5"),
        Flag::int(
            "recovery-threshold",
            "Auto seals: number of recovery key shares a quorum needs.",
        )
        .default("3"),
        Flag::list(
            "recovery-pgp-keys",
            "Like -pgp-keys, for the recovery key shares.",
        ),
    ],
    http: true,
    field: false,
};

async fn init(argv: &[String]) -> CmdResult {
    let cmd = parse(&INIT, argv)?;
    cmd.expect_args(0, 0)?;
    let client = cmd.client()?;
    if cmd.flags.bool("status") {
        let st = sys_request(&client, Method::GET, "sys/init", None)
            .await
            .map_err(|e| remote_error(format!("Error checking init status: {e}")))?;
        let init = sys_field(&st, "initialized")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        return if init {
            outln!("Vault is initialized");
            Ok(0)
        } else {
            outln!("Vault is not initialized");
            Ok(2)
        };
    }
    let st = sys_request(&client, Method::GET, "sys/seal-status", None)
        .await
        .map_err(|e| remote_error(format!("Error checking seal status: {e}")))?;
    if sys_field(&st, "initialized").and_then(Value::as_bool) == Some(true) {
        return Err(remote_error(
            "Error initializing: Vault is already initialized",
        ));
    }
    // As the bao CLI: under an auto seal the barrier takes no shares unless
    // asked (the server refuses them), the recovery key takes 5/3 by
    // default; under Shamir it is the other way round.
    let auto = sys_field(&st, "recovery_seal").and_then(Value::as_bool) == Some(true);
    let given = |name: &str, default: i64| -> i64 {
        match cmd.flags.is_set(name) {
            true => cmd.flags.int(name).unwrap_or(default),
            false => default,
        }
    };
    let (shares, threshold, r_shares, r_threshold) = if auto {
        (
            given("key-shares", 0),
            given("key-threshold", 0),
            given("recovery-shares", 5),
            given("recovery-threshold", 3),
        )
    } else {
        (given("key-shares", 5), given("key-threshold", 3), 0, 0)
    };
    let mut body = json!({
        "secret_shares": shares,
        "secret_threshold": threshold,
        "recovery_shares": r_shares,
        "recovery_threshold": r_threshold,
    });
    let recovery_pgp = super::ceremony::pgp_keys_flag(&cmd, "recovery-pgp-keys")?;
    if !recovery_pgp.is_empty() {
        body["recovery_pgp_keys"] = json!(recovery_pgp);
    }
    let pgp = super::ceremony::pgp_keys_flag(&cmd, "pgp-keys")?;
    if !pgp.is_empty() {
        body["pgp_keys"] = json!(pgp);
    }
    if let Some(k) = cmd
        .flags
        .string("root-token-pgp-key")
        .filter(|k| !k.trim().is_empty())
    {
        body["root_token_pgp_key"] = json!(super::ceremony::pgp_key_value(k)?);
    }
    let resp = sys_request(&client, Method::PUT, "sys/init", Some(&body))
        .await
        .map_err(|e| remote_error(format!("Error initializing: {e}")))?;
    let out = init_output(&resp, [shares, threshold, r_shares, r_threshold]);
    match cmd.format {
        Format::Json => outln!("{}", output::json_text(&out)),
        Format::Table | Format::Raw => out!("{}", init_text(&out)),
    }
    Ok(0)
}

/// The JSON the Vault CLI prints for `operator init -format=json`.
/// `counts`: unseal shares and threshold, recovery shares and threshold,
/// as asked.
pub fn init_output(resp: &Map<String, Value>, counts: [i64; 4]) -> Value {
    let [shares, threshold, r_shares, r_threshold] = counts;
    let list = |k: &str| sys_field(resp, k).cloned().unwrap_or_else(|| json!([]));
    json!({
        "unseal_keys_b64": list("keys_base64"),
        "unseal_keys_hex": list("keys"),
        "unseal_shares": shares,
        "unseal_threshold": threshold,
        "recovery_keys_b64": list("recovery_keys_base64"),
        "recovery_keys_hex": list("recovery_keys"),
        "recovery_keys_shares": r_shares,
        "recovery_keys_threshold": r_threshold,
        "root_token": sys_field(resp, "root_token").cloned().unwrap_or(json!("")),
    })
}

/// The text the CLI prints after `operator init`.
pub fn init_text(out: &Value) -> String {
    let mut s = String::new();
    let keys = out["unseal_keys_b64"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (i, k) in keys.iter().enumerate() {
        s.push_str(&format!("Unseal Key {}: {}\n", i + 1, output::go_fmt(k)));
    }
    let recovery = out["recovery_keys_b64"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (i, k) in recovery.iter().enumerate() {
        s.push_str(&format!("Recovery Key {}: {}\n", i + 1, output::go_fmt(k)));
    }
    if keys.is_empty() {
        s.push_str(&format!(
            "\nInitial Root Token: {}\n\nSuccess! Arca is initialized\n",
            output::go_fmt(&out["root_token"])
        ));
        if !recovery.is_empty() {
            s.push_str(&format!(
                "\nRecovery key initialized with {} key shares and a key threshold of {}.\n\
                 Please securely distribute the key shares printed above.\n",
                out["recovery_keys_shares"], out["recovery_keys_threshold"]
            ));
        }
        return s;
    }
    let t = &out["unseal_threshold"];
    s.push_str(&format!(
        "\nInitial Root Token: {}\n\n\
         Arca initialized with {} key shares and a key threshold of {t}. Please securely\n\
         distribute the key shares printed above. When Arca is re-sealed,\n\
         restarted, or stopped, you must supply at least {t} of these keys to unseal it\n\
         before it can start servicing requests.\n\n\
         Arca does not store the generated root key. Without at least {t} keys to\n\
         reconstruct the root key, Arca will remain permanently sealed!\n",
        output::go_fmt(&out["root_token"]),
        out["unseal_shares"],
    ));
    s
}

const UNSEAL: Spec = Spec {
    name: "operator unseal",
    usage: "[options] [KEY]",
    help: "Provides one unseal key share. Without KEY, prompts for it with echo off\n\
           (or reads a line from stdin when it is not a terminal).",
    flags: &[
        Flag::bool("reset", "Discard the unseal progress so far."),
        Flag::bool(
            "migrate",
            "Seal migration: the shares unseal and move the root key to the configured seal.",
        ),
    ],
    http: true,
    field: false,
};

async fn unseal(argv: &[String]) -> CmdResult {
    let cmd = parse(&UNSEAL, argv)?;
    cmd.expect_args(0, 1)?;
    let client = cmd.client()?;
    let body = if cmd.flags.bool("reset") {
        json!({"reset": true})
    } else {
        let key = match cmd.args().first() {
            Some(k) => k.trim().to_string(),
            None if cmd.interactive() => prompt_hidden("Unseal Key (will be hidden): ")?,
            None => {
                return Err(usage_error(
                    "Missing unseal key and -non-interactive is set",
                ))
            }
        };
        if key.is_empty() {
            return Err(usage_error("Missing unseal key"));
        }
        if cmd.flags.bool("migrate") {
            json!({"key": key, "migrate": true})
        } else {
            json!({"key": key})
        }
    };
    let st = sys_request(&client, Method::PUT, "sys/unseal", Some(&body))
        .await
        .map_err(|e| remote_error(format!("Error unsealing: {e}")))?;
    let merged = with_leader(&client, st).await?;
    print_status(&cmd, &merged);
    Ok(0)
}

const SEAL: Spec = Spec {
    name: "operator seal",
    usage: "[options]",
    help: "Seals the server: it forgets its keys and serves nothing but status until unsealed.",
    flags: &[],
    http: true,
    field: false,
};

async fn seal(argv: &[String]) -> CmdResult {
    let cmd = parse(&SEAL, argv)?;
    cmd.expect_args(0, 0)?;
    let client = cmd.client()?;
    sys_request(&client, Method::PUT, "sys/seal", None)
        .await
        .map_err(|e| remote_error(format!("Error sealing: {e}")))?;
    cmd.success("Success! Vault is sealed.")
}

const KEY_STATUS: Spec = Spec {
    name: "operator key-status",
    usage: "[options]",
    help: "Shows the term and install time of the barrier's current encryption key.",
    flags: &[],
    http: true,
    field: false,
};

/// Key/Value rows of `sys/key-status`.
pub fn key_status_rows(st: &Map<String, Value>) -> Vec<(String, String)> {
    let mut rows = vec![
        (
            "Key Term".to_string(),
            sys_field(st, "term")
                .map(output::go_fmt)
                .unwrap_or_default(),
        ),
        (
            "Install Time".to_string(),
            sys_field(st, "install_time")
                .map(output::go_fmt)
                .unwrap_or_default(),
        ),
    ];
    if let Some(n) = sys_field(st, "encryptions") {
        rows.push(("Encryption Count".to_string(), output::go_fmt(n)));
    }
    rows
}

async fn key_status(argv: &[String]) -> CmdResult {
    let cmd = parse(&KEY_STATUS, argv)?;
    cmd.expect_args(0, 0)?;
    let client = cmd.client()?;
    let st = sys_request(&client, Method::GET, "sys/key-status", None)
        .await
        .map_err(|e| remote_error(format!("Error reading key status: {e}")))?;
    match cmd.format {
        Format::Json => outln!("{}", output::json_text(&st)),
        Format::Table | Format::Raw => outln!("{}", output::kv_table(key_status_rows(&st))),
    }
    Ok(0)
}

const ROTATE: Spec = Spec {
    name: "operator rotate",
    usage: "[options]",
    help: "Adds a new encryption key to the barrier keyring; new writes use it, old\n\
           data stays readable.",
    flags: &[],
    http: true,
    field: false,
};

async fn rotate(argv: &[String]) -> CmdResult {
    let cmd = parse(&ROTATE, argv)?;
    cmd.expect_args(0, 0)?;
    let client = cmd.client()?;
    sys_request(
        &client,
        Method::POST,
        "sys/rotate/keyring",
        Some(&json!({})),
    )
    .await
    .map_err(|e| remote_error(format!("Error rotating key: {e}")))?;
    let st = sys_request(&client, Method::GET, "sys/key-status", None)
        .await
        .map_err(|e| remote_error(format!("Error reading key status: {e}")))?;
    match cmd.format {
        Format::Json => outln!("{}", output::json_text(&st)),
        Format::Table | Format::Raw => outln!(
            "Success! Rotated key\n\n{}",
            output::kv_table(key_status_rows(&st))
        ),
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_json_and_text() {
        let resp = json!({"keys": ["aa", "bb"], "keys_base64": ["qg==", "uw=="], "root_token": "hvs.root"});
        let out = init_output(resp.as_object().unwrap(), [2, 1, 0, 0]);
        assert_eq!(out["unseal_keys_hex"], json!(["aa", "bb"]));
        assert_eq!(out["unseal_keys_b64"], json!(["qg==", "uw=="]));
        assert_eq!(out["root_token"], "hvs.root");
        assert_eq!(out["unseal_threshold"], 1);
        let t = init_text(&out);
        assert!(
            t.starts_with(
                "Unseal Key 1: qg==\nUnseal Key 2: uw==\n\nInitial Root Token: hvs.root\n"
            ),
            "{t}"
        );
        assert!(t.contains("with 2 key shares and a key threshold of 1."));
    }

    #[test]
    fn key_status_table() {
        let st = json!({"term": 2, "install_time": "2024-01-01T00:00:00Z"});
        let rows = key_status_rows(st.as_object().unwrap());
        assert_eq!(rows[0], ("Key Term".into(), "2".into()));
        assert_eq!(rows.len(), 2);
        let st = json!({"data": {"term": 3, "install_time": "t", "encryptions": 7}});
        let rows = key_status_rows(st.as_object().unwrap());
        assert_eq!(rows[0].1, "3");
        assert_eq!(rows[2], ("Encryption Count".into(), "7".into()));
    }
}
