//! The `arca` command line: a Vault-compatible CLI plus `arca server`.
//!
//! Each command group lives in its own file (`kv.rs`, `token.rs`, …) and
//! exposes `run(argv) -> CmdResult`. This module holds what they share:
//! dispatch, the per-command flag declarations ([`Spec`]), the HTTP and
//! output flags every client command accepts, client construction from the
//! environment plus flags, and the printing of responses.
//!
//! Invariants (the Vault CLI's conventions):
//! * flags come after the (sub)command name and before positional arguments
//!   (see [`crate::flags`]);
//! * exit code 0 on success, 1 for local errors (bad flags, wrong argument
//!   count, unreadable files), 2 for errors returned by the server or the
//!   network; `status` exits 2 when the server is sealed;
//! * results go to stdout, errors and warnings to stderr;
//! * the `ARCA_*` spelling of every environment variable wins over `VAULT_*`.

/// `println!` to stdout that ignores write errors: a closed pipe
/// (`arca … | head`) must not turn into a panic.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// `print!` to stdout that ignores write errors (see `outln!`).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut o = std::io::stdout().lock();
        let _ = write!(o, $($arg)*);
        let _ = o.flush();
    }};
}

pub mod output;

mod audit;
mod auth;
mod ceremony;
mod complete;
mod data;
mod generic;
mod kv;
mod lease;
mod login;
mod operator;
mod path_help;
mod policy;
mod raft;
mod secrets;
mod server;
mod status;
mod token;
mod unsupported;

use std::io::{BufRead, IsTerminal, Read, Write};

use arca_client::{Client, ClientConfig, ClientError, Method, Secret};
use serde_json::{Map, Value};

use crate::flags::{self, Flag, FlagError, Parsed};
use output::Format;

/// A command's outcome when it did not simply succeed.
#[derive(Debug, PartialEq, Eq)]
pub struct Failure {
    /// Process exit code (0 for a help request, whose text goes to stdout).
    pub code: i32,
    /// What to print.
    pub message: String,
}

/// The result of a command: its exit code, or a failure to report.
pub type CmdResult = Result<i32, Failure>;

/// A local error (exit 1).
pub fn usage_error(msg: impl Into<String>) -> Failure {
    Failure {
        code: 1,
        message: msg.into(),
    }
}

/// A remote error (exit 2).
pub fn remote_error(msg: impl Into<String>) -> Failure {
    Failure {
        code: 2,
        message: msg.into(),
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        remote_error(e.to_string())
    }
}

/// Declaration of one command: its name, usage line, help and own flags.
pub struct Spec {
    /// Full command name, e.g. `"kv get"`.
    pub name: &'static str,
    /// Arguments part of the usage line, e.g. `"[options] KEY"`.
    pub usage: &'static str,
    /// Paragraph of help.
    pub help: &'static str,
    /// Flags of this command (the HTTP and output flags are added).
    pub flags: &'static [Flag],
    /// Whether the command talks to a server (adds the HTTP flags).
    pub http: bool,
    /// Whether the command accepts `-field`.
    pub field: bool,
}

/// Flags of every command that talks to a server.
pub const HTTP_FLAGS: &[Flag] = &[
    Flag::string(
        "address",
        "Address of the server ($ARCA_ADDR or $VAULT_ADDR).",
    )
    .default("https://127.0.0.1:8200"),
    Flag::string(
        "ca-cert",
        "PEM CA certificate file to verify the server ($VAULT_CACERT).",
    ),
    Flag::string(
        "ca-path",
        "Directory of PEM CA certificates ($VAULT_CAPATH).",
    ),
    Flag::string(
        "client-cert",
        "PEM client certificate for TLS authentication ($VAULT_CLIENT_CERT).",
    ),
    Flag::string(
        "client-key",
        "PEM private key of the client certificate ($VAULT_CLIENT_KEY).",
    ),
    Flag::bool(
        "tls-skip-verify",
        "Do not verify the server's certificate ($VAULT_SKIP_VERIFY). Insecure.",
    ),
    Flag::string(
        "namespace",
        "Namespace ($VAULT_NAMESPACE). Refused unless root: Arca has no namespaces.",
    ),
    Flag::string("ns", "Shortcut for -namespace."),
    Flag::bool("non-interactive", "Never prompt for input."),
    Flag::string(
        "wrap-ttl",
        "Wrap the response in a single-use token valid this long ($VAULT_WRAP_TTL).",
    ),
    Flag::string(
        "format",
        "Output format: table, json or raw ($VAULT_FORMAT).",
    )
    .default("table"),
];

