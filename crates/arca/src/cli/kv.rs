//! `arca kv …`: the key/value commands, for KV v1 and v2 mounts.
//!
//! Every command first asks `GET sys/internal/ui/mounts/<path>` which mount
//! serves the path and which KV version it runs, exactly like the Vault CLI:
//! a `404` means "assume v1 and use the path as given"; any other error
//! fails the command. For v2 the API prefix (`data/`, `metadata/`, `delete/`,
//! `undelete/`, `destroy/`) is inserted after the mount path.
//!
//! Paths are given either as `secret/foo` or as `-mount=secret foo`.

use serde_json::{json, Map, Value};

use arca_client::{Client, Method, Secret};

use super::data::{parse_args_data, parse_kv_flags};
use super::output::{self, Format};
use super::{
    missing_subcommand, parse, path_join, remote_error, sanitize_path, usage_error, Cmd, CmdResult,
    Failure, Spec,
};
use crate::duration;
use crate::flags::Flag;

pub(super) const SUBCOMMANDS: &[(&str, &str)] = &[
    ("get", "Retrieve data"),
    ("put", "Set or update data (replaces existing data)"),
    (
        "patch",
        "Update part of the data without overwriting the rest (v2)",
    ),
    ("delete", "Delete versions of data"),
    ("undelete", "Restore deleted versions (v2)"),
    ("destroy", "Permanently remove versions (v2)"),
    ("list", "List keys under a path"),
    (
        "metadata",
        "Read, write or delete a key's metadata (v2): get, put, delete",
    ),
];

const MOUNT: Flag = Flag::string(
    "mount",
    "Mount path of the KV engine; the argument is then the secret path inside it.",
);
const VERSIONS: Flag = Flag::list(
    "versions",
    "Versions to act on, comma separated or repeated (v2 only).",
);
const CAS: Flag = Flag::int(
    "cas",
    "Check-and-set: write only if the current version matches (0 = only if absent). Unset by default.",
);

/// Dispatches `arca kv <subcommand>`.
pub async fn run(argv: &[String]) -> CmdResult {
    let rest = argv.get(1..).unwrap_or(&[]);
    match argv.first().map(String::as_str) {
        Some("get") => get(rest).await,
        Some("put") => put(rest).await,
        Some("patch") => patch(rest).await,
        Some("delete") => delete(rest).await,
        Some("undelete") => versions_op(rest, VersionsOp::Undelete).await,
        Some("destroy") => versions_op(rest, VersionsOp::Destroy).await,
        Some("list") => list(rest).await,
        Some("metadata") => metadata(rest).await,
        other => Err(missing_subcommand(
            "kv",
            "Interact with the key/value secrets engine (v1 and v2).",
            SUBCOMMANDS,
            other,
        )),
    }
}

/// Where a KV command's path lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvPath {
    /// Mount path reported by the server (`secret/`), empty when unknown.
    pub mount_path: String,
    /// Whether the mount is KV v2.
    pub v2: bool,
    /// Path as given (with the mount prepended for `-mount` syntax on v2).
    pub partial: String,
    /// `-mount` value, sanitized, if the flag was used.
    pub mount_flag: Option<String>,
}

impl KvPath {
    /// The API path of the secret with `prefix` (`data`, `metadata`, …) for
    /// v2; the plain path for v1.
    pub fn api_path(&self, prefix: &str) -> String {
        if self.v2 {
            add_prefix_to_kv_path(&self.partial, &self.mount_path, prefix)
        } else {
            match &self.mount_flag {
                Some(flag) => {
                    let mount = if self.mount_path.is_empty() {
                        flag.as_str()
                    } else {
                        self.mount_path.as_str()
                    };
                    path_join(&[mount, &self.partial])
                }
                None => self.partial.clone(),
            }
        }
    }
}

