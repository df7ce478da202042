//! `lineage bench kafka`: over the same records, the rate of a plain
//! consumer that only reads, and the rate of `lineage run` end to end
//! (consumed, through the plugin, written and committed).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::rss::{peak_rss, reset_peak_rss};
use crate::cli::CommandError;
use crate::metrics::{Stats, Summary};
use crate::pipeline::{DEFAULT_MEMORY_BUDGET_TEXT, RunError, RunSettings, StopHandle, run};
use crate::setting;
use crate::source::{KafkaSettings, SourceError};

#[derive(Debug, clap::Args)]
pub struct KafkaBenchArgs {
    #[command(flatten)]
    pub kafka: crate::cli::run::KafkaArgs,

    /// Records to read; the topic is filled up to this many first.
    #[arg(long, env = "BENCH_RECORDS", default_value_t = 2_000_000)]
    pub records: usize,

    /// Partitions of the topic, if it has to be created.
    #[arg(long, env = "BENCH_PARTITIONS", default_value_t = 10)]
    pub partitions: i32,

    /// The plugin to run.
    #[arg(
        long = "plugin-path",
        env = setting::PLUGIN_PATH,
        default_value = "plugins/enrich.wasm"
    )]
    pub plugin_path: PathBuf,

    /// Threads running the plugin and writing files; default: one per core.
    #[arg(long, env = setting::WORKERS)]
    pub workers: Option<usize>,

    /// The run's memory budget, as for `lineage run`.
    #[arg(long = "memory-budget", env = "MEMORY_BUDGET", default_value = DEFAULT_MEMORY_BUDGET_TEXT, value_parser = crate::plugin::parse_size)]
    pub memory_budget: u64,

    /// Where the run writes: output/, dropped/ and wal/ go under a fresh
    /// folder here (a directory or s3://bucket/prefix). Default: a
    /// temporary directory, removed afterwards.
    #[arg(long = "store", env = "BENCH_STORE")]
    pub store: Option<String>,

    #[command(flatten)]
    pub s3: crate::cli::run::S3Args,

    /// As for `lineage run`: needed on stores that ignore create-if-absent.
    #[arg(long = "single-writer", env = "SINGLE_WRITER")]
    pub single_writer: bool,

    /// Pipelines in one consumer group, each with its own subtask index,
    /// as replicas would run; here they share this machine's cores (the
    /// default worker count is divided among them).
    #[arg(long, env = "BENCH_INSTANCES", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub instances: u32,

    /// How often the pipelines commit.
    #[arg(long = "checkpoint-interval", env = "CHECKPOINT_INTERVAL", default_value = "2s", value_parser = humantime::parse_duration)]
    pub checkpoint_interval: Duration,

    /// TABLE_FORMAT=iceberg appends each checkpoint to a table too; with
    /// no ICEBERG_CATALOG_URI, to a sqlite catalog in the run's folder.
    #[command(flatten)]
    pub table: crate::cli::table::TableArgs,
}

pub fn kafka(args: KafkaBenchArgs, out: &mut impl Write) -> Result<(), CommandError> {
    let settings = args
        .kafka
        .settings(&format!("lineage-bench-{}", uuid::Uuid::new_v4().simple()));
    let partitions = fill_topic(&args, &settings)?;
    // The pipeline first, in a process whose memory nothing else has used
    // yet (the topic was filled by a child process): its peak RSS is the
    // pipeline's own.
    reset_peak_rss();
    let run_id = format!("lineage-bench-{}", uuid::Uuid::new_v4().simple());
    let dir = std::env::temp_dir().join(&run_id);
    let root = match &args.store {
        Some(store) => format!("{}/{run_id}", store.trim_end_matches('/')),
        None => dir.display().to_string(),
    };
    let mut table = args.table.clone();
    if table.table_format == crate::table::TableFormat::Iceberg && table.catalog_uri.is_empty() {
        std::fs::create_dir_all(&dir).map_err(CommandError::Output)?;
        table.catalog_uri = format!("sqlite://{}/catalog.db", dir.display());
    }
    let table = table
        .settings()
        .map_err(|e| CommandError::Run(Box::new(RunError::Table(e))))?;
    let group = Group::start(&args, &settings, &root, &table)?;
    let measured = group.measure(args.records as u64, partitions as u64)?;
    let run_rss = peak_rss();
    let _ = std::fs::remove_dir_all(&dir);
    let plain = plain_consumer(&settings, partitions, args.records)?;
    let text = report(
        &args, &settings, &root, partitions, &measured, &plain, run_rss,
    );
    out.write_all(text.as_bytes()).map_err(CommandError::Output)
}

