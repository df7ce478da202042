//! The open files of one Kafka partition, one per output and event-time
//! hour, and the records written into them as their outcomes say.

use super::context::SinkContext;
use super::error::SinkError;
use super::file::ParquetFile;
use super::schema::{DataRows, DroppedRows};
use crate::partition::TopicPartition;
use crate::plugin::{KafkaRecord, OutcomeRef, Outcomes, ValueRef};
use crate::staging::{FileKind, Hour, SealedFile, Stager, file_key};

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

    fn flush_rows(&mut self, stager: &Stager) -> Result<(), SinkError> {
        if self.buffered() == 0 {
            return Ok(());
        }
        let batch = match &mut self.rows {
            Rows::Data(r) => r.finish(),
            Rows::Dropped(r) => r.finish(),
        };
        self.file.write(stager, &batch)
    }

    /// Its real footprint: the file and its writer, and the builders with
    /// what they hold.
    fn memory(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.file.memory()
            + match &self.rows {
                Rows::Data(r) => r.bytes(),
                Rows::Dropped(r) => std::mem::size_of::<DroppedRows>() + r.bytes(),
            }
    }
}

pub type Slot = (FileKind, Hour);

/// One open file, as the budget sees it.
#[derive(Debug, Clone, Copy)]
pub struct FileCost {
    pub slot: Slot,
    pub memory: usize,
    pub records: u64,
}

impl FileCost {
    /// Memory per row held: highest for a file of a few rows, whose fixed
    /// cost is spread over the fewest; these are mostly old hours, which
    /// late data reaches rarely, so sealing them seldom opens them again.
    pub fn per_row(&self) -> usize {
        self.memory / self.records.max(1) as usize
    }
}

/// The files of one partition in the current checkpoint.
pub struct PartitionSink {
    source: TopicPartition,
    /// The claim its records were consumed under; its staging entries say
    /// so, for the recovery of a later owner.
    claim: u64,
    /// A handful at most (an output and an hour each), so a list: cheaper
    /// per record than hashing. Boxed, so that a list grown for many hours
    /// does not hold twice their size.
    open: Vec<(Slot, Box<OpenFile>)>,
    sealed: Vec<SealedFile>,
    /// Memory of the open files as last counted (after each write), and of
    /// the sealed files' descriptions, which wait for the checkpoint.
    open_bytes: usize,
    sealed_bytes: usize,
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
            open_bytes: 0,
            sealed_bytes: 0,
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
                            file.file.note(record.offset, record.schema_id);
                            let Rows::Data(rows) = &mut file.rows else {
                                unreachable!("data files hold data rows")
                            };
                            rows.append(&row, record.schema_id);
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
            .unwrap_or(Hour::EPOCH);
        let file = self.file(cx, checkpoint, FileKind::Dropped, hour, record.offset)?;
        file.file.note(record.offset, record.schema_id);
        file.file.note_drop(reason, record.offset);
        let Rows::Dropped(rows) = &mut file.rows else {
            unreachable!("dropped files hold dropped rows")
        };
        rows.append(record, reason);
        Ok(())
    }

    /// Encodes full row buffers and rolls files past their size.
    fn after_write(&mut self, cx: &SinkContext) -> Result<(), SinkError> {
        for (_, open) in self.open.iter_mut() {
            if open.buffered() >= cx.settings.batch_rows {
                open.flush_rows(&cx.staging)?;
            }
        }
        while let Some(i) = self.open.iter().position(|(_, open)| open.file.full()) {
            let (_, open) = self.open.swap_remove(i);
            self.keep_sealed(seal(&cx.staging, *open)?);
        }
        self.open_bytes = self.open.iter().map(|(_, f)| f.memory()).sum();
        Ok(())
    }

    fn keep_sealed(&mut self, file: SealedFile) {
        self.sealed_bytes += file.footprint();
        self.sealed.push(file);
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
        let (schema, rows) = match kind {
            FileKind::Data => (
                cx.data_schema().clone(),
                Rows::Data(DataRows::new(
                    cx.data_schema().clone(),
                    cx.plugin.schema(),
                    checkpoint as i64,
                )),
            ),
            FileKind::Dropped => {
                let id = cx.plugin.identity();
                (
                    cx.dropped_schema().clone(),
                    Rows::Dropped(Box::new(DroppedRows::new(
                        cx.dropped_schema().clone(),
                        [id.name.clone(), id.version.clone(), id.sha256.clone()],
                        checkpoint as i64,
                    ))),
                )
            }
        };
        let file = ParquetFile::new(
            kind,
            id,
            self.source.clone(),
            schema,
            (key, self.claim),
            &cx.settings,
        );
        self.open.push((slot, Box::new(OpenFile { file, rows })));
        Ok(&mut self.open.last_mut().expect("just pushed").1)
    }

    pub fn claim(&self) -> u64 {
        self.claim
    }

    /// No file open and none sealed awaiting its checkpoint.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty() && self.sealed.is_empty()
    }

    /// Memory held by this partition's files, open and sealed, as counted
    /// after the last write or seal.
    pub fn memory(&self) -> usize {
        self.open_bytes + self.sealed_bytes
    }

    /// What each open file costs: the candidates for an early seal.
    pub fn costs(&self) -> impl Iterator<Item = FileCost> + '_ {
        self.open.iter().map(|(slot, f)| FileCost {
            slot: *slot,
            memory: f.memory(),
            records: f.file.records(),
        })
    }

    /// Seals one open file early, to stay inside the budget; answers the
    /// memory that frees (none if no file is open there).
    pub fn seal_early(&mut self, cx: &SinkContext, slot: Slot) -> Result<usize, SinkError> {
        let Some(i) = self.open.iter().position(|(s, _)| *s == slot) else {
            return Ok(0);
        };
        let (_, open) = self.open.swap_remove(i);
        let freed = open.memory();
        self.open_bytes = self.open_bytes.saturating_sub(freed);
        self.keep_sealed(seal(&cx.staging, *open)?);
        Ok(freed)
    }

    /// Seals every file for the checkpoint and hands them over.
    /// On an error the files not sealed yet stay open, so that an abort
    /// still finds them and their staging entries.
    pub fn seal_all(&mut self, cx: &SinkContext) -> Result<Vec<SealedFile>, SinkError> {
        while let Some((_, open)) = self.open.pop() {
            self.keep_sealed(seal(&cx.staging, *open)?);
        }
        (self.open_bytes, self.sealed_bytes) = (0, 0);
        Ok(std::mem::take(&mut self.sealed))
    }

    /// Gives up everything not yet handed over: nothing of it becomes
    /// visible, and its staging entries go.
    pub fn abort(&mut self, cx: &SinkContext) {
        for (_, open) in self.open.drain(..) {
            let (source, id) = (open.file.source.clone(), open.file.id.clone());
            if !open.file.abort() {
                continue; // nothing of it reached the store
            }
            cx.staging.unstage(&source, &id);
        }
        (self.open_bytes, self.sealed_bytes) = (0, 0);
        for file in self.sealed.drain(..) {
            cx.staging.discard(&file);
        }
    }
}

fn seal(stager: &Stager, mut open: OpenFile) -> Result<SealedFile, SinkError> {
    open.flush_rows(stager)?;
    open.file.seal(stager)
}
