//! Lineage: Kafka → WebAssembly plugin → Parquet on object storage, exactly once.
//!
//! Modules follow the data: `plugin` runs the user's component over records;
//! `cli` is the edge that wires them to commands.

pub mod cli;
pub mod commit;
pub mod error;
pub mod events;
pub mod failpoints;
pub mod lineage;
pub mod metrics;
pub mod pipeline;
pub mod plugin;
pub mod retry;
pub mod sink;
pub mod source;
pub mod store;
