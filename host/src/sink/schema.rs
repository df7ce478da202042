//! The Arrow schemas of data and dropped files, and the column builders
//! that rows are appended to.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use arrow_array::builder::{
    ArrayBuilder, BinaryBuilder, BooleanBuilder, Float64Builder, GenericByteBuilder, Int32Builder,
    Int64Builder, ListBuilder, PrimitiveBuilder, StringBuilder, StructBuilder,
    TimestampMillisecondBuilder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::ByteArrayType;
use arrow_array::types::{Int64Type, TimestampMicrosecondType, TimestampMillisecondType};
use arrow_array::{Array, ArrayRef, ArrowPrimitiveType, RecordBatch};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

use crate::plugin::{ColumnType, PluginSchema, Row, ValueRef};

/// The host-owned lineage column of every data and dropped file.
pub const CHECKPOINT_ID: &str = "checkpoint_id";
/// The writer schema's registry id: in every dropped file, and in data
/// files of a framed input. Null for a bare value.
pub const SCHEMA_ID: &str = "schema_id";

/// Data files: the plugin's columns, then `checkpoint_id`, then with
/// framed input `schema_id`. For a table (`ids`), the event-time column
/// and every timestamp are microseconds, as Iceberg stores `timestamptz`,
/// and each field carries its id.
pub fn data_schema(plugin: &PluginSchema, schema_id: bool, ids: Option<&FieldIds>) -> SchemaRef {
    let mut fields: Vec<Field> = plugin
        .info
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let time = ids.is_some()
                && (c.type_ == ColumnType::TimestampMs || plugin.event_time == Some(i));
            let data_type = match time {
                true => table_time(),
                false => arrow_type(c.type_),
            };
            Field::new(&c.name, data_type, c.nullable)
        })
        .collect();
    fields.push(Field::new(CHECKPOINT_ID, DataType::Int64, false));
    if schema_id {
        fields.push(Field::new(SCHEMA_ID, DataType::Int32, true));
    }
    let schema = Schema::new(fields);
    Arc::new(match ids {
        Some(ids) => ids.annotate(&schema),
        None => schema,
    })
}

/// How a table stores times: microseconds since the epoch, UTC.
pub fn table_time() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The Iceberg field ids of a table's columns by path (`headers.element.key`
/// for a list's struct), as the table module last read them. A column's id
/// never changes, and ids are only added, so files opened under an older
/// map stay right.
#[derive(Debug, Default)]
pub struct FieldIds {
    by_path: RwLock<HashMap<String, i32>>,
}

impl FieldIds {
    pub fn set(&self, ids: HashMap<String, i32>) {
        *self.by_path.write().expect("field ids lock") = ids;
    }

    /// The schema with each field's id as Parquet's `PARQUET:field_id`,
    /// which readers that map columns by id look for.
    pub fn annotate(&self, schema: &Schema) -> Schema {
        let ids = self.by_path.read().expect("field ids lock");
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .map(|f| with_id(f, f.name(), &ids))
            .collect();
        Schema::new_with_metadata(fields, schema.metadata().clone())
    }
}

/// Iceberg names a list's element `element` whatever arrow calls it.
fn with_id(field: &Field, path: &str, ids: &HashMap<String, i32>) -> Field {
    let data_type = match field.data_type() {
        DataType::List(item) => {
            DataType::List(Arc::new(with_id(item, &format!("{path}.element"), ids)))
        }
        DataType::Struct(children) => DataType::Struct(
            children
                .iter()
                .map(|c| with_id(c, &format!("{path}.{}", c.name()), ids))
                .collect(),
        ),
        other => other.clone(),
    };
    let mut metadata = field.metadata().clone();
    if let Some(id) = ids.get(path) {
        metadata.insert(
            parquet::arrow::PARQUET_FIELD_ID_META_KEY.into(),
            id.to_string(),
        );
    }
    field
        .clone()
        .with_data_type(data_type)
        .with_metadata(metadata)
}

/// A column built as epoch milliseconds, as the file's schema wants it.
fn as_file_type(array: ArrayRef, wanted: &DataType) -> ArrayRef {
    if array.data_type() == wanted {
        return array;
    }
    let DataType::Timestamp(TimeUnit::Microsecond, tz) = wanted else {
        unreachable!("only times are converted, to {wanted}")
    };
    let micros = match array.data_type() {
        DataType::Int64 => array
            .as_primitive::<Int64Type>()
            .unary::<_, TimestampMicrosecondType>(|ms| ms.saturating_mul(1000)),
        _ => array
            .as_primitive::<TimestampMillisecondType>()
            .unary::<_, TimestampMicrosecondType>(|ms| ms.saturating_mul(1000)),
    };
    Arc::new(micros.with_timezone_opt(tz.clone()))
}

