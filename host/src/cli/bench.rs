//! `lineage bench`: what the parts cost. `plugin` measures the WebAssembly
//! boundary and fuel metering against the same enrichment compiled into
//! the host; `pipeline` the pipeline without Kafka; `kafka` the pipeline
//! end to end next to a plain consumer of the same topic.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::CommandError;
use crate::events::{EventKind, value};
use crate::plugin::{KafkaRecord, Outcomes, PluginConfig, PluginRuntime, PluginWorker, ValueRef};

#[derive(Debug, clap::Args)]
pub struct PluginBenchArgs {
    /// The plugin to measure; it must keep the seed's InputEvent values.
    #[arg(long, env = "PLUGIN_PATH", default_value = "plugins/enrich.wasm")]
    pub component: PathBuf,

    /// Records per measurement.
    #[arg(long, env = "BENCH_RECORDS", default_value_t = 1_000_000)]
    pub records: usize,

    /// Batch sizes to measure the plugin at.
    #[arg(long, env = "BENCH_BATCH_SIZES", value_delimiter = ',', default_values_t = [1, 64, 1024])]
    pub batch_sizes: Vec<usize>,

    #[command(flatten)]
    pub plugin: PluginConfig,
}

/// Records handed to `PluginWorker::process` at a time, as a Kafka fetch
/// would; the worker cuts them into batches.
const CHUNK: usize = 16 * 1024;

struct Measurement {
    path: String,
    batch: Option<usize>,
    elapsed: Duration,
    fuel: Option<u64>,
}

pub fn plugin(args: PluginBenchArgs, out: &mut impl Write) -> Result<(), CommandError> {
    let n = args.records;
    if n == 0 || args.batch_sizes.contains(&0) {
        return Err(CommandError::Bench(
            "--records and --batch-sizes must be positive".into(),
        ));
    }
    let base_ts = 1_732_550_400_000i64;
    let values: Vec<Vec<u8>> = (0..n as u64)
        .map(|i| value(EventKind::Valid, i, base_ts + (i as i64 % 3_600_000)))
        .collect();
    let records: Vec<KafkaRecord<'_>> = values
        .iter()
        .enumerate()
        .map(|(i, v)| KafkaRecord {
            topic: "bench",
            partition: 0,
            offset: i as i64,
            timestamp: Some(base_ts),
            key: None,
            value: Some(v),
            headers: &[],
        })
        .collect();
    let avg_bytes = values.iter().map(Vec::len).sum::<usize>() / n;

    let mut results = Vec::new();
    let mut identity = None;
    let largest = *args.batch_sizes.iter().max().expect("at least one size");
    let mut runs: Vec<(usize, bool)> = args.batch_sizes.iter().map(|&b| (b, true)).collect();
    runs.push((largest, false));
    for (batch, metered) in runs {
        let mut config = args.plugin.clone();
        config.batch_records = batch;
        config.batch_bytes = u64::MAX;
        let runtime = PluginRuntime::with_metering(config, metered)?;
        let plugin = runtime.load(&args.component)?;
        identity.get_or_insert_with(|| plugin.identity().to_string());
        let mut worker = PluginWorker::new(plugin);
        // Warm up: instantiate, fault in memory, fill caches.
        worker.process(&records[..n.min(CHUNK)])?;
        let before = worker.stats().clone();
        let start = Instant::now();
        let mut kept = 0;
        for chunk in records.chunks(CHUNK) {
            kept += worker.process(chunk)?.kept();
        }
        let elapsed = start.elapsed();
        if kept != n {
            return Err(CommandError::Bench(format!(
                "the plugin kept {kept} of {n} valid seed records; it does not implement the seed's enrichment"
            )));
        }
        let fuel = metered.then(|| worker.stats().fuel - before.fuel);
        results.push(Measurement {
            path: if metered {
                "wasm, fuel metered".into()
            } else {
                "wasm, no fuel".into()
            },
            batch: Some(batch),
            elapsed,
            fuel,
        });
    }

    // The seed's enrichment compiled into the host, producing the same rows:
    // the reference for `enrich`, a yardstick for any other plugin.
    let start = Instant::now();
    let mut kept = 0;
    for chunk in records.chunks(CHUNK) {
        let mut outcomes = Outcomes::with_capacity(chunk.len());
        for record in chunk {
            native_enrich(record, &mut outcomes);
        }
        kept += outcomes.kept();
    }
    let native = start.elapsed();
    assert_eq!(kept, n, "native enrichment keeps every valid record");
    results.push(Measurement {
        path: "native enrich".into(),
        batch: None,
        elapsed: native,
        fuel: None,
    });

    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    let mut text = format!(
        "plugin bench: {} | {n} seed records, {avg_bytes} bytes each | one thread\n\n{:<20} {:>6} {:>12} {:>10} {:>12}\n",
        identity.unwrap_or_default(),
        "path",
        "batch",
        "records/s",
        "ns/record",
        "fuel/record"
    );
    for m in &results {
        text += &format!(
            "{:<20} {:>6} {:>12.0} {:>10.0} {:>12}\n",
            m.path,
            m.batch.map_or("-".into(), |b| b.to_string()),
            rate(m.elapsed),
            m.elapsed.as_nanos() as f64 / n as f64,
            m.fuel.map_or("-".into(), |f| (f / n as u64).to_string()),
        );
    }
    let metered_largest = results
        .iter()
        .find(|m| m.batch == Some(largest) && m.fuel.is_some())
        .expect("measured");
    let unmetered = results
        .iter()
        .find(|m| m.fuel.is_none() && m.batch.is_some())
        .expect("measured");
    text += &format!(
        "\nwasm/native enrich at batch {largest}: {:.2}x\nfuel metering costs {:.0}% at batch {largest}\npeak RSS: {}\n",
        rate(metered_largest.elapsed) / rate(native),
        (metered_largest.elapsed.as_secs_f64() / unmetered.elapsed.as_secs_f64() - 1.0) * 100.0,
        peak_rss().map_or("unknown".into(), |kib| format!("{} MiB", kib / 1024)),
    );
    out.write_all(text.as_bytes()).map_err(CommandError::Output)
}

