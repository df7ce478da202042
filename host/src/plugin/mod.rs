//! The plugin runtime: runs the user's WebAssembly component over Kafka
//! records, sandboxed and bounded, and never lets it take the host down.
//!
//! [`PluginRuntime`] owns the engine and loads components into [`Plugin`]s
//! (compiled once, checked against the WIT contract, described); a
//! [`PluginWorker`] per thread runs one over batches of records.

/// The version of `wit/plugin.wit` this host implements.
pub const CONTRACT_VERSION: &str = "0.3.0";

mod answer;
mod batch;
mod bindings;
mod config;
mod contract;
mod error;
mod load;
mod loaded;
mod records;
mod reload;
mod runtime;
mod sandbox;
mod schemas;
mod worker;

pub use answer::{Mark, OutcomeRef, Outcomes, Row, ValueRef};
pub use bindings::{Column, ColumnType, PluginInfo};
pub use config::{PluginConfig, parse_size};
pub use contract::{PluginSchema, type_name};
pub use error::PluginError;
pub use load::component_path;
pub use loaded::{Plugin, PluginIdentity};
pub use records::{Header, KafkaRecord};
pub use reload::{Reload, Watcher, watch};
pub use runtime::PluginRuntime;
pub use schemas::WriterSchemas;
pub use worker::{PluginWorker, WorkerStats};
