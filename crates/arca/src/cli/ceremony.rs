//! `arca operator rotate-keys` and `arca operator generate-root`: the key
//! ceremonies, with the `bao` CLI's flags, output and exit codes.
//!
//! Requests (as OpenBao 2.7's CLI sends them): `rotate-keys -init` → `PUT
//! sys/rotate/root/init`; `-status` → `GET sys/rotate/root/init` (with
//! `-verify`: `GET sys/rotate/root/verify`); `-cancel` → `DELETE
//! sys/rotate/root/init` (`-verify`: `.../verify`); a key → `GET` the
//! status, then `PUT sys/rotate/root/update` (`-verify`: `.../verify`);
//! `-backup-retrieve`/`-backup-delete` → `GET`/`DELETE
//! sys/rotate/root/backup`; `-target=recovery` uses `sys/rotate/recovery/*`.
//! `generate-root -init` → `PUT sys/generate-root-token/attempt`,
//! `-status` → `GET` it, `-cancel` → `DELETE` it, a key → `GET` then `PUT
//! sys/generate-root-token/update`, `-decode` → `GET` the attempt (for
//! the OTP length) and decodes locally, `-generate-otp` → `GET` and makes
//! an OTP locally.
//!
//! Invariants: key shares and OTPs are never put on the command line by
//! the CLI itself (prompted with echo off, or read from stdin with `-`);
//! `-pgp-keys`/`-pgp-key` name files (or `keybase:` names, which the server
//! refuses), read here and sent as base64, as Vault's CLI does.

use arca_client::Method;
use base64::Engine;
use serde_json::{json, Map, Value};

use super::output::{self, Format};
use super::{
    parse, prompt_hidden, read_stdin, remote_error, sys_field, sys_request, usage_error, Cmd,
    CmdResult, Failure, Spec,
};
use crate::flags::Flag;

/// One `-pgp-keys` entry as the server takes it: a file's key as base64
/// (binary keys are encoded, armored or base64 text is sent as it is), or
/// a `keybase:` name (refused by the server with an explanation).
pub fn pgp_key_value(entry: &str) -> Result<String, Failure> {
    let entry = entry.trim();
    if entry.starts_with("keybase:") {
        return Ok(entry.to_string());
    }
    let bytes = std::fs::read(entry)
        .map_err(|e| usage_error(format!("Error reading PGP key file {entry:?}: {e}")))?;
    match std::str::from_utf8(&bytes) {
        Ok(text) if text.trim_start().starts_with("-----BEGIN") => Ok(text.to_string()),
        Ok(text)
            if !text.trim().is_empty()
                && base64::engine::general_purpose::STANDARD
                    .decode(text.split_whitespace().collect::<String>())
                    .is_ok() =>
        {
            Ok(text.split_whitespace().collect())
        }
        _ => Ok(base64::engine::general_purpose::STANDARD.encode(&bytes)),
    }
}

/// `-pgp-keys=a.gpg,b.gpg` (also repeated) as the server takes them.
pub fn pgp_keys_flag(cmd: &Cmd, name: &str) -> Result<Vec<String>, Failure> {
    cmd.flags
        .list(name)
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(pgp_key_value)
        .collect()
}

fn get<'a>(m: &'a Map<String, Value>, k: &str) -> &'a Value {
    sys_field(m, k).unwrap_or(&Value::Null)
}

fn num(m: &Map<String, Value>, k: &str) -> u64 {
    get(m, k).as_u64().unwrap_or(0)
}

fn flag(m: &Map<String, Value>, k: &str) -> bool {
    get(m, k).as_bool().unwrap_or(false)
}

fn text(m: &Map<String, Value>, k: &str) -> String {
    get(m, k).as_str().unwrap_or("").to_string()
}

fn strings_or_null(m: &Map<String, Value>, k: &str) -> Value {
    match get(m, k) {
        Value::Array(a) if !a.is_empty() => Value::Array(a.clone()),
        _ => Value::Null,
    }
}

/// Go's `%s` of a string slice: `[a b]`.
fn go_list(v: &Value) -> String {
    let items: Vec<String> = v
        .as_array()
        .map(|a| a.iter().map(output::go_fmt).collect())
        .unwrap_or_default();
    format!("[{}]", items.join(" "))
}

// ------------------------------------------------------------ rotate-keys --

