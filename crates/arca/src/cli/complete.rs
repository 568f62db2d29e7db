//! Shell completion, the way the `bao` CLI does it: `arca
//! -autocomplete-install` adds `complete -C <path to arca> arca` to
//! `~/.bashrc` (and, with bash completion turned on, to `~/.zshrc`); from
//! then on the shell runs `arca` itself with `COMP_LINE` (the command line
//! so far) and `COMP_POINT` (the cursor) set, and `arca` prints the
//! candidates, one per line. `arca completion bash|zsh` prints those lines
//! instead of installing them.
//!
//! Candidates: commands, then a group's subcommands (`operator raft`
//! has its own), and `-flags` of every HTTP command when the word starts
//! with `-`. Nothing is sent to a server.

use super::{usage_error, CmdResult, HTTP_FLAGS};

/// The subcommands of a command group (for completion and help).
fn subcommands(path: &[&str]) -> &'static [(&'static str, &'static str)] {
    match path {
        ["audit"] => super::audit::SUBCOMMANDS,
        ["auth"] => super::auth::SUBCOMMANDS,
        ["kv"] => super::kv::SUBCOMMANDS,
        ["lease"] => super::lease::SUBCOMMANDS,
        ["operator"] => super::operator::SUBCOMMANDS,
        ["operator", "raft"] => super::raft::SUBCOMMANDS,
        ["policy"] => super::policy::SUBCOMMANDS,
        ["secrets"] => super::secrets::SUBCOMMANDS,
        ["token"] => super::token::SUBCOMMANDS,
        ["completion"] => &[
            ("bash", "Print bash's completion line"),
            ("zsh", "Print zsh's"),
        ],
        _ => &[],
    }
}

/// Flags offered for any command.
const OUTPUT_FLAGS: &[&str] = &["format", "field", "non-interactive", "help"];

/// The candidates for the command line `line` up to the cursor.
pub fn candidates(line: &str) -> Vec<String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let (done, partial): (&[&str], &str) = match words.split_first() {
        None => (&[], ""),
        Some((_, rest)) if line.ends_with(char::is_whitespace) => (rest, ""),
        Some((_, rest)) => match rest.split_last() {
            Some((last, before)) => (before, last),
            None => (&[], ""),
        },
    };
    if partial.starts_with('-') {
        let bare = partial.trim_start_matches('-');
        let mut out: Vec<String> = HTTP_FLAGS
            .iter()
            .map(|f| f.name)
            .chain(OUTPUT_FLAGS.iter().copied())
            .filter(|n| n.starts_with(bare))
            .map(|n| format!("-{n}"))
            .collect();
        out.sort();
        out.dedup();
        return out;
    }
    let path: Vec<&str> = done
        .iter()
        .copied()
        .filter(|w| !w.starts_with('-'))
        .collect();
    let names: Vec<&str> = if path.is_empty() {
        super::COMMANDS.iter().map(|(n, _)| *n).collect()
    } else {
        subcommands(&path).iter().map(|(n, _)| *n).collect()
    };
    names
        .into_iter()
        .filter(|n| n.starts_with(partial))
        .map(str::to_string)
        .collect()
}

/// Answers a completion request from the shell, if this run is one.
pub fn answer_from_env() -> bool {
    let Ok(line) = std::env::var("COMP_LINE") else {
        return false;
    };
    let point = std::env::var("COMP_POINT")
        .ok()
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(line.len())
        .min(line.len());
    let upto = line.get(..point).unwrap_or(&line);
    for c in candidates(upto) {
        outln!("{c}");
    }
    true
}

fn self_path() -> Result<String, super::Failure> {
    std::env::current_exe()
        .map(|p| p.to_string_lossy().into_owned())
        .map_err(|e| usage_error(format!("Error finding the arca binary: {e}")))
}

fn shell_lines(shell: &str, exe: &str) -> Result<Vec<String>, super::Failure> {
    let complete = format!("complete -C {exe} arca");
    match shell {
        "bash" => Ok(vec![complete]),
        "zsh" => Ok(vec![
            "autoload -U +X bashcompinit && bashcompinit".to_string(),
            complete,
        ]),
        other => Err(usage_error(format!(
            "Unknown shell {other:?}: arca completes bash and zsh"
        ))),
    }
}

/// `arca completion bash|zsh`: prints the lines to add to the shell's rc file.
pub fn print(args: &[String]) -> CmdResult {
    let [shell] = args else {
        return Err(usage_error(
            "Usage: arca completion bash|zsh\n\nPrints the shell lines that make arca complete its commands\n(or run arca -autocomplete-install).",
        ));
    };
    for l in shell_lines(shell, &self_path()?)? {
        outln!("{l}");
    }
    Ok(0)
}

/// `arca -autocomplete-install` / `-autocomplete-uninstall`: adds (removes)
/// the completion lines to (from) `~/.bashrc` and, if it exists,
/// `~/.zshrc`. Adding twice changes nothing.
pub fn install(uninstall: bool) -> CmdResult {
    let home = std::env::var_os("HOME")
        .ok_or_else(|| usage_error("Error installing completion: HOME is not set"))?;
    let home = std::path::PathBuf::from(home);
    let exe = self_path()?;
    let mut changed = 0;
    for (shell, file, create) in [("bash", ".bashrc", true), ("zsh", ".zshrc", false)] {
        let path = home.join(file);
        if !path.exists() && !create {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines = shell_lines(shell, &exe)?;
        let new = if uninstall {
            let kept: Vec<&str> = text
                .lines()
                .filter(|l| !(l.starts_with("complete -C ") && l.ends_with(" arca")))
                .collect();
            let mut s = kept.join("\n");
            if !s.is_empty() {
                s.push('\n');
            }
            s
        } else if text.lines().any(|l| l == lines[lines.len() - 1]) {
            text.clone()
        } else {
            let mut s = text.clone();
            if !s.is_empty() && !s.ends_with('\n') {
                s.push('\n');
            }
            for l in &lines {
                if !text.lines().any(|t| t == l) {
                    s.push_str(l);
                    s.push('\n');
                }
            }
            s
        };
        if new != text {
            std::fs::write(&path, new)
                .map_err(|e| usage_error(format!("Error writing {}: {e}", path.display())))?;
            changed += 1;
        }
    }
    if changed == 0 && !uninstall {
        return Err(usage_error(
            "Error executing CLI: already installed in your shell's rc file",
        ));
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_subcommands_and_flags() {
        assert_eq!(candidates("arca oper"), vec!["operator"]);
        let all = candidates("arca ");
        assert!(all.contains(&"kv".to_string()) && all.contains(&"token".to_string()));
        let ops = candidates("arca operator ");
        assert!(ops.contains(&"rotate-keys".to_string()), "{ops:?}");
        assert_eq!(candidates("arca operator gen"), vec!["generate-root"]);
        assert_eq!(candidates("arca operator raft li"), vec!["list-peers"]);
        assert_eq!(candidates("arca kv -format=json g"), vec!["get"]);
        assert!(candidates("arca kv get -addr").contains(&"-address".to_string()));
        assert!(candidates("arca kv get --fo").contains(&"-format".to_string()));
        assert!(candidates("arca kv get secret/x ").is_empty());
    }
}
