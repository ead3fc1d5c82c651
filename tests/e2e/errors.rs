//! Errors as an operator reads them, through the `lakelog` binary: an AWS endpoint that resets
//! every connection, and one that answers 503 with a text body (a load balancer in front of an
//! unavailable service). Both are tiny TCP servers in the test, since no emulator misbehaves on
//! purpose; the state bucket and the change log stay on the emulator.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::emulator::Emulator;
use crate::{config_yaml, SOURCE_REGION};

/// Runs the binary with the default log filter (what an operator sees), stderr not a terminal.
pub fn lakelog(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lakelog"))
        .arg("-c")
        .arg(config)
        .args(args)
        .env_remove("LAKELOG_LOG")
        .env_remove("NO_COLOR")
        .output()
        .expect("run lakelog")
}

/// Runs a command with `--output json`; returns its exit code and parsed stdout.
pub fn lakelog_json(config: &Path, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["--output", "json"];
    all.extend_from_slice(args);
    let out = lakelog(config, &all);
    let text = String::from_utf8_lossy(&out.stdout);
    let value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!("{args:?}: stdout is not JSON ({e}): {text}\nstderr: {}", String::from_utf8_lossy(&out.stderr))
    });
    (out.status.code().unwrap_or(-1), value)
}

#[derive(Clone, Copy)]
enum Misbehaviour {
    /// Closes every connection with a TCP reset once the request has arrived.
    Reset,
    /// Answers every request `503 Service Unavailable` with a plain-text body.
    Unavailable,
}

/// Serves `how` on 127.0.0.1 (a free port) until the test process ends; returns its URL.
fn serve(how: Misbehaviour) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for conn in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || answer(conn, how));
        }
    });
    url
}

