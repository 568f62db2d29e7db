//! Shell completion of the `arca` CLI as a user sets it up: `arca
//! -autocomplete-install` writes the line bash runs, bash accepts it, and
//! `arca` answers the completion requests bash makes (`COMP_LINE`,
//! `COMP_POINT`), without a server.

use std::path::Path;
use std::process::{Command, Output};

fn arca(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_arca"));
    c.args(args)
        .env("HOME", home)
        .env_remove("COMP_LINE")
        .env_remove("COMP_POINT");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn install_and_answer_completions() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let o = arca(h, &["-autocomplete-install"], &[]);
    assert!(o.status.success(), "{o:?}");
    let rc = std::fs::read_to_string(h.join(".bashrc")).unwrap();
    let line = format!("complete -C {} arca", env!("CARGO_BIN_EXE_arca"));
    assert!(rc.lines().any(|l| l == line), "{rc}");
    // Twice: refused, and the file keeps one line.
    let o = arca(h, &["-autocomplete-install"], &[]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let rc = std::fs::read_to_string(h.join(".bashrc")).unwrap();
    assert_eq!(rc.lines().filter(|l| *l == line).count(), 1);

    // bash takes the line as a completion spec for arca.
    let b = Command::new("bash")
        .args([
            "--norc",
            "-c",
            "source \"$HOME/.bashrc\" && complete -p arca",
        ])
        .env("HOME", h)
        .output()
        .expect("bash");
    assert!(b.status.success(), "{b:?}");
    let spec = stdout(&b);
    assert!(
        spec.starts_with("complete -C ")
            && spec.contains(env!("CARGO_BIN_EXE_arca"))
            && spec.trim_end().ends_with(" arca"),
        "{spec}"
    );

    // What bash asks and what arca answers.
    let ask = |l: &str| {
        let point = l.len().to_string();
        let o = arca(
            h,
            &["arca", "", ""],
            &[("COMP_LINE", l), ("COMP_POINT", &point)],
        );
        assert!(o.status.success(), "{o:?}");
        stdout(&o).lines().map(str::to_string).collect::<Vec<_>>()
    };
    assert_eq!(ask("arca opera"), vec!["operator"]);
    assert_eq!(ask("arca operator rot"), vec!["rotate", "rotate-keys"]);
    assert_eq!(ask("arca token looku"), vec!["lookup"]);
    assert!(ask("arca kv put -form").contains(&"-format".to_string()));
    assert!(ask("arca ").contains(&"secrets".to_string()));
    // The cursor decides, not the end of the line.
    let o = arca(
        h,
        &["arca", "", ""],
        &[("COMP_LINE", "arca se status"), ("COMP_POINT", "7")],
    );
    let got: Vec<String> = stdout(&o).lines().map(str::to_string).collect();
    assert_eq!(got, vec!["secrets", "server"]);

    // The printed form, then uninstall.
    let o = arca(h, &["completion", "zsh"], &[]);
    assert!(stdout(&o).contains("bashcompinit") && stdout(&o).contains(&line));
    assert_eq!(arca(h, &["completion", "fish"], &[]).status.code(), Some(1));
    let o = arca(h, &["-autocomplete-uninstall"], &[]);
    assert!(o.status.success(), "{o:?}");
    let rc = std::fs::read_to_string(h.join(".bashrc")).unwrap();
    assert!(!rc.contains("complete -C"), "{rc}");
}
