"""An independent reader of Lineage's output, for the tests.

Reads the data and dropped Parquet files with pyarrow (as users do), and the
write-ahead commit log's views (chk-*/subtask-*.csv) with the csv module,
from local directories or from s3:// URLs (pyarrow's own S3 client, with
the endpoint and keys from the AWS_* environment), and prints one JSON
document:

  data:      [[partition, offset, uuid, timestamp, checkpoint_id, file], ...]
             (uuid is "user_key:<key>" for files of the pseudonymize plugin)
  dropped:   [[partition, offset, reason, checkpoint_id, file, plugin_sha256], ...]
  visible:   every .parquet file under the two outputs, as a URL or path
  committed: {file: checkpoint_id} for every data/dropped file the commit
             log lists
  plugins:   {file: plugin_sha256} from the same rows
  schema_ids: {"partition@offset": schema_id} of every row that has a
             schema_id column (framed input), data and dropped
  file_schema_ids: {file: [schema ids]} as the commit log lists them
  duckdb_rows: the data row count as DuckDB counts it

Usage: read_output.py OUTPUT DROPPED COMMIT_LOG
"""

import csv
import io
import json
import os
import re
import sys

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs


def open_root(url):
    """(filesystem, base path inside it, prefix that makes a path a URL)."""
    if url.startswith("s3://"):
        endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT")
        scheme, host = (endpoint.split("://", 1) if endpoint else ("https", None))
        s3 = fs.S3FileSystem(
            access_key=os.environ.get("AWS_ACCESS_KEY_ID"),
            secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY"),
            region=os.environ.get("AWS_REGION", "us-east-1"),
            endpoint_override=host,
            scheme=scheme,
        )
        return s3, url[len("s3://"):].rstrip("/"), "s3://"
    return fs.LocalFileSystem(), os.path.abspath(url), ""


def parquet_files(url):
    filesystem, base, scheme = open_root(url)
    selector = fs.FileSelector(base, recursive=True, allow_not_found=True)
    files = []
    for info in filesystem.get_file_info(selector):
        relative = info.path[len(base):].strip("/").split("/")
        # Hidden directories (staging) are what readers skip.
        if any(part.startswith((".", "_")) for part in relative[:-1]):
            continue
        if info.type == fs.FileType.File and info.path.endswith(".parquet"):
            files.append((filesystem, info.path, scheme + info.path))
    return sorted(files, key=lambda f: f[2])


def epoch_ms(table):
    """The event time as epoch milliseconds: files for an Iceberg table
    store it as a timestamp (microseconds), as Iceberg wants."""
    i = table.schema.get_field_index("timestamp")
    if i >= 0 and pa.types.is_timestamp(table.schema.field(i).type):
        ms = table.column(i).cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64())
        table = table.set_column(i, "timestamp", ms)
    return table


def main(output, dropped, wal):
    doc = {"data": [], "dropped": [], "visible": [], "committed": {}, "plugins": {},
           "schema_ids": {}, "file_schema_ids": {}}
    tables = []
    for filesystem, path, name in parquet_files(output):
        doc["visible"].append(name)
        table = epoch_ms(pq.read_table(path, filesystem=filesystem, partitioning=None))
        tables.append(table)
        t = table.to_pydict()
        for i in range(len(t["kafka_offset"])):
            doc["data"].append([
                t["kafka_partition"][i],
                t["kafka_offset"][i],
                t["uuid"][i] if "uuid" in t else "user_key:" + t["user_key"][i],
                t["timestamp"][i],
                t["checkpoint_id"][i],
                name,
            ])
            if t.get("schema_id", [None] * (i + 1))[i] is not None:
                doc["schema_ids"][f"{t['kafka_partition'][i]}@{t['kafka_offset'][i]}"] = t["schema_id"][i]
    for filesystem, path, name in parquet_files(dropped):
        doc["visible"].append(name)
        t = pq.read_table(path, filesystem=filesystem, partitioning=None).to_pydict()
        for i in range(len(t["kafka_offset"])):
            doc["dropped"].append([
                t["kafka_partition"][i],
                t["kafka_offset"][i],
                t["reason"][i],
                t["checkpoint_id"][i],
                name,
                t["plugin_sha256"][i],
            ])
            if t.get("schema_id", [None] * (i + 1))[i] is not None:
                doc["schema_ids"][f"{t['kafka_partition'][i]}@{t['kafka_offset'][i]}"] = t["schema_id"][i]
    filesystem, base, _ = open_root(wal)
    views = [
        info.path
        for info in filesystem.get_file_info(fs.FileSelector(base, recursive=True, allow_not_found=True))
        if re.search(r"/chk-\d+/subtask-\d+\.csv$", info.path)
    ]
    for view in sorted(views):
        with filesystem.open_input_stream(view) as f:
            text = f.read().decode()
        for row in csv.DictReader(io.StringIO(text, newline="")):
            if row["kind"] in ("data", "dropped"):
                if row["s3_key"] in doc["committed"]:
                    raise SystemExit(f"{row['s3_key']} is committed twice")
                doc["committed"][row["s3_key"]] = int(row["checkpoint_id"])
                doc["plugins"][row["s3_key"]] = row["plugin_sha256"]
                ids = row.get("schema_ids") or ""
                doc["file_schema_ids"][row["s3_key"]] = [int(i) for i in ids.split(";") if i]
    if not doc["data"]:
        doc["duckdb_rows"] = 0
    elif output.startswith("s3://"):
        # DuckDB's S3 support is an extension downloaded at run time; over
        # the tables pyarrow fetched it counts the same rows.
        data = pa.concat_tables(tables, promote_options="permissive")
        doc["duckdb_rows"] = duckdb.sql("select count(*) from data").fetchall()[0][0]
    else:
        pattern = os.path.join(os.path.abspath(output), "**", "*.parquet")
        doc["duckdb_rows"] = duckdb.sql(
            f"select count(*) from read_parquet('{pattern}', hive_partitioning = true, union_by_name = true)"
        ).fetchall()[0][0]
    json.dump(doc, sys.stdout)


if __name__ == "__main__":
    main(*sys.argv[1:4])