fn arrow_type(t: ColumnType) -> DataType {
    match t {
        ColumnType::String => DataType::Utf8,
        ColumnType::Bytes => DataType::Binary,
        ColumnType::Boolean => DataType::Boolean,
        ColumnType::Int32 => DataType::Int32,
        ColumnType::Int64 => DataType::Int64,
        ColumnType::Float64 => DataType::Float64,
        ColumnType::TimestampMs => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
    }
}

fn header_fields() -> Fields {
    Fields::from(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("value", DataType::Binary, true),
    ])
}

/// Dropped files: the record as received, why it was dropped, and by which
/// plugin build.
pub fn dropped_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("kafka_topic", DataType::Utf8, false),
        Field::new("kafka_partition", DataType::Int32, false),
        Field::new("kafka_offset", DataType::Int64, false),
        Field::new("kafka_timestamp", DataType::Int64, true),
        Field::new("key", DataType::Binary, true),
        Field::new("value", DataType::Binary, true),
        Field::new(
            "headers",
            DataType::List(Arc::new(Field::new(
                "item",
                DataType::Struct(header_fields()),
                false,
            ))),
            false,
        ),
        Field::new("reason", DataType::Utf8, false),
        Field::new("plugin_name", DataType::Utf8, false),
        Field::new("plugin_version", DataType::Utf8, false),
        Field::new("plugin_sha256", DataType::Utf8, false),
        Field::new(CHECKPOINT_ID, DataType::Int64, false),
        Field::new(SCHEMA_ID, DataType::Int32, true),
    ]))
}

enum Column {
    String(StringBuilder),
    Bytes(BinaryBuilder),
    Boolean(BooleanBuilder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float64(Float64Builder),
    Timestamp(TimestampMillisecondBuilder),
}

/// Builders start empty rather than at arrow's default of 1024 values:
/// most files of a wide spread of hours hold a few rows, and 1024 values a
/// column was most of what such a file cost.
fn strings() -> StringBuilder {
    StringBuilder::with_capacity(0, 0)
}

fn binaries() -> BinaryBuilder {
    BinaryBuilder::with_capacity(0, 0)
}

/// What arrow has allocated for a buffer holding `len` bytes: its buffers
/// (a `Vec`, or a 64-byte aligned `MutableBuffer`) grow to twice their
/// size or to what is needed, so for the small appends of rows the
/// capacity is the next power of two; a sixteenth covers the overshoot of
/// a larger append. (Measured: peak RSS is this count plus the process's
/// base within a few MiB; twice the length, a bound that always holds,
/// overstated it by a sixth and sealed a third more files.)
fn buffer(len: usize) -> usize {
    match len {
        0 => 0,
        n => n.div_ceil(64).next_power_of_two() * 64 + n / 16,
    }
}

fn bytes_held<T: ByteArrayType>(b: &GenericByteBuilder<T>) -> usize {
    buffer(b.values_slice().len()) + buffer(4 * b.offsets_slice().len()) + validity(b.len())
}

fn primitive_held<T: ArrowPrimitiveType>(b: &PrimitiveBuilder<T>) -> usize {
    buffer(b.len() * std::mem::size_of::<T::Native>()) + validity(b.len())
}

/// A validity bitmap, made once a null is appended: counted always.
fn validity(rows: usize) -> usize {
    buffer(rows.div_ceil(8))
}

impl Column {
    fn new(t: ColumnType) -> Self {
        match t {
            ColumnType::String => Column::String(strings()),
            ColumnType::Bytes => Column::Bytes(binaries()),
            ColumnType::Boolean => Column::Boolean(BooleanBuilder::with_capacity(0)),
            ColumnType::Int32 => Column::Int32(Int32Builder::with_capacity(0)),
            ColumnType::Int64 => Column::Int64(Int64Builder::with_capacity(0)),
            ColumnType::Float64 => Column::Float64(Float64Builder::with_capacity(0)),
            ColumnType::TimestampMs => Column::Timestamp(
                TimestampMillisecondBuilder::with_capacity(0).with_timezone("UTC"),
            ),
        }
    }

