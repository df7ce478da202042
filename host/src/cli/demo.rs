//! `lineage demo`: the whole pipeline on one machine with no broker and no
//! cloud account. librdkafka's in-process mock cluster stands in for Kafka,
//! `generate` feeds it, and the real pipeline writes Parquet and the commit
//! log under ./lineage-data.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, Producer};

use super::generate::{GenerateArgs, GenerateError, generate};
use super::run::KafkaArgs;
use crate::error::{Blame, Classify};
use crate::metrics::{Stats, Summary};
use crate::pipeline::{RunError, RunSettings, StopHandle, run};
use crate::setting;

#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// How long to run; Ctrl-C stops earlier.
    #[arg(long, env = "DEMO_DURATION", default_value = "20s", value_parser = humantime::parse_duration)]
    pub duration: Duration,

    /// Records generated per second.
    #[arg(long, env = "DEMO_RATE", default_value_t = 5000.0)]
    pub rate: f64,

    /// Share of invalid records, which end up in the dropped output.
    #[arg(long, env = "DEMO_INVALID_SHARE", default_value_t = 0.05)]
    pub invalid_share: f64,

    #[arg(long, env = "DEMO_PARTITIONS", default_value_t = 10)]
    pub partitions: i32,

    /// Where output, dropped records and the commit log go.
    #[arg(long, env = "DEMO_DATA_DIR", default_value = "lineage-data")]
    pub data_dir: PathBuf,

    #[arg(long, env = "CHECKPOINT_INTERVAL", default_value = "2s", value_parser = humantime::parse_duration)]
    pub checkpoint_interval: Duration,

    /// The plugin component (.wasm).
    #[arg(
        long = "plugin-path",
        env = setting::PLUGIN_PATH,
        default_value = "plugins/enrich.wasm"
    )]
    pub plugin_path: PathBuf,

    /// Where the status page is served while the demo runs; if it is
    /// taken, a free port is used instead.
    #[arg(long, env = "DEMO_STATUS_ADDRESS", default_value = "127.0.0.1:8484")]
    pub status_address: std::net::SocketAddr,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("mock cluster: {0}")]
    Cluster(rdkafka::error::KafkaError),
    #[error("this librdkafka made no mock cluster")]
    NoMockCluster,
    #[error(transparent)]
    Run(#[from] Box<RunError>),
    #[error("generator: {0}")]
    Generate(Box<GenerateError>),
    #[error("the {0} thread panicked")]
    Panicked(&'static str),
    #[error("writing progress: {0}")]
    Output(std::io::Error),
    #[error("--data-dir {}: {problem}", path.display())]
    DataDir { path: PathBuf, problem: String },
}

impl Classify for DemoError {
    fn blame(&self) -> Blame {
        match self {
            DemoError::Run(e) => e.blame(),
            DemoError::Generate(e) => e.blame(),
            DemoError::DataDir { .. } => Blame::User,
            DemoError::Cluster(_) | DemoError::Output(_) => Blame::Environment,
            DemoError::NoMockCluster | DemoError::Panicked(_) => Blame::Internal,
        }
    }
}

/// The mock cluster is new on every run, so the demo starts from an empty
/// data directory: its own from an earlier run is cleared, anything else
/// is left alone.
fn prepare(dir: &std::path::Path) -> Result<(), DemoError> {
    const MARKER: &str = ".lineage-demo";
    let bad = |problem: String| DemoError::DataDir {
        path: dir.to_owned(),
        problem,
    };
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir).map_err(|e| bad(e.to_string()))?;
        if !dir.join(MARKER).exists() && entries.next().is_some() {
            return Err(bad(
                "exists and was not made by the demo; remove it or choose another --data-dir"
                    .into(),
            ));
        }
        std::fs::remove_dir_all(dir).map_err(|e| bad(e.to_string()))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| bad(e.to_string()))?;
    std::fs::write(
        dir.join(MARKER),
        "made by lineage demo; cleared by its next run\n",
    )
    .map_err(|e| bad(e.to_string()))
}