/// The `-field` flag.
pub const FIELD_FLAG: Flag = Flag::string(
    "field",
    "Print only this field's value, without a trailing newline when piped.",
);

/// A parsed command line of one command, ready to run.
pub struct Cmd {
    /// Flags and positional arguments.
    pub flags: Parsed,
    /// Output format.
    pub format: Format,
    /// `-field` value, if any.
    pub field: Option<String>,
    spec_name: &'static str,
}

fn all_flags(spec: &Spec) -> Vec<Flag> {
    let mut v = spec.flags.to_vec();
    if spec.http {
        v.extend_from_slice(HTTP_FLAGS);
    }
    if spec.field {
        v.push(FIELD_FLAG);
    }
    v
}

/// Help text of a command.
pub fn help_text(spec: &Spec) -> String {
    let mut s = format!(
        "Usage: arca {} {}\n\n{}\n",
        spec.name,
        spec.usage,
        spec.help.trim()
    );
    if !spec.flags.is_empty() || spec.field {
        s.push_str("\nCommand Options:\n\n");
        let mut own = spec.flags.to_vec();
        if spec.field {
            own.push(FIELD_FLAG);
        }
        s.push_str(&flags::help(&own));
    }
    if spec.http {
        s.push_str("\nHTTP and Output Options:\n\n");
        s.push_str(&flags::help(HTTP_FLAGS));
    }
    s
}

/// Parses a command line against a spec; `-h` yields the help as a Failure with code 0.
pub fn parse(spec: &Spec, argv: &[String]) -> Result<Cmd, Failure> {
    let all = all_flags(spec);
    let parsed = match flags::parse(&all, argv) {
        Ok(p) => p,
        Err(FlagError::Help) => {
            return Err(Failure {
                code: 0,
                message: help_text(spec),
            })
        }
        Err(FlagError::Invalid(m)) => {
            return Err(usage_error(format!(
                "{m}\n\nRun \"arca {} -help\" for usage.",
                spec.name
            )))
        }
    };
    let misplaced = flags::misplaced_flags(&all, &parsed.args);
    if !misplaced.is_empty() {
        eprintln!(
            "WARNING! Flags must be provided before positional arguments. The following \
             arguments will not be parsed as flags: [{}]",
            misplaced.join(" ")
        );
    }
    let format_str = parsed
        .string("format")
        .map(str::to_string)
        .or_else(|| arca_client::env_var("FORMAT"))
        .unwrap_or_default();
    let format = Format::parse(&format_str).map_err(usage_error)?;
    let field = parsed
        .string("field")
        .filter(|f| !f.is_empty())
        .map(String::from);
    Ok(Cmd {
        flags: parsed,
        format,
        field,
        spec_name: spec.name,
    })
}

impl Cmd {
    /// Positional arguments.
    pub fn args(&self) -> &[String] {
        &self.flags.args
    }

    /// Checks the number of positional arguments, with the Vault CLI's wording.
    pub fn expect_args(&self, min: usize, max: usize) -> Result<(), Failure> {
        let n = self.args().len();
        let expected = if min == max {
            min.to_string()
        } else if max == usize::MAX {
            format!("at least {min}")
        } else {
            format!("{min}-{max}")
        };
        if n < min {
            Err(usage_error(format!(
                "Not enough arguments (expected {expected}, got {n})"
            )))
        } else if n > max {
            Err(usage_error(format!(
                "Too many arguments (expected {expected}, got {n})"
            )))
        } else {
            Ok(())
        }
    }

    /// The client configuration: environment, `~/.vault-token`, then flags.
    pub fn client_config(&self) -> ClientConfig {
        let mut cfg = ClientConfig::from_env();
        let f = &self.flags;
        if let Some(a) = f.string("address").filter(|a| !a.is_empty()) {
            cfg.address = a.to_string();
        }
        if let Some(v) = f.string("ca-cert") {
            cfg.tls.ca_cert = Some(v.into());
        }
        if let Some(v) = f.string("ca-path") {
            cfg.tls.ca_path = Some(v.into());
        }
        if let Some(v) = f.string("client-cert") {
            cfg.tls.client_cert = Some(v.into());
        }
        if let Some(v) = f.string("client-key") {
            cfg.tls.client_key = Some(v.into());
        }
        if f.is_set("tls-skip-verify") {
            cfg.tls.skip_verify = f.bool("tls-skip-verify");
        }
        if let Some(v) = f.string("namespace").or_else(|| f.string("ns")) {
            cfg.namespace = Some(v.to_string());
        }
        cfg
    }

