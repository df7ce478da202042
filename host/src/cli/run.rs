//! `lineage run`: the production job, configured by the seed's environment
//! variables.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parquet::basic::{Compression, ZstdLevel};

use crate::metrics::{Stats, Summary};
use crate::pipeline::{DEFAULT_MEMORY_BUDGET_TEXT, RunError, RunSettings, StopHandle, run};
use crate::plugin::{PluginConfig, parse_size};
use crate::registry::{InputFormat, RegistrySettings, UserInfo};
use crate::setting;
use crate::source::{KafkaSettings, parse_property};
use crate::store::S3Settings;

#[derive(Debug, Clone, clap::Args)]
pub struct KafkaArgs {
    /// Kafka brokers, host:port[,host:port...].
    #[arg(long = "kafka-bootstrap-servers", env = "KAFKA_BOOTSTRAP_SERVERS")]
    pub bootstrap_servers: String,

    /// The topic to read (or, for `generate`, to write).
    #[arg(long = "kafka-topic", env = "KAFKA_TOPIC")]
    pub topic: String,

    /// PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (MSK over TLS: SSL).
    #[arg(
        long = "kafka-security-protocol",
        env = "KAFKA_SECURITY_PROTOCOL",
        default_value = "PLAINTEXT"
    )]
    pub security_protocol: String,

    /// SASL mechanism: AWS_MSK_IAM signs SASL/OAUTHBEARER tokens from the
    /// AWS credential chain (IRSA included) and implies SASL_SSL; PLAIN,
    /// SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER go to librdkafka as
    /// they are (with sasl.username and sasl.password in KAFKA_PROPERTIES).
    #[arg(long = "kafka-sasl-mechanism", env = setting::KAFKA_SASL_MECHANISM)]
    pub sasl_mechanism: Option<String>,

    /// Any librdkafka property as key=value, repeatable; in KAFKA_PROPERTIES
    /// comma-separated. Wins over Lineage's own settings.
    #[arg(long = "kafka-property", env = setting::KAFKA_PROPERTIES, value_delimiter = ',', value_parser = parse_property)]
    pub properties: Vec<(String, String)>,
}

/// S3 addressing; credentials come from the standard AWS chain
/// (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_WEB_IDENTITY_TOKEN_FILE +
/// AWS_ROLE_ARN for IRSA, instance metadata).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct S3Args {
    /// S3-compatible endpoint (MinIO, R2, garage); an http:// URL allows
    /// plain HTTP. Default: AWS S3 of the region.
    #[arg(long = "s3-endpoint", env = "AWS_ENDPOINT_URL")]
    pub endpoint: Option<String>,

    /// Region of the bucket(s).
    #[arg(long = "s3-region", env = "AWS_REGION")]
    pub region: Option<String>,

    /// Address buckets as bucket.endpoint rather than endpoint/bucket
    /// (path-style, the default).
    #[arg(
        long = "s3-virtual-hosted-style",
        env = "AWS_VIRTUAL_HOSTED_STYLE_REQUEST"
    )]
    pub virtual_hosted_style: bool,
}

impl S3Args {
    pub fn settings(&self) -> S3Settings {
        S3Settings {
            endpoint: self.endpoint.clone().filter(|e| !e.is_empty()),
            region: self.region.clone().filter(|r| !r.is_empty()),
            virtual_hosted_style: self.virtual_hosted_style.then_some(true),
            options: Vec::new(),
        }
    }
}

/// Where the pipeline writes; `lineage trace` and `lineage log verify` read
/// the same settings.
#[derive(Debug, Clone, clap::Args)]
pub struct PathArgs {
    /// Where kept rows go: a directory, file://, s3://bucket/prefix or
    /// memory://name/prefix.
    #[arg(long = "output-path", env = setting::OUTPUT_PATH)]
    pub output_path: String,

    /// Where dropped records go.
    #[arg(long = "dropped-path", env = setting::DROPPED_PATH)]
    pub dropped_path: String,

