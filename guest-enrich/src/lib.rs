//! The seed's EnrichFunction: decode an `InputEvent` Avro datum, validate it
//! and add its Kafka coordinates.
//!
//! The logic lives in plain Rust so that it is unit-tested on the host target
//! and benchmarked natively next to the component; `component` only adapts it
//! to the WIT contract.

use std::io::{Cursor, ErrorKind};
use std::sync::LazyLock;

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use serde::Deserialize;

#[cfg(all(target_family = "wasm", feature = "component"))]
mod component;
#[cfg(target_family = "wasm")]
pub mod slab;

pub const NAME: &str = "enrich";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The Avro schema of the input values, as the seed's producer writes them.
pub const INPUT_SCHEMA: &str = include_str!("../schema/input-event.avsc");

/// The column that carries event time (epoch ms); it decides the output
/// hour. It stays a plain long, as in the seed's files.
pub const EVENT_TIME_COLUMN: &str = "timestamp";

/// Output columns, in order: (name, type, nullable).
pub const COLUMNS: [(&str, ColumnKind, bool); 5] = [
    ("uuid", ColumnKind::String, false),
    ("timestamp", ColumnKind::Int64, false),
    ("kafka_topic", ColumnKind::String, false),
    ("kafka_partition", ColumnKind::Int32, false),
    ("kafka_offset", ColumnKind::Int64, false),
];

/// Timestamps outside [2000-01-01, 2100-01-01) are not epoch milliseconds:
/// they are seconds, microseconds, or garbage.
pub const PLAUSIBLE_TIMESTAMPS_MS: std::ops::Range<i64> = 946_684_800_000..4_102_444_800_000;

/// Caps what a corrupt length prefix can make the decoder allocate.
const MAX_AVRO_ALLOCATION: usize = 16 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    String,
    Int32,
    Int64,
}

/// A valid input event.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct InputEvent {
    pub uuid: String,
    pub timestamp: i64,
}

static SCHEMA: LazyLock<Schema> =
    LazyLock::new(|| Schema::parse_str(INPUT_SCHEMA).expect("input-event.avsc is valid Avro"));

// Resolving the schema once, not per record, is most of the decode speed.
static READER: LazyLock<GenericDatumReader<'static>> = LazyLock::new(|| {
    apache_avro::util::max_allocation_bytes(MAX_AVRO_ALLOCATION);
    GenericDatumReader::builder(&SCHEMA)
        .human_readable(false)
        .build()
        .expect("input-event.avsc resolves")
});

/// Decodes and validates one record value; the error is the drop reason.
pub fn enrich(value: Option<&[u8]>) -> Result<InputEvent, String> {
    let bytes = match value {
        None => return Err("empty value (tombstone)".to_owned()),
        Some([]) => return Err("empty value".to_owned()),
        Some(bytes) => bytes,
    };
    let event = decode(bytes)?;
    if !is_hyphenated_uuid(event.uuid.as_bytes())
        && let Err(e) = uuid::Uuid::parse_str(&event.uuid)
    {
        return Err(format!("uuid: {e} in {:?}", clip(&event.uuid)));
    }
    if !PLAUSIBLE_TIMESTAMPS_MS.contains(&event.timestamp) {
        return Err(format!(
            "timestamp: {} is not epoch milliseconds between 2000 and 2100",
            event.timestamp
        ));
    }
    Ok(event)
}

fn decode(bytes: &[u8]) -> Result<InputEvent, String> {
    let mut cursor = Cursor::new(bytes);
    let event: InputEvent = READER.read_deser(&mut cursor).map_err(|e| {
        let at = cursor.position();
        if is_eof(&e) {
            format!("avro: unexpected end of input at byte {at}")
        } else {
            format!("avro: {} at byte {at}", lower_first(&e.to_string()))
        }
    })?;
    let end = cursor.position() as usize;
    if end != bytes.len() {
        return Err(format!(
            "avro: {} unexpected bytes after the record, which ends at byte {end}",
            bytes.len() - end
        ));
    }
    Ok(event)
}

/// The canonical 8-4-4-4-12 form, which is what producers write. uuid
/// decides everything else (other forms it accepts, and the error message);
/// this check alone halved the plugin's uuid cost in WebAssembly, where
/// uuid's table-driven hex decoding compiles poorly.
fn is_hyphenated_uuid(s: &[u8]) -> bool {
    let Ok(s) = <&[u8; 36]>::try_from(s) else {
        return false;
    };
    let hex = |range: std::ops::Range<usize>| s[range].iter().all(|&c| HEX_DIGIT[c as usize]);
    s[8] == b'-'
        && s[13] == b'-'
        && s[18] == b'-'
        && s[23] == b'-'
        && hex(0..8)
        && hex(9..13)
        && hex(14..18)
        && hex(19..23)
        && hex(24..36)
}

static HEX_DIGIT: [bool; 256] = {
    let mut table = [false; 256];
    let mut c = 0;
    while c < 256 {
        table[c] = (c as u8).is_ascii_hexdigit();
        c += 1;
    }
    table
};

fn is_eof(e: &apache_avro::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.kind() == ErrorKind::UnexpectedEof
        {
            return true;
        }
        source = err.source();
    }
    false
}