const ROTATE_KEYS: Spec = Spec {
    name: "operator rotate-keys",
    usage: "[options] [KEY]",
    help: "Generates new unseal key shares (rotates the unseal key). Start with -init,\n\
           then each holder of a current share enters it with the rotation's -nonce;\n\
           the last one receives the new shares. Without KEY, prompts for it (\"-\" reads\n\
           it from stdin).",
    flags: &[
        Flag::bool("init", "Start a rotation."),
        Flag::bool("cancel", "Cancel the rotation (or, with -verify, its verification)."),
        Flag::bool("status", "Show the rotation's progress."),
        Flag::int("key-shares", "Number of new key shares.").default("5"),
        Flag::int("key-threshold", "Number of new shares needed to unseal.").default("3"),
        Flag::string("nonce", "The rotation's nonce (from -init)."),
        Flag::list(
            "pgp-keys",
            "Files with the holders' PGP public keys, one per new share (comma separated).",
        ),
        Flag::bool("backup", "Keep the PGP-encrypted new shares in storage."),
        Flag::bool(
            "verify",
            "At -init: the new shares count only once entered back. Otherwise: act on the verification.",
        ),
        Flag::string("target", "barrier (the unseal keys) or recovery.").default("barrier"),
        Flag::bool("backup-retrieve", "Show the backed-up encrypted shares."),
        Flag::bool("backup-delete", "Delete the backed-up encrypted shares."),
    ],
    http: true,
    field: false,
};

fn rotate_base(cmd: &Cmd) -> Result<&'static str, Failure> {
    match cmd
        .flags
        .string_or("target", "barrier")
        .trim()
        .to_ascii_lowercase()
        .as_str()
    {
        "barrier" => Ok("sys/rotate/root"),
        "recovery" | "hsm" => Ok("sys/rotate/recovery"),
        other => Err(usage_error(format!("Unknown target: {other}"))),
    }
}

/// The JSON of OpenBao's `RotateStatusResponse`.
fn rotate_status_json(m: &Map<String, Value>) -> Value {
    let mut out = json!({
        "nonce": text(m, "nonce"),
        "started": flag(m, "started"),
        "t": num(m, "t"),
        "n": num(m, "n"),
        "progress": num(m, "progress"),
        "required": num(m, "required"),
        "pgp_fingerprints": strings_or_null(m, "pgp_fingerprints"),
        "backup": flag(m, "backup"),
        "verification_required": flag(m, "verification_required"),
        "verification_nonce": text(m, "verification_nonce"),
    });
    if flag(m, "complete") {
        out["complete"] = json!(true);
        out["keys"] = get(m, "keys").clone();
        out["keys_base64"] = get(m, "keys_base64").clone();
    }
    out
}

/// The JSON of OpenBao's `RotateVerificationStatusResponse`.
fn verify_status_json(m: &Map<String, Value>) -> Value {
    json!({
        "nonce": text(m, "nonce"),
        "started": flag(m, "started"),
        "t": num(m, "t"),
        "n": num(m, "n"),
        "progress": num(m, "progress"),
    })
}

fn print_rotate_status(cmd: &Cmd, m: &Map<String, Value>, verify: bool) -> CmdResult {
    if cmd.format == Format::Json {
        let v = if verify {
            verify_status_json(m)
        } else {
            rotate_status_json(m)
        };
        outln!("{}", output::json_text(&v));
        return Ok(0);
    }
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut row = |k: &str, v: String| rows.push((k.to_string(), v));
    if verify {
        row("Started", flag(m, "started").to_string());
        row("New Shares", num(m, "n").to_string());
        row("New Threshold", num(m, "t").to_string());
        row("Verification Nonce", text(m, "nonce"));
        row(
            "Verification Progress",
            format!("{}/{}", num(m, "progress"), num(m, "t")),
        );
    } else {
        row("Nonce", text(m, "nonce"));
        let started = flag(m, "started");
        row("Started", started.to_string());
        if started {
            let (p, r) = (num(m, "progress"), num(m, "required"));
            if p == r {
                row("Progress", format!("{p}/{r} (verification in progress)"));
            } else {
                row("Progress", format!("{p}/{r}"));
            }
            if num(m, "n") > 0 {
                row("New Shares", num(m, "n").to_string());
            }
            if num(m, "t") > 0 {
                row("New Threshold", num(m, "t").to_string());
            }
            row(
                "Verification Required",
                flag(m, "verification_required").to_string(),
            );
            let vn = text(m, "verification_nonce");
            if !vn.is_empty() {
                row("Verification Nonce", vn);
            }
        }
        let fps = get(m, "pgp_fingerprints");
        if fps.as_array().is_some_and(|a| !a.is_empty()) {
            row("PGP Fingerprints", go_list(fps));
            row("Backup", flag(m, "backup").to_string());
        }
    }
    outln!("{}", output::kv_table(rows));
    Ok(0)
}

