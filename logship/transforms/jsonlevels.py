"""The level of each JSON line without building each line's object.

A level filter or a ``level`` field label needs one value per line, the first of the top-level
``level``/``lvl``/``severity`` keys present (logship/parsing/parsed.py); parsing every line into
a dict with orjson just to read it costs about three times more than the rest of the step.
msgspec decodes the batch into a struct holding only those three keys: it checks the whole
text's syntax and skips every other value without building it.

The answer must equal what orjson's parse gives (:func:`batchops.parse_objects`), malformed
lines included, so the fast path is taken only when the two parsers provably agree on the
batch; otherwise the caller falls back to the full parse. They differ only on what msgspec
does not look at while skipping, each ruled out by a C-speed check of the joined batch:

* invalid UTF-8 (orjson refuses it): the batch is ASCII, or decodes as UTF-8;
* numbers too large for a double (orjson refuses them): such a number has an exponent of at
  least three digits followed by the end of the number, or at least 210 digits before it
  (a larger exponent of two digits cannot reach 1e308); the batch is translated into the
  classes of :data:`logship.transforms.scan.CLASSES` (digits, signs and spaces to ``0``,
  ``e``/``E`` to ``e``, what may end a number to ``,``, the rest to ``x``; shared with the
  card-number pre-check) and neither shape is found in it (a hex id's ``e123`` ends in a
  quote, not a comma; spaces after a number join its run of ``0``, before the ``,``);
* nesting deeper than orjson allows (1024): msgspec counts nesting against the interpreter's
  recursion limit and hands a line too deep for the current call stack to the full parse
  (RecursionError); on Python 3.11 with a limit under 1024 that covers every line orjson
  refuses, otherwise no line may have 1000 brackets;
* the level value itself: only strings, null, booleans and integers that orjson keeps as
  integers are taken from msgspec.

Duplicate keys (the last one wins) and escaped key names (``"lev\\u0065l"``) are read alike by
both parsers.
"""

from __future__ import annotations

import functools
import operator
import re
import sys
from typing import Any, Literal

import msgspec

from logship.transforms.scan import BatchScan, scan_of

_UNSET = msgspec.UNSET


class _LevelKeys(msgspec.Struct, gc=False):
    level: Any = _UNSET
    lvl: Any = _UNSET
    severity: Any = _UNSET


class _Level(msgspec.Struct, gc=False):
    level: Any = _UNSET


_DECODER = msgspec.json.Decoder(list[_LevelKeys])
_MAX_WORDS = 64  # level words learnt per source; past them, levels are decoded as any value
# ``level`` alone: ~15 % cheaper where every line has it (most loggers); a batch where some
# line has not is decoded again with the three keys.
_LEVEL_DECODER = msgspec.json.Decoder(list[_Level])
_BIG_EXPONENT = re.compile(rb"e000+,")  # literal prefix: a fast scan in C
_LONG_NUMBER = b"0" * 210
_MAX_BRACKETS = 1000
_ORJSON_DEPTH = 1024  # orjson refuses a line nested this deep
_GET_LEVEL = operator.attrgetter("level")
_INT_MIN = -(1 << 63)
_INT_END = 1 << 64


def _agree(scan: BatchScan) -> bool:
    """Whether orjson and msgspec read the scan's lines alike (see above)."""
    text, patches = scan.decode_source()
    for t in (text, *patches.values()):
        if not t.isascii():
            try:
                t.decode("utf-8")
            except UnicodeDecodeError:
                return False
    lines = scan.lines
    for classes in scan.class_texts():
        if _BIG_EXPONENT.search(classes) is not None:
            return False
    # The lines' greatest length (a C pass) only when a check needs it.
    longest = -1 if scan.knows_runs() and not _msgspec_may_nest_deeper() else max(map(len, lines))
    if (longest < 0 or longest >= len(_LONG_NUMBER)) and scan.holds_run(_LONG_NUMBER):
        return False
    if longest >= 2 * _MAX_BRACKETS and _msgspec_may_nest_deeper():
        for line in lines:
            if len(line) >= 2 * _MAX_BRACKETS and (
                line.count(b"[") + line.count(b"{") >= _MAX_BRACKETS
            ):
                return False
    return True


def _msgspec_may_nest_deeper() -> bool:
    """Whether msgspec may accept a line nested deeper than orjson does (1024).

    On Python 3.11 msgspec counts nesting against the interpreter's recursion limit, frames
    below included: with a limit under 1024 it refuses (RecursionError: the full parse) every
    line orjson refuses for its depth, so no line needs counting. Later versions count C
    recursion against a fixed, larger limit.
    """
    return sys.version_info >= (3, 12) or sys.getrecursionlimit() >= _ORJSON_DEPTH


def _safe_value(v: Any) -> bool:
    """A level value both parsers return alike (orjson turns integers past 64 bits into
    floats; msgspec keeps them; floats and containers are left to the full parse)."""
    if v is None or isinstance(v, str | bool):
        return True
    return type(v) is int and _INT_MIN <= v < _INT_END


def _first_level(keys: _LevelKeys) -> Any:
    for v in (keys.level, keys.lvl, keys.severity):
        if v is not _UNSET:
            return v
    return None


