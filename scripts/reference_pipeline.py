"""The Python reference pipeline: the job `lineage run` does, the way a data
engineer would write it in Python, for the README's performance table.

confluent-kafka reads the topic, fastavro decodes each value as the seed's
InputEvent, the same validation as the default plugin keeps or drops it
(a uuid, epoch milliseconds between 2000 and 2100), the Kafka metadata is
added, and pyarrow writes zstd Parquet files per event-time hour (kept rows)
and for the dropped records; offsets are committed once the files are
written. It has no exactly-once, no lineage and no sandbox: it is the floor
of what the job costs in Python.

Usage: reference_pipeline.py BOOTSTRAP TOPIC RECORDS OUT_DIR
Prints records/s and peak RSS.
"""

import io
import os
import resource
import sys
import time
import uuid as uuidlib
from collections import defaultdict

import fastavro
import pyarrow as pa
import pyarrow.parquet as pq
from confluent_kafka import Consumer, KafkaException

SCHEMA = fastavro.parse_schema(
    {
        "type": "record",
        "name": "InputEvent",
        "namespace": "com.lineage",
        "fields": [
            {"name": "uuid", "type": "string"},
            {"name": "timestamp", "type": "long"},
        ],
    }
)
PLAUSIBLE_MS = range(946_684_800_000, 4_102_444_800_000)
FLUSH_ROWS = 100_000


def enrich(value):
    """(uuid, timestamp) of a valid record; raises ValueError otherwise."""
    if value is None:
        raise ValueError("tombstone: the record has no value")
    event = fastavro.schemaless_reader(io.BytesIO(value), SCHEMA, None)
    uuidlib.UUID(event["uuid"])
    if event["timestamp"] not in PLAUSIBLE_MS:
        raise ValueError(f"timestamp {event['timestamp']} is not epoch milliseconds")
    return event["uuid"], event["timestamp"]


class Output:
    def __init__(self, root):
        self.root = root
        self.hours = defaultdict(lambda: defaultdict(list))
        self.dropped = defaultdict(list)
        self.rows = 0
        self.files = 0

    def keep(self, uuid, ts, topic, partition, offset):
        rows = self.hours[ts // 3_600_000]
        for name, v in (
            ("uuid", uuid),
            ("timestamp", ts),
            ("kafka_topic", topic),
            ("kafka_partition", partition),
            ("kafka_offset", offset),
        ):
            rows[name].append(v)
        self.count()

    def drop(self, msg, reason):
        d = self.dropped
        d["kafka_topic"].append(msg.topic())
        d["kafka_partition"].append(msg.partition())
        d["kafka_offset"].append(msg.offset())
        d["value"].append(msg.value())
        d["reason"].append(reason)
        self.count()

    def count(self):
        self.rows += 1
        if self.rows >= FLUSH_ROWS:
            self.flush()

    def flush(self):
        for hour, rows in self.hours.items():
            self.write(f"hour={hour}", rows)
        if self.dropped:
            self.write("dropped", self.dropped)
        self.hours.clear()
        self.dropped = defaultdict(list)
        self.rows = 0

    def write(self, folder, columns):
        os.makedirs(os.path.join(self.root, folder), exist_ok=True)
        path = os.path.join(self.root, folder, f"part-{self.files:06d}.parquet")
        pq.write_table(pa.table(columns), path, compression="zstd")
        self.files += 1


def main():
    bootstrap, topic, records, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reference-{os.getpid()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    output = Output(out)
    seen, started = 0, None
    while seen < records:
        for msg in consumer.consume(num_messages=10_000, timeout=1.0):
            if msg.error():
                raise KafkaException(msg.error())
            started = started or time.monotonic()
            seen += 1
            try:
                uuid, ts = enrich(msg.value())
            except (ValueError, EOFError, StopIteration, UnicodeDecodeError) as e:
                output.drop(msg, f"invalid: {e}")
                continue
            output.keep(uuid, ts, msg.topic(), msg.partition(), msg.offset())
    output.flush()
    consumer.commit(asynchronous=False)
    elapsed = time.monotonic() - started
    consumer.close()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"python reference pipeline   {seen / elapsed:>12.0f} records/s   {seen} records, {output.files} files, peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
