//! The commit protocol: claim partitions, commit checkpoints with optimistic
//! concurrency on a single global sequence of create-if-absent objects, and
//! publish what was committed. Every step is idempotent, so the caller
//! retries any of them after an error and recovery repeats them after a
//! crash.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use super::CommitError;
use super::entry::{
    Claim, Commit, CommittedFile, FileKind, OffsetRange, Owner, PluginStamp, TopicPartition,
};
use super::log::{CommitLog, Staging};
use super::state::{Conflict, LogState};
use crate::failpoints;
use crate::retry::{Backoff, retry};
use crate::store::Location;

/// Take a snapshot of the folded state every this many commits, so that a
/// start reads a bounded number of commits.
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 100;

/// A checkpoint ready to commit: sealed files and the offset ranges they
/// account for.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub checkpoint: u64,
    pub plugin: PluginStamp,
    pub ranges: Vec<OffsetRange>,
    pub files: Vec<CommittedFile>,
}

/// What a commit attempt did.
#[derive(Debug)]
pub struct Published {
    /// The commit written (or found written by an earlier attempt).
    pub commit: Option<Commit>,
    /// Partitions another owner took: their files were left out (and must
    /// be aborted), their records will be consumed by the new owner.
    pub fenced: Vec<TopicPartition>,
}

pub struct Committer {
    log: Arc<CommitLog>,
    data: Location,
    dropped: Location,
    owner: Owner,
    state: LogState,
    /// Commits since the last snapshot: where recovery looks for the files
    /// of staging entries.
    recent: Vec<Commit>,
    snapshot_every: u64,
}

impl Committer {
    /// Loads the log and finishes what crashed writers left: views and
    /// publication of every commit since the last snapshot.
    pub async fn start(
        log: Arc<CommitLog>,
        data: Location,
        dropped: Location,
        owner: Owner,
    ) -> Result<Self, CommitError> {
        let loaded = log.load().await?;
        let mut committer = Self {
            log,
            data,
            dropped,
            owner,
            state: loaded.state,
            recent: Vec::new(),
            snapshot_every: DEFAULT_SNAPSHOT_EVERY,
        };
        for commit in &loaded.recent {
            committer.finish(commit).await?;
        }
        committer.recent = loaded.recent;
        tracing::info!(
            commit_seq = committer.state.seq,
            partitions = committer.state.partitions.len(),
            owner = %committer.owner,
            "commit log loaded"
        );
        Ok(committer)
    }

    pub fn with_snapshot_every(mut self, commits: u64) -> Self {
        self.snapshot_every = commits.max(1);
        self
    }

    pub fn owner(&self) -> &Owner {
        &self.owner
    }

    pub fn state(&self) -> &LogState {
        &self.state
    }

    pub fn next_checkpoint(&self) -> u64 {
        self.state.next_checkpoint(self.owner.subtask)
    }

    /// Reads commits others made since ours, and returns our commit of
    /// `mine` if the log holds it: an earlier attempt that succeeded though
    /// we saw an error (a lost response, a failure right after the write).
    async fn catch_up(&mut self, mine: Option<u64>) -> Result<Option<Commit>, CommitError> {
        let read = self.log.catch_up(&mut self.state).await?;
        self.recent.extend(read);
        Ok(mine.and_then(|checkpoint| {
            self.recent
                .iter()
                .rev()
                .find(|c| c.owner == self.owner && c.checkpoint == checkpoint)
                .cloned()
        }))
    }

