"""Timestamps as columns of cache keys, so a batch converts without per-line Python.

A line's timestamp is split into a *seconds key* and a *fraction key*. Within a
batch, thousands of lines share a seconds key (same second) and the fraction
keys repeat (``.123`` at millisecond resolution), so converting a whole column is
a pair of C-level ``map(dict.__getitem__, ...)`` calls that hit auto-filling
caches. Sinks build their own encodings (Loki's protobuf bytes) on the same keys.

Keys:
- seconds key: ``b"2026-11-28T12:00:00"`` for text timestamps (read as UTC), or
  an ``int`` of epoch seconds (epoch numbers, read time, non-UTC text);
- fraction key: ``b'.123Z"'`` (fraction, zone and closing quote as written) or an ``int`` of
  nanoseconds. A text fraction key whose zone is not UTC, or that does not
  parse, is put in :data:`EXACT_FRACTIONS`; the parser turns such lines into
  int keys by an exact parse (or the read time).
"""

from __future__ import annotations

import bisect
import itertools
import operator
import re
from collections.abc import Collection
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any

_NS = 1_000_000_000
# The usual names of a record's time field, in order of preference.
TIME_KEYS = ("ts", "time", "timestamp", "@timestamp")
_MAX_CACHE = 200_000

SecondsKey = bytes | int
FractionKey = bytes | int


def _zone(z: bytes) -> timezone:
    if not z or z in (b"Z", b"z"):
        return UTC
    sign = -1 if z[:1] == b"-" else 1
    digits = z[1:].replace(b":", b"")
    return timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or b"0")))


class _SecondsNs(dict[Any, int | None]):
    """Seconds key -> epoch nanoseconds of that whole second, or None when invalid."""

    def __missing__(self, key: SecondsKey) -> int | None:
        value: int | None
        if isinstance(key, int):  # cached too: a batch repeats its read time's second
            value = key * _NS
        else:
            try:
                text = key.decode("ascii").replace(" ", "T")
                value = int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()) * _NS
            except (ValueError, UnicodeDecodeError, OverflowError):
                value = None
        if len(self) >= _MAX_CACHE:
            self.clear()
        self[key] = value
        return value


_DIGITS = re.compile(rb"\d")
_FRACTION_KEY = re.compile(rb'(?:[.,](\d{1,9}))?(Z|z|[+-]\d\d:?\d\d)?"')


class _FractionNs(dict[Any, int]):
    """Fraction key -> nanoseconds.

    A text key is what follows the whole seconds up to and including the closing
    quote (``b'.123Z"'``): the quote proves the slice took the whole value.
    """

    def __missing__(self, key: FractionKey) -> int:
        if isinstance(key, int):
            return key
        m = _FRACTION_KEY.fullmatch(key)
        value = 0
        exact = m is None
        if m is not None:
            digits, zone = m.groups()
            if digits:
                value = int(digits.ljust(9, b"0"))
            exact = bool(zone) and _zone(zone).utcoffset(None) != timedelta(0)
        if len(self) >= _MAX_CACHE:
            self.clear()
            FRACTION_SHAPE.clear()
            UTC_FRACTIONS_BY_SHAPE.clear()
        shape = FRACTION_SHAPE[key] = _DIGITS.sub(b"0", key)
        if exact:
            EXACT_FRACTIONS.add(key)
        else:
            UTC_FRACTIONS_BY_SHAPE.setdefault(shape, set()).add(key)
        self[key] = value
        return value


EXACT_FRACTIONS: set[bytes] = set()
# Text fraction key -> its shape with digits as 0 (b'.000Z"'), filled with FRACTION_NS.
FRACTION_SHAPE: dict[bytes, bytes] = {}
# Shape -> the UTC text fraction keys of that shape seen so far: a batch whose distinct keys
# are all in one shape's set is classified by one subset test instead of four passes.
UTC_FRACTIONS_BY_SHAPE: dict[bytes, set[bytes]] = {}
SECONDS_NS = _SecondsNs()
FRACTION_NS = _FractionNs()


