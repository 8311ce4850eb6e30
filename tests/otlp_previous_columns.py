"""``logship/sinks/otlp_columns.py`` before the CPU work of 2026-11-29 (afternoon), frozen
as the oracle's column decoder (see ``otlp_previous_encoder.py``).

A batch of JSON lines that share one key set, parsed into typed columns by one C call.

Parsing every line into a dict is the largest single cost of the OTLP sink: a dict,
its keys and its values for each line, built and freed again. Lines from one logger
carry the same keys with the same JSON types on every line, so for such a batch
msgspec decodes the whole batch (the lines joined into one JSON array) into a
``Struct`` made for that key set: no dicts, and the checks the encoder needs (every
``msg`` a string, every ``status`` an int64) run in C during the parse.

The records must come out exactly as the dict path (``Batch.objects``, orjson) makes
them, so a batch takes this path only when both parsers read it the same way, and
any doubt sends it back (:meth:`ColumnDecoder.columns` returns None):

- every line is a JSON object with exactly the first line's keys (unknown keys are
  an error, every key is required; a repeated key keeps its last value, as in orjson);
- each value has the JSON type of the first line's value for that key: a string, a
  boolean, null, an integer within int64, or a float;
- integers beyond int64 are left out: orjson reads those beyond 64 bits as floats,
  msgspec as exact integers; floats are checked after the parse, because msgspec
  would turn an integer into a float where a float is expected;
- nested objects and arrays are left out (their numbers could differ the same way).

A line that is not valid JSON fails both parsers (invalid UTF-8, lone surrogates,
``NaN``, control characters), so the dict path still finds and counts it. Key order
inside a line is not kept: every line of the batch gets the first line's order, which
only changes the order of a record's attributes (a map in OTLP).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Annotated, Any

import msgspec
import orjson

_INT64 = Annotated[int, msgspec.Meta(ge=-(1 << 63), le=(1 << 63) - 1)]
_TYPES: dict[type, Any] = {str: str, bool: bool, int: _INT64, float: Any, type(None): None}
_MAX_SHAPES = 1_000

Columns = tuple[tuple[str, ...], tuple[type, ...], list[Sequence[Any]]]


class _Shape:
    """The decoder for one key set with one type per key."""

    __slots__ = ("decode", "floats", "keys", "kinds")

    def __init__(self, keys: tuple[str, ...], kinds: tuple[type, ...]) -> None:
        self.keys = keys
        self.kinds = kinds
        names = [f"f{i}" for i in range(len(keys))]
        struct = msgspec.defstruct(
            "Line",
            [(name, _TYPES[kind]) for name, kind in zip(names, kinds, strict=True)],
            rename=dict(zip(names, keys, strict=True)),
            forbid_unknown_fields=True,
            gc=False,  # holds only scalars: no cycles, and cheaper to create and free
        )
        self.decode = msgspec.json.Decoder(list[struct]).decode  # type: ignore[valid-type]
        self.floats = [i for i, kind in enumerate(kinds) if kind is float]


class ColumnDecoder:
    """Finds each batch's shape from its first line and keeps a decoder per shape."""

    def __init__(self) -> None:
        self._shapes: dict[tuple[tuple[str, ...], tuple[type, ...]], _Shape | None] = {}

    def columns(self, lines: list[bytes]) -> Columns | None:
        """(keys, type of each key's values, one list of values per key), or None."""
        try:
            first = orjson.loads(lines[0])
        except orjson.JSONDecodeError:
            return None
        if type(first) is not dict or not first:
            return None
        keys = tuple(first)
        kinds = tuple(map(type, first.values()))
        shape_key = (keys, kinds)
        known = shape_key in self._shapes
        shape = self._shapes[shape_key] if known else self._shape(keys, kinds)
        if shape is None:
            return None
        try:
            objs = shape.decode(b"[" + b",\n".join(lines) + b"]")
        except msgspec.DecodeError:  # ValidationError included
            return None
        if len(objs) != len(lines):  # a line held more than one value
            return None
        cols: list[Sequence[Any]]
        if len(keys) == 1:
            cols = [list(map(operator.attrgetter("f0"), objs))]
        else:  # a tuple per line, then one tuple per key (no lists: the encoder only reads)
            cols = list(zip(*map(msgspec.structs.astuple, objs), strict=True))
        for i in shape.floats:
            if set(map(type, cols[i])) != {float}:
                return None
        return keys, kinds, cols

    def _shape(self, keys: tuple[str, ...], kinds: tuple[type, ...]) -> _Shape | None:
        if len(self._shapes) >= _MAX_SHAPES:  # lines with ever-new keys
            self._shapes.clear()
        shape = None
        if all(kind in _TYPES for kind in kinds):
            try:
                shape = _Shape(keys, kinds)
            except ValueError:  # a key msgspec cannot match (quotes, backslashes, controls)
                shape = None
        self._shapes[(keys, kinds)] = shape
        return shape
