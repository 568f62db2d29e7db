//! `arca login`: authenticate and store the token in `~/.vault-token`.
//!
//! `-method=token` (the default) checks the token with
//! `GET auth/token/lookup-self`; `-method=userpass` logs in with
//! `PUT auth/<path>/login/<username>`. The resulting token is stored with the
//! Vault CLI's default token helper (so `vault` and `arca` share the login)
//! unless `-no-store` is given.

use arca_client::token_helper;
use arca_client::Secret;
use serde_json::{json, Map, Value};

use super::data::parse_args_data;
use super::output::{self, Format};
use super::{parse, prompt_hidden, read_stdin, remote_error, usage_error, Cmd, CmdResult, Spec};
use crate::flags::Flag;

const LOGIN: Spec = Spec {
    name: "login",
    usage: "[options] [TOKEN | K=V...]",
    help: "Authenticates and stores the resulting token in ~/.vault-token.\n\
           With the token method, TOKEN is checked with lookup-self; \"-\" reads it\n\
           from stdin and no TOKEN prompts for it. With -method=userpass give\n\
           username=NAME [password=PW] (prompted when absent).",
    flags: &[
        Flag::string("method", "Auth method: token or userpass.").default("token"),
        Flag::string(
            "path",
            "Mount path of the auth method (default: the method name).",
        ),
        Flag::bool("no-store", "Do not store the token."),
        Flag::bool("token-only", "Print only the token (implies -no-store)."),
        Flag::bool("no-print", "Print nothing on success."),
    ],
    http: true,
    field: true,
};

/// `arca login`.
pub async fn run(argv: &[String]) -> CmdResult {
    let cmd = parse(&LOGIN, argv)?;
    let method = cmd.flags.string_or("method", "token").to_string();
    let secret = match method.as_str() {
        "token" => token_login(&cmd).await?,
        "userpass" => userpass_login(&cmd).await?,
        other => {
            return Err(usage_error(format!(
                "Unknown auth method: {other}. Supported: token, userpass"
            )))
        }
    };
    let Some(token) = secret.client_token().map(String::from) else {
        return Err(remote_error("Error authenticating: no token was returned"));
    };
    let token_only = cmd.flags.bool("token-only");
    let store = !cmd.flags.bool("no-store") && !token_only;
    if store {
        token_helper::store_token(&token)
            .map_err(|e| usage_error(format!("Error storing token: {e}")))?;
        if arca_client::env_var("TOKEN").is_some() {
            eprintln!(
                "WARNING! The VAULT_TOKEN (or ARCA_TOKEN) environment variable is set! The value \
                 of this variable will take precedence; if this is unwanted please unset it or \
                 update its value accordingly.\n"
            );
        }
    }
    if token_only {
        output::print_raw(&token);
        return Ok(0);
    }
    if cmd.flags.bool("no-print") {
        return Ok(0);
    }
    if cmd.field.is_some() || cmd.format != Format::Table {
        return cmd.print_secret_or_field(&secret);
    }
    if store {
        outln!(
            "Success! You are now authenticated. The token information displayed below\n\
             is already stored in the token helper. You do NOT need to run \"arca login\"\n\
             again. Future requests will automatically use this token.\n"
        );
    } else {
        outln!(
            "Success! You are now authenticated. The token information below is displayed\n\
             here but has NOT been stored. To use this token, set the VAULT_TOKEN\n\
             environment variable.\n"
        );
    }
    cmd.print_secret(&secret)
}

async fn token_login(cmd: &Cmd) -> Result<Secret, super::Failure> {
    cmd.expect_args(0, 1)?;
    let token = match cmd.args().first().map(String::as_str) {
        Some("-") => read_stdin()?.trim().to_string(),
        Some(t) => t.trim().to_string(),
        None if cmd.interactive() => prompt_hidden("Token (will be hidden): ")?,
        None => return Err(usage_error("Missing token and -non-interactive is set")),
    };
    if token.is_empty() {
        return Err(usage_error("Missing token"));
    }
    let client = cmd.client()?.with_token(Some(token.clone()));
    let lookup = client
        .read("auth/token/lookup-self")
        .await
        .map_err(|e| remote_error(format!("Error authenticating: error looking up token: {e}")))?
        .ok_or_else(|| remote_error("Error authenticating: empty response from lookup-self"))?;
    Ok(secret_from_lookup(&token, &lookup))
}

/// The `auth` block the Vault CLI builds from a `lookup-self` answer.
pub fn secret_from_lookup(token: &str, lookup: &Secret) -> Secret {
    let get = |k: &str| lookup.get(k).cloned().unwrap_or(Value::Null);
    let policies = get("policies");
    let token_policies = match get("token_policies") {
        Value::Null => policies.clone(),
        v => v,
    };
    let auth = json!({
        "client_token": lookup.get_str("id").unwrap_or(token),
        "accessor": get("accessor"),
        "policies": policies,
        "token_policies": token_policies,
        "identity_policies": get("identity_policies"),
        "metadata": get("meta"),
        "lease_duration": lookup.get("ttl").and_then(Value::as_u64).unwrap_or(0),
        "renewable": lookup.get("renewable").and_then(Value::as_bool).unwrap_or(false),
        "entity_id": get("entity_id"),
        "orphan": lookup.get("orphan").and_then(Value::as_bool).unwrap_or(false),
    });
    Secret {
        request_id: lookup.request_id.clone(),
        auth: Some(auth),
        ..Secret::default()
    }
}

async fn userpass_login(cmd: &Cmd) -> Result<Secret, super::Failure> {
    let mut data: Map<String, Value> = parse_args_data(cmd.args(), &mut std::io::stdin())
        .map_err(|e| usage_error(format!("Failed to parse K=V data: {e}")))?;
    let username = match data.remove("username") {
        Some(Value::String(u)) if !u.is_empty() => u,
        _ => return Err(usage_error("Missing username: give username=NAME")),
    };
    if !data.contains_key("password") {
        if !cmd.interactive() {
            return Err(usage_error("Missing password and -non-interactive is set"));
        }
        let pw = prompt_hidden("Password (will be hidden): ")?;
        data.insert("password".into(), Value::String(pw));
    }
    let mount = super::sanitize_path(cmd.flags.string_or("path", "userpass"));
    let path = format!("auth/{mount}/login/{username}");
    let client = cmd.client()?.with_token(None);
    client
        .write(&path, &Value::Object(data))
        .await
        .map_err(|e| remote_error(format!("Error authenticating: {e}")))?
        .ok_or_else(|| remote_error("Error authenticating: empty response"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_to_auth() {
        let lookup: Secret = serde_json::from_value(json!({"data": {
            "id": "hvs.abc", "accessor": "acc", "policies": ["root"], "ttl": 0,
            "renewable": false, "meta": null
        }}))
        .unwrap();
        let s = secret_from_lookup("hvs.abc", &lookup);
        assert_eq!(s.client_token(), Some("hvs.abc"));
        assert_eq!(s.auth_field("token_policies"), Some(&json!(["root"])));
        let rows = output::secret_rows(&s);
        assert_eq!(rows[0], ("token".into(), "hvs.abc".into()));
        assert_eq!(rows[2], ("token_duration".into(), "∞".into()));
    }
}
