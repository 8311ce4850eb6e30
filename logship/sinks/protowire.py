"""Protobuf wire-format pieces for hand-written encoders and the small decoders of responses.

The official generated classes cost microseconds per message; a sink that sends
a million records per CPU-second cannot build a message per record. These helpers
write and read the few wire types the sinks need (varint, length-delimited,
fixed64), so an encoder can cache whole field headers and join bytes.
"""

from __future__ import annotations

from collections.abc import Iterator

WT_VARINT = 0
WT_FIXED64 = 1
WT_LEN = 2
WT_FIXED32 = 5


class WireError(ValueError):
    """The bytes are not a valid protobuf message."""


def varint(value: int) -> bytes:
    """Unsigned varint; negative int64 values must be passed as ``value & (2**64 - 1)``."""
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def tag(field_number: int, wire_type: int) -> bytes:
    return varint(field_number << 3 | wire_type)


def len_field(field_number: int, payload: bytes) -> bytes:
    """A length-delimited field (string, bytes or embedded message)."""
    return tag(field_number, WT_LEN) + varint(len(payload)) + payload


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise WireError("truncated or overlong varint")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def iter_fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of each field; varints as int, the rest as bytes."""
    pos = 0
    n = len(data)
    while pos < n:
        key, pos = read_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0")
        value: int | bytes
        if wire_type == WT_VARINT:
            value, pos = read_varint(data, pos)
        elif wire_type == WT_FIXED64:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire_type == WT_FIXED32:
            value, pos = data[pos : pos + 4], pos + 4
        elif wire_type == WT_LEN:
            size, pos = read_varint(data, pos)
            value, pos = data[pos : pos + size], pos + size
        else:
            raise WireError(f"unsupported wire type {wire_type}")
        if pos > n:
            raise WireError("truncated field")
        yield number, wire_type, value
