//! SIGTERM while `lakelog run` is in the middle of a reconciliation pass (the initial snapshot of
//! a catalog big enough to take a while): the pass stops, the process drains and exits 0 in
//! bounded time, `status`, `diff` and `dlq` work on what it left, and a restart resumes and
//! converges.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::emulator::Emulator;
use crate::run::{converges, route, run_config};
use crate::seed;

/// `lakelog run --output json` as a child, with its JSON log lines collected.
struct Run {
    child: Child,
    logs: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Run {
    fn spawn(config: &std::path::Path) -> Run {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lakelog"))
            .args(["--log-json", "run", "--output", "json", "-c"])
            .arg(config)
            .env("LAKELOG_LOG", "info")
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
        Run { child, logs, seen: Vec::new() }
    }

    /// The metrics address the process logged.
    fn address(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(line) = self.logs.recv_timeout(Duration::from_millis(200)) {
                self.seen.push(line.clone());
                if line.contains("serving /metrics") {
                    let log: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
                    return log["fields"]["address"].as_str().expect("address").to_string();
                }
            }
        }
        panic!("no metrics address logged; saw:\n{}", self.seen.join("\n"))
    }

    /// SIGTERM, then waits (at most `limit`) for the exit; returns the report and every log line.
    fn terminate(mut self, limit: Duration) -> (serde_json::Value, Vec<String>) {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("kill -TERM");
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
        self.seen.extend(self.logs.try_iter());
        assert!(status.success(), "graceful stop failed: {status:?}\n{}", self.seen.join("\n"));
        (serde_json::from_str(&stdout).expect("a JSON run report on stdout"), self.seen)
    }
}

fn http_get(addr: &str, path: &str) -> String {
    let Ok(mut conn) = std::net::TcpStream::connect(addr) else { return String::new() };
    let _ = write!(conn, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut response = String::new();
    let _ = conn.read_to_string(&mut response);
    response
}

/// The sum of a counter's samples in a Prometheus text page.
fn counter(metrics: &str, name: &str) -> f64 {
    metrics.lines().filter(|l| l.starts_with(name)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_reconciliation_pass_exits_promptly_and_a_restart_converges() {
    let emu = Emulator::start();
    let name = "termpass";
    // Large enough that the snapshot (the first pass) takes seconds on the emulator.
    seed(&emu, name, 1, 8, 500).await;
    let (_eb, _sqs, queue) = route(&emu, name).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pipeline.yaml");
    std::fs::write(&path, run_config(&emu, name, &queue, 3600)).expect("write config");

    let mut first = Run::spawn(&path);
    let addr = first.address();
    // In the pass: the run has started (the signal handler is installed before it), the snapshot
    // is not done, and it has already published.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let ready = http_get(&addr, "/readyz");
        assert!(!ready.contains("reconcile: ready"), "the snapshot finished before SIGTERM; seed more:\n{ready}");
        let published = counter(&http_get(&addr, "/metrics"), "lakelog_records_published_total");
        if ready.contains("pipeline: ready") && ready.contains("initial snapshot is running") && published > 0.0 {
            break;
        }
        assert!(Instant::now() < deadline, "the snapshot never started publishing:\n{ready}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (report, logs) = first.terminate(Duration::from_secs(30));
    assert!(
        logs.iter().any(|l| l.contains("reconciliation pass stopped by shutdown")),
        "the pass was not interrupted:\n{}",
        logs.join("\n")
    );
    assert_eq!(report["reconcile_passes"], 0, "an interrupted pass is not a pass: {report}");
    assert_eq!(report["last_pass"]["deleted"], 0, "{report}");

    // The operator's commands work on what the stopped run left: a part of the copy (drift).
    for (args, want) in [(&["status"][..], 0), (&["diff", "--target", "dr"][..], 3), (&["dlq", "list"][..], 0)] {
        let out = Command::new(env!("CARGO_BIN_EXE_lakelog")).args(args).arg("-c").arg(&path).output().expect("spawn");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(want), "lakelog {args:?} after SIGTERM:\n{stderr}");
    }

    // The restart resumes from the checkpoints and its own snapshot completes the copy.
    let mut second = Run::spawn(&path);
    second.address();
    converges(&emu, name, Duration::from_secs(120)).await;
    let (report, _) = second.terminate(Duration::from_secs(30));
    assert_eq!(report["reconcile_passes"], 1, "{report}");
}