/// The key share from the argument, stdin (`-`) or a prompt, with the
/// nonce to send it with.
fn share_and_nonce(cmd: &Cmd, status_nonce: &str, what: &str) -> Result<(String, String), Failure> {
    let flag_nonce = cmd.flags.string("nonce").unwrap_or("").to_string();
    let (key, nonce) = match cmd.args().first().map(String::as_str) {
        Some("-") => (read_stdin()?, flag_nonce),
        Some(k) => (k.to_string(), flag_nonce),
        None if cmd.interactive() => {
            eprintln!("{what} nonce: {status_nonce}");
            (
                prompt_hidden("Unseal Key (will be hidden): ")?,
                status_nonce.to_string(),
            )
        }
        None => {
            return Err(usage_error(
                "Refusing to read from stdin with -non-interactive specified; specify nonce via the -nonce flag",
            ))
        }
    };
    let key = key.trim().to_string();
    if nonce.is_empty() {
        return Err(usage_error(
            "Missing nonce value: specify it via the -nonce flag",
        ));
    }
    Ok((key, nonce))
}

pub async fn rotate_keys(argv: &[String]) -> CmdResult {
    let cmd = parse(&ROTATE_KEYS, argv)?;
    cmd.expect_args(0, 1)?;
    let base = rotate_base(&cmd)?;
    let client = cmd.client()?;
    let verify = cmd.flags.bool("verify");
    let call = |method: Method, path: String, body: Option<Value>| {
        let client = &client;
        async move { sys_request(client, method, &path, body.as_ref()).await }
    };
    if cmd.flags.bool("backup-delete") {
        call(Method::DELETE, format!("{base}/backup"), None)
            .await
            .map_err(|e| remote_error(format!("Error deleting rotation backed up keys: {e}")))?;
        return cmd.success("Success! Deleted backed up keys (if they existed)");
    }
    if cmd.flags.bool("backup-retrieve") {
        let m = call(Method::GET, format!("{base}/backup"), None)
            .await
            .map_err(|e| remote_error(format!("Error retrieving rotation backed up keys: {e}")))?;
        let data = json!({
            "nonce": text(&m, "nonce"),
            "keys": get(&m, "keys"),
            "keys_base64": get(&m, "keys_base64"),
        });
        let secret = arca_client::Secret {
            data: data.as_object().cloned(),
            ..Default::default()
        };
        return cmd.print_secret(&secret);
    }
    if cmd.flags.bool("cancel") {
        let path = if verify {
            format!("{base}/verify")
        } else {
            format!("{base}/init")
        };
        call(Method::DELETE, path, None)
            .await
            .map_err(|e| remote_error(format!("Error canceling rotation: {e}")))?;
        return cmd.success("Success! Canceled rotation (if it was started)");
    }
    if cmd.flags.bool("init") {
        let body = json!({
            "secret_shares": cmd.flags.int("key-shares").unwrap_or(5),
            "secret_threshold": cmd.flags.int("key-threshold").unwrap_or(3),
            "pgp_keys": match pgp_keys_flag(&cmd, "pgp-keys")? {
                k if k.is_empty() => Value::Null,
                k => json!(k),
            },
            "backup": cmd.flags.bool("backup"),
            "require_verification": verify,
        });
        let m = call(Method::PUT, format!("{base}/init"), Some(body))
            .await
            .map_err(|e| remote_error(format!("Error initializing rotation: {e}")))?;
        if cmd.format == Format::Table {
            if cmd.flags.list("pgp-keys").is_empty() {
                eprintln!(
                    "WARNING! If you lose the keys after they are returned, there is no\n\
                     recovery. Consider canceling this operation and re-initializing with the\n\
                     -pgp-keys flag to protect the returned unseal keys along with -backup to\n\
                     allow recovery of the encrypted keys in case of emergency.\n"
                );
            } else if !cmd.flags.bool("backup") {
                eprintln!(
                    "WARNING! You are using PGP keys for encryption of the resulting unseal\n\
                     keys, but you did not enable -backup. If you lose the encrypted keys after\n\
                     they are returned, you will not be able to recover them.\n"
                );
            }
        }
        return print_rotate_status(&cmd, &m, false);
    }
    let status_path = if verify {
        format!("{base}/verify")
    } else {
        format!("{base}/init")
    };
    let status = call(Method::GET, status_path.clone(), None)
        .await
        .map_err(|e| remote_error(format!("Error reading rotate status: {e}")))?;
    if cmd.flags.bool("status") {
        return print_rotate_status(&cmd, &status, verify);
    }
    if !flag(&status, "started") {
        return Err(usage_error(
            "No rotation is in progress. Start a rotation process by running\n\"arca operator rotate-keys -init\".",
        ));
    }
    let (key, nonce) = share_and_nonce(&cmd, &text(&status, "nonce"), "rotation")?;
    let update_path = if verify {
        format!("{base}/verify")
    } else {
        format!("{base}/update")
    };
    let m = call(
        Method::PUT,
        update_path,
        Some(json!({"key": key, "nonce": nonce})),
    )
    .await
    .map_err(|e| remote_error(format!("Error posting unseal key: {e}")))?;
    if !flag(&m, "complete") {
        let st = call(Method::GET, status_path, None)
            .await
            .map_err(|e| remote_error(format!("Error reading rotate status: {e}")))?;
        return print_rotate_status(&cmd, &st, verify);
    }
    if verify {
        if cmd.format == Format::Json {
            outln!(
                "{}",
                output::json_text(&json!({"nonce": text(&m, "nonce"), "complete": true}))
            );
        } else {
            outln!("Rotation verification successful. The rotation is complete and the new\nkeys are now active.");
        }
        return Ok(0);
    }
    if cmd.format == Format::Json {
        let mut out = json!({
            "nonce": text(&m, "nonce"),
            "complete": true,
            "keys": get(&m, "keys"),
            "keys_base64": get(&m, "keys_base64"),
            "pgp_fingerprints": strings_or_null(&m, "pgp_fingerprints"),
            "backup": flag(&m, "backup"),
            "verification_required": flag(&m, "verification_required"),
        });
        let vn = text(&m, "verification_nonce");
        if !vn.is_empty() {
            out["verification_nonce"] = json!(vn);
        }
        outln!("{}", output::json_text(&out));
        return Ok(0);
    }
    print_new_keys(&m, &status);
    Ok(0)
}

