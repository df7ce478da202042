//! `lineage bench plugin`: the WebAssembly boundary and fuel metering,
//! against the same enrichment compiled into the host.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::rss::peak_rss;
use crate::cli::CommandError;
use crate::fixtures::{EventKind, value};
use crate::plugin::{KafkaRecord, Outcomes, PluginConfig, PluginRuntime, PluginWorker, ValueRef};
use crate::setting;

#[derive(Debug, clap::Args)]
pub struct PluginBenchArgs {
    /// The plugin to measure; it must keep the seed's InputEvent values.
    #[arg(long, env = setting::PLUGIN_PATH, default_value = "plugins/enrich.wasm")]
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

/// Records handed to `PluginWorker::process` at a time, as the pipeline
/// hands it a partition's batch (cut at --plugin-batch-records, 1024 by
/// default); the worker cuts them into calls.
const CHUNK: usize = 1024;

struct Measurement {
    path: String,
    batch: Option<usize>,
    elapsed: Duration,
    fuel: Option<u64>,
}

const BASE_TS: i64 = 1_732_550_400_000;

pub fn plugin(args: PluginBenchArgs, out: &mut impl Write) -> Result<(), CommandError> {
    let n = args.records;
    if n == 0 || args.batch_sizes.contains(&0) {
        return Err(CommandError::Bench(
            "--records and --batch-sizes must be positive".into(),
        ));
    }
    let values: Vec<Vec<u8>> = (0..n as u64)
        .map(|i| value(EventKind::Valid, i, BASE_TS + (i as i64 % 3_600_000)))
        .collect();
    let records: Vec<KafkaRecord<'_>> = values
        .iter()
        .enumerate()
        .map(|(i, v)| KafkaRecord {
            topic: "bench",
            partition: 0,
            offset: i as i64,
            timestamp: Some(BASE_TS),
            key: None,
            value: Some(v),
            headers: &[],
            schema_id: None,
        })
        .collect();
    let avg_bytes = values.iter().map(Vec::len).sum::<usize>() / n;
    let largest = *args.batch_sizes.iter().max().expect("at least one size");
    let mut runs: Vec<(usize, bool)> = args.batch_sizes.iter().map(|&b| (b, true)).collect();
    runs.push((largest, false));
    let mut results = Vec::new();
    let mut identity = None;
    for (batch, metered) in runs {
        let (m, name) = measure_wasm(&args, &records, batch, metered)?;
        identity.get_or_insert(name);
        results.push(m);
    }
    results.push(measure_native(&records));
    let text = report(
        &results,
        identity.unwrap_or_default(),
        n,
        avg_bytes,
        largest,
    );
    out.write_all(text.as_bytes()).map_err(CommandError::Output)
}

/// The plugin at one batch size, with fuel on or off.
fn measure_wasm(
    args: &PluginBenchArgs,
    records: &[KafkaRecord<'_>],
    batch: usize,
    metered: bool,
) -> Result<(Measurement, String), CommandError> {
    let n = records.len();
    let mut config = args.plugin.clone();
    config.batch_records = batch;
    config.batch_bytes = u64::MAX;
    let runtime = PluginRuntime::with_metering(config, metered)?;
    let plugin = runtime.load(&args.component)?;
    let identity = plugin.identity().to_string();
    let mut worker = PluginWorker::new(plugin);
    // Warm up: instantiate, fault in memory, fill caches.
    worker.process(&records[..n.min(CHUNK)])?;
    let before = worker.stats().clone();
    let start = Instant::now();
    let mut kept = 0;
    for chunk in records.chunks(CHUNK) {
        let outcomes = worker.process(chunk)?;
        kept += outcomes.kept();
        worker.recycle(outcomes);
    }
    let elapsed = start.elapsed();
    if kept != n {
        return Err(CommandError::Bench(format!(
            "the plugin kept {kept} of {n} valid seed records; it does not implement the seed's enrichment"
        )));
    }
    let measurement = Measurement {
        path: if metered {
            "wasm, fuel metered".into()
        } else {
            "wasm, no fuel".into()
        },
        batch: Some(batch),
        elapsed,
        fuel: metered.then(|| worker.stats().fuel - before.fuel),
    };
    Ok((measurement, identity))
}

/// The seed's enrichment compiled into the host, producing the same rows:
/// the reference for `enrich`, a yardstick for any other plugin.
fn measure_native(records: &[KafkaRecord<'_>]) -> Measurement {
    let start = Instant::now();
    let mut kept = 0;
    // One arena for every chunk, as the plugin path's worker keeps.
    let mut outcomes = Outcomes::default();
    for chunk in records.chunks(CHUNK) {
        outcomes.clear();
        for record in chunk {
            native_enrich(record, &mut outcomes);
        }
        kept += outcomes.kept();
    }
    assert_eq!(
        kept,
        records.len(),
        "native enrichment keeps every valid record"
    );
    Measurement {
        path: "native enrich".into(),
        batch: None,
        elapsed: start.elapsed(),
        fuel: None,
    }
}

fn report(
    results: &[Measurement],
    identity: String,
    n: usize,
    avg_bytes: usize,
    largest: usize,
) -> String {
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    let mut text = format!(
        "plugin bench: {identity} | {n} seed records, {avg_bytes} bytes each | one thread\n\n{:<20} {:>6} {:>12} {:>10} {:>12}\n",
        "path", "batch", "records/s", "ns/record", "fuel/record"
    );
    for m in results {
        text += &format!(
            "{:<20} {:>6} {:>12.0} {:>10.0} {:>12}\n",
            m.path,
            m.batch.map_or("-".into(), |b| b.to_string()),
            rate(m.elapsed),
            m.elapsed.as_nanos() as f64 / n as f64,
            m.fuel.map_or("-".into(), |f| (f / n as u64).to_string()),
        );
    }
    let find = |batch: Option<usize>, metered: bool| {
        results
            .iter()
            .find(|m| {
                m.batch.is_some() == batch.is_some()
                    && (batch.is_none() || m.batch == batch)
                    && m.fuel.is_some() == metered
            })
            .expect("measured")
    };
    let (metered, unmetered, native) = (
        find(Some(largest), true),
        find(Some(largest), false),
        find(None, false),
    );
    text += &format!(
        "\nwasm/native enrich at batch {largest}: {:.2}x\nfuel metering costs {:.0}% at batch {largest}\npeak RSS: {}\n",
        rate(metered.elapsed) / rate(native.elapsed),
        (metered.elapsed.as_secs_f64() / unmetered.elapsed.as_secs_f64() - 1.0) * 100.0,
        peak_rss().map_or("unknown".into(), |kib| format!("{} MiB", kib / 1024)),
    );
    text
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
