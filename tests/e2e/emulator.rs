//! A private pair of local AWS emulators per test: moto server (Glue, S3, STS, ...) and
//! kinesalite (Kinesis), both bound to 127.0.0.1 on free ports, killed when dropped.
//! They are installed by `scripts/emulator.sh install` (the test script does it).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub struct Emulator {
    moto: Child,
    kinesalite: Child,
    pub moto_url: String,
    pub kinesis_url: String,
}

pub fn dev_dir() -> PathBuf {
    std::env::var_os("LAKELOG_DEV_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".lakelog-dev"))
}

/// Starts `cmd` and waits for a line of its output that `parse` turns into a port.
fn spawn(mut cmd: Command, what: &str, parse: fn(&str) -> Option<u16>) -> (Child, u16) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}; run scripts/emulator.sh install first"));
    let (tx, rx) = mpsc::channel();
    for stream in [
        child.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child.stderr.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if let Some(port) = parse(&line) {
                    let _ = tx.send(port);
                }
            }
        });
    }
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(port) => (child, port),
        Err(_) => {
            let _ = child.kill();
            panic!("{what} did not report its port within 60s");
        }
    }
}

impl Emulator {
    pub fn start() -> Emulator {
        set_test_credentials();
        let dir = dev_dir();
        // moto with AWS's paging for the Glue list calls (scripts/moto_paging.py says why).
        let mut moto = Command::new(dir.join("venv/bin/python"));
        moto.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/moto_paging.py")).args(["-H", "127.0.0.1", "-p", "0"]);
        let (moto, moto_port) = spawn(moto, "moto_server", |l| {
            l.split("Running on http://127.0.0.1:").nth(1).and_then(|p| p.trim().trim_end_matches('/').parse().ok())
        });
        let mut kin = Command::new("node");
        kin.arg(dir.join("node/kinesalite-loopback.js")).arg("0");
        let (kinesalite, kin_port) =
            spawn(kin, "kinesalite", |l| l.strip_prefix("PORT ").and_then(|p| p.trim().parse().ok()));
        Emulator {
            moto,
            kinesalite,
            moto_url: format!("http://127.0.0.1:{moto_port}"),
            kinesis_url: format!("http://127.0.0.1:{kin_port}"),
        }
    }

    /// Stops moto (Glue, S3) now, to test an endpoint dying.
    #[allow(dead_code)]
    pub fn kill_moto(&mut self) {
        let _ = self.moto.kill();
        let _ = self.moto.wait();
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.moto.kill();
        let _ = self.kinesalite.kill();
        let _ = self.moto.wait();
        let _ = self.kinesalite.wait();
    }
}

/// Dummy credentials for the emulator; no endpoint variables (each test's config names its own).
pub fn set_test_credentials() {
    std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    std::env::remove_var("AWS_ENDPOINT_URL");
    std::env::remove_var("AWS_ENDPOINT_URL_KINESIS");
    std::env::remove_var("AWS_PROFILE");
}
