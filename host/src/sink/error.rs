//! What can go wrong while writing a partition's files.

use crate::error::{Blame, Classify};
use crate::staging::StagingError;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("writing Parquet: {0}")]
    Parquet(parquet::errors::ParquetError),
    #[error(transparent)]
    Staging(#[from] StagingError),
}

impl Classify for SinkError {
    fn blame(&self) -> Blame {
        match self {
            SinkError::Staging(e) => e.blame(),
            SinkError::Parquet(_) => Blame::Internal,
        }
    }

    fn retryable(&self) -> bool {
        match self {
            SinkError::Staging(e) => e.retryable(),
            SinkError::Parquet(_) => false,
        }
    }
}

impl SinkError {
    /// See [`StagingError::upload_gone`].
    pub fn upload_gone(&self) -> bool {
        matches!(self, SinkError::Staging(e) if e.upload_gone())
    }
}
