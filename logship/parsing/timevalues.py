"""Time values (field text or numbers) to epoch ns under a source's :class:`TimestampRule`.

Imported by the parsers on first use, not at start-up: the JSON fast path of
formats.py never needs it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING

from logship.parsing.timestamps import epoch_number_to_ns, parse_text_timestamp

if TYPE_CHECKING:
    from logship.parsing.options import TimestampRule

_NS = 1_000_000_000
EPOCH_UNITS = {"epoch_s": _NS, "epoch_ms": 1_000_000, "epoch_us": 1_000, "epoch_ns": 1}
_EPOCH_TEXT = re.compile(r"([+-]?)(\d+)(?:\.(\d*))?")
_RFC3339_SPLIT = re.compile(
    r"(\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d)((?:[.,]\d{1,9})?)(Z|z|[+-]\d\d:?\d\d)?"
)
# A line may be written up to this long after the clock that stamped it (clock skew) and
# still belong to the year in which it was read; see :func:`infer_year`.
_FUTURE_SLACK_NS = 86_400 * _NS
_YEAR_DIRECTIVES = ("%Y", "%y", "%G", "%s")


def infer_year(make: Callable[[int], datetime | None], read_ns: int, tz: tzinfo) -> int | None:
    """Epoch ns of a timestamp written without a year (RFC 3164 syslog, ``%b %d`` patterns).

    ``make(year)`` builds the datetime for a candidate year. The year chosen is the
    latest of next year, this year and last year (in ``tz``, at read time) that does not
    put the line more than a day after it was read: lines from December read in
    January belong to last year, a line stamped just after midnight on New Year's Eve
    by a clock slightly ahead belongs to next year.
    """
    year = datetime.fromtimestamp(read_ns // _NS, tz).year
    latest = read_ns + _FUTURE_SLACK_NS
    for y in (year + 1, year, year - 1):
        dt = make(y)
        if dt is None:  # Feb 29 in a year without one
            continue
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=tz)
        ns = int(dt.timestamp()) * _NS + dt.microsecond * 1000
        if ns <= latest:
            return ns
    return None


def _epoch_text(text: str, unit_ns: int | None) -> int | None:
    """Exact epoch ns from digits; ``unit_ns`` None guesses the unit by size like numbers."""
    m = _EPOCH_TEXT.fullmatch(text)
    if m is None:
        return None
    sign, whole, frac = m.groups()
    if unit_ns is None:
        n = len(whole.lstrip("0"))
        unit_ns = 1 if n >= 18 else 1_000 if n >= 15 else 1_000_000 if n >= 12 else _NS
    ns = int(whole) * unit_ns
    if frac:
        ns += int(frac) * unit_ns // 10 ** len(frac)
    return -ns if sign == "-" else ns


def _epoch_number(value: int | float, unit_ns: int) -> int:
    if isinstance(value, int):
        return value * unit_ns
    if unit_ns >= 1_000:  # a double holds microseconds of an epoch, not nanoseconds
        return round(value * (unit_ns // 1_000)) * 1_000
    return round(value)


def column(rule: TimestampRule, values: Iterable[object], read_ns: int) -> list[int | None]:
    """Values to epoch ns; equal values convert once.

    RFC 3339 text is split into its whole second (with zone), converted once per
    distinct second, and its fraction, converted once per distinct fraction: lines
    of one batch share a handful of seconds, so most values cost one regex match.
    """
    cache: dict[object, int | None] = {}
    seconds: dict[tuple[str, str | None], int | None] = {}
    fractions: dict[str, int] = {}
    split = _RFC3339_SPLIT.fullmatch if rule.format in ("auto", "rfc3339") else None
    out: list[int | None] = []
    for v in values:
        if v is None:
            out.append(None)
            continue
        if split is not None and type(v) is str and (m := split(v)) is not None:
            head, frac, z = m.groups()
            if (head, z) in seconds:
                sec = seconds[head, z]
            else:
                sec = seconds[head, z] = parse_text_timestamp(head + (z or ""), rule.timezone)
            if sec is None:
                out.append(None)
                continue
            f = fractions.get(frac)
            if f is None:
                f = fractions[frac] = int(frac[1:].ljust(9, "0")) if frac else 0
            out.append(sec + f)
            continue
        key = (type(v), v) if isinstance(v, str | int | float) else None
        if key is not None and key in cache:
            out.append(cache[key])
            continue
        ns = to_ns(rule, v, read_ns)
        if key is not None:
            cache[key] = ns
        out.append(ns)
    return out


def to_ns(rule: TimestampRule, value: object, read_ns: int) -> int | None:
    """One value to epoch ns, None when it is not a time of this format (never raises)."""
    try:
        return _to_ns(rule, value, read_ns)
    except (ValueError, OverflowError, OSError):
        return None


def _to_ns(rule: TimestampRule, value: object, read_ns: int) -> int | None:
    fmt = rule.format
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        if fmt in EPOCH_UNITS:
            return _epoch_number(value, EPOCH_UNITS[fmt])
        return epoch_number_to_ns(value) if fmt == "auto" else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if fmt == "auto":
        ns = _epoch_text(text, None)
        return ns if ns is not None else parse_text_timestamp(text, rule.timezone)
    if fmt == "rfc3339":
        return parse_text_timestamp(text, rule.timezone)
    if fmt in EPOCH_UNITS:
        return _epoch_text(text, EPOCH_UNITS[fmt])
    return _strptime(rule, text, read_ns)


def _strptime(rule: TimestampRule, text: str, read_ns: int) -> int | None:
    fmt, tz = rule.format, rule.timezone
    if not any(d in fmt for d in _YEAR_DIRECTIVES):

        def make(year: int) -> datetime | None:
            try:
                return datetime.strptime(f"{year} {text}", f"%Y {fmt}")
            except ValueError:
                return None

        return infer_year(make, read_ns, tz)
    dt = datetime.strptime(text, fmt)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz)
    return int(dt.timestamp()) * _NS + dt.microsecond * 1000
