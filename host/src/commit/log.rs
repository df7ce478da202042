//! The write-ahead commit log's objects under WRITE_AHEAD_COMMIT_LOG_PATH:
//!
//! | key | what |
//! | --- | --- |
//! | `_commits/<seq>.csv` | the commit point: created once, if absent |
//! | `chk-<N>/subtask-<K>.csv` | the same bytes, where the seed's readers look |
//! | `_staging/<topic>/<partition>/<file>.json` | a file being written, not yet published |
//! | `_snapshots/<seq>.json` | the folded state after commit `seq` |
//!
//! See docs/commit-protocol.md for the order of writes.

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use super::entry::Commit;
use super::error::CommitError;
use super::state::LogState;
use crate::partition::TopicPartition;
use crate::staging::Entries;
use crate::store::{Location, S3Settings, StoreError};

/// A snapshot as stored: JSON object keys must be strings, so the maps are
/// lists.
#[derive(Debug, Serialize, Deserialize)]
struct Snapshot {
    seq: u64,
    partitions: Vec<(TopicPartition, super::state::PartitionState)>,
    checkpoints: Vec<(u32, u64)>,
}

impl From<&LogState> for Snapshot {
    fn from(s: &LogState) -> Self {
        Self {
            seq: s.seq,
            partitions: s
                .partitions
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            checkpoints: s.checkpoints.iter().map(|(k, v)| (*k, *v)).collect(),
        }
    }
}

impl From<Snapshot> for LogState {
    fn from(s: Snapshot) -> Self {
        Self {
            seq: s.seq,
            partitions: s.partitions.into_iter().collect(),
            checkpoints: s.checkpoints.into_iter().collect(),
        }
    }
}

/// The log's state and the commits read after its snapshot, which recovery
/// needs to find committed files.
#[derive(Debug, Default)]
pub struct Loaded {
    pub state: LogState,
    pub recent: Vec<Commit>,
}

pub struct CommitLog {
    location: Location,
    entries: Entries,
}

const SEQ_WIDTH: usize = 20;

impl CommitLog {
    /// WRITE_AHEAD_COMMIT_LOG_PATH's location, as every command opens it.
    pub fn open(url: &str, s3: &S3Settings) -> Result<Location, StoreError> {
        Location::open_with(crate::setting::WRITE_AHEAD_COMMIT_LOG_PATH, url, s3)
    }

    pub fn new(location: Location) -> Self {
        let entries = Entries::new(location.clone());
        Self { location, entries }
    }

    /// The staging entries, which live beside the commits.
    pub fn entries(&self) -> &Entries {
        &self.entries
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    fn commit_key(seq: u64) -> String {
        format!("_commits/{seq:0SEQ_WIDTH$}.csv")
    }

    pub fn view_key(checkpoint: u64, subtask: u32) -> String {
        format!("chk-{checkpoint}/subtask-{subtask}.csv")
    }

    fn snapshot_key(seq: u64) -> String {
        format!("_snapshots/{seq:0SEQ_WIDTH$}.json")
    }

    fn err(&self, op: &'static str, key: &str, source: object_store::Error) -> CommitError {
        CommitError::Store(self.location.failed(op, key, source))
    }

    /// Creates commit `commit.seq`; `Ok(false)` when another writer already
    /// took that number.
    pub async fn create(&self, commit: &Commit) -> Result<bool, CommitError> {
        let key = Self::commit_key(commit.seq);
        let result = self
            .location
            .store
            .put_opts(
                &self.location.path(&key),
                PutPayload::from(commit.to_csv()),
                PutOptions::from(PutMode::Create),
            )
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(false),
            Err(e) => Err(self.err("create commit", &key, e)),
        }
    }

    /// Commit `seq`, if it exists. One that is empty or cut short is read
    /// as [`Commit::torn`], with an error in the log: it takes its number,
    /// so that the log goes on after it, and commits nothing.
    pub async fn read(&self, seq: u64) -> Result<Option<Commit>, CommitError> {
        let key = Self::commit_key(seq);
        match self.location.store.get(&self.location.path(&key)).await {
            Ok(got) => {
                let bytes = got
                    .bytes()
                    .await
                    .map_err(|e| self.err("read commit", &key, e))?;
                let url = self.location.url_of(&key);
                if let Some(detail) = Commit::cut_short(&bytes) {
                    tracing::error!(
                        object = %url,
                        problem = %detail,
                        "commit log object is empty or cut short: read as a commit of nothing (its create never completed; see docs/commit-protocol.md, power loss)"
                    );
                    return Ok(Some(Commit::torn(seq, detail)));
                }
                match Commit::from_csv(&bytes, &url)? {
                    commit if commit.seq == seq => Ok(Some(commit)),
                    commit => Err(CommitError::Corrupt {
                        object: url,
                        detail: format!("holds commit {} instead", commit.seq),
                    }),
                }
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err("read commit", &key, e)),
        }
    }

