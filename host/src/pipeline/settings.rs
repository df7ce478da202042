//! What a run is configured with.

use std::path::PathBuf;
use std::time::Duration;

use crate::commit::MissingOffsets;
use crate::plugin::PluginConfig;
use crate::registry::{InputFormat, RegistrySettings};
use crate::sink::FileSettings;
use crate::source::KafkaSettings;
use crate::store::S3Settings;

/// Everything `lineage run` is configured with.
#[derive(Debug, Clone)]
pub struct RunSettings {
    pub kafka: KafkaSettings,
    pub output: String,
    pub dropped: String,
    pub commit_log: String,
    /// For the three paths above that are s3://.
    pub s3: S3Settings,
    pub plugin_path: PathBuf,
    pub plugin: PluginConfig,
    /// How values are laid out (INPUT_FORMAT).
    pub input_format: InputFormat,
    /// Where framed values' writer schemas come from.
    pub registry: Option<RegistrySettings>,
    pub checkpoint_interval: Duration,
    pub subtask: u32,
    pub workers: usize,
    pub memory_budget: u64,
    pub files: FileSettings,
    pub shutdown_timeout: Duration,
    pub single_writer: bool,
    /// What to do about offsets Kafka no longer has or never had.
    pub on_missing_offsets: MissingOffsets,
    /// Records per batch handed to a worker.
    pub batch_records: usize,
    /// Commits between snapshots of the log's state.
    pub snapshot_every: u64,
    /// How often a progress line is logged; `None`: never.
    pub progress_interval: Option<Duration>,
    /// Where /metrics, /healthz and /readyz are served; `None`: nowhere.
    pub metrics_address: Option<std::net::SocketAddr>,
    /// How often PLUGIN_PATH is checked for a new component; `None`: only
    /// on SIGHUP.
    pub plugin_watch: Option<Duration>,
    /// TABLE_FORMAT=iceberg: the catalog and the tables; `None`: files and
    /// the commit log only.
    pub table: Option<crate::table::TableSettings>,
}

impl RunSettings {
    /// `lineage run`'s defaults for everything but what names the topic,
    /// the paths and the plugin, with nothing served or logged on a timer
    /// and no watching of PLUGIN_PATH: a run embedded in another command
    /// (the demo, the benchmarks, tests) turns on what it wants.
    pub fn new(kafka: KafkaSettings, paths: [String; 3], plugin_path: PathBuf) -> Self {
        let [output, dropped, commit_log] = paths;
        let plugin = PluginConfig::default();
        Self {
            kafka,
            output,
            dropped,
            commit_log,
            s3: S3Settings::default(),
            plugin_path,
            input_format: InputFormat::default(),
            registry: None,
            batch_records: plugin.batch_records,
            plugin,
            checkpoint_interval: Duration::from_secs(60),
            subtask: 0,
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            memory_budget: DEFAULT_MEMORY_BUDGET,
            files: FileSettings::default(),
            shutdown_timeout: Duration::from_secs(30),
            single_writer: false,
            on_missing_offsets: MissingOffsets::default(),
            snapshot_every: crate::commit::DEFAULT_SNAPSHOT_EVERY,
            progress_interval: None,
            metrics_address: None,
            plugin_watch: None,
            table: None,
        }
    }
}

pub const DEFAULT_MEMORY_BUDGET: u64 = 128 << 20;
/// The same, as `--help` shows it.
pub const DEFAULT_MEMORY_BUDGET_TEXT: &str = "128MiB";
