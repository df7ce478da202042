//! One Parquet file being written: rows buffered in Arrow builders, encoded
//! by parquet's `ArrowWriter` into row groups, and the encoded bytes
//! uploaded in parts as they pile up, so that a file never sits whole in
//! memory.

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::error::SinkError;
use crate::partition::TopicPartition;
use crate::staging::{FileKind, SealedFile, StagedWriter};

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

pub struct ParquetFile {
    pub kind: FileKind,
    pub id: String,
    pub source: TopicPartition,
    writer: ArrowWriter<Vec<u8>>,
    staged: StagedWriter,
    settings: FileSettings,
    first_offset: i64,
    last_offset: i64,
    records: u64,
    schema_ids: std::collections::BTreeSet<u32>,
}

impl ParquetFile {
    pub fn new(
        kind: FileKind,
        id: String,
        source: TopicPartition,
        schema: SchemaRef,
        staged: StagedWriter,
        settings: &FileSettings,
    ) -> Result<Self, SinkError> {
        let props = WriterProperties::builder()
            .set_compression(settings.compression)
            .set_max_row_group_row_count(Some(1 << 20))
            // Bounds the memory of a row group in progress.
            .set_max_row_group_bytes(Some(settings.row_group_bytes))
            .set_created_by(format!("lineage {}", env!("CARGO_PKG_VERSION")))
            .build();
        // Not preallocated: most files (dropped ones, quiet hours) stay
        // far smaller than a part.
        let writer =
            ArrowWriter::try_new(Vec::new(), schema, Some(props)).map_err(SinkError::Parquet)?;
        Ok(Self {
            kind,
            id,
            source,
            writer,
            staged,
            settings: settings.clone(),
            first_offset: i64::MAX,
            last_offset: i64::MIN,
            records: 0,
            schema_ids: Default::default(),
        })
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

    /// Encodes a batch of rows; flushes the row group and uploads parts as
    /// their sizes are reached.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        self.writer.write(batch).map_err(SinkError::Parquet)?;
        if self.writer.inner().len() >= self.settings.part_bytes {
            let part = std::mem::take(self.writer.inner_mut());
            self.staged.put_part(part)?;
        }
        Ok(())
    }

    /// Bytes written so far, uploaded or not: what decides rolling.
    pub fn bytes(&self) -> u64 {
        self.writer.bytes_written() as u64 + self.writer.in_progress_size() as u64
    }

    /// Memory this file holds: the row group in progress and the buffer of
    /// bytes not yet uploaded (its capacity: that is what is resident).
    pub fn memory(&self) -> usize {
        self.writer.memory_size() + self.writer.inner().capacity()
    }

    pub fn full(&self) -> bool {
        self.bytes() >= self.settings.max_file_bytes
    }

    /// Writes the footer, uploads the rest, and hands the file to the
    /// checkpoint.
    pub fn seal(mut self) -> Result<SealedFile, SinkError> {
        self.writer.finish().map_err(SinkError::Parquet)?;
        let rest = std::mem::take(self.writer.inner_mut());
        let (key, url) = (self.staged.key().to_owned(), self.staged.url());
        let (publish, bytes) = self.staged.seal(rest)?;
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
        })
    }

    pub fn abort(self) {
        self.staged.abort();
    }
}
