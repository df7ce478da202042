//! Checkpoints and the write-ahead commit log: what makes delivery exactly
//! once. The protocol, the order of its writes and what recovery does after
//! a crash between any two of them are in docs/commit-protocol.md.

mod committer;
mod entry;
mod log;
mod state;

pub use committer::{
    Claimed, Committer, DEFAULT_SNAPSHOT_EVERY, MissingOffsets, OffsetReset, Prepared, Published,
    Wanted, out_of_range,
};
pub use entry::{
    Claim, Commit, CommittedFile, FileKind, HEADER, Moved, OffsetRange, Owner, PluginStamp,
    Publish, TopicPartition,
};
pub use log::{CommitLog, Loaded, StagedEntries, StagedEntry, Staging};
pub use state::{Conflict, LogState, PartitionState};

use crate::error::{Blame, Classify};
use crate::failpoints::FailpointError;
use crate::retry::GaveUp;
use crate::store::OpError;

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error(transparent)]
    Store(#[from] OpError),
    #[error("commit log object {object} is damaged: {detail}")]
    Corrupt { object: String, detail: String },
    #[error("the commit log is inconsistent: {0}")]
    Inconsistent(String),
    #[error(
        "subtask index {subtask} is in use by another running instance ({other}); give every instance its own SUBTASK_INDEX"
    )]
    SubtaskInUse { subtask: u32, other: String },
    #[error(transparent)]
    Failpoint(#[from] FailpointError),
    /// Making a committed file visible, or aborting a staged one, failed;
    /// the sink's error keeps its class (a denied permission is the
    /// user's, a 503 the environment's).
    #[error(transparent)]
    Files(Box<crate::sink::SinkError>),
    #[error(
        "{partition}: {reason}; ON_MISSING_OFFSETS=stop: stopping rather than going on from offset {to} (ON_MISSING_OFFSETS=skip records the skip in the commit log and goes on)"
    )]
    MissingOffsets {
        partition: TopicPartition,
        from: i64,
        to: i64,
        reason: String,
    },
    #[error(transparent)]
    GaveUp(#[from] GaveUp),
}

impl From<crate::sink::SinkError> for CommitError {
    fn from(e: crate::sink::SinkError) -> Self {
        CommitError::Files(Box::new(e))
    }
}

impl Classify for CommitError {
    fn blame(&self) -> Blame {
        match self {
            CommitError::Store(e) => e.blame(),
            CommitError::Files(e) => e.blame(),
            CommitError::Failpoint(_) | CommitError::GaveUp(_) => Blame::Environment,
            CommitError::SubtaskInUse { .. } | CommitError::MissingOffsets { .. } => Blame::User,
            CommitError::Corrupt { .. } | CommitError::Inconsistent(_) => Blame::Internal,
        }
    }

    fn retryable(&self) -> bool {
        match self {
            CommitError::Files(e) => e.retryable(),
            CommitError::GaveUp(_) => false,
            other => other.blame() == Blame::Environment,
        }
    }
}