    /// The write-ahead commit log.
    #[arg(
        long = "write-ahead-commit-log-path",
        env = setting::WRITE_AHEAD_COMMIT_LOG_PATH
    )]
    pub commit_log_path: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Codec {
    Zstd,
    Snappy,
    None,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// The consumer group; every replica of one pipeline uses the same.
    #[arg(
        long = "kafka-group-id",
        env = "KAFKA_GROUP_ID",
        default_value = "lineage"
    )]
    pub group_id: String,

    #[command(flatten)]
    pub s3: S3Args,

    #[command(flatten)]
    pub paths: PathArgs,

    #[command(flatten)]
    pub table: super::table::TableArgs,

    /// The plugin component (.wasm), or a directory holding exactly one.
    /// A new component there (or SIGHUP) is loaded in the background and
    /// takes over at the next checkpoint if it is valid.
    #[arg(long = "plugin-path", env = setting::PLUGIN_PATH)]
    pub plugin_path: PathBuf,

    /// How often PLUGIN_PATH is checked for a new component; 0: only on
    /// SIGHUP.
    #[arg(long = "plugin-watch-interval", env = "PLUGIN_WATCH_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub plugin_watch_interval: Duration,

    /// Time between checkpoints; data becomes visible at each.
    #[arg(long = "checkpoint-interval", env = "CHECKPOINT_INTERVAL", default_value = "60s", value_parser = humantime::parse_duration)]
    pub checkpoint_interval: Duration,

    /// This replica's index (the StatefulSet ordinal): names its commit log
    /// entries, chk-N/subtask-K.csv.
    #[arg(long = "subtask-index", env = "SUBTASK_INDEX", default_value_t = 0)]
    pub subtask_index: u32,

    /// Threads running the plugin and writing files; default: one per core.
    #[arg(long = "workers", env = setting::WORKERS)]
    pub workers: Option<usize>,

    /// Memory for open files and batches in flight, across all partitions;
    /// past it files are sealed early and consumption pauses.
    #[arg(long = "memory-budget", env = "MEMORY_BUDGET", default_value = DEFAULT_MEMORY_BUDGET_TEXT, value_parser = parse_size)]
    pub memory_budget: u64,

    /// A file this large is closed and a new one started.
    #[arg(long = "max-file-size", env = "MAX_FILE_SIZE", default_value = "256MiB", value_parser = parse_size)]
    pub max_file_size: u64,

    /// Bytes per multipart upload part; S3 wants at least 5MiB.
    #[arg(long = "upload-part-size", env = "UPLOAD_PART_SIZE", default_value = "5MiB", value_parser = parse_size)]
    pub upload_part_size: u64,

    /// Encoded bytes of a Parquet row group before it is flushed.
    #[arg(long = "row-group-size", env = "ROW_GROUP_SIZE", default_value = "8MiB", value_parser = parse_size, hide = true)]
    pub row_group_size: u64,

    #[arg(long = "parquet-compression", env = "PARQUET_COMPRESSION", value_enum, default_value_t = Codec::Zstd)]
    pub compression: Codec,

    /// How long a graceful stop may take to commit what was consumed.
    #[arg(long = "shutdown-timeout", env = "SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,

    /// When the commit log's next offset of a partition is one Kafka no
    /// longer has (retention, truncation) or never had (a topic deleted and
    /// recreated): `skip` records the skipped offsets or the reset in the
    /// commit log, with the reason, logs an error and goes on; `stop` exits,
    /// naming the partition and the offsets.
    #[arg(long = "on-missing-offsets", env = "ON_MISSING_OFFSETS", default_value = "skip", value_parser = ["skip", "stop"])]
    pub on_missing_offsets: String,

    /// Run on a store that ignores create-if-absent writes (garage): one
    /// instance only, no fencing.
    #[arg(long = "single-writer", env = "SINGLE_WRITER")]
    pub single_writer: bool,

    /// How often to log a progress line (records consumed, kept, dropped,
    /// checkpoints, memory in use); 0 turns it off.
    #[arg(long = "progress-interval", env = "PROGRESS_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub progress_interval: Duration,

    /// Where to serve /metrics (Prometheus), /healthz and /readyz; `off`
    /// serves nothing.
    #[arg(
        long = "metrics-address",
        env = setting::METRICS_ADDRESS,
        default_value = "0.0.0.0:9464"
    )]
    pub metrics_address: Listen,

    /// Commits between snapshots of the commit log's state (start-up reads
    /// at most this many commits).
    #[arg(long = "snapshot-every", env = "SNAPSHOT_EVERY", default_value_t = crate::commit::DEFAULT_SNAPSHOT_EVERY, hide = true)]
    pub snapshot_every: u64,

    #[command(flatten)]
    pub plugin: PluginConfig,

    #[command(flatten)]
    pub input: InputArgs,
}

