//! The two outputs a record can end in, by the kind of file it is in.

use super::file::FileKind;
use crate::setting;
use crate::store::{Location, S3Settings, StoreError};

/// OUTPUT_PATH and DROPPED_PATH, opened.
#[derive(Debug, Clone)]
pub struct Outputs {
    pub data: Location,
    pub dropped: Location,
}

impl Outputs {
    /// OUTPUT_PATH and DROPPED_PATH, as `lineage run` and the queries of
    /// its output open them.
    pub fn open(output: &str, dropped: &str, s3: &S3Settings) -> Result<Self, StoreError> {
        Ok(Self {
            data: Location::open_with(setting::OUTPUT_PATH, output, s3)?,
            dropped: Location::open_with(setting::DROPPED_PATH, dropped, s3)?,
        })
    }

    pub fn location(&self, kind: FileKind) -> &Location {
        match kind {
            FileKind::Data => &self.data,
            FileKind::Dropped => &self.dropped,
        }
    }

    pub fn both(&self) -> [(FileKind, &Location); 2] {
        [
            (FileKind::Data, &self.data),
            (FileKind::Dropped, &self.dropped),
        ]
    }
}
