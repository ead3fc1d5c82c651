//! The `lakelog` command line. Thin: parse arguments, set up logging, load the config, call the
//! command in `lakelog::commands`, print its report (its `Display`, or JSON with `--output json`)
//! and turn the outcome into an exit code. What a report says is written next to its type.
//!
//! A failure is printed once, on one line of stderr (`error: ...`): each cause of the chain once,
//! since lakelog's error messages already include their sources. With `--output json` it is also
//! a JSON object on stdout, so a script reading stdout always gets JSON: `error`, `exit_code` and,
//! for a failed AWS call, `service`, `operation`, `class` (retryable, permanent, ...) and `code`.

use std::fmt::Display;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use lakelog::backend::AwsError;
use lakelog::commands::sync::{sync, SyncOptions};
use lakelog::commands::{self, dlq, simulate};
use lakelog::config::PipelineConfig;
use lakelog::connect::Pipeline;
use lakelog::simulate::catalog::CatalogSpec;
use serde::Serialize;

/// mimalloc instead of the system allocator: glibc's per-thread arenas hold freed memory back
/// under the scan → publish → apply pipeline (a release sync of 100,000 partitions peaked at
/// 352 MB of RSS with glibc, 275 MB with mimalloc).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit codes scripts can rely on.
mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// A runtime failure (AWS unreachable, target unavailable, ...).
    pub const FAILED: u8 = 1;
    /// The configuration or the arguments are invalid, or another process already consumes
    /// this config's stream (`state.coordination.mode: single`).
    pub const CONFIG: u8 = 2;
    /// The command worked and found something that needs attention: drift (`diff`), records
    /// still failing (`dlq replay`), lag above `--max-lag` (`status`).
    pub const ATTENTION: u8 = 3;
}

