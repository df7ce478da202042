//! `lineage bench pipeline`: the pipeline without Kafka, on one thread:
//! records from memory through a run's worker (the plugin, Parquet files on
//! local disk, the memory budget and its early seals), sealed and
//! committed through the commit log as a checkpoint does. It is put
//! together by the same steps as `lineage run` ([`Parts`]).
//!
//! With `--hours`, event times spread over that many hours, as late data
//! does: every partition then has a file open per hour, which is what the
//! memory budget must hold in check.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use super::rss::peak_rss;
use crate::budget::Budget;
use crate::cli::CommandError;
use crate::commit::{Claimed, OffsetRange, PluginStamp, Prepared, Wanted};
use crate::fixtures::{self, SchemaIds};
use crate::metrics::Stats;
use crate::partition::TopicPartition;
use crate::pipeline::{
    DEFAULT_MEMORY_BUDGET_TEXT, Event, Held, Parts, RunSettings, Worker, WorkerMsg,
};
use crate::plugin::PluginWorker;
use crate::registry::{InputFormat, RegistrySettings};
use crate::retry::Deadline;
use crate::setting;
use crate::source::{Fetched, KafkaSettings};
use crate::staging::SealedFile;

#[derive(Debug, clap::Args)]
pub struct PipelineBenchArgs {
    /// The plugin to run.
    #[arg(long, env = setting::PLUGIN_PATH, default_value = "plugins/enrich.wasm")]
    pub component: PathBuf,

    /// Records to push through.
    #[arg(long, env = "BENCH_RECORDS", default_value_t = 2_000_000)]
    pub records: usize,

    /// Kafka partitions the records are spread over.
    #[arg(long, env = "BENCH_PARTITIONS", default_value_t = 10)]
    pub partitions: i32,

    /// Share of invalid records (they go to the dropped output).
    #[arg(long, env = "BENCH_INVALID_SHARE", default_value_t = 0.05)]
    pub invalid_share: f64,

    /// `confluent`: values in the Confluent wire format, v1 and v2 of the
    /// writer schema interleaved, as `lineage generate --schema-registry`
    /// writes them (their schemas are preloaded: no registry is asked).
    #[arg(long = "input-format", value_enum, default_value_t = InputFormat::Avro)]
    pub input_format: InputFormat,

    /// Event times spread over this many hours before now, every
    /// partition receiving all of them; 0: the last minute.
    #[arg(long, env = "BENCH_HOURS", default_value_t = 0)]
    pub hours: u32,

    /// The memory budget, as for `lineage run`.
    #[arg(long = "memory-budget", env = "MEMORY_BUDGET", default_value = DEFAULT_MEMORY_BUDGET_TEXT, value_parser = crate::plugin::parse_size)]
    pub memory_budget: u64,

    /// Where to write; a temporary directory by default.
    #[arg(long, env = "BENCH_DIR")]
    pub dir: Option<PathBuf>,
}

/// Records per batch, as a fetch would hand them over.
const BATCH: usize = 1024;

pub fn pipeline(args: PipelineBenchArgs, out: &mut impl Write) -> Result<(), CommandError> {
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            std::env::temp_dir().join(format!("lineage-bench-{}", uuid::Uuid::new_v4().simple()))
        }
    };
    let settings = settings(&args, &dir);
    let mut parts = Parts::open(&settings, Deadline::default(), 1, &Arc::default())?;
    if let Some(registry) = parts.reader.registry() {
        registry.preload(IDS.v1, Some(fixtures::INPUT_SCHEMA));
        registry.preload(IDS.v2, Some(fixtures::INPUT_SCHEMA_V2));
        registry.preload(fixtures::UNKNOWN_SCHEMA_ID, None);
    }
    let partitions: Vec<TopicPartition> = (0..args.partitions)
        .map(|p| TopicPartition {
            topic: "bench".into(),
            partition: p,
        })
        .collect();
    let wanted: Vec<_> = partitions
        .iter()
        .map(|tp| Wanted::assigned(tp.clone(), Some(0), None))
        .collect();
    let claimed = parts
        .io
        .block_on(parts.committer.claim(&wanted))
        .map_err(run_error)?;
    let mut feed = Feed::new(&parts, &settings, &partitions, &claimed);
    let mut fed = feed.all(&args)?;
    fed.peak_rss_fed = peak_rss();
    let started = Instant::now();
    let files = Arc::new(feed.seal()?);
    commit(&mut parts, &partitions, &feed.next, &files)?;
    let busy = fed.busy + started.elapsed();
    let text = report(&args, &parts, &dir, busy, &fed, &files);
    out.write_all(text.as_bytes())
        .map_err(CommandError::Output)?;
    if args.dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

