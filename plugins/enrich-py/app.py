"""The seed's EnrichFunction in Python: the same contract and the same
outcomes as the Rust `enrich` plugin, built into a component with
componentize-py (scripts/build-plugins.sh).

The input is one Avro record, {uuid: string, timestamp: long}; Avro's
binary encoding of it is two zigzag varints and the string's bytes, decoded
here by hand so that the component needs nothing beyond the standard
library. A framed value (INPUT_FORMAT=confluent) is read with its writer
schema, asked of the host once per schema id, by the same resolution rules
as the Rust plugin: fields InputEvent lacks are skipped, int promotes to
long, and a writer schema InputEvent cannot read drops its records with the
field and the id.
"""

import json
import struct
import uuid as uuidlib

import wit_world
from wit_world.imports import schemas, types
from wit_world.imports.types import (
    Answer,
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


PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


def read_bytes(data: bytes, pos: int) -> tuple[bytes, int]:
    length, pos = read_long(data, pos)
    if length < 0 or pos + length > len(data):
        raise Drop(f"avro: bad length {length} at byte {pos}")
    return data[pos : pos + length], pos + length


def read_as(schema, data: bytes, pos: int, names: dict):
    """One datum of `schema` (parsed JSON) at `pos`: (value, next pos)."""
    if isinstance(schema, str):
        schema = names.get(schema, schema)
    if isinstance(schema, list):
        branch, pos = read_long(data, pos)
        if not 0 <= branch < len(schema):
            raise Drop(f"avro: union branch {branch} out of range at byte {pos}")
        return read_as(schema[branch], data, pos, names)
    kind = schema if isinstance(schema, str) else schema["type"]
    if kind == "null":
        return None, pos
    if kind == "boolean":
        if pos >= len(data):
            raise Drop(f"avro: unexpected end of input at byte {len(data)}")
        return data[pos] == 1, pos + 1
    if kind in ("int", "long", "enum"):
        return read_long(data, pos)
    if kind in ("float", "double"):
        size = 4 if kind == "float" else 8
        if pos + size > len(data):
            raise Drop(f"avro: unexpected end of input at byte {len(data)}")
        return struct.unpack("<f" if size == 4 else "<d", data[pos : pos + size])[0], pos + size
    if kind in ("bytes", "string"):
        raw, pos = read_bytes(data, pos)
        if kind == "bytes":
            return raw, pos
        try:
            return raw.decode("utf-8"), pos
        except UnicodeDecodeError as e:
            raise Drop(f"avro: string is not UTF-8 ({e.reason})")
    if kind == "fixed":
        return data[pos : pos + schema["size"]], pos + schema["size"]
    if kind == "record":
        out = {}
        for field in schema["fields"]:
            out[field["name"]], pos = read_as(field["type"], data, pos, names)
        return out, pos
    if kind in ("array", "map"):
        items = []
        while True:
            count, pos = read_long(data, pos)
            if count == 0:
                return items, pos
            if count < 0:
                _, pos = read_long(data, pos)
                count = -count
            for _ in range(count):
                if kind == "map":
                    _, pos = read_bytes(data, pos)
                item, pos = read_as(schema["items" if kind == "array" else "values"], data, pos, names)
                items.append(item)
    raise Drop(f"avro: unsupported type {kind!r}")


def named(schema, names: dict) -> None:
    """Every named type of `schema`, by name, for references to it."""
    if isinstance(schema, list):
        for s in schema:
            named(s, names)
    elif isinstance(schema, dict):
        if schema.get("type") in ("record", "enum", "fixed"):
            names[schema["name"]] = schema
            if "namespace" in schema:
                names[f"{schema['namespace']}.{schema['name']}"] = schema
        for field in schema.get("fields", []):
            named(field["type"], names)
        for key in ("items", "values"):
            if key in schema:
                named(schema[key], names)


def readable(schema):
    """Why InputEvent cannot read what `schema` wrote, or None."""
    if not isinstance(schema, dict) or schema.get("type") != "record":
        return "the writer schema is not a record"
    if schema["name"].split(".")[-1] != "InputEvent":
        return f"the writer's record is named {schema['name']!r}, not InputEvent"
    fields = {}
    for f in schema["fields"]:
        t = f["type"]
        fields[f["name"]] = t.get("type") if isinstance(t, dict) else t
    for name, readable_as in (("uuid", ("string", "bytes")), ("timestamp", ("int", "long"))):
        if name not in fields:
            return f"field '{name}' is not in the writer schema, and InputEvent gives it no default"
        if fields[name] not in readable_as:
            return f"field '{name}': a {fields[name]!r} cannot be read as {readable_as[0] if name == 'uuid' else 'long'!r}"
    return None


class Writer:
    """A writer schema InputEvent can read, or the reason it cannot."""

    def __init__(self, schema_id: int, text):
        self.schema, self.names, self.problem = None, {}, None
        prefix = f"schema id {schema_id}: "
        if text is None:
            self.problem = prefix + "the host has no writer schema for it"
            return
        try:
            schema = json.loads(text)
        except ValueError as e:
            self.problem = prefix + f"the writer schema does not parse: {e}"
            return
        cannot = prefix + "com.lineage.InputEvent cannot read what it wrote: "
        try:
            self.problem = readable(schema)
        except (KeyError, TypeError, AttributeError) as e:
            self.problem = prefix + f"the writer schema is not a valid Avro schema: {e!r}"
        if self.problem:
            self.problem = cannot + self.problem if not self.problem.startswith(prefix) else self.problem
            return
        self.schema = schema
        named(schema, self.names)

    def decode(self, data: bytes) -> tuple[str, int]:
        if self.problem:
            raise Drop(self.problem)
        try:
            record, pos = read_as(self.schema, data, 0, self.names)
        except (KeyError, TypeError, IndexError) as e:
            raise Drop(f"avro: the writer schema does not describe this value: {e!r}")
        if pos != len(data):
            raise Drop(
                f"avro: {len(data) - pos} unexpected bytes after the record, which ends at byte {pos}"
            )
        uuid = record["uuid"]
        if isinstance(uuid, bytes):
            try:
                uuid = uuid.decode("utf-8")
            except UnicodeDecodeError as e:
                raise Drop(f"avro: string is not UTF-8 ({e.reason})")
        return uuid, record["timestamp"]


WRITERS: dict[int, Writer] = {}


def writer(schema_id: int) -> Writer:
    if schema_id not in WRITERS:
        WRITERS[schema_id] = Writer(schema_id, schemas.writer_schema(schema_id))
    return WRITERS[schema_id]


def canonical_uuid(s: str) -> bool:
    return (
        len(s) == 36
        and all(s[i] == "-" for i in (8, 13, 18, 23))
        and all(c in HEX for i, c in enumerate(s) if i not in (8, 13, 18, 23))
    )


def enrich(value, schema_id=None) -> tuple[str, int]:
    if value is None:
        raise Drop("empty value (tombstone)")
    if len(value) == 0:
        raise Drop("empty value")
    uuid, timestamp = decode(value) if schema_id is None else writer(schema_id).decode(value)
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

    def process(self, batch: types.Batch) -> Answer:
        data = batch.data
        outcomes, values = [], []
        keep = Outcome_Keep(len(COLUMNS))
        for r in batch.records:
            value = None if r.value is None else data[r.value.start : r.value.start + r.value.len]
            try:
                uuid, timestamp = enrich(value, r.schema_id)
            except Drop as e:
                outcomes.append(Outcome_Drop(str(e)))
                continue
            outcomes.append(keep)
            values += [
                Value_String(uuid),
                Value_Int64(timestamp),
                Value_String(batch.topic),
                Value_Int32(batch.partition),
                Value_Int64(r.offset),
            ]
        return Answer(outcomes, values)
