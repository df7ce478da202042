//! The seed's EnrichFunction: decode an `InputEvent` Avro datum, validate it
//! and add its Kafka coordinates.
//!
//! The logic lives in plain Rust so that it is unit-tested on the host target
//! and benchmarked natively next to the component; `component` only adapts it
//! to the WIT contract.

use std::collections::HashMap;
use std::io::{Cursor, ErrorKind};
use std::sync::LazyLock;

pub use plan::Plan;

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::schema_compatibility::SchemaCompatibility;

#[cfg(all(target_family = "wasm", feature = "component"))]
mod component;
mod plan;
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputEvent {
    pub uuid: String,
    pub timestamp: i64,
}

pub(crate) static SCHEMA: LazyLock<Schema> =
    LazyLock::new(|| Schema::parse_str(INPUT_SCHEMA).expect("input-event.avsc is valid Avro"));

static SAME: LazyLock<Plan> = LazyLock::new(Plan::input_event);

/// How a value's bytes are read.
#[derive(Clone, Copy)]
pub enum Writer {
    /// Written with InputEvent itself: the seed's bare datum, or a framed
    /// value whose writer schema is InputEvent's.
    Same,
    /// Written with another schema that Avro's resolution rules let
    /// InputEvent read: fields InputEvent lacks are skipped, and int and
    /// bytes promote to long and string.
    Planned(&'static Plan),
    /// The same, for writer shapes the plan leaves to apache-avro's
    /// generic reader: a named type used twice, or a union where InputEvent
    /// reads its uuid or timestamp.
    Resolved(&'static GenericDatumReader<'static>),
}

/// Decides how values written with a registry schema are read; the error
/// is the drop reason of every record of that id.
pub fn resolve(id: u32, writer_schema: Option<&str>) -> Result<Writer, String> {
    let json = writer_schema
        .ok_or_else(|| format!("schema id {id}: the host has no writer schema for it"))?;
    let mut writer = Schema::parse_str(json)
        .map_err(|e| format!("schema id {id}: the writer schema does not parse: {e}"))?;
    underlying(&mut writer);
    if writer.canonical_form() == SCHEMA.canonical_form() {
        return Ok(Writer::Same);
    }
    readable(&writer).map_err(|problem| {
        format!("schema id {id}: com.lineage.InputEvent cannot read what it wrote: {problem}")
    })?;
    // Once per id, for the life of the instance; ids are few.
    if let Some(plan) = Plan::compile(&writer) {
        return Ok(Writer::Planned(Box::leak(Box::new(plan))));
    }
    apache_avro::util::max_allocation_bytes(MAX_AVRO_ALLOCATION);
    let writer: &'static Schema = Box::leak(Box::new(writer));
    let reader = GenericDatumReader::builder(writer)
        .reader_schema(&SCHEMA)
        .human_readable(false)
        .build()
        .map_err(|e| format!("schema id {id}: the writer schema does not resolve: {e}"))?;
    Ok(Writer::Resolved(Box::leak(Box::new(reader))))
}

/// Logical types replaced by the types they annotate: Avro resolves on
/// those (a `timestamp-millis` long reads as InputEvent's long), where
/// apache-avro's generic reader refuses to resolve a timestamp or uuid
/// value into a plain long or string. The bytes are the same either way.
fn underlying(schema: &mut Schema) {
    use apache_avro::schema::{InnerDecimalSchema, UnionSchema, UuidSchema};
    let plain = match schema {
        Schema::Date | Schema::TimeMillis => Some(Schema::Int),
        Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => Some(Schema::Long),
        Schema::Uuid(UuidSchema::String) => Some(Schema::String),
        Schema::Uuid(UuidSchema::Bytes) | Schema::BigDecimal => Some(Schema::Bytes),
        Schema::Uuid(UuidSchema::Fixed(f)) | Schema::Duration(f) => Some(Schema::Fixed(f.clone())),
        Schema::Decimal(d) => Some(match &d.inner {
            InnerDecimalSchema::Bytes => Schema::Bytes,
            InnerDecimalSchema::Fixed(f) => Schema::Fixed(f.clone()),
        }),
        Schema::Array(a) => {
            underlying(&mut a.items);
            None
        }
        Schema::Map(m) => {
            underlying(&mut m.types);
            None
        }
        Schema::Union(u) => {
            let mut variants = u.variants().to_vec();
            variants.iter_mut().for_each(underlying);
            // The parser already refused unions that would repeat a type.
            UnionSchema::new(variants).ok().map(Schema::Union)
        }
        Schema::Record(r) => {
            for field in &mut r.fields {
                underlying(&mut field.schema);
            }
            None
        }
        _ => None,
    };
    if let Some(plain) = plain {
        *schema = plain;
    }
}

/// Why InputEvent cannot read what `writer` wrote, naming the field where
/// one is to blame (the library's own check names none).
fn readable(writer: &Schema) -> Result<(), String> {
    let problem = |e: apache_avro::error::CompatibilityError| {
        let text = e.to_string();
        lower_first(
            text.strip_prefix("Incompatible schemata! ")
                .or_else(|| text.strip_prefix("Incompatible schema types! "))
                .unwrap_or(&text),
        )
    };
    if let (Schema::Record(w), Schema::Record(r)) = (writer, &*SCHEMA) {
        for field in &r.fields {
            match w.fields.iter().find(|f| f.name == field.name) {
                None if field.default.is_none() => {
                    return Err(format!(
                        "field '{}' is not in the writer schema, and InputEvent gives it no default",
                        field.name
                    ));
                }
                None => {}
                Some(written) => SchemaCompatibility::can_read(&written.schema, &field.schema)
                    .map(drop)
                    .map_err(|e| format!("field '{}': {}", field.name, problem(e)))?,
            }
        }
    }
    SchemaCompatibility::can_read(writer, &SCHEMA)
        .map(drop)
        .map_err(problem)
}

/// [`resolve`]d writers by schema id, asked for once per id.
#[derive(Default)]
pub struct Writers(HashMap<u32, Result<Writer, String>>);

impl Writers {
    /// How a record with this schema id (none: a bare datum) is read.
    pub fn of(
        &mut self,
        schema_id: Option<u32>,
        fetch: impl FnOnce(u32) -> Option<String>,
    ) -> Result<Writer, String> {
        schema_id.map_or(Ok(Writer::Same), |id| self.get(id, fetch))
    }