/// Inserts `api_prefix` after the mount: `secret/foo` → `secret/data/foo`
/// (the Vault CLI's `addPrefixToKVPath`, including its namespace handling).
pub fn add_prefix_to_kv_path(path: &str, mount_path: &str, api_prefix: &str) -> String {
    if path == mount_path || path == mount_path.trim_end_matches('/') {
        return path_join(&[mount_path, api_prefix]);
    }
    let mut mount = mount_path.to_string();
    let mut suffix = path
        .strip_prefix(mount.as_str())
        .unwrap_or(path)
        .to_string();
    loop {
        if suffix != path {
            break;
        }
        let Some((_, rest)) = mount.split_once('/') else {
            break;
        };
        if rest.is_empty() {
            break;
        }
        mount = rest.trim_end_matches('/').to_string();
        suffix = suffix
            .strip_prefix(mount.as_str())
            .unwrap_or(&suffix)
            .to_string();
    }
    path_join(&[&mount, api_prefix, &suffix])
}

/// Asks the server which mount serves `path` and its KV version.
pub async fn preflight(client: &Client, path: &str) -> Result<(String, bool), Failure> {
    let p = format!("sys/internal/ui/mounts/{path}");
    // Never wrapped: the command's own request is (`-wrap-ttl`).
    let resp = client.without_wrapping().raw(Method::GET, &p, None).await?;
    if resp.status == 404 {
        return Ok((String::new(), false));
    }
    if !resp.is_success() {
        return Err(arca_client::ClientError::from_response(
            "GET",
            &client.url(&p),
            resp.status,
            &resp.body,
        )
        .into());
    }
    let secret: Secret = resp
        .json()
        .map_err(|e| remote_error(format!("invalid answer from pre-flight request: {e}")))?;
    Ok(mount_info(&secret))
}

/// `(data.path, data.options.version == "2")` of a preflight answer.
pub fn mount_info(secret: &Secret) -> (String, bool) {
    let mount = secret.get_str("path").unwrap_or_default().to_string();
    let version = secret
        .get("options")
        .and_then(|o| o.get("version"))
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .unwrap_or_default();
    (mount, version == "2")
}

async fn resolve(cmd: &Cmd, client: &Client, arg: &str) -> Result<KvPath, Failure> {
    let mount_flag = cmd
        .flags
        .string("mount")
        .map(sanitize_path)
        .filter(|m| !m.is_empty());
    let mut partial = sanitize_path(arg);
    let (mount_path, v2) = match &mount_flag {
        Some(m) => {
            let (mount_path, v2) = preflight(client, m).await?;
            if v2 {
                partial = path_join(&[&mount_path, &partial]);
            }
            (mount_path, v2)
        }
        None => preflight(client, &partial).await?,
    };
    Ok(KvPath {
        mount_path,
        v2,
        partial,
        mount_flag,
    })
}

fn versions(cmd: &Cmd) -> Vec<Value> {
    cmd.flags
        .list("versions")
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| Value::String(v.to_string()))
        .collect()
}

fn kv_data(cmd: &Cmd, from: usize) -> Result<Map<String, Value>, Failure> {
    parse_args_data(&cmd.args()[from..], &mut std::io::stdin())
        .map_err(|e| usage_error(format!("Failed to parse K=V data: {e}")))
}

/// Prints the answer of a v2 write: path header, then the version metadata.
fn print_write_result(cmd: &Cmd, kv: &KvPath, full: &str, secret: Option<Secret>) -> CmdResult {
    let Some(secret) = secret else {
        return cmd.success(format!("Success! Data written to: {full}"));
    };
    if let Some(f) = &cmd.field {
        return cmd.print_field(output::secret_field(&secret, f), f);
    }
    if cmd.format == Format::Table && kv.v2 {
        outln!("{}", output::pad_equal_signs("Secret Path", full.len()));
        outln!("{full}\n");
        let meta = secret.data.clone().unwrap_or_default();
        outln!("{}", output::header_for_map("Metadata", &meta));
        return cmd.print_map(&meta);
    }
    cmd.print_secret(&secret)
}

