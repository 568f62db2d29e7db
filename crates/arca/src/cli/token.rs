//! `arca token …`: create, lookup, revoke, renew and capabilities.
//!
//! Requests (as the Vault CLI sends them): `create` → `POST auth/token/create`
//! (`create-orphan` with `-orphan`, `create/<role>` with `-role`);
//! `lookup` → `GET auth/token/lookup-self`, `POST auth/token/lookup`
//! `{token}` or `POST auth/token/lookup-accessor` `{accessor}`; `revoke` →
//! `PUT auth/token/revoke` `{token}`, `revoke-self`, `revoke-accessor`
//! `{accessor}` or `revoke-orphan` `{token}`; `renew` → `PUT
//! auth/token/renew` `{token, increment}` or `renew-self` `{increment}`;
//! `capabilities` → `POST sys/capabilities` `{token, paths}` or
//! `sys/capabilities-self` `{paths}`.

use arca_client::Method;
use serde_json::{json, Map, Value};

use super::data::parse_kv_flags;
use super::output::{self, Format};
use super::{missing_subcommand, parse, remote_error, usage_error, Cmd, CmdResult, Failure, Spec};
use crate::duration;
use crate::flags::Flag;

pub(super) const SUBCOMMANDS: &[(&str, &str)] = &[
    ("create", "Create a token"),
    ("lookup", "Show a token's properties"),
    ("revoke", "Revoke a token and its children"),
    ("renew", "Renew a token's lease"),
    ("capabilities", "Show a token's capabilities on a path"),
];

/// Dispatches `arca token <subcommand>`.
pub async fn run(argv: &[String]) -> CmdResult {
    let rest = argv.get(1..).unwrap_or(&[]);
    match argv.first().map(String::as_str) {
        Some("create") => create(rest).await,
        Some("lookup") => lookup(rest).await,
        Some("revoke") => revoke(rest).await,
        Some("renew") => renew(rest).await,
        Some("capabilities") => capabilities(rest).await,
        other => Err(missing_subcommand(
            "token",
            "Interact with tokens.",
            SUBCOMMANDS,
            other,
        )),
    }
}

fn secs_flag(cmd: &Cmd, name: &str) -> Result<Option<u64>, Failure> {
    cmd.flags
        .string(name)
        .map(|v| {
            duration::parse_seconds(v).map_err(|e| usage_error(format!("invalid -{name}: {e}")))
        })
        .transpose()
}

const CREATE: Spec = Spec {
    name: "token create",
    usage: "[options]",
    help: "Creates a token; it is a child of the calling token unless -orphan is given.",
    flags: &[
        Flag::string(
            "id",
            "Token value to use instead of a random one (root only).",
        ),
        Flag::string("display-name", "Name shown for the token."),
        Flag::string("ttl", "Initial TTL (e.g. 1h)."),
        Flag::string(
            "explicit-max-ttl",
            "Hard upper bound on the token's lifetime.",
        ),
        Flag::string(
            "period",
            "Renewal period: the token never expires while renewed in time.",
        ),
        Flag::bool("renewable", "Allow renewing the token.").default("true"),
        Flag::bool(
            "orphan",
            "Create a token without a parent (auth/token/create-orphan).",
        ),
        Flag::bool("no-default-policy", "Do not attach the default policy."),
        Flag::int("use-limit", "Number of uses (0 = unlimited)."),
        Flag::list(
            "policy",
            "Policy to attach (repeatable or comma separated).",
        ),
        Flag::list("metadata", "Metadata k=v (repeatable)."),
        Flag::string("role", "Token role to create the token with."),
        Flag::string("type", "service or batch."),
        Flag::string("entity-alias", "Entity alias to associate (with -role)."),
    ],
    http: true,
    field: true,
};

