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
    /// The timestamp, written as a long or as an int that promotes.
    Timestamp,
    /// A field InputEvent does not have.
    Skip(Skip),
}

/// How to step over a datum of a schema nobody reads.
#[derive(Debug, Clone)]
enum Skip {
    Nothing,
    Byte,
    /// A zig-zag varint: int, long, enum and every logical type on them.
    Varint,
    Fixed(usize),
    /// A length-prefixed run: bytes and string.
    Sized,
    Array(Box<Skip>),
    Map(Box<Skip>),
    Union(Vec<Skip>),
    Record(Vec<Skip>),
}

impl Plan {
    /// InputEvent's own layout: the seed's bare datum.
    pub fn input_event() -> Self {
        Self {
            steps: vec![Step::Uuid, Step::Timestamp],
        }
    }

    /// The plan for a writer record that resolves against InputEvent;
    /// `None` for a shape left to the generic reader (named references).
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
                    Step::Timestamp
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
        let mut input = Input { bytes, at: 0 };
        let mut event = InputEvent {
            uuid: String::new(),
            timestamp: 0,
        };
        for step in &self.steps {
            match step {
                Step::Uuid => event.uuid = input.string()?.to_owned(),
                Step::Timestamp => event.timestamp = input.varint()?,
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
        Ok(event)
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

/// Whether the schema is written as a zig-zag varint.
fn is_varint(schema: &Schema) -> bool {
    matches!(
        schema,
        Schema::Int
            | Schema::Long
            | Schema::Date
            | Schema::TimeMillis
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos
            | Schema::Enum(_)
    )
}

fn skip(schema: &Schema) -> Option<Skip> {
    if is_varint(schema) {
        return Some(Skip::Varint);
    }
    Some(match schema {
        Schema::Null => Skip::Nothing,
        Schema::Boolean => Skip::Byte,
        Schema::Float => Skip::Fixed(4),
        Schema::Double => Skip::Fixed(8),
        Schema::Bytes
        | Schema::String
        | Schema::BigDecimal
        | Schema::Uuid(UuidSchema::String | UuidSchema::Bytes) => Skip::Sized,
        Schema::Fixed(f) | Schema::Duration(f) | Schema::Uuid(UuidSchema::Fixed(f)) => {
            Skip::Fixed(f.size)
        }
        Schema::Decimal(d) => match &d.inner {
            InnerDecimalSchema::Bytes => Skip::Sized,
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
        _ => unreachable!("varints are skipped above"),
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
            Skip::Byte => drop(self.take(1)?),
            Skip::Varint => drop(self.varint()?),
            Skip::Fixed(n) => drop(self.take(*n)?),
            Skip::Sized => {
                let n = self.length()?;
                self.take(n)?;
            }
            Skip::Array(items) => self.blocks(items.is_empty(), |input| input.skip(items))?,
            Skip::Map(values) => self.blocks(false, |input| {
                let n = input.length()?;
                input.take(n)?;
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
    /// until a count of zero.
    fn blocks(
        &mut self,
        empty: bool,
        mut item: impl FnMut(&mut Self) -> Result<(), String>,
    ) -> Result<(), String> {
        loop {
            let count = self.varint()?;
            if count == 0 {
                return Ok(());
            }
            if count < 0 {
                // The block's size in bytes, which lets a skipper jump it.
                let n = self.length()?;
                self.take(n)?;
                continue;
            }
            if empty {
                // Items of no bytes (arrays of null): nothing to step over,
                // however large the count.
                continue;
            }
            for _ in 0..count {
                item(self)?;
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
