#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Shell completions and manual pages, from the real binary: every
//! subcommand that `--help` lists must appear in each completion script and
//! have its own manual page, referenced from vmnet-broker(1).

use std::path::Path;
use std::process::{Command, Output};

fn broker() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vmnet-broker"))
}

fn run(args: &[&str]) -> Output {
    let out = broker().args(args).output().expect("run vmnet-broker");
    assert!(
        out.status.success(),
        "vmnet-broker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The subcommands listed under "Commands:" in `vmnet-broker --help`,
/// without clap's own `help`.
fn subcommands() -> Vec<String> {
    let help = String::from_utf8(run(&["--help"]).stdout).unwrap();
    let names: Vec<String> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| *n != "help")
        .map(str::to_owned)
        .collect();
    for expected in [
        "serve",
        "acquire",
        "status",
        "install",
        "completions",
        "man",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from --help: {names:?}"
        );
    }
    names
}

#[test]
fn completions_name_every_subcommand() {
    let names = subcommands();
    for shell in ["bash", "zsh", "fish"] {
        let script = String::from_utf8(run(&["completions", shell]).stdout).unwrap();
        assert!(
            script.contains("vmnet-broker"),
            "{shell} script does not name the program"
        );
        for name in &names {
            assert!(
                script.contains(name.as_str()),
                "{shell} completions miss `{name}`"
            );
        }
        // Options of a subcommand are completed too.
        assert!(
            script.contains("idle-timeout"),
            "{shell} completions miss serve's options"
        );
    }
}

#[test]
fn completions_reject_an_unknown_shell() {
    let out = broker().args(["completions", "cmd.exe"]).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value"));
}

#[test]
fn man_writes_one_page_per_subcommand() {
    let names = subcommands();
    let dir = tempfile::tempdir().unwrap();
    let out = run(&["man", "--out-dir", dir.path().to_str().unwrap()]);
    let listed = String::from_utf8(out.stdout).unwrap();

    let page = |file: &str| -> String {
        let path = dir.path().join(file);
        assert!(
            listed.contains(path.to_str().unwrap()),
            "{file} not reported"
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"))
    };
    let top = page("vmnet-broker.1");
    assert!(top.contains(".TH vmnet-broker 1"), "{top}");
    for name in &names {
        let file = format!("vmnet-broker-{name}.1");
        let text = page(&file);
        assert!(
            text.contains(&format!(".TH vmnet-broker-{name} 1")),
            "{file}: {text}"
        );
        assert!(text.contains(".SH SYNOPSIS"), "{file} has no synopsis");
        assert!(
            top.contains(&format!("vmnet\\-broker\\-{name}(1)")),
            "vmnet-broker.1 does not refer to {file}"
        );
    }
    let pages = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(pages, names.len() + 1, "unexpected files: {listed}");
    // The pages carry the options' help, not just their names.
    assert!(page("vmnet-broker-serve.1").contains("Never exit because no client is connected"));
    assert!(page("vmnet-broker-uninstall.1").contains("\\-\\-remove\\-account"));
}

#[test]
fn man_without_a_directory_prints_the_main_page() {
    let out = run(&["man"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with(".ie"), "{text}");
    assert!(text.contains(".SH SUBCOMMANDS"));
}

#[test]
fn man_refuses_a_missing_directory_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/dir");
    let out = broker()
        .args(["man", "--out-dir", missing.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(70));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot write manual pages") && err.contains("no/such/dir"),
        "{err}"
    );
    assert!(!Path::new(&missing).exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