/// The enrichment compiled natively, answering into the same structure
/// the plugin's answer is lifted into.
fn native_enrich(record: &KafkaRecord<'_>, out: &mut Outcomes) {
    match guest_enrich::enrich(record.value) {
        Ok(event) => out.push_keep([
            ValueRef::String(&event.uuid),
            ValueRef::Int64(event.timestamp),
            ValueRef::String(record.topic),
            ValueRef::Int32(record.partition),
            ValueRef::Int64(record.offset),
        ]),
        Err(reason) => out.push_drop(&reason),
    }
}

/// Starts the peak-RSS count over (Linux: writing 5 to clear_refs resets
/// VmHWM), so that one process can measure two runs apart.
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident set of this process in KiB (Linux), the high-water mark
/// since the start or the last reset.
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[derive(Debug, clap::Args)]
pub struct PipelineBenchArgs {
    /// The plugin to run.
    #[arg(long, env = "PLUGIN_PATH", default_value = "plugins/enrich.wasm")]
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

    /// Where to write; a temporary directory by default.
    #[arg(long, env = "BENCH_DIR")]
    pub dir: Option<PathBuf>,
}

/// `lineage bench pipeline`: the pipeline without Kafka, on one thread:
/// records from memory through the plugin into Parquet files on local
/// disk, sealed and committed through the commit log as a checkpoint does.
pub fn pipeline(args: PipelineBenchArgs, out: &mut impl Write) -> Result<(), CommandError> {
    use crate::commit::{
        CommitLog, Committer, OffsetRange, Owner, PluginStamp, Prepared, TopicPartition,
    };
    use crate::sink::{FileSettings, PartitionSink, SinkContext};
    use crate::source::Fetched;
    use crate::store::Location;
    use std::sync::Arc;

    let fail = |e: &dyn std::fmt::Display| CommandError::Bench(e.to_string());
    let temp;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            temp = std::env::temp_dir()
                .join(format!("lineage-bench-{}", uuid::Uuid::new_v4().simple()));
            temp.clone()
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| fail(&e))?;
    let open = |setting, name: &str| {
        Location::open(setting, &dir.join(name).display().to_string()).map_err(|e| fail(&e))
    };
    let (data, dropped, wal) = (
        open("OUTPUT_PATH", "output")?,
        open("DROPPED_PATH", "dropped")?,
        open("WRITE_AHEAD_COMMIT_LOG_PATH", "wal")?,
    );
    let plugin = PluginRuntime::new(PluginConfig::default())?.load(&args.component)?;
    let owner = Owner {
        subtask: 0,
        incarnation: "bench".into(),
    };
    let log = Arc::new(CommitLog::new(wal));
    let mut committer = runtime
        .block_on(Committer::start(
            log.clone(),
            data.clone(),
            dropped.clone(),
            owner.clone(),
            crate::retry::Policy::until(crate::retry::Deadline::default()),
        ))
        .map_err(|e| fail(&e))?;
    let partitions: Vec<TopicPartition> = (0..args.partitions)
        .map(|p| TopicPartition {
            topic: "bench".into(),
            partition: p,
        })
        .collect();
    let claims: Vec<_> = partitions
        .iter()
        .map(|tp| crate::commit::Wanted::assigned(tp.clone(), Some(0), None))
        .collect();
    let claimed = runtime
        .block_on(committer.claim(&claims))
        .map_err(|e| fail(&e))?;
    let cx = SinkContext::new(
        data.clone(),
        dropped.clone(),
        log,
        runtime.handle().clone(),
        owner,
        FileSettings::default(),
        plugin.clone(),
    );
    let mut worker = PluginWorker::new(plugin.clone());
    let mut sinks: Vec<PartitionSink> = partitions
        .iter()
        .map(|tp| PartitionSink::new(tp.clone(), claimed[tp].seq))
        .collect();
    let mut next = vec![0i64; partitions.len()];
    let base_ts = chrono::Utc::now().timestamp_millis();
    let batch = 1024;
    let mut busy = Duration::ZERO;
    let mut produced = 0usize;
    let mut kept = 0usize;
    while produced < args.records {
        let p = (produced / batch) % partitions.len();
        let n = batch.min(args.records - produced);
        let mut fetched = Fetched::new(partitions[p].clone(), claimed[&partitions[p]].seq);
        for i in 0..n {
            let seq = (produced + i) as u64;
            let kind = super::generate::kind_of(seq, args.invalid_share);
            let ts = base_ts + (seq as i64 % 60_000);
            fetched.push(next[p], Some(ts), None, Some(&value(kind, seq, ts)));
            next[p] += 1;
        }
        let started = Instant::now();
        let headers = fetched.header_views();
        let records = fetched.records(&headers);
        let outcomes = worker.process(&records)?;
        kept += outcomes.kept();
        sinks[p]
            .write(&cx, 1, &records, &outcomes)
            .map_err(|e| fail(&e))?;
        busy += started.elapsed();
        produced += n;
    }
    let started = Instant::now();
    let mut files = Vec::new();
    for sink in &mut sinks {
        files.extend(sink.seal_all().map_err(|e| fail(&e))?);
    }
    let prepared = Prepared {
        checkpoint: 1,
        plugin: PluginStamp::default(),
        ranges: partitions
            .iter()
            .zip(&next)
            .filter(|(_, n)| **n > 0)
            .map(|(tp, n)| OffsetRange {
                source: tp.clone(),
                first: 0,
                last: n - 1,
                records: *n as u64,
            })
            .collect(),
        files: files
            .iter()
            .map(|f| f.clone().into_committed(cx.location(f.kind)))
            .collect(),
    };
    let published = runtime
        .block_on(committer.commit(&prepared))
        .map_err(|e| fail(&e))?;
    if let Some(commit) = &published.commit {
        runtime
            .block_on(committer.publish(commit))
            .map_err(|e| fail(&e))?;
    }
    busy += started.elapsed();
    let bytes: u64 = files.iter().map(|f| f.bytes).sum();
    let text = format!(
        "pipeline bench (no Kafka): {} | {} records over {} partitions, {:.0}% invalid | one thread\n\
         \n\
         records/s           {:>12.0}\n\
         ns/record           {:>12.0}\n\
         kept / dropped      {:>12} / {}\n\
         files, bytes        {:>12} / {} ({:.1} bytes/record)\n\
         peak RSS            {:>12}\n\
         output              {}\n",
        plugin.identity(),
        args.records,
        args.partitions,
        args.invalid_share * 100.0,
        args.records as f64 / busy.as_secs_f64(),
        busy.as_nanos() as f64 / args.records as f64,
        kept,
        args.records - kept,
        files.len(),
        bytes,
        bytes as f64 / args.records as f64,
        peak_rss().map_or("unknown".into(), |kib| format!("{} MiB", kib / 1024)),
        dir.display(),
    );
    out.write_all(text.as_bytes())
        .map_err(CommandError::Output)?;
    if args.dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct KafkaBenchArgs {
    #[command(flatten)]
    pub kafka: super::run::KafkaArgs,

    /// Records to read; the topic is filled up to this many first.
    #[arg(long, env = "BENCH_RECORDS", default_value_t = 2_000_000)]
    pub records: usize,

    /// Partitions of the topic, if it has to be created.
    #[arg(long, env = "BENCH_PARTITIONS", default_value_t = 10)]
    pub partitions: i32,

    /// The plugin to run.
    #[arg(
        long = "plugin-path",
        env = "PLUGIN_PATH",
        default_value = "plugins/enrich.wasm"
    )]
    pub plugin_path: PathBuf,

    /// Threads running the plugin and writing files; default: one per core.
    #[arg(long, env = "WORKERS")]
    pub workers: Option<usize>,

    /// The run's memory budget, as for `lineage run`.
    #[arg(long = "memory-budget", env = "MEMORY_BUDGET", default_value = super::run::DEFAULT_MEMORY_BUDGET_TEXT, value_parser = crate::plugin::parse_size)]
    pub memory_budget: u64,

    /// Where the run writes: output/, dropped/ and wal/ go under a fresh
    /// folder here (a directory or s3://bucket/prefix). Default: a
    /// temporary directory, removed afterwards.
    #[arg(long = "store", env = "BENCH_STORE")]
    pub store: Option<String>,

    #[command(flatten)]
    pub s3: super::run::S3Args,

    /// As for `lineage run`: needed on stores that ignore create-if-absent.
    #[arg(long = "single-writer", env = "SINGLE_WRITER")]
    pub single_writer: bool,

    /// Pipelines in one consumer group, each with its own subtask index,
    /// as replicas would run; here they share this machine's cores (the
    /// default worker count is divided among them).
    #[arg(long, env = "BENCH_INSTANCES", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub instances: u32,
}

