//! The shipped plugins besides enrich: `pseudonymize` (Rust) and
//! `enrich-py` (Python, componentize-py), in the real runtime and through
//! `lineage plugin test`, against the Rust enrich as the reference.

use lineage::events::{self, EventKind};
use lineage::plugin::{ColumnType, KafkaRecord, OutcomeRef, PluginWorker, ValueRef};

use crate::support::{components, config, load};

const TS: i64 = 1_732_550_400_000;

/// Every kind of record the generator makes, and a few more.
fn values() -> Vec<Option<Vec<u8>>> {
    let mut values: Vec<Option<Vec<u8>>> = (0..400u64)
        .map(|n| {
            let kind = match n % 10 {
                3 => EventKind::Garbage,
                5 => EventKind::Empty,
                7 => EventKind::BadUuid,
                _ => EventKind::Valid,
            };
            Some(events::value(kind, n, TS + n as i64))
        })
        .collect();
    let uuid = events::uuid_for(1).to_string();
    values.push(None);
    values.push(Some(events::encode(&uuid, 1_732_550_400))); // seconds
    values.push(Some(events::encode(&uuid, TS)[..5].to_vec())); // cut short
    values.push(Some(events::encode(&uuid.to_uppercase(), TS))); // other forms uuid accepts
    values.push(Some(events::encode(&uuid.replace('-', ""), TS)));
    let mut trailing = events::encode(&uuid, TS);
    trailing.push(0);
    values.push(Some(trailing));
    values
}

fn records(values: &[Option<Vec<u8>>]) -> Vec<KafkaRecord<'_>> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| KafkaRecord {
            topic: "events",
            partition: 2,
            offset: i as i64,
            timestamp: Some(TS),
            key: None,
            value: v.as_deref(),
            headers: &[],
        })
        .collect()
}

fn class(reason: &str) -> &str {
    reason.split(':').next().unwrap_or_default()
}

#[test]
fn the_python_plugin_keeps_and_drops_exactly_what_the_rust_one_does() {
    let python = load(&components().enrich_py, config());
    let identity = python.identity();
    assert_eq!(
        (identity.name.as_str(), identity.version.as_str()),
        ("enrich-py", "0.1.0")
    );
    let rust = load(&components().enrich, config());
    assert_eq!(
        format!("{:?}", python.schema().info.columns),
        format!("{:?}", rust.schema().info.columns)
    );
    assert_eq!(
        python.schema().info.event_time.as_deref(),
        Some("timestamp")
    );
    assert!(python.schema().input_schema.is_some());

    let values = values();
    let records = records(&values);
    let from_python = PluginWorker::new(python).process(&records).unwrap();
    let from_rust = PluginWorker::new(rust).process(&records).unwrap();
    assert_eq!(from_python.len(), records.len());
    let mut kept = 0;
    for (i, (p, r)) in from_python.iter().zip(from_rust.iter()).enumerate() {
        match (p, r) {
            (OutcomeRef::Keep(p), OutcomeRef::Keep(r)) => {
                assert_eq!(format!("{p:?}"), format!("{r:?}"), "record {i}");
                kept += 1;
            }
            (OutcomeRef::Drop(p), OutcomeRef::Drop(r)) => {
                assert_eq!(class(p), class(r), "record {i}: {p} / {r}");
            }
            (p, r) => panic!("record {i}: python {p:?}, rust {r:?}"),
        }
    }
    assert!(kept > 250, "{kept}");
}

#[test]
fn pseudonymize_replaces_the_id_with_its_keyed_hash_and_applies_the_rule() {
    let plugin = load(&components().pseudonymize, config());
    assert_eq!(plugin.identity().name, "pseudonymize");
    let columns: Vec<(&str, ColumnType)> = plugin
        .schema()
        .info
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.type_))
        .collect();
    assert_eq!(
        columns,
        [
            ("user_key", ColumnType::String),
            ("timestamp", ColumnType::Int64),
            ("kafka_topic", ColumnType::String),
            ("kafka_partition", ColumnType::Int32),
            ("kafka_offset", ColumnType::Int64),
        ]
    );
    let uuid = events::uuid_for(9).to_string();
    let week = 7 * 24 * 3_600_000;
    let values = [
        Some(events::encode(&uuid, TS)),
        Some(events::encode(&uuid, TS - week - 3_600_000)),
        Some(events::encode(&uuid, TS + 2 * 3_600_000)),
        Some(events::value(EventKind::BadUuid, 3, TS)),
    ];
    let records = records(&values);
    let outcomes = PluginWorker::new(plugin).process(&records).unwrap();
    let got: Vec<_> = outcomes.iter().collect();
    let OutcomeRef::Keep(row) = &got[0] else {
        panic!("{:?}", got[0]);
    };
    let key = pseudonymize::user_key(&uuid);
    assert_eq!(row.get(0), Some(ValueRef::String(&key)));
    assert!(!key.contains(&uuid[..8]));
    assert_eq!(row.get(1), Some(ValueRef::Int64(TS)));
    let reasons: Vec<&str> = got[1..]
        .iter()
        .map(|o| match o {
            OutcomeRef::Drop(r) => *r,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        reasons[..2],
        [
            "rule late-event: event time is 7d 1h before the Kafka timestamp (limit 7d 0h)",
            "rule future-event: event time is 2h 0m after the Kafka timestamp (limit 1h 0m)",
        ]
    );
    assert!(reasons[2].starts_with("uuid: "), "{}", reasons[2]);
}
