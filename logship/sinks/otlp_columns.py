"""A batch of JSON lines that share one key set, parsed into typed columns by one C call.

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
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal

import msgspec
import orjson

from logship.parsing.jsonlines import json_array
from logship.parsing.parsed import LEVEL_KEYS

_INT64 = Annotated[int, msgspec.Meta(ge=-(1 << 63), le=(1 << 63) - 1)]
_TYPES: dict[type, Any] = {str: str, bool: bool, int: _INT64, float: Any, type(None): None}
_MAX_SHAPES = 1_000
_MAX_WORDS = 64  # level words known per shape; more are decoded as plain strings
# Keys whose string values are level words, from a small set.
WORD_KEYS = frozenset(LEVEL_KEYS)

Columns = tuple[tuple[str, ...], tuple[type, ...], list[Sequence[Any]]]


class _Shape:
    """The decoder for one key set with one type per key.

    A string column named like a level (``level``, ...) is decoded as a ``Literal`` of
    the words seen so far: each value is then the one cached string object of its word
    (no new string per line, and its hash is known when the encoder looks it up). A
    batch with a new word fails that check; it is decoded again with plain strings,
    and the next batches know its words (up to :data:`_MAX_WORDS`, then never again).
    """

    __slots__ = ("decode", "decode_words", "floats", "keys", "kinds", "words", "words_at")

    def __init__(self, keys: tuple[str, ...], kinds: tuple[type, ...]) -> None:
        self.keys = keys
        self.kinds = kinds
        self.floats = [i for i, kind in enumerate(kinds) if kind is float]
        self.words_at = next(
            (i for i, k in enumerate(keys) if k in WORD_KEYS and kinds[i] is str), None
        )
        self.words: frozenset[str] = frozenset()
        self.decode = self._decoder(None)
        self.decode_words: Callable[[bytes], list[Any]] | None = None

    def _decoder(self, words: frozenset[str] | None) -> Callable[[bytes], list[Any]]:
        names = [f"f{i}" for i in range(len(self.keys))]
        types = [_TYPES[kind] for kind in self.kinds]
        if words is not None and self.words_at is not None:
            types[self.words_at] = Literal[tuple(sorted(words))]
        struct = msgspec.defstruct(
            "Line",
            list(zip(names, types, strict=True)),
            rename=dict(zip(names, self.keys, strict=True)),
            forbid_unknown_fields=True,
            gc=False,  # holds only scalars: no cycles, and cheaper to create and free
        )
        return msgspec.json.Decoder(list[struct]).decode  # type: ignore[valid-type]

    def learn(self, column: Sequence[Any]) -> None:
        """Add a plainly decoded batch's level words to those the next batches expect.

        Beyond :data:`_MAX_WORDS` the shape stops trying: a level that is not a level
        (an id) would make every batch decoded twice.
        """
        words = self.words.union(column)
        if len(words) > _MAX_WORDS:
            self.words_at = None
            self.decode_words = None
        elif words != self.words:
            self.words = words
            self.decode_words = self._decoder(words)


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
        joined = json_array(lines)
        objs = None
        if shape.decode_words is not None:
            try:
                objs = shape.decode_words(joined)
            except msgspec.DecodeError:  # a new level word (or anything else): plainly
                objs = None
        learn = objs is None and shape.words_at is not None
        if objs is None:
            try:
                objs = shape.decode(joined)
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
            if operator.countOf(map(type, cols[i]), float) != len(objs):
                return None
        if learn and shape.words_at is not None:
            shape.learn(cols[shape.words_at])
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