#[derive(Parser)]
#[command(
    name = "lakelog",
    version,
    about = "Replicates an AWS Glue Data Catalog across Regions and accounts through a Kinesis change log"
)]
struct Cli {
    /// Pipeline configuration file.
    #[arg(short, long, global = true, default_value = "pipeline.yaml", env = "LAKELOG_CONFIG")]
    config: PathBuf,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    output: Output,
    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Check the configuration file and report every problem at once.
    Validate,
    /// Copy the whole source catalog to the targets through the change log, then report.
    Sync {
        /// Only this target.
        #[arg(long)]
        target: Option<String>,
        /// Compare and report what would change; publish and write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Delete target objects that the source does not have (otherwise they are listed).
        #[arg(long)]
        prune: bool,
    },
    /// Replicate continuously: Glue events, an initial snapshot, periodic reconciliation, apply to
    /// every target. Stops gracefully on SIGTERM/SIGINT (drains and checkpoints).
    Run {
        /// Only this target.
        #[arg(long)]
        target: Option<String>,
        /// Serve /metrics, /healthz and /readyz here (IP:PORT or `off`); overrides `metrics.listen`.
        #[arg(long, env = "LAKELOG_METRICS_LISTEN")]
        metrics_listen: Option<String>,
    },
    /// Per target and shard: lag, checkpoint, backlog in the change log, dead letters.
    Status {
        /// Only this target.
        #[arg(long)]
        target: Option<String>,
        /// Kinesis records read per shard at most to measure a backlog.
        #[arg(long, default_value_t = lakelog::commands::status::DEFAULT_SCAN_LIMIT)]
        scan_limit: u64,
        /// Exit with 3 when a target's lag exceeds this many seconds (for scripts and probes).
        #[arg(long)]
        max_lag: Option<f64>,
    },
    /// Compare the source with a target object by object (read-only drift report); exits 3 on drift.
    Diff {
        #[arg(long)]
        target: String,
        /// Objects listed per sort (missing, extra, different); the counts are always complete.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// The dead-letter store: records a target could not apply, events capture could not parse.
    #[command(subcommand)]
    Dlq(Dlq),
    /// Restore the catalog as it was at a time, from the archive alone: into a target (plan with
    /// --dry-run) or into a file.
    Restore {
        /// An RFC 3339 time (2026-12-01T09:41:00Z) or a stream position (shardId-...:sequence).
        #[arg(long)]
        at: String,
        /// Make this target equal to the state at --at (for the selected databases).
        #[arg(long, conflicts_with = "to_file", required_unless_present = "to_file")]
        target: Option<String>,
        /// Write the state at --at as JSON lines instead.
        #[arg(long)]
        to_file: Option<std::path::PathBuf>,
        /// Only these databases (globs); default all, or the renamed one.
        #[arg(long, num_args = 1..)]
        databases: Vec<String>,
        /// Restore database FROM under the name TO (beside the live one).
        #[arg(long, value_name = "FROM=TO")]
        rename_database: Option<String>,
        /// Print the plan (per object, the fields that change) and write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Plan lines shown (the counts cover everything).
        #[arg(long, default_value_t = 200)]
        show: usize,
    },
    /// Every recorded change of one object (db, db.table or db.table/value/...): when, what, why;
    /// with the grants and LF-tags on it. `--lf-tag KEY` or `--catalog` for Lake Formation
    /// objects of the catalog itself.
    History {
        #[arg(required_unless_present_any = ["lf_tag", "catalog"], conflicts_with_all = ["lf_tag", "catalog"])]
        object: Option<String>,
        /// An LF-tag (by key) and the grants on it.
        #[arg(long, value_name = "KEY", conflicts_with = "catalog")]
        lf_tag: Option<String>,
        /// The data lake settings and every catalog-level Lake Formation object (LF-tags,
        /// expressions, registered locations, grants on the catalog, a location or a tag).
        #[arg(long)]
        catalog: bool,
        /// Only changes at or after this time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Only changes at or before this time (RFC 3339).
        #[arg(long)]
        until: Option<String>,
    },
    /// Archive the change log on its own (as `run` does beside the targets) until SIGTERM/SIGINT.
    Archive,
    /// Fold the archive's raw tail into a new snapshot now, and apply retention.
    Compact {
        /// Even when the tail is below the compaction threshold.
        #[arg(long)]
        force: bool,
    },
    /// Make realistic, crawler-like catalog changes in the source (for demos, tests, benchmarks).
    #[command(subcommand)]
    Simulate(Simulate),
}

#[derive(Subcommand)]
enum Dlq {
    /// List parked entries with their reasons (all targets and capture, or one target).
    List {
        #[arg(long)]
        target: Option<String>,
    },
    /// Re-read each parked object's current state in the source and apply it to the target;
    /// entries that fail again are parked again with the new reason. Exits 3 if any still fail.
    Replay {
        #[arg(long)]
        target: String,
        /// Only these entries (ids from `dlq list`); default all of the target's.
        #[arg(long = "id")]
        ids: Vec<String>,
        /// Compare and report; write nothing and keep the entries.
        #[arg(long)]
        dry_run: bool,
    },
    /// Remove entries for good after inspecting them (`--target capture.events` for events).
    Drop {
        #[arg(long)]
        target: String,
        /// Entries to remove (ids from `dlq list`); at least one.
        #[arg(long = "id", required = true)]
        ids: Vec<String>,
    },
}

/// The shape of a generated catalog.
#[derive(clap::Args)]
struct CatalogArgs {
    /// Database name prefix; keep it inside `source.include`.
    #[arg(long, default_value = "demo")]
    prefix: String,
    #[arg(long, default_value_t = 3)]
    databases: usize,
    /// Regular tables per database (views, Iceberg tables and resource links come on top).
    #[arg(long, default_value_t = 10)]
    tables: usize,
    /// Partitions per partitioned table.
    #[arg(long, default_value_t = 100)]
    partitions: usize,
    /// S3 bucket the generated table locations point at.
    #[arg(long, default_value = "lakelog-demo-data")]
    bucket: String,
}

impl CatalogArgs {
    fn spec(&self) -> CatalogSpec {
        CatalogSpec {
            prefix: self.prefix.clone(),
            databases: self.databases,
            tables_per_database: self.tables,
            partitions_per_table: self.partitions,
            bucket: self.bucket.clone(),
        }
    }
}

#[derive(Subcommand)]
enum Simulate {
    /// Create a generated catalog (databases, tables of several formats, partitions) in the source.
    Seed(CatalogArgs),
    /// Create an SQS queue and an EventBridge rule sending every Glue event to it (emulator).
    Route {
        /// Queue and rule name.
        #[arg(long, default_value = "lakelog-demo-events")]
        queue: String,
    },
    /// A crawler-like burst: write a generated catalog and deliver the Glue events a crawler's
    /// writes would cause, through EventBridge (emulator).
    Burst {
        #[command(flatten)]
        catalog: CatalogArgs,
        /// Deliberately lose every Nth event (0: none), as best-effort delivery may.
        #[arg(long, default_value_t = 0)]
        drop_every: usize,
    },
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LAKELOG_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,lakelog=info"));
    // Colour only for a person at a terminal: log files and collectors get plain text.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// The pipeline YAML itself, instead of a file (containers: from a secret or parameter store).
const CONFIG_YAML_ENV: &str = "LAKELOG_CONFIG_YAML";

fn config_from_env() -> Option<String> {
    std::env::var(CONFIG_YAML_ENV).ok().filter(|t| !t.trim().is_empty())
}

/// A problem with the configuration or the arguments: the user fixes it, exit code 2.
#[derive(Debug)]
struct Usage(String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Usage(message.into()))
}

/// The restore's options from its arguments; a bad argument is a usage error.
fn restore_options(
    at: &str,
    target: &Option<String>,
    to_file: &Option<std::path::PathBuf>,
    databases: &[String],
    rename: &Option<String>,
    dry_run: bool,
    show: usize,
) -> anyhow::Result<commands::restore::RestoreOptions> {
    use commands::restore::{At, Into, RestoreOptions};
    let at = At::parse(at).map_err(|e| usage(format!("--at {e}")))?;
    let into = match (target, to_file) {
        (Some(t), None) => Into::Target(t.clone()),
        (None, Some(p)) => Into::File(p.clone()),
        _ => return Err(usage("give one of --target NAME and --to-file PATH")),
    };
    let rename = match rename {
        None => None,
        Some(r) => match r.split_once('=') {
            Some((from, to)) if !from.is_empty() && !to.is_empty() => Some((from.to_string(), to.to_string())),
            _ => return Err(usage(format!("--rename-database `{r}`: write FROM=TO"))),
        },
    };
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    Ok(RestoreOptions { at, into, databases: databases.to_vec(), rename, dry_run, show, progress })
}

fn load(cli: &Cli) -> anyhow::Result<PipelineConfig> {
    let loaded = match config_from_env() {
        Some(text) => PipelineConfig::from_yaml(&text, CONFIG_YAML_ENV),
        None => PipelineConfig::load(&cli.config),
    };
    let cfg = loaded.map_err(|e| usage(e.to_string()))?;
    // A --target that names nothing is a usage error, reported before connecting anywhere.
    if let Some(name) = cli.command.target().filter(|n| *n != lakelog::state::deadletter::CAPTURE_EVENTS) {
        if cfg.target(name).is_none() {
            let known: Vec<&str> = cfg.targets.iter().map(|t| t.name.as_str()).collect();
            return Err(usage(format!(
                "no target named `{name}` in the config; configured targets: {}",
                known.join(", ")
            )));
        }
    }
    Ok(cfg)
}

/// The error's chain as one message, each cause once: a cause whose text its wrapper already
/// includes (`reading databases: glue GetDatabases failed: ...` wrapping the AWS error) is not
/// repeated.
fn error_message(e: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if message.contains(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    message
}

/// Prints a failure (stderr; and stdout as JSON with `--output json`); returns its exit code.
fn report_failure(e: &anyhow::Error, output: Output) -> ExitCode {
    // Another process holding the groups' lock is for the user to resolve, as a bad config is.
    let refused = |c: &(dyn std::error::Error + 'static)| {
        c.downcast_ref::<lakelog::state::lock::LockError>().is_some_and(|l| l.is_refusal())
    };
    let code = if e.chain().any(|c| c.is::<Usage>() || refused(c)) { exit::CONFIG } else { exit::FAILED };
    let message = error_message(e);
    eprintln!("error: {message}");
    if output == Output::Json {
        let mut json = serde_json::json!({ "error": message, "exit_code": code });
        if let Some(aws) = e.chain().find_map(|c| c.downcast_ref::<AwsError>()) {
            json["service"] = aws.service.into();
            json["operation"] = aws.operation.into();
            json["class"] = aws.class.as_str().into();
            json["code"] = aws.code.clone().into();
        }
        println!("{json}");
    }
    ExitCode::from(code)
}

impl Command {
    /// The `--target` the command was given, if any.
    fn target(&self) -> Option<&str> {
        match self {
            Command::Sync { target, .. } | Command::Run { target, .. } | Command::Status { target, .. } => {
                target.as_deref()
            }
            Command::Diff { target, .. }
            | Command::Dlq(Dlq::Replay { target, .. })
            | Command::Dlq(Dlq::Drop { target, .. }) => Some(target),
            Command::Dlq(Dlq::List { target }) => target.as_deref(),
            Command::Restore { target, .. } => target.as_deref(),
            Command::Validate
            | Command::Simulate(_)
            | Command::History { .. }
            | Command::Compact { .. }
            | Command::Archive => None,
        }
    }
}

/// Prints a command's report: JSON on stdout with `--output json`, its text otherwise.
fn print<R: Serialize + Display>(report: &R, output: Output) -> anyhow::Result<()> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(report)?),
        Output::Text => print!("{report}"),
    }
    Ok(())
}

