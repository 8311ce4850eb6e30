"""Line formats: from a list of raw lines to timestamps and normalized records.

Two entry points, both batch-in, batch-out:

- :func:`timestamp_column`, needed by every sink, is the hot path. For JSON
  lines it finds the usual time keys with one regular expression over the whole
  joined batch (the loop runs in C) and falls back to a full JSON parse only
  for lines the expression could not read.
- :func:`parse_objects` parses every JSON line of a batch (one C call when all
  are well-formed); it runs only for sinks that need fields (stdout, OTLP).
- :func:`normalize_records` builds the full normalized record of each line.
"""

from __future__ import annotations

import operator
import re
from typing import TYPE_CHECKING, Any

import orjson

from logship.parsing.levels import normalize_level
from logship.parsing.timestamps import (
    EXACT_FRACTIONS,
    FRACTION_NS,
    SECONDS_NS,
    TimestampColumn,
    epoch_number_to_ns,
    format_rfc3339,
    parse_text_timestamp,
    split_ns,
    text_format_of,
)

if TYPE_CHECKING:
    from logship.parsing.batch import Batch

FORMATS = ("auto", "json", "raw", "cri", "docker")
# Container formats carry their own timestamp; the message inside is read like ``auto``.
CONTAINER_FORMATS = ("cri", "docker")
TIME_KEYS = ("ts", "time", "timestamp", "@timestamp")
LEVEL_KEYS = ("level", "lvl", "severity")
MESSAGE_KEYS = ("msg", "message")

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


def _fixed_layout(lines: list[bytes]) -> tuple[list[Any], list[Any], set[Any]] | None:
    """Keys by slicing, when every line starts like the first up to its time value.

    Lines from one logger usually share the prefix before the time value and the
    width of the value (``{"time":"2026-11-28T12:00:00.123Z",...``). Slicing is a
    whole-list C loop, several times cheaper than a regex per line. Each line's
    prefix and seconds are sliced as one key and the prefix is checked once per
    distinct key (a handful per batch), not once per line. A line whose value is
    wider or narrower yields a fraction key that does not end in the closing quote;
    such keys, checked once per distinct key, send their lines to the exact path.
    Returns the seconds keys, the fraction keys and the distinct seconds keys.
    """
    m = _TS_FIRST.match(lines[0])
    if m is None or m.start(1) < 0:
        return None
    a, b, q = m.start(1), m.end(1), m.end(2)
    prefix = lines[0][:a]
    wide: list[bytes] = list(map(operator.itemgetter(slice(0, b)), lines))
    distinct = set(wide)
    narrow = {k: k[a:] for k in distinct if k.startswith(prefix)}
    if len(narrow) != len(distinct):
        return None
    return (
        list(map(narrow.__getitem__, wide)),
        list(map(operator.itemgetter(slice(b, q)), lines)),
        set(narrow.values()),
    )


def timestamp_column(lines: list[bytes], fmt: str, read_ns: int) -> TimestampColumn:
    """Timestamps of a batch; lines without one get the read time."""
    n = len(lines)
    if fmt == "raw" or n == 0:
        return TimestampColumn.constant(read_ns, n)
    seconds: list[Any]
    fracs: list[Any]
    fixed = _fixed_layout(lines)
    distinct_seconds: set[Any] | None = None
    if fixed is not None:
        seconds, fracs, distinct_seconds = fixed
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
        for i, w in enumerate(seconds):
            if w == b"":
                ns = _slow_timestamp(lines[i])
                seconds[i], fracs[i] = (read_s, read_f) if ns is None else split_ns(ns)
        distinct_seconds = set(seconds)
    # Checked per distinct key, not per line: invalid dates and non-UTC zones take the
    # exact path, line by line, which is rare.
    bad = {k for k in distinct_seconds if SECONDS_NS[k] is None}
    distinct = set(fracs)
    for k in distinct.difference(FRACTION_NS.keys()):
        FRACTION_NS[k]  # fills the cache and EXACT_FRACTIONS
    zoned = EXACT_FRACTIONS.intersection(distinct)
    text_format = None if bad or zoned else text_format_of(distinct_seconds, distinct)
    if bad or zoned:
        for i in range(n):
            s, f = seconds[i], fracs[i]
            if s in bad or f in zoned:
                exact = None
                if isinstance(s, bytes) and isinstance(f, bytes):
                    exact = parse_text_timestamp((s + f.rstrip(b'"')).decode("ascii", "replace"))
                if exact is None:
                    exact = _slow_timestamp(lines[i])
                seconds[i], fracs[i] = (read_s, read_f) if exact is None else split_ns(exact)
    return TimestampColumn(seconds, fracs, text_format)