    /// A client built from [`Cmd::client_config`].
    ///
    /// Refused (exit 2) when the command asks for what is missing: a
    /// namespace other than the root (the server has none), or response
    /// wrapping (the client cannot send `X-Vault-Wrap-TTL` yet).
    pub fn client(&self) -> Result<Client, Failure> {
        let cfg = self.client_config();
        if let Some(ns) = cfg.namespace.as_deref() {
            if !matches!(ns.trim().trim_matches('/'), "" | "root") {
                return Err(unsupported::no_namespaces(&format!("namespace \"{ns}\"")));
            }
        }
        let mut cfg = cfg;
        if let Some(w) = self.flags.string("wrap-ttl") {
            cfg.wrap_ttl = Some(w.to_string());
        }
        if let Some(w) = cfg.wrap_ttl.as_deref().filter(|w| !w.trim().is_empty()) {
            if arca_sdk::duration::parse(w.trim()).is_err() {
                return Err(usage_error(format!(
                    "invalid value {w:?} for flag -wrap-ttl: not a duration (\"60s\", \"5m\")"
                )));
            }
        }
        Client::with_config(cfg).map_err(|e| remote_error(e.to_string()))
    }

    /// Whether prompting is allowed.
    pub fn interactive(&self) -> bool {
        !self.flags.bool("non-interactive")
    }

    /// Prints a response in the chosen format (`OutputSecret`).
    pub fn print_secret(&self, secret: &Secret) -> CmdResult {
        match self.format {
            Format::Json => {
                // The Go client's Secret has no `mount_type`: not shown.
                let mut shown = secret.clone();
                shown.mount_type.clear();
                outln!("{}", output::json_text(&shown))
            }
            Format::Table | Format::Raw => {
                if let Some(w) = output::warnings_text(secret) {
                    eprint!("{w}");
                }
                let t = output::kv_table(output::secret_rows(secret));
                if !t.is_empty() {
                    outln!("{t}");
                }
            }
        }
        Ok(0)
    }

    /// Prints a response, or only its `-field` when one was asked for.
    pub fn print_secret_or_field(&self, secret: &Secret) -> CmdResult {
        match &self.field {
            Some(f) => self.print_field(output::secret_field(secret, f), f),
            None => self.print_secret(secret),
        }
    }

    /// Prints one field's value (`PrintRawField`); a missing field is exit 1.
    pub fn print_field(&self, v: Option<Value>, name: &str) -> CmdResult {
        match v {
            Some(v) if !v.is_null() => {
                output::print_raw(&output::field_text(&v, self.format));
                Ok(0)
            }
            _ => Err(usage_error(format!(
                "Field \"{name}\" not present in secret"
            ))),
        }
    }

    /// Prints a map (`OutputData`).
    pub fn print_map(&self, data: &Map<String, Value>) -> CmdResult {
        match self.format {
            Format::Json => outln!("{}", output::json_text(data)),
            Format::Table | Format::Raw => {
                let t = output::map_table(data);
                if !t.is_empty() {
                    outln!("{t}");
                }
            }
        }
        Ok(0)
    }

    /// Prints the keys of a list answer (`OutputList`).
    pub fn print_list(&self, secret: &Secret) -> CmdResult {
        match self.format {
            Format::Json => {
                let keys = secret.get("keys").cloned().unwrap_or(Value::Array(vec![]));
                outln!("{}", output::json_text(&keys));
            }
            Format::Table | Format::Raw => {
                if let Some(w) = output::warnings_text(secret) {
                    eprint!("{w}");
                }
                outln!("{}", output::list_table(&secret.list_keys()));
            }
        }
        Ok(0)
    }

    /// Prints a success message in table format only (JSON stays quiet).
    pub fn success(&self, msg: impl AsRef<str>) -> CmdResult {
        if self.format == Format::Table {
            outln!("{}", msg.as_ref());
        }
        Ok(0)
    }

    /// The command name, for messages.
    pub fn name(&self) -> &'static str {
        self.spec_name
    }
}

/// Sends a `sys/*` request whose answer is a bare JSON object (not the
/// `data` envelope), e.g. `sys/seal-status`. Error statuses become errors.
pub async fn sys_request(
    client: &Client,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Result<Map<String, Value>, ClientError> {
    let url = client.url(path);
    let resp = client.raw(method.clone(), path, body).await?;
    if !resp.is_success() {
        return Err(ClientError::from_response(
            method.as_str(),
            &url,
            resp.status,
            &resp.body,
        ));
    }
    if resp.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match resp.json::<Value>() {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) | Err(_) => Err(ClientError {
            status: resp.status,
            errors: vec!["response is not a JSON object".to_string()],
            method: method.to_string(),
            url,
            raw: false,
        }),
    }
}

