//! SIGTERM while `lakelog run` is in the middle of a reconciliation pass (the initial snapshot of
//! a catalog big enough to take a while): the pass stops, the process drains and exits 0 in
//! bounded time, `status`, `diff` and `dlq` work on what it left, and a restart resumes and
//! converges.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::emulator::Emulator;
use crate::lease::{http_get, Worker};
use crate::run::{converges, route, run_config};
use crate::seed;

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

    let mut first = Worker::spawn(&path, "info");
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
    let mut second = Worker::spawn(&path, "info");
    second.address();
    converges(&emu, name, Duration::from_secs(120)).await;
    let (report, _) = second.terminate(Duration::from_secs(30));
    assert_eq!(report["reconcile_passes"], 1, "{report}");
}
