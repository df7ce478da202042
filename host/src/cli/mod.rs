//! The `lineage` command line: every setting is a flag and an environment
//! variable.

pub mod bench;
pub mod demo;
mod error;
pub mod generate;
pub mod plugin;
pub mod run;
pub mod status;
pub mod table;
pub mod trace;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

pub use error::CommandError;

use crate::plugin::PluginConfig;
use crate::setting;

#[derive(Debug, Parser)]
#[command(name = "lineage", version, about, propagate_version = true)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Consume the topic, run the plugin, write Parquet, exactly once; stops
    /// cleanly on SIGTERM or SIGINT.
    Run(Box<run::RunArgs>),

    /// Produce the seed's InputEvent records, some invalid, to a topic.
    Generate(generate::GenerateArgs),

    /// Run everything on this machine: an in-process Kafka, the generator
    /// and the pipeline, writing under ./lineage-data.
    Demo(demo::DemoArgs),

    /// Inspect a plugin, or run it over sample records.
    #[command(subcommand)]
    Plugin(PluginCommand),

    /// Measure throughput; prints records/s and peak memory.
    #[command(subcommand)]
    Bench(BenchCommand),

    /// Where a record went (TOPIC/PARTITION@OFFSET), or what a checkpoint
    /// committed, from the commit log and the files.
    Trace(Box<trace::TraceArgs>),

    /// Partitions, the last checkpoints and drop reasons, from the commit
    /// log alone (no running instance needed); lag too with
    /// KAFKA_BOOTSTRAP_SERVERS.
    Status(Box<status::StatusArgs>),

    /// Check the commit log against the outputs.
    #[command(subcommand)]
    Log(LogCommand),
}

#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Every committed file exists with its recorded size, and nothing
    /// under the outputs is unaccounted for; exits 1 otherwise.
    Verify(Box<trace::OutputArgs>),
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Print a plugin's name, version, columns and input schema.
    Inspect {
        /// The plugin component (.wasm).
        #[arg(env = setting::PLUGIN_PATH)]
        component: PathBuf,

        /// Print JSON instead of a table.
        #[arg(long, env = "LINEAGE_JSON")]
        json: bool,

        #[command(flatten)]
        plugin: PluginConfig,
    },

    /// Run a plugin over records from a JSON-lines file and print one JSON
    /// line per record: the kept row or the drop reason.
    ///
    /// Each input line is an object with optional `topic`, `partition`,
    /// `offset`, `timestamp` (epoch ms), `key` (string) and `headers`
    /// (object), and `value`: a JSON object, Avro-encoded with the plugin's
    /// input schema; a string, decoded as base64; or null for a tombstone.
    Test {
        /// The plugin component (.wasm).
        #[arg(env = setting::PLUGIN_PATH)]
        component: PathBuf,

        /// JSON-lines file of records; `-` reads stdin.
        #[arg(long, short, env = "PLUGIN_TEST_INPUT")]
        input: PathBuf,

        #[command(flatten)]
        plugin: PluginConfig,
    },
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Seed records through a plugin at several batch sizes, next to the
    /// same enrichment compiled natively.
    Plugin(bench::PluginBenchArgs),

    /// The pipeline without Kafka: records from memory through the plugin
    /// into Parquet on local disk, on one thread.
    Pipeline(bench::PipelineBenchArgs),

    /// Against a broker: a plain consumer's read rate next to `lineage
    /// run`'s end-to-end rate over the same records.
    Kafka(Box<bench::KafkaBenchArgs>),
}
