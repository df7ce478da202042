//! Decoding without serde or generic values: a writer schema is compiled
//! once, per schema id, into the steps that read an InputEvent out of its
//! datums, so a value written with an evolved schema costs what a bare one
//! does. Avro's resolution rules are applied when compiling: fields
//! InputEvent lacks become skips, `int` promotes to `long`, `bytes` to
//! `string`. [`crate::resolve`] checks first that the writer can resolve at
//! all, and names the field when it cannot.

use apache_avro::Schema;
use apache_avro::schema::{InnerDecimalSchema, UuidSchema};

use crate::InputEvent;

/// What to do with each field of the writer, in the writer's order.
#[derive(Debug, Clone)]
pub struct Plan {
    steps: Vec<Step>,
}

#[derive(Debug, Clone)]
enum Step {
    /// The uuid: a length-prefixed string (or bytes, which promote).
    Uuid,
    /// The timestamp, written as a long, or as an int that promotes.
    Timestamp { int: bool },
    /// A field InputEvent does not have.
    Skip(Skip),
}

/// How to step over a datum of a schema nobody reads, checking it as
/// apache-avro's reader would: a corrupt datum is dropped whichever field
/// the corruption is in.
#[derive(Debug, Clone)]
enum Skip {
    Nothing,
    Boolean,
    /// int and the logical types on it: a varint in i32's range.
    Int,
    /// long and the logical types on it.
    Long,
    /// An enum's index, below its symbol count.
    Enum(usize),
    Fixed(usize),
    /// A length-prefixed run of bytes.
    Bytes,
    /// A length-prefixed run of UTF-8.
    String,
    Array(Box<Skip>),
    Map(Box<Skip>),
    Union(Vec<Skip>),
    Record(Vec<Skip>),
}

impl Plan {
    /// InputEvent's own layout: the seed's bare datum.
    pub fn input_event() -> Self {
        Self {
            steps: vec![Step::Uuid, Step::Timestamp { int: false }],
        }
    }

    /// The plan for a writer record that resolves against InputEvent;
    /// `None` for a shape left to the generic reader (named references, a
    /// union where InputEvent reads its uuid or timestamp).
    pub fn compile(writer: &Schema) -> Option<Self> {
        let Schema::Record(record) = writer else {
            return None;
        };
        let mut steps = Vec::with_capacity(record.fields.len());
        let (mut uuid, mut timestamp) = (false, false);
        for field in &record.fields {
            let step = match field.name.as_str() {
                "uuid" if is_string(&field.schema) => {
                    uuid = true;
                    Step::Uuid
                }
                "timestamp" if is_long(&field.schema) => {
                    timestamp = true;
                    Step::Timestamp {
                        int: matches!(field.schema, Schema::Int),
                    }
                }
                "uuid" | "timestamp" => return None,
                _ => Step::Skip(skip(&field.schema)?),
            };
            steps.push(step);
        }
        (uuid && timestamp).then_some(Self { steps })
    }

    /// The event in `bytes`, which must hold exactly one datum.
    pub fn read(&self, bytes: &[u8]) -> Result<InputEvent, String> {
        self.read_event(bytes).map(|(event, _)| event)
    }

    /// [`read`](Self::read), and whether the uuid is in the canonical form
    /// (so that it needs no further check).
    pub(crate) fn read_event(&self, bytes: &[u8]) -> Result<(InputEvent, bool), String> {
        let mut input = Input { bytes, at: 0 };
        let mut event = InputEvent {
            uuid: String::new(),
            timestamp: 0,
        };
        let mut canonical = false;
        for step in &self.steps {
            match step {
                Step::Uuid => (event.uuid, canonical) = input.uuid()?,
                Step::Timestamp { int: false } => event.timestamp = input.varint()?,
                Step::Timestamp { int: true } => event.timestamp = input.int()?.into(),
                Step::Skip(s) => input.skip(s)?,
            }
        }
        if input.at != bytes.len() {
            return Err(format!(
                "avro: {} unexpected bytes after the record, which ends at byte {}",
                bytes.len() - input.at,
                input.at
            ));
        }
        Ok((event, canonical))
    }
}

/// What a reader `string` reads: string, bytes, and uuid on either.
fn is_string(schema: &Schema) -> bool {
    matches!(
        schema,
        Schema::String | Schema::Bytes | Schema::Uuid(UuidSchema::String | UuidSchema::Bytes)
    )
}

/// What a reader `long` reads: int, long and their logical types.
fn is_long(schema: &Schema) -> bool {
    matches!(
        schema,
        Schema::Int
            | Schema::Long
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos
    )
}

