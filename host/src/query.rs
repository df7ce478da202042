//! Lineage queries, answered from the commit log and the files alone: which
//! committed file holds a record, what a checkpoint committed, and whether
//! the outputs hold exactly what the log says.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float64Type, Int32Type, Int64Type, TimestampMicrosecondType, TimestampMillisecondType,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Serialize;
use serde_json::Value as Json;

use crate::commit::{Commit, CommitError, CommitLog};
use crate::error::{Blame, Classify};
use crate::partition::TopicPartition;
use crate::staging::{FileKind, Outputs, STAGING_DIR, SealedFile};
use crate::store::Location;
use crate::table::IcebergTables;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Commit(#[from] CommitError),
    #[error(transparent)]
    Table(#[from] crate::table::TableError),
    #[error("reading {url}: {detail}")]
    Read { url: String, detail: String },
    #[error("no commit of checkpoint {checkpoint}{}", subtask.map_or(String::new(), |s| format!(" by subtask {s}")))]
    NoCheckpoint {
        checkpoint: u64,
        subtask: Option<u32>,
    },
    #[error("{partition}@{offset} {why}")]
    NotCommitted {
        partition: TopicPartition,
        offset: i64,
        why: Uncommitted,
    },
}

/// Why the log holds no commit for an offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Uncommitted {
    #[error("is not committed yet: the last committed offset of the partition is {last}")]
    Yet { last: i64 },
    #[error(
        "is not committed yet in the partition's restarted log: commit {seq} reset the partition to offset {next} ({reason})"
    )]
    AfterReset { seq: u64, next: i64, reason: String },
    #[error("has no commit: it is before the first offset consumed")]
    BeforeFirst,
    #[error("has no commit: the commit log has nothing for the partition")]
    Nothing,
}

impl Classify for QueryError {
    fn blame(&self) -> Blame {
        match self {
            QueryError::Commit(e) => e.blame(),
            QueryError::Table(e) => e.blame(),
            QueryError::Read { .. } => Blame::Environment,
            QueryError::NoCheckpoint { .. } | QueryError::NotCommitted { .. } => Blame::User,
        }
    }
}

impl Found {
    /// The `schema_id` column of the record's row, where it has one.
    fn schema_id(&self) -> Option<u32> {
        let row = match self {
            Found::Data { row, .. } | Found::Dropped { row, .. } => row,
            _ => return None,
        };
        row.get(crate::sink::SCHEMA_ID)?
            .as_u64()
            .and_then(|id| u32::try_from(id).ok())
    }
}

/// A subject version that holds a schema.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SchemaSubject {
    pub subject: String,
    pub version: i64,
}

/// The plugin build and commit that made a file visible.
#[derive(Debug, Clone, Serialize)]
pub struct CommitInfo {
    pub checkpoint: u64,
    pub subtask: u32,
    pub commit_seq: u64,
    pub committed_at: String,
    pub owner: String,
    pub plugin_name: String,
    pub plugin_version: String,
    pub plugin_sha256: String,
}

impl From<&Commit> for CommitInfo {
    fn from(c: &Commit) -> Self {
        Self {
            checkpoint: c.checkpoint,
            subtask: c.owner.subtask,
            commit_seq: c.seq,
            committed_at: c.timestamp.clone(),
            owner: c.owner.incarnation.clone(),
            plugin_name: c.plugin.name.clone(),
            plugin_version: c.plugin.version.clone(),
            plugin_sha256: c.plugin.sha256.clone(),
        }
    }
}

