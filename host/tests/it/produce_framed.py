"""Produces Confluent-framed Avro records with Confluent's own client, for
the tests: confluent-kafka's AvroSerializer registers InputEvent v1 and v2
(v2 adds `session`, with a default) under `<topic>-value` and frames each
value. v1 and v2 interleave in runs of three, as during a rolling deploy of
producers; a share of the records are framed wrong on purpose, or name a
schema id the registry does not have, or carry a uuid the plugin refuses.

Prints one JSON line per record once Kafka has acknowledged it:
  {"n", "partition", "offset", "kind", "uuid", "timestamp", "schema_id"}
with kind one of v1, v2, bad-uuid (all framed by the serializer), and
bad-magic, short, unknown-id (raw bytes).

Usage: produce_framed.py BOOTSTRAP TOPIC REGISTRY_URL START COUNT PARTITIONS [--valid-only]
(SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO, when set, authenticates to the registry.)
"""

import json
import os
import struct
import sys

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

V1 = json.dumps({
    "type": "record", "name": "InputEvent", "namespace": "com.lineage",
    "fields": [{"name": "uuid", "type": "string"}, {"name": "timestamp", "type": "long"}],
})
V2 = json.dumps({
    "type": "record", "name": "InputEvent", "namespace": "com.lineage",
    "fields": [
        {"name": "uuid", "type": "string"},
        {"name": "session", "type": "string", "default": ""},
        {"name": "timestamp", "type": "long"},
    ],
})
# 2024-11-25T16:00:00Z: every record falls in one hour.
BASE_MS = 1_732_550_400_000
UNKNOWN_ID = 9999


def kind_of(n, valid_only):
    if not valid_only:
        if n % 11 == 3:
            return "bad-magic"
        if n % 13 == 5:
            return "short"
        if n % 17 == 7:
            return "unknown-id"
        if n % 19 == 9:
            return "bad-uuid"
    return "v1" if (n // 3) % 2 == 0 else "v2"


def main():
    bootstrap, topic, registry, start, count, partitions = sys.argv[1:7]
    start, count, partitions = int(start), int(count), int(partitions)
    valid_only = "--valid-only" in sys.argv
    conf = {"url": registry}
    if os.environ.get("SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO"):
        conf["basic.auth.user.info"] = os.environ["SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO"]
    client = SchemaRegistryClient(conf)
    serializers = {
        v: AvroSerializer(client, schema, conf={"auto.register.schemas": True})
        for v, schema in (("v1", V1), ("v2", V2))
    }
    producer = Producer({"bootstrap.servers": bootstrap, "batch.num.messages": 1, "acks": "all"})
    context = SerializationContext(topic, MessageField.VALUE)
    out = []

    def delivered(record):
        def report(err, msg):
            if err is not None:
                raise SystemExit(f"record {record['n']}: {err}")
            record["offset"] = msg.offset()
            out.append(record)
        return report

    for n in range(start, start + count):
        kind = kind_of(n, valid_only)
        uuid = f"not-a-uuid-{n}" if kind == "bad-uuid" else f"00000000-0000-4000-8000-{n:012x}"
        ts = BASE_MS + n * 10
        record = {"n": n, "partition": n % partitions, "kind": kind, "uuid": uuid,
                  "timestamp": ts, "schema_id": None}
        if kind in ("v1", "v2", "bad-uuid"):
            version = "v2" if kind == "v2" else "v1"
            fields = {"uuid": uuid, "timestamp": ts}
            if version == "v2":
                fields["session"] = f"s-{n % 7}"
            value = serializers[version](fields, context)
            record["schema_id"] = struct.unpack(">I", value[1:5])[0]
        elif kind == "bad-magic":
            value = b"\x48" + f"bare datum {n}".encode()
        elif kind == "short":
            value = b"\x00\x00\x01"
        else:
            value = b"\x00" + struct.pack(">I", UNKNOWN_ID) + b"\x02\x02"
            record["schema_id"] = UNKNOWN_ID
        producer.produce(topic, value=value, partition=record["partition"], on_delivery=delivered(record))
        producer.poll(0)
    if producer.flush(60) != 0:
        raise SystemExit("not every record was acknowledged")
    for record in sorted(out, key=lambda r: r["n"]):
        print(json.dumps(record))


if __name__ == "__main__":
    main()