type Instance = (
    JoinHandle<Result<Summary, RunError>>,
    Arc<Stats>,
    StopHandle,
);

/// Pipelines in one consumer group, as replicas would run.
struct Group {
    instances: Vec<Instance>,
    workers: usize,
}

/// What the pipelines did, and how long it took.
struct Measured {
    summary: Summary,
    end_to_end: Duration,
    /// Records and time once every instance held partitions.
    steady: Option<(u64, Duration)>,
    instances: usize,
    workers: usize,
}

impl Group {
    fn start(
        args: &KafkaBenchArgs,
        kafka: &KafkaSettings,
        root: &str,
        table: &Option<crate::table::TableSettings>,
    ) -> Result<Self, CommandError> {
        let instances = args.instances as usize;
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let workers = args.workers.unwrap_or_else(|| (cores / instances).max(1));
        let mut started = Vec::new();
        for subtask in 0..args.instances {
            let mut kafka = kafka.clone();
            kafka.group_id += "-run";
            let paths = ["output", "dropped", "wal"].map(|name| format!("{root}/{name}"));
            let mut settings = RunSettings::new(kafka, paths, args.plugin_path.clone());
            settings.s3 = args.s3.settings();
            settings.checkpoint_interval = args.checkpoint_interval;
            settings.table = table.clone();
            settings.subtask = subtask;
            settings.workers = workers;
            settings.memory_budget = args.memory_budget;
            settings.shutdown_timeout = Duration::from_secs(60);
            settings.single_writer = args.single_writer;
            let stats = Arc::new(Stats::default());
            let (stop, stopped) = StopHandle::new();
            let thread = {
                let stats = stats.clone();
                std::thread::spawn(move || run(settings, stats, stopped))
            };
            started.push((thread, stats, stop));
        }
        Ok(Self {
            instances: started,
            workers,
        })
    }

    fn consumed(&self) -> u64 {
        self.instances
            .iter()
            .map(|(_, s, _)| s.consumed.load(Ordering::Relaxed))
            .sum()
    }

    /// Every instance holds partitions, and together all of them: the
    /// group has formed, and the rate from then on is the steady one.
    fn formed(&self, partitions: u64) -> bool {
        let held: Vec<u64> = self
            .instances
            .iter()
            .map(|(_, s, _)| s.partitions.load(Ordering::Relaxed))
            .collect();
        held.iter().all(|n| *n > 0) && held.iter().sum::<u64>() == partitions
    }

    /// Until `records` are consumed; the rate counts up to the moment the
    /// last is committed, since a graceful stop commits what was consumed.
    fn measure(self, records: u64, partitions: u64) -> Result<Measured, CommandError> {
        let mut first = None;
        let mut formed: Option<(Instant, u64)> = None;
        while self.consumed() < records {
            if self.instances.iter().any(|(t, _, _)| t.is_finished()) {
                break;
            }
            if first.is_none() && self.consumed() > 0 {
                first = Some(Instant::now());
            }
            if formed.is_none() && self.formed(partitions) {
                formed = Some((Instant::now(), self.consumed()));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        for (_, _, stop) in &self.instances {
            stop.stop();
        }
        let instances = self.instances.len();
        let mut summary = Summary::default();
        for (thread, _, _) in self.instances {
            let one = thread
                .join()
                .map_err(|_| CommandError::Bench("pipeline thread panicked".into()))?
                .map_err(|e| CommandError::Run(Box::new(e)))?;
            summary.consumed += one.consumed;
            summary.kept += one.kept;
            summary.dropped += one.dropped;
            summary.checkpoints += one.checkpoints;
        }
        Ok(Measured {
            end_to_end: first.map_or(Duration::ZERO, |f| f.elapsed()),
            steady: formed
                .map(|(at, before)| (summary.consumed.saturating_sub(before), at.elapsed())),
            summary,
            instances,
            workers: self.workers,
        })
    }
}

/// Records read, their bytes, and the time, by a consumer that only reads.
struct Plain {
    read: usize,
    bytes: usize,
    elapsed: Duration,
}

/// A plain consumer over the same records, with the same fetch settings.
fn plain_consumer(
    settings: &KafkaSettings,
    partitions: i32,
    records: usize,
) -> Result<Plain, CommandError> {
    let kafka = |e| CommandError::Run(Box::new(RunError::Source(SourceError::Kafka(e))));
    let consumer: BaseConsumer = crate::source::consumer_config(settings)
        .set("group.id", &settings.group_id)
        .set("enable.auto.commit", "false")
        .create()
        .map_err(kafka)?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(&settings.topic, p, Offset::Beginning)
            .map_err(kafka)?;
    }
    consumer.assign(&tpl).map_err(kafka)?;
    let (mut read, mut bytes, mut started) = (0usize, 0usize, None);
    while read < records {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.map_err(kafka)?;
            started.get_or_insert_with(Instant::now);
            bytes += rdkafka::message::Message::payload(&m).map_or(0, <[u8]>::len);
            read += 1;
        }
    }
    Ok(Plain {
        read,
        bytes,
        elapsed: started.expect("read something").elapsed(),
    })
}