/// Where one record went.
#[derive(Debug, Serialize)]
pub struct RecordTrace {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    #[serde(flatten)]
    pub commit: CommitInfo,
    #[serde(flatten)]
    pub found: Found,
    /// The writer schema's registry id, for a framed value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema_id: Option<u32>,
    /// The subjects and versions that hold that schema, where the
    /// registry was asked.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub schema_subjects: Vec<SchemaSubject>,
    /// The registry was asked and has no schema with that id.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub schema_unknown: bool,
    /// What a reader should know: the partition was reset since.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// TABLE_FORMAT=iceberg: the table, and the snapshot that appended the
    /// record's file (`None`: not appended yet, or expired).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(tag = "output", rename_all = "lowercase")]
pub enum Found {
    /// Kept: the row as written.
    Data { file: String, row: Json },
    /// Kept, in one of these files: the plugin's columns carry no Kafka
    /// offset to find the row by.
    DataUnindexed { files: Vec<String> },
    Dropped {
        file: String,
        reason: String,
        #[serde(skip)]
        row: Json,
    },
    /// The commit accounts for the offset, but no file holds it: Kafka left
    /// a gap there (a transaction marker, a compacted record).
    Gap,
    /// Never read: a claim of the partition moved past it, for this reason
    /// (Kafka no longer had it, or `auto.offset.reset=latest`).
    Skipped {
        first: i64,
        last: i64,
        reason: String,
    },
}

/// One file of a checkpoint, as the log records it and as the store has it.
#[derive(Debug, Serialize)]
pub struct FileState {
    pub kind: String,
    pub url: String,
    pub topic: String,
    pub partition: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub records: u64,
    pub bytes: u64,
    /// Whether the object is at its key with the recorded size.
    pub visible: bool,
}

#[derive(Debug, Serialize)]
pub struct RangeState {
    pub topic: String,
    pub partition: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub records: u64,
}

/// What one subtask's checkpoint committed.
#[derive(Debug, Serialize)]
pub struct CheckpointTrace {
    #[serde(flatten)]
    pub commit: CommitInfo,
    /// `published` (every file visible) or `committed` (some not yet: the
    /// next start of the subtask publishes them).
    pub state: &'static str,
    pub ranges: Vec<RangeState>,
    pub files: Vec<FileState>,
}

/// What `lineage trace` and `lineage log verify` ask: the commit log and
/// the two outputs, read without a running pipeline.
pub struct Query {
    pub log: CommitLog,
    pub outputs: Outputs,
    /// TABLE_FORMAT=iceberg: the tables the files were appended to.
    pub tables: Option<Arc<IcebergTables>>,
}

impl Query {
    fn location(&self, kind: FileKind) -> &Location {
        self.outputs.location(kind)
    }

    /// Where a record went: the commit whose offset range holds it, and the
    /// file of that commit that holds it.
    pub async fn trace_record(
        &self,
        source: &TopicPartition,
        offset: i64,
    ) -> Result<RecordTrace, QueryError> {
        let commits = self.log.commits().await?;
        let trace = |commit: &Commit, found: Found, note| RecordTrace {
            topic: source.topic.clone(),
            partition: source.partition,
            offset,
            commit: commit.into(),
            schema_id: found.schema_id(),
            schema_subjects: Vec::new(),
            schema_unknown: false,
            found,
            note,
            table: None,
            snapshot_id: None,
        };
        let mut traced = match find_commit(&commits, source, offset)? {
            Holder::Skipped(commit, found, note) => trace(commit, found, note),
            Holder::Range(commit, note) => {
                let found = self.find_in(commit, source, offset).await?;
                trace(commit, found, note)
            }
        };
        let kind = match traced.found {
            Found::Data { .. } | Found::DataUnindexed { .. } => Some(FileKind::Data),
            Found::Dropped { .. } => Some(FileKind::Dropped),
            Found::Gap | Found::Skipped { .. } => None,
        };
        if let (Some(tables), Some(kind)) = (&self.tables, kind) {
            let commit = &traced.commit;
            traced.table = Some(tables.table_name(kind));
            traced.snapshot_id = tables
                .snapshot_of(kind, commit.subtask, commit.commit_seq)
                .await?;
        }
        Ok(traced)
    }

