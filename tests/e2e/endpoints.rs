//! Per-service endpoints: every client `connect` builds goes to its own service's URL.
//!
//! Each URL is a local listener that records the service every request was signed for (the
//! SigV4 credential scope names it: `.../us-east-1/glue/aws4_request`) and answers 400; the
//! clients are built by `Clients::build`, the constructor `Pipeline::connect` uses. No emulator.
//!
//! The environment-variable case runs in a child process (this test binary, re-run on one test):
//! `AWS_ENDPOINT_URL_GLUE` set in this process would reach every test running beside it.

use std::sync::{Arc, Mutex};

use lakelog::aws::clients::Clients;
use lakelog::config::PipelineConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A local HTTP endpoint that records the signing service of each request.
struct Listener {
    url: String,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Listener {
    async fn start() -> Listener {
        let socket = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", socket.local_addr().expect("addr"));
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let record = seen.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = socket.accept().await {
                tokio::spawn(answer(conn, record.clone()));
            }
        });
        Listener { url, seen }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().expect("seen").clone()
    }
}

/// Reads one request, records its service, answers with a minimal AWS error.
async fn answer(mut conn: TcpStream, seen: Arc<Mutex<Vec<String>>>) {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
        if let Some(at) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&request[..head_end]).to_ascii_lowercase();
    let length: usize =
        head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    while request.len() < head_end + length {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    // Credential=AKID/DATE/REGION/SERVICE/aws4_request
    let service =
        head.split("credential=").nth(1).and_then(|scope| scope.split('/').nth(3)).unwrap_or("unsigned").to_string();
    seen.lock().expect("seen").push(service);
    let body = r#"{"__type":"ValidationException","message":"endpoint test"}"#;
    let response = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/x-amz-json-1.1\r\nx-amzn-ErrorType: ValidationException\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = conn.write_all(response.as_bytes()).await;
    let _ = conn.shutdown().await;
}

/// One request through every client, each expected to fail (the listeners answer 400).
async fn call_every_client(c: &Clients) {
    assert!(c.source_glue.get_databases().send().await.is_err());
    assert!(c.capture_glue.get_database().name("db").send().await.is_err());
    assert!(c.source_sts.get_caller_identity().send().await.is_err());
    let sqs = c.sqs.as_ref().expect("events are configured");
    assert!(sqs.get_queue_url().queue_name("q").send().await.is_err());
    let trail = c.trail_s3.as_ref().expect("cloudtrail is configured");
    assert!(trail.list_objects_v2().bucket("trail-bucket").send().await.is_err());
    let cloudtrail = c.cloudtrail.as_ref().expect("cloudtrail_lookup is configured");
    assert!(cloudtrail.lookup_events().send().await.is_err());
    assert!(c.kinesis.list_shards().stream_name("s").send().await.is_err());
    assert!(c.state_s3.list_objects_v2().bucket("state-bucket").send().await.is_err());
    assert!(c.targets[0].glue.get_databases().send().await.is_err());
    assert!(c.targets[0].sts.get_caller_identity().send().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_goes_to_its_own_services_endpoint() {
    crate::emulator::set_test_credentials();
    // Every section also names a catch-all `endpoint`: a per-service URL must win over it.
    let decoy = Listener::start().await;
    let (source_glue, source_sts, sqs) = (Listener::start().await, Listener::start().await, Listener::start().await);
    let (cloudtrail, trail_s3, kinesis) = (Listener::start().await, Listener::start().await, Listener::start().await);
    let (state_s3, target_glue, target_sts) =
        (Listener::start().await, Listener::start().await, Listener::start().await);
    let yaml = format!(
        r#"
source:
  region: us-east-1
  endpoint: {decoy}
  endpoints: {{ glue: {}, sts: {}, sqs: {}, cloudtrail: {} }}
  events: {{ queue_name: q }}
  cloudtrail: {{ bucket: trail-bucket, region: eu-west-1, endpoints: {{ s3: {} }} }}
  cloudtrail_lookup: {{}}
stream: {{ name: s, endpoint: {decoy}, endpoints: {{ kinesis: {} }} }}
state: {{ bucket: state-bucket, endpoint: {decoy}, endpoints: {{ s3: {}, dynamodb: {decoy}, lakeformation: {decoy} }} }}
targets:
  - name: dr
    region: us-west-2
    endpoint: {decoy}
    endpoints: {{ glue: {}, sts: {} }}
"#,
        source_glue.url,
        source_sts.url,
        sqs.url,
        cloudtrail.url,
        trail_s3.url,
        kinesis.url,
        state_s3.url,
        target_glue.url,
        target_sts.url,
        decoy = decoy.url,
    );
    let config = PipelineConfig::from_yaml(&yaml, "endpoints").expect("valid config");
    call_every_client(&Clients::build(&config).await).await;

    for (listener, service, requests) in [
        (&source_glue, "glue", 2),
        (&source_sts, "sts", 1),
        (&sqs, "sqs", 1),
        (&cloudtrail, "cloudtrail", 1),
        (&trail_s3, "s3", 1),
        (&kinesis, "kinesis", 1),
        (&state_s3, "s3", 1),
        (&target_glue, "glue", 1),
        (&target_sts, "sts", 1),
    ] {
        assert_eq!(listener.seen(), vec![service; requests], "the {service} endpoint at {}", listener.url);
    }
    assert_eq!(decoy.seen(), Vec::<String>::new(), "the catch-all endpoint must lose to endpoints.<service>");
}

/// Marks the child process of [`aws_endpoint_url_glue_reaches_glue_only_and_config_beats_it`].
const CHILD: &str = "LAKELOG_TEST_ENDPOINT_CHILD";
const CHILD_DONE: &str = "endpoint child: every call made";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_endpoint_url_glue_reaches_glue_only_and_config_beats_it() {
    let (env_glue, env_all, configured) = (Listener::start().await, Listener::start().await, Listener::start().await);
    let out = tokio::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["endpoints::endpoint_env_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, &configured.url)
        .env("AWS_ENDPOINT_URL_GLUE", &env_glue.url)
        .env("AWS_ENDPOINT_URL", &env_all.url)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
        .output()
        .await
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(CHILD_DONE),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(env_glue.seen(), ["glue"], "AWS_ENDPOINT_URL_GLUE is the source's Glue (no glue URL configured)");
    assert_eq!(env_all.seen(), ["kinesis"], "AWS_ENDPOINT_URL covers a service without its own variable");
    assert_eq!(configured.seen(), ["glue"], "a configured endpoint beats AWS_ENDPOINT_URL_GLUE");
}

/// The child of [`aws_endpoint_url_glue_reaches_glue_only_and_config_beats_it`]; run directly
/// (without its environment) it does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_env_child() {
    let Ok(configured) = std::env::var(CHILD) else { return };
    let yaml = format!(
        r#"
source: {{ region: us-east-1 }}
stream: {{ name: s }}
state: {{ bucket: state-bucket }}
targets: [ {{ name: dr, region: us-west-2, endpoint: "{configured}" }} ]
"#
    );
    let config = PipelineConfig::from_yaml(&yaml, "endpoint-env").expect("valid config");
    let clients = Clients::build(&config).await;
    assert!(clients.source_glue.get_databases().send().await.is_err());
    assert!(clients.kinesis.list_shards().stream_name("s").send().await.is_err());
    assert!(clients.targets[0].glue.get_databases().send().await.is_err());
    println!("{CHILD_DONE}");
}
