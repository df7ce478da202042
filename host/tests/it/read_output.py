"""An independent reader of Lineage's output, for the tests.

Reads the data and dropped Parquet files with pyarrow (as users do), and the
write-ahead commit log's views (chk-*/subtask-*.csv) with the csv module,
and prints one JSON document:

  data:      [[partition, offset, uuid, timestamp, checkpoint_id, file], ...]
  dropped:   [[partition, offset, reason, checkpoint_id, file], ...]
  visible:   every .parquet file under the two outputs
  committed: {file: checkpoint_id} for every data/dropped file the commit
             log lists
  duckdb_rows: the data row count as DuckDB counts it

Usage: read_output.py OUTPUT_DIR DROPPED_DIR COMMIT_LOG_DIR
"""

import csv
import glob
import json
import os
import sys

import duckdb
import pyarrow.parquet as pq


def parquet_files(root):
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        # Hidden directories (staging) are what readers skip.
        dirnames[:] = [d for d in dirnames if not d.startswith((".", "_"))]
        files += [os.path.join(dirpath, f) for f in filenames if f.endswith(".parquet")]
    return sorted(files)


def main(output, dropped, wal):
    doc = {"data": [], "dropped": [], "visible": [], "committed": {}}
    for path in parquet_files(output):
        doc["visible"].append(path)
        t = pq.read_table(path, partitioning=None).to_pydict()
        for i in range(len(t["kafka_offset"])):
            doc["data"].append([
                t["kafka_partition"][i],
                t["kafka_offset"][i],
                t["uuid"][i],
                t["timestamp"][i],
                t["checkpoint_id"][i],
                path,
            ])
    for path in parquet_files(dropped):
        doc["visible"].append(path)
        t = pq.read_table(path, partitioning=None).to_pydict()
        for i in range(len(t["kafka_offset"])):
            doc["dropped"].append([
                t["kafka_partition"][i],
                t["kafka_offset"][i],
                t["reason"][i],
                t["checkpoint_id"][i],
                path,
            ])
    for view in sorted(glob.glob(os.path.join(wal, "chk-*", "subtask-*.csv"))):
        with open(view, newline="") as f:
            for row in csv.DictReader(f):
                if row["kind"] in ("data", "dropped"):
                    if row["s3_key"] in doc["committed"]:
                        raise SystemExit(f"{row['s3_key']} is committed twice")
                    doc["committed"][row["s3_key"]] = int(row["checkpoint_id"])
    if doc["data"]:
        pattern = os.path.join(output, "**", "*.parquet")
        doc["duckdb_rows"] = duckdb.sql(
            f"select count(*) from read_parquet('{pattern}', hive_partitioning = true)"
        ).fetchall()[0][0]
    else:
        doc["duckdb_rows"] = 0
    json.dump(doc, sys.stdout)


if __name__ == "__main__":
    main(*sys.argv[1:4])