    /// Every commit in the log, in sequence order, for lineage queries.
    /// Stops at the first gap: a commit after one is not part of the log.
    pub async fn commits(&self) -> Result<Vec<Commit>, CommitError> {
        let listed = self.list_seqs("_commits", ".csv").await?;
        let fetched: Vec<Option<Commit>> =
            futures::stream::iter(listed.iter().map(|&s| self.read(s)))
                .buffered(16)
                .try_collect()
                .await?;
        let mut commits: Vec<Commit> = Vec::with_capacity(fetched.len());
        for commit in fetched.into_iter().flatten() {
            if commit.seq != commits.last().map_or(1, |c| c.seq + 1) {
                break;
            }
            commits.push(commit);
        }
        Ok(commits)
    }

    /// Applies every commit after `state.seq`, returning them.
    pub async fn catch_up(&self, state: &mut LogState) -> Result<Vec<Commit>, CommitError> {
        let mut read = Vec::new();
        while let Some(commit) = self.read(state.seq + 1).await? {
            state.apply(&commit)?;
            read.push(commit);
        }
        Ok(read)
    }

    /// The state after the newest readable snapshot and every commit
    /// since, and the commits after the newest snapshot. A snapshot that
    /// does not parse is passed over with a warning: snapshots only save
    /// reading, every commit is still in the log.
    pub async fn load(&self) -> Result<Loaded, CommitError> {
        let snapshots = self.list_seqs("_snapshots", ".json").await?;
        let mut state = LogState::default();
        for &seq in snapshots.iter().rev() {
            match self.read_snapshot(seq).await? {
                Ok(snapshot) => {
                    state = snapshot;
                    break;
                }
                Err(detail) => tracing::warn!(
                    object = %self.location.url_of(&Self::snapshot_key(seq)),
                    problem = %detail,
                    "commit log snapshot is damaged; starting from an older one or from the first commit"
                ),
            }
        }
        // Fetch what is listed concurrently, then follow the chain to its
        // end: commits may have landed since the listing.
        let listed: Vec<u64> = self
            .list_seqs("_commits", ".csv")
            .await?
            .into_iter()
            .filter(|&s| s > state.seq)
            .collect();
        let fetched: Vec<Option<Commit>> =
            futures::stream::iter(listed.iter().map(|&s| self.read(s)))
                .buffered(16)
                .try_collect()
                .await?;
        let mut recent = Vec::new();
        for commit in fetched.into_iter().flatten() {
            if commit.seq != state.seq + 1 {
                break;
            }
            state.apply(&commit)?;
            recent.push(commit);
        }
        recent.extend(self.catch_up(&mut state).await?);
        // A snapshot exists only once every commit up to it was finished
        // (published, entries deleted), readable or not: what recovery
        // must finish, and search for files, is after the newest one.
        let finished = snapshots.last().copied().unwrap_or(0);
        recent.retain(|c| c.seq > finished);
        Ok(Loaded { state, recent })
    }

    /// Snapshot `seq`; the inner error says why it cannot be used.
    async fn read_snapshot(&self, seq: u64) -> Result<Result<LogState, String>, CommitError> {
        let key = Self::snapshot_key(seq);
        let bytes = match self.location.store.get(&self.location.path(&key)).await {
            Ok(got) => got
                .bytes()
                .await
                .map_err(|e| self.err("read snapshot", &key, e))?,
            // Listed, then gone: nothing to read.
            Err(object_store::Error::NotFound { .. }) => return Ok(Err("gone".into())),
            Err(e) => return Err(self.err("read snapshot", &key, e)),
        };
        Ok(match serde_json::from_slice::<Snapshot>(&bytes) {
            Ok(snapshot) if snapshot.seq == seq => Ok(snapshot.into()),
            Ok(snapshot) => Err(format!("holds the state after commit {}", snapshot.seq)),
            Err(_) if bytes.is_empty() => Err("empty".into()),
            Err(e) => Err(format!("{} bytes, {e}", bytes.len())),
        })
    }

