//! `arca policy …`: write, read, list and delete ACL policies
//! (`sys/policies/acl/<name>`). Names are lower-cased like the Vault CLI does.

use serde_json::{json, Map, Value};

use super::output::Format;
use super::{missing_subcommand, parse, read_stdin, remote_error, usage_error, CmdResult, Spec};

pub(super) const SUBCOMMANDS: &[(&str, &str)] = &[
    ("write", "Upload a policy from a file or stdin"),
    ("read", "Print a policy"),
    ("list", "List policy names"),
    ("delete", "Delete a policy"),
];

/// Dispatches `arca policy <subcommand>`.
pub async fn run(argv: &[String]) -> CmdResult {
    let rest = argv.get(1..).unwrap_or(&[]);
    match argv.first().map(String::as_str) {
        Some("write") => write(rest).await,
        Some("read") => read(rest).await,
        Some("list") => list(rest).await,
        Some("delete") => delete(rest).await,
        other => Err(missing_subcommand(
            "policy",
            "Manage ACL policies.",
            SUBCOMMANDS,
            other,
        )),
    }
}

fn policy_name(raw: &str) -> String {
    raw.trim().to_lowercase()
}

const WRITE: Spec = Spec {
    name: "policy write",
    usage: "[options] NAME PATH",
    help: "Uploads the policy in PATH (HCL or JSON) as NAME; PATH \"-\" reads stdin.",
    flags: &[],
    http: true,
    field: false,
};

async fn write(argv: &[String]) -> CmdResult {
    let cmd = parse(&WRITE, argv)?;
    cmd.expect_args(2, 2)?;
    let name = policy_name(&cmd.args()[0]);
    let source = &cmd.args()[1];
    let rules = if source == "-" {
        read_stdin()?
    } else {
        std::fs::read_to_string(source)
            .map_err(|e| usage_error(format!("Error opening policy file: {e}")))?
    };
    let client = cmd.client()?;
    client
        .write(
            &format!("sys/policies/acl/{name}"),
            &json!({"policy": rules}),
        )
        .await
        .map_err(|e| remote_error(format!("Error uploading policy: {e}")))?;
    cmd.success(format!("Success! Uploaded policy: {name}"))
}

const READ: Spec = Spec {
    name: "policy read",
    usage: "[options] NAME",
    help: "Prints the policy NAME.",
    flags: &[],
    http: true,
    field: false,
};

async fn read(argv: &[String]) -> CmdResult {
    let cmd = parse(&READ, argv)?;
    cmd.expect_args(1, 1)?;
    let name = policy_name(&cmd.args()[0]);
    let client = cmd.client()?;
    let secret = client
        .read(&format!("sys/policies/acl/{name}"))
        .await
        .map_err(|e| remote_error(format!("Error reading policy named {name}: {e}")))?;
    let rules = secret
        .as_ref()
        .and_then(|s| s.get_str("policy").or_else(|| s.get_str("rules")))
        .map(String::from)
        .ok_or_else(|| remote_error(format!("No policy named: {name}")))?;
    match cmd.format {
        Format::Json => {
            let mut m = Map::new();
            m.insert("policy".into(), Value::String(rules));
            outln!("{}", super::output::json_text(&m));
        }
        Format::Table | Format::Raw => outln!("{}", rules.trim()),
    }
    Ok(0)
}

const LIST: Spec = Spec {
    name: "policy list",
    usage: "[options]",
    help: "Lists the names of the ACL policies.",
    flags: &[],
    http: true,
    field: false,
};

async fn list(argv: &[String]) -> CmdResult {
    let cmd = parse(&LIST, argv)?;
    cmd.expect_args(0, 0)?;
    let client = cmd.client()?;
    let secret = client
        .list("sys/policies/acl")
        .await
        .map_err(|e| remote_error(format!("Error listing policies: {e}")))?;
    let keys = secret.map(|s| s.list_keys()).unwrap_or_default();
    match cmd.format {
        Format::Json => outln!("{}", super::output::json_text(&keys)),
        Format::Table | Format::Raw => {
            for k in keys {
                outln!("{k}");
            }
        }
    }
    Ok(0)
}

const DELETE: Spec = Spec {
    name: "policy delete",
    usage: "[options] NAME",
    help: "Deletes the policy NAME. Tokens that carry it keep the name but lose its rules.",
    flags: &[],
    http: true,
    field: false,
};

async fn delete(argv: &[String]) -> CmdResult {
    let cmd = parse(&DELETE, argv)?;
    cmd.expect_args(1, 1)?;
    let name = policy_name(&cmd.args()[0]);
    let client = cmd.client()?;
    client
        .delete(&format!("sys/policies/acl/{name}"))
        .await
        .map_err(|e| remote_error(format!("Error deleting {name}: {e}")))?;
    cmd.success(format!("Success! Deleted policy: {name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lowercased() {
        assert_eq!(policy_name(" Admin "), "admin");
    }
}
