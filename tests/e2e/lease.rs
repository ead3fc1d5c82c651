//! Several `lakelog` processes on one config, through the binary on the emulator.
//!
//! - `state.coordination.mode: single` (the default): a second `run` (or `archive`, or `sync`)
//!   is refused at once with exit code 2 while the first holds its groups' locks, and starts once
//!   the first stopped cleanly.
//! - `leases`: three workers share a 4-shard stream under a crawler burst; a SIGKILLed worker's
//!   leases are taken over (checked on the lease rows), the target converges, no checkpoint goes
//!   back, and a clean stop lets the leases go. A worker paused (SIGSTOP) past its lease expiry
//!   applies nothing under the leases it lost once it wakes (SIGCONT).

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
                self.drain_logs();
                panic!("lakelog run did not exit within {limit:?} of SIGTERM; it logged:\n{}", self.seen.join("\n"));
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

/// `run_config` for several workers: 4 shards, leases in a table of its own, short timings.
pub(crate) fn leases_config(emu: &Emulator, name: &str, queue: &str) -> String {
    run_config(emu, name, queue, 3600).replace("  shards: 2\n", "  shards: 4\n").replacen(
        "  create_bucket_if_missing: true\n",
        "  create_bucket_if_missing: true\n  coordination: { mode: leases, create_table_if_missing: true, lease_duration: 6s, renew_interval: 2s }\n",
        1,
    )
}

/// The lease rows of `group`, read as an operator would (DynamoDB, the KCL's attributes).
async fn rows(emu: &Emulator, name: &str, group: &str) -> Vec<lakelog::backend::lease::Lease> {
    use lakelog::backend::lease::LeaseStore;
    let ep = lakelog::aws::client::Endpoint::new(crate::SOURCE_REGION, Some(&emu.moto_url));
    let table =
        lakelog::aws::dynamodb::DynamoLeases::new(ep.dynamodb().await, &format!("lakelog-lakelog-{name}-leases"));
    table.list(group).await.unwrap_or_default()
}

/// The pid in a generated worker id (`host-pid-suffix`).
fn pid_of(owner: &str) -> Option<u32> {
    let mut parts = owner.rsplitn(3, '-');
    parts.next()?;
    parts.next()?.parse().ok()
}

/// Checkpoints (sequence numbers) per shard as seen so far; panics if one went backwards.
#[derive(Default)]
struct Monotonic(std::collections::BTreeMap<String, lakelog::model::seqno::SeqNo>);

impl Monotonic {
    fn see(&mut self, leases: &[lakelog::backend::lease::Lease]) {
        for l in leases {
            let Some(seq) = lakelog::model::seqno::SeqNo::parse(&l.checkpoint) else { continue };
            if let Some(before) = self.0.get(&l.key) {
                assert!(seq >= *before, "checkpoint of {} went back from {before} to {seq}", l.key);
            }
            self.0.insert(l.key.clone(), seq);
        }
    }
}

async fn burst(
    emu: &Emulator,
    name: &str,
    eb: &lakelog::aws::eventbridge::EventBridge,
    tables: usize,
    partitions: usize,
) {
    use lakelog::simulate::catalog::{generate, CatalogSpec};
    let n = crate::Names::new(name);
    let catalog = generate(&CatalogSpec {
        prefix: n.prefix,
        databases: 1,
        tables_per_database: tables,
        partitions_per_table: partitions,
        bucket: n.data_bucket,
    });
    let glue = crate::glue(emu, crate::SOURCE_REGION).await;
    let source = lakelog::aws::glue::GlueCatalog::retrying(glue, crate::ACCOUNT);
    lakelog::simulate::events::crawler_burst(&*source, eb, &catalog, 0).await.expect("burst");
}

