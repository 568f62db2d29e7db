//! `arca server`: start a server from a configuration file, or a dev server.
//!
//! * `arca server -config=FILE [-log-level=L]` loads the file with
//!   [`crate::config::load`] (refusing a bad file with the file, line and
//!   field in the message) and calls [`crate::server::run`];
//! * `arca server -dev [-dev-root-token-id=X] [-dev-listen-address=A]`
//!   calls [`crate::server::run_dev`]: in-memory, initialized, unsealed, with
//!   a known root token. `ARCA_`/`VAULT_DEV_ROOT_TOKEN_ID` and
//!   `ARCA_`/`VAULT_DEV_LISTEN_ADDRESS` give defaults for the two flags.
//!
//! Invariant: exactly one of `-config` and `-dev` is given.

use super::{parse, usage_error, Cmd, CmdResult, Failure, Spec};
use crate::config::{self, Config};
use crate::flags::Flag;
use crate::server::DevOptions;

const SERVER: Spec = Spec {
    name: "server",
    usage: "[options]",
    help: "Starts an Arca server, from -config=FILE (Vault's HCL format) or in dev\n\
           mode (-dev: in-memory, unsealed, root token printed; never for production).",
    flags: &[
        Flag::list("config", "Path to the HCL configuration file."),
        Flag::bool(
            "dev",
            "Start a dev server: in-memory, initialized and unsealed.",
        ),
        Flag::string(
            "dev-root-token-id",
            "Root token of the dev server ($VAULT_DEV_ROOT_TOKEN_ID). Random by default.",
        ),
        Flag::string(
            "dev-listen-address",
            "Address of the dev server ($VAULT_DEV_LISTEN_ADDRESS).",
        )
        .default("127.0.0.1:8200"),
        Flag::string(
            "log-level",
            "trace, debug, info, warn or error ($VAULT_LOG_LEVEL); overrides the file.",
        ),
    ],
    http: false,
    field: false,
};

/// What `arca server` was asked to start.
pub enum Mode {
    /// `-config=FILE`.
    Config(Box<Config>),
    /// `-dev`.
    Dev(DevOptions),
}

fn log_level(cmd: &Cmd) -> Result<Option<String>, Failure> {
    let raw = cmd
        .flags
        .string("log-level")
        .map(String::from)
        .or_else(|| arca_client::env_var("LOG_LEVEL"));
    let Some(raw) = raw else { return Ok(None) };
    match raw.to_ascii_lowercase().as_str() {
        l @ ("trace" | "debug" | "info" | "warn" | "error") => Ok(Some(l.to_string())),
        "warning" => Ok(Some("warn".to_string())),
        _ => Err(usage_error(format!(
            "unknown log level {raw:?} (trace, debug, info, warn, error)"
        ))),
    }
}

/// Decides the mode from the parsed command line (no I/O besides reading the config file).
pub fn mode(cmd: &Cmd) -> Result<Mode, Failure> {
    cmd.expect_args(0, 0)?;
    let configs = cmd.flags.list("config");
    let dev = cmd.flags.bool("dev");
    let level = log_level(cmd)?;
    match (dev, configs.as_slice()) {
        (true, []) => Ok(Mode::Dev(DevOptions {
            listen_address: cmd
                .flags
                .string("dev-listen-address")
                .map(String::from)
                .or_else(|| arca_client::env_var("DEV_LISTEN_ADDRESS"))
                .unwrap_or_else(|| config::DEFAULT_LISTEN_ADDRESS.to_string()),
            root_token_id: cmd
                .flags
                .string("dev-root-token-id")
                .map(String::from)
                .or_else(|| arca_client::env_var("DEV_ROOT_TOKEN_ID"))
                .filter(|t| !t.is_empty()),
            log_level: level.unwrap_or_else(|| "info".to_string()),
        })),
        (true, _) => Err(usage_error("-dev and -config cannot be used together")),
        (false, []) => Err(usage_error(
            "A configuration file must be given with -config=FILE, or use -dev",
        )),
        (false, [file]) => {
            let mut cfg = config::load(std::path::Path::new(file))
                .map_err(|e| usage_error(format!("Error loading configuration: {e}")))?;
            if let Some(l) = level {
                cfg.log_level = l;
            }
            Ok(Mode::Config(Box::new(cfg)))
        }
        (false, _) => Err(usage_error("Only one -config file is supported")),
    }
}

/// `arca server`.
pub async fn run(argv: &[String]) -> CmdResult {
    let cmd = parse(&SERVER, argv)?;
    let result = match mode(&cmd)? {
        Mode::Dev(opts) => crate::server::run_dev(opts).await,
        Mode::Config(cfg) => crate::server::run(*cfg).await,
    };
    result.map(|()| 0).map_err(|e| Failure {
        code: 1,
        message: format!("Error: {e:#}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(a: &[&str]) -> Cmd {
        parse(
            &SERVER,
            &a.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
        .unwrap()
    }

    #[test]
    fn dev_mode_flags() {
        let Mode::Dev(o) = mode(&cmd(&[
            "-dev",
            "-dev-root-token-id=root",
            "--dev-listen-address",
            "127.0.0.1:9200",
            "-log-level=DEBUG",
        ]))
        .ok()
        .unwrap() else {
            panic!("not dev")
        };
        assert_eq!(o.listen_address, "127.0.0.1:9200");
        assert_eq!(o.root_token_id.as_deref(), Some("root"));
        assert_eq!(o.log_level, "debug");
    }

    #[test]
    fn config_mode_loads_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("arca.hcl");
        std::fs::write(
            &path,
            "storage \"inmem\" {}\nlistener \"tcp\" { tls_disable = true }\nlog_level = \"warn\"\n",
        )
        .unwrap();
        let arg = format!("-config={}", path.display());
        let Mode::Config(c) = mode(&cmd(&[&arg])).ok().unwrap() else {
            panic!("not config")
        };
        assert_eq!(c.log_level, "warn");
        let Mode::Config(c) = mode(&cmd(&[
            "-log-level=error",
            "-config",
            path.to_str().unwrap(),
        ]))
        .ok()
        .unwrap() else {
            panic!("not config")
        };
        assert_eq!(c.log_level, "error");
    }

    #[test]
    fn bad_invocations() {
        let err = |a: &[&str]| mode(&cmd(a)).err().unwrap();
        assert!(err(&[]).message.contains("-config=FILE"));
        assert!(err(&["-dev", "-config=x"])
            .message
            .contains("cannot be used together"));
        assert!(err(&["-config=a", "-config=b"])
            .message
            .contains("Only one"));
        assert!(err(&["-dev", "-log-level=loud"])
            .message
            .contains("unknown log level"));
        let e = err(&["-config=/nonexistent/arca.hcl"]);
        assert_eq!(e.code, 1);
        assert!(
            e.message.starts_with("Error loading configuration: "),
            "{}",
            e.message
        );
        assert!(e.message.contains("/nonexistent/arca.hcl"));
    }
}
