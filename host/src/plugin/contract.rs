//! What the host demands of a plugin's self-description and of each answer.
//!
//! A plugin is untrusted input: its `describe` is checked once at load time,
//! and every kept row is checked against the declared columns before it can
//! reach a file, so that a wrong answer drops one record instead of failing
//! a Parquet write later.

use std::collections::HashSet;
use std::fmt;

use super::answer::{Row, ValueRef};
use super::bindings::{ColumnType, PluginInfo};

/// Column names the host writes itself, or that Hive-style readers derive
/// from the `year=/month=/day=/hour=` directories.
const RESERVED_COLUMNS: [&str; 6] = ["checkpoint_id", "schema_id", "year", "month", "day", "hour"];

const MAX_NAME_LEN: usize = 128;

/// A plugin's self-description after the host accepted it.
#[derive(Debug, Clone)]
pub struct PluginSchema {
    pub info: PluginInfo,
    /// Index into `info.columns` of the event-time column.
    pub event_time: Option<usize>,
    pub input_schema: Option<apache_avro::Schema>,
}

impl PluginSchema {
    /// Accepts a description or lists everything wrong with it.
    pub fn validate(info: PluginInfo) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        check_label("name", &info.name, &mut problems);
        check_label("version", &info.version, &mut problems);
        if info.columns.is_empty() {
            problems.push("declares no columns".to_owned());
        }
        let mut seen = HashSet::new();
        for column in &info.columns {
            let name = &column.name;
            if !is_identifier(name) {
                problems.push(format!(
                    "column {name:?} is not a valid name (letters, digits and _, not starting with a digit, at most {MAX_NAME_LEN} characters)"
                ));
            }
            // Spark and DuckDB resolve column names case-insensitively.
            if !seen.insert(name.to_ascii_lowercase()) {
                problems.push(format!("column {name:?} is declared twice"));
            }
            if RESERVED_COLUMNS.contains(&name.to_ascii_lowercase().as_str()) {
                problems.push(format!(
                    "column {name:?} is reserved: the host writes it or derives it from the output path"
                ));
            }
        }
        let event_time = match &info.event_time {
            None => None,
            Some(name) => match info.columns.iter().position(|c| &c.name == name) {
                None => {
                    problems.push(format!("event-time column {name:?} is not declared"));
                    None
                }
                Some(i) => {
                    let column = &info.columns[i];
                    if !matches!(column.type_, ColumnType::Int64 | ColumnType::TimestampMs) {
                        problems.push(format!(
                            "event-time column {name:?} is {}, not int64 or timestamp-ms",
                            type_name(column.type_)
                        ));
                    }
                    if column.nullable {
                        problems.push(format!("event-time column {name:?} is nullable"));
                    }
                    Some(i)
                }
            },
        };
        let input_schema = match &info.input_schema {
            None => None,
            Some(json) => match apache_avro::Schema::parse_str(json) {
                Ok(schema) => Some(schema),
                Err(e) => {
                    problems.push(format!("input-schema is not a valid Avro schema: {e}"));
                    None
                }
            },
        };
        if problems.is_empty() {
            Ok(Self {
                info,
                event_time,
                input_schema,
            })
        } else {
            Err(problems)
        }
    }

    /// Whether a kept row matches the declared columns; the error is the
    /// drop reason.
    pub fn check_row(&self, row: &Row<'_>) -> Result<(), String> {
        let columns = &self.info.columns;
        if row.len() != columns.len() {
            return Err(format!(
                "plugin answered a row of {} values for {} columns",
                row.len(),
                columns.len()
            ));
        }
        for (value, column) in row.iter().zip(columns) {
            match (value, column.type_) {
                (ValueRef::Null, _) if column.nullable => {}
                (ValueRef::Null, _) => {
                    return Err(format!(
                        "plugin answered null for non-nullable column {:?}",
                        column.name
                    ));
                }
                (ValueRef::String(_), ColumnType::String)
                | (ValueRef::Bytes(_), ColumnType::Bytes)
                | (ValueRef::Boolean(_), ColumnType::Boolean)
                | (ValueRef::Int32(_), ColumnType::Int32)
                | (ValueRef::Int64(_), ColumnType::Int64)
                | (ValueRef::Float64(_), ColumnType::Float64)
                | (ValueRef::TimestampMs(_), ColumnType::TimestampMs) => {}
                (value, expected) => {
                    return Err(format!(
                        "plugin answered {} for column {:?}, declared {}",
                        value_type_name(&value),
                        column.name,
                        type_name(expected)
                    ));
                }
            }
        }
        Ok(())
    }
}