const GET: Spec = Spec {
    name: "kv get",
    usage: "[options] KEY",
    help: "Retrieves the value at KEY. For KV v2, -version selects a version.",
    flags: &[
        MOUNT,
        Flag::int("version", "Version to read (v2). Latest by default."),
    ],
    http: true,
    field: true,
};

async fn get(argv: &[String]) -> CmdResult {
    let cmd = parse(&GET, argv)?;
    cmd.expect_args(1, 1)?;
    let client = cmd.client()?;
    let kv = resolve(&cmd, &client, &cmd.args()[0]).await?;
    let full = kv.api_path("data");
    let version = cmd
        .flags
        .int("version")
        .filter(|v| *v > 0)
        .map(|v| v.to_string());
    let query: Vec<(&str, &str)> = match (&version, kv.v2) {
        (Some(v), true) => vec![("version", v.as_str())],
        _ => vec![],
    };
    let secret = client
        .read_with_query(&full, &query)
        .await
        .map_err(|e| remote_error(format!("Error reading {full}: {e}")))?
        .ok_or_else(|| remote_error(format!("No value found at {full}")))?;
    if let Some(field) = &cmd.field {
        if !kv.v2 {
            return cmd.print_field(output::secret_field(&secret, field), field);
        }
        return match secret.get("data") {
            Some(Value::Object(data)) => {
                if field == "data" && !data.contains_key("data") {
                    cmd.print_field(secret.get("data").cloned(), field)
                } else {
                    cmd.print_field(data.get(field).cloned(), field)
                }
            }
            _ => Err(remote_error(format!("No data found at {full}"))),
        };
    }
    if cmd.format != Format::Table || secret.wrap_info.is_some() {
        return cmd.print_secret(&secret);
    }
    if let Some(w) = output::warnings_text(&secret) {
        eprint!("{w}");
    }
    out!("{}", kv_get_table(&kv, &full, &secret));
    Ok(0)
}

/// The table `kv get` prints: path header (v2), metadata, then data.
pub fn kv_get_table(kv: &KvPath, full: &str, secret: &Secret) -> String {
    let mut out = String::new();
    if kv.v2 {
        out.push_str(&format!(
            "{}\n{full}\n\n",
            output::pad_equal_signs("Secret Path", full.len())
        ));
    }
    if let Some(Value::Object(meta)) = secret.get("metadata") {
        out.push_str(&format!("{}\n", output::header_for_map("Metadata", meta)));
        out.push_str(&format!("{}\n\n", output::map_table(meta)));
    }
    let data = if kv.v2 {
        match secret.get("data") {
            Some(Value::Object(d)) => Some(d.clone()),
            _ => None,
        }
    } else {
        secret.data.clone()
    };
    if let Some(data) = data {
        out.push_str(&format!("{}\n", output::header_for_map("Data", &data)));
        let t = output::map_table(&data);
        if !t.is_empty() {
            out.push_str(&format!("{t}\n"));
        }
    }
    out
}

const PUT: Spec = Spec {
    name: "kv put",
    usage: "[options] KEY [DATA K=V...]",
    help: "Writes the data to KEY, replacing what was there. Values: key=value,\n\
           key=@file, key=- (stdin); a lone - reads a JSON object from stdin.",
    flags: &[MOUNT, CAS],
    http: true,
    field: true,
};

async fn put(argv: &[String]) -> CmdResult {
    let cmd = parse(&PUT, argv)?;
    match cmd.args().len() {
        0 => return Err(usage_error("Not enough arguments (expected >1, got 0)")),
        1 => return Err(usage_error("Must supply data")),
        _ => {}
    }
    let data = kv_data(&cmd, 1)?;
    let client = cmd.client()?;
    let kv = resolve(&cmd, &client, &cmd.args()[0]).await?;
    let full = kv.api_path("data");
    let body = if kv.v2 {
        let mut options = Map::new();
        if let Some(cas) = cmd.flags.int("cas").filter(|c| *c > -1) {
            options.insert("cas".into(), json!(cas));
        }
        json!({"data": data, "options": options})
    } else {
        Value::Object(data)
    };
    let secret = client
        .write(&full, &body)
        .await
        .map_err(|e| remote_error(format!("Error writing data to {full}: {e}")))?;
    print_write_result(&cmd, &kv, &full, secret)
}