class TimestampColumn:
    """The timestamps of one batch, one entry per line, in line order."""

    __slots__ = ("_ns", "fractions", "int_fractions", "runs", "seconds", "text_format")

    def __init__(
        self,
        seconds: list[SecondsKey],
        fractions: list[FractionKey],
        text_format: bytes | None = None,
        *,
        runs: list[tuple[SecondsKey, int]] | None = None,
        int_fractions: bool | None = None,
    ) -> None:
        self.seconds = seconds
        self.fractions = fractions
        # Set when every key is text of one shape (same separator, same fraction width
        # and zone, all UTC): then (seconds, fraction) pairs compare like the times they
        # name, and order can be checked without converting.
        self.text_format = text_format
        # Set only when the column is known to be in time order: the runs of equal seconds
        # keys (key, length), keys increasing. Lets a sink that needs order (Loki) skip
        # checking it again; None says nothing (unknown or out of order).
        self.runs = runs
        # True when every fraction key is an int (nanoseconds), False when not; None when
        # not known (then all_int_keys() finds out).
        self.int_fractions = int_fractions
        self._ns: list[int] | None = None

    @classmethod
    def constant(cls, ns: int, n: int) -> TimestampColumn:
        s, f = divmod(ns, _NS)
        return cls([s] * n, [f] * n, runs=[(s, n)] if n else None, int_fractions=True)

    def has_int_fractions(self) -> bool:
        """Whether every fraction key is an int; known from the parse or found in one pass."""
        if self.int_fractions is None:
            self.int_fractions = all_int_keys(self.fractions)
        return self.int_fractions

    def ns(self) -> list[int]:
        """Epoch nanoseconds per line (computed once, in C loops)."""
        if self._ns is None:
            self._ns = ns_of_keys(self.seconds, self.fractions, self.has_int_fractions())
        return self._ns

    def select(
        self, keep: list[int], seconds: list[SecondsKey], fractions: list[FractionKey]
    ) -> TimestampColumn:
        """The column of the lines at ``keep`` (ascending indices), given their keys.

        Lines taken in order from a column in time order are in time order: the runs are
        counted from the kept indices by a binary search per run (a handful per batch), so
        a sink needs no pass over the part to know it.
        """
        runs: list[tuple[SecondsKey, int]] | None = None
        if self.runs is not None:
            runs = []
            start = end = 0
            for key, count in self.runs:
                end += count
                stop = bisect.bisect_left(keep, end, start)
                if stop > start:
                    runs.append((key, stop - start))
                start = stop
        return TimestampColumn(
            seconds, fractions, self.text_format, runs=runs, int_fractions=self.int_fractions
        )

    def take(self, indices: list[int]) -> TimestampColumn:
        """The column of the lines at ``indices`` (ascending), keys taken here."""
        s, f = self.seconds, self.fractions
        return self.select(indices, [s[i] for i in indices], [f[i] for i in indices])


def all_int_keys(keys: list[Any]) -> bool:
    """True when every key is an int (nanosecond fraction keys, epoch seconds): one C pass."""
    return bool(keys) and set(map(type, keys)) == {int}


def ns_of_keys(
    seconds: list[SecondsKey], fractions: list[FractionKey], int_fractions: bool | None = None
) -> list[int]:
    secs = map(SECONDS_NS.__getitem__, seconds)
    if int_fractions is None:
        int_fractions = all_int_keys(fractions)
    if int_fractions:  # nanoseconds already: no cache lookup (a miss is a call)
        return list(map(operator.add, secs, fractions))
    return list(map(operator.add, secs, map(FRACTION_NS.__getitem__, fractions)))


def keys_in_order(
    seconds: list[SecondsKey], fractions: list[FractionKey], text_format: bytes | None
) -> bool:
    """True when the keys are in time order; compares text keys directly when they can be."""
    if text_format is not None:
        pairs = zip(seconds, fractions, strict=True)
        following = zip(
            itertools.islice(seconds, 1, None), itertools.islice(fractions, 1, None), strict=False
        )
        return all(map(operator.le, pairs, following))
    ns = ns_of_keys(seconds, fractions)
    return all(map(operator.le, ns, itertools.islice(ns, 1, None)))