fn check_label(what: &str, value: &str, problems: &mut Vec<String>) {
    if value.trim().is_empty() {
        problems.push(format!("{what} is empty"));
    } else if value.len() > MAX_NAME_LEN || value.chars().any(char::is_control) {
        problems.push(format!(
            "{what} {value:?} is longer than {MAX_NAME_LEN} bytes or holds control characters"
        ));
    }
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= MAX_NAME_LEN
}

/// The WIT spelling, which is what plugin authors write.
pub fn type_name(t: ColumnType) -> &'static str {
    match t {
        ColumnType::String => "string",
        ColumnType::Bytes => "bytes",
        ColumnType::Boolean => "boolean",
        ColumnType::Int32 => "int32",
        ColumnType::Int64 => "int64",
        ColumnType::Float64 => "float64",
        ColumnType::TimestampMs => "timestamp-ms",
    }
}

fn value_type_name(v: &ValueRef<'_>) -> &'static str {
    match v {
        ValueRef::Null => "null",
        ValueRef::String(_) => "string",
        ValueRef::Bytes(_) => "bytes",
        ValueRef::Boolean(_) => "boolean",
        ValueRef::Int32(_) => "int32",
        ValueRef::Int64(_) => "int64",
        ValueRef::Float64(_) => "float64",
        ValueRef::TimestampMs(_) => "timestamp-ms",
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(type_name(*self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::bindings::Column;

    fn column(name: &str, type_: ColumnType, nullable: bool) -> Column {
        Column {
            name: name.into(),
            type_,
            nullable,
        }
    }

    fn info(columns: Vec<Column>, event_time: Option<&str>) -> PluginInfo {
        PluginInfo {
            name: "p".into(),
            version: "1".into(),
            columns,
            event_time: event_time.map(Into::into),
            input_schema: None,
        }
    }

    fn good() -> PluginSchema {
        PluginSchema::validate(info(
            vec![
                column("id", ColumnType::String, false),
                column("ts", ColumnType::TimestampMs, false),
                column("note", ColumnType::String, true),
            ],
            Some("ts"),
        ))
        .unwrap()
    }

    #[test]
    fn accepts_a_well_formed_description() {
        assert_eq!(good().event_time, Some(1));
    }

    #[test]
    fn lists_every_problem() {
        let problems = PluginSchema::validate(PluginInfo {
            name: "".into(),
            version: "1\n".into(),
            columns: vec![
                column("1st", ColumnType::String, false),
                column("a", ColumnType::String, false),
                column("A", ColumnType::String, false),
                column("checkpoint_id", ColumnType::Int64, false),
                column("hour", ColumnType::Int32, false),
                column("when", ColumnType::String, true),
            ],
            event_time: Some("when".into()),
            input_schema: Some("{not avro".into()),
        })
        .unwrap_err();
        let all = problems.join("\n");
        for expected in [
            "name is empty",
            "version \"1\\n\"",
            "column \"1st\" is not a valid name",
            "column \"A\" is declared twice",
            "column \"checkpoint_id\" is reserved",
            "column \"hour\" is reserved",
            "event-time column \"when\" is string, not int64 or timestamp-ms",
            "event-time column \"when\" is nullable",
            "input-schema is not a valid Avro schema",
        ] {
            assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
        }
        assert_eq!(problems.len(), 9, "{all}");
    }

    #[test]
    fn rejects_no_columns_and_unknown_event_time() {
        let problems = PluginSchema::validate(info(vec![], Some("ts"))).unwrap_err();
        assert_eq!(
            problems,
            [
                "declares no columns",
                "event-time column \"ts\" is not declared"
            ]
        );
    }

    #[test]
    fn keeps_matching_rows_and_drops_the_rest() {
        use crate::plugin::answer::{OutcomeRef, Outcomes};
        let schema = good();
        let check = |values: Vec<ValueRef<'_>>| {
            let mut outcomes = Outcomes::default();
            outcomes.push_keep(values);
            let Some(OutcomeRef::Keep(row)) = outcomes.get(0) else {
                panic!("not kept")
            };
            schema.check_row(&row)
        };
        assert_eq!(
            check(vec![
                ValueRef::String("a"),
                ValueRef::TimestampMs(1),
                ValueRef::Null
            ]),
            Ok(())
        );
        assert_eq!(
            check(vec![ValueRef::String("a")]).unwrap_err(),
            "plugin answered a row of 1 values for 3 columns"
        );
        assert_eq!(
            check(vec![
                ValueRef::Null,
                ValueRef::TimestampMs(1),
                ValueRef::Null
            ])
            .unwrap_err(),
            "plugin answered null for non-nullable column \"id\""
        );
        assert_eq!(
            check(vec![
                ValueRef::String("a"),
                ValueRef::Int64(1),
                ValueRef::Null
            ])
            .unwrap_err(),
            "plugin answered int64 for column \"ts\", declared timestamp-ms"
        );
    }
}
