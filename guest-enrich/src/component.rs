//! Adapts the enrichment to the `lineage:plugin` WIT world.

// The generated export takes the batch flat: nine core arguments.
#![allow(clippy::too_many_arguments)]

wit_bindgen::generate!({
    path: "../wit",
    world: "plugin",
});

use std::cell::RefCell;

use lineage::plugin::schemas::writer_schema;
use lineage::plugin::types::{Column, ColumnType, KafkaRecord, Outcome, Value};

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

    fn process(batch: Batch) -> Answer {
        let data = &batch.data;
        let mut answer = Answer {
            outcomes: Vec::with_capacity(batch.records.len()),
            values: Vec::with_capacity(batch.records.len() * crate::COLUMNS.len()),
        };
        for record in &batch.records {
            let value = record.value.map(|v| crate::span(data, v.start, v.len));
            match writer(record).and_then(|w| crate::enrich_with(value, w)) {
                Ok(event) => {
                    answer.values.extend([
                        Value::String(event.uuid),
                        Value::Int64(event.timestamp),
                        Value::String(batch.topic.clone()),
                        Value::Int32(batch.partition),
                        Value::Int64(record.offset),
                    ]);
                    answer
                        .outcomes
                        .push(Outcome::Keep(crate::COLUMNS.len() as u32));
                }
                Err(reason) => answer.outcomes.push(Outcome::Drop(reason)),
            }
        }
        answer
    }
}

export!(Enrich);

#[global_allocator]
static ALLOC: crate::slab::Slab = crate::slab::Slab;