/// `obj[key]`, else `obj.data[key]` (servers answer `sys/*` either way).
pub fn sys_field<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key)
        .or_else(|| obj.get("data").and_then(|d| d.get(key)))
}

/// Reads all of standard input.
pub fn read_stdin() -> Result<String, Failure> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(|e| usage_error(format!("Error reading from stdin: {e}")))?;
    Ok(s)
}

/// Prompts on stderr and reads one line from stdin, hiding the echo when
/// stdin is a terminal (via `stty`, so no extra dependency is needed).
pub fn prompt_hidden(prompt: &str) -> Result<String, Failure> {
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let tty = std::io::stdin().is_terminal();
    let stty = |arg: &str| {
        if tty {
            let _ = std::process::Command::new("stty")
                .arg(arg)
                .stdin(std::process::Stdio::inherit())
                .status();
        }
    };
    stty("-echo");
    let mut line = String::new();
    let res = std::io::stdin().lock().read_line(&mut line);
    stty("echo");
    if tty {
        eprintln!();
    }
    res.map_err(|e| usage_error(format!("Error reading input: {e}")))?;
    Ok(line.trim().to_string())
}

/// `strings.TrimSpace`, then one leading and one trailing slash removed.
pub fn sanitize_path(p: &str) -> String {
    let p = p.trim();
    let p = p.strip_prefix('/').unwrap_or(p);
    p.strip_suffix('/').unwrap_or(p).to_string()
}

/// Joins path segments like Go's `path.Join` (empty segments and duplicate
/// slashes dropped, no trailing slash).
pub fn path_join(parts: &[&str]) -> String {
    parts
        .iter()
        .flat_map(|p| p.split('/'))
        .filter(|s| !s.is_empty() && *s != ".")
        .collect::<Vec<_>>()
        .join("/")
}

fn version_text() -> String {
    format!("Arca v{}", env!("CARGO_PKG_VERSION"))
}

const COMMANDS: &[(&str, &str)] = &[
    ("status", "Print seal and HA status"),
    ("operator", "Initialize, unseal, seal and rotate the server"),
    ("login", "Authenticate locally"),
    ("read", "Read data and retrieve secrets"),
    ("write", "Write data, configuration and secrets"),
    ("list", "List data or secrets"),
    ("delete", "Delete secrets and configuration"),
    ("kv", "Interact with the key/value secrets engine"),
    ("secrets", "Enable, disable, list and tune secrets engines"),
    ("auth", "Enable, disable, list and tune auth methods"),
    ("audit", "Enable, disable and list audit devices"),
    ("lease", "Look up, renew and revoke leases"),
    ("path-help", "Retrieve API help for paths"),
    ("policy", "Manage policies"),
    ("token", "Create, look up, renew and revoke tokens"),
    ("print", "Print the CLI's runtime values (print token)"),
    ("namespace", "Namespaces (refused: Arca has none)"),
    ("unwrap", "Unwrap a wrapped secret"),
    ("server", "Start an Arca server"),
    (
        "completion",
        "Print the shell lines for completion (bash, zsh)",
    ),
    ("version", "Print the version"),
];

/// Help of a command group: `arca GROUP <subcommand>` and its subcommands.
pub fn group_help(group: &str, synopsis: &str, subs: &[(&str, &str)]) -> String {
    let width = subs.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    let mut s = format!(
        "Usage: arca {group} <subcommand> [options] [args]\n\n{synopsis}\n\nSubcommands:\n"
    );
    for (n, d) in subs {
        s.push_str(&format!("    {n:width$}    {d}\n"));
    }
    s
}

/// Dispatches a group's subcommand, or prints the group's help.
pub fn missing_subcommand(
    group: &str,
    synopsis: &str,
    subs: &[(&str, &str)],
    got: Option<&str>,
) -> Failure {
    let help = group_help(group, synopsis, subs);
    match got {
        None | Some("-h" | "-help" | "--help") => Failure {
            code: if got.is_some() { 0 } else { 1 },
            message: help,
        },
        Some(other) => usage_error(format!("Unknown subcommand \"{group} {other}\"\n\n{help}")),
    }
}

fn top_help() -> String {
    let mut s = String::from("Usage: arca <command> [args]\n\nCommands:\n");
    for (n, d) in COMMANDS {
        s.push_str(&format!("    {n:10}    {d}\n"));
    }
    s.push_str("\nShell completion: arca -autocomplete-install (bash; zsh with bashcompinit).\n");
    s
}

