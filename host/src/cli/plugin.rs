//! `lineage plugin inspect` and `lineage plugin test`: the plugin author's
//! inner loop, through the same runtime the pipeline uses.

use std::io::{BufRead, Write};
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};

use super::error::CommandError;
use crate::plugin::{
    Header, KafkaRecord, OutcomeRef, Plugin, PluginConfig, PluginRuntime, PluginWorker, ValueRef,
    type_name,
};

pub fn inspect(
    component: &Path,
    json: bool,
    config: PluginConfig,
    out: &mut impl Write,
) -> Result<(), CommandError> {
    let runtime = PluginRuntime::new(config)?;
    let plugin = runtime.load(component)?;
    let schema = plugin.schema();
    let info = &schema.info;
    let identity = plugin.identity();
    let event_time = info.event_time.as_deref();
    if json {
        let columns: Vec<Json> = info
            .columns
            .iter()
            .map(|c| json!({"name": c.name, "type": type_name(c.type_), "nullable": c.nullable}))
            .collect();
        let doc = json!({
            "name": identity.name,
            "version": identity.version,
            "sha256": identity.sha256,
            "path": component,
            "columns": columns,
            "event_time": event_time,
            "input_schema": info.input_schema.as_deref().map(serde_json::from_str::<Json>).transpose().ok().flatten(),
        });
        writeln!(out, "{doc}").map_err(CommandError::Output)?;
        return Ok(());
    }
    let width = info
        .columns
        .iter()
        .map(|c| c.name.len())
        .chain(["checkpoint_id".len()])
        .max()
        .unwrap_or(0);
    let mut text = format!(
        "plugin   {} {}\nfile     {}\nsha256   {}\ncolumns\n",
        identity.name,
        identity.version,
        component.display(),
        identity.sha256
    );
    for column in &info.columns {
        let mut notes = Vec::new();
        if !column.nullable {
            notes.push("not null");
        }
        if Some(column.name.as_str()) == event_time {
            notes.push("event time: decides the output hour");
        }
        text += &format!(
            "  {:width$}  {:12}  {}\n",
            column.name,
            type_name(column.type_),
            notes.join(", ")
        );
    }
    text += &format!(
        "  {:width$}  {:12}  not null, added by the host\n",
        "checkpoint_id", "int64"
    );
    if event_time.is_none() {
        text += "event time: the Kafka timestamp decides the output hour\n";
    }
    match &schema.input_schema {
        Some(apache_avro::Schema::Record(record)) => {
            text += &format!("input    Avro record {}\n", record.name.fullname(None))
        }
        Some(other) => {
            text += &format!(
                "input    Avro {:?}\n",
                apache_avro::schema::SchemaKind::from(other)
            )
        }
        None => text += "input    undeclared (give `plugin test` values as base64)\n",
    }
    out.write_all(text.as_bytes()).map_err(CommandError::Output)
}

/// How a `plugin test` run went, for the summary line.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TestSummary {
    pub records: usize,
    pub kept: usize,
    pub dropped: usize,
}

pub fn test(
    component: &Path,
    input: &Path,
    config: PluginConfig,
    out: &mut impl Write,
) -> Result<TestSummary, CommandError> {
    let runtime = PluginRuntime::new(config)?;
    let plugin = runtime.load(component)?;
    let records = read_input(input, &plugin)?;
    let headers: Vec<Vec<Header<'_>>> = records
        .iter()
        .map(|r| {
            r.headers
                .iter()
                .map(|(key, value)| Header {
                    key,
                    value: value.as_deref(),
                })
                .collect()
        })
        .collect();
    let batch: Vec<KafkaRecord<'_>> = records
        .iter()
        .zip(&headers)
        .map(|(r, headers)| KafkaRecord {
            topic: &r.topic,
            partition: r.partition,
            offset: r.offset,
            timestamp: r.timestamp,
            key: r.key.as_deref(),
            value: r.value.as_deref(),
            headers,
            schema_id: None,
        })
        .collect();

    let mut worker = PluginWorker::new(plugin.clone());
    let outcomes = worker.process(&batch)?;

    let columns = &plugin.schema().info.columns;
    let mut summary = TestSummary {
        records: batch.len(),
        ..TestSummary::default()
    };
    for (record, outcome) in batch.iter().zip(outcomes.iter()) {
        let mut line = Map::new();
        line.insert("topic".into(), record.topic.into());
        line.insert("partition".into(), record.partition.into());
        line.insert("offset".into(), record.offset.into());
        match outcome {
            OutcomeRef::Keep(values) => {
                summary.kept += 1;
                let row: Map<String, Json> = columns
                    .iter()
                    .zip(values.iter())
                    .map(|(c, v)| (c.name.clone(), to_json(v)))
                    .collect();
                line.insert("outcome".into(), "keep".into());
                line.insert("row".into(), row.into());
            }
            OutcomeRef::Drop(reason) => {
                summary.dropped += 1;
                line.insert("outcome".into(), "drop".into());
                line.insert("reason".into(), reason.into());
            }
        }
        writeln!(out, "{}", Json::Object(line)).map_err(CommandError::Output)?;
    }
    Ok(summary)
}

