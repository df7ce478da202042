//! The built default plugin, `plugins/enrich.wasm`, in the real runtime.

use lineage::fixtures::{self, EventKind};
use lineage::plugin::{ColumnType, KafkaRecord, OutcomeRef, PluginWorker, ValueRef};

use crate::support::{components, config, describe, load};

const TS: i64 = 1_732_550_400_000;

#[test]
fn describes_the_seed_schema() {
    let plugin = load(&components().enrich, config());
    let identity = plugin.identity();
    assert_eq!(identity.name, "enrich");
    assert_eq!(identity.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(identity.sha256.len(), 64);
    let info = &plugin.schema().info;
    let columns: Vec<(&str, ColumnType, bool)> = info
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.type_, c.nullable))
        .collect();
    assert_eq!(
        columns,
        [
            ("uuid", ColumnType::String, false),
            ("timestamp", ColumnType::Int64, false),
            ("kafka_topic", ColumnType::String, false),
            ("kafka_partition", ColumnType::Int32, false),
            ("kafka_offset", ColumnType::Int64, false),
        ]
    );
    assert_eq!(info.event_time.as_deref(), Some("timestamp"));
    assert!(plugin.schema().input_schema.is_some());
}

#[test]
fn keeps_valid_records_and_drops_each_kind_of_invalid_one() {
    let plugin = load(&components().enrich, config());
    let uuid = fixtures::uuid_for(42).to_string();
    let values: Vec<Option<Vec<u8>>> = vec![
        Some(fixtures::encode(&uuid, TS)),
        Some(fixtures::value(EventKind::Garbage, 1, TS)),
        Some(fixtures::value(EventKind::Empty, 2, TS)),
        None,
        Some(fixtures::value(EventKind::BadUuid, 4, TS)),
        Some(fixtures::encode(&uuid, 1_732_550_400)), // seconds, not ms
        Some(fixtures::encode(&uuid, TS)[..5].to_vec()),
        Some(fixtures::encode(&uuid, TS + 1)),
    ];
    let records: Vec<KafkaRecord<'_>> = values
        .iter()
        .enumerate()
        .map(|(i, v)| KafkaRecord {
            topic: "events",
            partition: 7,
            offset: 100 + i as i64,
            timestamp: Some(TS),
            key: Some(b"k"),
            value: v.as_deref(),
            headers: &[],
            schema_id: None,
        })
        .collect();
    let outcomes = PluginWorker::new(plugin).process(&records).unwrap();
    let got = describe(&outcomes);

    let kept = |offset: i64, ts: i64| {
        format!(
            "keep [String({uuid:?}), Int64({ts}), String(\"events\"), Int32(7), Int64({offset})]"
        )
    };
    assert_eq!(got[0], kept(100, TS));
    assert!(
        got[1].starts_with("drop avro: "),
        "garbage bytes: {}",
        got[1]
    );
    assert_eq!(got[2], "drop empty value");
    assert_eq!(got[3], "drop empty value (tombstone)");
    assert_eq!(
        got[4],
        "drop uuid: invalid character: found `n` at 0 in \"not-a-uuid-4\""
    );
    assert_eq!(
        got[5],
        "drop timestamp: 1732550400 is not epoch milliseconds between 2000 and 2100"
    );
    assert_eq!(got[6], "drop avro: unexpected end of input at byte 5");
    assert_eq!(got[7], kept(107, TS + 1));
    assert_eq!(outcomes.kept(), 2);
}

#[test]
fn large_batches_are_cut_by_count_and_bytes_and_answered_in_order() {
    let mut config = config();
    config.batch_records = 100;
    config.batch_bytes = 2_000;
    let plugin = load(&components().enrich, config);
    let values: Vec<Vec<u8>> = (0..1_000)
        .map(|n| {
            let kind = if n % 10 == 3 {
                EventKind::Garbage
            } else {
                EventKind::Valid
            };
            fixtures::value(kind, n, TS + n as i64)
        })
        .collect();
    let records = crate::support::records(&values);
    let mut worker = PluginWorker::new(plugin);
    let outcomes = worker.process(&records).unwrap();
    assert_eq!(outcomes.len(), 1_000);
    for (n, outcome) in outcomes.iter().enumerate() {
        match outcome {
            OutcomeRef::Keep(row) => {
                assert_ne!(n % 10, 3, "record {n} should have been dropped");
                let expected = fixtures::uuid_for(n as u64).to_string();
                assert_eq!(row.get(0), Some(ValueRef::String(&expected)));
                assert_eq!(row.get(4), Some(ValueRef::Int64(n as i64)));
            }
            OutcomeRef::Drop(reason) => {
                assert_eq!(n % 10, 3, "record {n} dropped: {reason}");
                assert!(reason.starts_with("avro: "), "{reason}");
            }
        }
    }
    // A call holds at most 2000 bytes of values (and 100 records).
    let stats = worker.stats();
    let bytes: usize = values.iter().map(Vec::len).sum();
    assert!(stats.calls as usize >= bytes.div_ceil(2_000), "{stats:?}");
    assert!(bytes.div_ceil(2_000) > 1_000 / 100, "the byte cap decides");
    assert_eq!(stats.failed_calls, 0);
    assert_eq!(stats.instances, 1, "one instance serves every batch");
    assert!(stats.fuel > 0);
}