/// The table form of a completed rotation: the new keys and what to do.
fn print_new_keys(m: &Map<String, Value>, status: &Map<String, Value>) {
    let keys = get(m, "keys_base64")
        .as_array()
        .cloned()
        .unwrap_or_default();
    let fps = get(m, "pgp_fingerprints")
        .as_array()
        .cloned()
        .unwrap_or_default();
    outln!();
    for (i, k) in keys.iter().enumerate() {
        match fps.get(i) {
            Some(fp) => outln!(
                "Key {} fingerprint: {}; value: {}",
                i + 1,
                output::go_fmt(fp),
                output::go_fmt(k)
            ),
            None => outln!("Key {}: {}", i + 1, output::go_fmt(k)),
        }
    }
    let nonce = text(m, "nonce");
    if !nonce.is_empty() {
        outln!("\nOperation nonce: {nonce}");
    }
    if !fps.is_empty() && flag(m, "backup") {
        outln!(
            "\nThe encrypted unseal keys are backed up to \"core/unseal-keys-backup\" in the\n\
             storage backend. Remove these keys at any time using \"arca operator rotate-keys\n\
             -backup-delete\". Arca does not remove them by itself."
        );
    }
    let (n, t) = (num(status, "n"), num(status, "t"));
    if flag(m, "verification_required") {
        outln!(
            "\nArca has created a new unseal key, split into {n} key shares and a key\n\
             threshold of {t}. These will not be active until after verification is complete.\n\
             Please securely distribute the key shares printed above.\n\n\
             Verification nonce: {}",
            text(m, "verification_nonce")
        );
    } else {
        outln!(
            "\nArca rotated the unseal key, split into {n} key shares and a key threshold of\n\
             {t}. Please securely distribute the key shares printed above. When Arca is\n\
             re-sealed, restarted, or stopped, you must supply at least {t} of these keys to\n\
             unseal it before it can start servicing requests."
        );
    }
}