/// The path and body `token create` sends.
pub fn create_request(cmd: &Cmd) -> Result<(String, Value), Failure> {
    let mut body = Map::new();
    let policies: Vec<String> = cmd
        .flags
        .list("policy")
        .iter()
        .flat_map(|p| p.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    if !policies.is_empty() {
        body.insert("policies".into(), json!(policies));
    }
    for (flag, key) in [
        ("id", "id"),
        ("display-name", "display_name"),
        ("type", "type"),
        ("entity-alias", "entity_alias"),
    ] {
        if let Some(v) = cmd.flags.string(flag) {
            body.insert(key.into(), json!(v));
        }
    }
    for (flag, key) in [
        ("ttl", "ttl"),
        ("explicit-max-ttl", "explicit_max_ttl"),
        ("period", "period"),
    ] {
        if let Some(s) = secs_flag(cmd, flag)? {
            body.insert(key.into(), json!(format!("{s}s")));
        }
    }
    if let Some(n) = cmd.flags.int("use-limit") {
        if n < 0 {
            return Err(usage_error("-use-limit must not be negative"));
        }
        body.insert("num_uses".into(), json!(n));
    }
    let meta = parse_kv_flags(&cmd.flags.list("metadata"), "metadata").map_err(usage_error)?;
    if !meta.is_empty() {
        body.insert("meta".into(), Value::Object(meta));
    }
    if cmd.flags.bool("no-default-policy") {
        body.insert("no_default_policy".into(), json!(true));
    }
    body.insert(
        "renewable".into(),
        json!(cmd.flags.bool_or("renewable", true)),
    );
    let path = match (cmd.flags.string("role"), cmd.flags.bool("orphan")) {
        (Some(role), _) if !role.is_empty() => format!("auth/token/create/{role}"),
        (_, true) => "auth/token/create-orphan".to_string(),
        _ => "auth/token/create".to_string(),
    };
    if cmd.flags.bool("orphan") {
        body.insert("no_parent".into(), json!(true));
    }
    Ok((path, Value::Object(body)))
}

async fn create(argv: &[String]) -> CmdResult {
    let cmd = parse(&CREATE, argv)?;
    cmd.expect_args(0, 0)?;
    let (path, body) = create_request(&cmd)?;
    let client = cmd.client()?;
    let secret = client
        .post(&path, &body)
        .await
        .map_err(|e| remote_error(format!("Error creating token: {e}")))?
        .ok_or_else(|| remote_error("Error creating token: empty response"))?;
    cmd.print_secret_or_field(&secret)
}

const LOOKUP: Spec = Spec {
    name: "token lookup",
    usage: "[options] [TOKEN | ACCESSOR]",
    help: "Shows the properties of TOKEN (default: the calling token).",
    flags: &[Flag::bool(
        "accessor",
        "The argument is an accessor, not a token.",
    )],
    http: true,
    field: true,
};

async fn lookup(argv: &[String]) -> CmdResult {
    let cmd = parse(&LOOKUP, argv)?;
    cmd.expect_args(0, 1)?;
    let accessor = cmd.flags.bool("accessor");
    let client = cmd.client()?;
    let res = match (cmd.args().first(), accessor) {
        (None, true) => return Err(usage_error("Not enough arguments with -accessor")),
        (None, false) => client.read("auth/token/lookup-self").await,
        (Some(a), true) => {
            client
                .post("auth/token/lookup-accessor", &json!({"accessor": a}))
                .await
        }
        (Some(t), false) => client.post("auth/token/lookup", &json!({"token": t})).await,
    };
    let secret = res
        .map_err(|e| remote_error(format!("Error looking up token: {e}")))?
        .ok_or_else(|| remote_error("Error looking up token: no token found"))?;
    cmd.print_secret_or_field(&secret)
}

const REVOKE: Spec = Spec {
    name: "token revoke",
    usage: "[options] [TOKEN | ACCESSOR]",
    help: "Revokes TOKEN and, unless -mode=orphan, all its children.",
    flags: &[
        Flag::bool("self", "Revoke the calling token."),
        Flag::bool("accessor", "The argument is an accessor, not a token."),
        Flag::string(
            "mode",
            "\"orphan\" keeps the children (as orphans); \"path\" revokes by lease prefix.",
        ),
    ],
    http: true,
    field: false,
};

/// `(method, path, body)` of a `token revoke` invocation.
pub fn revoke_request(cmd: &Cmd) -> Result<(Method, String, Option<Value>), Failure> {
    let is_self = cmd.flags.bool("self");
    let accessor = cmd.flags.bool("accessor");
    let mode = cmd.flags.string_or("mode", "");
    let arg = cmd.args().first();
    if is_self && arg.is_some() {
        return Err(usage_error("Tokens cannot be specified with -self"));
    }
    if is_self && accessor {
        return Err(usage_error("Cannot use -self with -accessor"));
    }
    if accessor && mode == "path" {
        return Err(usage_error("Cannot use -mode=path with -accessor"));
    }
    if !is_self && arg.is_none() {
        return Err(usage_error("Not enough arguments (expected 1, got 0)"));
    }
    let arg = arg.cloned().unwrap_or_default();
    Ok(match (is_self, accessor, mode) {
        (true, _, "" | "orphan") => (Method::PUT, "auth/token/revoke-self".into(), None),
        (_, true, "" | "orphan") => (
            Method::POST,
            "auth/token/revoke-accessor".into(),
            Some(json!({"accessor": arg})),
        ),
        (false, false, "") => (
            Method::PUT,
            "auth/token/revoke".into(),
            Some(json!({"token": arg})),
        ),
        (false, false, "orphan") => (
            Method::PUT,
            "auth/token/revoke-orphan".into(),
            Some(json!({"token": arg})),
        ),
        (false, false, "path") => (
            Method::PUT,
            format!("sys/leases/revoke-prefix/{}", super::sanitize_path(&arg)),
            None,
        ),
        (_, _, other) => {
            return Err(usage_error(format!(
                "Unsupported -mode={other} (use orphan or path)"
            )))
        }
    })
}

async fn revoke(argv: &[String]) -> CmdResult {
    let cmd = parse(&REVOKE, argv)?;
    cmd.expect_args(0, 1)?;
    let (method, path, body) = revoke_request(&cmd)?;
    let client = cmd.client()?;
    let resp = client.raw(method.clone(), &path, body.as_ref()).await?;
    if !resp.is_success() {
        let e = arca_client::ClientError::from_response(
            method.as_str(),
            &client.url(&path),
            resp.status,
            &resp.body,
        );
        return Err(remote_error(format!("Error revoking token: {e}")));
    }
    cmd.success("Success! Revoked token (if it existed)")
}

const RENEW: Spec = Spec {
    name: "token renew",
    usage: "[options] [TOKEN]",
    help: "Renews TOKEN (default: the calling token), optionally asking for -increment.",
    flags: &[
        Flag::string("increment", "Requested new TTL (e.g. 1h)."),
        Flag::bool("accessor", "The argument is an accessor, not a token."),
    ],
    http: true,
    field: true,
};

async fn renew(argv: &[String]) -> CmdResult {
    let cmd = parse(&RENEW, argv)?;
    cmd.expect_args(0, 1)?;
    let increment = secs_flag(&cmd, "increment")?.unwrap_or(0);
    let client = cmd.client()?;
    let (path, body) = match (cmd.args().first(), cmd.flags.bool("accessor")) {
        (None, _) => ("auth/token/renew-self", json!({"increment": increment})),
        (Some(a), true) => (
            "auth/token/renew-accessor",
            json!({"accessor": a, "increment": increment}),
        ),
        (Some(t), false) => (
            "auth/token/renew",
            json!({"token": t, "increment": increment}),
        ),
    };
    let secret = client
        .write(path, &body)
        .await
        .map_err(|e| remote_error(format!("Error renewing token: {e}")))?
        .ok_or_else(|| remote_error("Error renewing token: empty response"))?;
    cmd.print_secret_or_field(&secret)
}

const CAPABILITIES: Spec = Spec {
    name: "token capabilities",
    usage: "[options] [TOKEN] PATH",
    help: "Prints the capabilities TOKEN (default: the calling token) has on PATH.",
    flags: &[],
    http: true,
    field: false,
};

/// The sorted capabilities for `path` from a `sys/capabilities*` answer.
pub fn capabilities_of(resp: &Map<String, Value>, path: &str) -> Vec<String> {
    let data = match resp.get("data") {
        Some(Value::Object(d)) => d,
        _ => resp,
    };
    let list = data.get(path).or_else(|| data.get("capabilities"));
    let mut caps: Vec<String> = match list {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    };
    caps.sort();
    caps
}

async fn capabilities(argv: &[String]) -> CmdResult {
    let cmd = parse(&CAPABILITIES, argv)?;
    cmd.expect_args(1, 2)?;
    let (token, path) = match cmd.args() {
        [p] => (None, p.clone()),
        [t, p] => (Some(t.clone()), p.clone()),
        _ => return Err(usage_error("Not enough arguments")),
    };
    let path = path.trim_start_matches('/').to_string();
    let client = cmd.client()?;
    let (api, body) = match &token {
        Some(t) => ("sys/capabilities", json!({"token": t, "paths": [path]})),
        None => ("sys/capabilities-self", json!({"paths": [path]})),
    };
    let resp = super::sys_request(&client, Method::POST, api, Some(&body))
        .await
        .map_err(|e| remote_error(format!("Error listing capabilities: {e}")))?;
    let caps = capabilities_of(&resp, &path);
    match cmd.format {
        Format::Json => outln!("{}", output::json_text(&caps)),
        Format::Table | Format::Raw => outln!("{}", caps.join(", ")),
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(spec: &Spec, a: &[&str]) -> Cmd {
        parse(spec, &a.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn create_body() {
        let c = cmd(
            &CREATE,
            &[
                "-policy=a",
                "-policy=b,c",
                "-ttl=1h",
                "-explicit-max-ttl=2h",
                "-use-limit=3",
                "-orphan",
                "-period=30m",
                "-display-name=ci",
                "-renewable=false",
                "-metadata=team=x",
            ],
        );
        let (path, body) = create_request(&c).unwrap();
        assert_eq!(path, "auth/token/create-orphan");
        assert_eq!(
            body,
            json!({"policies": ["a", "b", "c"], "ttl": "3600s", "explicit_max_ttl": "7200s",
                   "period": "1800s", "num_uses": 3, "display_name": "ci", "renewable": false,
                   "meta": {"team": "x"}, "no_parent": true})
        );
        let (path, body) = create_request(&cmd(&CREATE, &[])).unwrap();
        assert_eq!(path, "auth/token/create");
        assert_eq!(body, json!({"renewable": true}));
        let (path, _) = create_request(&cmd(&CREATE, &["-role=r1"])).unwrap();
        assert_eq!(path, "auth/token/create/r1");
        assert!(create_request(&cmd(&CREATE, &["-ttl=forever"])).is_err());
    }

    #[test]
    fn revoke_routes() {
        let r = |a: &[&str]| revoke_request(&cmd(&REVOKE, a));
        assert_eq!(r(&["-self"]).unwrap().1, "auth/token/revoke-self");
        let (m, p, b) = r(&["t1"]).unwrap();
        assert_eq!((m, p.as_str()), (Method::PUT, "auth/token/revoke"));
        assert_eq!(b, Some(json!({"token": "t1"})));
        let (m, p, b) = r(&["-accessor", "acc"]).unwrap();
        assert_eq!(
            (m, p.as_str()),
            (Method::POST, "auth/token/revoke-accessor")
        );
        assert_eq!(b, Some(json!({"accessor": "acc"})));
        assert_eq!(
            r(&["-mode=orphan", "t"]).unwrap().1,
            "auth/token/revoke-orphan"
        );
        assert_eq!(
            r(&["-mode=path", "auth/x/"]).unwrap().1,
            "sys/leases/revoke-prefix/auth/x"
        );
        assert!(r(&["-self", "t"]).is_err());
        assert!(r(&[]).is_err());
        assert!(r(&["-mode=weird", "t"]).is_err());
    }

    #[test]
    fn capabilities_parsing() {
        let resp = json!({"capabilities": ["update", "read"], "secret/x": ["update", "read"]});
        assert_eq!(
            capabilities_of(resp.as_object().unwrap(), "secret/x"),
            vec!["read", "update"]
        );
        let resp = json!({"data": {"capabilities": ["deny"]}});
        assert_eq!(
            capabilities_of(resp.as_object().unwrap(), "p"),
            vec!["deny"]
        );
    }
}