    async fn list_seqs(&self, dir: &str, suffix: &str) -> Result<Vec<u64>, CommitError> {
        let prefix = self.location.path(dir);
        let mut seqs: Vec<u64> = self
            .location
            .store
            .list(Some(&prefix))
            .map_err(|e| self.err("list", dir, e))
            .try_filter_map(|meta| async move {
                Ok(meta
                    .location
                    .filename()
                    .and_then(|n| n.strip_suffix(suffix))
                    .and_then(|n| n.parse::<u64>().ok()))
            })
            .try_collect()
            .await?;
        seqs.sort_unstable();
        Ok(seqs)
    }

    /// Writes the seed-compatible view of a commit; overwriting is fine,
    /// the bytes are the commit's own.
    pub async fn write_view(&self, commit: &Commit) -> Result<(), CommitError> {
        let key = Self::view_key(commit.checkpoint, commit.owner.subtask);
        self.location
            .store
            .put(&self.location.path(&key), PutPayload::from(commit.to_csv()))
            .await
            .map_err(|e| self.err("write checkpoint view", &key, e))?;
        Ok(())
    }

    pub async fn view_exists(&self, commit: &Commit) -> Result<bool, CommitError> {
        let key = Self::view_key(commit.checkpoint, commit.owner.subtask);
        match self.location.store.head(&self.location.path(&key)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.err("check checkpoint view", &key, e)),
        }
    }

    pub async fn write_snapshot(&self, state: &LogState) -> Result<(), CommitError> {
        let key = Self::snapshot_key(state.seq);
        let json = serde_json::to_vec(&Snapshot::from(state)).expect("state serialises");
        self.location
            .store
            .put(&self.location.path(&key), PutPayload::from(json))
            .await
            .map_err(|e| self.err("write snapshot", &key, e))?;
        Ok(())
    }

    /// Where `store` is the log's own store: for the create-if-absent probe.
    pub fn store(&self) -> &dyn ObjectStore {
        self.location.store.as_ref()
    }

    pub fn root(&self) -> &Path {
        &self.location.prefix
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commit::entry::{Claim, OffsetRange, PluginStamp};
    use crate::partition::Owner;

    fn log() -> CommitLog {
        let name = uuid::Uuid::new_v4().simple().to_string();
        CommitLog::new(
            Location::open(
                crate::setting::WRITE_AHEAD_COMMIT_LOG_PATH,
                &format!("memory://{name}/wal"),
            )
            .unwrap(),
        )
    }

    fn commit(seq: u64, checkpoint: u64) -> Commit {
        let tp = TopicPartition {
            topic: "t".into(),
            partition: 0,
        };
        Commit {
            torn: None,
            seq,
            checkpoint,
            owner: Owner {
                subtask: 0,
                incarnation: "a".into(),
            },
            timestamp: String::new(),
            plugin: PluginStamp::default(),
            claims: if checkpoint == 0 {
                vec![Claim {
                    source: tp.clone(),
                    next: 0,
                    moved: None,
                }]
            } else {
                vec![]
            },
            ranges: if checkpoint > 0 {
                vec![OffsetRange {
                    source: tp,
                    first: (checkpoint as i64 - 1) * 10,
                    last: checkpoint as i64 * 10 - 1,
                    records: 10,
                }]
            } else {
                vec![]
            },
            files: Default::default(),
        }
    }

    #[tokio::test]
    async fn commits_are_created_once_and_loaded_with_snapshots() {
        let log = log();
        assert!(log.create(&commit(1, 0)).await.unwrap());
        assert!(
            !log.create(&commit(1, 0)).await.unwrap(),
            "a second create loses"
        );
        assert!(log.create(&commit(2, 1)).await.unwrap());
        let loaded = log.load().await.unwrap();
        assert_eq!(loaded.state.seq, 2);
        assert_eq!(loaded.recent.len(), 2);

        log.write_snapshot(&loaded.state).await.unwrap();
        assert!(log.create(&commit(3, 2)).await.unwrap());
        let loaded = log.load().await.unwrap();
        assert_eq!(loaded.state.seq, 3);
        assert_eq!(
            loaded.recent.len(),
            1,
            "only what follows the snapshot is read"
        );
        let tp = TopicPartition {
            topic: "t".into(),
            partition: 0,
        };
        assert_eq!(loaded.state.partition(&tp).unwrap().next, 20);
        assert_eq!(loaded.state.next_checkpoint(0), 3);
    }
}
