//! The commit protocol: claim partitions, commit checkpoints with optimistic
//! concurrency on a single global sequence of create-if-absent objects, and
//! publish what was committed. Every step is idempotent, so the caller
//! retries any of them after an error and recovery repeats them after a
//! crash.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use super::entry::{Claim, Commit, Moved, OffsetRange, PluginStamp};
use super::error::CommitError;
use super::log::CommitLog;
use super::state::{Conflict, LogState};
use super::tables::Tables;
use crate::failpoints::{self, Failpoint};
use crate::partition::{Owner, TopicPartition};
use crate::retry::{Backoff, Deadline, Policy, retry};
use crate::staging::{
    self, FileKind, Leftover, Outputs, Publish, SealedFile, StagedEntry, Staging,
};
use crate::store::Location;

/// Take a snapshot of the folded state every this many commits, so that a
/// start reads a bounded number of commits.
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 100;

/// The commits since the last snapshot are held in memory, every file they
/// name included; once they name this many (wide spreads of hours seal
/// thousands per checkpoint), the next checkpoint commit snapshots early.
pub const SNAPSHOT_FILES: usize = 20_000;

/// A checkpoint ready to commit: sealed files and the offset ranges they
/// account for.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub checkpoint: u64,
    pub plugin: PluginStamp,
    pub ranges: Vec<OffsetRange>,
    /// Shared with the commit and the recent commits rather than copied: a
    /// checkpoint of a wide spread of hours names thousands of files.
    pub files: Arc<Vec<SealedFile>>,
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

/// A partition Kafka assigned, as the consumer saw it.
#[derive(Debug, Clone)]
pub struct Wanted {
    pub source: TopicPartition,
    /// Kafka's log start offset (low watermark), where the broker said.
    pub low: Option<i64>,
    /// Kafka's high watermark, where the broker said.
    pub high: Option<i64>,
    /// Go on from this offset instead of the log's next, for this reason:
    /// what the consumer found while it read (Kafka had deleted the
    /// offsets it asked for, or the partition's log restarted). Only
    /// claimed while the partition is still this instance's.
    pub move_to: Option<(i64, String)>,
}

impl Wanted {
    pub fn assigned(source: TopicPartition, low: Option<i64>, high: Option<i64>) -> Self {
        Self {
            source,
            low,
            high,
            move_to: None,
        }
    }
}

/// A partition claimed: where to consume from, and under which claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claimed {
    pub next: i64,
    /// The sequence number of the claim commit.
    pub seq: u64,
}

/// What to do when the log's next offset of a partition is one Kafka no
/// longer has (retention, truncation) or never had (a recreated topic).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MissingOffsets {
    /// Record the skip (or the reset) in the commit log, with its reason,
    /// and go on.
    #[default]
    Skip,
    /// Stop, naming the partition and the offsets.
    Stop,
}

/// Where consumption goes on when the offset to read is out of Kafka's
/// range, and where a partition the commit log has never seen starts: the
/// user's `auto.offset.reset`. Lineage applies it itself, so that every
/// offset it passes over is recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OffsetReset {
    /// Not set: a partition never seen, or whose log start passed the next
    /// offset, goes on from the log start; a log that ends below the next
    /// offset goes on from its end. A log can end below what was committed
    /// because a leader election truncated it (its start is the records
    /// already committed) or because the topic was recreated (its start is
    /// new records), and nothing tells the two apart: re-reading would
    /// commit the first case's records twice, so only an explicit
    /// `earliest` does.
    #[default]
    Unset,
    /// Always from the log start.
    Earliest,
    /// Always from the log end.
    Latest,
}

/// Why offset `next` of a partition is outside Kafka's log `low..=high`
/// (the high watermark is the offset after the last record), and where to
/// go on from by `reset`; `None` when it is inside.
pub fn out_of_range(next: i64, low: i64, high: i64, reset: OffsetReset) -> Option<(i64, String)> {
    if next < low {
        let to = if reset == OffsetReset::Latest {
            high
        } else {
            low
        };
        Some((
            to,
            format!(
                "log start offset {low} > next {next}: offsets {next}..{} are no longer in Kafka (retention or truncation){}",
                low - 1,
                if to > low {
                    format!("; auto.offset.reset=latest: going on from the end, {to}")
                } else {
                    String::new()
                }
            ),
        ))
    } else if next > high {
        let earliest = reset == OffsetReset::Earliest;
        let to = if earliest { low } else { high };
        let then = if earliest {
            format!("going on from its start, {low} (auto.offset.reset=earliest)")
        } else if low < high {
            format!(
                "going on from its end, {high}; its offsets {low}..{} are not read (auto.offset.reset=earliest would read them)",
                high - 1
            )
        } else {
            format!("going on from its end, {high}")
        };
        Some((
            to,
            format!(
                "high watermark {high} < next {next}: the partition's log ends below what was committed (a leader election truncated it, or the topic was deleted and recreated); {then}"
            ),
        ))
    } else {
        None
    }
}