fn answer(mut conn: TcpStream, how: Misbehaviour) {
    let mut buf = [0u8; 64 * 1024];
    match how {
        Misbehaviour::Reset => {
            // Closing with unread bytes in the receive buffer makes the kernel send RST.
            let _ = conn.peek(&mut buf);
        }
        Misbehaviour::Unavailable => {
            let mut request = Vec::new();
            while let Ok(n @ 1..) = conn.read(&mut buf) {
                request.extend_from_slice(&buf[..n]);
                if request_complete(&request) {
                    break;
                }
            }
            let body = "Service Unavailable";
            let _ = write!(
                conn,
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    }
}

/// Whether `request` holds the headers and the whole body they announce.
fn request_complete(request: &[u8]) -> bool {
    let text = String::from_utf8_lossy(request);
    let Some((head, body)) = text.split_once("\r\n\r\n") else { return false };
    let length = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
        .unwrap_or(0usize);
    body.len() >= length
}

/// The test pipeline with the source's Glue (and STS) at `url`; `catalog_id` skips the STS
/// account look-up so the first source call is Glue's.
fn write_config(emu: &Emulator, name: &str, url: &str, catalog_id: bool, dir: &Path) -> PathBuf {
    let yaml = config_yaml(emu, name, "", "");
    let from = format!("source:\n  region: {SOURCE_REGION}\n  endpoint: {}\n", emu.moto_url);
    assert!(yaml.contains(&from), "config_yaml changed shape: {yaml}");
    let id = if catalog_id { format!("  catalog_id: \"{}\"\n", crate::ACCOUNT) } else { String::new() };
    let yaml = yaml.replace(&from, &format!("source:\n  region: {SOURCE_REGION}\n  endpoint: {url}\n{id}"));
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, yaml).expect("write config");
    path
}

/// The one `error:` line of a failed run, checked the way an operator reads it: short, naming
/// `service` and `operation`, `cause` (if not empty) said once, no Debug dump, no colour codes
/// anywhere. Returns the message after `error: `.
fn assert_readable(out: &Output, service: &str, operation: &str, cause: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "a runtime failure exits 1; stderr:\n{stderr}");
    assert!(!stderr.contains("\x1b["), "ANSI escape codes in stderr that is not a terminal:\n{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "one error line:\n{stderr}");
    let line = errors[0];
    eprintln!("{line}");
    assert!(line.len() < 300, "{} characters: {line}", line.len());
    assert!(line.contains(&format!("{service} {operation}")), "names the service and operation: {line}");
    let lower = line.to_ascii_lowercase();
    if !cause.is_empty() {
        assert_eq!(lower.matches(&cause.to_ascii_lowercase()).count(), 1, "`{cause}` said once: {line}");
    }
    for debug in ["Error {", "{ source", "Some(", "kind: ", "DispatchFailure", "ConnectorError", "Unhandled"] {
        assert!(!line.contains(debug), "a Debug dump (`{debug}`): {line}");
    }
    line.trim_start_matches("error: ").to_string()
}

/// With `--output json` the same failure is a JSON object on stdout, exit 1; the person
/// watching still reads it on stderr.
fn assert_json_error(path: &Path, args: &[&str], service: &str, operation: &str) -> Value {
    let mut all = vec!["--output", "json"];
    all.extend_from_slice(args);
    let out = lakelog(path, &all);
    let line = assert_readable(&out, service, operation, "");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let value: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {stdout}"));
    assert_eq!(value["exit_code"], 1, "{value}");
    assert_eq!(value["error"], line.as_str(), "the message on stderr: {value}");
    assert_eq!(value["service"], service, "{value}");
    assert_eq!(value["operation"], operation, "{value}");
    value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_connection_reads_as_one_short_line_naming_the_service() {
    let emu = Emulator::start();
    let url = serve(Misbehaviour::Reset);
    let dir = tempfile::tempdir().expect("tempdir");

    let sync_cfg = write_config(&emu, "err-reset", &url, true, dir.path());
    let line = assert_readable(&lakelog(&sync_cfg, &["sync"]), "glue", "GetDatabases", "reset");
    assert!(line.contains("endpoint"), "names the endpoint to check: {line}");
    assert_json_error(&sync_cfg, &["sync"], "glue", "GetDatabases");

    let status_cfg = write_config(&emu, "err-reset", &url, false, dir.path());
    assert_readable(&lakelog(&status_cfg, &["status"]), "sts", "GetCallerIdentity", "reset");
    assert_json_error(&status_cfg, &["status"], "sts", "GetCallerIdentity");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_with_a_text_body_reads_as_http_status_and_body() {
    let emu = Emulator::start();
    let url = serve(Misbehaviour::Unavailable);
    let dir = tempfile::tempdir().expect("tempdir");

    let sync_cfg = write_config(&emu, "err-503", &url, true, dir.path());
    let line = assert_readable(&lakelog(&sync_cfg, &["sync"]), "glue", "GetDatabases", "Service Unavailable");
    assert!(line.contains("HTTP 503"), "{line}");
    assert!(!line.contains("unexpected token"), "the JSON parser's complaint is not the cause: {line}");
    let value = assert_json_error(&sync_cfg, &["sync"], "glue", "GetDatabases");
    assert_eq!(value["class"], "retryable", "a 503 is retryable: {value}");

    let status_cfg = write_config(&emu, "err-503", &url, false, dir.path());
    let line = assert_readable(&lakelog(&status_cfg, &["status"]), "sts", "GetCallerIdentity", "Service Unavailable");
    assert!(line.contains("HTTP 503"), "{line}");
    assert_json_error(&status_cfg, &["status"], "sts", "GetCallerIdentity");
}

/// A usage error (exit 2) is JSON on stdout too, and stays human-readable on stderr.
#[test]
fn a_usage_error_is_json_with_exit_code_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.yaml");
    let out = lakelog(&missing, &["--output", "json", "validate"]);
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let value: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {stdout}"));
    assert_eq!(value["exit_code"], 2, "{value}");
    let error = value["error"].as_str().unwrap_or_else(|| panic!("no error field: {value}"));
    assert!(error.contains("missing.yaml"), "names the file: {value}");
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("error: {error}")));
}

/// Arguments that cannot work are usage errors found before anything connects (exit 2), not
/// connection failures: the repository's pipeline.yaml names an emulator that is not running.
#[test]
fn bad_restore_and_history_arguments_are_usage_errors_before_connecting() {
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pipeline.yaml");
    for (args, says) in [
        (&["restore", "--at", "yesterday", "--target", "dr-west"][..], "RFC 3339"),
        (
            &["restore", "--at", "2026-12-01T00:00:00Z", "--target", "dr-west", "--rename-database", "sales"][..],
            "FROM=TO",
        ),
        (&["history", "db./partition"][..], "table name is empty"),
    ] {
        let out = lakelog(&config, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
