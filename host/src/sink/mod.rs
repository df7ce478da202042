//! Parquet output: kept rows under OUTPUT_PATH, dropped records under
//! DROPPED_PATH, both as `year=YYYY/month=MM/day=DD/hour=HH/part-*.parquet`.
//!
//! A [`PartitionSink`] owns the open files of one Kafka partition, one per
//! output and event-time hour, and hands them, sealed but invisible, to the
//! checkpoint. A file holds records of one partition only, so that a
//! partition can be committed, fenced or moved on its own.

mod file;
mod schema;
mod staged;

use std::sync::Arc;

use arrow_schema::SchemaRef;
use chrono::{DateTime, Datelike, Timelike};
use tokio::runtime::Handle;

pub use file::{FileSettings, SealedFile};
pub use schema::{CHECKPOINT_ID, DroppedRow, data_schema, dropped_schema};
pub use staged::{Leftover, STAGING_DIR, abort, leftovers, publish, remove, staged_by_id};

use crate::commit::{CommitError, CommitLog, FileKind, Owner, TopicPartition};
use crate::error::{Blame, Classify};
use crate::failpoints::FailpointError;
use crate::plugin::{KafkaRecord, OutcomeRef, Outcomes, Plugin, ValueRef};
use crate::retry::{GaveUp, Policy};
use crate::store::{Location, OpError};
use file::ParquetFile;
use schema::{DataRows, DroppedRows};
use staged::StagedWriter;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(transparent)]
    Store(#[from] OpError),
    #[error("writing Parquet: {0}")]
    Parquet(parquet::errors::ParquetError),
    #[error(transparent)]
    Log(#[from] CommitError),
    #[error(transparent)]
    Failpoint(#[from] FailpointError),
    #[error("upload task: {0}")]
    Task(tokio::task::JoinError),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    GaveUp(#[from] GaveUp),
}

impl Classify for SinkError {
    fn blame(&self) -> Blame {
        match self {
            SinkError::Store(e) => e.blame(),
            SinkError::Failpoint(_) => Blame::Environment,
            SinkError::Log(e) => e.blame(),
            SinkError::GaveUp(e) => e.blame(),
            SinkError::Parquet(_) | SinkError::Task(_) | SinkError::Invalid(_) => Blame::Internal,
        }
    }

    fn retryable(&self) -> bool {
        match self {
            SinkError::Log(e) => e.retryable(),
            SinkError::GaveUp(_) => false,
            other => other.blame() == Blame::Environment,
        }
    }
}

impl SinkError {
    /// The upload (or staging file) being written is gone: the partition's
    /// new owner aborted it while claiming the partition. Not an error of
    /// this instance, which has lost the partition.
    pub fn upload_gone(&self) -> bool {
        let SinkError::Store(OpError { source, .. }) = self else {
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

/// What every partition's files share.
pub struct SinkContext {
    pub data: Location,
    pub dropped: Location,
    pub log: Arc<CommitLog>,
    pub runtime: Handle,
    pub owner: Owner,
    pub settings: FileSettings,
    pub plugin: Arc<Plugin>,
    /// How uploads are retried, until the run's shutdown deadline.
    pub policy: Policy,
    data_schema: SchemaRef,
    dropped_schema: SchemaRef,
}

impl SinkContext {
    pub fn new(
        data: Location,
        dropped: Location,
        log: Arc<CommitLog>,
        runtime: Handle,
        owner: Owner,
        settings: FileSettings,
        plugin: Arc<Plugin>,
    ) -> Self {
        let data_schema = data_schema(plugin.schema());
        Self {
            data,
            dropped,
            log,
            runtime,
            owner,
            settings,
            plugin,
            policy: Policy::until(crate::retry::Deadline::default()),
            data_schema,
            dropped_schema: dropped_schema(),
        }
    }

    /// Retries give up at this policy's deadline.
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Files opened from now on are the new plugin's, with its columns.
    /// Called only between checkpoints, when no file is open.
    pub fn switch_plugin(&mut self, plugin: Arc<Plugin>) {
        self.data_schema = data_schema(plugin.schema());
        self.plugin = plugin;
    }

    pub fn location(&self, kind: FileKind) -> &Location {
        match kind {
            FileKind::Data => &self.data,
            FileKind::Dropped => &self.dropped,
        }
    }
}

/// An hour of event time: the directory a record goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hour {
    pub year: i32,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
}

impl Hour {
    /// The UTC hour of an epoch-millisecond time, if it has a four-digit
    /// year.
    pub fn of_millis(ms: i64) -> Option<Self> {
        let t = DateTime::from_timestamp_millis(ms)?;
        (0..=9999).contains(&t.year()).then(|| Hour {
            year: t.year(),
            month: t.month(),
            day: t.day(),
            hour: t.hour(),
        })
    }

    pub fn dir(&self) -> String {
        format!(
            "year={:04}/month={:02}/day={:02}/hour={:02}",
            self.year, self.month, self.day, self.hour
        )
    }
}

/// Where a file of `source` starting at `first_offset` goes: under its
/// hour, named for its partition, so that the files of one partition can
/// be found among all (see [`of_partition`]).
fn file_key(hour: &Hour, source: &TopicPartition, first_offset: i64, id: &str) -> String {
    format!(
        "{}/part-{}-{}-{first_offset:020}-{}.parquet",
        hour.dir(),
        source.topic,
        source.partition,
        &id[..12]
    )
}

/// Whether `key` (inside its location) is a file of `source` as
/// [`file_key`] lays it out: `year=YYYY/month=MM/day=DD/hour=HH/` and the
/// partition's name. Exact, so that neither a location nested in this one
/// nor another topic matches: a topic name may hold dashes and digits (`a`
/// partition 1 and `a-1` partition 2 share the prefix `part-a-1-`), so the
/// rest of the name must be the 20-digit offset and the 12-character id.
pub fn of_partition(key: &str, source: &TopicPartition) -> bool {
    let parts: Vec<&str> = key.split('/').collect();
    let [year, month, day, hour, name] = parts[..] else {
        return false;
    };
    let digits = |part: &str, field: &str, n: usize| {
        part.strip_prefix(field)
            .is_some_and(|d| d.len() == n && d.bytes().all(|b| b.is_ascii_digit()))
    };
    if !(digits(year, "year=", 4)
        && digits(month, "month=", 2)
        && digits(day, "day=", 2)
        && digits(hour, "hour=", 2))
    {
        return false;
    }
    let prefix = format!("part-{}-{}-", source.topic, source.partition);
    let Some(rest) = name
        .strip_prefix(&prefix)
        .and_then(|r| r.strip_suffix(".parquet"))
    else {
        return false;
    };
    // Bytes, not characters: a name need not be ASCII.
    let rest = rest.as_bytes();
    rest.len() == 33
        && rest[..20].iter().all(u8::is_ascii_digit)
        && rest[20] == b'-'
        && rest[21..].iter().all(u8::is_ascii_alphanumeric)
}

const EPOCH: Hour = Hour {
    year: 1970,
    month: 1,
    day: 1,
    hour: 0,
};

enum Rows {
    Data(DataRows),
    Dropped(Box<DroppedRows>),
}

struct OpenFile {
    file: ParquetFile,
    rows: Rows,
}

impl OpenFile {
    fn buffered(&self) -> usize {
        match &self.rows {
            Rows::Data(r) => r.rows(),
            Rows::Dropped(r) => r.rows(),
        }
    }

    fn flush_rows(&mut self) -> Result<(), SinkError> {
        if self.buffered() == 0 {
            return Ok(());
        }
        let batch = match &mut self.rows {
            Rows::Data(r) => r.finish(),
            Rows::Dropped(r) => r.finish(),
        };
        self.file.write(&batch)
    }

    fn memory(&self) -> usize {
        self.file.memory()
            + match &self.rows {
                Rows::Data(r) => r.bytes(),
                Rows::Dropped(r) => r.bytes(),
            }
    }
}

type Slot = (FileKind, Hour);

/// The files of one partition in the current checkpoint.
pub struct PartitionSink {
    source: TopicPartition,
    /// The claim its records were consumed under; its staging entries say
    /// so, for the recovery of a later owner.
    claim: u64,
    /// A handful at most (an output and an hour each), so a list: cheaper
    /// per record than hashing.
    open: Vec<(Slot, OpenFile)>,
    sealed: Vec<SealedFile>,
    /// The last hour computed, by epoch hour: records mostly share one.
    last_hour: Option<(i64, Hour)>,
}

impl PartitionSink {
    pub fn new(source: TopicPartition, claim: u64) -> Self {
        Self {
            source,
            claim,
            open: Vec::new(),
            sealed: Vec::new(),
            last_hour: None,
        }
    }

    fn hour(&mut self, millis: i64) -> Option<Hour> {
        let bucket = millis.div_euclid(3_600_000);
        match self.last_hour {
            Some((b, hour)) if b == bucket => Some(hour),
            _ => {
                let hour = Hour::of_millis(millis)?;
                self.last_hour = Some((bucket, hour));
                Some(hour)
            }
        }
    }

    /// Writes each record where its outcome sends it.
    pub fn write(
        &mut self,
        cx: &SinkContext,
        checkpoint: u64,
        records: &[KafkaRecord<'_>],
        outcomes: &Outcomes,
    ) -> Result<(), SinkError> {
        let event_time = cx.plugin.schema().event_time;
        for (record, outcome) in records.iter().zip(outcomes.iter()) {
            match outcome {
                OutcomeRef::Keep(row) => {
                    let millis = match event_time.and_then(|i| row.get(i)) {
                        Some(ValueRef::Int64(ms) | ValueRef::TimestampMs(ms)) => Some(ms),
                        _ => record.timestamp,
                    };
                    match millis.and_then(|ms| self.hour(ms)) {
                        Some(hour) => {
                            let file =
                                self.file(cx, checkpoint, FileKind::Data, hour, record.offset)?;
                            file.file.note(record.offset);
                            let Rows::Data(rows) = &mut file.rows else {
                                unreachable!("data files hold data rows")
                            };
                            rows.append(&row);
                        }
                        None => {
                            let reason = match millis {
                                Some(ms) => format!("event time {ms} ms is outside the years 0 to 9999"),
                                None => "no event time: the plugin declares none and the record has no Kafka timestamp".into(),
                            };
                            self.drop_record(cx, checkpoint, record, &reason)?;
                        }
                    }
                }
                OutcomeRef::Drop(reason) => self.drop_record(cx, checkpoint, record, reason)?,
            }
        }
        self.after_write(cx)
    }

    fn drop_record(
        &mut self,
        cx: &SinkContext,
        checkpoint: u64,
        record: &KafkaRecord<'_>,
        reason: &str,
    ) -> Result<(), SinkError> {
        let hour = record
            .timestamp
            .and_then(|ms| self.hour(ms))
            .unwrap_or(EPOCH);
        let file = self.file(cx, checkpoint, FileKind::Dropped, hour, record.offset)?;
        file.file.note(record.offset);
        let Rows::Dropped(rows) = &mut file.rows else {
            unreachable!("dropped files hold dropped rows")
        };
        rows.append(&DroppedRow {
            topic: record.topic,
            partition: record.partition,
            offset: record.offset,
            timestamp: record.timestamp,
            key: record.key,
            value: record.value,
            headers: record.headers,
            reason,
        });
        Ok(())
    }

    /// Encodes full row buffers and rolls files past their size.
    fn after_write(&mut self, cx: &SinkContext) -> Result<(), SinkError> {
        for (_, open) in self.open.iter_mut() {
            if open.buffered() >= cx.settings.batch_rows {
                open.flush_rows()?;
            }
        }
        while let Some(i) = self.open.iter().position(|(_, open)| open.file.full()) {
            let (_, open) = self.open.swap_remove(i);
            self.sealed.push(seal(open)?);
        }
        Ok(())
    }

    fn file(
        &mut self,
        cx: &SinkContext,
        checkpoint: u64,
        kind: FileKind,
        hour: Hour,
        first_offset: i64,
    ) -> Result<&mut OpenFile, SinkError> {
        let slot = (kind, hour);
        if let Some(i) = self.open.iter().position(|(s, _)| *s == slot) {
            return Ok(&mut self.open[i].1);
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        let key = file_key(&hour, &self.source, first_offset, &id);
        let staged = StagedWriter::open(
            cx,
            staged::FileSpec {
                kind,
                source: &self.source,
                key,
                id: &id,
                claim: self.claim,
            },
        )?;
        let (schema, rows) = match kind {
            FileKind::Data => (
                cx.data_schema.clone(),
                Rows::Data(DataRows::new(
                    cx.data_schema.clone(),
                    cx.plugin.schema(),
                    checkpoint as i64,
                )),
            ),
            FileKind::Dropped => {
                let id = cx.plugin.identity();
                (
                    cx.dropped_schema.clone(),
                    Rows::Dropped(Box::new(DroppedRows::new(
                        cx.dropped_schema.clone(),
                        [id.name.clone(), id.version.clone(), id.sha256.clone()],
                        checkpoint as i64,
                    ))),
                )
            }
        };
        let file = ParquetFile::new(kind, id, self.source.clone(), schema, staged, &cx.settings)?;
        self.open.push((slot, OpenFile { file, rows }));
        Ok(&mut self.open.last_mut().expect("just pushed").1)
    }

    pub fn claim(&self) -> u64 {
        self.claim
    }

    /// No file open and none sealed awaiting its checkpoint.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty() && self.sealed.is_empty()
    }

    /// Memory held by this partition's open files.
    pub fn memory(&self) -> usize {
        self.open.iter().map(|(_, f)| f.memory()).sum()
    }

    /// Seals the file holding the most memory, to stay inside the budget.
    pub fn seal_largest(&mut self) -> Result<usize, SinkError> {
        let Some(i) = self
            .open
            .iter()
            .enumerate()
            .max_by_key(|(_, (_, f))| f.memory())
            .map(|(i, _)| i)
        else {
            return Ok(0);
        };
        let (_, open) = self.open.swap_remove(i);
        let freed = open.memory();
        self.sealed.push(seal(open)?);
        Ok(freed)
    }

    /// Seals every file for the checkpoint and hands them over.
    /// On an error the files not sealed yet stay open, so that an abort
    /// still finds them and their staging entries.
    pub fn seal_all(&mut self) -> Result<Vec<SealedFile>, SinkError> {
        while let Some((_, open)) = self.open.pop() {
            self.sealed.push(seal(open)?);
        }
        Ok(std::mem::take(&mut self.sealed))
    }

    /// Gives up everything not yet handed over: nothing of it becomes
    /// visible, and its staging entries go.
    pub fn abort(&mut self, cx: &SinkContext) {
        for (_, open) in self.open.drain(..) {
            let (source, id) = (open.file.source.clone(), open.file.id.clone());
            open.file.abort();
            let _ = cx.runtime.block_on(cx.log.unstage(&source, &id));
        }
        for file in self.sealed.drain(..) {
            abort_sealed(cx, &file);
        }
    }
}

/// Aborts a sealed file that will not be committed; failures are left to
/// recovery, which finds the staging entry.
pub fn abort_sealed(cx: &SinkContext, file: &SealedFile) {
    let location = cx.location(file.kind);
    cx.runtime.block_on(discard(
        location,
        &cx.log,
        &file.source,
        &file.id,
        &file.key,
        &file.publish.staging(),
    ));
}

/// Aborts a staged file that will not be committed and removes its staging
/// entry. Failures are logged and left to recovery, which finds the entry
/// when the partition is next claimed.
pub async fn discard(
    location: &Location,
    log: &CommitLog,
    source: &TopicPartition,
    id: &str,
    key: &str,
    staging: &crate::commit::Staging,
) {
    let result = async {
        abort(location, key, staging).await?;
        log.unstage(source, id).await?;
        Ok::<_, SinkError>(())
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, file = %location.url_of(key), "could not abort a staged file; recovery will");
    }
}

fn seal(mut open: OpenFile) -> Result<SealedFile, SinkError> {
    open.flush_rows()?;
    open.file.seal()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_are_utc_and_bounded() {
        let h = Hour::of_millis(1_732_550_400_000).unwrap();
        assert_eq!(h.dir(), "year=2024/month=11/day=25/hour=16");
        assert_eq!(Hour::of_millis(0).unwrap(), EPOCH);
        assert_eq!(
            Hour::of_millis(-1).unwrap().dir(),
            "year=1969/month=12/day=31/hour=23"
        );
        assert!(Hour::of_millis(i64::MAX).is_none());
        assert!(Hour::of_millis(253_402_300_800_000).is_none(), "year 10000");
    }

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
        let error = SinkError::Store(OpError {
            setting: "OUTPUT_PATH",
            op: "finish staging file",
            url: "file".into(),
            source: Box::new(error),
        });
        assert!(error.upload_gone(), "{error}");
        let other = SinkError::Store(OpError {
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

    #[test]
    fn files_are_told_apart_by_partition_exactly() {
        let tp = |topic: &str, partition| TopicPartition {
            topic: topic.into(),
            partition,
        };
        let id = "0123456789abcdef0123456789abcdef";
        let key = file_key(&EPOCH, &tp("a-1", 2), 7, id);
        assert!(of_partition(&key, &tp("a-1", 2)), "{key}");
        assert!(!of_partition(&key, &tp("a", 1)), "{key}");
        assert!(!of_partition(&key, &tp("a-1", 22)), "{key}");
        assert!(
            !of_partition(
                &format!("dropped/{}", file_key(&EPOCH, &tp("a", 1), 7, id)),
                &tp("a", 1)
            ),
            "a location nested in this one is not this one"
        );
        assert!(!of_partition(
            "year=1970/month=01/day=01/hour=00/part-a-1-x.parquet",
            &tp("a", 1)
        ));
        assert!(!of_partition(
            "year=1970/month=01/day=01/hour=00/part-a-1-ééééééééééééééééé.parquet",
            &tp("a", 1)
        ));
    }
}