    /// Which of `commit`'s files holds the record: a dropped one, a data
    /// one, or none (a gap Kafka left).
    async fn find_in(
        &self,
        commit: &Commit,
        source: &TopicPartition,
        offset: i64,
    ) -> Result<Found, QueryError> {
        let holding = |kind: FileKind| -> Vec<&SealedFile> {
            commit
                .files
                .iter()
                .filter(|f| {
                    f.kind == kind
                        && f.source == *source
                        && (f.first_offset..=f.last_offset).contains(&offset)
                })
                .collect()
        };
        for file in holding(FileKind::Dropped) {
            if let Lookup::Row(row) = self.find_row(file, offset).await? {
                let reason = row["reason"].as_str().unwrap_or_default().to_owned();
                return Ok(Found::Dropped {
                    file: file.url.clone(),
                    reason,
                    row,
                });
            }
        }
        let mut unindexed = Vec::new();
        for file in holding(FileKind::Data) {
            match self.find_row(file, offset).await? {
                Lookup::Row(row) => {
                    return Ok(Found::Data {
                        file: file.url.clone(),
                        row,
                    });
                }
                Lookup::Unindexed => unindexed.push(file.url.clone()),
                Lookup::Absent => {}
            }
        }
        Ok(if unindexed.is_empty() {
            Found::Gap
        } else {
            Found::DataUnindexed { files: unindexed }
        })
    }

    /// What checkpoint `checkpoint` committed, per subtask (only `subtask`'s
    /// if given).
    pub async fn trace_checkpoint(
        &self,
        checkpoint: u64,
        subtask: Option<u32>,
    ) -> Result<Vec<CheckpointTrace>, QueryError> {
        let commits = self.log.commits().await?;
        let mut out = Vec::new();
        for commit in commits
            .iter()
            .filter(|c| c.checkpoint == checkpoint && subtask.is_none_or(|s| s == c.owner.subtask))
        {
            let mut files = Vec::new();
            for f in commit.files.iter() {
                files.push(FileState {
                    kind: f.kind.to_string(),
                    url: f.url.clone(),
                    topic: f.source.topic.clone(),
                    partition: f.source.partition,
                    first_offset: f.first_offset,
                    last_offset: f.last_offset,
                    records: f.records,
                    bytes: f.bytes,
                    visible: self.size(f).await? == Some(f.bytes),
                });
            }
            out.push(CheckpointTrace {
                commit: commit.into(),
                state: if files.iter().all(|f| f.visible) {
                    "published"
                } else {
                    "committed"
                },
                ranges: commit
                    .ranges
                    .iter()
                    .map(|r| RangeState {
                        topic: r.source.topic.clone(),
                        partition: r.source.partition,
                        first_offset: r.first,
                        last_offset: r.last,
                        records: r.records,
                    })
                    .collect(),
                files,
            });
        }
        if out.is_empty() {
            return Err(QueryError::NoCheckpoint {
                checkpoint,
                subtask,
            });
        }
        Ok(out)
    }

    /// Checks every committed file against the store, and every object under
    /// the outputs against the log.
    pub async fn verify(&self) -> Result<Verification, QueryError> {
        let commits = self.log.commits().await?;
        let mut v = Verification {
            commits: commits.len() as u64,
            ..Verification::default()
        };
        let mut known: HashMap<FileKind, HashSet<object_store::path::Path>> = HashMap::new();
        for commit in &commits {
            for f in commit.files.iter() {
                v.files += 1;
                known
                    .entry(f.kind)
                    .or_default()
                    .insert(self.location(f.kind).path(&f.key));
                match self.size(f).await? {
                    None => v.missing.push(Problem {
                        url: f.url.clone(),
                        checkpoint: commit.checkpoint,
                        subtask: commit.owner.subtask,
                        detail: "not found".into(),
                    }),
                    Some(size) if size != f.bytes => v.wrong_size.push(Problem {
                        url: f.url.clone(),
                        checkpoint: commit.checkpoint,
                        subtask: commit.owner.subtask,
                        detail: format!("{size} bytes, the log records {}", f.bytes),
                    }),
                    Some(_) => {}
                }
            }
        }
        let log_root = self.log.location().url_of("");
        for kind in [FileKind::Data, FileKind::Dropped] {
            let location = self.location(kind);
            let known = known.remove(&kind).unwrap_or_default();
            let staging = location.path(STAGING_DIR);
            let listed: Vec<object_store::ObjectMeta> = location
                .store
                .list(Some(&location.prefix))
                .try_collect()
                .await
                .map_err(|e| QueryError::Read {
                    url: location.url_of(""),
                    detail: e.to_string(),
                })?;
            for meta in listed {
                if known.contains(&meta.location) {
                    continue;
                }
                let key = meta
                    .location
                    .prefix_match(&location.prefix)
                    .map(|parts| {
                        parts
                            .map(|p| p.as_ref().to_owned())
                            .collect::<Vec<_>>()
                            .join("/")
                    })
                    .unwrap_or_else(|| meta.location.to_string());
                let url = location.url_of(&key);
                if url.starts_with(&log_root) {
                    continue;
                }
                // The table's own metadata, checked against the log below.
                if self.tables.is_some() && key.starts_with("metadata/") {
                    continue;
                }
                if meta.location.prefix_matches(&staging) {
                    v.staged.push(url);
                } else {
                    v.unaccounted.push(url);
                }
            }
        }
        if let Some(tables) = &self.tables {
            v.table = Some(check_tables(tables, &commits).await?);
        }
        Ok(v)
    }

