//! Features the Arca server or this CLI lack, and small commands that need
//! no family of their own:
//! * `namespace …` and a non-root `-namespace`: refused (exit 2, like the
//!   API error a server without namespaces gives the Vault CLI): Arca has no
//!   `sys/namespaces` and a single root namespace;
//! * `unwrap [TOKEN]`: `PUT sys/wrapping/unwrap` as the Vault CLI sends it;
//!   a server without that API (404) is reported as such (exit 2);
//! * `print token`: the token the CLI would send.

use arca_client::{ClientError, Method, Secret};
use serde_json::{json, Value};

use super::{missing_subcommand, parse, remote_error, usage_error, CmdResult, Failure, Spec};

/// The error for anything that needs namespaces.
pub fn no_namespaces(what: &str) -> Failure {
    remote_error(format!(
        "Error: {what}: Arca has no namespaces (there is no sys/namespaces API; \
         everything lives in the root namespace)"
    ))
}

const NAMESPACE_SUBCOMMANDS: &[(&str, &str)] = &[
    ("create", "Create a new namespace"),
    ("delete", "Delete an existing namespace"),
    ("list", "List child namespaces"),
    ("lock", "Lock the API for particular namespaces"),
    ("lookup", "Look up an existing namespace"),
    ("patch", "Patch an existing namespace"),
    ("scan", "Recursively list all child namespaces"),
    ("unlock", "Unlock the API for particular namespaces"),
];

/// `arca namespace …`: refused.
pub async fn namespace(argv: &[String]) -> CmdResult {
    match argv.first().map(String::as_str) {
        Some(sub) if NAMESPACE_SUBCOMMANDS.iter().any(|(n, _)| *n == sub) => {
            let spec = Spec {
                name: "namespace",
                usage: "<subcommand> [options] [args]",
                help: "Arca has no namespaces: every namespace command is refused.",
                flags: &[],
                http: true,
                field: false,
            };
            // Flags are still checked (and -h answered) like any command.
            let _ = parse(&spec, &argv[1..])?;
            Err(no_namespaces(&format!("namespace {sub}")))
        }
        other => Err(missing_subcommand(
            "namespace",
            "Interact with namespaces (Arca has none: every subcommand is refused).",
            NAMESPACE_SUBCOMMANDS,
            other,
        )),
    }
}

const UNWRAP: Spec = Spec {
    name: "unwrap",
    usage: "[options] [TOKEN]",
    help: "Unwraps a wrapped secret: prints the answer stored under the wrapping\n\
           TOKEN (default: the token in use, e.g. VAULT_TOKEN=<wrapping token>).\n\
           A wrapping token can be unwrapped only once.",
    flags: &[],
    http: true,
    field: true,
};

/// `arca unwrap`.
pub async fn unwrap(argv: &[String]) -> CmdResult {
    let cmd = parse(&UNWRAP, argv)?;
    cmd.expect_args(0, 1)?;
    let mut client = cmd.client()?;
    // As the Go client: a token argument is the client token when there is
    // none, else it is sent in the body (unless it is the client token).
    let mut body = None;
    if let Some(t) = cmd.args().first().map(|t| t.trim().to_string()) {
        match client.token() {
            None | Some("") => client.set_token(Some(t)),
            Some(own) if own != t => body = Some(json!({ "token": t })),
            Some(_) => {}
        }
    }
    let path = "sys/wrapping/unwrap";
    let resp = client.raw(Method::PUT, path, body.as_ref()).await?;
    let parsed = || {
        if resp.body.iter().all(u8::is_ascii_whitespace) {
            Ok(None)
        } else {
            Secret::from_json(&resp.body).map(Some)
        }
    };
    let secret = if resp.status == 404 {
        // A wrapped 404 carries data or warnings; a bare one means no API.
        match parsed() {
            Ok(Some(s))
                if !s.warnings().is_empty() || s.data.as_ref().is_some_and(|d| !d.is_empty()) =>
            {
                Some(s)
            }
            _ => {
                return Err(remote_error(
                    "Error unwrapping: this server has no response wrapping \
                     (sys/wrapping/unwrap does not exist)",
                ))
            }
        }
    } else if !resp.is_success() {
        let e = ClientError::from_response("PUT", &client.url(path), resp.status, &resp.body);
        return Err(remote_error(format!("Error unwrapping: {e}")));
    } else {
        parsed().map_err(|e| remote_error(format!("Error unwrapping: {e}")))?
    };
    let Some(secret) = secret else {
        return Err(remote_error("Could not find wrapped response"));
    };
    if let Some(f) = &cmd.field {
        return cmd.print_field(super::output::secret_field(&secret, f), f);
    }
    if matches!(secret.get("keys"), Some(Value::Array(_))) {
        return cmd.print_list(&secret);
    }
    cmd.print_secret(&secret)
}

const PRINT_SUBCOMMANDS: &[(&str, &str)] = &[("token", "Prints the token currently in use")];

/// `arca print token`: the token the CLI would send (environment, else
/// `~/.vault-token`). Like the Vault CLI, it takes no flags.
pub async fn print(argv: &[String]) -> CmdResult {
    match argv.first().map(String::as_str) {
        Some("token") => {
            let cfg = arca_client::ClientConfig::from_env();
            outln!("{}", cfg.token.unwrap_or_default());
            Ok(0)
        }
        other => {
            let f = missing_subcommand(
                "print",
                "Interact with the CLI's runtime values.",
                PRINT_SUBCOMMANDS,
                other,
            );
            if f.code == 0 {
                Err(f)
            } else {
                Err(usage_error(f.message))
            }
        }
    }
}