// ---------------------------------------------------------- generate-root --

const GENERATE_ROOT: Spec = Spec {
    name: "operator generate-root",
    usage: "[options] [KEY]",
    help: "Generates a new root token from a quorum of unseal key shares. Start with\n\
           -init (an OTP is generated and shown once, or give -otp or -pgp-key), then each\n\
           holder enters a share with the attempt's -nonce; decode the result with\n\
           -decode=<encoded token> -otp=<OTP>.",
    flags: &[
        Flag::bool("init", "Start a root token generation."),
        Flag::bool("cancel", "Cancel the attempt."),
        Flag::bool("status", "Show the attempt's progress."),
        Flag::string(
            "decode",
            "Decode this encoded token with -otp (\"-\": read it from stdin).",
        ),
        Flag::string("otp", "The one-time password (28 characters)."),
        Flag::string(
            "pgp-key",
            "A file with a PGP public key to encrypt the token to.",
        ),
        Flag::string("nonce", "The attempt's nonce (from -init)."),
        Flag::bool(
            "generate-otp",
            "Print a new one-time password of the right length.",
        ),
    ],
    http: true,
    field: false,
};

const ATTEMPT: &str = "sys/generate-root-token/attempt";

/// The JSON of OpenBao's `GenerateRootStatusResponse`.
fn root_status_json(m: &Map<String, Value>) -> Value {
    json!({
        "nonce": text(m, "nonce"),
        "started": flag(m, "started"),
        "progress": num(m, "progress"),
        "required": num(m, "required"),
        "complete": flag(m, "complete"),
        "encoded_token": text(m, "encoded_token"),
        "encoded_root_token": text(m, "encoded_root_token"),
        "pgp_fingerprint": text(m, "pgp_fingerprint"),
        "otp": text(m, "otp"),
        "otp_length": num(m, "otp_length"),
    })
}

fn print_root_status(cmd: &Cmd, m: &Map<String, Value>) -> CmdResult {
    if cmd.format == Format::Json {
        outln!("{}", output::json_text(&root_status_json(m)));
        return Ok(0);
    }
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut row = |k: &str, v: String| rows.push((k.to_string(), v));
    row("Nonce", text(m, "nonce"));
    row("Started", flag(m, "started").to_string());
    row(
        "Progress",
        format!("{}/{}", num(m, "progress"), num(m, "required")),
    );
    row("Complete", flag(m, "complete").to_string());
    let fp = text(m, "pgp_fingerprint");
    if !fp.is_empty() {
        row("PGP Fingerprint", fp);
    }
    let enc = text(m, "encoded_token");
    if !enc.is_empty() {
        row("Encoded Token", enc);
    }
    let otp = text(m, "otp");
    if !otp.is_empty() {
        eprintln!(
            "A One-Time-Password has been generated for you and is shown in the OTP\n\
             field. You will need this value to decode the resulting root token, so keep\n\
             it safe."
        );
        row("OTP", otp);
    }
    if num(m, "otp_length") != 0 {
        row("OTP Length", num(m, "otp_length").to_string());
    }
    // Go's columnOutput: no header row.
    let table = output::kv_table(rows);
    let body: Vec<&str> = table.lines().skip(2).collect();
    outln!("{}", body.join("\n"));
    Ok(0)
}

/// `token XOR otp` from its base64 (no padding) form.
fn decode_token(encoded: &str, otp: &str) -> Result<String, Failure> {
    arca_core::decode_token(encoded, otp)
        .map(|t| t.to_string())
        .map_err(|e| usage_error(format!("Error decoding root token: {e}")))
}

