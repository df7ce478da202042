//! Lineage: Kafka → WebAssembly plugin → Parquet on object storage, exactly once.
//!
//! The modules follow a record, top down; each uses only those below it
//! (docs/architecture.md draws the house):
//!
//! - [`cli`]: the commands, the edge where errors become exit codes.
//! - [`pipeline`]: a run's threads and the one place they are assembled.
//! - [`source`]: Kafka, the consumer group and its rebalances.
//! - [`registry`]: Confluent framing and the writer schemas it names.
//! - [`plugin`]: the user's WebAssembly component, run over batches.
//! - [`sink`]: a partition's Parquet files, data and dropped.
//! - [`staging`]: a file on its way to a commit, invisible until then.
//! - [`commit`]: the write-ahead commit log and the protocol over it.
//! - [`query`]: lineage answered from the log and the files alone.
//! - [`status`]: the status page and `lineage status`, from what the run keeps and the log.
//! - [`metrics`], [`budget`]: what the pipeline counts and the memory it may use.
//! - [`store`]: where bytes go (local disk, S3, memory).
//! - [`partition`], [`setting`], [`error`], [`retry`], [`failpoints`],
//!   [`fixtures`]: the nouns, names, error classes, retry policy, crash
//!   points and seed records everything above shares.

pub mod budget;
pub mod cli;
pub mod commit;
pub mod error;
pub mod failpoints;
pub mod fixtures;
pub mod metrics;
pub mod partition;
pub mod pipeline;
pub mod plugin;
pub mod query;
pub mod registry;
pub mod retry;
pub mod setting;
pub mod sink;
pub mod source;
pub mod staging;
pub mod status;
pub mod store;
pub mod table;
