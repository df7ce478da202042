//! A committed Parquet file as an Iceberg data file: its record count,
//! size and per-column value counts, null counts and bounds, read back
//! from the footer Lineage wrote, so that engines can prune by them.

use std::collections::HashMap;

use iceberg::spec::{
    DataContentType, DataFile, DataFileBuilder, DataFileFormat, Datum, Literal, PartitionSpec,
    PrimitiveType, Schema, Struct, Transform, Type,
};
use object_store::ObjectStoreExt;
use parquet::file::metadata::{FooterTail, ParquetMetaData, ParquetMetaDataReader};
use parquet::file::statistics::Statistics;

use super::error::{FooterError, TableError};
use crate::staging::SealedFile;
use crate::store::Location;

const MICROS_PER_HOUR: i64 = 3_600_000_000;

/// Reads `file`'s footer (two ranged reads: its length, then itself).
pub async fn footer(location: &Location, file: &SealedFile) -> Result<ParquetMetaData, TableError> {
    let failed = |source: FooterError| TableError::Footer {
        url: file.url.clone(),
        source,
    };
    let path = location.path(&file.key);
    let size = file.bytes;
    if size < 12 {
        return Err(TableError::File {
            url: file.url.clone(),
            problem: format!("{size} bytes is too short for a Parquet file"),
        });
    }
    let tail = location
        .store
        .get_range(&path, size - 8..size)
        .await
        .map_err(|e| failed(e.into()))?;
    let length = FooterTail::try_from(&tail[..])
        .map_err(|e| failed(e.into()))?
        .metadata_length() as u64;
    let start = size
        .checked_sub(8 + length)
        .ok_or_else(|| TableError::File {
            url: file.url.clone(),
            problem: format!("its footer says {length} bytes of metadata in a {size}-byte file"),
        })?;
    let bytes = location
        .store
        .get_range(&path, start..size - 8)
        .await
        .map_err(|e| failed(e.into()))?;
    ParquetMetaDataReader::decode_metadata(&bytes).map_err(|e| failed(e.into()))
}

/// Whether the file was written for a table: every column carries its
/// field id. Files of a writer without TABLE_FORMAT=iceberg carry none,
/// and store times in milliseconds; registered, they would read wrong.
pub fn written_for_a_table(footer: &ParquetMetaData) -> bool {
    let root = footer.file_metadata().schema_descr().root_schema();
    root.get_fields()
        .iter()
        .all(|f| f.get_basic_info().has_id())
}

/// The data file `file` is in a table of `schema` partitioned by `spec`.
pub fn data_file(
    file: &SealedFile,
    footer: &ParquetMetaData,
    schema: &Schema,
    spec: &PartitionSpec,
) -> Result<DataFile, TableError> {
    let mut metrics = Metrics::default();
    for group in footer.row_groups() {
        for column in group.columns() {
            let path = column.column_descr().path().string();
            // Nested columns (the dropped records' headers) get no metrics:
            // Iceberg counts a list's elements, Parquet its levels.
            let Some(field) = schema.field_by_name(&path).filter(|_| !path.contains('.')) else {
                continue;
            };
            *metrics.sizes.entry(field.id).or_default() += column.compressed_size() as u64;
            *metrics.values.entry(field.id).or_default() += column.num_values() as u64;
            if let Some(stats) = column.statistics() {
                metrics.add(field.id, &field.field_type, stats);
            }
        }
    }
    let partition = partition(file, spec, &metrics)?;
    let built = DataFileBuilder::default()
        .content(DataContentType::Data)
        .file_path(file.url.clone())
        .file_format(DataFileFormat::Parquet)
        .partition(partition)
        .partition_spec_id(spec.spec_id())
        .record_count(footer.file_metadata().num_rows() as u64)
        .file_size_in_bytes(file.bytes)
        .column_sizes(metrics.sizes)
        .value_counts(metrics.values)
        .null_value_counts(metrics.nulls)
        .lower_bounds(metrics.lower)
        .upper_bounds(
            metrics
                .upper
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k, v)))
                .collect(),
        )
        .split_offsets(Some(
            footer
                .row_groups()
                .iter()
                .filter_map(|g| g.file_offset())
                .collect(),
        ))
        .build();
    built.map_err(|e| TableError::File {
        url: file.url.clone(),
        problem: format!("not a valid Iceberg data file: {e}"),
    })
}