    /// Claims `partitions` for this instance, fencing their previous owners,
    /// and cleans up what those owners left staged. Returns each partition's
    /// next offset; `default_next` is used for partitions the log has never
    /// seen (the earliest offset Kafka holds).
    pub async fn claim(
        &mut self,
        partitions: &[(TopicPartition, i64)],
    ) -> Result<BTreeMap<TopicPartition, i64>, CommitError> {
        loop {
            self.catch_up(None).await?;
            let claims: Vec<Claim> = partitions
                .iter()
                .filter(|(tp, _)| {
                    self.state.partition(tp).and_then(|p| p.owner.as_ref()) != Some(&self.owner)
                })
                .map(|(tp, default_next)| Claim {
                    source: tp.clone(),
                    next: self.state.partition(tp).map_or(*default_next, |p| p.next),
                })
                .collect();
            if claims.is_empty() {
                break;
            }
            let commit = Commit {
                seq: self.state.seq + 1,
                checkpoint: 0,
                owner: self.owner.clone(),
                timestamp: now(),
                plugin: PluginStamp::default(),
                claims,
                ranges: Vec::new(),
                files: Vec::new(),
            };
            if self.log.create(&commit).await? {
                self.state.apply(&commit)?;
                self.recent.push(commit.clone());
                failpoints::hit("after-claim")?;
                tracing::info!(
                    commit_seq = commit.seq,
                    partitions = %commit.claims.iter().map(|c| format!("{}@{}", c.source, c.next)).collect::<Vec<_>>().join(","),
                    "claimed partitions"
                );
                break;
            }
        }
        for (tp, _) in partitions {
            self.recover_staged(tp).await?;
        }
        Ok(partitions
            .iter()
            .map(|(tp, _)| {
                let next = self.state.partition(tp).expect("claimed").next;
                (tp.clone(), next)
            })
            .collect())
    }

    /// Publishes what earlier owners of `tp` committed but left unpublished
    /// and aborts what they staged but never committed. Safe once we own
    /// `tp`: they can no longer commit it.
    async fn recover_staged(&mut self, tp: &TopicPartition) -> Result<(), CommitError> {
        let committed: BTreeMap<&str, (&Commit, &CommittedFile)> = self
            .recent
            .iter()
            .flat_map(|c| c.files.iter().map(move |f| (f.id.as_str(), (c, f))))
            .collect();
        let mut done = Vec::new();
        for entry in self.log.staged(tp).await? {
            if entry.owner == self.owner {
                continue;
            }
            let location = self.location(entry.kind);
            match committed.get(entry.file_id.as_str()) {
                Some((_, file)) => {
                    publish(location, file).await?;
                }
                None => {
                    crate::sink::abort(location, &entry.key, &entry.staging)
                        .await
                        .map_err(|e| CommitError::Publish {
                            url: location.url_of(&entry.key),
                            detail: e.to_string(),
                        })?;
                    tracing::info!(
                        file = %location.url_of(&entry.key),
                        owner = %entry.owner,
                        staging = match &entry.staging { Staging::Multipart { .. } => "multipart upload", Staging::Rename { .. } => "staging file" },
                        "aborted a file no commit claimed"
                    );
                }
            }
            done.push(entry.file_id);
        }
        for id in done {
            self.log.unstage(tp, &id).await?;
        }
        Ok(())
    }

    /// Commits a checkpoint: the commit point of the protocol. Partitions
    /// another owner has claimed are left out and reported; the commit is
    /// written even if none is left, so that its checkpoint number, which
    /// the files after it already carry, is used up in order.
    pub async fn commit(&mut self, prepared: &Prepared) -> Result<Published, CommitError> {
        let mut fenced: Vec<TopicPartition> = Vec::new();
        loop {
            if let Some(own) = self.catch_up(Some(prepared.checkpoint)).await? {
                return Ok(Published {
                    commit: Some(own),
                    fenced,
                });
            }
            let mut commit = Commit {
                seq: self.state.seq + 1,
                checkpoint: prepared.checkpoint,
                owner: self.owner.clone(),
                timestamp: now(),
                plugin: prepared.plugin.clone(),
                claims: Vec::new(),
                ranges: prepared.ranges.clone(),
                files: prepared.files.clone(),
            };
            let mut subtask_in_use = false;
            for conflict in self.state.conflicts(&commit) {
                match conflict {
                    Conflict::NotOwner { source, .. } | Conflict::Gap { source, .. } => {
                        if !fenced.contains(&source) {
                            fenced.push(source);
                        }
                    }
                    Conflict::Checkpoint { .. } => subtask_in_use = true,
                }
            }
            if subtask_in_use {
                let other = self
                    .recent
                    .iter()
                    .rev()
                    .find(|c| c.owner.subtask == self.owner.subtask && c.owner != self.owner)
                    .map_or_else(|| "unknown".into(), |c| c.owner.incarnation.clone());
                return Err(CommitError::SubtaskInUse {
                    subtask: self.owner.subtask,
                    other,
                });
            }
            if !fenced.is_empty() {
                tracing::warn!(
                    partitions = %fenced.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
                    conflicts = %conflict_text(&self.state, &commit),
                    "partitions fenced: another owner took them; what this instance holds for them is dropped and consumed again by the owner"
                );
                commit.ranges.retain(|r| !fenced.contains(&r.source));
                commit.files.retain(|f| !fenced.contains(&f.source));
            }
            if self.log.create(&commit).await? {
                self.state.apply(&commit)?;
                self.recent.push(commit.clone());
                failpoints::hit("after-commit-log-write")?;
                return Ok(Published {
                    commit: Some(commit),
                    fenced,
                });
            }
            // Someone else took this number: read it and try the next.
        }
    }

