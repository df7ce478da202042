//! What can go wrong in the commit log and the protocol over it.

use super::state::Conflict;
use crate::error::{Blame, Carried, Classify};
use crate::failpoints::FailpointError;
use crate::partition::{Owner, TopicPartition};
use crate::retry::GaveUp;
use crate::staging::StagingError;
use crate::store::OpError;

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error(transparent)]
    Store(#[from] OpError),
    #[error("commit log object {object} is damaged: {detail}")]
    Corrupt { object: String, detail: String },
    /// A commit that does not follow the one before it in sequence.
    #[error("the commit log is inconsistent: commit {found} follows commit {after}")]
    OutOfSequence { found: u64, after: u64 },
    /// A commit the log's state refuses: written by a bug, or by a writer
    /// that skipped the protocol.
    #[error(
        "the commit log is inconsistent: commit {seq} by {owner}: {}",
        list(conflicts)
    )]
    Conflicting {
        seq: u64,
        owner: Owner,
        conflicts: Vec<Conflict>,
    },
    #[error(
        "subtask index {subtask} is in use by another running instance ({other}); give every instance its own SUBTASK_INDEX"
    )]
    SubtaskInUse { subtask: u32, other: String },
    #[error(transparent)]
    Failpoint(#[from] FailpointError),
    /// Making a committed file visible, or aborting a staged one, failed;
    /// the error keeps its class (a denied permission is the user's, a 503
    /// the environment's).
    #[error(transparent)]
    Staging(#[from] StagingError),
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
    /// Registering a commit's files in the table (TABLE_FORMAT) failed.
    #[error(transparent)]
    Table(#[from] Carried),
}

impl Classify for CommitError {
    fn blame(&self) -> Blame {
        match self {
            CommitError::Store(e) => e.blame(),
            CommitError::Staging(e) => e.blame(),
            CommitError::Table(e) => e.blame(),
            CommitError::Failpoint(_) | CommitError::GaveUp(_) => Blame::Environment,
            CommitError::SubtaskInUse { .. } | CommitError::MissingOffsets { .. } => Blame::User,
            CommitError::Corrupt { .. }
            | CommitError::OutOfSequence { .. }
            | CommitError::Conflicting { .. } => Blame::Internal,
        }
    }

    fn retryable(&self) -> bool {
        match self {
            CommitError::Staging(e) => e.retryable(),
            CommitError::Table(e) => e.retryable(),
            CommitError::GaveUp(_) => false,
            other => other.blame() == Blame::Environment,
        }
    }
}

fn list(conflicts: &[Conflict]) -> String {
    conflicts
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
