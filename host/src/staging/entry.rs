//! Staging entries: one per file being written, under
//! `_staging/<topic>/<partition>/<file>.json` in the commit log's
//! location, written before the file's first byte so that recovery can
//! abort what no commit names.

use futures::TryStreamExt;
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use super::error::StagingError;
use super::file::{FileKind, Staging};
use crate::partition::{Owner, TopicPartition};
use crate::store::Location;

/// A file being written: enough to abort it, or to find it in a commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagedEntry {
    pub file_id: String,
    pub owner: Owner,
    /// The commit whose claim `owner` wrote this under (0 in entries of
    /// versions before claims were numbered): recovery after a claim only
    /// resolves entries of earlier claims.
    #[serde(default)]
    pub claim: u64,
    pub kind: FileKind,
    pub source: TopicPartition,
    /// The final key inside the data or dropped location.
    pub key: String,
    pub staging: Staging,
}

/// A partition's staging entries.
#[derive(Debug, Default)]
pub struct StagedEntries {
    pub entries: Vec<StagedEntry>,
    /// File ids of entries that do not parse: cut short by a power cut on
    /// a disk that lost acknowledged writes. Their files are found by id
    /// (local staging files) or by listing (open uploads).
    pub torn: Vec<String>,
}

/// The staging entries in the commit log's location.
#[derive(Clone)]
pub struct Entries {
    location: Location,
}

impl Entries {
    pub fn new(location: Location) -> Self {
        Self { location }
    }

    fn staging_dir(source: &TopicPartition) -> String {
        format!("_staging/{}/{}", source.topic, source.partition)
    }

    fn err(&self, op: &'static str, key: &str, source: object_store::Error) -> StagingError {
        StagingError::Store(self.location.failed(op, key, source))
    }

    pub async fn stage(&self, entry: &StagedEntry) -> Result<(), StagingError> {
        let key = format!(
            "{}/{}.json",
            Self::staging_dir(&entry.source),
            entry.file_id
        );
        let json = serde_json::to_vec(entry).expect("entry serialises");
        self.location
            .store
            .put(&self.location.path(&key), PutPayload::from(json))
            .await
            .map_err(|e| self.err("write staging entry", &key, e))?;
        Ok(())
    }

    pub async fn unstage(
        &self,
        source: &TopicPartition,
        file_id: &str,
    ) -> Result<(), StagingError> {
        let key = format!("{}/{file_id}.json", Self::staging_dir(source));
        match self.location.store.delete(&self.location.path(&key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err("delete staging entry", &key, e)),
        }
    }

    /// Every staged file of a partition, whoever wrote it.
    pub async fn staged(&self, source: &TopicPartition) -> Result<StagedEntries, StagingError> {
        let dir = Self::staging_dir(source);
        let prefix = self.location.path(&dir);
        let metas: Vec<_> = self
            .location
            .store
            .list(Some(&prefix))
            .map_err(|e| self.err("list staging entries", &dir, e))
            .try_collect()
            .await?;
        let mut staged = StagedEntries::default();
        for meta in metas {
            let Some(file_id) = meta
                .location
                .filename()
                .and_then(|n| n.strip_suffix(".json"))
                .map(str::to_owned)
            else {
                continue;
            };
            let key = meta.location.to_string();
            let bytes = match self.location.store.get(&meta.location).await {
                Ok(got) => got
                    .bytes()
                    .await
                    .map_err(|e| self.err("read staging entry", &key, e))?,
                // Removed by its owner since the listing.
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(self.err("read staging entry", &key, e)),
            };
            match serde_json::from_slice::<StagedEntry>(&bytes) {
                Ok(entry) => staged.entries.push(entry),
                Err(e) => {
                    tracing::warn!(
                        object = %self.location.url_of(&key),
                        problem = %format!("{} bytes, {e}", bytes.len()),
                        "staging entry is empty or cut short; its file is found by its id or by listing"
                    );
                    staged.torn.push(file_id);
                }
            }
        }
        Ok(staged)
    }

    /// The partitions that have staging entries, for recovery at start.
    pub async fn staged_partitions(&self) -> Result<Vec<TopicPartition>, StagingError> {
        let prefix = self.location.path("_staging");
        let metas: Vec<_> = self
            .location
            .store
            .list(Some(&prefix))
            .map_err(|e| self.err("list staging entries", "_staging", e))
            .try_collect()
            .await?;
        let mut partitions: Vec<TopicPartition> = metas
            .iter()
            .filter_map(|m| {
                let parts: Vec<_> = m.location.parts().collect();
                let n = parts.len();
                (n >= 3).then(|| TopicPartition {
                    topic: parts[n - 3].as_ref().to_owned(),
                    partition: parts[n - 2].as_ref().parse().unwrap_or(-1),
                })
            })
            .filter(|tp| tp.partition >= 0)
            .collect();
        partitions.sort();
        partitions.dedup();
        Ok(partitions)
    }
}