fn report(
    args: &KafkaBenchArgs,
    settings: &KafkaSettings,
    root: &str,
    partitions: i32,
    m: &Measured,
    plain: &Plain,
    run_rss: Option<u64>,
) -> String {
    let rate = |n: usize, d: Duration| n as f64 / d.as_secs_f64();
    let (plain_rate, run_rate) = (
        rate(plain.read, plain.elapsed),
        rate(m.summary.consumed as usize, m.end_to_end),
    );
    let steady = m.steady.filter(|_| m.instances > 1).map_or(String::new(), |(n, d)| {
        format!(
            "lineage run, group formed      {:>12.0} records/s  ({n} records after every instance held partitions)\n",
            rate(n as usize, d)
        )
    });
    format!(
        "kafka bench: {} at {} | {} records ({:.0} bytes each) over {partitions} partitions\n\
         output under {root}, checkpoints every {}, table format {:?}\n\
         \n\
         plain consumer, read only      {plain_rate:>12.0} records/s\n\
         lineage run, end to end        {run_rate:>12.0} records/s  ({} kept, {} dropped, {} checkpoints; {} instance(s) of {} worker(s))\n\
         {steady}\
         ratio                          {:>12.2}\n\
         peak RSS, lineage run          {:>12}\n",
        settings.topic,
        settings.bootstrap_servers,
        args.records,
        plain.bytes as f64 / plain.read as f64,
        humantime::format_duration(args.checkpoint_interval),
        args.table.table_format,
        m.summary.kept,
        m.summary.dropped,
        m.summary.checkpoints,
        m.instances,
        m.workers,
        run_rate / plain_rate,
        run_rss.map_or("unknown".into(), |kib| format!("{} MiB", kib / 1024)),
    )
}

/// Creates the topic if needed and produces until it holds `records`.
fn fill_topic(
    args: &KafkaBenchArgs,
    settings: &crate::source::KafkaSettings,
) -> Result<i32, CommandError> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::consumer::{BaseConsumer, Consumer};

    let fail = |e: &dyn std::fmt::Display| CommandError::Bench(e.to_string());
    let admin: AdminClient<DefaultClientContext> = crate::source::producer_config(settings)
        .create()
        .map_err(|e| fail(&e))?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| fail(&e))?;
    let _ = runtime.block_on(admin.create_topics(
        &[NewTopic::new(
            &settings.topic,
            args.partitions,
            TopicReplication::Fixed(1),
        )],
        &AdminOptions::new(),
    ));
    let probe: BaseConsumer = crate::source::consumer_config(settings)
        .set("group.id", "lineage-bench-probe")
        .create()
        .map_err(|e| fail(&e))?;
    let partitions = crate::source::check_topic(&probe, settings).map_err(|e| fail(&e))? as i32;
    // High watermarks say how much is there (tansu's lag by a batch at
    // most, which only makes the fill produce a little extra).
    let held: i64 = (0..partitions)
        .map(|p| {
            probe
                .fetch_watermarks(&settings.topic, p, Duration::from_secs(10))
                .map(|(low, high)| high - low)
                .unwrap_or(0)
        })
        .sum();
    if (held as usize) < args.records {
        let missing = args.records - held as usize;
        eprintln!("bench: producing {missing} records to {}", settings.topic);
        // In a child process, so that the producer's memory does not count
        // in the pipeline's peak RSS.
        let exe = std::env::current_exe().map_err(|e| fail(&e))?;
        let mut generate = std::process::Command::new(exe);
        generate
            .args(["generate", "--rate", "0", "--invalid-share", "0.05"])
            .args([
                "--count",
                &missing.to_string(),
                "--start",
                &held.to_string(),
            ])
            .args(["--kafka-bootstrap-servers", &settings.bootstrap_servers])
            .args(["--kafka-topic", &settings.topic])
            .args(["--kafka-security-protocol", &settings.security_protocol]);
        for (k, v) in settings.properties.iter().filter(|(k, _)| !k.is_empty()) {
            generate.arg(format!("--kafka-property={k}={v}"));
        }
        let status = generate.status().map_err(|e| fail(&e))?;
        if !status.success() {
            return Err(CommandError::Bench(format!(
                "filling the topic failed: lineage generate {status}"
            )));
        }
    }
    Ok(partitions)
}
