"""The seed's EnrichFunction in Python: the same contract and the same
outcomes as the Rust `enrich` plugin, built into a component with
componentize-py (scripts/build-plugins.sh).

The input is one Avro record, {uuid: string, timestamp: long}; Avro's
binary encoding of it is two zigzag varints and the string's bytes, decoded
here by hand so that the component needs nothing beyond the standard
library.
"""

import uuid as uuidlib

import wit_world
from wit_world.imports import types
from wit_world.imports.types import (
    Column,
    ColumnType,
    Outcome_Drop,
    Outcome_Keep,
    PluginInfo,
    Value_Int32,
    Value_Int64,
    Value_String,
)

NAME = "enrich-py"
VERSION = "0.1.0"

INPUT_SCHEMA = """{
  "type": "record",
  "name": "InputEvent",
  "namespace": "com.lineage",
  "fields": [
    {"name": "uuid", "type": "string"},
    {"name": "timestamp", "type": "long"}
  ]
}
"""

# Epoch milliseconds between 2000-01-01 and 2100-01-01; anything else is
# seconds, microseconds or garbage.
PLAUSIBLE_MS = range(946_684_800_000, 4_102_444_800_000)

COLUMNS = [
    Column("uuid", ColumnType.STRING, False),
    Column("timestamp", ColumnType.INT64, False),
    Column("kafka_topic", ColumnType.STRING, False),
    Column("kafka_partition", ColumnType.INT32, False),
    Column("kafka_offset", ColumnType.INT64, False),
]

HEX = set("0123456789abcdefABCDEF")


class Drop(Exception):
    pass


def read_long(data: bytes, pos: int) -> tuple[int, int]:
    """An Avro long: a zigzag varint of at most 10 bytes."""
    start, shift, n = pos, 0, 0
    while True:
        if pos >= len(data):
            raise Drop(f"avro: unexpected end of input at byte {len(data)}")
        b = data[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            break
        shift += 7
        if shift >= 70:
            raise Drop(f"avro: integer at byte {start} is longer than 10 bytes")
    return (n >> 1) ^ -(n & 1), pos


def decode(data: bytes) -> tuple[str, int]:
    length, pos = read_long(data, 0)
    if length < 0:
        raise Drop(f"avro: negative string length {length} at byte 0")
    if pos + length > len(data):
        raise Drop(f"avro: unexpected end of input at byte {len(data)}")
    try:
        uuid = data[pos : pos + length].decode("utf-8")
    except UnicodeDecodeError as e:
        raise Drop(f"avro: string is not UTF-8 ({e.reason}) at byte {pos + e.start}")
    pos += length
    timestamp, pos = read_long(data, pos)
    if pos != len(data):
        raise Drop(
            f"avro: {len(data) - pos} unexpected bytes after the record, which ends at byte {pos}"
        )
    return uuid, timestamp


def canonical_uuid(s: str) -> bool:
    return (
        len(s) == 36
        and all(s[i] == "-" for i in (8, 13, 18, 23))
        and all(c in HEX for i, c in enumerate(s) if i not in (8, 13, 18, 23))
    )


def enrich(value) -> tuple[str, int]:
    if value is None:
        raise Drop("empty value (tombstone)")
    if len(value) == 0:
        raise Drop("empty value")
    uuid, timestamp = decode(value)
    if not canonical_uuid(uuid):
        try:
            uuidlib.UUID(uuid)
        except ValueError as e:
            raise Drop(f"uuid: {e} in {uuid[:64]!r}")
    if timestamp not in PLAUSIBLE_MS:
        raise Drop(f"timestamp: {timestamp} is not epoch milliseconds between 2000 and 2100")
    return uuid, timestamp


class WitWorld(wit_world.WitWorld):
    def describe(self) -> PluginInfo:
        return PluginInfo(NAME, VERSION, COLUMNS, "timestamp", INPUT_SCHEMA)

    def process(self, records: list[types.KafkaRecord]) -> list[types.Outcome]:
        out = []
        for r in records:
            try:
                uuid, timestamp = enrich(r.value)
            except Drop as e:
                out.append(Outcome_Drop(str(e)))
                continue
            out.append(
                Outcome_Keep(
                    [
                        Value_String(uuid),
                        Value_Int64(timestamp),
                        Value_String(r.topic),
                        Value_Int32(r.partition),
                        Value_Int64(r.offset),
                    ]
                )
            )
        return out