    /// Appends a value already checked against the column's type.
    fn append(&mut self, value: ValueRef<'_>) {
        match (self, value) {
            (Column::String(b), ValueRef::String(v)) => b.append_value(v),
            (Column::Bytes(b), ValueRef::Bytes(v)) => b.append_value(v),
            (Column::Boolean(b), ValueRef::Boolean(v)) => b.append_value(v),
            (Column::Int32(b), ValueRef::Int32(v)) => b.append_value(v),
            (Column::Int64(b), ValueRef::Int64(v)) => b.append_value(v),
            (Column::Float64(b), ValueRef::Float64(v)) => b.append_value(v),
            (Column::Timestamp(b), ValueRef::TimestampMs(v)) => b.append_value(v),
            (column, ValueRef::Null) => column.append_null(),
            _ => unreachable!("rows are checked against the declared columns"),
        }
    }

    fn append_null(&mut self) {
        match self {
            Column::String(b) => b.append_null(),
            Column::Bytes(b) => b.append_null(),
            Column::Boolean(b) => b.append_null(),
            Column::Int32(b) => b.append_null(),
            Column::Int64(b) => b.append_null(),
            Column::Float64(b) => b.append_null(),
            Column::Timestamp(b) => b.append_null(),
        }
    }

    /// Bytes its buffers have allocated.
    fn held(&self) -> usize {
        match self {
            Column::String(b) => bytes_held(b),
            Column::Bytes(b) => bytes_held(b),
            Column::Boolean(b) => 2 * validity(b.len()),
            Column::Int32(b) => primitive_held(b),
            Column::Int64(b) => primitive_held(b),
            Column::Float64(b) => primitive_held(b),
            Column::Timestamp(b) => primitive_held(b),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Column::String(b) => Arc::new(b.finish()),
            Column::Bytes(b) => Arc::new(b.finish()),
            Column::Boolean(b) => Arc::new(b.finish()),
            Column::Int32(b) => Arc::new(b.finish()),
            Column::Int64(b) => Arc::new(b.finish()),
            Column::Float64(b) => Arc::new(b.finish()),
            Column::Timestamp(b) => Arc::new(b.finish()),
        }
    }
}

/// Rows of a data file being built, until they are handed to the Parquet
/// writer as a batch.
pub struct DataRows {
    schema: SchemaRef,
    columns: Vec<Column>,
    checkpoint: Int64Builder,
    checkpoint_id: i64,
    /// With framed input (boxed: most runs have none).
    schema_id: Option<Box<Int32Builder>>,
    rows: usize,
}

impl DataRows {
    pub fn new(schema: SchemaRef, plugin: &PluginSchema, checkpoint_id: i64) -> Self {
        let schema_id = schema
            .column_with_name(SCHEMA_ID)
            .map(|_| Box::new(Int32Builder::with_capacity(0)));
        Self {
            schema,
            columns: plugin
                .info
                .columns
                .iter()
                .map(|c| Column::new(c.type_))
                .collect(),
            checkpoint: Int64Builder::with_capacity(0),
            checkpoint_id,
            schema_id,
            rows: 0,
        }
    }

    pub fn append(&mut self, row: &Row<'_>, schema_id: Option<u32>) {
        for (column, value) in self.columns.iter_mut().zip(row.iter()) {
            column.append(value);
        }
        self.checkpoint.append_value(self.checkpoint_id);
        if let Some(ids) = &mut self.schema_id {
            ids.append_option(schema_id.map(|id| id as i32));
        }
        self.rows += 1;
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Bytes the builders have allocated, for the memory budget.
    pub fn bytes(&self) -> usize {
        std::mem::size_of_val(self.columns.as_slice())
            + self.columns.iter().map(Column::held).sum::<usize>()
            + primitive_held(&self.checkpoint)
            + self.schema_id.as_deref().map_or(0, |b| {
                std::mem::size_of::<Int32Builder>() + primitive_held(b)
            })
    }

    pub fn finish(&mut self) -> RecordBatch {
        let mut arrays: Vec<ArrayRef> = self.columns.iter_mut().map(Column::finish).collect();
        arrays.push(Arc::new(self.checkpoint.finish()));
        if let Some(ids) = &mut self.schema_id {
            arrays.push(Arc::new(ids.finish()));
        }
        self.rows = 0;
        let arrays = arrays
            .into_iter()
            .zip(self.schema.fields().iter())
            .map(|(a, f)| as_file_type(a, f.data_type()))
            .collect();
        RecordBatch::try_new(self.schema.clone(), arrays).expect("columns match the schema")
    }
}

pub struct DroppedRows {
    schema: SchemaRef,
    topic: StringBuilder,
    partition: Int32Builder,
    offset: Int64Builder,
    timestamp: Int64Builder,
    key: BinaryBuilder,
    value: BinaryBuilder,
    headers: ListBuilder<StructBuilder>,
    reason: StringBuilder,
    plugin: [StringBuilder; 3],
    plugin_values: [String; 3],
    checkpoint: Int64Builder,
    checkpoint_id: i64,
    schema_id: Int32Builder,
    rows: usize,
    /// Header keys and values (their builders sit inside the list's).
    header_bytes: usize,
    header_count: usize,
}

impl DroppedRows {
    pub fn new(schema: SchemaRef, plugin: [String; 3], checkpoint_id: i64) -> Self {
        // The list's item as the schema has it: for a table, its fields
        // carry ids, which arrow counts as part of the type.
        let field = match schema.field_with_name("headers").map(|f| f.data_type()) {
            Ok(DataType::List(item)) => item.as_ref().clone(),
            _ => Field::new("item", DataType::Struct(header_fields()), false),
        };
        let DataType::Struct(children) = field.data_type() else {
            unreachable!("headers are a list of structs")
        };
        // Its children built empty too (`from_fields` gives each 1024).
        let header = StructBuilder::new(
            children.clone(),
            vec![Box::new(strings()), Box::new(binaries())],
        );
        Self {
            schema,
            topic: strings(),
            partition: Int32Builder::with_capacity(0),
            offset: Int64Builder::with_capacity(0),
            timestamp: Int64Builder::with_capacity(0),
            key: binaries(),
            value: binaries(),
            headers: ListBuilder::with_capacity(header, 0).with_field(Arc::new(field)),
            reason: strings(),
            plugin: [strings(), strings(), strings()],
            plugin_values: plugin,
            checkpoint: Int64Builder::with_capacity(0),
            checkpoint_id,
            schema_id: Int32Builder::with_capacity(0),
            rows: 0,
            header_bytes: 0,
            header_count: 0,
        }
    }