fn settings(args: &PipelineBenchArgs, dir: &std::path::Path) -> RunSettings {
    let kafka = KafkaSettings {
        bootstrap_servers: String::new(),
        topic: "bench".into(),
        security_protocol: "PLAINTEXT".into(),
        sasl_mechanism: None,
        group_id: String::new(),
        properties: Vec::new(),
    };
    let paths = ["output", "dropped", "wal"].map(|name| dir.join(name).display().to_string());
    let mut settings = RunSettings::new(kafka, paths, args.component.clone());
    settings.input_format = args.input_format;
    settings.memory_budget = args.memory_budget;
    settings.workers = 1;
    if args.input_format.framed() {
        // Never asked: every id the bench frames with is preloaded.
        settings.registry = Some(RegistrySettings::new("http://registry.invalid"));
    }
    settings
}

/// The ids the bench frames values with.
const IDS: SchemaIds = SchemaIds { v1: 1, v2: 2 };

fn run_error(e: impl Into<crate::pipeline::RunError>) -> CommandError {
    CommandError::Run(Box::new(e.into()))
}

/// A run's worker, fed from memory.
struct Feed {
    worker: Worker,
    held: Held,
    events: Receiver<Event>,
    budget: Arc<Budget>,
    stats: Arc<Stats>,
    partitions: Vec<TopicPartition>,
    claims: Vec<u64>,
    next: Vec<i64>,
}

struct Fed {
    busy: Duration,
    /// The most the budget counted at once.
    peak_budget: u64,
    early_seals: u64,
    /// Before the checkpoint (KiB).
    peak_rss_fed: Option<u64>,
}

impl Feed {
    fn new(
        parts: &Parts,
        settings: &RunSettings,
        partitions: &[TopicPartition],
        claimed: &std::collections::BTreeMap<TopicPartition, Claimed>,
    ) -> Self {
        let budget = Arc::new(Budget::new(settings.memory_budget, 1));
        let stats = Arc::new(Stats::default());
        let (events_tx, events) = crossbeam_channel::unbounded();
        let worker = Worker {
            index: 0,
            workers: 1,
            cx: parts.sink_context(settings),
            plugin: PluginWorker::new(parts.plugin.clone()),
            budget: budget.clone(),
            stats: stats.clone(),
            events: events_tx,
            reader: parts.reader.clone(),
            checkpoint: 1,
        };
        Self {
            worker,
            held: Held::default(),
            events,
            budget,
            stats,
            claims: partitions.iter().map(|tp| claimed[tp].seq).collect(),
            partitions: partitions.to_vec(),
            next: vec![0; partitions.len()],
        }
    }

    /// Batches of `BATCH` records, each partition in turn.
    fn all(&mut self, args: &PipelineBenchArgs) -> Result<Fed, CommandError> {
        let now = chrono::Utc::now().timestamp_millis();
        let spread = match args.hours {
            0 => 60_000,
            h => i64::from(h) * 3_600_000,
        };
        let mut fed = Fed {
            busy: Duration::ZERO,
            peak_budget: 0,
            early_seals: 0,
            peak_rss_fed: None,
        };
        let mut produced = 0usize;
        while produced < args.records {
            let p = (produced / BATCH) % self.partitions.len();
            let n = BATCH.min(args.records - produced);
            let mut fetched = Fetched::new(self.partitions[p].clone(), self.claims[p]);
            for i in 0..n {
                let seq = (produced + i) as u64;
                let kind = crate::cli::generate::kind_of(seq, args.invalid_share);
                // A fixed shuffle of the spread, so that neighbours differ.
                let ts = now - (seq.wrapping_mul(2_654_435_761) % spread as u64) as i64;
                let value = match args.input_format.framed() {
                    true => fixtures::framed_value(kind, seq, ts, IDS),
                    false => fixtures::value(kind, seq, ts),
                };
                // Kafka's timestamp is when it arrived: late data is late
                // in its event time only.
                fetched.push(self.next[p], Some(now), None, Some(&value));
                self.next[p] += 1;
            }
            self.budget.fetched(fetched.bytes());
            let started = Instant::now();
            self.send(WorkerMsg::Batch(fetched))?;
            fed.busy += started.elapsed();
            fed.peak_budget = fed.peak_budget.max(self.budget.used());
            produced += n;
        }
        fed.early_seals = self.stats.early_seals.load(Ordering::Relaxed);
        Ok(fed)
    }