const PATCH: Spec = Spec {
    name: "kv patch",
    usage: "[options] KEY [DATA K=V...]",
    help: "Updates the given fields of the secret at KEY (KV v2 only), keeping the\n\
           others. Sends a JSON merge patch; if the server answers 405, falls back to\n\
           read-then-write with check-and-set.",
    flags: &[
        MOUNT,
        CAS,
        Flag::string(
            "method",
            "patch (PATCH request only) or rw (read, then write). Both by default.",
        ),
        Flag::list("remove-data", "Key to remove from the secret (repeatable)."),
    ],
    http: true,
    field: true,
};

async fn patch(argv: &[String]) -> CmdResult {
    let cmd = parse(&PATCH, argv)?;
    let removals = cmd.flags.list("remove-data");
    match cmd.args().len() {
        0 => return Err(usage_error("Not enough arguments (expected >1, got 0)")),
        1 if removals.is_empty() => return Err(usage_error("Must supply data")),
        _ => {}
    }
    let mut data = kv_data(&cmd, 1)?;
    for k in removals {
        data.insert(k, Value::Null);
    }
    let method = cmd.flags.string_or("method", "").to_string();
    if !matches!(method.as_str(), "" | "patch" | "rw") {
        return Err(usage_error(format!(
            "Unsupported method provided to -method flag: {method}"
        )));
    }
    let client = cmd.client()?;
    let kv = resolve(&cmd, &client, &cmd.args()[0]).await?;
    if !kv.v2 {
        return Err(remote_error(
            "K/V engine mount must be version 2 for patch support",
        ));
    }
    let full = kv.api_path("data");
    let cas = cmd.flags.int("cas").filter(|c| *c > -1);
    let secret = if method == "rw" {
        read_write_patch(&client, &full, data, cas).await?
    } else {
        let mut options = Map::new();
        if let Some(c) = cas {
            options.insert("cas".into(), json!(c));
        }
        let body = json!({"data": data.clone(), "options": options});
        match client.patch(&full, &body).await {
            Ok(s) => s,
            Err(e) if e.status == 405 && method.is_empty() => {
                read_write_patch(&client, &full, data, cas).await?
            }
            Err(e) if e.status == 404 => {
                return Err(remote_error(format!("No value found at {full}")))
            }
            Err(e) => return Err(remote_error(format!("Error writing data to {full}: {e}"))),
        }
    };
    print_write_result(&cmd, &kv, &full, secret)
}

/// Patch by reading the current version and writing the merged data with
/// check-and-set on that version (the Vault CLI's `-method=rw`).
async fn read_write_patch(
    client: &Client,
    full: &str,
    patch: Map<String, Value>,
    cas: Option<i64>,
) -> Result<Option<Secret>, Failure> {
    let current = client
        .read(full)
        .await
        .map_err(|e| remote_error(format!("Error doing pre-read at {full}: {e}")))?
        .ok_or_else(|| remote_error(format!("No value found at {full}")))?;
    let Some(Value::Object(mut data)) = current.get("data").cloned() else {
        return Err(remote_error(format!("No data found at {full}")));
    };
    let version = current
        .get("metadata")
        .and_then(|m| m.get("version"))
        .and_then(Value::as_i64);
    merge_patch(&mut data, patch);
    let cas = cas.or(version);
    let mut options = Map::new();
    if let Some(c) = cas {
        options.insert("cas".into(), json!(c));
    }
    client
        .write(full, &json!({"data": data, "options": options}))
        .await
        .map_err(|e| remote_error(format!("Error writing data to {full}: {e}")))
}