    /// Appends a dropped record, as received, with its reason.
    pub fn append(&mut self, row: &crate::plugin::KafkaRecord<'_>, reason: &str) {
        self.topic.append_value(row.topic);
        self.partition.append_value(row.partition);
        self.offset.append_value(row.offset);
        self.timestamp.append_option(row.timestamp);
        self.key.append_option(row.key);
        self.value.append_option(row.value);
        let headers = self.headers.values();
        for h in row.headers {
            headers
                .field_builder::<StringBuilder>(0)
                .expect("header key builder")
                .append_value(h.key);
            headers
                .field_builder::<BinaryBuilder>(1)
                .expect("header value builder")
                .append_option(h.value);
            headers.append(true);
            self.header_bytes += h.key.len() + h.value.map_or(0, <[u8]>::len);
            self.header_count += 1;
        }
        self.headers.append(true);
        self.reason.append_value(reason);
        for (builder, value) in self.plugin.iter_mut().zip(&self.plugin_values) {
            builder.append_value(value);
        }
        self.checkpoint.append_value(self.checkpoint_id);
        self.schema_id
            .append_option(row.schema_id.map(|id| id as i32));
        self.rows += 1;
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Bytes the builders have allocated, for the memory budget.
    pub fn bytes(&self) -> usize {
        let headers = 2 * buffer(self.header_bytes)
            + 2 * buffer(4 * (self.header_count + 1))
            + 3 * validity(self.header_count)
            + buffer(4 * (self.rows + 1))
            + validity(self.rows);
        [&self.topic, &self.reason]
            .into_iter()
            .chain(&self.plugin)
            .map(bytes_held)
            .sum::<usize>()
            + bytes_held(&self.key)
            + bytes_held(&self.value)
            + primitive_held(&self.partition)
            + primitive_held(&self.offset)
            + primitive_held(&self.timestamp)
            + primitive_held(&self.checkpoint)
            + primitive_held(&self.schema_id)
            + headers
    }

    pub fn finish(&mut self) -> RecordBatch {
        let [name, version, sha] = &mut self.plugin;
        let arrays: Vec<ArrayRef> = vec![
            Arc::new(self.topic.finish()),
            Arc::new(self.partition.finish()),
            Arc::new(self.offset.finish()),
            Arc::new(self.timestamp.finish()),
            Arc::new(self.key.finish()),
            Arc::new(self.value.finish()),
            Arc::new(self.headers.finish()),
            Arc::new(self.reason.finish()),
            Arc::new(name.finish()),
            Arc::new(version.finish()),
            Arc::new(sha.finish()),
            Arc::new(self.checkpoint.finish()),
            Arc::new(self.schema_id.finish()),
        ];
        self.rows = 0;
        self.header_bytes = 0;
        self.header_count = 0;
        RecordBatch::try_new(self.schema.clone(), arrays).expect("columns match the schema")
    }
}