/// Polls `rows` of `group` until `done` holds (at most `limit`), checking checkpoints never go back.
async fn until(
    emu: &Emulator,
    name: &str,
    group: &str,
    seen: &mut Monotonic,
    limit: Duration,
    done: impl Fn(&[lakelog::backend::lease::Lease]) -> bool,
) -> Vec<lakelog::backend::lease::Lease> {
    let deadline = Instant::now() + limit;
    loop {
        let r = rows(emu, name, group).await;
        seen.see(&r);
        if done(&r) {
            return r;
        }
        assert!(Instant::now() < deadline, "lease rows never got there: {r:#?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_three_workers_share_four_shards_and_a_killed_workers_leases_are_taken_over() {
    let emu = Emulator::start();
    let name = "lease-kill";
    let (eb, _sqs, queue) = route(&emu, name).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pipeline.yaml");
    std::fs::write(&path, leases_config(&emu, name, &queue)).expect("write config");

    let mut workers: Vec<Worker> = (0..3).map(|_| Worker::spawn(&path, "info")).collect();
    for w in &mut workers {
        w.wait_started();
    }
    let mut seen = Monotonic::default();
    // Every lease owned, by all three workers (4 leases: 2, 1, 1).
    let balanced = |r: &[lakelog::backend::lease::Lease]| {
        let owners: std::collections::BTreeSet<_> = r.iter().filter_map(|l| l.owner.clone()).collect();
        r.len() == 4 && r.iter().all(|l| l.owner.is_some()) && owners.len() == 3
    };
    until(&emu, name, "dr", &mut seen, Duration::from_secs(120), balanced).await;

    let bursting = burst(&emu, name, &eb, 8, 150);
    let killing = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let victim = workers.remove(0);
        let pid = victim.child.id();
        drop(victim); // SIGKILL and reap
        pid
    };
    let ((), pid) = tokio::join!(bursting, killing);
    let killed_at = Instant::now();
    for group in ["dr", "archive.segments"] {
        let taken = |r: &[lakelog::backend::lease::Lease]| {
            r.len() == 4 && r.iter().all(|l| l.owner.as_deref().and_then(pid_of).is_some_and(|p| p != pid))
        };
        until(&emu, name, group, &mut seen, Duration::from_secs(120), taken).await;
    }
    eprintln!("every lease of the killed worker was taken over {:?} after the SIGKILL", killed_at.elapsed());
    crate::run::converges(&emu, name, Duration::from_secs(180)).await;
    let r = rows(&emu, name, "dr").await;
    seen.see(&r);

    for w in workers {
        w.terminate(Duration::from_secs(60));
    }
    let released = rows(&emu, name, "dr").await;
    seen.see(&released);
    assert!(released.iter().all(|l| l.owner.is_none()), "a clean stop lets its leases go: {released:#?}");
}

// It was intermittent (half the runs: the target never got some of the burst's tables or
// partitions). Two causes, both fixed and unit-tested: the woken worker held SQS messages (the
// burst's CreateTable hints) through its pause, so the other worker published partitions before
// their table and dead-lettered them as orphans (`capture::resolve` now re-reads a parent the
// publisher has no live record of, first); and a shard retaken after a lost lease kept how far
// its abandoned batch had been read (`Watermark::released`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_a_worker_paused_past_its_lease_makes_no_write_under_it_after_waking() {
    let emu = Emulator::start();
    let name = "lease-stale";
    let (eb, _sqs, queue) = route(&emu, name).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pipeline.yaml");
    std::fs::write(&path, leases_config(&emu, name, &queue)).expect("write config");
    let filter = "info,lakelog::apply::group=debug";
    let mut stale = Worker::spawn(&path, filter);
    stale.wait_started();
    let mut seen = Monotonic::default();
    let pid = stale.child.id();
    // The first worker holds all four leases before the second starts.
    until(&emu, name, "dr", &mut seen, Duration::from_secs(120), |r| {
        r.len() == 4 && r.iter().all(|l| l.owner.as_deref().and_then(pid_of) == Some(pid))
    })
    .await;
    let mut other = Worker::spawn(&path, "info");
    other.wait_started();

    stale.signal("-STOP");
    // Records for every shard while it sleeps; its leases expire and go to the other worker.
    burst(&emu, name, &eb, 8, 50).await;
    until(&emu, name, "dr", &mut seen, Duration::from_secs(120), |r| {
        r.len() == 4 && r.iter().all(|l| l.owner.as_deref().and_then(pid_of).is_some_and(|p| p != pid))
    })
    .await;
    stale.drain_logs();
    let before_wake = stale.seen.len();
    stale.signal("-CONT");
    crate::run::converges(&emu, name, Duration::from_secs(180)).await;
    // Give the woken worker time to do whatever it would do.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let r = rows(&emu, name, "dr").await;
    seen.see(&r);
    other.terminate(Duration::from_secs(60));
    let (_report, logs) = stale.terminate(Duration::from_secs(60));

    // After waking: a batch applied to a shard only under a lease taken again since.
    let woke: Vec<serde_json::Value> =
        logs[before_wake..].iter().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let mut retaken = std::collections::HashSet::new();
    for log in &woke {
        let f = &log["fields"];
        let shard = f["shard"].as_str().unwrap_or_default().to_string();
        match f["message"].as_str().unwrap_or_default() {
            m if m.starts_with("took ") => {
                retaken.insert((f["group"].as_str().unwrap_or_default().to_string(), shard));
            }
            "batch applied" => assert!(
                retaken.contains(&(f["target"].as_str().unwrap_or_default().to_string(), shard.clone())),
                "the woken worker applied a batch of {shard} under the lease it had lost: {log}"
            ),
            _ => {}
        }
    }
    assert!(
        logs[before_wake..]
            .iter()
            .any(|l| l.contains("no longer the shard's owner") || l.contains("lease taken by another worker")),
        "the woken worker noticed it lost its leases:\n{}",
        logs[before_wake..].join("\n")
    );
}