/// Runs the CLI on `args` (without the program name) and returns the exit code.
pub async fn run(args: Vec<String>) -> i32 {
    // The shell asking for completions (`complete -C arca arca`).
    if complete::answer_from_env() {
        return 0;
    }
    let Some((name, rest)) = args.split_first() else {
        eprint!("{}", top_help());
        return 1;
    };
    let result = match name.as_str() {
        "status" => status::run(rest).await,
        "operator" => operator::run(rest).await,
        "login" => login::run(rest).await,
        "read" => generic::read(rest).await,
        "write" => generic::write(rest).await,
        "list" => generic::list(rest).await,
        "delete" => generic::delete(rest).await,
        "kv" => kv::run(rest).await,
        "secrets" => secrets::run(rest).await,
        "policy" => policy::run(rest).await,
        "token" => token::run(rest).await,
        "auth" => auth::run(rest).await,
        "audit" => audit::run(rest).await,
        "lease" => lease::run(rest).await,
        "path-help" => path_help::run(rest).await,
        "print" => unsupported::print(rest).await,
        "namespace" | "namespaces" | "ns" => unsupported::namespace(rest).await,
        "unwrap" => unsupported::unwrap(rest).await,
        "server" => server::run(rest).await,
        "completion" => complete::print(rest),
        "-autocomplete-install" | "--autocomplete-install" => complete::install(false),
        "-autocomplete-uninstall" | "--autocomplete-uninstall" => complete::install(true),
        "version" | "-v" | "-version" | "--version" => {
            outln!("{}", version_text());
            Ok(0)
        }
        "help" | "-h" | "-help" | "--help" => {
            out!("{}", top_help());
            Ok(0)
        }
        other => Err(usage_error(format!(
            "Unknown command \"{other}\"\n\n{}",
            top_help()
        ))),
    };
    match result {
        Ok(code) => code,
        Err(Failure { code: 0, message }) => {
            out!("{message}");
            0
        }
        Err(Failure { code, message }) => {
            eprintln!("{}", message.trim_end());
            code
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: Spec = Spec {
        name: "kv get",
        usage: "[options] KEY",
        help: "Reads a secret.",
        flags: &[Flag::int("version", "Version to read.")],
        http: true,
        field: true,
    };

    fn argv(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn parses_common_and_own_flags() {
        let c = parse(
            &SPEC,
            &argv(&[
                "-format=json",
                "--field",
                "foo",
                "-version=2",
                "-address=http://h:1",
                "secret/x",
            ]),
        )
        .unwrap();
        assert_eq!(c.format, Format::Json);
        assert_eq!(c.field.as_deref(), Some("foo"));
        assert_eq!(c.flags.int("version"), Some(2));
        assert_eq!(c.args(), &["secret/x".to_string()]);
        assert_eq!(c.client_config().address, "http://h:1");
        assert!(c.expect_args(1, 1).is_ok());
        assert_eq!(
            c.expect_args(2, 2).unwrap_err().message,
            "Not enough arguments (expected 2, got 1)"
        );
        assert_eq!(
            c.expect_args(0, 0).unwrap_err().message,
            "Too many arguments (expected 0, got 1)"
        );
    }

    #[test]
    fn help_and_errors() {
        let e = parse(&SPEC, &argv(&["-h"])).err().unwrap();
        assert_eq!(e.code, 0);
        assert!(e.message.contains("Usage: arca kv get [options] KEY"));
        assert!(e.message.contains("-version=<int>"));
        assert!(e.message.contains("-address=<string>"));
        let e = parse(&SPEC, &argv(&["-bogus"])).err().unwrap();
        assert_eq!(e.code, 1);
        assert!(e
            .message
            .starts_with("flag provided but not defined: -bogus"));
        let e = parse(&SPEC, &argv(&["-format=xml", "p"])).err().unwrap();
        assert_eq!(e.code, 1);
    }

    #[test]
    fn paths() {
        assert_eq!(sanitize_path(" /secret/foo/ "), "secret/foo");
        assert_eq!(
            path_join(&["secret/", "data", "/foo/bar/"]),
            "secret/data/foo/bar"
        );
        assert_eq!(path_join(&["", "foo"]), "foo");
    }

    #[test]
    fn group_help_lists_subcommands() {
        let f = missing_subcommand(
            "kv",
            "KV commands.",
            &[("get", "Read"), ("put", "Write")],
            None,
        );
        assert_eq!(f.code, 1);
        assert!(f.message.contains("    get    Read"));
        let f = missing_subcommand("kv", "x", &[("get", "Read")], Some("nope"));
        assert!(f.message.starts_with("Unknown subcommand \"kv nope\""));
    }
}