    /// The object's size, or `None` if it is not there.
    async fn size(&self, f: &SealedFile) -> Result<Option<u64>, QueryError> {
        let location = self.location(f.kind);
        match location.store.head(&location.path(&f.key)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(QueryError::Read {
                url: f.url.clone(),
                detail: e.to_string(),
            }),
        }
    }

    /// The row of `offset` in `f`, found by its Kafka coordinates.
    async fn find_row(&self, f: &SealedFile, offset: i64) -> Result<Lookup, QueryError> {
        let location = self.location(f.kind);
        let read = |detail: String| QueryError::Read {
            url: f.url.clone(),
            detail,
        };
        let bytes = location
            .store
            .get(&location.path(&f.key))
            .await
            .map_err(|e| read(e.to_string()))?
            .bytes()
            .await
            .map_err(|e| read(e.to_string()))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .and_then(|b| b.build())
            .map_err(|e| read(e.to_string()))?;
        // Dropped files always have these columns; data files when the
        // plugin writes them (as the seed's enrichment does).
        for batch in reader {
            let batch = batch.map_err(|e| read(e.to_string()))?;
            let Some(offsets) = batch
                .column_by_name("kafka_offset")
                .and_then(|c| c.as_primitive_opt::<Int64Type>())
            else {
                return Ok(Lookup::Unindexed);
            };
            let partitions = batch
                .column_by_name("kafka_partition")
                .and_then(|c| c.as_primitive_opt::<Int32Type>());
            for row in 0..batch.num_rows() {
                if offsets.is_valid(row)
                    && offsets.value(row) == offset
                    && partitions.is_none_or(|p| p.value(row) == f.source.partition)
                {
                    return Ok(Lookup::Row(row_json(&batch, row)));
                }
            }
        }
        Ok(Lookup::Absent)
    }
}

enum Lookup {
    Row(Json),
    Unindexed,
    Absent,
}

/// A problem with one committed file.
#[derive(Debug, Serialize)]
pub struct Problem {
    pub url: String,
    pub checkpoint: u64,
    pub subtask: u32,
    pub detail: String,
}

#[derive(Debug, Default, Serialize)]
pub struct Verification {
    pub commits: u64,
    pub files: u64,
    pub missing: Vec<Problem>,
    pub wrong_size: Vec<Problem>,
    /// Objects under the outputs that no commit names.
    pub unaccounted: Vec<String>,
    /// Files still being written, or left by a crash (the next start of
    /// their subtask removes them).
    pub staged: Vec<String>,
    /// TABLE_FORMAT=iceberg: committed files the table lacks (from the
    /// table's first appended commit on), and live table files no commit
    /// names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<TableCheck>,
}

#[derive(Debug, Default, Serialize)]
pub struct TableCheck {
    pub snapshots: Vec<(String, Option<i64>)>,
    pub files: u64,
    pub lacking: Vec<Problem>,
    pub unknown: Vec<String>,
}

impl Verification {
    pub fn ok(&self) -> bool {
        self.missing.is_empty()
            && self.wrong_size.is_empty()
            && self.unaccounted.is_empty()
            && self
                .table
                .as_ref()
                .is_none_or(|t| t.lacking.is_empty() && t.unknown.is_empty())
    }
}

/// Each table against the log: from its first appended commit on, every
/// committed file of its kind must be live in it, and it must hold none
/// the log does not name.
async fn check_tables(
    tables: &IcebergTables,
    commits: &[Commit],
) -> Result<TableCheck, QueryError> {
    let mut check = TableCheck::default();
    for kind in [FileKind::Data, FileKind::Dropped] {
        let held = tables.holdings(kind).await?;
        check
            .snapshots
            .push((tables.table_name(kind), held.current));
        check.files += held.files.len() as u64;
        let first = held.commits.keys().map(|(_, seq)| *seq).min();
        let mut named = HashSet::new();
        for commit in commits {
            for f in commit.files.iter().filter(|f| f.kind == kind) {
                named.insert(f.url.as_str());
                if first.is_some_and(|first| commit.seq >= first) && !held.files.contains(&f.url) {
                    check.lacking.push(Problem {
                        url: f.url.clone(),
                        checkpoint: commit.checkpoint,
                        subtask: commit.owner.subtask,
                        detail: format!(
                            "commit {} is not in table {}",
                            commit.seq,
                            tables.table_name(kind)
                        ),
                    });
                }
            }
        }
        let mut unknown: Vec<String> = held
            .files
            .into_iter()
            .filter(|f| !named.contains(f.as_str()))
            .collect();
        unknown.sort();
        check.unknown.extend(unknown);
    }
    Ok(check)
}

/// One row as JSON, for the column types Lineage writes.
fn row_json(batch: &RecordBatch, row: usize) -> Json {
    let mut out = serde_json::Map::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let value = if column.is_null(row) {
            Json::Null
        } else {
            match field.data_type() {
                DataType::Utf8 => column.as_string::<i32>().value(row).into(),
                DataType::LargeUtf8 => column.as_string::<i64>().value(row).into(),
                DataType::Binary => bytes_json(column.as_binary::<i32>().value(row)),
                DataType::LargeBinary => bytes_json(column.as_binary::<i64>().value(row)),
                DataType::Boolean => column.as_boolean().value(row).into(),
                DataType::Int32 => column.as_primitive::<Int32Type>().value(row).into(),
                DataType::Int64 => column.as_primitive::<Int64Type>().value(row).into(),
                DataType::Float64 => column.as_primitive::<Float64Type>().value(row).into(),
                // Epoch milliseconds, as the plugin gave them, also where a
                // table's files store microseconds.
                DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, _) => column
                    .as_primitive_opt::<TimestampMicrosecondType>()
                    .map_or(Json::Null, |c| c.value(row).div_euclid(1000).into()),
                DataType::Timestamp(_, _) => column
                    .as_primitive_opt::<TimestampMillisecondType>()
                    .map_or(Json::Null, |c| c.value(row).into()),
                other => format!("({other})").into(),
            }
        };
        out.insert(field.name().clone(), value);
    }
    Json::Object(out)
}

