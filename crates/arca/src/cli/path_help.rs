//! `arca path-help PATH`: the server's help for an API path.
//!
//! Request: `GET <path>?help=1`, answered `{help, openapi, see_also}`. The
//! table format prints the help text; other formats print the `openapi`
//! document, as the Vault CLI does.

use arca_client::{ClientError, Method};
use serde_json::{Map, Value};

use super::output::{self, Format};
use super::{parse, remote_error, sanitize_path, Cmd, CmdResult, Failure, Spec};

const PATH_HELP: Spec = Spec {
    name: "path-help",
    usage: "[options] PATH",
    help: "Retrieves API help for PATH: what the path does and its parameters. Any\n\
           valid token may read the help of any path.",
    flags: &[],
    http: true,
    field: false,
};

/// The `?help=1` answer for `path`; errors read "Error retrieving help: …".
pub async fn fetch(cmd: &Cmd, path: &str) -> Result<Map<String, Value>, Failure> {
    let client = cmd.client()?;
    let p = format!("{}?help=1", sanitize_path(path));
    let err = |e: ClientError| remote_error(format!("Error retrieving help: {e}"));
    let resp = client.raw(Method::GET, &p, None).await.map_err(err)?;
    if !resp.is_success() {
        return Err(err(ClientError::from_response(
            "GET",
            &client.url(&p),
            resp.status,
            &resp.body,
        )));
    }
    match resp.json::<Value>() {
        Ok(Value::Object(o)) => Ok(o),
        _ => Err(remote_error(
            "Error retrieving help: the answer is not a JSON object",
        )),
    }
}

/// `arca path-help`.
pub async fn run(argv: &[String]) -> CmdResult {
    let cmd = parse(&PATH_HELP, argv)?;
    cmd.expect_args(1, 1)?;
    let help = fetch(&cmd, &cmd.args()[0]).await?;
    match cmd.format {
        Format::Table => {
            let text = help.get("help").and_then(Value::as_str).unwrap_or_default();
            // Printed as received plus a newline, like the Vault CLI.
            outln!("{text}");
        }
        Format::Json | Format::Raw => {
            let openapi = help.get("openapi").cloned().unwrap_or(Value::Null);
            outln!("{}", output::json_text(&openapi));
        }
    }
    Ok(0)
}
