//! Checkpoints and the write-ahead commit log: what makes delivery exactly
//! once. The protocol, the order of its writes and what recovery does after
//! a crash between any two of them are in docs/commit-protocol.md.

mod committer;
mod entry;
mod log;
mod state;

pub use committer::{Committer, DEFAULT_SNAPSHOT_EVERY, Prepared, Published};
pub use entry::{
    Claim, Commit, CommittedFile, FileKind, HEADER, OffsetRange, Owner, PluginStamp, Publish,
    TopicPartition,
};
pub use log::{CommitLog, Loaded, StagedEntry, Staging};
pub use state::{Conflict, LogState, PartitionState};

use crate::error::{Blame, Classify};
use crate::failpoints::FailpointError;

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("{op} {url}: {source}")]
    Store {
        op: &'static str,
        url: String,
        source: Box<object_store::Error>,
    },
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
    #[error("publishing {url}: {detail}")]
    Publish { url: String, detail: String },
}

impl Classify for CommitError {
    fn blame(&self) -> Blame {
        match self {
            CommitError::Store { source, .. } => crate::store::blame(source),
            CommitError::Failpoint(_) | CommitError::Publish { .. } => Blame::Environment,
            CommitError::SubtaskInUse { .. } => Blame::User,
            CommitError::Corrupt { .. } | CommitError::Inconsistent(_) => Blame::Internal,
        }
    }
}