fn to_json(value: ValueRef<'_>) -> Json {
    match value {
        ValueRef::Null => Json::Null,
        ValueRef::String(s) => s.into(),
        ValueRef::Bytes(b) => BASE64.encode(b).into(),
        ValueRef::Boolean(b) => b.into(),
        ValueRef::Int32(i) => i.into(),
        ValueRef::Int64(i) | ValueRef::TimestampMs(i) => i.into(),
        ValueRef::Float64(f) => serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number),
    }
}

/// One input line as written by the user.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputLine {
    topic: Option<String>,
    partition: Option<i32>,
    offset: Option<i64>,
    timestamp: Option<i64>,
    key: Option<String>,
    #[serde(default)]
    headers: Map<String, Json>,
    #[serde(default)]
    value: Json,
}

struct OwnedRecord {
    topic: String,
    partition: i32,
    offset: i64,
    timestamp: Option<i64>,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

fn read_input(path: &Path, plugin: &Plugin) -> Result<Vec<OwnedRecord>, CommandError> {
    let reader: Box<dyn BufRead> = if path == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        let file = std::fs::File::open(path).map_err(|source| CommandError::ReadInput {
            path: path.to_owned(),
            source,
        })?;
        Box::new(std::io::BufReader::new(file))
    };
    let mut records = Vec::new();
    for (index, line) in reader.lines().enumerate() {
        let line = line.map_err(|source| CommandError::ReadInput {
            path: path.to_owned(),
            source,
        })?;
        if line.trim().is_empty() || line.trim_start().starts_with("//") {
            continue;
        }
        let bad = |detail: String| CommandError::Input {
            path: path.to_owned(),
            line: index + 1,
            detail,
        };
        let parsed: InputLine = serde_json::from_str(&line).map_err(|e| bad(e.to_string()))?;
        let value = match parsed.value {
            Json::Null => None,
            Json::String(b64) => Some(
                BASE64
                    .decode(b64.trim())
                    .map_err(|e| bad(format!("value is a string but not base64: {e}")))?,
            ),
            Json::Object(object) => Some(encode_avro(plugin, Json::Object(object)).map_err(bad)?),
            other => {
                return Err(bad(format!(
                    "value must be an object (Avro-encoded with the plugin's input schema), a base64 string or null, not {other}"
                )));
            }
        };
        let headers = parsed
            .headers
            .into_iter()
            .map(|(k, v)| match v {
                Json::Null => Ok((k, None)),
                Json::String(s) => Ok((k, Some(s.into_bytes()))),
                other => Err(bad(format!(
                    "header {k:?} must be a string or null, not {other}"
                ))),
            })
            .collect::<Result<_, _>>()?;
        records.push(OwnedRecord {
            topic: parsed.topic.unwrap_or_else(|| "test".into()),
            partition: parsed.partition.unwrap_or(0),
            offset: parsed.offset.unwrap_or(records.len() as i64),
            timestamp: parsed.timestamp,
            key: parsed.key.map(String::into_bytes),
            value,
            headers,
        });
    }
    if records.is_empty() {
        return Err(CommandError::EmptyInput {
            path: path.to_owned(),
        });
    }
    Ok(records)
}

fn encode_avro(plugin: &Plugin, value: Json) -> Result<Vec<u8>, String> {
    let schema = plugin.schema().input_schema.as_ref().ok_or_else(|| {
        format!(
            "value is an object, but plugin {} declares no input schema to encode it with; give the value as base64",
            plugin.identity()
        )
    })?;
    let avro = apache_avro::types::Value::try_from(value)
        .and_then(|v| v.resolve(schema))
        .map_err(|e| format!("value does not fit the plugin's input schema: {e}"))?;
    apache_avro::writer::datum::GenericDatumWriter::builder(schema)
        .build()
        .and_then(|w| w.write_value_to_vec(avro))
        .map_err(|e| format!("value does not fit the plugin's input schema: {e}"))
}