    fn send(&mut self, msg: WorkerMsg) -> Result<(), CommandError> {
        self.worker.handle(&mut self.held, msg).map_err(run_error)?;
        match self.events.try_recv() {
            Ok(Event::Failed(e)) => Err(run_error(e)),
            Ok(Event::Disowned { error, .. }) => Err(run_error(error)),
            _ => Ok(()),
        }
    }

    fn seal(&mut self) -> Result<Vec<SealedFile>, CommandError> {
        self.worker
            .handle(&mut self.held, WorkerMsg::Seal { checkpoint: 1 })
            .map_err(run_error)?;
        match self.events.try_recv() {
            Ok(Event::Sealed(sealed)) => Ok(sealed.files),
            Ok(Event::Failed(e)) => Err(run_error(e)),
            Ok(Event::Disowned { error, .. }) => Err(run_error(error)),
            _ => Err(CommandError::Bench("the worker sealed nothing".into())),
        }
    }
}

/// Checkpoint 1: every record fed, in one commit, published.
fn commit(
    parts: &mut Parts,
    partitions: &[TopicPartition],
    next: &[i64],
    files: &Arc<Vec<SealedFile>>,
) -> Result<(), CommandError> {
    let prepared = Prepared {
        checkpoint: 1,
        plugin: PluginStamp::default(),
        ranges: partitions
            .iter()
            .zip(next)
            .filter(|(_, n)| **n > 0)
            .map(|(tp, n)| OffsetRange {
                source: tp.clone(),
                first: 0,
                last: n - 1,
                records: *n as u64,
            })
            .collect(),
        files: files.clone(),
    };
    let published = parts
        .io
        .block_on(parts.committer.commit(&prepared))
        .map_err(run_error)?;
    if let Some(commit) = &published.commit {
        parts
            .io
            .block_on(parts.committer.publish(commit))
            .map_err(run_error)?;
    }
    Ok(())
}

fn report(
    args: &PipelineBenchArgs,
    parts: &Parts,
    dir: &std::path::Path,
    busy: Duration,
    fed: &Fed,
    files: &[SealedFile],
) -> String {
    let bytes: u64 = files.iter().map(|f| f.bytes).sum();
    let smallest = files.iter().map(|f| f.bytes).min().unwrap_or(0);
    let kept = fed_kept(files);
    let spread = match args.hours {
        0 => "the last minute".to_owned(),
        h => format!("{h} hours"),
    };
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    format!(
        "pipeline bench (no Kafka): {} | {} records over {} partitions, event times over {}, {:.0}% invalid, {:?} input | one worker\n\
         \n\
         records/s           {:>12.0}\n\
         ns/record           {:>12.0}\n\
         kept / dropped      {:>12} / {}\n\
         files, bytes        {:>12} / {} ({:.1} bytes/record)\n\
         smallest file       {:>12} bytes\n\
         early seals         {:>12}\n\
         memory budget       {:>12.1} MiB, counted at most {:.1} MiB\n\
         peak RSS            {:>12} ({} before the checkpoint)\n\
         output              {}\n",
        parts.plugin.identity(),
        args.records,
        args.partitions,
        spread,
        args.invalid_share * 100.0,
        args.input_format,
        args.records as f64 / busy.as_secs_f64(),
        busy.as_nanos() as f64 / args.records as f64,
        kept,
        args.records as u64 - kept,
        files.len(),
        bytes,
        bytes as f64 / args.records as f64,
        smallest,
        fed.early_seals,
        mib(args.memory_budget),
        mib(fed.peak_budget),
        rss(peak_rss()),
        rss(fed.peak_rss_fed),
        dir.display(),
    )
}

fn rss(kib: Option<u64>) -> String {
    kib.map_or("unknown".into(), |kib| {
        format!("{:.1} MiB", kib as f64 / 1024.0)
    })
}

/// Records in data files.
fn fed_kept(files: &[SealedFile]) -> u64 {
    files
        .iter()
        .filter(|f| f.kind == crate::staging::FileKind::Data)
        .map(|f| f.records)
        .sum()
}