/// Prints the report of a command that makes data (`simulate seed|burst`): its text on stderr,
/// so that stdout holds nothing but the JSON (`--output json`), or nothing.
fn print_aside<R: Serialize + Display>(report: &R, output: Output) -> anyhow::Result<()> {
    eprint!("{report}");
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(report)?);
    }
    Ok(())
}

fn exit_code(attention: bool) -> ExitCode {
    ExitCode::from(if attention { exit::ATTENTION } else { exit::OK })
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let output = cli.output;
    let cfg = load(&cli)?;
    match &cli.command {
        Command::Validate => {
            if output == Output::Json {
                println!("{}", serde_json::to_string_pretty(&cfg)?);
            } else {
                let source = match config_from_env() {
                    Some(_) => CONFIG_YAML_ENV.to_string(),
                    None => cli.config.display().to_string(),
                };
                println!("{source}: valid ({} target(s))", cfg.targets.len());
            }
        }
        Command::Sync { target, dry_run, prune } => {
            lakelog::metrics::describe();
            let pipeline = Pipeline::connect(cfg).await?;
            let opts = SyncOptions {
                target: target.clone(),
                dry_run: *dry_run,
                prune: *prune,
                progress: output == Output::Text,
            };
            print(&sync(&pipeline, &opts).await.context("sync failed")?, output)?;
        }
        Command::Run { target, metrics_listen } => {
            let listen = match metrics_listen {
                Some(text) => lakelog::config::parse_listen(text),
                None => cfg.metrics.address(),
            };
            let listen = listen.map_err(|e| usage(format!("--metrics-listen: {e}")))?;
            let handle = lakelog::metrics::serve::install_recorder()?;
            if let Some(addr) = listen {
                lakelog::metrics::serve::serve(addr, handle).await?;
            }
            lakelog::metrics::serve::Health::global().not_ready("pipeline", "connecting to AWS");
            let pipeline = Pipeline::connect(cfg).await?;
            let (tx, rx) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                shutdown_signal().await;
                tracing::info!("shutdown requested: finishing the batch in hand, draining, checkpointing");
                let _ = tx.send(true);
            });
            let report = commands::run::run(&pipeline, target.as_deref(), rx).await.context("run failed")?;
            print(&report, output)?;
        }
        Command::Status { target, scan_limit, max_lag } => {
            let pipeline = Pipeline::connect(cfg).await?;
            let report = commands::status::status(&pipeline, target.as_deref(), *scan_limit).await.context("status")?;
            print(&report, output)?;
            let lagging = max_lag.is_some_and(|max| report.targets.iter().any(|t| t.lag_seconds > max));
            return Ok(exit_code(lagging));
        }
        Command::Diff { target, limit } => {
            let pipeline = Pipeline::connect(cfg).await?;
            let report = commands::diff::diff(&pipeline, target, *limit).await.context("diff")?;
            print(&report, output)?;
            return Ok(exit_code(report.drifted() > 0));
        }
        Command::Restore { at, target, to_file, databases, rename_database, dry_run, show } => {
            let opts = restore_options(at, target, to_file, databases, rename_database, *dry_run, *show)?;
            let pipeline = Pipeline::connect(cfg).await?;
            let report = commands::restore::restore(&pipeline, &opts).await.context("restore")?;
            print(&report, output)?;
            return Ok(exit_code(report.stats.total().dead_lettered > 0));
        }
        Command::History { object, lf_tag, catalog, since, until } => {
            let time = |t: &Option<String>| -> anyhow::Result<Option<i64>> {
                match t {
                    None => Ok(None),
                    Some(text) => match commands::restore::At::parse(text) {
                        Ok(commands::restore::At::Time(ms)) => Ok(Some(ms)),
                        _ => Err(usage(format!("`{text}` is not an RFC 3339 time (2026-12-01T09:41:00Z)"))),
                    },
                }
            };
            let (since, until) = (time(since)?, time(until)?);
            use commands::history::Subject;
            let subject = match (object, lf_tag) {
                (Some(o), _) => Subject::Object(o.clone()),
                (None, Some(tag)) => Subject::LfTag(tag.clone()),
                (None, None) if *catalog => Subject::Catalog,
                (None, None) => {
                    return Err(usage("name an object (db, db.table, db.table/values), --lf-tag KEY or --catalog"))
                }
            };
            // A name that cannot name an object is a usage error, found before connecting.
            subject.key("").map_err(usage)?;
            let pipeline = Pipeline::connect(cfg).await?;
            let report =
                commands::history::object_history(&pipeline, &subject, since, until).await.context("history")?;
            print(&report, output)?;
        }
        Command::Archive => {
            let pipeline = Pipeline::connect(cfg).await?;
            let (tx, rx) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                shutdown_signal().await;
                let _ = tx.send(true);
            });
            print(&commands::archive::archive(&pipeline, rx).await.context("archive")?, output)?;
        }
        Command::Compact { force } => {
            let pipeline = Pipeline::connect(cfg).await?;
            print(&commands::compact::compact_now(&pipeline, *force).await.context("compact")?, output)?;
        }
        Command::Dlq(command) => {
            let pipeline = Pipeline::connect(cfg).await?;
            match command {
                Dlq::List { target } => {
                    print(&dlq::list(&pipeline, target.as_deref()).await.context("dlq list")?, output)?;
                }
                Dlq::Replay { target, ids, dry_run } => {
                    let report = dlq::replay(&pipeline, target, ids, *dry_run).await.context("dlq replay")?;
                    print(&report, output)?;
                    return Ok(exit_code(report.failing() > 0));
                }
                Dlq::Drop { target, ids } => {
                    let dropped = dlq::drop(&pipeline, target, ids).await.context("dlq drop")?;
                    // One line of JSON, as scripts have always read it.
                    match output {
                        Output::Json => println!("{}", serde_json::to_string(&dropped)?),
                        Output::Text => print!("{dropped}"),
                    }
                }
            }
        }
        Command::Simulate(Simulate::Route { queue }) => {
            // The queue URL alone, whatever the output format: scripts pass it on as it is.
            println!("{}", simulate::route(&cfg, queue).await?.queue_url);
        }
        Command::Simulate(Simulate::Burst { catalog, drop_every }) => {
            print_aside(&simulate::burst(&cfg, &catalog.spec(), *drop_every).await?, output)?;
        }
        Command::Simulate(Simulate::Seed(catalog)) => {
            print_aside(&simulate::seed(&cfg, &catalog.spec()).await?, output)?;
        }
    }
    Ok(ExitCode::from(exit::OK))
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_json);
    let output = cli.output;
    match run(cli).await {
        Ok(code) => code,
        Err(e) => report_failure(&e, output),
    }
}