    /// The writer of `id`; `fetch` answers its schema the first time.
    pub fn get(
        &mut self,
        id: u32,
        fetch: impl FnOnce(u32) -> Option<String>,
    ) -> Result<Writer, String> {
        self.0
            .entry(id)
            .or_insert_with(|| resolve(id, fetch(id).as_deref()))
            .clone()
    }
}

/// Bytes `start..start + len` of a batch's data (WIT `span`); a span
/// the host got wrong reads as empty rather than trapping.
pub fn span(data: &[u8], start: u32, len: u32) -> &[u8] {
    let start = start as usize;
    data.get(start..start.saturating_add(len as usize))
        .unwrap_or_default()
}

/// Decodes and validates one bare record value; the error is the drop
/// reason.
pub fn enrich(value: Option<&[u8]>) -> Result<InputEvent, String> {
    enrich_with(value, Writer::Same)
}

/// [`enrich`] for a value written with `writer`.
pub fn enrich_with(value: Option<&[u8]>, writer: Writer) -> Result<InputEvent, String> {
    let bytes = match value {
        None => return Err("empty value (tombstone)".to_owned()),
        Some([]) => return Err("empty value".to_owned()),
        Some(bytes) => bytes,
    };
    let (event, canonical) = match writer {
        Writer::Same => SAME.read_event(bytes)?,
        Writer::Planned(plan) => plan.read_event(bytes)?,
        Writer::Resolved(reader) => (decode(reader, bytes)?, false),
    };
    if !canonical
        && !is_hyphenated_uuid(event.uuid.as_bytes())
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

/// A datum resolved against InputEvent by apache-avro's generic reader
/// (defaults, promotions, skipped fields), for the writers no plan covers.
fn read_resolved(
    reader: &GenericDatumReader<'_>,
    cursor: &mut Cursor<&[u8]>,
) -> apache_avro::AvroResult<InputEvent> {
    use apache_avro::types::Value;
    let mut event = InputEvent {
        uuid: String::new(),
        timestamp: 0,
    };
    if let Value::Record(fields) = reader.read_value(cursor)? {
        for (name, value) in fields {
            match (name.as_str(), value) {
                ("uuid", Value::String(s)) => event.uuid = s,
                ("timestamp", Value::Long(n)) => event.timestamp = n,
                _ => {}
            }
        }
    }
    Ok(event)
}

pub(crate) fn decode(reader: &GenericDatumReader<'_>, bytes: &[u8]) -> Result<InputEvent, String> {
    let mut cursor = Cursor::new(bytes);
    let event: InputEvent = read_resolved(reader, &mut cursor).map_err(|e| {
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
pub(crate) fn is_hyphenated_uuid(s: &[u8]) -> bool {
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

    /// Encodes `fields` with the writer schema `json`.
    fn encode_as(json: &str, fields: Vec<(&str, Value)>) -> Vec<u8> {
        let schema = Schema::parse_str(json).unwrap();
        let value = Value::Record(fields.into_iter().map(|(k, v)| (k.into(), v)).collect());
        GenericDatumWriter::builder(&schema)
            .build()
            .unwrap()
            .write_value_to_vec(value)
            .unwrap()
    }

    fn writer(fields: &str) -> String {
        format!(
            r#"{{"type":"record","name":"InputEvent","namespace":"com.lineage","fields":[{fields}]}}"#
        )
    }

    #[test]
    fn a_writer_schema_equal_to_input_event_reads_as_the_bare_datum() {
        let json = writer(r#"{"name":"uuid","type":"string"},{"name":"timestamp","type":"long"}"#);
        assert!(matches!(resolve(1, Some(&json)), Ok(Writer::Same)));
    }

    #[test]
    fn an_added_field_with_a_default_is_skipped() {
        let json = writer(
            r#"{"name":"uuid","type":"string"},{"name":"session","type":"string","default":""},{"name":"timestamp","type":"long"}"#,
        );
        let bytes = encode_as(
            &json,
            vec![
                ("uuid", Value::String(UUID.into())),
                ("session", Value::String("s-42".into())),
                ("timestamp", Value::Long(TS)),
            ],
        );
        let w = resolve(2, Some(&json)).unwrap();
        assert!(matches!(w, Writer::Planned(_)));
        let event = enrich_with(Some(&bytes), w).unwrap();
        assert_eq!((event.uuid.as_str(), event.timestamp), (UUID, TS));
    }

    #[test]
    fn a_field_input_event_removed_is_skipped_in_any_position_and_type() {
        let json = writer(
            r#"{"name":"legacy","type":{"type":"array","items":"int"}},{"name":"timestamp","type":"long"},{"name":"uuid","type":"string"},{"name":"score","type":["null","double"]}"#,
        );
        let bytes = encode_as(
            &json,
            vec![
                ("legacy", Value::Array(vec![Value::Int(1), Value::Int(2)])),
                ("timestamp", Value::Long(TS)),
                ("uuid", Value::String(UUID.into())),
                ("score", Value::Union(1, Box::new(Value::Double(0.5)))),
            ],
        );
        let event = enrich_with(Some(&bytes), resolve(3, Some(&json)).unwrap()).unwrap();
        assert_eq!((event.uuid.as_str(), event.timestamp), (UUID, TS));
    }

    #[test]
    fn an_int_timestamp_promotes_to_long() {
        let json = writer(r#"{"name":"uuid","type":"string"},{"name":"timestamp","type":"int"}"#);
        // An int cannot hold epoch ms, so the value is then implausible: the
        // promotion itself is what is checked.
        let bytes = encode_as(
            &json,
            vec![
                ("uuid", Value::String(UUID.into())),
                ("timestamp", Value::Int(1_700_000_000)),
            ],
        );
        let reason = enrich_with(Some(&bytes), resolve(4, Some(&json)).unwrap()).unwrap_err();
        assert_eq!(
            reason,
            "timestamp: 1700000000 is not epoch milliseconds between 2000 and 2100"
        );
    }

    #[test]
    fn logical_types_resolve_as_the_types_they_annotate() {
        let json = writer(
            r#"{"name":"uuid","type":{"type":"string","logicalType":"uuid"}},{"name":"at","type":{"type":"long","logicalType":"timestamp-micros"}},{"name":"day","type":{"type":"int","logicalType":"date"}},{"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}},{"name":"timestamp","type":{"type":"long","logicalType":"timestamp-millis"}}"#,
        );
        let bytes = encode_as(
            &json,
            vec![
                ("uuid", Value::Uuid(UUID.parse().unwrap())),
                ("at", Value::TimestampMicros(TS * 1000)),
                ("day", Value::Date(20_000)),
                (
                    "price",
                    Value::Decimal(apache_avro::Decimal::from(vec![0x30, 0x39])),
                ),
                ("timestamp", Value::TimestampMillis(TS)),
            ],
        );
        let w = resolve(21, Some(&json)).unwrap();
        assert!(matches!(w, Writer::Planned(_)));
        let event = enrich_with(Some(&bytes), w).unwrap();
        assert_eq!((event.uuid.as_str(), event.timestamp), (UUID, TS));
    }

    #[test]
    fn an_unresolvable_writer_names_the_field_and_the_schema_id() {
        let missing = writer(r#"{"name":"uuid","type":"string"}"#);
        let reason = resolve(17, Some(&missing)).err().unwrap();
        assert!(reason.starts_with("schema id 17: "), "{reason}");
        assert!(reason.contains("'timestamp'"), "{reason}");
        let retyped =
            writer(r#"{"name":"uuid","type":"string"},{"name":"timestamp","type":"string"}"#);
        let reason = resolve(18, Some(&retyped)).err().unwrap();
        assert!(reason.starts_with("schema id 18: "), "{reason}");
        assert!(reason.contains("field 'timestamp': "), "{reason}");
        assert_eq!(
            resolve(19, None).err().unwrap(),
            "schema id 19: the host has no writer schema for it"
        );
        assert!(
            resolve(20, Some("{"))
                .err()
                .unwrap()
                .starts_with("schema id 20: the writer schema does not parse")
        );
    }

    #[test]
    fn writers_are_fetched_once_per_id() {
        let mut writers = Writers::default();
        let mut asked = 0;
        let json = writer(r#"{"name":"uuid","type":"string"}"#);
        for _ in 0..3 {
            let _ = writers.get(5, |_| {
                asked += 1;
                Some(json.clone())
            });
        }
        assert_eq!(asked, 1);
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