impl std::str::FromStr for MissingOffsets {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "skip" => Ok(Self::Skip),
            "stop" => Ok(Self::Stop),
            other => Err(format!("{other:?} is neither skip nor stop")),
        }
    }
}

pub struct Committer {
    log: Arc<CommitLog>,
    outputs: Outputs,
    owner: Owner,
    state: LogState,
    /// Commits since the last snapshot: where recovery looks for the files
    /// of staging entries.
    recent: Vec<Commit>,
    snapshot_every: u64,
    policy: Policy,
    on_missing: MissingOffsets,
    reset: OffsetReset,
    /// Our latest claim of each partition we ever claimed, kept after it is
    /// fenced: what the sweep after a fence may clean up is what was
    /// staged under it or before.
    mine: HashMap<TopicPartition, u64>,
    /// Claims written that moved a partition's next offset, until the
    /// pipeline counts them.
    moves: Vec<Claim>,
    /// The claim commits of ours `note_claims` recorded.
    noted: HashSet<u64>,
    /// Where published files are registered (TABLE_FORMAT), if anywhere.
    tables: Option<Arc<dyn Tables>>,
}

impl Committer {
    /// Loads the log and finishes what crashed writers left: views and
    /// publication of every commit since the last snapshot.
    pub async fn start(
        log: Arc<CommitLog>,
        outputs: Outputs,
        owner: Owner,
        policy: Policy,
        tables: Option<Arc<dyn Tables>>,
    ) -> Result<Self, CommitError> {
        let loaded = log.load().await?;
        let mut committer = Self {
            log,
            outputs,
            owner,
            state: loaded.state,
            recent: Vec::new(),
            snapshot_every: DEFAULT_SNAPSHOT_EVERY,
            policy,
            on_missing: MissingOffsets::Skip,
            reset: OffsetReset::Unset,
            mine: HashMap::new(),
            moves: Vec::new(),
            noted: HashSet::new(),
            tables,
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

    pub fn on_missing_offsets(mut self, on_missing: MissingOffsets) -> Self {
        self.on_missing = on_missing;
        self
    }

    pub fn resetting_to(mut self, reset: OffsetReset) -> Self {
        self.reset = reset;
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

    /// Whether the log, as far as it was read, still has `tp` as ours under
    /// the claim `seq`.
    fn owns(&self, tp: &TopicPartition, seq: u64) -> bool {
        self.state
            .partition(tp)
            .is_some_and(|p| p.owner.as_ref() == Some(&self.owner) && p.claimed == seq)
    }

    /// Reads the log to its end and says whether `tp` is still ours: asked
    /// before every abort, so that an instance that stalled after its claim
    /// (a pause, SIGSTOP, a slow store) never aborts what a later owner
    /// staged or committed meanwhile.
    async fn still_owns(&mut self, tp: &TopicPartition, seq: u64) -> Result<bool, CommitError> {
        self.catch_up(None).await?;
        let owns = self.owns(tp, seq);
        if !owns {
            tracing::warn!(
                partition = %tp,
                claim = seq,
                owner = %self.state.partition(tp).and_then(|p| p.owner.as_ref()).map_or_else(|| "nobody".into(), ToString::to_string),
                "claimed partition taken by another owner before its recovery finished; leaving what is staged for it to that owner"
            );
        }
        Ok(owns)
    }

    /// Claims the partitions for this instance, fencing their previous
    /// owners, and cleans up what those owners left staged. Returns where
    /// to start each partition that is still ours once that is done: one
    /// taken by another owner meanwhile is left out.
    pub async fn claim(
        &mut self,
        wanted: &[Wanted],
    ) -> Result<BTreeMap<TopicPartition, Claimed>, CommitError> {
        loop {
            self.catch_up(None).await?;
            let claims = self.claims(wanted)?;
            if claims.is_empty() {
                break;
            }
            let commit = Commit {
                torn: None,
                seq: self.state.seq + 1,
                checkpoint: 0,
                owner: self.owner.clone(),
                timestamp: now(),
                plugin: PluginStamp::default(),
                claims,
                ranges: Vec::new(),
                files: Default::default(),
            };
            if self.log.create(&commit).await? {
                self.state.apply(&commit)?;
                self.recent.push(commit.clone());
                self.note_claims(&commit);
                failpoints::hit(Failpoint::AfterClaim)?;
                break;
            }
        }
        // A claim whose reply was lost was found by the catch-up instead.
        let found: Vec<Commit> = self
            .recent
            .iter()
            .filter(|c| {
                c.owner == self.owner && !c.claims.is_empty() && !self.noted.contains(&c.seq)
            })
            .cloned()
            .collect();
        for commit in &found {
            self.note_claims(commit);
        }
        let mut claimed = BTreeMap::new();
        for w in wanted {
            let Some(seq) = self
                .state
                .partition(&w.source)
                .filter(|p| p.owner.as_ref() == Some(&self.owner))
                .map(|p| p.claimed)
            else {
                continue;
            };
            if self.recover(&w.source, seq).await? {
                let next = self.state.partition(&w.source).expect("owned").next;
                claimed.insert(w.source.clone(), Claimed { next, seq });
            }
        }
        Ok(claimed)
    }

    /// Records a claim commit of ours: the claims for later sweeps, and the
    /// moves, logged at error level and kept for the pipeline to count.
    fn note_claims(&mut self, commit: &Commit) {
        self.noted.insert(commit.seq);
        for c in &commit.claims {
            self.mine.insert(c.source.clone(), commit.seq);
            let Some(moved) = &c.moved else { continue };
            self.moves.push(c.clone());
            let what = if c.next > moved.from {
                "offsets skipped: never read; the commit log records them, and `lineage trace` of one says so".to_owned()
            } else {
                format!(
                    "partition's log restarted below the commit log's next offset: going on from offset {}, recorded in the commit log",
                    c.next
                )
            };
            tracing::error!(
                partition = %c.source,
                from = moved.from,
                to = c.next,
                commit_seq = commit.seq,
                reason = %moved.reason,
                "{what}"
            );
        }
        tracing::info!(
            commit_seq = commit.seq,
            partitions = %commit.claims.iter().map(|c| format!("{}@{}", c.source, c.next)).collect::<Vec<_>>().join(","),
            "claimed partitions"
        );
    }

    /// The claims to write for `wanted` on top of the current state.
    fn claims(&self, wanted: &[Wanted]) -> Result<Vec<Claim>, CommitError> {
        let mut claims = Vec::new();
        for w in wanted {
            let state = self.state.partition(&w.source);
            let owned = state.and_then(|p| p.owner.as_ref()) == Some(&self.owner);
            if w.move_to.is_some() && !owned {
                continue;
            }
            let next = state.map(|p| p.next);
            match self.moved(w, next)? {
                Some((to, moved)) => claims.push(Claim {
                    source: w.source.clone(),
                    next: to,
                    moved: Some(moved),
                }),
                None if !owned => claims.push(Claim {
                    source: w.source.clone(),
                    next: next.or(w.low).unwrap_or(0),
                    moved: None,
                }),
                None => {}
            }
        }
        Ok(claims)
    }

    /// Where `w` must start instead of the log's `next`: Kafka no longer
    /// has the offsets from `next` on, or its log is shorter than `next`;
    /// or, for a partition the log has never seen, at its end when
    /// `auto.offset.reset` says latest.
    fn moved(&self, w: &Wanted, next: Option<i64>) -> Result<Option<(i64, Moved)>, CommitError> {
        let Some(from) = next else {
            return Ok(match (self.reset, w.low, w.high) {
                (OffsetReset::Latest, Some(low), Some(high)) if high > low => Some((
                    high,
                    Moved {
                        from: low,
                        reason: format!(
                            "auto.offset.reset=latest: a partition the commit log has never seen starts at its high watermark {high}; offsets {low}..{} are not read",
                            high - 1
                        ),
                    },
                )),
                _ => None,
            });
        };
        let (to, reason) = match (&w.move_to, w.low, w.high) {
            (Some((to, reason)), _, _) => (*to, reason.clone()),
            // Only forward here: a log start is never reported ahead of
            // the log, but a high watermark can lag behind it, and going
            // back over committed offsets on its word would commit them
            // twice. A log that ends below `next` is for the consumer to
            // find and confirm by fetching (`source::probe`).
            (None, Some(low), Some(high)) if from < low => {
                out_of_range(from, low, high, self.reset).expect("below the log start")
            }
            _ => return Ok(None),
        };
        if to == from {
            return Ok(None);
        }
        if self.on_missing == MissingOffsets::Stop {
            return Err(CommitError::MissingOffsets {
                partition: w.source.clone(),
                from,
                to,
                reason,
            });
        }
        Ok(Some((to, Moved { from, reason })))
    }

    /// After our claim `claim` of `tp`: publishes what earlier owners
    /// committed but left unpublished, aborts what they staged but never
    /// committed, and aborts every upload or staging file of `tp` that no
    /// entry or commit names (a zombie's upload that landed after its entry
    /// was resolved, a retried start of an upload). Touches only what was
    /// staged under earlier claims, and checks before each abort that `tp`
    /// is still ours; returns false, leaving the rest, once it is not.
    /// Entries of this instance's own earlier claims are resolved too: the
    /// epoch rule keeps their files out of every later commit, and a worker
    /// that could not remove one (a store fault) left it to this claim.
    async fn recover(&mut self, tp: &TopicPartition, claim: u64) -> Result<bool, CommitError> {
        // Listed before the entries: an upload seen here whose writer is
        // alive has its entry written before it, so that entry is listed
        // below and protects it.
        let leftovers = self.leftovers(tp).await?;
        let staged = self.log.entries().staged(tp).await?;
        if !self.still_owns(tp, claim).await? {
            return Ok(false);
        }
        let committed = self.committed(tp);
        let mut done = Vec::new();
        for entry in &staged.entries {
            if entry.claim >= claim {
                continue;
            }
            let location = self.location(entry.kind).clone();
            match committed.get(entry.file_id.as_str()) {
                Some(file) => publish(&location, file).await?,
                None => {
                    if !self.still_owns(tp, claim).await? {
                        return Ok(false);
                    }
                    staging::abort(&location, &entry.key, &entry.staging).await?;
                    tracing::info!(
                        file = %location.url_of(&entry.key),
                        owner = %entry.owner,
                        staging = match &entry.staging { Staging::Multipart { .. } => "multipart upload", Staging::Rename { .. } => "staging file" },
                        "aborted a file no commit claimed"
                    );
                }
            }
            done.push(entry.file_id.clone());
        }
        for id in &staged.torn {
            if let Some(file) = committed.get(id.as_str()) {
                publish(self.location(file.kind), file).await?;
            } else {
                if !self.still_owns(tp, claim).await? {
                    return Ok(false);
                }
                for (_, location) in self.outputs.both() {
                    staging::remove(location, &staging::staged_by_id(tp, id)).await?;
                }
            }
            done.push(id.clone());
        }
        for id in &done {
            self.log.entries().unstage(tp, id).await?;
        }
        // Their commits' other files, and their table append, may be
        // waiting for a writer that is gone: finishing is idempotent.
        let named: Vec<Commit> = self
            .recent
            .iter()
            .filter(|c| c.files.iter().any(|f| done.contains(&f.id)))
            .cloned()
            .collect();
        for commit in &named {
            self.finish(commit).await?;
        }
        let keep = Keep::of(&staged.entries, &self.owner, claim, &committed, false);
        for (kind, leftover) in leftovers {
            if keep.protects(&leftover) {
                continue;
            }
            if !self.still_owns(tp, claim).await? {
                return Ok(false);
            }
            self.remove_leftover(kind, &leftover, "claim").await;
        }
        Ok(true)
    }

    /// After `tp` was fenced here: aborts its uploads and staging files
    /// that no commit and no entry of a later claim names. What this
    /// instance still holds for it is aborted by the workers (their entries
    /// protect it here); a newer owner's work is protected by its entries,
    /// which it writes before it uploads. Best effort: the next claim of
    /// `tp` does the same.
    pub async fn sweep_fenced(&mut self, tp: &TopicPartition) {
        let Some(&claim) = self.mine.get(tp) else {
            return;
        };
        let result: Result<(), CommitError> = async {
            let leftovers = self.leftovers(tp).await?;
            if leftovers.is_empty() {
                return Ok(());
            }
            let staged = self.log.entries().staged(tp).await?;
            self.catch_up(None).await?;
            let committed = self.committed(tp);
            let keep = Keep::of(&staged.entries, &self.owner, claim, &committed, true);
            for (kind, leftover) in leftovers {
                if !keep.protects(&leftover) {
                    self.remove_leftover(kind, &leftover, "fence").await;
                }
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(partition = %tp, error = %e, "could not sweep the uploads of a fenced partition; its next claim does");
        }
    }

    async fn leftovers(
        &self,
        tp: &TopicPartition,
    ) -> Result<Vec<(FileKind, Leftover)>, CommitError> {
        let mut all = Vec::new();
        for (kind, location) in self.outputs.both() {
            for leftover in staging::leftovers(location, tp).await? {
                all.push((kind, leftover));
            }
        }
        Ok(all)
    }

    /// Best effort: what nobody names is garbage, not state; one left
    /// behind (no permission to abort, a store that is away) is tried
    /// again at the partition's next claim or fence.
    async fn remove_leftover(&self, kind: FileKind, leftover: &Leftover, when: &'static str) {
        let location = self.location(kind);
        let (what, key) = match leftover {
            Leftover::Upload { key, .. } => ("multipart upload", key),
            Leftover::File { staging, .. } => ("staging file", staging),
        };
        match staging::remove(location, leftover).await {
            Ok(()) => tracing::info!(
                file = %location.url_of(key),
                staged = what,
                after = when,
                "aborted what no entry or commit names"
            ),
            Err(e) => tracing::warn!(
                file = %location.url_of(key),
                staged = what,
                error = %e,
                "could not abort what no entry or commit names; the partition's next claim tries again"
            ),
        }
    }

    /// The files of `tp` committed since the last snapshot, by id.
    fn committed(&self, tp: &TopicPartition) -> HashMap<String, SealedFile> {
        self.recent
            .iter()
            .flat_map(|c| c.files.iter())
            .filter(|f| f.source == *tp)
            .map(|f| (f.id.clone(), f.clone()))
            .collect()
    }

    /// Commits a checkpoint: the commit point of the protocol. Partitions
    /// another owner has claimed are left out and reported; the commit is
    /// written even if none is left, so that its checkpoint number, which
    /// the files after it already carry, is used up in order.
    pub async fn commit(&mut self, prepared: &Prepared) -> Result<Published, CommitError> {
        let mut fenced: Vec<TopicPartition> = Vec::new();
        loop {
            if let Some(own) = self.catch_up(Some(prepared.checkpoint)).await? {
                // Written by an earlier attempt whose reply was lost: what
                // it left out was fenced then, and still is.
                for source in prepared
                    .ranges
                    .iter()
                    .map(|r| &r.source)
                    .chain(prepared.files.iter().map(|f| &f.source))
                {
                    if !own.ranges.iter().any(|r| r.source == *source) && !fenced.contains(source) {
                        fenced.push(source.clone());
                    }
                }
                return Ok(Published {
                    commit: Some(own),
                    fenced,
                });
            }
            let mut commit = Commit {
                torn: None,
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
                Arc::make_mut(&mut commit.files).retain(|f| !fenced.contains(&f.source));
            }
            if self.log.create(&commit).await? {
                self.state.apply(&commit)?;
                self.recent.push(commit.clone());
                failpoints::hit(Failpoint::AfterCommitLogWrite)?;
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
        let files: usize = self.recent.iter().map(|c| c.files.len()).sum();
        if commit.seq.is_multiple_of(self.snapshot_every) || files >= SNAPSHOT_FILES {
            self.snapshot().await?;
        }
        Ok(())
    }

    /// Each write is retried on its own: on a flaky store, redoing the
    /// whole list after one failure would rarely get through a long one.
    async fn finish(&self, commit: &Commit) -> Result<(), CommitError> {
        let policy = self.policy.clone().with_backoff(STEP_BACKOFF);
        if commit.checkpoint > 0 {
            let view = CommitLog::view_key(commit.checkpoint, commit.owner.subtask);
            retry(
                &format!(
                    "write checkpoint view {}",
                    self.log.location().url_of(&view)
                ),
                &policy,
                || self.log.write_view(commit),
            )
            .await?;
            failpoints::hit(Failpoint::AfterCheckpointView)?;
        }
        for (i, file) in commit.files.iter().enumerate() {
            retry(&format!("publish {}", file.url), &policy, || {
                publish(self.location(file.kind), file)
            })
            .await?;
            if i == 0 {
                failpoints::hit(Failpoint::AfterFirstPublish)?;
            }
        }
        if !commit.files.is_empty() {
            failpoints::hit(Failpoint::AfterPublish)?;
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
        // Before the entries go: a claimer that finds them finishes the
        // commit, append included, if its writer is gone.
        if let Some(tables) = self.tables.as_ref().filter(|_| !commit.files.is_empty()) {
            retry(
                &format!("append commit {} to the table", commit.seq),
                &policy,
                || async { Ok::<_, CommitError>(tables.append(commit).await?) },
            )
            .await?;
        }
        for file in commit.files.iter() {
            retry(
                &format!("delete the staging entry of {}", file.url),
                &policy,
                || self.log.entries().unstage(&file.source, &file.id),
            )
            .await?;
        }
        if !commit.files.is_empty() {
            failpoints::hit(Failpoint::AfterStagingCleanup)?;
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
        failpoints::hit(Failpoint::AfterSnapshot)?;
        self.recent.clear();
        Ok(())
    }

    fn location(&self, kind: FileKind) -> &Location {
        self.outputs.location(kind)
    }

    /// Files committed since the last snapshot, for tests and `trace`.
    pub fn recent_files(&self) -> HashSet<String> {
        self.recent
            .iter()
            .flat_map(|c| c.files.iter().map(|f| f.id.clone()))
            .collect()
    }

    /// The claims written since the last call that moved a partition's
    /// next offset.
    pub fn take_moves(&mut self) -> Vec<Claim> {
        std::mem::take(&mut self.moves)
    }

    /// The shutdown deadline the committer's retries stop at.
    pub fn deadline(&self) -> &Deadline {
        &self.policy.deadline
    }
}

/// What a recovery or a sweep must leave alone in a partition: what this
/// instance is writing, what a later claim staged, and what a commit names
/// and publishing will complete.
struct Keep {
    keys: HashSet<(FileKind, String)>,
    ids: HashSet<String>,
    uploads: HashSet<(String, String)>,
}

impl Keep {
    /// `fenced`: this instance no longer owns the partition, so entries
    /// that name no claim (written by a version before claims were
    /// numbered, perhaps by its live new owner) are left to the next claim.
    fn of(
        entries: &[StagedEntry],
        owner: &Owner,
        claim: u64,
        committed: &HashMap<String, SealedFile>,
        fenced: bool,
    ) -> Self {
        let mut keep = Keep {
            keys: HashSet::new(),
            ids: HashSet::new(),
            uploads: HashSet::new(),
        };
        for e in entries
            .iter()
            .filter(|e| e.owner == *owner || e.claim > claim || (fenced && e.claim == 0))
        {
            keep.keys.insert((e.kind, e.key.clone()));
            keep.ids.insert(e.file_id.clone());
        }
        for f in committed.values() {
            keep.ids.insert(f.id.clone());
            if let Publish::Multipart { upload_id, .. } = &f.publish {
                keep.uploads.insert((f.key.clone(), upload_id.clone()));
            }
        }
        keep
    }

    fn protects(&self, leftover: &Leftover) -> bool {
        match leftover {
            Leftover::Upload { key, upload_id } => {
                self.keys.contains(&(FileKind::Data, key.clone()))
                    || self.keys.contains(&(FileKind::Dropped, key.clone()))
                    || self.uploads.contains(&(key.clone(), upload_id.clone()))
            }
            Leftover::File { file_id, .. } => self.ids.contains(file_id),
        }
    }
}

/// Backoff of one step of publishing; the caller retries the whole with
/// its own.
const STEP_BACKOFF: Backoff = Backoff {
    first: Duration::from_millis(100),
    max: Duration::from_secs(5),
};

async fn publish(location: &Location, file: &SealedFile) -> Result<(), CommitError> {
    Ok(staging::publish(location, &file.key, &file.publish).await?)
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
    use object_store::ObjectStoreExt;

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
            Outputs {
                data: location(store, "out"),
                dropped: location(store, "dropped"),
            },
            Owner {
                subtask,
                incarnation: incarnation.into(),
            },
            Policy::until(Deadline::default()),
            None,
        )
        .await
        .unwrap()
    }

    /// Partitions as Kafka assigns them, the broker's watermarks unknown.
    fn wanted(partitions: &[i32]) -> Vec<Wanted> {
        partitions
            .iter()
            .map(|&p| Wanted::assigned(tp(p), Some(0), None))
            .collect()
    }

    fn next(claimed: &BTreeMap<TopicPartition, Claimed>, p: i32) -> i64 {
        claimed[&tp(p)].next
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
            files: Default::default(),
        }
    }

    fn store() -> String {
        uuid::Uuid::new_v4().simple().to_string()
    }

    #[tokio::test]
    async fn a_retried_commit_finds_its_own_earlier_success() {
        let s = store();
        let mut a = committer(&s, 0, "a").await;
        a.claim(&wanted(&[0])).await.unwrap();
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
        assert_eq!(next(&a.claim(&wanted(&[0, 1])).await.unwrap(), 0), 0);
        a.commit(&prepared(1, &[(0, 0, 9), (1, 0, 4)]))
            .await
            .unwrap();

        // b takes partition 0 over, from where the log is.
        let claimed = b.claim(&wanted(&[0])).await.unwrap();
        assert_eq!(next(&claimed, 0), 10);

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
        a.claim(&wanted(&[0])).await.unwrap();
        a2.claim(&wanted(&[1])).await.unwrap();
        a.commit(&prepared(1, &[(0, 0, 9)])).await.unwrap();
        let err = a2.commit(&prepared(1, &[(1, 0, 9)])).await.unwrap_err();
        assert!(
            matches!(err, CommitError::SubtaskInUse { subtask: 0, .. }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_retried_commit_still_reports_what_it_fenced() {
        let s = store();
        let mut a = committer(&s, 0, "a").await;
        let mut b = committer(&s, 1, "b").await;
        a.claim(&wanted(&[0, 1])).await.unwrap();
        b.claim(&wanted(&[0])).await.unwrap();
        let first = a
            .commit(&prepared(1, &[(0, 0, 9), (1, 0, 4)]))
            .await
            .unwrap();
        assert_eq!(first.fenced, [tp(0)]);
        // The write landed but its reply was lost: the retry finds the
        // commit, and must still say that partition 0 was left out, or its
        // files would neither be committed nor aborted.
        let retried = a
            .commit(&prepared(1, &[(0, 0, 9), (1, 0, 4)]))
            .await
            .unwrap();
        assert_eq!(retried.commit, first.commit);
        assert_eq!(retried.fenced, [tp(0)]);
    }

    #[test]
    fn offsets_outside_kafkas_log_say_why_and_where_to_go_on() {
        use OffsetReset::{Earliest, Latest};
        assert_eq!(out_of_range(100, 0, 500, Earliest), None);
        assert_eq!(out_of_range(500, 0, 500, Earliest), None, "at the end");
        let (to, why) = out_of_range(100, 5000, 6000, Earliest).unwrap();
        assert_eq!(to, 5000);
        assert!(
            why.starts_with("log start offset 5000 > next 100: offsets 100..4999"),
            "{why}"
        );
        assert_eq!(out_of_range(100, 5000, 6000, Latest).unwrap().0, 6000);
        let (to, why) = out_of_range(300, 0, 12, Earliest).unwrap();
        assert_eq!(to, 0);
        assert!(why.starts_with("high watermark 12 < next 300"), "{why}");
        assert_eq!(out_of_range(300, 0, 12, Latest).unwrap().0, 12);
    }

    #[tokio::test]
    async fn a_claim_moves_past_offsets_kafka_no_longer_has_or_never_had() {
        let s = store();
        let mut a = committer(&s, 0, "a").await;
        a.claim(&wanted(&[0, 1])).await.unwrap();
        a.commit(&prepared(1, &[(0, 0, 99), (1, 0, 299)]))
            .await
            .unwrap();
        let mut b = committer(&s, 1, "b").await;
        // Retention deleted up to 5000. Partition 1's log is reported to
        // end at 12, which is not enough to go back over committed
        // offsets: the consumer confirms it by fetching, then moves it.
        let claimed = b
            .claim(&[
                Wanted::assigned(tp(0), Some(5000), Some(6000)),
                Wanted::assigned(tp(1), Some(0), Some(12)),
            ])
            .await
            .unwrap();
        assert_eq!((next(&claimed, 0), next(&claimed, 1)), (5000, 300));
        let restarted = "high watermark 12 < next 300: confirmed by a fetch".to_owned();
        let claimed = b
            .claim(&[Wanted {
                source: tp(1),
                low: None,
                high: None,
                move_to: Some((12, restarted)),
            }])
            .await
            .unwrap();
        assert_eq!(next(&claimed, 1), 12);
        let log = CommitLog::new(location(&s, "wal"));
        let moved = async |seq: u64| {
            let commit = log.read(seq).await.unwrap().unwrap();
            commit.claims.iter().find_map(|c| c.moved.clone()).unwrap()
        };
        let skipped = moved(b.state().seq - 1).await;
        assert_eq!(skipped.from, 100);
        assert!(
            skipped
                .reason
                .starts_with("log start offset 5000 > next 100: offsets 100..4999"),
            "{skipped:?}"
        );
        let reset = moved(b.state().seq).await;
        assert_eq!(reset.from, 300);
        assert!(reset.reason.ends_with("confirmed by a fetch"), "{reset:?}");

        // Told to stop instead, the claim fails naming the partition.
        let mut c = committer(&s, 2, "c")
            .await
            .on_missing_offsets(MissingOffsets::Stop);
        let err = c
            .claim(&[Wanted::assigned(tp(0), Some(9000), Some(9500))])
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("t/0: log start offset 9000 > next 5000"),
            "{err}"
        );
    }

    /// A stalled claimer (it claimed, then paused before its recovery) must
    /// not abort what the partition's next owner staged meanwhile.
    #[tokio::test]
    async fn recovery_after_a_stalled_claim_leaves_a_later_owners_files_alone() {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str| {
            Location::open("OUTPUT_PATH", dir.path().join(name).to_str().unwrap()).unwrap()
        };
        let start = |incarnation: &str, subtask| {
            let log = Arc::new(CommitLog::new(at("wal")));
            Committer::start(
                log,
                Outputs {
                    data: at("out"),
                    dropped: at("dropped"),
                },
                Owner {
                    subtask,
                    incarnation: incarnation.into(),
                },
                Policy::until(Deadline::default()),
                None,
            )
        };
        let mut a = start("a", 0).await.unwrap();
        let a_claim = a.claim(&wanted(&[0])).await.unwrap()[&tp(0)].seq;
        // While a stalls, c claims the partition and stages a file.
        let mut c = start("c", 1).await.unwrap();
        let c_claim = c.claim(&wanted(&[0])).await.unwrap()[&tp(0)].seq;
        let staging = format!("{}/t/0/f1.parquet.inprogress", crate::staging::STAGING_DIR);
        let out = at("out");
        out.store
            .put(&out.path(&staging), b"PAR1".to_vec().into())
            .await
            .unwrap();
        let entry = StagedEntry {
            file_id: "f1".into(),
            owner: c.owner().clone(),
            claim: c_claim,
            kind: FileKind::Data,
            source: tp(0),
            key: "year=2026/part.parquet".into(),
            staging: Staging::Rename {
                staging: staging.clone(),
            },
        };
        CommitLog::new(at("wal"))
            .entries()
            .stage(&entry)
            .await
            .unwrap();

        // a wakes up and goes on with its recovery.
        assert!(!a.recover(&tp(0), a_claim).await.unwrap(), "no longer a's");
        let log = CommitLog::new(at("wal"));
        assert_eq!(log.entries().staged(&tp(0)).await.unwrap().entries, [entry]);
        assert!(out.store.head(&out.path(&staging)).await.is_ok());
    }
    /// A worker of this instance could not remove the staging entry of a
    /// file it gave up when the partition was fenced (a store fault). When
    /// this instance claims the partition again, that entry and its file
    /// go; an entry staged under the new claim stays.
    #[tokio::test]
    async fn claiming_again_resolves_what_this_instance_left_of_an_earlier_claim() {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str| {
            Location::open("OUTPUT_PATH", dir.path().join(name).to_str().unwrap()).unwrap()
        };
        let start = |incarnation: &str, subtask| {
            Committer::start(
                Arc::new(CommitLog::new(at("wal"))),
                Outputs {
                    data: at("out"),
                    dropped: at("dropped"),
                },
                Owner {
                    subtask,
                    incarnation: incarnation.into(),
                },
                Policy::until(Deadline::default()),
                None,
            )
        };
        let out = at("out");
        let log = CommitLog::new(at("wal"));
        let stage = |a: &Committer, id: &str, claim: u64| {
            let staging = format!(
                "{}/t/0/{id}.parquet.inprogress",
                crate::staging::STAGING_DIR
            );
            let entry = StagedEntry {
                file_id: id.into(),
                owner: a.owner().clone(),
                claim,
                kind: FileKind::Data,
                source: tp(0),
                key: format!("year=2026/part-{id}.parquet"),
                staging: Staging::Rename {
                    staging: staging.clone(),
                },
            };
            let (out, log) = (&out, &log);
            async move {
                out.store
                    .put(&out.path(&staging), b"PAR1".to_vec().into())
                    .await
                    .unwrap();
                log.entries().stage(&entry).await.unwrap();
                (entry, staging)
            }
        };
        let mut a = start("a", 0).await.unwrap();
        let first = a.claim(&wanted(&[0])).await.unwrap()[&tp(0)].seq;
        let (_, old_file) = stage(&a, "old", first).await;
        // Another owner fences a; a's worker gives its file up but its
        // entry stays.
        let mut b = start("b", 1).await.unwrap();
        b.claim(&wanted(&[0])).await.unwrap();
        let again = a.claim(&wanted(&[0])).await.unwrap()[&tp(0)].seq;
        assert!(again > first);
        assert!(
            log.entries()
                .staged(&tp(0))
                .await
                .unwrap()
                .entries
                .is_empty(),
            "the entry of the earlier claim is resolved"
        );
        assert!(out.store.head(&out.path(&old_file)).await.is_err());

        let (current, current_file) = stage(&a, "current", again).await;
        a.claim(&wanted(&[0])).await.unwrap();
        assert_eq!(
            log.entries().staged(&tp(0)).await.unwrap().entries,
            [current]
        );
        assert!(out.store.head(&out.path(&current_file)).await.is_ok());
    }
}
