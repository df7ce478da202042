//! The counters the pipeline keeps as it goes, and the summary of a run
//! taken from them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::health::Health;
use super::labelled::Metrics;
use crate::retry::Troubles;
use crate::status::LiveStatus;

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
    /// Set while a schema the run needs cannot be fetched: consumption
    /// waits behind it.
    pub registry_down: AtomicBool,
    /// Failed attempts to fetch a schema, each waited out.
    pub registry_failures: AtomicU64,
    /// What only the metrics endpoint shows.
    pub metrics: Metrics,
    pub health: Health,
    /// Retry loops waiting an error out: the page's "blocked on the store".
    pub troubles: Arc<Troubles>,
    /// What the status page shows beyond these counters.
    pub status: LiveStatus,
}

/// What a run did, for the demo and the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub consumed: u64,
    pub kept: u64,
    pub dropped: u64,
    pub checkpoints: u64,
    pub commit_seq: u64,
    pub files: u64,
    /// Files sealed before their checkpoint to stay inside the budget.
    pub early_seals: u64,
    /// Times consumption paused on the memory budget.
    pub pauses: u64,
}

impl Summary {
    pub fn of(stats: &Stats) -> Self {
        Self {
            consumed: stats.consumed.load(Ordering::Relaxed),
            kept: stats.kept.load(Ordering::Relaxed),
            dropped: stats.dropped.load(Ordering::Relaxed),
            checkpoints: stats.checkpoints.load(Ordering::Relaxed),
            commit_seq: stats.commit_seq.load(Ordering::Relaxed),
            files: stats.files.load(Ordering::Relaxed),
            early_seals: stats.early_seals.load(Ordering::Relaxed),
            pauses: stats.pauses.load(Ordering::Relaxed),
        }
    }
}