pub async fn generate_root(argv: &[String]) -> CmdResult {
    let cmd = parse(&GENERATE_ROOT, argv)?;
    cmd.expect_args(0, 1)?;
    let client = cmd.client()?;
    let status = || async {
        sys_request(&client, Method::GET, ATTEMPT, None)
            .await
            .map_err(|e| remote_error(format!("Error getting root generation status: {e}")))
    };
    if cmd.flags.bool("generate-otp") {
        let st = status().await?;
        let otp = arca_core::new_otp(num(&st, "otp_length") as usize);
        match cmd.format {
            Format::Json => outln!(
                "{}",
                output::json_text(&json!({"otp": otp.as_str(), "otp_length": otp.len()}))
            ),
            _ => out!("{}", otp.as_str()),
        }
        return Ok(0);
    }
    if let Some(encoded) = cmd.flags.string("decode") {
        let otp = cmd.flags.string("otp").unwrap_or("");
        if otp.is_empty() {
            return Err(usage_error("Missing otp: specify it via the -otp flag"));
        }
        let encoded = if encoded == "-" {
            read_stdin()?
        } else {
            encoded.to_string()
        };
        if encoded.trim().is_empty() {
            return Err(usage_error(
                "Missing encoded value. When using -decode=\"-\" value must be passed via stdin.",
            ));
        }
        status().await?;
        let token = decode_token(&encoded, otp)?;
        match cmd.format {
            Format::Json => outln!("{}", output::json_text(&json!({ "token": token }))),
            _ => out!("{token}"),
        }
        return Ok(0);
    }
    if cmd.flags.bool("cancel") {
        sys_request(&client, Method::DELETE, ATTEMPT, None)
            .await
            .map_err(|e| remote_error(format!("Error canceling root token generation: {e}")))?;
        return cmd.success("Success! Root token generation canceled (if it was started)");
    }
    if cmd.flags.bool("init") {
        let otp = cmd.flags.string("otp").unwrap_or("").to_string();
        let pgp = match cmd.flags.string("pgp-key") {
            Some(p) if !p.trim().is_empty() => pgp_key_value(p)?,
            _ => String::new(),
        };
        if !otp.is_empty() && !pgp.is_empty() {
            return Err(usage_error(
                "Error initializing: cannot specify both -otp and -pgp-key",
            ));
        }
        let m = sys_request(
            &client,
            Method::PUT,
            ATTEMPT,
            Some(&json!({"otp": otp, "pgp_key": pgp})),
        )
        .await
        .map_err(|e| remote_error(format!("Error initializing root generation: {e}")))?;
        return print_root_status(&cmd, &m);
    }
    let st = status().await?;
    if cmd.flags.bool("status") {
        return print_root_status(&cmd, &st);
    }
    if !flag(&st, "started") {
        return Err(usage_error(format!(
            "No root generation is in progress. Start a root generation by running\n\
             \"arca operator generate-root -init\".\n\n\
             If starting root generation using the OTP method and generating your own OTP,\n\
             the length of the OTP string needs to be {} characters in length.",
            num(&st, "otp_length")
        )));
    }
    let (key, nonce) = share_and_nonce(&cmd, &text(&st, "nonce"), "Operation")?;
    let m = sys_request(
        &client,
        Method::PUT,
        "sys/generate-root-token/update",
        Some(&json!({"key": key, "nonce": nonce})),
    )
    .await
    .map_err(|e| remote_error(format!("Error posting unseal key: {e}")))?;
    print_root_status(&cmd, &m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otp_round_trip_and_go_lists() {
        let otp = arca_core::new_otp(28);
        assert_eq!(otp.len(), 28);
        let token = "hvs.abcdefghijklmnopqrstuvwx";
        let x: Vec<u8> = token.bytes().zip(otp.bytes()).map(|(a, b)| a ^ b).collect();
        let enc = base64::engine::general_purpose::STANDARD_NO_PAD.encode(x);
        assert_eq!(decode_token(&enc, &otp).unwrap(), token);
        assert!(decode_token(&enc, "short").is_err());
        assert_eq!(go_list(&json!(["a", "b"])), "[a b]");
    }

    #[test]
    fn status_json_has_openbaos_fields() {
        let m = json!({"data": {"started": true, "nonce": "n", "t": 2, "n": 3, "progress": 1, "required": 3}});
        let v = rotate_status_json(m.as_object().unwrap());
        assert_eq!(v["pgp_fingerprints"], Value::Null);
        assert_eq!(v["verification_nonce"], "");
        assert!(v.get("keys").is_none());
        let r = root_status_json(json!({"otp_length": 28}).as_object().unwrap());
        assert_eq!(r["otp_length"], 28);
        assert_eq!(r["encoded_token"], "");
    }
}