fn skip(schema: &Schema) -> Option<Skip> {
    Some(match schema {
        Schema::Null => Skip::Nothing,
        Schema::Boolean => Skip::Boolean,
        Schema::Int | Schema::Date | Schema::TimeMillis => Skip::Int,
        Schema::Long
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => Skip::Long,
        Schema::Float => Skip::Fixed(4),
        Schema::Double => Skip::Fixed(8),
        Schema::String | Schema::Uuid(UuidSchema::String) => Skip::String,
        Schema::Bytes | Schema::BigDecimal | Schema::Uuid(UuidSchema::Bytes) => Skip::Bytes,
        Schema::Enum(e) => Skip::Enum(e.symbols.len()),
        Schema::Fixed(f) | Schema::Duration(f) | Schema::Uuid(UuidSchema::Fixed(f)) => {
            Skip::Fixed(f.size)
        }
        Schema::Decimal(d) => match &d.inner {
            InnerDecimalSchema::Bytes => Skip::Bytes,
            InnerDecimalSchema::Fixed(f) => Skip::Fixed(f.size),
        },
        Schema::Array(a) => Skip::Array(Box::new(skip(&a.items)?)),
        Schema::Map(m) => Skip::Map(Box::new(skip(&m.types)?)),
        Schema::Union(u) => Skip::Union(u.variants().iter().map(skip).collect::<Option<_>>()?),
        Schema::Record(r) => Skip::Record(
            r.fields
                .iter()
                .map(|f| skip(&f.schema))
                .collect::<Option<_>>()?,
        ),
        // A named type used a second time: left to the generic reader.
        Schema::Ref { .. } => return None,
    })
}

impl Skip {
    /// Whether a datum of it takes no bytes at all.
    fn is_empty(&self) -> bool {
        match self {
            Skip::Nothing => true,
            Skip::Fixed(n) => *n == 0,
            Skip::Record(fields) => fields.iter().all(Skip::is_empty),
            _ => false,
        }
    }
}