/// librdkafka's mock cluster, with the demo's topic.
struct Cluster {
    /// The cluster lives inside a client: a producer that sends nothing.
    host: BaseProducer,
    bootstrap: String,
}

const TOPIC: &str = "events";

impl Cluster {
    fn start(partitions: i32) -> Result<Self, DemoError> {
        let host: BaseProducer = ClientConfig::new()
            .set("test.mock.num.brokers", "3")
            .create()
            .map_err(DemoError::Cluster)?;
        let bootstrap = {
            let cluster = host
                .client()
                .mock_cluster()
                .ok_or(DemoError::NoMockCluster)?;
            // A new group waits 3 s for more members before its first
            // assignment, as on a real broker; the demo has one member and
            // no reason to wait.
            // SAFETY: the cluster pointer belongs to `host`, alive here.
            unsafe {
                let mock =
                    rdkafka::bindings::rd_kafka_handle_mock_cluster(host.client().native_ptr());
                rdkafka::bindings::rd_kafka_mock_group_initial_rebalance_delay_ms(mock, 0);
            }
            cluster
                .create_topic(TOPIC, partitions, 1)
                .map_err(DemoError::Cluster)?;
            cluster.bootstrap_servers()
        };
        Ok(Self { host, bootstrap })
    }

    fn kafka(&self) -> KafkaArgs {
        KafkaArgs {
            bootstrap_servers: self.bootstrap.clone(),
            topic: TOPIC.into(),
            security_protocol: "PLAINTEXT".into(),
            sasl_mechanism: None,
            properties: Vec::new(),
        }
    }
}

/// Where the demo writes, under --data-dir.
fn paths(dir: &std::path::Path) -> [String; 3] {
    ["output", "dropped", "write-ahead-commit-log"].map(|name| dir.join(name).display().to_string())
}

/// The demo's status address, or a free port if it is taken. The listener
/// is closed again for the pipeline to bind: a race only with another
/// program choosing the same free port at the same moment.
fn status_address(wanted: std::net::SocketAddr) -> std::net::SocketAddr {
    let free = |at| std::net::TcpListener::bind(at).and_then(|l| l.local_addr());
    free(wanted)
        .or_else(|_| free(std::net::SocketAddr::new(wanted.ip(), 0)))
        .unwrap_or(wanted)
}

fn settings(args: &DemoArgs, cluster: &Cluster, status: std::net::SocketAddr) -> RunSettings {
    let mut kafka = cluster.kafka().settings("lineage-demo");
    // The mock cluster answers fetches slowly unless asked not to wait.
    kafka.properties = vec![("fetch.wait.max.ms".into(), "5".into())];
    let mut settings = RunSettings::new(kafka, paths(&args.data_dir), args.plugin_path.clone());
    settings.checkpoint_interval = args.checkpoint_interval;
    settings.files.max_file_bytes = 64 << 20;
    settings.metrics_address = Some(status);
    settings
}