/// RFC 7386 merge of `patch` into `target`.
pub fn merge_patch(target: &mut Map<String, Value>, patch: Map<String, Value>) {
    for (k, v) in patch {
        match v {
            Value::Null => {
                target.remove(&k);
            }
            Value::Object(p) => {
                let entry = target.entry(k).or_insert_with(|| Value::Object(Map::new()));
                if !entry.is_object() {
                    *entry = Value::Object(Map::new());
                }
                if let Value::Object(t) = entry {
                    merge_patch(t, p);
                }
            }
            other => {
                target.insert(k, other);
            }
        }
    }
}

const DELETE: Spec = Spec {
    name: "kv delete",
    usage: "[options] KEY",
    help: "Deletes the data at KEY. For KV v2 this soft-deletes the latest version,\n\
           or the versions given with -versions.",
    flags: &[MOUNT, VERSIONS],
    http: true,
    field: false,
};

async fn delete(argv: &[String]) -> CmdResult {
    let cmd = parse(&DELETE, argv)?;
    cmd.expect_args(1, 1)?;
    let client = cmd.client()?;
    let kv = resolve(&cmd, &client, &cmd.args()[0]).await?;
    let full = kv.api_path("data");
    let vs = versions(&cmd);
    let res = if kv.v2 && !vs.is_empty() {
        let p = kv.api_path("delete");
        client.write(&p, &json!({"versions": vs})).await
    } else {
        client.delete(&full).await
    };
    res.map_err(|e| remote_error(format!("Error deleting {full}: {e}")))?;
    cmd.success(format!("Success! Data deleted (if it existed) at: {full}"))
}

#[derive(Clone, Copy)]
enum VersionsOp {
    Undelete,
    Destroy,
}

const UNDELETE: Spec = Spec {
    name: "kv undelete",
    usage: "[options] KEY",
    help: "Restores the soft-deleted versions given with -versions (KV v2 only).",
    flags: &[MOUNT, VERSIONS],
    http: true,
    field: false,
};

const DESTROY: Spec = Spec {
    name: "kv destroy",
    usage: "[options] KEY",
    help: "Permanently removes the versions given with -versions (KV v2 only).",
    flags: &[MOUNT, VERSIONS],
    http: true,
    field: false,
};

async fn versions_op(argv: &[String], op: VersionsOp) -> CmdResult {
    let (spec, word, prefix) = match op {
        VersionsOp::Undelete => (&UNDELETE, "undelete", "undelete"),
        VersionsOp::Destroy => (&DESTROY, "destroy", "destroy"),
    };
    let cmd = parse(spec, argv)?;
    cmd.expect_args(1, 1)?;
    let vs = versions(&cmd);
    if vs.is_empty() {
        return Err(usage_error(format!(
            "No versions provided, use the \"-versions\" flag to specify the version to {word}."
        )));
    }
    let client = cmd.client()?;
    let kv = resolve(&cmd, &client, &cmd.args()[0]).await?;
    if !kv.v2 {
        let what = match op {
            VersionsOp::Undelete => "Undelete",
            VersionsOp::Destroy => "Destroy",
        };
        return Err(usage_error(format!("{what} not supported on KV Version 1")));
    }
    let p = kv.api_path(prefix);
    let secret = client
        .write(&p, &json!({"versions": vs}))
        .await
        .map_err(|e| remote_error(format!("Error writing data to {p}: {e}")))?;
    match secret {
        Some(s) if s.has_content() => cmd.print_secret(&s),
        _ => cmd.success(format!("Success! Data written to: {p}")),
    }
}

const LIST: Spec = Spec {
    name: "kv list",
    usage: "[options] PATH",
    help: "Lists the keys under PATH.",
    flags: &[MOUNT],
    http: true,
    field: false,
};