def parse_objects(lines: list[bytes], fmt: str) -> tuple[list[dict[str, Any] | None], int]:
    """JSON objects per line (None for raw lines) and the count of malformed lines."""
    if fmt == "raw":
        return [None] * len(lines), 0
    try:  # the usual case: every line is one object, parsed in one C call and checked in C
        parsed = orjson.loads(b"[" + b",".join(lines) + b"]")
        if len(parsed) == len(lines) and set(map(type, parsed)) == {dict}:
            return parsed, 0
    except orjson.JSONDecodeError:
        pass
    candidates = [i for i, line in enumerate(lines) if line.lstrip()[:1] == b"{"]
    out: list[dict[str, Any] | None] = [None] * len(lines)
    malformed = 0 if fmt == "auto" else len(lines) - len(candidates)
    if not candidates:
        return out, malformed
    try:  # one C call for the candidates when they are all well-formed
        parsed = orjson.loads(b"[" + b",".join([lines[i] for i in candidates]) + b"]")
        if len(parsed) != len(candidates):
            raise ValueError("line count mismatch")
        for i, obj in zip(candidates, parsed, strict=True):
            out[i] = obj
        return out, malformed
    except (orjson.JSONDecodeError, ValueError):
        pass
    for i in candidates:
        try:
            obj = orjson.loads(lines[i])
        except orjson.JSONDecodeError:
            malformed += 1
            continue
        if isinstance(obj, dict):
            out[i] = obj
        else:
            malformed += 1
    return out, malformed


def _decode(line: bytes) -> str:
    return line.decode("utf-8", "replace")


def normalize_records(batch: Batch) -> list[dict[str, Any]]:
    """The normalized record of every line (see README, "The normalized record")."""
    lines = batch.lines
    info = batch.info
    fmt = "auto" if info.format in CONTAINER_FORMATS else info.format
    objs = batch.objects()
    ts = batch.timestamps().ns()
    offsets = batch.line_offsets()
    observed = format_rfc3339(batch.read_ns)
    labels = info.labels
    path = info.path
    records: list[dict[str, Any]] = []
    append = records.append
    for i, line in enumerate(lines):
        obj = objs[i]
        level: str | None = None
        message: str
        fields: dict[str, Any]
        if obj is None:
            message = _decode(line)
            fields = {}
        else:
            fields = obj
            message = ""
            for key in MESSAGE_KEYS:
                v = fields.get(key)
                if isinstance(v, str):
                    message = v
                    break
            else:
                message = _decode(line)
            for key in LEVEL_KEYS:
                if key in fields:
                    level = normalize_level(fields[key])
                    break
        rec: dict[str, Any] = {
            "timestamp": format_rfc3339(ts[i]),
            "observed_timestamp": observed,
            "level": level,
            "message": message,
            "fields": fields,
            "labels": labels,
            "source": {"path": path, "offset": offsets[i]},
        }
        if info.attributes:
            rec["attributes"] = info.attributes
        if (
            (obj is None and fmt != "raw" and line.lstrip()[:1] == b"{")
            or (obj is None and fmt == "json")
            or info.malformed
        ):
            rec["malformed"] = True
        append(rec)
    return records