pub fn demo(args: &DemoArgs, out: &mut impl Write) -> Result<Summary, DemoError> {
    let cluster = Cluster::start(args.partitions)?;
    prepare(&args.data_dir)?;
    let (stop_all, stop_signal) = StopHandle::new();
    super::run::spawn_signal_handler(stop_all).map_err(|e| DemoError::Run(Box::new(e)))?;
    let (stop_generator, generator_stopped) = StopHandle::new();
    let generated = Arc::new(AtomicU64::new(0));
    let generator = {
        let args = GenerateArgs {
            kafka: cluster.kafka(),
            rate: args.rate,
            count: None,
            invalid_share: args.invalid_share,
            start: 0,
            schema_registry: None,
        };
        let generated = generated.clone();
        std::thread::spawn(move || generate(&args, Some(generator_stopped), Some(generated)))
    };
    let stats = Arc::new(Stats::default());
    let (stop_pipeline, pipeline_stopped) = StopHandle::new();
    let status = status_address(args.status_address);
    let pipeline = {
        let (settings, stats) = (settings(args, &cluster, status), stats.clone());
        std::thread::spawn(move || run(settings, stats, pipeline_stopped))
    };
    writeln!(
        out,
        "lineage demo: mock Kafka cluster at {}, topic {TOPIC} ({} partitions), {} records/s ({:.0}% invalid), checkpoint every {}\n",
        cluster.bootstrap,
        args.partitions,
        args.rate,
        args.invalid_share * 100.0,
        humantime::format_duration(args.checkpoint_interval)
    )
    .map_err(DemoError::Output)?;
    writeln!(
        out,
        "status page: http://{status}/  (while the demo runs)\n"
    )
    .map_err(DemoError::Output)?;
    let progress = Progress {
        stats: &stats,
        generated: &generated,
    };
    progress.until(args.duration, &stop_signal, &pipeline, out)?;
    stop_generator.stop();
    let produced = generator
        .join()
        .map_err(|_| DemoError::Panicked("generator"))?
        .map_err(|e| DemoError::Generate(Box::new(e)))?;
    let delivered = produced.records - produced.failed;
    progress.catch_up(delivered, &pipeline);
    stop_pipeline.stop();
    let summary = pipeline
        .join()
        .map_err(|_| DemoError::Panicked("pipeline"))?
        .map_err(|e| DemoError::Run(Box::new(e)))?;
    drop(cluster.host);
    print_summary(out, &args.data_dir, delivered, &summary)?;
    Ok(summary)
}

/// A line a second while the demo runs.
struct Progress<'a> {
    stats: &'a Stats,
    generated: &'a AtomicU64,
}