/// `lineage bench kafka`: over the same records, the rate of a plain
/// consumer that only reads, and the rate of `lineage run` end to end
/// (consumed, through the plugin, written and committed).
pub fn kafka(args: KafkaBenchArgs, out: &mut impl Write) -> Result<(), CommandError> {
    use crate::pipeline::{Stats, StopHandle, run};
    use crate::source::KafkaSettings;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Offset, TopicPartitionList};
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    let fail = |e: &dyn std::fmt::Display| CommandError::Bench(e.to_string());
    let settings = KafkaSettings {
        bootstrap_servers: args.kafka.bootstrap_servers.clone(),
        topic: args.kafka.topic.clone(),
        security_protocol: args.kafka.security_protocol.clone(),
        group_id: format!("lineage-bench-{}", uuid::Uuid::new_v4().simple()),
        properties: args.kafka.properties.clone(),
    };
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
    let path = |name: &str| format!("{root}/{name}");
    let instances = args.instances as usize;
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let workers = args.workers.unwrap_or_else(|| (cores / instances).max(1));
    let mut pipelines = Vec::new();
    for subtask in 0..args.instances {
        let run_args = super::run::RunArgs {
            kafka: args.kafka.clone(),
            s3: args.s3.clone(),
            group_id: settings.group_id.clone() + "-run",
            paths: super::run::PathArgs {
                output_path: path("output"),
                dropped_path: path("dropped"),
                commit_log_path: path("wal"),
            },
            plugin_path: args.plugin_path.clone(),
            checkpoint_interval: Duration::from_secs(2),
            subtask_index: subtask,
            workers: Some(workers),
            memory_budget: args.memory_budget,
            max_file_size: 256 << 20,
            upload_part_size: 5 << 20,
            row_group_size: 8 << 20,
            compression: super::run::Codec::Zstd,
            shutdown_timeout: Duration::from_secs(60),
            single_writer: args.single_writer,
            on_missing_offsets: "skip".into(),
            snapshot_every: crate::commit::DEFAULT_SNAPSHOT_EVERY,
            progress_interval: Duration::ZERO,
            metrics_address: super::run::Listen(None),
            plugin_watch_interval: Duration::ZERO,
            plugin: PluginConfig::default(),
        };
        let stats = Arc::new(Stats::default());
        let (stop, stopped) = StopHandle::new();
        let thread = {
            let (settings, stats) = (run_args.settings(), stats.clone());
            std::thread::spawn(move || run(settings, stats, stopped))
        };
        pipelines.push((thread, stats, stop));
    }
    let consumed = |pipelines: &[(_, Arc<Stats>, _)]| -> u64 {
        pipelines
            .iter()
            .map(|(_, s, _)| s.consumed.load(Ordering::Relaxed))
            .sum()
    };
    let mut first = None;
    // When every instance holds partitions and together all of them: the
    // group has formed, the rate from then on is the steady one.
    let mut formed: Option<(Instant, u64)> = None;
    while consumed(&pipelines) < args.records as u64 {
        if pipelines.iter().any(|(t, _, _)| t.is_finished()) {
            break;
        }
        if first.is_none() && consumed(&pipelines) > 0 {
            first = Some(Instant::now());
        }
        let held: Vec<u64> = pipelines
            .iter()
            .map(|(_, s, _)| s.partitions.load(Ordering::Relaxed))
            .collect();
        if formed.is_none()
            && held.iter().all(|n| *n > 0)
            && held.iter().sum::<u64>() == partitions as u64
        {
            formed = Some((Instant::now(), consumed(&pipelines)));
        }
        std::thread::sleep(Duration::from_millis(5));
    }

    // The rate counts up to the moment the last record is committed: a
    // graceful stop commits what was consumed.
    for (_, _, stop) in &pipelines {
        stop.stop();
    }
    let mut summary = crate::pipeline::Summary::default();
    for (thread, _, _) in pipelines {
        let one = thread
            .join()
            .map_err(|_| CommandError::Bench("pipeline thread panicked".into()))?
            .map_err(|e| fail(&e))?;
        summary.consumed += one.consumed;
        summary.kept += one.kept;
        summary.dropped += one.dropped;
        summary.checkpoints += one.checkpoints;
    }
    let end_to_end = first.map_or(Duration::ZERO, |f| f.elapsed());
    let steady = formed.map(|(at, before)| (summary.consumed.saturating_sub(before), at.elapsed()));
    let run_rss = peak_rss();
    let _ = std::fs::remove_dir_all(&dir);

    // A plain consumer over the same records, with the same fetch settings.
    let consumer: BaseConsumer = crate::source::consumer_config(&settings)
        .set("group.id", &settings.group_id)
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| fail(&e))?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(&settings.topic, p, Offset::Beginning)
            .map_err(|e| fail(&e))?;
    }
    consumer.assign(&tpl).map_err(|e| fail(&e))?;
    let mut read = 0usize;
    let mut bytes = 0usize;
    let mut started = None;
    while read < args.records {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.map_err(|e| fail(&e))?;
            started.get_or_insert_with(Instant::now);
            bytes += rdkafka::message::Message::payload(&m).map_or(0, <[u8]>::len);
            read += 1;
        }
    }
    let raw = started.expect("read something").elapsed();

    let rate = |n: usize, d: Duration| n as f64 / d.as_secs_f64();
    let text = format!(
        "kafka bench: {} at {} | {} records ({:.0} bytes each) over {partitions} partitions\n\
         output under {root}\n\
         \n\
         plain consumer, read only      {:>12.0} records/s\n\
         lineage run, end to end        {:>12.0} records/s  ({} kept, {} dropped, {} checkpoints; {} instance(s) of {workers} worker(s))\n\
         {}\
         ratio                          {:>12.2}\n\
         peak RSS, lineage run          {:>12}\n",
        settings.topic,
        settings.bootstrap_servers,
        args.records,
        bytes as f64 / read as f64,
        rate(read, raw),
        rate(summary.consumed as usize, end_to_end),
        summary.kept,
        summary.dropped,
        summary.checkpoints,
        instances,
        steady.filter(|_| instances > 1).map_or(String::new(), |(n, d)| format!(
            "lineage run, group formed      {:>12.0} records/s  ({n} records after every instance held partitions)\n",
            rate(n as usize, d)
        )),
        rate(summary.consumed as usize, end_to_end) / rate(read, raw),
        run_rss.map_or("unknown".into(), |kib| format!("{} MiB", kib / 1024)),
    );
    out.write_all(text.as_bytes()).map_err(CommandError::Output)
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
