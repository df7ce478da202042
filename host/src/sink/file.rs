//! One Parquet file being written: rows buffered in Arrow builders, encoded
//! by parquet's `ArrowWriter` into row groups, and the encoded bytes
//! uploaded in parts as they pile up, so that a file never sits whole in
//! memory.
//!
//! The writer starts when the first batch of rows is encoded (8192 rows),
//! and the upload (with its staging entry, and on local disk an open
//! staging file) when the first part is put or the file is sealed: a late
//! hour's file of a few rows holds neither until it is sealed, so that
//! thousands of them open at once cost their rows, not file handles,
//! uploads and page buffers.

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::error::SinkError;
use crate::partition::TopicPartition;
use crate::staging::{DropClass, FileKind, FileSpec, SealedFile, StagedWriter, Stager};

/// Settings shared by every file.
#[derive(Debug, Clone)]
pub struct FileSettings {
    /// Rows buffered in builders before they are encoded.
    pub batch_rows: usize,
    /// Encoded bytes of a row group in progress before it is flushed.
    pub row_group_bytes: usize,
    /// Bytes uploaded per part (S3 wants at least 5 MiB).
    pub part_bytes: usize,
    /// A file this large is sealed and a new one started.
    pub max_file_bytes: u64,
    pub compression: Compression,
    /// Data files carry the host's `schema_id` column (framed input).
    pub schema_id_column: bool,
}

impl Default for FileSettings {
    fn default() -> Self {
        Self {
            batch_rows: 8192,
            row_group_bytes: 8 << 20,
            part_bytes: 5 << 20,
            max_file_bytes: 256 << 20,
            compression: Compression::ZSTD(ZstdLevel::try_new(1).expect("valid level")),
            schema_id_column: false,
        }
    }
}

/// What a writer costs before its first row group, per column: its column
/// writers (measured: 11.7 KB for six columns).
const WRITER_BYTES_PER_COLUMN: usize = 2 << 10;

pub struct ParquetFile {
    pub kind: FileKind,
    pub id: String,
    pub source: TopicPartition,
    /// Made at the first batch of rows: a file that is sealed with a few
    /// rows (a late hour) never holds a writer's page buffers for long.
    writer: Option<Box<ArrowWriter<Vec<u8>>>>,
    schema: SchemaRef,
    /// The final key inside the data or dropped location.
    key: String,
    /// The claim its records were consumed under, for its staging entry.
    claim: u64,
    staged: Option<Box<StagedWriter>>,
    settings: FileSettings,
    first_offset: i64,
    last_offset: i64,
    records: u64,
    schema_ids: std::collections::BTreeSet<u32>,
    drops: Vec<DropClass>,
}

impl ParquetFile {
    pub fn new(
        kind: FileKind,
        id: String,
        source: TopicPartition,
        schema: SchemaRef,
        (key, claim): (String, u64),
        settings: &FileSettings,
    ) -> Self {
        Self {
            kind,
            id,
            source,
            writer: None,
            schema,
            key,
            claim,
            staged: None,
            settings: settings.clone(),
            first_offset: i64::MAX,
            last_offset: i64::MIN,
            records: 0,
            schema_ids: Default::default(),
            drops: Vec::new(),
        }
    }

    fn writer(&mut self) -> Result<&mut ArrowWriter<Vec<u8>>, SinkError> {
        if self.writer.is_none() {
            let props = WriterProperties::builder()
                .set_compression(self.settings.compression)
                .set_max_row_group_row_count(Some(1 << 20))
                // Bounds the memory of a row group in progress.
                .set_max_row_group_bytes(Some(self.settings.row_group_bytes))
                .set_created_by(format!("lineage {}", env!("CARGO_PKG_VERSION")))
                .build();
            // Not preallocated: most files (dropped ones, quiet hours)
            // stay far smaller than a part.
            let writer = ArrowWriter::try_new(Vec::new(), self.schema.clone(), Some(props))
                .map_err(SinkError::Parquet)?;
            self.writer = Some(Box::new(writer));
        }
        Ok(self.writer.as_mut().expect("just made"))
    }