impl Progress<'_> {
    fn until<T>(
        &self,
        duration: Duration,
        stop: &crossbeam_channel::Receiver<()>,
        pipeline: &std::thread::JoinHandle<T>,
        out: &mut impl Write,
    ) -> Result<(), DemoError> {
        let started = Instant::now();
        let mut last = (Instant::now(), 0u64);
        loop {
            let stopping = stop.recv_timeout(Duration::from_secs(1)).is_ok();
            let s = Summary::of(self.stats);
            let now = Instant::now();
            let rate = (s.consumed - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
            last = (now, s.consumed);
            writeln!(
                out,
                "{:>5.0}s  produced {:>8}  consumed {:>8}  kept {:>8}  dropped {:>7}  checkpoints {:>3}  {:>7.0} records/s",
                started.elapsed().as_secs_f64(),
                self.generated.load(Ordering::Relaxed),
                s.consumed,
                s.kept,
                s.dropped,
                s.checkpoints,
                rate
            )
            .map_err(DemoError::Output)?;
            if stopping || started.elapsed() >= duration || pipeline.is_finished() {
                return Ok(());
            }
        }
    }

    /// Lets the pipeline catch up, so that the summary accounts for every
    /// record produced (bounded: a stuck pipeline is stopped anyway).
    fn catch_up<T>(&self, delivered: u64, pipeline: &std::thread::JoinHandle<T>) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.stats.consumed.load(Ordering::Relaxed) < delivered
            && Instant::now() < deadline
            && !pipeline.is_finished()
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn print_summary(
    out: &mut impl Write,
    dir: &std::path::Path,
    delivered: u64,
    summary: &Summary,
) -> Result<(), DemoError> {
    let [output, dropped, wal] = paths(dir);
    writeln!(
        out,
        "\nproduced {} records, consumed {}: {} kept, {} dropped, in {} checkpoints ({} files)\n\n\
         data:        {output}/year=*/month=*/day=*/hour=*/part-*.parquet\n\
         dropped:     {dropped}/...\n\
         commit log:  {wal}/chk-<N>/subtask-0.csv\n\n\
         Look at them (each of these works on this machine):",
        delivered,
        summary.consumed,
        summary.kept,
        summary.dropped,
        summary.checkpoints,
        summary.files,
    )
    .map_err(DemoError::Output)?;
    for line in look_commands(dir) {
        writeln!(out, "{line}").map_err(DemoError::Output)?;
    }
    Ok(())
}

/// Quotes a word for a POSIX shell when it needs it.
fn sh(word: &str) -> String {
    if word
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-=@:,+".contains(c))
    {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// The closing commands, each printed as `  $ command` and followed by
/// what it shows: only those that work here (this binary; DuckDB and
/// pyarrow only where they are installed).
fn look_commands(dir: &std::path::Path) -> Vec<String> {
    let [output, dropped, wal] = paths(dir);
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "lineage".into());
    let where_ = format!(
        "--output-path {} --dropped-path {} --write-ahead-commit-log-path {}",
        sh(&output),
        sh(&dropped),
        sh(&wal)
    );
    let mut lines = vec![format!("  $ {} status {where_}", sh(&exe))];
    lines.push("      partitions, checkpoints and drop reasons, from the commit log alone".into());
    let (kept, dropped_at, first) = examples(&wal);
    if let Some(record) = kept {
        lines.push(format!("  $ {} trace {record} {where_}", sh(&exe)));
        lines.push("      where a kept record went: its file and row".into());
    }
    if let Some(record) = dropped_at {
        lines.push(format!("  $ {} trace {record} {where_}", sh(&exe)));
        lines.push("      where a dropped record went, and why".into());
    }
    if let Some(checkpoint) = first {
        let view = format!("{wal}/chk-{checkpoint}/subtask-0.csv");
        lines.push(format!("  $ cat {}", sh(&view)));
        lines.push(format!("      the files checkpoint {checkpoint} committed"));
    }
    let has = |program: &str, args: &[&str]| {
        std::process::Command::new(program)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if has("duckdb", &["-c", "select 1"]) {
        let sql = format!(
            "select kafka_partition, count(*) from read_parquet('{output}/**/*.parquet', hive_partitioning = true) group by 1 order by 1"
        );
        lines.push(format!("  $ duckdb -c {}", sh(&sql)));
        lines.push("      kept rows per partition, with SQL".into());
    }
    if has("python3", &["-c", "import pyarrow.dataset"]) {
        let py = format!(
            "import pyarrow.dataset as ds; print(ds.dataset('{output}', partitioning='hive').to_table().slice(0, 5))"
        );
        lines.push(format!("  $ python3 -c {}", sh(&py)));
        lines.push("      the first rows, with pyarrow".into());
    }
    if !has("duckdb", &["-c", "select 1"]) || !has("python3", &["-c", "import pyarrow.dataset"]) {
        lines.push(
            "  To query the Parquet with SQL: pip install duckdb pyarrow (or get the duckdb CLI from duckdb.org)"
                .into(),
        );
    }
    lines
}

/// A kept and a dropped record of the run, and its first checkpoint, from
/// the commit log.
fn examples(wal: &str) -> (Option<String>, Option<String>, Option<u64>) {
    let read = || -> Option<Vec<crate::commit::Commit>> {
        let location =
            crate::store::Location::open(setting::WRITE_AHEAD_COMMIT_LOG_PATH, wal).ok()?;
        let log = crate::commit::CommitLog::new(location);
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?
            .block_on(log.commits())
            .ok()
    };
    let commits = read().unwrap_or_default();
    let files = || commits.iter().flat_map(|c| c.files.iter());
    let record = |f: &crate::staging::SealedFile, offset: i64| {
        format!("{}/{}@{}", f.source.topic, f.source.partition, offset)
    };
    let kept = files()
        .find(|f| f.kind == crate::staging::FileKind::Data)
        .map(|f| record(f, f.first_offset));
    let dropped = files()
        .find(|f| f.kind == crate::staging::FileKind::Dropped)
        .map(|f| record(f, f.drops.first().map_or(f.first_offset, |d| d.example)));
    let first = commits
        .iter()
        .find(|c| c.checkpoint > 0 && c.owner.subtask == 0)
        .map(|c| c.checkpoint);
    (kept, dropped, first)
}