    /// Everything after the commit point: the seed-compatible view, the
    /// files made visible, their staging entries removed, and now and then
    /// a snapshot.
    pub async fn publish(&mut self, commit: &Commit) -> Result<(), CommitError> {
        self.finish(commit).await?;
        if commit.seq.is_multiple_of(self.snapshot_every) {
            self.snapshot().await?;
        }
        Ok(())
    }

    /// Each write is retried on its own: on a flaky store, redoing the
    /// whole list after one failure would rarely get through a long one.
    async fn finish(&self, commit: &Commit) -> Result<(), CommitError> {
        if commit.checkpoint > 0 {
            retry("write checkpoint view", STEP_BACKOFF, || {
                self.log.write_view(commit)
            })
            .await?;
            failpoints::hit("after-checkpoint-view")?;
        }
        for (i, file) in commit.files.iter().enumerate() {
            retry("publish file", STEP_BACKOFF, || {
                publish(self.location(file.kind), file)
            })
            .await?;
            if i == 0 {
                failpoints::hit("after-first-publish")?;
            }
        }
        if !commit.files.is_empty() {
            failpoints::hit("after-publish")?;
            for kind in [FileKind::Data, FileKind::Dropped] {
                let keys: Vec<&str> = commit
                    .files
                    .iter()
                    .filter(|f| f.kind == kind)
                    .map(|f| f.key.as_str())
                    .collect();
                if !keys.is_empty() {
                    self.location(kind).abort_stray_uploads(&keys).await;
                }
            }
        }
        for file in &commit.files {
            retry("delete staging entry", STEP_BACKOFF, || {
                self.log.unstage(&file.source, &file.id)
            })
            .await?;
        }
        if !commit.files.is_empty() {
            failpoints::hit("after-staging-cleanup")?;
        }
        Ok(())
    }

    /// Finishes every recent commit, ours or not (publishing is idempotent),
    /// and records the state: after it, every staging entry belongs to a
    /// later commit or to none.
    async fn snapshot(&mut self) -> Result<(), CommitError> {
        for commit in &self.recent {
            self.finish(commit).await?;
        }
        self.log.write_snapshot(&self.state).await?;
        failpoints::hit("after-snapshot")?;
        self.recent.clear();
        Ok(())
    }

    fn location(&self, kind: FileKind) -> &Location {
        match kind {
            FileKind::Data => &self.data,
            FileKind::Dropped => &self.dropped,
        }
    }

    /// Files committed since the last snapshot, for tests and `trace`.
    pub fn recent_files(&self) -> HashSet<String> {
        self.recent
            .iter()
            .flat_map(|c| c.files.iter().map(|f| f.id.clone()))
            .collect()
    }
}

/// Backoff of one step of publishing; the caller retries the whole with
/// its own.
const STEP_BACKOFF: Backoff = Backoff {
    first: Duration::from_millis(100),
    max: Duration::from_secs(5),
};

async fn publish(location: &Location, file: &CommittedFile) -> Result<(), CommitError> {
    crate::sink::publish(location, &file.key, &file.publish)
        .await
        .map_err(|e| CommitError::Publish {
            url: file.url.clone(),
            detail: e.to_string(),
        })
}

