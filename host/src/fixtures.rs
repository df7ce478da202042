//! The seed's `InputEvent` values, as the seed's producer writes them, and
//! the kinds of invalid values real topics carry; used by benchmarks and
//! the data generator.

use std::sync::LazyLock;

use apache_avro::Schema;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;

pub use guest_enrich::INPUT_SCHEMA;

static SCHEMA: LazyLock<Schema> =
    LazyLock::new(|| Schema::parse_str(INPUT_SCHEMA).expect("input-event.avsc is valid Avro"));

// Resolved once: resolving the schema per value would dominate encoding.
static WRITER: LazyLock<GenericDatumWriter<'static>> = LazyLock::new(|| {
    GenericDatumWriter::builder(&SCHEMA)
        .build()
        .expect("input-event.avsc resolves")
});

/// InputEvent v2, as an evolved producer writes it: a `session` field
/// added, with a default, so that v1 readers and v2 readers both read it.
pub const INPUT_SCHEMA_V2: &str = r#"{"type":"record","name":"InputEvent","namespace":"com.lineage","fields":[{"name":"uuid","type":"string"},{"name":"session","type":"string","default":""},{"name":"timestamp","type":"long"}]}"#;

static SCHEMA_V2: LazyLock<Schema> =
    LazyLock::new(|| Schema::parse_str(INPUT_SCHEMA_V2).expect("v2 is valid Avro"));

static WRITER_V2: LazyLock<GenericDatumWriter<'static>> = LazyLock::new(|| {
    GenericDatumWriter::builder(&SCHEMA_V2)
        .build()
        .expect("v2 resolves")
});

/// The registry ids of v1 and v2, for framed values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaIds {
    pub v1: u32,
    pub v2: u32,
}

/// An id no registry of the generator's has registered: its records are
/// dropped as unknown.
pub const UNKNOWN_SCHEMA_ID: u32 = 999_999;

fn framed(id: u32, body: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(5 + body.len());
    value.push(0);
    value.extend_from_slice(&id.to_be_bytes());
    value.extend_from_slice(body);
    value
}

/// Record `n` in the Confluent wire format: valid ones alternate between
/// v1 and v2 in runs of three, as during a rolling deploy of producers;
/// garbage is either unframed or framed with an unknown id; an empty
/// value has no room for the framing.
pub fn framed_value(kind: EventKind, n: u64, timestamp_ms: i64, ids: SchemaIds) -> Vec<u8> {
    match kind {
        EventKind::Valid if (n / 3) % 2 == 1 => {
            let value = Value::Record(vec![
                ("uuid".into(), Value::String(uuid_for(n).to_string())),
                ("session".into(), Value::String(format!("s-{}", n % 7))),
                ("timestamp".into(), Value::Long(timestamp_ms)),
            ]);
            let body = WRITER_V2.write_value_to_vec(value).expect("v2 encodes");
            framed(ids.v2, &body)
        }
        EventKind::Garbage if n.is_multiple_of(2) => {
            framed(UNKNOWN_SCHEMA_ID, &value(kind, n, timestamp_ms))
        }
        EventKind::Garbage | EventKind::Empty => value(kind, n, timestamp_ms),
        EventKind::Valid | EventKind::BadUuid => framed(ids.v1, &value(kind, n, timestamp_ms)),
    }
}

/// What a generated value is, and so where it must end up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Valid,
    /// Random bytes that are not an Avro `InputEvent`.
    Garbage,
    /// A zero-length value.
    Empty,
    /// Well-formed Avro whose uuid does not parse.
    BadUuid,
}

/// A deterministic UUID for sequence number `n`, so that runs can be
/// compared record by record.
pub fn uuid_for(n: u64) -> uuid::Uuid {
    let mut x = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    let hi = x ^ (x >> 31);
    uuid::Builder::from_random_bytes(((u128::from(hi) << 64) | u128::from(n)).to_be_bytes())
        .into_uuid()
}

/// Encodes a valid `InputEvent`.
pub fn encode(uuid: &str, timestamp_ms: i64) -> Vec<u8> {
    let value = Value::Record(vec![
        ("uuid".into(), Value::String(uuid.into())),
        ("timestamp".into(), Value::Long(timestamp_ms)),
    ]);
    WRITER
        .write_value_to_vec(value)
        .expect("InputEvent encodes")
}

/// The value of kind `kind` for sequence number `n`.
pub fn value(kind: EventKind, n: u64, timestamp_ms: i64) -> Vec<u8> {
    match kind {
        EventKind::Valid => encode(&uuid_for(n).to_string(), timestamp_ms),
        // 0xff is never a valid Avro string length prefix start here: it
        // decodes to a negative length.
        EventKind::Garbage => {
            let mut bytes = vec![0xff, 0xff, 0xff, 0x0f];
            bytes.extend_from_slice(&n.to_le_bytes());
            bytes
        }
        EventKind::Empty => Vec::new(),
        EventKind::BadUuid => encode(&format!("not-a-uuid-{n}"), timestamp_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_meet_the_default_plugin_as_expected() {
        let ts = 1_732_550_400_000;
        for n in 0..100 {
            let event = guest_enrich::enrich(Some(&value(EventKind::Valid, n, ts))).unwrap();
            assert_eq!(event.uuid, uuid_for(n).to_string());
            assert_eq!(event.timestamp, ts);
            assert!(guest_enrich::enrich(Some(&value(EventKind::Garbage, n, ts))).is_err());
            assert!(guest_enrich::enrich(Some(&value(EventKind::Empty, n, ts))).is_err());
            let reason = guest_enrich::enrich(Some(&value(EventKind::BadUuid, n, ts))).unwrap_err();
            assert!(reason.starts_with("uuid:"), "{reason}");
        }
        assert_ne!(uuid_for(1), uuid_for(2));
    }
}