/// Under leases a child waits for a parent on a shard another worker reads only while that
/// worker may still hold it: its lease row says how far it applied. Two workers, one shard each;
/// a table whose database never comes, on one shard, and later records on the other. Before, a
/// shard another worker read counted as holding anything, and the table (with its shard behind
/// it) waited for ever; the wait bound here is 600 s, so the dead letter can only come from the
/// other worker's row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_a_child_whose_parent_never_comes_is_dead_lettered_when_the_other_workers_shard_is_past_it() {
    use crate::dependency::{database, put, record, table, SHARD_A, SHARD_B};
    let emu = Emulator::start();
    let name = "lease-orphan";
    let (_eb, _sqs, queue) = route(&emu, name).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pipeline.yaml");
    let yaml = leases_config(&emu, name, &queue)
        .replace("  shards: 4\n", "  shards: 2\n")
        .replace("dependency_wait_seconds: 30", "dependency_wait_seconds: 600");
    std::fs::write(&path, &yaml).expect("write config");
    let mut workers: Vec<Worker> = (0..2).map(|_| Worker::spawn(&path, "info,lakelog::apply=debug")).collect();
    for w in &mut workers {
        w.wait_started();
    }
    let mut seen = Monotonic::default();
    until(&emu, name, "dr", &mut seen, Duration::from_secs(120), |r| {
        r.len() == 2 && r[0].owner.is_some() && r[1].owner.is_some() && r[0].owner != r[1].owner
    })
    .await;

    let cfg = lakelog::config::PipelineConfig::from_yaml(&yaml, "test").expect("config");
    let pipeline = lakelog::connect::Pipeline::connect(cfg).await.expect("connect");
    let prefix = crate::Names::new(name).prefix;
    let t0 = lakelog::model::now_millis();
    put(&pipeline, SHARD_A, &[record(table(&format!("{prefix}_gone"), "orphan"), t0)]).await;
    let later: Vec<_> = (0..3).map(|i| record(database(&format!("{prefix}_later_{i}")), t0 + 1 + i)).collect();
    put(&pipeline, SHARD_B, &later).await;

    let letters = lakelog::state::deadletter::DeadLetterStore::new(pipeline.state.clone());
    let deadline = Instant::now() + Duration::from_secs(90);
    let parked = loop {
        let l = letters.list("dr").await.expect("list");
        if !l.is_empty() || Instant::now() > deadline {
            break l;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    if parked.is_empty() {
        let logs: Vec<String> = workers
            .iter_mut()
            .map(|w| {
                w.drain_logs();
                w.seen.join("\n")
            })
            .collect();
        panic!(
            "the orphan table is dead-lettered, well before the 600 s bound; the workers logged:\n{}",
            logs.join("\n---\n")
        );
    }
    for w in workers {
        w.terminate(Duration::from_secs(60));
    }
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert!(parked[0].1.reason.contains("read past"), "{}", parked[0].1.reason);
    let target = crate::CatalogDump::read(&emu, crate::TARGET_REGION, &prefix).await;
    assert_eq!(target.databases.len(), 3, "the other shard's records are applied: {target:?}");
}
