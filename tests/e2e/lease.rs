//! Several `lakelog` processes on one config, through the binary on the emulator.
//!
//! - `state.coordination.mode: single` (the default): a second `run` (or `archive`, or `sync`)
//!   is refused at once with exit code 2 while the first holds its groups' locks, and starts once
//!   the first stopped cleanly.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::emulator::Emulator;
use crate::run::{route, run_config};

/// `lakelog run` as a child with its JSON log lines collected.
pub(crate) struct Worker {
    pub child: Child,
    logs: std::sync::mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Worker {
    pub fn spawn(config: &std::path::Path, log_filter: &str) -> Worker {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lakelog"))
            .args(["--log-json", "run", "--output", "json", "-c"])
            .arg(config)
            .env("LAKELOG_LOG", log_filter)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn lakelog run");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, logs) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Worker { child, logs, seen: Vec::new() }
    }

    /// Collects the log lines so far.
    pub fn drain_logs(&mut self) {
        self.seen.extend(self.logs.try_iter());
    }

    /// Waits for a log line containing `text` (at most `limit`).
    pub fn wait_log(&mut self, text: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        if let Some(l) = self.seen.iter().find(|l| l.contains(text)) {
            return l.clone();
        }
        while Instant::now() < deadline {
            if let Ok(line) = self.logs.recv_timeout(Duration::from_millis(200)) {
                self.seen.push(line.clone());
                if line.contains(text) {
                    return line;
                }
            }
        }
        panic!("no log line with `{text}`; saw:\n{}", self.seen.join("\n"))
    }

    /// The metrics address the process logged.
    pub fn address(&mut self) -> String {
        let line = self.wait_log("serving /metrics", Duration::from_secs(60));
        let log: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
        log["fields"]["address"].as_str().expect("address").to_string()
    }

    /// Waits until `/readyz` says the pipeline runs (its groups' locks or leases are taken).
    pub fn wait_started(&mut self) -> String {
        let addr = self.address();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !http_get(&addr, "/readyz").contains("pipeline: ready") {
            assert!(Instant::now() < deadline, "the run never started");
            std::thread::sleep(Duration::from_millis(100));
        }
        addr
    }

    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill").args([signal, &self.child.id().to_string()]).status().expect("kill");
        assert!(ok.success(), "kill {signal}");
    }

    /// SIGTERM, then waits (at most `limit`) for a clean exit; returns the JSON report.
    pub fn terminate(mut self, limit: Duration) -> (serde_json::Value, Vec<String>) {
        self.signal("-TERM");
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("lakelog run did not exit within {limit:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let mut stdout = String::new();
        self.child.stdout.take().expect("stdout").read_to_string(&mut stdout).expect("read stdout");
        // The reader thread ends with the process; collect what it still holds.
        std::thread::sleep(Duration::from_millis(200));
        self.drain_logs();
        assert!(status.success(), "graceful stop failed: {status:?}\n{}", self.seen.join("\n"));
        (serde_json::from_str(&stdout).expect("a JSON run report on stdout"), std::mem::take(&mut self.seen))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn http_get(addr: &str, path: &str) -> String {
    let Ok(mut conn) = std::net::TcpStream::connect(addr) else { return String::new() };
    let _ = write!(conn, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut response = String::new();
    let _ = conn.read_to_string(&mut response);
    response
}

fn lakelog(args: &[&str], config: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lakelog")).args(args).arg("-c").arg(config).output().expect("spawn lakelog")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_on_a_single_process_config_is_refused_with_exit_code_2() {
    let emu = Emulator::start();
    let name = "lock-single";
    let (_eb, _sqs, queue) = route(&emu, name).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pipeline.yaml");
    std::fs::write(&path, run_config(&emu, name, &queue, 3600)).expect("write config");

    let mut first = Worker::spawn(&path, "info");
    first.wait_started();
    for args in [&["run"][..], &["archive"][..], &["sync"][..]] {
        let out = lakelog(args, &path);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "lakelog {args:?} beside a running `run`:\n{stderr}");
        assert!(
            stderr.contains("is being consumed by another lakelog process")
                && stderr.contains("coordination.mode: leases"),
            "the refusal says who holds it and what to do instead:\n{stderr}"
        );
    }
    let (_report, logs) = first.terminate(Duration::from_secs(60));
    assert!(!logs.iter().any(|l| l.contains("changed by another worker")), "nothing fought over checkpoints");

    // Released on the clean stop: the next process starts at once.
    let out = lakelog(&["sync"], &path);
    assert!(out.status.success(), "sync after the run stopped:\n{}", String::from_utf8_lossy(&out.stderr));
}
