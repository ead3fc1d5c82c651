//! The checked-in operations files: the CloudFormation templates pass cfn-lint, the alert rules
//! pass `promtool check rules` and their unit tests (both tools installed by scripts/tools.sh),
//! and the IAM policy documents are valid JSON without wildcard actions.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no *.{ext} in {}", dir.display());
    out
}

/// Runs a bundled checker in `dir` and fails with its output unless it succeeds.
fn check(tool: &str, args: &[&std::ffi::OsStr], dir: &Path) {
    let path = crate::emulator::dev_dir().join("bin").join(tool);
    assert!(path.exists(), "{} is missing; run scripts/tools.sh install", path.display());
    let out = Command::new(&path).args(args).current_dir(dir).output().unwrap_or_else(|e| panic!("run {tool}: {e}"));
    assert!(
        out.status.success(),
        "{tool} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn cloudformation_templates_pass_cfn_lint() {
    let templates = files(&root().join("infra").join("cloudformation"), "yaml");
    let args: Vec<&std::ffi::OsStr> = templates.iter().map(|p| p.as_os_str()).collect();
    check("cfn-lint", &args, &root());
}

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    let grafana = root().join("grafana");
    check("promtool", &["check".as_ref(), "rules".as_ref(), "alerts.yaml".as_ref()], &grafana);
    check("promtool", &["test".as_ref(), "rules".as_ref(), "alerts_test.yaml".as_ref()], &grafana);
}

#[test]
fn iam_policies_are_json_without_wildcard_actions() {
    for path in files(&root().join("infra").join("iam"), "json") {
        let text = std::fs::read_to_string(&path).expect("read");
        let doc: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
        let statements = doc["Statement"].as_array().unwrap_or_else(|| panic!("{}: no Statement list", path.display()));
        for s in statements {
            let actions: Vec<&str> = match &s["Action"] {
                serde_json::Value::String(a) => vec![a.as_str()],
                serde_json::Value::Array(a) => a.iter().filter_map(|v| v.as_str()).collect(),
                _ => panic!("{}: statement without Action: {s}", path.display()),
            };
            for a in actions {
                assert!(a != "*" && !a.ends_with(":*"), "{}: wildcard action {a}", path.display());
            }
        }
    }
}