/// UTF-8 as text, anything else as hex.
fn bytes_json(b: &[u8]) -> Json {
    match std::str::from_utf8(b) {
        Ok(s) => s.into(),
        Err(_) => b
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
            .into(),
    }
}
/// The commit that accounts for a record, and a note when the partition
/// was reset since.
enum Holder<'a> {
    /// Its range holds the offset.
    Range(&'a Commit, Option<String>),
    /// Its claim skipped the offset: Kafka no longer had it.
    Skipped(&'a Commit, Found, Option<String>),
}

/// Newest first: a range, or a claim that moved past the offset. A reset
/// at or below it means the offset is the restarted log's.
fn find_commit<'a>(
    commits: &'a [Commit],
    source: &TopicPartition,
    offset: i64,
) -> Result<Holder<'a>, QueryError> {
    let mut note = None;
    for c in commits.iter().rev() {
        if c.ranges
            .iter()
            .any(|r| r.source == *source && (r.first..=r.last).contains(&offset))
        {
            return Ok(Holder::Range(c, note));
        }
        for claim in c.claims.iter().filter(|cl| cl.source == *source) {
            let Some(moved) = &claim.moved else { continue };
            if claim.next > moved.from && (moved.from..claim.next).contains(&offset) {
                let skipped = Found::Skipped {
                    first: moved.from,
                    last: claim.next - 1,
                    reason: moved.reason.clone(),
                };
                return Ok(Holder::Skipped(c, skipped, note));
            }
            if claim.next < moved.from && offset >= claim.next {
                return Err(QueryError::NotCommitted {
                    partition: source.clone(),
                    offset,
                    why: Uncommitted::AfterReset {
                        seq: c.seq,
                        next: claim.next,
                        reason: moved.reason.clone(),
                    },
                });
            }
            if claim.next < moved.from && note.is_none() {
                note = Some(format!(
                    "commit {} reset {source} since ({}): this is what its log held at this offset before",
                    c.seq, moved.reason
                ));
            }
        }
    }
    Err(not_committed(commits, source, offset))
}