#[derive(Default)]
struct Metrics {
    sizes: HashMap<i32, u64>,
    values: HashMap<i32, u64>,
    nulls: HashMap<i32, u64>,
    lower: HashMap<i32, Datum>,
    /// `None` once a row group's maximum was truncated: no bound is known.
    upper: HashMap<i32, Option<Datum>>,
}

impl Metrics {
    fn add(&mut self, id: i32, t: &Type, stats: &Statistics) {
        if let Some(nulls) = stats.null_count_opt() {
            *self.nulls.entry(id).or_default() += nulls;
        }
        let Type::Primitive(t) = t else { return };
        if let Some(min) = datum(t, stats, true) {
            // A truncated minimum is still below every value.
            match self.lower.get(&id) {
                Some(have) if have <= &min => {}
                _ => {
                    self.lower.insert(id, min);
                }
            }
        }
        let max = datum(t, stats, false).filter(|_| stats.max_is_exact());
        match (self.upper.get(&id), max) {
            (Some(None), _) => {}
            (_, None) => {
                self.upper.insert(id, None);
            }
            (Some(Some(have)), Some(max)) if have >= &max => {}
            (_, Some(max)) => {
                self.upper.insert(id, Some(max));
            }
        }
    }
}

/// A Parquet minimum or maximum as a value of the column's Iceberg type.
fn datum(t: &PrimitiveType, stats: &Statistics, min: bool) -> Option<Datum> {
    macro_rules! pick {
        ($s:expr) => {
            if min { $s.min_opt() } else { $s.max_opt() }
        };
    }
    Some(match (t, stats) {
        (PrimitiveType::Boolean, Statistics::Boolean(s)) => Datum::bool(*pick!(s)?),
        (PrimitiveType::Int, Statistics::Int32(s)) => Datum::int(*pick!(s)?),
        (PrimitiveType::Long, Statistics::Int64(s)) => Datum::long(*pick!(s)?),
        (PrimitiveType::Double, Statistics::Double(s)) => Datum::double(*pick!(s)?),
        (PrimitiveType::Timestamptz, Statistics::Int64(s)) => Datum::timestamptz_micros(*pick!(s)?),
        (PrimitiveType::Timestamp, Statistics::Int64(s)) => Datum::timestamp_micros(*pick!(s)?),
        (PrimitiveType::String, Statistics::ByteArray(s)) => {
            Datum::string(std::str::from_utf8(pick!(s)?.data()).ok()?)
        }
        (PrimitiveType::Binary, Statistics::ByteArray(s)) => {
            Datum::binary(pick!(s)?.data().iter().copied())
        }
        _ => return None,
    })
}

/// The file's partition: the hour of its event times, which the sink
/// made one hour per file.
fn partition(file: &SealedFile, spec: &PartitionSpec, m: &Metrics) -> Result<Struct, TableError> {
    let mut values = Vec::new();
    for field in spec.fields() {
        if field.transform != Transform::Hour {
            return Err(TableError::File {
                url: file.url.clone(),
                problem: format!(
                    "the table is partitioned by {} of field {}; Lineage writes tables partitioned by hour(event time) only",
                    field.transform, field.source_id
                ),
            });
        }
        let hour = |d: Option<&Datum>| match d.map(|d| d.literal()) {
            Some(iceberg::spec::PrimitiveLiteral::Long(us)) => Some(us.div_euclid(MICROS_PER_HOUR)),
            _ => None,
        };
        let low = hour(m.lower.get(&field.source_id));
        let high = hour(m.upper.get(&field.source_id).and_then(Option::as_ref));
        match (low, high) {
            (Some(low), Some(high)) if low == high => {
                values.push(Some(Literal::int(low as i32)));
            }
            _ => {
                return Err(TableError::File {
                    url: file.url.clone(),
                    problem: format!(
                        "its event times do not lie in one hour (hours {low:?} to {high:?}), so it has no partition"
                    ),
                });
            }
        }
    }
    Ok(Struct::from_iter(values))
}
