//! `lineage run`: Kafka → plugin → Parquet, checkpointed through the commit
//! log.
//!
//! Threads, and what flows between them:
//!
//! ```text
//! consumer ──batches, barriers──► workers (plugin + Parquet files per partition)
//!    │  ▲ claims, revocations           │ sealed files per checkpoint
//!    ▼  │                               ▼
//! coordinator (this thread): commit log, publish, Kafka offsets
//! ```
//!
//! A checkpoint is a barrier the consumer places in every worker's queue;
//! each worker seals its files when it reaches it, and the coordinator
//! commits them with the offset ranges the consumer sent before it.

mod assembly;
mod consumer;
mod coordinator;
mod error;
mod messages;
mod settings;
mod stop;
mod worker;

pub use assembly::{Parts, open_outputs, run};
pub use error::RunError;
pub use messages::{Event, WorkerMsg};
pub use settings::{DEFAULT_MEMORY_BUDGET, DEFAULT_MEMORY_BUDGET_TEXT, RunSettings};
pub use stop::StopHandle;
pub use worker::{Held, Worker};
