//! What can go wrong while staging, publishing or aborting a file.

use crate::error::{Blame, Classify};
use crate::failpoints::FailpointError;
use crate::retry::GaveUp;
use crate::store::OpError;

#[derive(Debug, thiserror::Error)]
pub enum StagingError {
    #[error(transparent)]
    Store(#[from] OpError),
    #[error(transparent)]
    Failpoint(#[from] FailpointError),
    #[error("upload task: {0}")]
    Task(tokio::task::JoinError),
    /// A publish the store cannot carry out: a commit that names a
    /// multipart upload in a location without them.
    #[error("{url}: a multipart publish on a store without multipart uploads")]
    NoMultipart { url: String },
    #[error(transparent)]
    GaveUp(#[from] GaveUp),
}

impl Classify for StagingError {
    fn blame(&self) -> Blame {
        match self {
            StagingError::Store(e) => e.blame(),
            StagingError::Failpoint(e) => e.blame(),
            StagingError::GaveUp(e) => e.blame(),
            StagingError::NoMultipart { .. } => Blame::User,
            StagingError::Task(_) => Blame::Internal,
        }
    }

    fn retryable(&self) -> bool {
        match self {
            StagingError::Store(e) => e.retryable(),
            StagingError::Failpoint(e) => e.retryable(),
            StagingError::GaveUp(_) | StagingError::NoMultipart { .. } | StagingError::Task(_) => {
                false
            }
        }
    }
}

impl StagingError {
    /// The upload (or staging file) being written is gone: the partition's
    /// new owner aborted it while claiming the partition. Not an error of
    /// this instance, which has lost the partition.
    pub fn upload_gone(&self) -> bool {
        let StagingError::Store(OpError { source, .. }) = self else {
            return false;
        };
        if matches!(**source, object_store::Error::NotFound { .. }) {
            return true;
        }
        // A local rename of a half-written file the new owner deleted comes
        // back as a generic error around the io one.
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&**source);
        while let Some(e) = cause {
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound)
            {
                return true;
            }
            cause = e.source();
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a zombie sees when the new owner deleted its half-written local
    /// file: the finishing rename fails, and that must read as "gone".
    #[test]
    fn a_half_written_local_file_deleted_under_the_writer_reads_as_gone() {
        use object_store::ObjectStoreExt;
        let dir = tempfile::tempdir().unwrap();
        let store = object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let path = object_store::path::Path::from("staging/file.parquet.inprogress");
        let error = runtime.block_on(async {
            let mut upload = store.put_multipart(&path).await.unwrap();
            upload.put_part(vec![1u8; 16].into()).await.unwrap();
            for entry in std::fs::read_dir(dir.path().join("staging")).unwrap() {
                std::fs::remove_file(entry.unwrap().path()).unwrap();
            }
            upload.complete().await.unwrap_err()
        });
        let error = StagingError::Store(OpError {
            setting: "OUTPUT_PATH",
            op: "finish staging file",
            url: "file".into(),
            source: Box::new(error),
        });
        assert!(error.upload_gone(), "{error}");
        let other = StagingError::Store(OpError {
            setting: "OUTPUT_PATH",
            op: "upload part",
            url: "file".into(),
            source: Box::new(object_store::Error::Generic {
                store: "S3",
                source: "503 SlowDown".into(),
            }),
        });
        assert!(!other.upload_gone());
    }
}
