//! A table's shape from the files Lineage writes: its Iceberg schema, its
//! hidden partitioning, the field ids the files carry, and whether a new
//! plugin build's columns can evolve it.

use std::collections::HashMap;

use arrow_schema::Schema as ArrowSchema;
use iceberg::spec::{
    NestedField, NestedFieldRef, PrimitiveType, Schema, Transform, Type, UnboundPartitionSpec,
};

/// The Iceberg schema of files with this Arrow schema, ids from 1 in order.
pub fn iceberg_schema(arrow: &ArrowSchema) -> iceberg::Result<Schema> {
    iceberg::arrow::arrow_schema_to_schema_auto_assign_ids(arrow)
}

/// `hour(<event time>)`, the Iceberg counterpart of the `year=/…/hour=`
/// directories, when the event-time column is a time in the table;
/// unpartitioned otherwise (the dropped records' table).
pub fn partition_spec(
    schema: &Schema,
    event_time: Option<&str>,
) -> iceberg::Result<UnboundPartitionSpec> {
    let builder = UnboundPartitionSpec::builder();
    let Some(column) = event_time else {
        return Ok(builder.build());
    };
    let Some(field) = schema.field_by_name(column) else {
        return Ok(builder.build());
    };
    if !is_time(&field.field_type) {
        return Ok(builder.build());
    }
    Ok(builder
        .add_partition_field(field.id, format!("{column}_hour"), Transform::Hour)?
        .build())
}

pub fn is_time(t: &Type) -> bool {
    matches!(
        t,
        Type::Primitive(PrimitiveType::Timestamptz | PrimitiveType::Timestamp)
    )
}

/// Why files bucketed by `event_time` cannot go to a table partitioned
/// by `spec`: Lineage writes one event-time hour per file, so the table
/// must be partitioned by `hour()` of that very column, or not at all.
pub fn partition_problems(
    schema: &Schema,
    spec: &iceberg::spec::PartitionSpec,
    event_time: Option<&str>,
) -> Vec<String> {
    spec.fields()
        .iter()
        .filter_map(|field| {
            let source = schema.name_by_field_id(field.source_id).unwrap_or("?");
            match (field.transform, event_time) {
                (Transform::Hour, Some(column)) if column == source => None,
                (Transform::Hour, Some(column)) => Some(format!(
                    "the table is partitioned by hour({source}) and the build's event time is {column:?}"
                )),
                (Transform::Hour, None) => Some(format!(
                    "the table is partitioned by hour({source}) and the build declares no event time"
                )),
                (other, _) => Some(format!(
                    "the table is partitioned by {other}({source}); Lineage writes tables partitioned by hour(<event time>) or not at all"
                )),
            }
        })
        .collect()
}

/// Every field's id by its full name (`headers.element.key`).
pub fn field_ids(schema: &Schema) -> HashMap<String, i32> {
    let mut ids = HashMap::new();
    let mut id = 1;
    let highest = schema.highest_field_id();
    while id <= highest {
        if let Some(name) = schema.name_by_field_id(id) {
            ids.insert(name.to_string(), id);
        }
        id += 1;
    }
    ids
}

/// What a build with `wanted`'s columns needs of a table with `table`'s:
/// the columns to add (optional, so that rows written before read them as
/// null), or why it cannot be written there.
pub fn evolution(table: &Schema, wanted: &Schema) -> Result<Vec<NestedFieldRef>, Vec<String>> {
    let mut add = Vec::new();
    let mut problems = Vec::new();
    for field in wanted.as_struct().fields() {
        match table.field_by_name(&field.name) {
            None => add.push(field.clone()),
            Some(have) if have.field_type != field.field_type => problems.push(format!(
                "column {:?} is {} in the table and {} in the build",
                field.name, have.field_type, field.field_type
            )),
            Some(have) if have.required && !field.required => problems.push(format!(
                "column {:?} is required in the table and nullable in the build",
                field.name
            )),
            Some(_) => {}
        }
    }
    for have in table.as_struct().fields() {
        if have.required && wanted.field_by_name(&have.name).is_none() {
            problems.push(format!(
                "required column {:?} is not among the build's columns",
                have.name
            ));
        }
    }
    match problems.is_empty() {
        true => Ok(add
            .into_iter()
            .map(|f| NestedField::optional(0, f.name.clone(), (*f.field_type).clone()).into())
            .collect()),
        false => Err(problems),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::{DataType, Field};

    fn schema(fields: Vec<Field>) -> Schema {
        iceberg_schema(&ArrowSchema::new(fields)).unwrap()
    }

    #[test]
    fn added_columns_evolve_and_changed_ones_are_refused() {
        let table = schema(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("ts", crate::sink::table_time(), false),
            Field::new("n", DataType::Int32, true),
        ]);
        let spec = partition_spec(&table, Some("ts")).unwrap();
        assert_eq!(spec.fields().len(), 1);
        assert_eq!(spec.fields()[0].transform, Transform::Hour);
        assert_eq!(field_ids(&table)["ts"], 2);

        let more = schema(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("ts", crate::sink::table_time(), false),
            Field::new("n", DataType::Int32, true),
            Field::new("country", DataType::Utf8, false),
        ]);
        let add = evolution(&table, &more).unwrap();
        assert_eq!(add.len(), 1);
        assert!(
            !add[0].required,
            "added columns are optional: old rows hold none"
        );

        let changed = schema(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("ts", crate::sink::table_time(), false),
            Field::new("n", DataType::Int64, true),
        ]);
        let problems = evolution(&table, &changed).unwrap_err();
        assert!(
            problems[0].contains("\"n\" is int in the table and long"),
            "{problems:?}"
        );

        let dropped = schema(vec![Field::new("ts", crate::sink::table_time(), false)]);
        let problems = evolution(&table, &dropped).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("required column \"id\""),
            "{problems:?}"
        );

        let loosened = schema(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("ts", crate::sink::table_time(), false),
        ]);
        let problems = evolution(&table, &loosened).unwrap_err();
        assert!(
            problems[0].contains("required in the table and nullable"),
            "{problems:?}"
        );
    }

    #[test]
    fn a_build_must_bucket_by_the_column_the_table_is_partitioned_by() {
        let table = schema(vec![
            Field::new("ts", crate::sink::table_time(), false),
            Field::new("ts2", crate::sink::table_time(), false),
        ]);
        let spec = partition_spec(&table, Some("ts"))
            .unwrap()
            .bind(table.clone())
            .unwrap();
        assert!(partition_problems(&table, &spec, Some("ts")).is_empty());
        let other = partition_problems(&table, &spec, Some("ts2"));
        assert!(
            other[0].contains("hour(ts) and the build's event time is \"ts2\""),
            "{other:?}"
        );
        let none = partition_problems(&table, &spec, None);
        assert!(none[0].contains("declares no event time"), "{none:?}");
    }

    #[test]
    fn no_time_column_means_no_partitioning() {
        let table = schema(vec![Field::new("ts", DataType::Int64, false)]);
        assert!(
            partition_spec(&table, Some("ts"))
                .unwrap()
                .fields()
                .is_empty()
        );
        assert!(partition_spec(&table, None).unwrap().fields().is_empty());
    }
}