def utc_fraction_shape(fractions: Collection[Any]) -> bytes | None:
    """The one shape of fraction keys when every one is a known UTC text key of it (then
    none is exact and the cache holds them all); None when that is not known. Takes a
    batch's keys as they are: a membership test per key costs less than making a set."""
    for k in fractions:
        shape = FRACTION_SHAPE.get(k) if isinstance(k, bytes) else None
        members = UTC_FRACTIONS_BY_SHAPE.get(shape) if shape is not None else None
        return shape if members is not None and members.issuperset(fractions) else None
    return None


def text_format_of(
    seconds: set[Any], fractions: set[Any], fraction_shape: bytes | None = None
) -> bytes | None:
    """The shared shape of distinct text keys, or None when they are not all alike.

    ``fraction_shape``, when given, is the fractions' shape already proved by
    :func:`utc_fraction_shape`.
    """
    shapes = {k[10:11] for k in seconds if isinstance(k, bytes) and len(k) == 19}
    if len(shapes) != 1 or len(seconds) != sum(1 for k in seconds if isinstance(k, bytes)):
        return None
    if fraction_shape is not None:
        return shapes.pop() + fraction_shape
    try:  # int keys have no shape: then there is no common text format
        frac_shapes = set(map(FRACTION_SHAPE.__getitem__, fractions))
    except KeyError:
        return None
    if len(frac_shapes) != 1:
        return None
    if EXACT_FRACTIONS.intersection(fractions):
        return None
    return shapes.pop() + frac_shapes.pop()


def split_ns(ns: int) -> tuple[int, int]:
    """Epoch nanoseconds to a (seconds key, fraction key) pair."""
    return divmod(ns, _NS)


def epoch_number_to_ns(value: float | int) -> int:
    """Guess the unit of an epoch number by its size, like most log tools do."""
    v = abs(value)
    if v >= 1e17:
        return int(value)
    if v >= 1e14:
        return int(value * 1_000)
    if v >= 1e11:
        return int(value * 1_000_000)
    if isinstance(value, float):  # a double holds microseconds of an epoch, not nanoseconds
        return round(value * 1_000_000) * 1_000
    return int(value) * _NS


_RFC3339_SECONDS: dict[int, str] = {}


def format_rfc3339(ns: int) -> str:
    """RFC 3339 UTC with nanoseconds; the text of each second is cached (lines share seconds)."""
    s, f = divmod(ns, _NS)
    base = _RFC3339_SECONDS.get(s)
    if base is None:
        if len(_RFC3339_SECONDS) >= 4096:
            _RFC3339_SECONDS.clear()
        base = _RFC3339_SECONDS[s] = datetime.fromtimestamp(s, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{f:09d}Z"


def parse_text_timestamp(text: str, default_zone: tzinfo = UTC) -> int | None:
    """Any RFC 3339 / ISO 8601 timestamp string to epoch ns (slow path, one line).

    A time written without an offset is read in ``default_zone``.
    """
    t = text.strip()
    if not t:
        return None
    try:
        frac_ns = 0
        main = t
        # Pull out the fraction ourselves: fromisoformat keeps microseconds only.
        dot = t.find(".", 17)
        if dot == -1:
            dot = t.find(",", 17)
        if dot != -1:
            end = dot + 1
            while end < len(t) and t[end].isdigit():
                end += 1
            digits = t[dot + 1 : end]
            frac_ns = int(digits[:9].ljust(9, "0")) if digits else 0
            main = t[:dot] + t[end:]
        if main.endswith(("Z", "z")):
            main = main[:-1] + "+00:00"
        dt = datetime.fromisoformat(main.replace(" ", "T", 1) if "T" not in main else main)
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=default_zone)
        return int(dt.timestamp()) * _NS + frac_ns
    except (ValueError, OverflowError):
        return None