async fn list(argv: &[String]) -> CmdResult {
    let cmd = parse(&LIST, argv)?;
    cmd.expect_args(0, 1)?;
    let arg = cmd.args().first().cloned().unwrap_or_default();
    if arg.is_empty() && cmd.flags.string("mount").is_none() {
        return Err(usage_error("Not enough arguments (expected 1, got 0)"));
    }
    let client = cmd.client()?;
    let kv = resolve(&cmd, &client, &arg).await?;
    let full = kv.api_path("metadata");
    let secret = client
        .list(&full)
        .await
        .map_err(|e| remote_error(format!("Error listing {full}: {e}")))?;
    match secret {
        Some(s) if s.get("keys").is_some() => cmd.print_list(&s),
        Some(_) => Err(remote_error(format!("No entries found at {full}"))),
        None => Err(remote_error(format!("No value found at {full}"))),
    }
}

const METADATA_SUBCOMMANDS: &[(&str, &str)] = &[
    ("get", "Read a key's metadata and versions"),
    ("put", "Write a key's metadata settings"),
    ("delete", "Delete a key's metadata and all its versions"),
];

async fn metadata(argv: &[String]) -> CmdResult {
    let rest = argv.get(1..).unwrap_or(&[]);
    match argv.first().map(String::as_str) {
        Some("get") => metadata_get(rest).await,
        Some("put") => metadata_put(rest).await,
        Some("delete") => metadata_delete(rest).await,
        other => Err(missing_subcommand(
            "kv metadata",
            "Interact with the metadata of KV v2 secrets.",
            METADATA_SUBCOMMANDS,
            other,
        )),
    }
}

const METADATA_GET: Spec = Spec {
    name: "kv metadata get",
    usage: "[options] KEY",
    help: "Reads the metadata of KEY and of each of its versions (KV v2 only).",
    flags: &[MOUNT],
    http: true,
    field: false,
};

async fn metadata_get(argv: &[String]) -> CmdResult {
    let cmd = parse(&METADATA_GET, argv)?;
    cmd.expect_args(1, 1)?;
    let client = cmd.client()?;
    let kv = resolve(&cmd, &client, &cmd.args()[0]).await?;
    if !kv.v2 {
        return Err(usage_error("Metadata not supported on KV Version 1"));
    }
    let full = kv.api_path("metadata");
    let secret = client
        .read(&full)
        .await
        .map_err(|e| remote_error(format!("Error reading {full}: {e}")))?
        .ok_or_else(|| remote_error(format!("No value found at {full}")))?;
    if cmd.format != Format::Table {
        return cmd.print_secret(&secret);
    }
    let Some(Value::Object(versions)) = secret.get("versions").cloned() else {
        return Err(remote_error(format!("No value found at {full}")));
    };
    out!("{}", metadata_table(&full, &secret, &versions));
    Ok(0)
}

/// The table `kv metadata get` prints: path, metadata, then each version.
pub fn metadata_table(full: &str, secret: &Secret, versions: &Map<String, Value>) -> String {
    let mut meta = secret.data.clone().unwrap_or_default();
    meta.remove("versions");
    let mut out = format!(
        "{}\n{full}\n\n{}\n",
        output::pad_equal_signs("Metadata Path", full.len()),
        output::header_for_map("Metadata", &meta)
    );
    out.push_str(&output::map_table(&meta));
    out.push('\n');
    let mut keys: Vec<(u64, &String)> = versions
        .keys()
        .filter_map(|k| k.parse().ok().map(|n| (n, k)))
        .collect();
    keys.sort();
    for (n, k) in keys {
        if let Some(Value::Object(v)) = versions.get(k) {
            out.push_str(&format!(
                "\n{}\n{}\n",
                output::header_for_map(&format!("Version {n}"), v),
                output::map_table(v)
            ));
        }
    }
    out
}