    /// Counts a record this file holds, and the schema it was written with.
    pub fn note(&mut self, offset: i64, schema_id: Option<u32>) {
        self.first_offset = self.first_offset.min(offset);
        self.last_offset = self.last_offset.max(offset);
        self.records += 1;
        if let Some(id) = schema_id {
            self.schema_ids.insert(id);
        }
    }

    /// Counts a dropped record under its reason's class.
    pub fn note_drop(&mut self, reason: &str, offset: i64) {
        DropClass::count(&mut self.drops, reason, offset);
    }

    /// Encodes a batch of rows; flushes the row group and uploads parts as
    /// their sizes are reached.
    pub fn write(&mut self, stager: &Stager, batch: &RecordBatch) -> Result<(), SinkError> {
        let writer = self.writer()?;
        writer.write(batch).map_err(SinkError::Parquet)?;
        if writer.inner().len() >= self.settings.part_bytes {
            // Journaled before the part leaves the writer: a failure here
            // leaves the bytes where they were.
            self.staged(stager)?;
            let writer = self.writer.as_mut().expect("made above");
            let part = std::mem::take(writer.inner_mut());
            self.staged
                .as_mut()
                .expect("started above")
                .put_part(part)?;
        }
        Ok(())
    }

    /// Journals the file and starts its upload, once.
    fn staged(&mut self, stager: &Stager) -> Result<&mut StagedWriter, SinkError> {
        if self.staged.is_none() {
            let spec = FileSpec {
                kind: self.kind,
                source: &self.source,
                key: self.key.clone(),
                id: &self.id,
                claim: self.claim,
            };
            self.staged = Some(Box::new(StagedWriter::open(stager, spec)?));
        }
        Ok(self.staged.as_mut().expect("just started"))
    }

    /// Bytes written so far, uploaded or not: what decides rolling.
    pub fn bytes(&self) -> u64 {
        self.writer.as_ref().map_or(0, |w| {
            w.bytes_written() as u64 + w.in_progress_size() as u64
        })
    }

    /// Memory this file holds: the writer with its row group in progress,
    /// and the buffer of bytes not yet uploaded (its capacity: that is what
    /// is resident).
    pub fn memory(&self) -> usize {
        let names = self.id.len() + self.key.len() + self.source.topic.len();
        let writer = self.writer.as_ref().map_or(0, |w| {
            std::mem::size_of::<ArrowWriter<Vec<u8>>>()
                + WRITER_BYTES_PER_COLUMN * self.schema.fields().len()
                + w.memory_size()
                + w.inner().capacity()
        });
        let staged = self
            .staged
            .as_ref()
            .map_or(0, |s| std::mem::size_of::<StagedWriter>() + s.in_flight());
        names + writer + staged
    }

    pub fn records(&self) -> u64 {
        self.records
    }

    pub fn full(&self) -> bool {
        self.bytes() >= self.settings.max_file_bytes
    }

    /// Writes the footer, uploads the rest, and hands the file to the
    /// checkpoint.
    pub fn seal(mut self, stager: &Stager) -> Result<SealedFile, SinkError> {
        let writer = self.writer()?;
        writer.finish().map_err(SinkError::Parquet)?;
        let rest = std::mem::take(writer.inner_mut());
        self.staged(stager)?;
        let staged = self.staged.take().expect("started above");
        let (key, url) = (staged.key().to_owned(), staged.url());
        let (publish, bytes) = staged.seal(rest)?;
        Ok(SealedFile {
            kind: self.kind,
            id: self.id,
            url,
            key,
            source: self.source,
            first_offset: self.first_offset,
            last_offset: self.last_offset,
            records: self.records,
            bytes,
            publish,
            schema_ids: self.schema_ids.into_iter().collect(),
            drops: self.drops,
        })
    }

    /// Aborts its upload; answers whether it had one (and so a staging
    /// entry to remove).
    pub fn abort(self) -> bool {
        match self.staged {
            Some(staged) => {
                staged.abort();
                true
            }
            None => false,
        }
    }
}