class LevelWords:
    """The level words one source's lines were seen with, and a decoder of the ``level`` key
    typed as a ``Literal`` of them.

    msgspec returns a ``Literal`` value as the one cached string of its word, where it makes
    a new string per line for any value: no allocation, and its hash is known when the level
    codes look it up (~300 instructions a line less). A value the decoder does not know
    (a new word, a number) makes msgspec refuse the batch; the batch is then decoded with
    any value, and its words are learnt for the next batches, up to :data:`_MAX_WORDS`.
    """

    __slots__ = ("decoder", "missed", "words")

    def __init__(self) -> None:
        self.words: frozenset[str] = frozenset()
        self.decoder: msgspec.json.Decoder[list[Any]] | None = None
        self.missed = False  # the last batch had a value the decoder did not know

    def decode(self, text: bytes, decoder: Any) -> list[Any]:
        """The keys of ``text`` by the word decoder, or by ``decoder`` if it refuses."""
        if self.decoder is not None:
            try:
                return self.decoder.decode(text)
            except msgspec.ValidationError:
                pass
        self.missed = True
        return decoder.decode(text)  # type: ignore[no-any-return]

    def learn(self, values: list[Any]) -> None:
        """Expect the string ``values`` too (the distinct raw levels of a batch)."""
        words = self.words.union(v for v in values if type(v) is str)
        if len(words) > _MAX_WORDS:  # not a level vocabulary: stop learning and trying
            self.words, self.decoder = words, None
            return
        if words and (words != self.words or self.decoder is None):
            self.words = words
            word = Literal[tuple(sorted(words))]  # type: ignore[valid-type]
            struct = msgspec.defstruct(
                "_LevelWord", [("level", word | None | msgspec.UnsetType, _UNSET)], gc=False
            )
            self.decoder = msgspec.json.Decoder(list[struct])  # type: ignore[valid-type]

    @property
    def learning(self) -> bool:
        return len(self.words) <= _MAX_WORDS


def decoded_keys(
    lines: list[bytes],
    scan: BatchScan | None = None,
    decoder: Any = _DECODER,
    words: LevelWords | None = None,
) -> list[Any] | None:
    """Each line's level keys as msgspec reads them (``decoder``: all three, or ``level``
    alone; ``words``: the source's level words, tried first); None when the batch needs the
    full parse (a line that is not a JSON object, or a case where the two parsers could
    differ)."""
    n = len(lines)
    if not n:
        return []
    # One text serves the checks and the decoder (a comma, like a newline, ends a number).
    scan = scan_of(lines, scan)
    if not _agree(scan):
        return None
    text, patches = scan.decode_source()
    decode: Any = (
        decoder.decode if words is None else functools.partial(words.decode, decoder=decoder)
    )
    try:
        keys: list[Any] = decode(text)
        if len(keys) != n:
            return None
        for i, line in patches.items():  # lines changed since the text was made
            one = decode(b"[" + line + b"]")
            if len(one) != 1:
                return None
            keys[i] = one[0]
    except (msgspec.DecodeError, RecursionError):
        # msgspec counts nesting against the interpreter's recursion limit (orjson has a
        # fixed one): a deep line in a deep call stack takes the full parse.
        return None
    return keys


def raw_levels(lines: list[bytes], scan: BatchScan | None = None) -> list[Any] | None:
    """The raw level value of each line (None without one), as orjson's parse would give;
    None when the batch needs the full parse (a line that is not a JSON object, or a case
    where the two parsers could differ). ``scan``: the lines' shared scan, if there is one."""
    keys = decoded_keys(lines, scan)
    if keys is None:
        return None
    raw: list[Any] = list(map(_GET_LEVEL, keys))
    if _UNSET in raw:
        raw = list(map(_first_level, keys))
    if set(map(type, raw)) <= {str}:
        return raw
    if not all(map(_safe_value, raw)):
        return None
    return raw


class _Codes(dict[Any, int]):
    """Raw level value -> its code: the next free code for each new value (first seen first)."""

    def __missing__(self, raw: Any) -> int:
        code = self[raw] = len(self)
        return code


def raw_level_codes(
    lines: list[bytes],
    scan: BatchScan | None = None,
    level_only: bool = False,
    words: LevelWords | None = None,
) -> tuple[list[Any], bytes, bool] | None:
    """The distinct raw level values (first seen first), each line's index into them (one
    byte per line) and whether a line had no ``level`` key, in one C pass over the decoded
    keys: the values are checked once per distinct value instead of once per line (a batch
    holds a handful). ``level_only``: decode the ``level`` key alone first (the caller's guess
    from its last batch). None when :func:`raw_levels` would say None, and also when a value
    is unhashable, when there are more than 256 values, or when values of different types
    could meet as one key (``True`` and ``1``). ``words``: the source's level words (with
    ``level_only``), tried first and learnt from this batch when they did not know it."""
    if not level_only or (words is not None and not words.learning):
        words = None
    if words is not None:
        words.missed = False
    keys = decoded_keys(lines, scan, _LEVEL_DECODER if level_only else _DECODER, words)
    if keys is None:
        return None
    table = _Codes()
    level_of: Any = _GET_LEVEL
    try:
        codes = bytes(map(table.__getitem__, map(level_of, keys)))
        missing = _UNSET in table
        if missing:
            if level_only:
                keys = decoded_keys(lines, scan, _DECODER)
                if keys is None:  # not reached: the same text decoded a moment ago
                    return None
            table, level_of = _Codes(), _first_level
            codes = bytes(map(table.__getitem__, map(level_of, keys)))
    except (TypeError, ValueError):  # unhashable, or a code past 255
        return None
    distinct = list(table)
    if words is not None and words.missed and not missing:
        words.learn(distinct)
    if not set(map(type, distinct)) <= {str, type(None)}:
        # Equal keys of other types merge in a dict (True and 1, 1 and 1.0): the types are
        # checked per line here (numeric levels only), then the values per distinct value.
        types = set(map(type, map(level_of, keys)))
        if not (types <= {str, type(None), int} or types <= {str, type(None), bool}):
            return None
        if not all(map(_safe_value, distinct)):
            return None
    return distinct, codes, missing
