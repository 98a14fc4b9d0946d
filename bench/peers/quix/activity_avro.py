"""Decoder for lms.activity.v1 values: Avro single-object encoding of
schemas/activity_event.avsc (org.rollcall.v1.ActivityEvent).

Layout: C3 01 | 8-byte little-endian CRC-64-AVRO fingerprint of the schema's
Parsing Canonical Form | Avro binary datum. Written by hand for this one
schema (field order fixed by the .avsc); the whole datum is decoded and must
end exactly at the end of the bytes.
"""

from __future__ import annotations

import json
import os

MARKER = b"\xc3\x01"

# ActivityKind symbols, in schema order (the enum is encoded as its index).
KINDS = (
    "LOGIN", "LOGOUT", "SUBMISSION", "MESSAGE", "LIVE_JOIN", "LIVE_LEAVE",
    "CONTENT_ACCESS", "RECORDING_VIEW", "TWO_WAY_CONTACT", "CHECK_IN",
    "CHECK_OUT", "OFFLINE_WORK_RETURNED",
)
DIRECTIONS = ("FROM_STUDENT", "FROM_GUARDIAN", "FROM_STAFF")


class DecodeError(ValueError):
    pass


# --- schema fingerprint (Parsing Canonical Form + CRC-64-AVRO) -------------

_EMPTY = 0xC15D213AA4D7A795
_CRC_TABLE = []
for _i in range(256):
    _fp = _i
    for _ in range(8):
        _fp = (_fp >> 1) ^ (_EMPTY & -(_fp & 1))
    _CRC_TABLE.append(_fp)


def crc64_avro(data: bytes) -> int:
    fp = _EMPTY
    for b in data:
        fp = (fp >> 8) ^ _CRC_TABLE[(fp ^ b) & 0xFF]
    return fp


_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


def _canonical(schema, namespace: str | None, logical_as_object: bool = False) -> str:
    """Parsing Canonical Form (Avro spec), enough for records, enums, unions,
    maps, arrays, fixed and primitives.

    logical_as_object: the form the Rust apache-avro crate 0.17 (which
    rollcall uses) computes, where a primitive with a logicalType becomes
    {"type":"long"} instead of "long"; its fingerprint is what rollcall
    writes into the single-object header."""
    if isinstance(schema, str):
        if schema in _PRIMITIVES:
            return json.dumps(schema)
        full = schema if "." in schema or not namespace else f"{namespace}.{schema}"
        return json.dumps(full)
    if isinstance(schema, list):
        return "[" + ",".join(_canonical(s, namespace, logical_as_object) for s in schema) + "]"
    t = schema["type"]
    if t in _PRIMITIVES:
        if logical_as_object and "logicalType" in schema:
            return '{"type":' + json.dumps(t) + "}"
        return json.dumps(t)
    parts = []
    if t in ("record", "enum", "fixed"):
        name = schema["name"]
        ns = schema.get("namespace", namespace)
        if "." not in name and ns:
            name = f"{ns}.{name}"
        namespace = name.rsplit(".", 1)[0] if "." in name else None
        parts.append('"name":' + json.dumps(name))
    parts.append('"type":' + json.dumps(t))
    if t == "record":
        fields = ",".join(
            '{"name":' + json.dumps(f["name"]) + ',"type":' + _canonical(f["type"], namespace, logical_as_object) + "}"
            for f in schema["fields"]
        )
        parts.append('"fields":[' + fields + "]")
    if t == "enum":
        parts.append('"symbols":' + json.dumps(schema["symbols"], separators=(",", ":")))
    if t == "array":
        parts.append('"items":' + _canonical(schema["items"], namespace, logical_as_object))
    if t == "map":
        parts.append('"values":' + _canonical(schema["values"], namespace, logical_as_object))
    if t == "fixed":
        parts.append('"size":' + str(schema["size"]))
    return "{" + ",".join(parts) + "}"


def schema_fingerprints(avsc_path: str) -> tuple[bytes, ...]:
    """The 8-byte headers (little-endian CRC-64-AVRO) accepted for this
    schema: the one of the Avro specification's Parsing Canonical Form (what
    Java's SchemaNormalization computes) and the one rollcall writes (see
    _canonical)."""
    with open(avsc_path, encoding="utf-8") as f:
        schema = json.load(f)
    return tuple(
        crc64_avro(_canonical(schema, None, quirk).encode()).to_bytes(8, "little")
        for quirk in (False, True)
    )


DEFAULT_SCHEMA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "schemas", "activity_event.avsc")


# --- datum decoding ------------------------------------------------------------

def _long(buf: bytes, pos: int):
    b = buf[pos]
    pos += 1
    n = b & 0x7F
    shift = 7
    while b & 0x80:
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
    return (n >> 1) ^ -(n & 1), pos


def _string(buf: bytes, pos: int):
    n, pos = _long(buf, pos)
    end = pos + n
    return buf[pos:end].decode("utf-8"), end


def _opt(read, buf: bytes, pos: int):
    """A ["null", T] union: branch 0 is null, branch 1 is read by `read`."""
    if buf[pos] == 0:
        return None, pos + 1
    return read(buf, pos + 1)


def _opt_string(buf: bytes, pos: int):
    return _opt(_string, buf, pos)


def decode_datum(buf: bytes, pos: int = 10) -> dict:
    """The ActivityEvent starting at `pos` (after the 10-byte header)."""
    event_id, pos = _string(buf, pos)
    source, pos = _string(buf, pos)
    student_id, pos = _string(buf, pos)
    school_id, pos = _string(buf, pos)
    section_id, pos = _opt_string(buf, pos)
    staff_id, pos = _opt_string(buf, pos)
    k, pos = _long(buf, pos)
    kind = KINDS[k]
    d, pos = _opt(_long, buf, pos)
    direction = None if d is None else DIRECTIONS[d]
    occurred_at, pos = _long(buf, pos)
    assigned_date, pos = _opt(_long, buf, pos)
    live_session_id, pos = _opt_string(buf, pos)
    duration_seconds, pos = _opt(_long, buf, pos)
    attributes = {}
    while True:
        count, pos = _long(buf, pos)
        if count == 0:
            break
        if count < 0:  # a block with its byte size after the count
            count = -count
            _, pos = _long(buf, pos)
        for _ in range(count):
            key, pos = _string(buf, pos)
            attributes[key], pos = _string(buf, pos)
    # Schema version 2 (schemas/activity_event.avsc): when the gateway took it.
    received_at, pos = _opt(_long, buf, pos)
    if pos != len(buf):
        raise DecodeError(f"{len(buf) - pos} trailing bytes after the datum")
    return {
        "event_id": event_id,
        "source": source,
        "student_id": student_id,
        "school_id": school_id,
        "section_id": section_id,
        "staff_id": staff_id,
        "kind": kind,
        "direction": direction,
        "occurred_at": occurred_at,
        "assigned_date": assigned_date,
        "live_session_id": live_session_id,
        "duration_seconds": duration_seconds,
        "attributes": attributes,
        "received_at": received_at,
    }


def decode(value: bytes, fingerprints: tuple[bytes, ...]) -> dict:
    if value[:2] != MARKER:
        raise DecodeError("not Avro single-object encoding (no C3 01 marker)")
    if value[2:10] not in fingerprints:
        raise DecodeError(
            f"schema fingerprint {value[2:10].hex()} is not ActivityEvent's "
            f"({' or '.join(f.hex() for f in fingerprints)})"
        )
    try:
        return decode_datum(value, 10)
    except (IndexError, UnicodeDecodeError) as e:
        raise DecodeError(f"malformed datum: {e}") from e
