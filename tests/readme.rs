//! The README cannot silently rot: its commands run, and every variable and subcommand it
//! names exists.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn read(relative: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)).expect(relative)
}

/// `PATCHWAVE_…` names in a text (only quoted ones when `quoted`: string literals in code).
fn variables_in(text: &str, quoted: bool) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (start, _) in text.match_indices("PATCHWAVE_") {
        if quoted && !text[..start].ends_with('"') {
            continue;
        }
        let name: String = text[start..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || *c == '_')
            .collect();
        found.insert(name.trim_end_matches('_').to_string());
    }
    found
}

fn variables(text: &str) -> BTreeSet<String> {
    variables_in(text, false)
}

#[test]
fn every_variable_the_readme_names_is_read_somewhere_and_every_one_read_is_documented() {
    let readme = variables(&read("README.md"));
    let config = variables_in(&read("handlers/config.rs"), true);
    let mut known = config.clone();
    known.extend(variables(&read("handlers/cli.rs")));
    known.extend(variables(&read(
        "function-definitions/TwinChanges/function.json",
    )));
    let unknown: Vec<_> = readme.difference(&known).collect();
    assert!(
        unknown.is_empty(),
        "the README names variables nothing reads: {unknown:?}"
    );
    let undocumented: Vec<_> = config.difference(&readme).collect();
    assert!(
        undocumented.is_empty(),
        "variables the binary reads but the README does not explain: {undocumented:?}"
    );
}

#[test]
fn every_subcommand_the_readme_shows_exists() {
    let help = Command::new(env!("CARGO_BIN_EXE_patchwave"))
        .arg("--help")
        .output()
        .expect("help");
    let help = String::from_utf8_lossy(&help.stdout).to_string();
    let readme = read("README.md");
    let mut named = BTreeSet::new();
    let mut in_code = false;
    for line in readme.lines() {
        let line = line.trim();
        if line.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if !in_code {
            continue;
        }
        let rest = line
            .strip_prefix("patchwave ")
            .or_else(|| line.strip_prefix("target/release/patchwave "))
            .or_else(|| line.strip_prefix("cargo run --release -- "));
        if let Some(word) = rest.and_then(|r| r.split_whitespace().next()) {
            named.insert(word.to_string());
        }
    }
    assert!(
        named.contains("demo") && named.contains("rollouts"),
        "{named:?}"
    );
    for command in &named {
        assert!(
            help.lines()
                .any(|l| l.trim_start().starts_with(command.as_str())),
            "`patchwave {command}` is not a subcommand:\n{help}"
        );
    }
    let rollouts = Command::new(env!("CARGO_BIN_EXE_patchwave"))
        .args(["rollouts", "--help"])
        .output()
        .expect("help");
    let rollouts = String::from_utf8_lossy(&rollouts.stdout).to_string();
    for verb in [
        "create", "list", "show", "events", "pause", "resume", "approve", "cancel", "rollback",
    ] {
        assert!(rollouts.contains(verb), "rollouts {verb} missing");
    }
}

fn demo(args: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("dir");
    let output = Command::new(env!("CARGO_BIN_EXE_patchwave"))
        .arg("demo")
        .args(args)
        .arg("--out")
        .arg(dir.path())
        .output()
        .expect("demo");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for file in ["patchwave.db", "demo-report.json", "events.jsonl"] {
        assert!(dir.path().join(file).exists(), "{file} left behind");
    }
    stdout
}

#[test]
fn the_readme_demo_rolls_back_with_its_numbers_and_the_healthy_one_completes() {
    let failing = demo(&["--devices", "200"]);
    assert!(failing.contains("finished: RolledBack"), "{failing}");
    let dashboard = failing
        .lines()
        .find_map(|l| l.strip_prefix("dashboard: http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("no dashboard URL:\n{failing}"));
    let port: String = dashboard.chars().take_while(char::is_ascii_digit).collect();
    assert!(
        port.parse::<u16>().is_ok() && dashboard[port.len()..].starts_with("/api/dashboard "),
        "{dashboard}"
    );
    let opened = failing
        .lines()
        .find(|l| l.contains("rollback.opened"))
        .unwrap_or_else(|| panic!("{failing}"));
    assert!(
        opened.contains(" of 50 failed = ") && opened.contains("> 5%"),
        "{opened}"
    );
    assert!(failing.contains("compliance") && failing.contains("decision log"));
    story_agrees_with_its_compliance_table(&failing);
    let healthy = demo(&["--devices", "200", "--healthy"]);
    assert!(healthy.contains("finished: Completed"), "{healthy}");
}

/// The demo's last decision states numbers its compliance table shows, and the decision log
/// tells the story in at most 25 lines.
fn story_agrees_with_its_compliance_table(out: &str) {
    let log: Vec<&str> = out
        .lines()
        .skip_while(|l| *l != "decision log")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    assert!(
        (5..=25).contains(&log.len()),
        "{} decision lines:\n{}",
        log.len(),
        log.join("\n")
    );
    let finished = log
        .iter()
        .find(|l| l.contains("rollback.finished"))
        .unwrap_or_else(|| panic!("no rollback.finished:\n{out}"));
    let numbers = finished
        .split("rollback finished: ")
        .nth(1)
        .expect("numbers");
    let back: u64 = numbers
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("back");
    let on_target: u64 = out
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("group "))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| !l.contains("never deployed"))
        .map(|l| {
            let columns: Vec<&str> = l.split_whitespace().collect();
            columns[2].parse::<u64>().expect("on target")
        })
        .sum();
    assert_eq!(
        back, on_target,
        "the final decision ({finished}) and the compliance table disagree:\n{out}"
    );
}

#[test]
fn every_demo_flag_is_in_the_readme() {
    let help = Command::new(env!("CARGO_BIN_EXE_patchwave"))
        .args(["demo", "--help"])
        .output()
        .expect("help");
    let help = String::from_utf8_lossy(&help.stdout).to_string();
    let readme = read("README.md");
    let flags: Vec<&str> = help
        .split_whitespace()
        .filter(|w| w.starts_with("--") && *w != "--help")
        .collect();
    assert!(flags.contains(&"--serve"), "{help}");
    for flag in flags {
        assert!(
            readme.contains(&format!("`{flag}")),
            "README lacks demo {flag}"
        );
    }
}
