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

mod budget;
mod consumer;
mod coordinator;
mod worker;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use crate::commit::{Claimed, CommitError, MissingOffsets, TopicPartition, Wanted};
use crate::error::{Blame, Classify};
use crate::plugin::{PluginConfig, PluginError};
use crate::sink::{FileSettings, SinkError};
use crate::source::{KafkaSettings, SourceError};
use crate::store::{S3Settings, StoreError};

pub use budget::Budget;
pub use coordinator::{StopHandle, Summary, run};

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
}

/// Counters the pipeline keeps; the demo shows them, metrics export them.
#[derive(Debug, Default)]
pub struct Stats {
    pub consumed: AtomicU64,
    pub kept: AtomicU64,
    pub dropped: AtomicU64,
    pub checkpoints: AtomicU64,
    pub commit_seq: AtomicU64,
    pub files: AtomicU64,
    pub early_seals: AtomicU64,
    pub pauses: AtomicU64,
    pub fenced: AtomicU64,
    /// Records the broker served again and the consumer skipped.
    pub redelivered: AtomicU64,
    /// Offsets the commit log records as skipped: Kafka no longer had them.
    pub skipped: AtomicU64,
    /// Times a partition's log was found to end below the commit log's
    /// next offset (truncated, or the topic recreated), recorded as a reset.
    pub resets: AtomicU64,
    /// Partitions claimed here now.
    pub partitions: AtomicU64,
    /// Records between the consumer's position and the high watermark,
    /// over the partitions assigned here; refreshed twice a second.
    pub lag: AtomicU64,
    /// What only the metrics endpoint shows.
    pub metrics: crate::metrics::Metrics,
    pub health: crate::metrics::Health,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("PLUGIN_PATH: {0}")]
    Plugin(#[from] PluginError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Commit(#[from] CommitError),
    #[error("{0}")]
    Config(String),
    #[error(
        "shutdown did not finish within --shutdown-timeout ({0:?}); what was not committed is recovered at the next start"
    )]
    ShutdownTimeout(Duration),
    #[error(transparent)]
    GaveUp(#[from] crate::retry::GaveUp),
    #[error("pipeline thread failed: {0}")]
    Thread(String),
}

impl Classify for RunError {
    fn blame(&self) -> Blame {
        match self {
            RunError::Store(e) => e.blame(),
            RunError::Source(e) => e.blame(),
            RunError::Plugin(e) => e.blame(),
            RunError::Sink(e) => e.blame(),
            RunError::Commit(e) => e.blame(),
            RunError::Config(_) => Blame::User,
            RunError::ShutdownTimeout(_) | RunError::GaveUp(_) => Blame::Environment,
            RunError::Thread(_) => Blame::Internal,
        }
    }

    fn retryable(&self) -> bool {
        match self {
            RunError::Store(e) => e.retryable(),
            RunError::Source(e) => e.retryable(),
            RunError::Plugin(e) => e.retryable(),
            RunError::Sink(e) => e.retryable(),
            RunError::Commit(e) => e.retryable(),
            RunError::ShutdownTimeout(_) | RunError::GaveUp(_) => false,
            other => other.blame() == Blame::Environment,
        }
    }
}

/// What the consumer sent a worker for one partition since the last
/// barrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// The claim it was consumed under.
    pub epoch: u64,
    /// The last offset sent.
    pub last: i64,
}

/// What the other threads tell the coordinator.
pub enum Event {
    /// Claim these partitions; the reply holds those that are ours once
    /// their recovery is done.
    Claim {
        wanted: Vec<Wanted>,
        reply: crossbeam_channel::Sender<std::collections::BTreeMap<TopicPartition, Claimed>>,
    },
    /// A barrier was placed; `sent` is what was sent per partition since
    /// the previous one.
    Barrier {
        checkpoint: u64,
        sent: std::collections::BTreeMap<TopicPartition, Sent>,
        done: Option<crossbeam_channel::Sender<()>>,
    },
    /// A barrier was asked for but nothing had been consumed.
    Idle,
    /// Fire `done` once every checkpoint placed so far is committed.
    Drained {
        done: crossbeam_channel::Sender<()>,
    },
    Sealed(worker::Sealed),
    /// A worker found the upload of one of the partition's files gone:
    /// another owner took the partition and aborted it. What is held for
    /// the partition is dropped, as when the log fences it.
    Disowned {
        partition: TopicPartition,
        /// The claim the file was written under: a file of an older one
        /// says nothing about the current claim.
        claim: u64,
        error: SinkError,
    },
    /// Checkpoints placed from now on are this plugin's.
    Swapped(Arc<crate::plugin::Plugin>),
    ConsumerStopped,
    Failed(RunError),
}
