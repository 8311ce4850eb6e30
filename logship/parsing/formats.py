"""Line formats: from a list of raw lines to timestamps and normalized records.

Two entry points, both batch-in, batch-out:

- :func:`timestamp_column`, needed by every sink, is the hot path. For JSON
  lines it finds the usual time keys with one regular expression over the whole
  joined batch (the loop runs in C) and falls back to a full JSON parse only
  for lines the expression could not read.
- :func:`parse_lines` is the dispatch to one module per format; records.py builds
  the normalized records from its result, only for sinks that need fields.

Formats other than ``json``/``auto``/``raw``, and JSON with a configured
timestamp rule, take their timestamps from the parse (:func:`batch_timestamps`).
"""

from __future__ import annotations

import bisect
import importlib
import itertools
import operator
import re
from collections.abc import Callable
from itertools import repeat
from typing import TYPE_CHECKING, Any, cast

import orjson

from logship.parsing.timestamps import (
    EXACT_FRACTIONS,
    FRACTION_NS,
    SECONDS_NS,
    TIME_KEYS,
    TimestampColumn,
    epoch_number_to_ns,
    parse_text_timestamp,
    split_ns,
    text_format_of,
    utc_fraction_shape,
)

if TYPE_CHECKING:
    from logship.parsing.batch import Batch
    from logship.parsing.options import ParseOptions
    from logship.parsing.parsed import Parsed


# Container runtime log formats: logship/sources/framing.py strips the envelope, and the
# message inside is parsed like `auto` (SourceInfo.line_format).
CONTAINER_FORMATS = ("cri", "docker")

# One match per line (MULTILINE ^...$), groups: whole seconds, then fraction and zone.
# A line without a readable text timestamp still matches, with empty groups.
_TS_VALUE = (
    rb'"(?:ts|time|timestamp|@timestamp)"[ \t]*:[ \t]*"'
    rb"(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d)((?:[.,]\d{1,9})?(?:Z|z|[+-]\d\d:?\d\d)?\")"
)
# Fast: the time key is the object's first key (slog, logstash, most structured loggers).
_TS_FIRST = re.compile(rb"(?m)^(?:[ \t]*\{[ \t]*" + _TS_VALUE + rb")?[^\n]*$")
# General: the first time key anywhere on the line.
_TS_ANYWHERE = re.compile(rb"(?m)^(?:[ \t]*\{[^\n]*?" + _TS_VALUE + rb")?[^\n]*$")
_NO_MATCH = (b"", b"")


def _slow_timestamp(line: bytes) -> int | None:
    """Epoch ns from one JSON line by a real parse; None when it has none."""
    stripped = line.lstrip()
    if not stripped.startswith(b"{"):
        return None
    try:
        obj = orjson.loads(stripped)
    except orjson.JSONDecodeError:
        return None
    return timestamp_of(obj) if isinstance(obj, dict) else None


def _slow_timestamps(lines: list[bytes], fmt: str) -> list[int | None]:
    """Epoch ns of lines the time-key expression could not read: JSON lines one by one,
    and with ``auto`` the logfmt lines as one batch."""
    out = list(map(_slow_timestamp, lines))
    if fmt != "auto":
        return out
    from logship.parsing import logfmt
    from logship.parsing.options import DEFAULT_OPTIONS
    from logship.parsing.parsed import from_fields

    looks = logfmt.LOOKS_LIKE_LOGFMT.match
    texts = {i: t for i, line in enumerate(lines) if looks(t := line.decode("utf-8", "replace"))}
    if texts:
        fields = [logfmt.parse_line(t) for t in texts.values()]
        column = from_fields(fields, DEFAULT_OPTIONS, 0, []).timestamps or []
        for i, ns in zip(texts, column, strict=True):
            out[i] = ns
    return out


def timestamp_of(obj: dict[str, Any]) -> int | None:
    for key in TIME_KEYS:
        v = obj.get(key)
        if v is None:
            continue
        if isinstance(v, str):
            ns = parse_text_timestamp(v)
            if ns is not None:
                return ns
        elif isinstance(v, int | float) and not isinstance(v, bool):
            return epoch_number_to_ns(v)
    return None


def _findall_per_line(pattern: re.Pattern[bytes], lines: list[bytes]) -> list[tuple[bytes, bytes]]:
    text = b"\n".join(lines)
    matches: list[tuple[bytes, bytes]] = pattern.findall(text)
    if len(matches) == len(lines):
        return matches
    # A line held a newline (a multiline record): match line by line.
    return [
        m.groups(b"") if (m := pattern.match(line.replace(b"\n", b" "))) else _NO_MATCH  # type: ignore[misc]
        for line in lines
    ]


_Runs = list[tuple[Any, int]]


