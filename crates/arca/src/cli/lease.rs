//! `arca lease …`: look up, renew and revoke leases.
//!
//! Requests (as the Vault CLI sends them): `lookup` → `PUT
//! sys/leases/lookup` `{lease_id}`; `renew` → `PUT sys/leases/renew`
//! `{lease_id, increment}`; `revoke` → `PUT sys/leases/revoke/<id>`,
//! `sys/leases/revoke-prefix/<prefix>` (`-prefix`), both with `{sync}`, or
//! `sys/leases/revoke-force/<prefix>` (`-force -prefix`, no body).

use arca_client::{ClientError, Method};
use serde_json::{json, Value};

use super::{missing_subcommand, parse, remote_error, usage_error, Cmd, CmdResult, Failure, Spec};
use crate::duration;
use crate::flags::Flag;

pub(super) const SUBCOMMANDS: &[(&str, &str)] = &[
    ("lookup", "Lookup a lease"),
    ("renew", "Renews the lease of a secret"),
    ("revoke", "Revokes leases and secrets"),
];

/// Dispatches `arca lease <subcommand>`.
pub async fn run(argv: &[String]) -> CmdResult {
    let rest = argv.get(1..).unwrap_or(&[]);
    match argv.first().map(String::as_str) {
        Some("lookup") => lookup(rest).await,
        Some("renew") => renew(rest).await,
        Some("revoke") => revoke(rest).await,
        other => Err(missing_subcommand(
            "lease",
            "Interact with leases.",
            SUBCOMMANDS,
            other,
        )),
    }
}

/// The one lease id of `lookup`/`renew`: "Missing ID!" when absent.
fn lease_id_arg(cmd: &Cmd, max: usize) -> Result<String, Failure> {
    match cmd.args().len() {
        0 => Err(usage_error("Missing ID!")),
        n if n > max => Err(usage_error(format!(
            "Too many arguments (expected {}, got {n})",
            if max == 1 { "1" } else { "1-2" }
        ))),
        _ => Ok(cmd.args()[0].trim().to_string()),
    }
}

const LOOKUP: Spec = Spec {
    name: "lease lookup",
    usage: "[options] ID",
    help: "Shows a lease: issue and expire times, TTL, whether it is renewable.",
    flags: &[],
    http: true,
    field: false,
};

async fn lookup(argv: &[String]) -> CmdResult {
    let cmd = parse(&LOOKUP, argv)?;
    let id = lease_id_arg(&cmd, 1)?;
    let client = cmd.client()?;
    let secret = client
        .write("sys/leases/lookup", &json!({ "lease_id": id }))
        .await
        .map_err(|e| remote_error(format!("error looking up lease id {id}: {e}")))?
        .ok_or_else(|| remote_error(format!("error looking up lease id {id}: empty response")))?;
    cmd.print_secret(&secret)
}

const RENEW: Spec = Spec {
    name: "lease renew",
    usage: "[options] ID",
    help: "Renews the lease ID, optionally asking for -increment more time\n\
           (the engine may grant less).",
    flags: &[Flag::string(
        "increment",
        "Requested extension of the lease (e.g. 1h); the engine's default when unset.",
    )],
    http: true,
    field: false,
};

async fn renew(argv: &[String]) -> CmdResult {
    let cmd = parse(&RENEW, argv)?;
    let id = lease_id_arg(&cmd, 2)?;
    // The increment: -increment, or (deprecated) a second argument.
    let inc = match (cmd.args().get(1), cmd.flags.string("increment")) {
        (Some(v), _) => Some((v.as_str(), "increment")),
        (None, Some(v)) => Some((v, "-increment")),
        (None, None) => None,
    };
    let increment = match inc {
        Some((v, what)) => {
            duration::parse_seconds(v).map_err(|e| usage_error(format!("Invalid {what}: {e}")))?
        }
        None => 0,
    };
    let client = cmd.client()?;
    let secret = client
        .write(
            "sys/leases/renew",
            &json!({ "lease_id": id, "increment": increment }),
        )
        .await
        .map_err(|e| remote_error(format!("Error renewing {id}: {e}")))?
        .ok_or_else(|| remote_error(format!("Error renewing {id}: empty response")))?;
    cmd.print_secret(&secret)
}

