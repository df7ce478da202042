//! What the status page, `/status` and `lineage status` show, and how it
//! follows from the commit log: one shape, so that the page of a running
//! instance and the answer read from the log alone can be compared field
//! by field.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::commit::{Commit, LogState};
use crate::partition::TopicPartition;
use crate::staging::FileKind;

/// Checkpoints shown, newest first.
pub const CHECKPOINTS: usize = 50;

/// Drop classes shown, most frequent first.
const DROP_CLASSES: usize = 10;

/// Below this median, files are called small and a hint says what to raise.
const SMALL_FILE: u64 = 1 << 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// When this was put together, RFC 3339 UTC.
    pub generated_at: String,
    /// The last commit in the log.
    pub commit_seq: u64,
    /// A running instance's own state; absent when read from the log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<Live>,
    pub partitions: Vec<PartitionStatus>,
    pub checkpoints: Vec<CheckpointStatus>,
    pub drops: Vec<DropStatus>,
    pub files: FileSizes,
    /// The build that wrote the newest checkpoint shown (the log), or the
    /// one in use (a running instance).
    pub plugin: Option<PluginStatus>,
}

/// What only a running instance knows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Live {
    pub subtask: u32,
    pub incarnation: String,
    pub state: State,
    pub memory: Memory,
    /// Seconds since this instance last committed; `None` before its first.
    pub seconds_since_commit: Option<f64>,
    /// Builds checked since the start, loaded or refused, oldest first.
    pub swaps: Vec<Swap>,
    /// Records/s and lag, one sample every few seconds, oldest first.
    pub rates: Vec<Rate>,
    pub records_consumed: u64,
    pub records_kept: u64,
    pub records_dropped: u64,
    /// TABLE_FORMAT=iceberg: the last snapshot this instance appended to
    /// each table.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<TableSnapshot>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableSnapshot {
    pub table: String,
    pub snapshot_id: i64,
    pub commit_seq: u64,
    pub checkpoint: u64,
    pub at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// `starting`, `consuming`, `paused`, `blocked_on_store`,
    /// `blocked_on_broker`, `blocked_on_registry`, `stopping`, `failing`.
    pub code: String,
    /// The same in words.
    pub text: String,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    pub used_bytes: u64,
    pub budget_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Swap {
    pub at: String,
    pub outcome: String,
    pub name: String,
    pub version: String,
    pub sha256: String,
    /// Why a build was refused.
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    /// Unix seconds.
    pub at: f64,
    pub records_per_s: f64,
    pub lag: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionStatus {
    pub topic: String,
    pub partition: i32,
    /// The subtask that owns it in the log, and its incarnation.
    pub subtask: Option<u32>,
    pub incarnation: Option<String>,
    /// The first offset no commit accounts for.
    pub next: i64,
    /// The newest commit shown with a range of it.
    pub last_commit_at: Option<String>,
    /// From the broker, where it was asked (a running instance for what it
    /// holds, `lineage status` with KAFKA_BOOTSTRAP_SERVERS).
    pub high_watermark: Option<i64>,
    /// Records between `next` (or the consumer's position, live) and the
    /// high watermark.
    pub lag: Option<i64>,
    pub records_per_s: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointStatus {
    pub checkpoint: u64,
    pub subtask: u32,
    pub commit_seq: u64,
    pub committed_at: String,
    /// Measured by the instance that wrote it: from its workers' seal to
    /// its files published. Not in the log.
    pub started_at: Option<String>,
    pub duration_ms: Option<u64>,
    pub files: usize,
    pub rows_kept: u64,
    pub rows_dropped: u64,
    pub bytes: u64,
    /// `committed` (the commit point is passed) or `published` (every
    /// file visible and its staging entry gone).
    pub state: String,
    pub plugin_sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DropStatus {
    pub class: String,
    pub count: u64,
    /// `topic/partition@offset` of one record dropped for it.
    pub example: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileSizes {
    pub count: usize,
    pub median_bytes: Option<u64>,
    pub hint: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginStatus {
    pub name: String,
    pub version: String,
    pub sha256: String,
}

impl PluginStatus {
    pub fn of(identity: &crate::plugin::PluginIdentity) -> Self {
        Self {
            name: identity.name.clone(),
            version: identity.version.clone(),
            sha256: identity.sha256.clone(),
        }
    }
}

impl CheckpointStatus {
    /// A checkpoint commit; `published` says whether its files are all
    /// visible.
    pub fn of(commit: &Commit, published: bool) -> Self {
        let rows = |kind| {
            commit
                .files
                .iter()
                .filter(|f| f.kind == kind)
                .map(|f| f.records)
                .sum()
        };
        Self {
            checkpoint: commit.checkpoint,
            subtask: commit.owner.subtask,
            commit_seq: commit.seq,
            committed_at: commit.timestamp.clone(),
            started_at: None,
            duration_ms: None,
            files: commit.files.len(),
            rows_kept: rows(FileKind::Data),
            rows_dropped: rows(FileKind::Dropped),
            bytes: commit.files.iter().map(|f| f.bytes).sum(),
            state: if published { "published" } else { "committed" }.into(),
            plugin_sha256: commit.plugin.sha256.clone(),
        }
    }
}

/// Whether a commit holds a checkpoint (claims alone do not).
pub fn is_checkpoint(commit: &Commit) -> bool {
    commit.checkpoint > 0 && commit.torn.is_none()
}

/// What the report needs of one checkpoint commit, without its file list:
/// a running instance keeps fifty of these, not fifty commits.
#[derive(Debug, Clone)]
pub struct Digest {
    pub status: CheckpointStatus,
    /// The partitions it has ranges of.
    partitions: Vec<TopicPartition>,
    /// Its dropped files' classes, with examples.
    drops: Vec<DropStatus>,
    /// Each file's bytes.
    sizes: Vec<u64>,
    plugin: PluginStatus,
}

impl Digest {
    pub fn of(commit: &Commit, published: bool) -> Self {
        let mut drops: Vec<DropStatus> = Vec::new();
        for f in commit.files.iter() {
            for d in &f.drops {
                let example = format!("{}/{}@{}", f.source.topic, f.source.partition, d.example);
                match drops.iter_mut().find(|s| s.class == d.class) {
                    Some(s) => s.count += d.count,
                    None => drops.push(DropStatus {
                        class: d.class.clone(),
                        count: d.count,
                        example,
                    }),
                }
            }
        }
        Self {
            status: CheckpointStatus::of(commit, published),
            partitions: commit.ranges.iter().map(|r| r.source.clone()).collect(),
            drops,
            sizes: commit.files.iter().map(|f| f.bytes).collect(),
            plugin: PluginStatus {
                name: commit.plugin.name.clone(),
                version: commit.plugin.version.clone(),
                sha256: commit.plugin.sha256.clone(),
            },
        }
    }
}

impl Report {
    /// What the log says: `state` folded from it, and the newest checkpoint
    /// commits, oldest first.
    pub fn of_log(state: &LogState, commits: &[Digest]) -> Self {
        let mut last_commit: BTreeMap<&TopicPartition, &str> = BTreeMap::new();
        for c in commits {
            for tp in &c.partitions {
                last_commit.insert(tp, &c.status.committed_at);
            }
        }
        let partitions = state
            .partitions
            .iter()
            .map(|(tp, p)| PartitionStatus {
                topic: tp.topic.clone(),
                partition: tp.partition,
                subtask: p.owner.as_ref().map(|o| o.subtask),
                incarnation: p.owner.as_ref().map(|o| o.incarnation.clone()),
                next: p.next,
                last_commit_at: last_commit.get(tp).map(|t| (*t).to_owned()),
                high_watermark: None,
                lag: None,
                records_per_s: None,
            })
            .collect();
        Self {
            generated_at: crate::commit::now(),
            commit_seq: state.seq,
            live: None,
            partitions,
            checkpoints: commits.iter().rev().map(|c| c.status.clone()).collect(),
            drops: drops(commits),
            files: sizes(commits),
            plugin: commits.last().map(|c| c.plugin.clone()),
        }
    }

    /// Sets each partition's high watermark and the lag behind it.
    pub fn with_watermarks(mut self, highs: &BTreeMap<TopicPartition, i64>) -> Self {
        for p in &mut self.partitions {
            let tp = TopicPartition {
                topic: p.topic.clone(),
                partition: p.partition,
            };
            if let Some(&high) = highs.get(&tp) {
                p.high_watermark = Some(high);
                p.lag = Some((high - p.next).max(0));
            }
        }
        self
    }
}

/// The drop classes of the commits, most frequent first; each example is
/// the newest commit's.
fn drops(commits: &[Digest]) -> Vec<DropStatus> {
    let mut by_class: BTreeMap<&str, (u64, &str)> = BTreeMap::new();
    for d in commits.iter().flat_map(|c| c.drops.iter()) {
        let entry = by_class.entry(&d.class).or_insert((0, &d.example));
        entry.0 += d.count;
        entry.1 = &d.example;
    }
    let mut drops: Vec<DropStatus> = by_class
        .into_iter()
        .map(|(class, (count, example))| DropStatus {
            class: class.to_owned(),
            count,
            example: example.to_owned(),
        })
        .collect();
    drops.sort_by(|a, b| b.count.cmp(&a.count).then(a.class.cmp(&b.class)));
    drops.truncate(DROP_CLASSES);
    drops
}

fn sizes(commits: &[Digest]) -> FileSizes {
    let mut bytes: Vec<u64> = commits
        .iter()
        .flat_map(|c| c.sizes.iter().copied())
        .collect();
    bytes.sort_unstable();
    let median = bytes.get(bytes.len() / 2).copied();
    let hint = median.filter(|&m| m < SMALL_FILE).map(|m| {
        format!(
            "files have a median size of {}: raise CHECKPOINT_INTERVAL (each checkpoint closes every file) or MAX_FILE_SIZE, or use fewer partitions",
            human_bytes(m)
        )
    });
    FileSizes {
        count: bytes.len(),
        median_bytes: median,
        hint,
    }
}

pub fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.0} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// The file ids that still have a staging entry: a commit naming one is
/// not published yet.
pub fn unpublished(commit: &Commit, staged: &HashSet<String>) -> bool {
    commit.files.iter().any(|f| staged.contains(&f.id))
}