fn lower_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Keeps reasons short when a field holds something huge.
fn clip(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::types::Value;
    use apache_avro::writer::datum::GenericDatumWriter;

    fn encode(uuid: &str, timestamp: i64) -> Vec<u8> {
        let value = Value::Record(vec![
            ("uuid".into(), Value::String(uuid.into())),
            ("timestamp".into(), Value::Long(timestamp)),
        ]);
        GenericDatumWriter::builder(&SCHEMA)
            .build()
            .unwrap()
            .write_value_to_vec(value)
            .unwrap()
    }

    const UUID: &str = "6f1c2a9e-5b7d-4c1e-9a3f-2d8e4b6c0a1f";
    const TS: i64 = 1_732_550_400_000; // 2024-11-25T16:00:00Z

    #[test]
    fn keeps_a_valid_event() {
        let event = enrich(Some(&encode(UUID, TS))).unwrap();
        assert_eq!(
            event,
            InputEvent {
                uuid: UUID.into(),
                timestamp: TS
            }
        );
    }

    #[test]
    fn drops_empty_and_missing_values() {
        assert_eq!(enrich(Some(&[])).unwrap_err(), "empty value");
        assert_eq!(enrich(None).unwrap_err(), "empty value (tombstone)");
    }

    #[test]
    fn drops_truncated_avro_with_the_position() {
        let bytes = encode(UUID, TS);
        let reason = enrich(Some(&bytes[..3])).unwrap_err();
        assert_eq!(reason, "avro: unexpected end of input at byte 3");
    }

    #[test]
    fn drops_trailing_garbage() {
        let mut bytes = encode(UUID, TS);
        let end = bytes.len();
        bytes.extend_from_slice(b"xyz");
        let reason = enrich(Some(&bytes)).unwrap_err();
        assert_eq!(
            reason,
            format!("avro: 3 unexpected bytes after the record, which ends at byte {end}")
        );
    }

    #[test]
    fn drops_a_huge_length_prefix_without_allocating_it() {
        // zig-zag varint for a 1 GiB string length.
        let reason = enrich(Some(&[0x80, 0x80, 0x80, 0x80, 0x08, b'a'])).unwrap_err();
        assert!(reason.starts_with("avro: "), "{reason}");
    }

    #[test]
    fn drops_invalid_utf8() {
        let reason = enrich(Some(&[0x04, 0xff, 0xfe, 0x02])).unwrap_err();
        assert!(reason.starts_with("avro: "), "{reason}");
        assert!(reason.contains("at byte"), "{reason}");
    }

    #[test]
    fn drops_a_bad_uuid_with_what_was_wrong() {
        let reason = enrich(Some(&encode("not-a-uuid", TS))).unwrap_err();
        assert!(reason.starts_with("uuid: invalid "), "{reason}");
        assert!(reason.ends_with("in \"not-a-uuid\""), "{reason}");
        let reason = enrich(Some(&encode("6f1c2a9e-5b7d-4c1e-9a3f-2d8e4b6c0a1z", TS))).unwrap_err();
        assert!(reason.starts_with("uuid: invalid character"), "{reason}");
    }

    #[test]
    fn accepts_every_form_uuid_accepts() {
        for form in [
            UUID,
            "6F1C2A9E-5B7D-4C1E-9A3F-2D8E4B6C0A1F",
            "6f1c2a9e5b7d4c1e9a3f2d8e4b6c0a1f",
            "{6f1c2a9e-5b7d-4c1e-9a3f-2d8e4b6c0a1f}",
            "urn:uuid:6f1c2a9e-5b7d-4c1e-9a3f-2d8e4b6c0a1f",
        ] {
            assert!(enrich(Some(&encode(form, TS))).is_ok(), "{form}");
        }
        for bad in [
            "6f1c2a9e-5b7d-4c1e-9a3f_2d8e4b6c0a1f",
            "6f1c2a9e-5b7d-4c1e-9a3f-2d8e4b6c0a1g",
            "6f1c2a9e-5b7d-4c1e-9a3f-2d8e4b6c0a1",
        ] {
            assert!(!is_hyphenated_uuid(bad.as_bytes()), "{bad}");
            assert!(enrich(Some(&encode(bad, TS))).is_err(), "{bad}");
        }
    }

    #[test]
    fn drops_implausible_timestamps() {
        for ts in [0, -1, 1_732_550_400, 1_732_550_400_000_000, i64::MAX] {
            let reason = enrich(Some(&encode(UUID, ts))).unwrap_err();
            assert_eq!(
                reason,
                format!("timestamp: {ts} is not epoch milliseconds between 2000 and 2100")
            );
        }
        assert!(enrich(Some(&encode(UUID, PLAUSIBLE_TIMESTAMPS_MS.start))).is_ok());
        assert!(enrich(Some(&encode(UUID, PLAUSIBLE_TIMESTAMPS_MS.end - 1))).is_ok());
    }

    #[test]
    fn clips_long_fields_in_reasons() {
        let long = "x".repeat(1000);
        let reason = enrich(Some(&encode(&long, TS))).unwrap_err();
        assert!(reason.len() < 200, "{reason}");
    }

    #[test]
    fn input_schema_is_the_seeds() {
        let Schema::Record(record) = &*SCHEMA else {
            panic!("not a record")
        };
        assert_eq!(record.name.fullname(None), "com.lineage.InputEvent");
        let fields: Vec<_> = record.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(fields, ["uuid", "timestamp"]);
    }
}
