//! Adapts the enrichment to the `lineage:plugin` WIT world.

wit_bindgen::generate!({
    path: "../wit",
    world: "plugin",
});

use std::cell::RefCell;

use lineage::plugin::schemas::writer_schema;
use lineage::plugin::types::{Column, ColumnType, Value};

use crate::{ColumnKind, Writer, Writers};

thread_local! {
    static WRITERS: RefCell<Writers> = RefCell::default();
}

fn writer(record: &KafkaRecord) -> Result<Writer, String> {
    WRITERS.with_borrow_mut(|w| w.of(record.schema_id, writer_schema))
}

struct Enrich;

impl Guest for Enrich {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: crate::NAME.to_owned(),
            version: crate::VERSION.to_owned(),
            columns: crate::COLUMNS
                .iter()
                .map(|&(name, kind, nullable)| Column {
                    name: name.to_owned(),
                    type_: match kind {
                        ColumnKind::String => ColumnType::String,
                        ColumnKind::Int32 => ColumnType::Int32,
                        ColumnKind::Int64 => ColumnType::Int64,
                    },
                    nullable,
                })
                .collect(),
            event_time: Some(crate::EVENT_TIME_COLUMN.to_owned()),
            input_schema: Some(crate::INPUT_SCHEMA.to_owned()),
        }
    }

    fn process(records: Vec<KafkaRecord>) -> Vec<Outcome> {
        records
            .into_iter()
            .map(|record| {
                match writer(&record).and_then(|w| crate::enrich_with(record.value.as_deref(), w)) {
                    Ok(event) => Outcome::Keep(vec![
                        Value::String(event.uuid),
                        Value::Int64(event.timestamp),
                        Value::String(record.topic),
                        Value::Int32(record.partition),
                        Value::Int64(record.offset),
                    ]),
                    Err(reason) => Outcome::Drop(reason),
                }
            })
            .collect()
    }
}

export!(Enrich);

#[global_allocator]
static ALLOC: crate::slab::Slab = crate::slab::Slab;
