//! `lineage status`'s answer, read from the commit log alone.

use std::collections::HashSet;

use futures::{StreamExt, TryStreamExt};

use super::report::{CHECKPOINTS, Digest, Report, is_checkpoint, unpublished};
use crate::commit::{Commit, CommitError, CommitLog};
use crate::staging::StagingError;

/// Commits read back from the newest at most, looking for checkpoints:
/// a log of mostly claims (many restarts) shows fewer.
const READ_AT_MOST: u64 = 2_000;

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(transparent)]
    Commit(#[from] CommitError),
    #[error(transparent)]
    Staging(#[from] StagingError),
}

impl crate::error::Classify for StatusError {
    fn blame(&self) -> crate::error::Blame {
        match self {
            StatusError::Commit(e) => e.blame(),
            StatusError::Staging(e) => e.blame(),
        }
    }
}

/// The state the log folds to, its newest checkpoints, and whether each
/// is published yet (none of its files still has a staging entry).
pub async fn from_log(log: &CommitLog) -> Result<Report, StatusError> {
    let state = log.load().await?.state;
    let commits = newest_checkpoints(log, state.seq).await?;
    let mut staged = HashSet::new();
    for tp in log.entries().staged_partitions().await? {
        let found = log.entries().staged(&tp).await?;
        staged.extend(found.entries.into_iter().map(|e| e.file_id));
        staged.extend(found.torn);
    }
    let shown: Vec<Digest> = commits
        .iter()
        .map(|c| Digest::of(c, !unpublished(c, &staged)))
        .collect();
    Ok(Report::of_log(&state, &shown))
}

/// Up to [`CHECKPOINTS`] checkpoint commits, oldest first, read back from
/// commit `last` in windows.
async fn newest_checkpoints(log: &CommitLog, last: u64) -> Result<Vec<Commit>, StatusError> {
    let mut found = Vec::new();
    let floor = last.saturating_sub(READ_AT_MOST);
    let mut top = last;
    while top > floor && found.len() < CHECKPOINTS {
        let bottom = top.saturating_sub(64).max(floor);
        let window: Vec<Option<Commit>> =
            futures::stream::iter(((bottom + 1)..=top).rev().map(|s| log.read(s)))
                .buffered(16)
                .try_collect()
                .await?;
        found.extend(window.into_iter().flatten().filter(is_checkpoint));
        top = bottom;
    }
    found.truncate(CHECKPOINTS);
    found.reverse();
    Ok(found)
}