const METADATA_PUT: Spec = Spec {
    name: "kv metadata put",
    usage: "[options] KEY",
    help: "Writes the metadata settings of KEY (KV v2 only).",
    flags: &[
        MOUNT,
        Flag::int(
            "max-versions",
            "Number of versions to keep (0 = the mount's setting).",
        ),
        Flag::bool(
            "cas-required",
            "Require check-and-set on every write of this key.",
        ),
        Flag::string(
            "delete-version-after",
            "Delete versions after this duration (e.g. 48h).",
        ),
        Flag::list("custom-metadata", "Custom metadata k=v (repeatable)."),
    ],
    http: true,
    field: false,
};

async fn metadata_put(argv: &[String]) -> CmdResult {
    let cmd = parse(&METADATA_PUT, argv)?;
    cmd.expect_args(1, 1)?;
    let mut body = Map::new();
    if let Some(n) = cmd.flags.int("max-versions").filter(|n| *n >= 0) {
        body.insert("max_versions".into(), json!(n));
    }
    if cmd.flags.is_set("cas-required") {
        body.insert("cas_required".into(), json!(cmd.flags.bool("cas-required")));
    }
    if let Some(d) = cmd.flags.string("delete-version-after") {
        let secs = duration::parse_seconds(d)
            .map_err(|e| usage_error(format!("invalid -delete-version-after: {e}")))?;
        body.insert("delete_version_after".into(), json!(format!("{secs}s")));
    }
    let custom = cmd.flags.list("custom-metadata");
    if !custom.is_empty() {
        let m = parse_kv_flags(&custom, "custom-metadata").map_err(usage_error)?;
        body.insert("custom_metadata".into(), Value::Object(m));
    }
    let client = cmd.client()?;
    let kv = resolve(&cmd, &client, &cmd.args()[0]).await?;
    if !kv.v2 {
        return Err(usage_error("Metadata not supported on KV Version 1"));
    }
    let full = kv.api_path("metadata");
    client
        .write(&full, &Value::Object(body))
        .await
        .map_err(|e| remote_error(format!("Error writing data to {full}: {e}")))?;
    cmd.success(format!("Success! Data written to: {full}"))
}

const METADATA_DELETE: Spec = Spec {
    name: "kv metadata delete",
    usage: "[options] KEY",
    help: "Deletes KEY's metadata and every version of it (KV v2 only).",
    flags: &[MOUNT],
    http: true,
    field: false,
};