/// The datum being read, and where.
struct Input<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Input<'a> {
    fn eof(&self) -> String {
        format!("avro: unexpected end of input at byte {}", self.bytes.len())
    }

    fn varint(&mut self) -> Result<i64, String> {
        let start = self.at;
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = *self.bytes.get(self.at).ok_or_else(|| self.eof())?;
            self.at += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok((value >> 1) as i64 ^ -((value & 1) as i64));
            }
        }
        Err(format!(
            "avro: integer at byte {start} is longer than 10 bytes"
        ))
    }

    /// An int: a varint in i32's range.
    fn int(&mut self) -> Result<i32, String> {
        let start = self.at;
        let n = self.varint()?;
        i32::try_from(n).map_err(|_| format!("avro: int {n} at byte {start} is out of range"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let run = &self.bytes[self.at..end.ok_or_else(|| self.eof())?];
        self.at += n;
        Ok(run)
    }

    /// A length prefix; a negative one is corrupt, and a long one runs
    /// into the end of the input before anything is allocated.
    fn length(&mut self) -> Result<usize, String> {
        let start = self.at;
        let n = self.varint()?;
        usize::try_from(n).map_err(|_| format!("avro: negative length {n} at byte {start}"))
    }

    /// The uuid string, and whether it is canonical. The canonical form is
    /// ASCII, so it skips the UTF-8 check: with the copy, that check was
    /// most of what reading a uuid cost in WebAssembly.
    fn uuid(&mut self) -> Result<(String, bool), String> {
        let start = self.at;
        let n = self.length()?;
        let bytes = self.take(n)?;
        if crate::is_hyphenated_uuid(bytes) {
            // SAFETY: the canonical form is ASCII hex digits and hyphens.
            let ascii = unsafe { String::from_utf8_unchecked(bytes.to_vec()) };
            return Ok((ascii, true));
        }
        self.at = start;
        Ok((self.string()?.to_owned(), false))
    }

    fn string(&mut self) -> Result<&'a str, String> {
        let n = self.length()?;
        let start = self.at;
        std::str::from_utf8(self.take(n)?).map_err(|e| {
            format!(
                "avro: string is not UTF-8 at byte {}",
                start + e.valid_up_to()
            )
        })
    }

    fn skip(&mut self, skip: &Skip) -> Result<(), String> {
        match skip {
            Skip::Nothing => {}
            Skip::Boolean => {
                let start = self.at;
                let byte = self.take(1)?[0];
                if byte > 1 {
                    return Err(format!("avro: boolean {byte} at byte {start}"));
                }
            }
            Skip::Int => drop(self.int()?),
            Skip::Long => drop(self.varint()?),
            Skip::Enum(symbols) => {
                let start = self.at;
                let index = self.varint()?;
                if usize::try_from(index).map_or(true, |i| i >= *symbols) {
                    return Err(format!(
                        "avro: enum index {index} of {symbols} symbols at byte {start}"
                    ));
                }
            }
            Skip::Fixed(n) => drop(self.take(*n)?),
            Skip::Bytes => {
                let n = self.length()?;
                self.take(n)?;
            }
            Skip::String => drop(self.string()?),
            Skip::Array(items) => self.blocks(items.is_empty(), |input| input.skip(items))?,
            Skip::Map(values) => self.blocks(false, |input| {
                input.string()?;
                input.skip(values)
            })?,
            Skip::Union(branches) => {
                let start = self.at;
                let branch = self.varint()?;
                let chosen = usize::try_from(branch)
                    .ok()
                    .and_then(|b| branches.get(b))
                    .ok_or_else(|| {
                        format!("avro: union branch {branch} out of range at byte {start}")
                    })?;
                self.skip(chosen)?;
            }
            Skip::Record(fields) => {
                for field in fields {
                    self.skip(field)?;
                }
            }
        }
        Ok(())
    }

    /// Array and map blocks: a count, negative when a byte size follows,
    /// until a count of zero. Sized blocks are read item by item all the
    /// same, and must hold what their size says.
    fn blocks(
        &mut self,
        empty: bool,
        mut item: impl FnMut(&mut Self) -> Result<(), String>,
    ) -> Result<(), String> {
        loop {
            let start = self.at;
            let count = self.varint()?;
            if count == 0 {
                return Ok(());
            }
            let size = if count < 0 {
                Some(self.length()?)
            } else {
                None
            };
            let count = count.unsigned_abs();
            let items_at = self.at;
            if empty {
                // Items of no bytes (arrays of null): nothing to step over,
                // however large the count.
                continue;
            }
            for _ in 0..count {
                item(self)?;
            }
            if let Some(size) = size
                && self.at - items_at != size
            {
                return Err(format!(
                    "avro: a block of {count} items at byte {start} says {size} bytes but holds {}",
                    self.at - items_at
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use apache_avro::reader::datum::GenericDatumReader;
    use apache_avro::types::Value;
    use apache_avro::writer::datum::GenericDatumWriter;

    use super::*;
    use crate::{SCHEMA, decode};

    const UUID: &str = "6f1c2a9e-5b7d-4c1e-9a3f-2d8e4b6c0a1f";

    fn record(fields: &str) -> Schema {
        Schema::parse_str(&format!(
            r#"{{"type":"record","name":"InputEvent","namespace":"com.lineage","fields":[{fields}]}}"#
        ))
        .unwrap()
    }

    /// Writers of every kind of field InputEvent skips, around the two it
    /// reads, each with a value to write for the skipped fields.
    fn writers() -> Vec<(Schema, Vec<(&'static str, Value)>)> {
        let nested = r#"{"name":"meta","type":{"type":"record","name":"Meta","fields":[
            {"name":"tags","type":{"type":"array","items":"string"}},
            {"name":"attrs","type":{"type":"map","values":["null","long","string"]}},
            {"name":"kind","type":{"type":"enum","name":"Kind","symbols":["A","B","C"]}},
            {"name":"digest","type":{"type":"fixed","name":"Digest","size":4}},
            {"name":"flag","type":"boolean"},
            {"name":"ratio","type":"float"},
            {"name":"score","type":"double"},
            {"name":"raw","type":"bytes"},
            {"name":"day","type":{"type":"int","logicalType":"date"}},
            {"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}},
            {"name":"nothing","type":"null"}]}}"#;
        let meta = Value::Record(vec![
            (
                "tags".into(),
                Value::Array(vec![Value::String("a".into()), Value::String("bé".into())]),
            ),
            (
                "attrs".into(),
                Value::Map(
                    [
                        ("n".to_owned(), Value::Union(0, Box::new(Value::Null))),
                        ("l".to_owned(), Value::Union(1, Box::new(Value::Long(-7)))),
                        (
                            "s".to_owned(),
                            Value::Union(2, Box::new(Value::String("x".into()))),
                        ),
                    ]
                    .into(),
                ),
            ),
            ("kind".into(), Value::Enum(2, "C".into())),
            ("digest".into(), Value::Fixed(4, vec![1, 2, 3, 4])),
            ("flag".into(), Value::Boolean(true)),
            ("ratio".into(), Value::Float(0.25)),
            ("score".into(), Value::Double(-1.5)),
            ("raw".into(), Value::Bytes(vec![0, 255, 7])),
            ("day".into(), Value::Date(20_000)),
            (
                "price".into(),
                Value::Decimal(apache_avro::Decimal::from(vec![0x01, 0x02])),
            ),
            ("nothing".into(), Value::Null),
        ]);
        vec![
            (
                record(&format!(
                    r#"{nested},{{"name":"uuid","type":"string"}},{{"name":"timestamp","type":"long"}}"#
                )),
                vec![("meta", meta.clone())],
            ),
            (
                record(&format!(
                    r#"{{"name":"timestamp","type":"int"}},{nested},{{"name":"uuid","type":"bytes"}},{{"name":"session","type":["null","string"],"default":null}}"#
                )),
                vec![
                    ("meta", meta),
                    (
                        "session",
                        Value::Union(1, Box::new(Value::String("s-1".into()))),
                    ),
                ],
            ),
        ]
    }

    fn encode(writer: &Schema, skipped: &[(&str, Value)], uuid: &str, ts: i64) -> Vec<u8> {
        let Schema::Record(r) = writer else {
            unreachable!()
        };
        let fields = r
            .fields
            .iter()
            .map(|f| {
                let value = match (f.name.as_str(), &f.schema) {
                    ("uuid", Schema::Bytes) => Value::Bytes(uuid.as_bytes().to_vec()),
                    ("uuid", _) => Value::String(uuid.into()),
                    ("timestamp", Schema::Int) => Value::Int(ts as i32),
                    ("timestamp", _) => Value::Long(ts),
                    (name, _) => skipped.iter().find(|(n, _)| *n == name).unwrap().1.clone(),
                };
                (f.name.clone(), value)
            })
            .collect();
        GenericDatumWriter::builder(writer)
            .build()
            .unwrap()
            .write_value_to_vec(Value::Record(fields))
            .unwrap()
    }

    #[test]
    fn a_plan_reads_what_avros_own_resolution_reads() {
        for (writer, skipped) in writers() {
            let plan = Plan::compile(&writer).expect("plannable");
            let generic = GenericDatumReader::builder(&writer)
                .reader_schema(&SCHEMA)
                .build()
                .unwrap();
            for ts in [0, 1, -1, 1_700_000_000, i32::MAX as i64] {
                let bytes = encode(&writer, &skipped, UUID, ts);
                let ours = plan.read(&bytes).unwrap();
                assert_eq!(ours, decode(&generic, &bytes).unwrap());
                assert_eq!((ours.uuid.as_str(), ours.timestamp), (UUID, ts));
                // Cut anywhere, it is refused (apache-avro takes some cut
                // datums whole when the cut falls in a field it skips).
                for cut in 0..bytes.len() {
                    assert!(plan.read(&bytes[..cut]).is_err(), "cut at {cut}");
                }
            }
        }
    }

    #[test]
    fn blocks_with_byte_sizes_are_stepped_over() {
        let writer = record(
            r#"{"name":"xs","type":{"type":"array","items":"long"}},{"name":"uuid","type":"string"},{"name":"timestamp","type":"long"}"#,
        );
        let plan = Plan::compile(&writer).unwrap();
        // count -2 (zig-zag 3), size 2 bytes, items 1 and 2, end of blocks.
        let mut bytes = vec![0x03, 0x04, 0x02, 0x04, 0x00, 0x48];
        bytes.extend_from_slice(UUID.as_bytes());
        bytes.push(0x02);
        let event = plan.read(&bytes).unwrap();
        assert_eq!((event.uuid.as_str(), event.timestamp), (UUID, 1));
    }

    #[test]
    fn a_huge_count_of_empty_items_costs_nothing() {
        let writer = record(
            r#"{"name":"xs","type":{"type":"array","items":"null"}},{"name":"uuid","type":"string"},{"name":"timestamp","type":"long"}"#,
        );
        let plan = Plan::compile(&writer).unwrap();
        // A count of 2^62, one block, then the end.
        let mut bytes = vec![
            0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0x00, 0x48,
        ];
        bytes.extend_from_slice(UUID.as_bytes());
        bytes.push(0x02);
        assert_eq!(plan.read(&bytes).unwrap().timestamp, 1);
    }

    #[test]
    fn corrupt_datums_are_refused_with_where() {
        let plan = Plan::input_event();
        assert_eq!(
            plan.read(&[0x01]).unwrap_err(),
            "avro: negative length -1 at byte 0"
        );
        assert_eq!(
            plan.read(&[0xff; 11]).unwrap_err(),
            "avro: integer at byte 0 is longer than 10 bytes"
        );
        assert_eq!(
            plan.read(&[0x04, b'a', 0xff]).unwrap_err(),
            "avro: string is not UTF-8 at byte 2"
        );
        let writer = record(
            r#"{"name":"u","type":["null","long"]},{"name":"uuid","type":"string"},{"name":"timestamp","type":"long"}"#,
        );
        assert_eq!(
            Plan::compile(&writer).unwrap().read(&[0x04]).unwrap_err(),
            "avro: union branch 2 out of range at byte 0"
        );
    }

    /// A field of `schema` before InputEvent's two, holding `datum`.
    fn skipping(schema: &str, datum: &[u8]) -> Result<InputEvent, String> {
        let writer = record(&format!(
            r#"{{"name":"x","type":{schema}}},{{"name":"uuid","type":"string"}},{{"name":"timestamp","type":"long"}}"#
        ));
        let mut bytes = datum.to_vec();
        bytes.push(0x48);
        bytes.extend_from_slice(UUID.as_bytes());
        bytes.push(0x02);
        Plan::compile(&writer).unwrap().read(&bytes)
    }

    #[test]
    fn skipped_fields_are_checked_as_strictly_as_read_ones() {
        assert!(skipping(r#""boolean""#, &[1]).is_ok());
        assert_eq!(
            skipping(r#""boolean""#, &[2]).unwrap_err(),
            "avro: boolean 2 at byte 0"
        );
        // 2^31, zig-zag: one past i32::MAX.
        let past = [0x80, 0x80, 0x80, 0x80, 0x10];
        assert!(skipping(r#""long""#, &past).is_ok());
        assert_eq!(
            skipping(r#""int""#, &past).unwrap_err(),
            "avro: int 2147483648 at byte 0 is out of range"
        );
        let kind = r#"{"type":"enum","name":"K","symbols":["A","B"]}"#;
        assert!(skipping(kind, &[0x02]).is_ok());
        assert_eq!(
            skipping(kind, &[0x04]).unwrap_err(),
            "avro: enum index 2 of 2 symbols at byte 0"
        );
        assert!(skipping(r#""bytes""#, &[0x02, 0xff]).is_ok());
        assert_eq!(
            skipping(r#""string""#, &[0x02, 0xff]).unwrap_err(),
            "avro: string is not UTF-8 at byte 1"
        );
        let map = r#"{"type":"map","values":"int"}"#;
        assert!(
            skipping(map, &[0x02, 0x02, 0xff, 0x02, 0x00])
                .unwrap_err()
                .contains("not UTF-8")
        );
        // One sized block of one long (1 byte) that claims 2 bytes.
        let longs = r#"{"type":"array","items":"long"}"#;
        assert!(skipping(longs, &[0x01, 0x02, 0x02, 0x00]).is_ok());
        assert_eq!(
            skipping(longs, &[0x01, 0x04, 0x02, 0x02, 0x00]).unwrap_err(),
            "avro: a block of 1 items at byte 0 says 2 bytes but holds 1"
        );
    }

    #[test]
    fn an_int_timestamp_must_be_an_int() {
        let writer = record(r#"{"name":"uuid","type":"string"},{"name":"timestamp","type":"int"}"#);
        let plan = Plan::compile(&writer).unwrap();
        let mut bytes = vec![0x48];
        bytes.extend_from_slice(UUID.as_bytes());
        // 1732550400000 as a zig-zag varint: a long, not an int.
        bytes.extend_from_slice(&[0x80, 0x80, 0xd8, 0xf3, 0xec, 0x64]);
        assert!(plan.read(&bytes).unwrap_err().contains("is out of range"));
    }

    #[test]
    fn a_named_type_used_twice_is_left_to_the_generic_reader() {
        let writer = record(
            r#"{"name":"a","type":{"type":"fixed","name":"F","size":2}},{"name":"b","type":"F"},{"name":"uuid","type":"string"},{"name":"timestamp","type":"long"}"#,
        );
        assert!(Plan::compile(&writer).is_none());
        let json = writer.canonical_form();
        assert!(matches!(
            crate::resolve(9, Some(&json)).unwrap(),
            crate::Writer::Resolved(_)
        ));
    }
}
