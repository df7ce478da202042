//! The Arrow schemas of data and dropped files, and the column builders
//! that rows are appended to.

use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Float64Builder, Int32Builder, Int64Builder, ListBuilder,
    StringBuilder, StructBuilder, TimestampMillisecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

use crate::plugin::{ColumnType, PluginSchema, Row, ValueRef};

/// The host-owned lineage column of every data and dropped file.
pub const CHECKPOINT_ID: &str = "checkpoint_id";
/// The writer schema's registry id: in every dropped file, and in data
/// files of a framed input. Null for a bare value.
pub const SCHEMA_ID: &str = "schema_id";

/// Data files: the plugin's columns, then `checkpoint_id`, then with
/// framed input `schema_id`.
pub fn data_schema(plugin: &PluginSchema, schema_id: bool) -> SchemaRef {
    let mut fields: Vec<Field> = plugin
        .info
        .columns
        .iter()
        .map(|c| Field::new(&c.name, arrow_type(c.type_), c.nullable))
        .collect();
    fields.push(Field::new(CHECKPOINT_ID, DataType::Int64, false));
    if schema_id {
        fields.push(Field::new(SCHEMA_ID, DataType::Int32, true));
    }
    Arc::new(Schema::new(fields))
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

impl Column {
    fn new(t: ColumnType) -> Self {
        match t {
            ColumnType::String => Column::String(StringBuilder::new()),
            ColumnType::Bytes => Column::Bytes(BinaryBuilder::new()),
            ColumnType::Boolean => Column::Boolean(BooleanBuilder::new()),
            ColumnType::Int32 => Column::Int32(Int32Builder::new()),
            ColumnType::Int64 => Column::Int64(Int64Builder::new()),
            ColumnType::Float64 => Column::Float64(Float64Builder::new()),
            ColumnType::TimestampMs => {
                Column::Timestamp(TimestampMillisecondBuilder::new().with_timezone("UTC"))
            }
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
    bytes: usize,
}

impl DataRows {
    pub fn new(schema: SchemaRef, plugin: &PluginSchema, checkpoint_id: i64) -> Self {
        let schema_id = schema
            .column_with_name(SCHEMA_ID)
            .map(|_| Box::new(Int32Builder::new()));
        Self {
            schema,
            columns: plugin
                .info
                .columns
                .iter()
                .map(|c| Column::new(c.type_))
                .collect(),
            checkpoint: Int64Builder::new(),
            checkpoint_id,
            schema_id,
            rows: 0,
            bytes: 0,
        }
    }

    pub fn append(&mut self, row: &Row<'_>, schema_id: Option<u32>) {
        for (column, value) in self.columns.iter_mut().zip(row.iter()) {
            self.bytes += match value {
                ValueRef::String(s) => s.len() + 4,
                ValueRef::Bytes(b) => b.len() + 4,
                _ => 8,
            };
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

    /// Approximate bytes held, for the memory budget.
    pub fn bytes(&self) -> usize {
        self.bytes + self.rows * 8
    }

    pub fn finish(&mut self) -> RecordBatch {
        let mut arrays: Vec<ArrayRef> = self.columns.iter_mut().map(Column::finish).collect();
        arrays.push(Arc::new(self.checkpoint.finish()));
        if let Some(ids) = &mut self.schema_id {
            arrays.push(Arc::new(ids.finish()));
        }
        self.rows = 0;
        self.bytes = 0;
        RecordBatch::try_new(self.schema.clone(), arrays).expect("columns match the schema")
    }
}

/// One dropped record, as received.
pub struct DroppedRow<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Option<i64>,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: &'a [crate::plugin::Header<'a>],
    pub reason: &'a str,
    pub schema_id: Option<u32>,
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
    bytes: usize,
}

impl DroppedRows {
    pub fn new(schema: SchemaRef, plugin: [String; 3], checkpoint_id: i64) -> Self {
        let header = StructBuilder::from_fields(header_fields(), 0);
        let field = Field::new("item", DataType::Struct(header_fields()), false);
        Self {
            schema,
            topic: StringBuilder::new(),
            partition: Int32Builder::new(),
            offset: Int64Builder::new(),
            timestamp: Int64Builder::new(),
            key: BinaryBuilder::new(),
            value: BinaryBuilder::new(),
            headers: ListBuilder::new(header).with_field(Arc::new(field)),
            reason: StringBuilder::new(),
            plugin: [
                StringBuilder::new(),
                StringBuilder::new(),
                StringBuilder::new(),
            ],
            plugin_values: plugin,
            checkpoint: Int64Builder::new(),
            checkpoint_id,
            schema_id: Int32Builder::new(),
            rows: 0,
            bytes: 0,
        }
    }

    pub fn append(&mut self, row: &DroppedRow<'_>) {
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
            self.bytes += h.key.len() + h.value.map_or(0, <[u8]>::len);
        }
        self.headers.append(true);
        self.reason.append_value(row.reason);
        for (builder, value) in self.plugin.iter_mut().zip(&self.plugin_values) {
            builder.append_value(value);
        }
        self.checkpoint.append_value(self.checkpoint_id);
        self.schema_id
            .append_option(row.schema_id.map(|id| id as i32));
        self.rows += 1;
        self.bytes += row.topic.len()
            + row.key.map_or(0, <[u8]>::len)
            + row.value.map_or(0, <[u8]>::len)
            + row.reason.len()
            + 64;
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn bytes(&self) -> usize {
        self.bytes
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
        self.bytes = 0;
        RecordBatch::try_new(self.schema.clone(), arrays).expect("columns match the schema")
    }
}