async fn metadata_delete(argv: &[String]) -> CmdResult {
    let cmd = parse(&METADATA_DELETE, argv)?;
    cmd.expect_args(1, 1)?;
    let client = cmd.client()?;
    let kv = resolve(&cmd, &client, &cmd.args()[0]).await?;
    if !kv.v2 {
        return Err(usage_error("Metadata not supported on KV Version 1"));
    }
    let full = kv.api_path("metadata");
    client
        .delete(&full)
        .await
        .map_err(|e| remote_error(format!("Error deleting {full}: {e}")))?;
    cmd.success(format!("Success! Data deleted (if it existed) at: {full}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(mount: &str, v2: bool, partial: &str, flag: Option<&str>) -> KvPath {
        KvPath {
            mount_path: mount.into(),
            v2,
            partial: partial.into(),
            mount_flag: flag.map(String::from),
        }
    }

    #[test]
    fn prefixes() {
        assert_eq!(
            add_prefix_to_kv_path("secret/foo", "secret/", "data"),
            "secret/data/foo"
        );
        assert_eq!(
            add_prefix_to_kv_path("secret/a/b", "secret/", "metadata"),
            "secret/metadata/a/b"
        );
        assert_eq!(
            add_prefix_to_kv_path("secret", "secret/", "metadata"),
            "secret/metadata"
        );
        assert_eq!(
            add_prefix_to_kv_path("secret/", "secret/", "metadata"),
            "secret/metadata"
        );
        assert_eq!(
            add_prefix_to_kv_path("kv/team/x", "kv/team/", "data"),
            "kv/team/data/x"
        );
        // Namespaced mount path that the given path does not include.
        assert_eq!(
            add_prefix_to_kv_path("secret/foo", "ns1/secret/", "data"),
            "secret/data/foo"
        );
    }

    #[test]
    fn api_paths() {
        assert_eq!(
            kv("secret/", true, "secret/foo", None).api_path("data"),
            "secret/data/foo"
        );
        assert_eq!(
            kv("", false, "secret/foo", None).api_path("data"),
            "secret/foo"
        );
        assert_eq!(
            kv("kv/", false, "foo", Some("kv")).api_path("data"),
            "kv/foo"
        );
        assert_eq!(kv("", false, "foo", Some("kv")).api_path("data"), "kv/foo");
        assert_eq!(
            kv("secret/", true, "secret/foo", Some("secret")).api_path("destroy"),
            "secret/destroy/foo"
        );
    }

    #[test]
    fn preflight_answer() {
        let s: Secret = serde_json::from_value(json!({"data": {
            "path": "secret/", "type": "kv", "options": {"version": "2"}
        }}))
        .unwrap();
        assert_eq!(mount_info(&s), ("secret/".to_string(), true));
        let s: Secret =
            serde_json::from_value(json!({"data": {"path": "kv/", "options": null}})).unwrap();
        assert_eq!(mount_info(&s), ("kv/".to_string(), false));
    }

    #[test]
    fn merge() {
        let mut t = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": 4});
        let p = json!({"a": 9, "b": {"c": null, "x": 1}, "e": null, "f": "new"});
        let Value::Object(tm) = &mut t else { panic!() };
        let Value::Object(pm) = p else { panic!() };
        merge_patch(tm, pm);
        assert_eq!(t, json!({"a": 9, "b": {"d": 3, "x": 1}, "f": "new"}));
    }

    #[test]
    fn get_table_matches_vault() {
        let s: Secret = serde_json::from_value(json!({"data": {
            "data": {"passcode": "my-long-passcode"},
            "metadata": {"created_time": "2022-06-15T20:14:17.107852Z", "custom_metadata": null,
                         "deletion_time": "", "destroyed": false, "version": 1}
        }}))
        .unwrap();
        let t = kv_get_table(
            &kv("secret/", true, "secret/creds", None),
            "secret/data/creds",
            &s,
        );
        let expected = "\
== Secret Path ==
secret/data/creds

======= Metadata =======
Key                Value
---                -----
created_time       2022-06-15T20:14:17.107852Z
custom_metadata    <nil>
deletion_time      n/a
destroyed          false
version            1

====== Data ======
Key         Value
---         -----
passcode    my-long-passcode
";
        assert_eq!(t, expected);
    }

    #[test]
    fn v1_get_table() {
        let s: Secret = serde_json::from_value(json!({"data": {"foo": "bar"}})).unwrap();
        let t = kv_get_table(&kv("", false, "kv/x", None), "kv/x", &s);
        assert_eq!(t, "=== Data ===\nKey    Value\n---    -----\nfoo    bar\n");
    }

    #[test]
    fn metadata_table_lists_versions() {
        let s: Secret = serde_json::from_value(json!({"data": {
            "current_version": 2, "max_versions": 0,
            "versions": {"10": {"destroyed": false}, "2": {"destroyed": true}}
        }}))
        .unwrap();
        let Some(Value::Object(v)) = s.get("versions").cloned() else {
            panic!()
        };
        let t = metadata_table("secret/metadata/creds", &s, &v);
        assert!(
            t.starts_with("=== Metadata Path ===\nsecret/metadata/creds\n\n"),
            "{t}"
        );
        assert!(!t.contains("\nversions "), "{t}");
        let i2 = t.find("Version 2 ").unwrap();
        let i10 = t.find("Version 10 ").unwrap();
        assert!(i2 < i10);
    }
}
