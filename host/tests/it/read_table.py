"""An independent reader of the Iceberg tables Lineage appends to, for the
tests: pyiceberg's SqlCatalog on the same sqlite catalog file, and DuckDB's
iceberg extension over the table's current metadata. Prints one JSON
document per table (the data table, then `<table>_dropped`):

  rows:        the row count pyiceberg's scan reads
  duckdb_rows: the row count DuckDB's iceberg_scan reads (local tables)
  files:       the live data files, as the manifests list them (a file
               listed twice appears twice)
  added:       {snapshot id: [files that snapshot added]}
  snapshots:   [{id, parent, summary}] in the order of the metadata
  fields:      {column: field id} of the current schema
  spec:        [[source column, transform]] of the partition spec
  partitions:  {file: partition tuple}
  metrics:     {file: {record_count, file_size_in_bytes, columns: {column:
               {value_count, null_value_count, lower_bound, upper_bound}}}}
               as the manifests register them
  column:      with --column NAME: [[kafka_partition, kafka_offset, value, uuid]]
               for every data row, the value of NAME (None where null)

Usage: read_table.py CATALOG_URI WAREHOUSE NAMESPACE.TABLE [--column NAME]
"""

import json
import os
import sys

import duckdb
from pyiceberg.catalog.sql import SqlCatalog


def s3_properties():
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        return {}
    return {
        "s3.endpoint": endpoint,
        "s3.access-key-id": os.environ.get("AWS_ACCESS_KEY_ID", ""),
        "s3.secret-access-key": os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
        "s3.region": os.environ.get("AWS_REGION", "us-east-1"),
    }


def describe(catalog, name, column):
    table = catalog.load_table(name)
    meta = table.metadata
    doc = {"snapshots": [], "added": {}, "files": [], "partitions": {}}
    for s in meta.snapshots:
        summary = {k: v for k, v in s.summary.additional_properties.items()}
        summary["operation"] = str(s.summary.operation.value)
        doc["snapshots"].append({"id": s.snapshot_id, "parent": s.parent_snapshot_id, "summary": summary})
    if meta.current_snapshot() is not None:
        entries = table.inspect.entries().to_pylist()
        for e in entries:
            path = e["data_file"]["file_path"]
            if e["status"] == 1:
                doc["added"].setdefault(str(e["snapshot_id"]), []).append(path)
        for f in table.inspect.files().to_pylist():
            doc["files"].append(f["file_path"])
            doc["partitions"][f["file_path"]] = {k: v for k, v in (f["partition"] or {}).items()}
            readable = f.get("readable_metrics") or {}
            doc.setdefault("metrics", {})[f["file_path"]] = {
                "record_count": f["record_count"],
                "file_size_in_bytes": f["file_size_in_bytes"],
                "columns": {
                    name: {k: m.get(k) for k in ("value_count", "null_value_count", "lower_bound", "upper_bound")}
                    for name, m in readable.items() if m is not None
                },
            }
    schema = table.schema()
    doc["fields"] = {f.name: f.field_id for f in schema.fields}
    doc["spec"] = [[schema.find_field(p.source_id).name, str(p.transform)] for p in table.spec().fields]
    scan = table.scan().to_arrow()
    doc["rows"] = scan.num_rows
    if column is not None and column in scan.column_names:
        doc["column"] = [list(r) for r in zip(
            scan.column("kafka_partition").to_pylist(),
            scan.column("kafka_offset").to_pylist(),
            scan.column(column).to_pylist(),
            scan.column("uuid").to_pylist(),
        )]
    location = table.metadata_location
    if location.startswith("s3://") or meta.current_snapshot() is None:
        doc["duckdb_rows"] = doc["rows"] if meta.current_snapshot() is not None else 0
    else:
        from duckdb_extensions import import_extension

        for extension in ("avro", "iceberg"):
            import_extension(extension)
        con = duckdb.connect()
        con.execute("LOAD iceberg")
        doc["duckdb_rows"] = con.execute(f"select count(*) from iceberg_scan('{location}')").fetchall()[0][0]
    return doc


def main(uri, warehouse, name, *rest):
    column = rest[1] if len(rest) >= 2 and rest[0] == "--column" else None
    catalog = SqlCatalog("lineage", uri=uri, warehouse=warehouse, **s3_properties())
    out = {
        "data": describe(catalog, name, column),
        "dropped": describe(catalog, name + "_dropped", None),
    }
    json.dump(out, sys.stdout, default=str)


if __name__ == "__main__":
    main(*sys.argv[1:])