def _runs_by_search(lines: list[bytes], b: int) -> tuple[_Runs, bool] | None:
    """Runs ``(key, length)`` of consecutive lines that share their first ``b`` bytes.

    A logger writes its lines in time order, many per second, so each run's end is found
    by binary search (a few probes per run, not a step per line). A run is then proved
    in one C pass: when its lines are in byte order and its last line starts with the
    key, every line between starts with it too (the strings with one prefix are one
    interval of the byte order), and the pass has also shown the run's fractions in
    order. A run out of byte order (equal times, different text) is proved by
    ``startswith`` instead. Returns the runs and whether the lines are in time order,
    or None when a run does not hold or the runs are too short for searching to pay.
    """
    n = len(lines)
    key = operator.itemgetter(slice(0, b))
    limit = max(8, n // 32)
    runs: _Runs = []
    in_order = True
    prev = b""
    i = 0
    while i < n:
        w = lines[i][:b]
        j = bisect.bisect_right(lines, w, i + 1, n, key=key)
        if j - i > 1:
            part = lines[i:j]
            if not (
                part[-1].startswith(w)
                and all(map(operator.le, part, itertools.islice(part, 1, None)))
            ):
                if not all(map(bytes.startswith, part, repeat(w))):
                    return None
                in_order = False
        if prev >= w:
            in_order = False
        runs.append((w, j - i))
        if len(runs) > limit:
            return None
        prev = w
        i = j
    return runs, in_order


def _fixed_layout(lines: list[bytes]) -> tuple[list[Any], list[Any], set[Any], _Runs | None] | None:
    """Keys by slicing, when every line starts like the first up to its time value.

    Lines from one logger usually share the prefix before the time value and the
    width of the value (``{"time":"2026-11-28T12:00:00.123Z",...``). Slicing is a
    whole-list C loop, several times cheaper than a regex per line. The seconds come
    from runs of lines sharing prefix and seconds (:func:`_runs_by_search`), or else
    from each line's prefix and seconds sliced as one key; either way the prefix is
    checked once per distinct key (a handful per batch), not once per line. A line
    whose value is wider or narrower yields a fraction key that does not end in the
    closing quote; such keys, checked once per distinct key, send their lines to the
    exact path. Returns the seconds keys, the fraction keys, the distinct seconds keys
    and, when the lines are in time order, the runs of seconds keys.
    """
    m = _TS_FIRST.match(lines[0])
    if m is None or m.start(1) < 0:
        return None
    a, b, q = m.start(1), m.end(1), m.end(2)
    prefix = lines[0][:a]
    fracs = list(map(operator.itemgetter(slice(b, q)), lines))
    found = _runs_by_search(lines, b)
    if found is not None:
        wide_runs, in_order = found
        narrow = {w: w[a:] for w, _ in wide_runs if w.startswith(prefix)}
        if len(narrow) != len({w for w, _ in wide_runs}):
            return None
        runs = [(narrow[w], count) for w, count in wide_runs]
        seconds: list[Any] = []
        for k, count in runs:
            seconds += [k] * count
        return seconds, fracs, set(narrow.values()), runs if in_order else None
    wide: list[bytes] = list(map(operator.itemgetter(slice(0, b)), lines))
    distinct = set(wide)
    narrow = {k: k[a:] for k in distinct if k.startswith(prefix)}
    if len(narrow) != len(distinct):
        return None
    return list(map(narrow.__getitem__, wide)), fracs, set(narrow.values()), None


# Above this many distinct fraction keys in a batch (microsecond or nanosecond times),
# fractions become integer nanosecond keys in C passes: classifying each distinct text key
# in FRACTION_NS costs a Python call per line, and the caches would only thrash.
MANY_FRACTIONS = 1024
_UTC_FRACTION_KEYS = re.compile(rb'(?:(?:[.,]\d{1,9})?[Zz]"\n)*')


def _fraction_ints(fracs: list[Any], distinct: set[Any]) -> list[Any] | None:
    """Nanoseconds of text fraction keys (``b'.123456Z"'``) when every one is UTC text."""
    if not all(isinstance(k, bytes) for k in distinct):
        return None
    if _UTC_FRACTION_KEYS.fullmatch(b"\n".join(distinct) + b"\n") is None:
        return None
    digits = map(operator.itemgetter(slice(1, -2)), fracs)
    return list(map(int, map(bytes.ljust, digits, repeat(9), repeat(b"0"))))


def timestamp_column(lines: list[bytes], fmt: str, read_ns: int) -> TimestampColumn:
    """Timestamps of a batch; lines without one get the read time."""
    n = len(lines)
    if fmt == "raw" or n == 0:
        return TimestampColumn.constant(read_ns, n)
    seconds: list[Any]
    fracs: list[Any]
    fixed = _fixed_layout(lines)
    distinct_seconds: set[Any] | None = None
    runs: list[tuple[Any, int]] | None = None
    if fixed is not None:
        seconds, fracs, distinct_seconds, runs = fixed
    else:
        whole, fractions = zip(*_findall_per_line(_TS_FIRST, lines), strict=True)
        seconds = list(whole)
        fracs = list(fractions)
        if b"" in whole:
            missing = [i for i, w in enumerate(whole) if not w]
            subset = lines if len(missing) == n else [lines[i] for i in missing]
            for i, (w, f) in zip(missing, _findall_per_line(_TS_ANYWHERE, subset), strict=True):
                seconds[i], fracs[i] = w, f
    read_s, read_f = split_ns(read_ns)
    if distinct_seconds is None:
        distinct_seconds = set(seconds)
    if b"" in distinct_seconds:  # no text timestamp: a real parse, or the read time
        missing = [i for i, w in enumerate(seconds) if w == b""]
        for i, ns in zip(missing, _slow_timestamps([lines[i] for i in missing], fmt), strict=True):
            seconds[i], fracs[i] = (read_s, read_f) if ns is None else split_ns(ns)
        distinct_seconds = set(seconds)
    # Checked per distinct key, not per line: invalid dates and non-UTC zones take the
    # exact path, line by line, which is rare.
    bad = {k for k in distinct_seconds if SECONDS_NS[k] is None}
    int_fractions: bool | None = None
    zoned: set[Any] = set()
    # Usually every key was seen before and is one shape's: one membership test per line.
    shape = utc_fraction_shape(fracs)
    distinct: set[Any] = set()
    if shape is None:  # keys not seen before, or not all alike
        distinct = set(fracs)
        if len(distinct) > MANY_FRACTIONS and (ints := _fraction_ints(fracs, distinct)) is not None:
            fracs, distinct = ints, set()  # microsecond or nanosecond times: integer keys
            int_fractions = True
        for k in distinct.difference(FRACTION_NS.keys()):
            FRACTION_NS[k]  # fills the cache and EXACT_FRACTIONS
        zoned = EXACT_FRACTIONS.intersection(distinct)
        shape = utc_fraction_shape(distinct)
    text_format = None if bad or zoned else text_format_of(distinct_seconds, distinct, shape)
    if text_format is not None:
        int_fractions = False  # text keys of one shape
    if bad or zoned:
        for i in range(n):
            s, f = seconds[i], fracs[i]
            if s in bad or f in zoned:
                exact = None
                # The line's own value: a sliced key may hold a wider value cut short.
                m = _TS_FIRST.match(lines[i]) if isinstance(s, bytes) else None
                if m is not None and m.start(1) >= 0:
                    text = m.group(1) + m.group(2)[:-1]
                    exact = parse_text_timestamp(text.decode("ascii", "replace"))
                if exact is None:
                    exact = _slow_timestamp(lines[i])
                seconds[i], fracs[i] = (read_s, read_f) if exact is None else split_ns(exact)
        int_fractions = None
    # Runs say the column is in time order; that holds only for keys of one shape.
    return TimestampColumn(
        seconds,
        fracs,
        text_format,
        runs=runs if text_format is not None else None,
        int_fractions=int_fractions,
    )


Parser = Callable[[list[bytes], "ParseOptions", int], "Parsed"]
# Each format's parser ("module:function" under logship.parsing), imported on first use:
# compiling every parser's expressions at start-up would cost every run, also the runs
# that never see those formats.
PARSERS: dict[str, str] = {
    "auto": "jsonlines:parse_auto",
    "json": "jsonlines:parse_json",
    "logfmt": "logfmt:parse_logfmt",
    "regex": "regex:parse_regex",
    "syslog": "syslog:parse_syslog",
    "nginx": "access:parse_access",
    "apache": "access:parse_access",
    "raw": "parsed:parse_raw",
}
# cri and docker: framing strips the runtime's envelope, the message reads like `auto`.
FORMATS = (*PARSERS, *CONTAINER_FORMATS)
_LOADED: dict[str, Parser] = {}


def parser_for(fmt: str) -> Parser:
    """The parser of a format name from :data:`FORMATS`; an unknown name reads raw."""
    parser = _LOADED.get(fmt)
    if parser is None:
        module, _, name = PARSERS.get(fmt, PARSERS["raw"]).partition(":")
        parser = getattr(importlib.import_module(f"logship.parsing.{module}"), name)
        _LOADED[fmt] = parser
    return cast(Parser, parser)


def parse_lines(lines: list[bytes], fmt: str, opts: ParseOptions, read_ns: int) -> Parsed:
    """The dispatch: every line of a batch through its format's parser."""
    return parser_for(fmt)(lines, opts, read_ns)


def batch_timestamps(batch: Batch) -> TimestampColumn:
    """A batch's timestamps: the fast column for JSON with the default rule, else parsed."""
    fmt, opts = batch.info.line_format, batch.info.options
    if fmt in ("auto", "json", "raw") and opts.fast_json_timestamps:
        return timestamp_column(batch.lines, fmt, batch.read_ns)
    column = batch.parsed().timestamps
    read_ns = batch.read_ns
    if column is None:  # not reached: parsers return a column unless the fast path applies
        return TimestampColumn.constant(read_ns, len(batch.lines))
    ns = [read_ns if t is None else t for t in column]
    seconds, fractions = zip(*map(split_ns, ns), strict=True) if ns else ((), ())
    return TimestampColumn(list(seconds), list(fractions))