/// How record values are framed, and where their writer schemas are.
#[derive(Debug, Clone, clap::Args)]
pub struct InputArgs {
    /// `avro`: a bare Avro datum (the seed's); `confluent`: the Confluent
    /// wire format (magic byte 0, schema id, body), writer schemas from
    /// SCHEMA_REGISTRY_URL; `auto`: framed where byte 0 is 0 and a registry
    /// is set.
    #[arg(long = "input-format", env = setting::INPUT_FORMAT, value_enum, default_value_t = InputFormat::Avro)]
    pub input_format: InputFormat,

    /// The Confluent Schema Registry (or a compatible one) to fetch writer
    /// schemas from, once per id.
    #[arg(long = "schema-registry-url", env = setting::SCHEMA_REGISTRY_URL)]
    pub schema_registry_url: Option<String>,

    /// Basic auth for the registry, `user:password`, as Confluent's
    /// clients take it. Never logged.
    #[arg(long = "schema-registry-basic-auth-user-info", env = setting::SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO, value_parser = UserInfo::parse, hide_env_values = true)]
    pub user_info: Option<UserInfo>,

    /// A PEM file of CAs to trust for the registry, besides the system's.
    #[arg(long = "schema-registry-ssl-ca-location", env = setting::SCHEMA_REGISTRY_SSL_CA_LOCATION)]
    pub ca_location: Option<PathBuf>,

    /// Where fetched writer schemas are kept, so that a restart needs the
    /// registry only for new ids [default: ~/.cache/lineage/schemas].
    #[arg(long = "schema-cache-dir", env = setting::SCHEMA_CACHE_DIR)]
    pub schema_cache_dir: Option<PathBuf>,
}

impl InputArgs {
    pub fn registry(&self) -> Option<RegistrySettings> {
        let url = self
            .schema_registry_url
            .as_deref()
            .filter(|u| !u.is_empty())?;
        let mut settings = RegistrySettings::new(url);
        if self.user_info.is_some() {
            settings.user_info = self.user_info.clone();
        }
        settings.ca_file = self.ca_location.clone();
        settings.cache_dir = self
            .schema_cache_dir
            .clone()
            .or_else(|| setting::user_cache_dir("schemas"));
        Some(settings)
    }
}

impl KafkaArgs {
    pub fn settings(&self, group_id: &str) -> KafkaSettings {
        KafkaSettings {
            bootstrap_servers: self.bootstrap_servers.clone(),
            topic: self.topic.clone(),
            security_protocol: self.security_protocol.clone(),
            sasl_mechanism: self.sasl_mechanism.clone().filter(|m| !m.is_empty()),
            group_id: group_id.to_owned(),
            properties: self.properties.clone(),
        }
    }
}

impl PathArgs {
    pub fn paths(&self) -> [String; 3] {
        [
            self.output_path.clone(),
            self.dropped_path.clone(),
            self.commit_log_path.clone(),
        ]
    }
}

impl RunArgs {
    pub fn settings(&self) -> Result<RunSettings, RunError> {
        let mut s = RunSettings::new(
            self.kafka.settings(&self.group_id),
            self.paths.paths(),
            self.plugin_path.clone(),
        );
        s.s3 = self.s3.settings();
        s.plugin = self.plugin.clone();
        s.input_format = self.input.input_format;
        s.registry = self.input.registry();
        s.batch_records = self.plugin.batch_records;
        s.checkpoint_interval = self.checkpoint_interval;
        s.subtask = self.subtask_index;
        if let Some(workers) = self.workers {
            s.workers = workers;
        }
        s.memory_budget = self.memory_budget;
        s.files.max_file_bytes = self.max_file_size;
        s.files.part_bytes = self.upload_part_size as usize;
        s.files.row_group_bytes = self.row_group_size as usize;
        s.files.compression = match self.compression {
            Codec::Zstd => Compression::ZSTD(ZstdLevel::try_new(1).expect("valid level")),
            Codec::Snappy => Compression::SNAPPY,
            Codec::None => Compression::UNCOMPRESSED,
        };
        s.shutdown_timeout = self.shutdown_timeout;
        s.single_writer = self.single_writer;
        s.on_missing_offsets = self
            .on_missing_offsets
            .parse()
            .expect("clap checked the value");
        s.snapshot_every = self.snapshot_every;
        s.progress_interval = (!self.progress_interval.is_zero()).then_some(self.progress_interval);
        s.metrics_address = self.metrics_address.0;
        s.plugin_watch =
            (!self.plugin_watch_interval.is_zero()).then_some(self.plugin_watch_interval);
        s.table = self.table.settings()?;
        Ok(s)
    }
}

