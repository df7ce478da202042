//! `lineage bench pipeline`: the pipeline without Kafka, on one thread:
//! records from memory through the plugin into Parquet files on local
//! disk, sealed and committed through the commit log as a checkpoint does.
//! It is put together by the same steps as `lineage run` ([`Parts`]).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::rss::peak_rss;
use crate::cli::CommandError;
use crate::commit::{Claimed, OffsetRange, PluginStamp, Prepared, Wanted};
use crate::fixtures::{self, SchemaIds};
use crate::partition::TopicPartition;
use crate::pipeline::{Parts, RunSettings};
use crate::plugin::PluginWorker;
use crate::registry::{InputFormat, Reader, RegistrySettings};
use crate::retry::Deadline;
use crate::setting;
use crate::sink::{PartitionSink, SinkContext};
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
    let fed = feed.all(&args)?;
    let started = Instant::now();
    let files = feed.seal()?;
    commit(&mut parts, &partitions, &feed.next, &files)?;
    let busy = fed.busy + started.elapsed();
    let text = report(&args, &parts, &dir, busy, fed.kept, &files);
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

/// The plugin and the partitions' sinks, fed from memory.
struct Feed {
    reader: Reader,
    cx: SinkContext,
    worker: PluginWorker,
    partitions: Vec<TopicPartition>,
    claims: Vec<u64>,
    sinks: Vec<PartitionSink>,
    next: Vec<i64>,
}

struct Fed {
    busy: Duration,
    kept: usize,
}

impl Feed {
    fn new(
        parts: &Parts,
        settings: &RunSettings,
        partitions: &[TopicPartition],
        claimed: &std::collections::BTreeMap<TopicPartition, Claimed>,
    ) -> Self {
        let claims: Vec<u64> = partitions.iter().map(|tp| claimed[tp].seq).collect();
        Self {
            reader: parts.reader.clone(),
            cx: parts.sink_context(settings),
            worker: PluginWorker::new(parts.plugin.clone()),
            sinks: partitions
                .iter()
                .zip(&claims)
                .map(|(tp, claim)| PartitionSink::new(tp.clone(), *claim))
                .collect(),
            partitions: partitions.to_vec(),
            claims,
            next: vec![0; partitions.len()],
        }
    }

    /// Batches of `BATCH` records, each partition in turn.
    fn all(&mut self, args: &PipelineBenchArgs) -> Result<Fed, CommandError> {
        let base_ts = chrono::Utc::now().timestamp_millis();
        let mut fed = Fed {
            busy: Duration::ZERO,
            kept: 0,
        };
        let mut produced = 0usize;
        while produced < args.records {
            let p = (produced / BATCH) % self.partitions.len();
            let n = BATCH.min(args.records - produced);
            let mut fetched = Fetched::new(self.partitions[p].clone(), self.claims[p]);
            for i in 0..n {
                let seq = (produced + i) as u64;
                let kind = crate::cli::generate::kind_of(seq, args.invalid_share);
                let ts = base_ts + (seq as i64 % 60_000);
                let value = match args.input_format.framed() {
                    true => fixtures::framed_value(kind, seq, ts, IDS),
                    false => fixtures::value(kind, seq, ts),
                };
                fetched.push(self.next[p], Some(ts), None, Some(&value));
                self.next[p] += 1;
            }
            let started = Instant::now();
            fed.kept += self.write(p, &fetched)?;
            fed.busy += started.elapsed();
            produced += n;
        }
        Ok(fed)
    }

    fn write(&mut self, p: usize, fetched: &Fetched) -> Result<usize, CommandError> {
        let headers = fetched.header_views();
        let mut records = fetched.records(&headers);
        let outcomes = self
            .reader
            .outcomes::<crate::pipeline::RunError>(&mut self.worker, &mut records)
            .map_err(run_error)?;
        self.sinks[p]
            .write(&self.cx, 1, &records, &outcomes)
            .map_err(run_error)?;
        Ok(outcomes.kept())
    }

    fn seal(&mut self) -> Result<Vec<SealedFile>, CommandError> {
        let mut files = Vec::new();
        for sink in &mut self.sinks {
            files.extend(sink.seal_all().map_err(run_error)?);
        }
        Ok(files)
    }
}

/// Checkpoint 1: every record fed, in one commit, published.
fn commit(
    parts: &mut Parts,
    partitions: &[TopicPartition],
    next: &[i64],
    files: &[SealedFile],
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
        files: files.to_vec(),
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
    kept: usize,
    files: &[SealedFile],
) -> String {
    let bytes: u64 = files.iter().map(|f| f.bytes).sum();
    format!(
        "pipeline bench (no Kafka): {} | {} records over {} partitions, {:.0}% invalid, {:?} input | one thread\n\
         \n\
         records/s           {:>12.0}\n\
         ns/record           {:>12.0}\n\
         kept / dropped      {:>12} / {}\n\
         files, bytes        {:>12} / {} ({:.1} bytes/record)\n\
         peak RSS            {:>12}\n\
         output              {}\n",
        parts.plugin.identity(),
        args.records,
        args.partitions,
        args.invalid_share * 100.0,
        args.input_format,
        args.records as f64 / busy.as_secs_f64(),
        busy.as_nanos() as f64 / args.records as f64,
        kept,
        args.records - kept,
        files.len(),
        bytes,
        bytes as f64 / args.records as f64,
        peak_rss().map_or("unknown".into(), |kib| format!("{} MiB", kib / 1024)),
        dir.display(),
    )
}
