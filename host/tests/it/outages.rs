//! The pipeline in process against librdkafka's mock cluster, where faults
//! are easy to inject: brokers going down and coming back, requests
//! failing. Nothing may be lost or written twice.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

use lineage::cli::generate::{GenerateArgs, generate};
use lineage::cli::run::KafkaArgs;
use lineage::metrics::Stats;
use lineage::pipeline::{RunSettings, StopHandle, run};
use lineage::plugin::PluginConfig;
use lineage::sink::FileSettings;
use lineage::source::KafkaSettings;

use crate::pipeline_support::{
    Paths, assert_exactly_once, ends, read_output, read_topic, wait_committed,
};
use crate::support::components;

const PARTITIONS: i32 = 6;

fn settings(bootstrap: &str, paths: &Paths) -> RunSettings {
    RunSettings {
        kafka: KafkaSettings {
            bootstrap_servers: bootstrap.into(),
            topic: "events".into(),
            security_protocol: "PLAINTEXT".into(),
            sasl_mechanism: None,
            group_id: "outages".into(),
            properties: vec![("fetch.wait.max.ms".into(), "5".into())],
        },
        output: paths.output.clone(),
        dropped: paths.dropped.clone(),
        commit_log: paths.wal.clone(),
        s3: Default::default(),
        plugin_path: components().enrich.clone(),
        input_format: Default::default(),
        registry: None,
        plugin: PluginConfig {
            cache_dir: Some(
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-plugin-cache"),
            ),
            ..PluginConfig::default()
        },
        checkpoint_interval: Duration::from_millis(300),
        subtask: 0,
        workers: 2,
        memory_budget: 64 << 20,
        files: FileSettings::default(),
        shutdown_timeout: Duration::from_secs(30),
        single_writer: false,
        on_missing_offsets: Default::default(),
        batch_records: 512,
        snapshot_every: 5,
        progress_interval: None,
        metrics_address: None,
        plugin_watch: None,
        table: None,
    }
}

/// Produces `count` records; `rate` per second, or as fast as possible at 0.
fn produce(bootstrap: &str, start: u64, count: u64, rate: f64) {
    let args = GenerateArgs {
        kafka: KafkaArgs {
            bootstrap_servers: bootstrap.into(),
            topic: "events".into(),
            security_protocol: "PLAINTEXT".into(),
            sasl_mechanism: None,
            properties: vec![("message.timeout.ms".into(), "120000".into())],
        },
        rate,
        count: Some(count),
        invalid_share: 0.1,
        start,
        schema_registry: None,
    };
    let done = generate(&args, None, None).expect("produce");
    assert_eq!(done.failed, 0, "every record delivered despite the outage");
}

#[test]
fn brokers_going_down_and_failing_requests_lose_and_duplicate_nothing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warn,librdkafka=off,rdkafka=off")
        .with_test_writer()
        .try_init();
    let cluster = MockCluster::new(3).unwrap();
    cluster.create_topic("events", PARTITIONS, 1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    let paths = Paths::new();
    produce(&bootstrap, 0, 6_000, 0.0);

    let (stop, stopped) = StopHandle::new();
    let stats = Arc::new(Stats::default());
    let pipeline = {
        let (settings, stats) = (settings(&bootstrap, &paths), stats.clone());
        std::thread::spawn(move || run(settings, stats, stopped))
    };
    wait_committed(
        &paths,
        "events",
        &ends(&read_topic(&bootstrap, "events", PARTITIONS, 6_000)),
    );

    // A broker leading some partitions goes away while records keep coming;
    // fetches fail for a while; then it comes back.
    cluster.broker_down(2).unwrap();
    cluster.request_errors(
        RDKafkaApiKey::Fetch,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION; 5],
    );
    // Paced over 4 s, so that the partitions still reachable keep getting
    // records, and checkpoints, while the others wait.
    let producer = {
        let bootstrap = bootstrap.clone();
        std::thread::spawn(move || produce(&bootstrap, 6_000, 6_000, 1_500.0))
    };
    // Let the outage bite: the pipeline must keep checkpointing what it
    // can reach and wait for the rest.
    let before = stats.checkpoints.load(std::sync::atomic::Ordering::Relaxed);
    crate::pipeline_support::wait_for(
        "checkpoints during the outage",
        Duration::from_secs(60),
        || stats.checkpoints.load(std::sync::atomic::Ordering::Relaxed) >= before + 3,
    );
    cluster.broker_up(2).unwrap();
    producer.join().expect("producer");

    let contents = read_topic(&bootstrap, "events", PARTITIONS, 12_000);
    wait_committed(&paths, "events", &ends(&contents));
    stop.stop();
    let summary = pipeline
        .join()
        .expect("pipeline thread")
        .expect("pipeline run");
    assert_eq!(summary.consumed, 12_000);
    let (kept, dropped) = assert_exactly_once(&contents, &read_output(&paths));
    assert_eq!(kept + dropped, 12_000);
}