/// An address to listen on, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen(pub Option<std::net::SocketAddr>);

impl std::str::FromStr for Listen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("off") || s.is_empty() {
            return Ok(Self(None));
        }
        s.parse()
            .map(|a| Self(Some(a)))
            .map_err(|e| format!("{s:?} is not ip:port or off: {e}"))
    }
}

/// Runs until SIGTERM or SIGINT; a second signal exits at once.
pub fn run_until_signalled(args: RunArgs) -> Result<Summary, RunError> {
    let (stop, stopped) = StopHandle::new();
    spawn_signal_handler(stop)?;
    run(args.settings()?, Arc::new(Stats::default()), stopped)
}

pub fn spawn_signal_handler(stop: StopHandle) -> Result<(), RunError> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT]).map_err(|source| {
        RunError::Spawn {
            what: "the signal handlers",
            source,
        }
    })?;
    std::thread::Builder::new()
        .name("lineage-signals".into())
        .spawn(move || {
            let mut seen = 0;
            for signal in signals.forever() {
                seen += 1;
                if seen > 1 {
                    eprintln!("second signal: exiting without committing");
                    std::process::exit(128 + signal);
                }
                tracing::info!(signal, "signal received; stopping");
                stop.stop();
            }
        })
        .map_err(|source| RunError::Spawn {
            what: "the signal thread",
            source,
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::DEFAULT_MEMORY_BUDGET;

    /// `RunSettings::new` is what the demo and the benchmarks start from:
    /// it must be `lineage run`'s defaults, less the endpoint, the progress
    /// line and the watching.
    #[test]
    fn embedded_runs_start_from_the_command_line_defaults() {
        use clap::{Args, FromArgMatches};
        let command = RunArgs::augment_args(clap::Command::new("run"));
        let required = [
            "run",
            "--kafka-bootstrap-servers=k:9092",
            "--kafka-topic=t",
            "--output-path=o",
            "--dropped-path=d",
            "--write-ahead-commit-log-path=w",
            "--plugin-path=p.wasm",
        ];
        let matches = command.try_get_matches_from(required).unwrap();
        let mut parsed = RunArgs::from_arg_matches(&matches)
            .unwrap()
            .settings()
            .unwrap();
        assert_eq!(parsed.progress_interval, Some(Duration::from_secs(30)));
        assert_eq!(parsed.plugin_watch, Some(Duration::from_secs(5)));
        assert_eq!(parsed.metrics_address, "0.0.0.0:9464".parse().ok());
        (
            parsed.progress_interval,
            parsed.plugin_watch,
            parsed.metrics_address,
        ) = (None, None, None);
        let kafka = KafkaSettings {
            bootstrap_servers: "k:9092".into(),
            topic: "t".into(),
            security_protocol: "PLAINTEXT".into(),
            sasl_mechanism: None,
            group_id: "lineage".into(),
            properties: Vec::new(),
        };
        let embedded = RunSettings::new(kafka, ["o", "d", "w"].map(String::from), "p.wasm".into());
        assert_eq!(format!("{parsed:?}"), format!("{embedded:?}"));
    }

    #[test]
    fn the_shown_budget_is_the_default() {
        assert_eq!(
            parse_size(DEFAULT_MEMORY_BUDGET_TEXT),
            Ok(DEFAULT_MEMORY_BUDGET)
        );
    }
}