const REVOKE: Spec = Spec {
    name: "lease revoke",
    usage: "[options] ID",
    help: "Revokes the lease ID (and its secret), or with -prefix every lease under\n\
           ID. -force (with -prefix) drops the leases even when the engine fails to\n\
           revoke their secrets.",
    flags: &[
        Flag::bool(
            "force",
            "Delete the leases even if the engine's revocation fails (needs -prefix).",
        ),
        Flag::bool(
            "prefix",
            "Treat ID as a prefix: revoke every lease under it.",
        ),
        Flag::bool(
            "sync",
            "Wait for the revocation to finish instead of queueing it.",
        ),
    ],
    http: true,
    field: false,
};

/// `(path, body)` of a `lease revoke` invocation.
pub fn revoke_request(cmd: &Cmd) -> Result<(String, Option<Value>), Failure> {
    let (force, prefix, sync) = (
        cmd.flags.bool("force"),
        cmd.flags.bool("prefix"),
        cmd.flags.bool("sync"),
    );
    if force && !prefix {
        return Err(usage_error(
            "Specifying -force requires also specifying -prefix",
        ));
    }
    cmd.expect_args(1, 1)?;
    let id = cmd.args()[0].trim();
    Ok(match (force, prefix) {
        (true, _) => (format!("sys/leases/revoke-force/{id}"), None),
        (false, true) => (
            format!("sys/leases/revoke-prefix/{id}"),
            Some(json!({ "sync": sync })),
        ),
        (false, false) => (
            format!("sys/leases/revoke/{id}"),
            Some(json!({ "sync": sync })),
        ),
    })
}

async fn revoke(argv: &[String]) -> CmdResult {
    let cmd = parse(&REVOKE, argv)?;
    let (path, body) = revoke_request(&cmd)?;
    let id = cmd.args()[0].trim().to_string();
    let (force, prefix, sync) = (
        cmd.flags.bool("force"),
        cmd.flags.bool("prefix"),
        cmd.flags.bool("sync"),
    );
    if force {
        eprintln!(
            "Warning! Force-removing leases can cause Arca to become out of sync with\n\
             secret engines!"
        );
    }
    let client = cmd.client()?;
    let resp = client.raw(Method::PUT, &path, body.as_ref()).await?;
    if !resp.is_success() {
        let e = ClientError::from_response("PUT", &client.url(&path), resp.status, &resp.body);
        return Err(remote_error(match (force, prefix) {
            (true, _) => format!("Error force revoking leases with prefix {id}: {e}"),
            (false, true) => format!("Error revoking leases with prefix {id}: {e}"),
            (false, false) => format!("Error revoking lease {id}: {e}"),
        }));
    }
    // The Vault CLI prints these in every format.
    outln!(
        "{}",
        match (force, prefix, sync) {
            (true, _, _) => format!("Success! Force revoked any leases with prefix: {id}"),
            (false, true, true) => format!("Success! Revoked any leases with prefix: {id}"),
            (false, false, true) => format!("Success! Revoked lease: {id}"),
            (false, _, false) => "All revocation operations queued successfully!".to_string(),
        }
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(spec: &Spec, a: &[&str]) -> Cmd {
        parse(spec, &a.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn revoke_routes() {
        let r = |a: &[&str]| revoke_request(&cmd(&REVOKE, a));
        assert_eq!(
            r(&["pki/issue/web/x"]).unwrap(),
            (
                "sys/leases/revoke/pki/issue/web/x".to_string(),
                Some(json!({"sync": false}))
            )
        );
        assert_eq!(
            r(&["-prefix", "-sync", "pki/"]).unwrap(),
            (
                "sys/leases/revoke-prefix/pki/".to_string(),
                Some(json!({"sync": true}))
            )
        );
        assert_eq!(
            r(&["-force", "-prefix", "pki/"]).unwrap(),
            ("sys/leases/revoke-force/pki/".to_string(), None)
        );
        assert_eq!(r(&["-force", "x"]).unwrap_err().code, 1);
        assert_eq!(r(&[]).unwrap_err().code, 1);
    }

    #[test]
    fn lease_id_arguments() {
        assert_eq!(
            lease_id_arg(&cmd(&LOOKUP, &[]), 1).unwrap_err().message,
            "Missing ID!"
        );
        assert_eq!(
            lease_id_arg(&cmd(&LOOKUP, &["a", "b"]), 1)
                .unwrap_err()
                .message,
            "Too many arguments (expected 1, got 2)"
        );
        assert_eq!(lease_id_arg(&cmd(&RENEW, &[" a "]), 2).unwrap(), "a");
    }
}