fn not_committed(commits: &[Commit], source: &TopicPartition, offset: i64) -> QueryError {
    let last = commits
        .iter()
        .flat_map(|c| &c.ranges)
        .filter(|r| r.source == *source)
        .map(|r| r.last)
        .max();
    let why = match last {
        Some(last) if offset > last => Uncommitted::Yet { last },
        Some(_) => Uncommitted::BeforeFirst,
        None => Uncommitted::Nothing,
    };
    QueryError::NotCommitted {
        partition: source.clone(),
        offset,
        why,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commit::{Claim, Moved, OffsetRange, PluginStamp};
    use crate::partition::Owner;

    fn tp() -> TopicPartition {
        TopicPartition {
            topic: "t".into(),
            partition: 0,
        }
    }

    fn commit(seq: u64, claims: Vec<Claim>, ranges: Vec<(i64, i64)>) -> Commit {
        Commit {
            torn: None,
            seq,
            checkpoint: seq,
            owner: Owner {
                subtask: 0,
                incarnation: "a".into(),
            },
            timestamp: String::new(),
            plugin: PluginStamp::default(),
            claims,
            ranges: ranges
                .into_iter()
                .map(|(first, last)| OffsetRange {
                    source: tp(),
                    first,
                    last,
                    records: (last - first + 1) as u64,
                })
                .collect(),
            files: Default::default(),
        }
    }

    fn reset(next: i64, from: i64) -> Claim {
        Claim {
            source: tp(),
            next,
            moved: Some(Moved {
                from,
                reason: "the topic was recreated".into(),
            }),
        }
    }

    fn why(commits: &[Commit], offset: i64) -> Uncommitted {
        match find_commit(commits, &tp(), offset) {
            Err(QueryError::NotCommitted { partition, why, .. }) if partition == tp() => why,
            Err(e) => panic!("{offset}: {e}"),
            Ok(_) => panic!("{offset}: found a commit"),
        }
    }

    #[test]
    fn an_uncommitted_offset_says_why_with_its_partition_and_offset() {
        assert_eq!(why(&[], 5), Uncommitted::Nothing);
        let log = [commit(1, vec![], vec![(10, 19)])];
        assert_eq!(why(&log, 20), Uncommitted::Yet { last: 19 });
        assert_eq!(why(&log, 9), Uncommitted::BeforeFirst);
        let restarted = [
            commit(1, vec![], vec![(10, 19)]),
            commit(2, vec![reset(0, 20)], vec![]),
        ];
        assert_eq!(
            why(&restarted, 3),
            Uncommitted::AfterReset {
                seq: 2,
                next: 0,
                reason: "the topic was recreated".into()
            }
        );
        let err = find_commit(&log, &tp(), 20).err().unwrap();
        assert_eq!(
            err.to_string(),
            "t/0@20 is not committed yet: the last committed offset of the partition is 19"
        );
        assert_eq!(err.blame(), Blame::User);
    }
}