fn conflict_text(state: &LogState, commit: &Commit) -> String {
    state
        .conflicts(commit)
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(name: &str, path: &str) -> Location {
        Location::open(
            "WRITE_AHEAD_COMMIT_LOG_PATH",
            &format!("memory://{name}/{path}"),
        )
        .unwrap()
    }

    async fn committer(store: &str, subtask: u32, incarnation: &str) -> Committer {
        let log = Arc::new(CommitLog::new(location(store, "wal")));
        Committer::start(
            log,
            location(store, "out"),
            location(store, "dropped"),
            Owner {
                subtask,
                incarnation: incarnation.into(),
            },
        )
        .await
        .unwrap()
    }

    fn tp(p: i32) -> TopicPartition {
        TopicPartition {
            topic: "t".into(),
            partition: p,
        }
    }

    fn prepared(checkpoint: u64, ranges: &[(i32, i64, i64)]) -> Prepared {
        Prepared {
            checkpoint,
            plugin: PluginStamp::default(),
            ranges: ranges
                .iter()
                .map(|&(p, first, last)| OffsetRange {
                    source: tp(p),
                    first,
                    last,
                    records: (last - first + 1) as u64,
                })
                .collect(),
            files: vec![],
        }
    }

    fn store() -> String {
        uuid::Uuid::new_v4().simple().to_string()
    }

    #[tokio::test]
    async fn a_retried_commit_finds_its_own_earlier_success() {
        let s = store();
        let mut a = committer(&s, 0, "a").await;
        a.claim(&[(tp(0), 0)]).await.unwrap();
        let first = a.commit(&prepared(1, &[(0, 0, 9)])).await.unwrap();
        let again = a.commit(&prepared(1, &[(0, 0, 9)])).await.unwrap();
        assert_eq!(
            first.commit, again.commit,
            "the same commit, not a second one"
        );
        assert!(again.fenced.is_empty());
        assert_eq!(a.state().seq, 2);

        // A restarted reader sees exactly one.
        let b = committer(&s, 0, "b").await;
        assert_eq!(b.state().seq, 2);
        assert_eq!(b.state().partition(&tp(0)).unwrap().next, 10);
    }

    #[tokio::test]
    async fn a_claim_by_another_owner_fences_the_old_one() {
        let s = store();
        let mut a = committer(&s, 0, "a").await;
        let mut b = committer(&s, 1, "b").await;
        assert_eq!(a.claim(&[(tp(0), 0), (tp(1), 0)]).await.unwrap()[&tp(0)], 0);
        a.commit(&prepared(1, &[(0, 0, 9), (1, 0, 4)]))
            .await
            .unwrap();

        // b takes partition 0 over, from where the log is.
        let next = b.claim(&[(tp(0), 0)]).await.unwrap();
        assert_eq!(next[&tp(0)], 10);

        // a, unaware, commits both: partition 0 is refused, 1 goes through.
        let published = a
            .commit(&prepared(2, &[(0, 10, 19), (1, 5, 9)]))
            .await
            .unwrap();
        assert_eq!(published.fenced, [tp(0)]);
        let commit = published.commit.unwrap();
        assert_eq!(commit.ranges.len(), 1);
        assert_eq!(commit.ranges[0].source, tp(1));

        b.commit(&prepared(1, &[(0, 10, 19)])).await.unwrap();
        let c = committer(&s, 2, "c").await;
        assert_eq!(c.state().partition(&tp(0)).unwrap().next, 20);
        assert_eq!(c.state().partition(&tp(1)).unwrap().next, 10);
    }

    #[tokio::test]
    async fn the_same_subtask_in_two_live_instances_is_refused() {
        let s = store();
        let mut a = committer(&s, 0, "a").await;
        let mut a2 = committer(&s, 0, "a2").await;
        a.claim(&[(tp(0), 0)]).await.unwrap();
        a2.claim(&[(tp(1), 0)]).await.unwrap();
        a.commit(&prepared(1, &[(0, 0, 9)])).await.unwrap();
        let err = a2.commit(&prepared(1, &[(1, 0, 9)])).await.unwrap_err();
        assert!(
            matches!(err, CommitError::SubtaskInUse { subtask: 0, .. }),
            "{err}"
        );
    }
}
