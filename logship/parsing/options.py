"""A source's parsing options, resolved once per source rather than once per line.

The config model holds what the user wrote (strings); this module turns it into
what the parsers use: a compiled pattern, a time zone object and a timestamp
rule that converts a whole column of field values to epoch nanoseconds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, tzinfo
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from logship.config.model import SourceConfig


def zone(name: str) -> tzinfo:
    """``UTC`` or an IANA zone name (``Europe/Berlin``); raises ValueError when unknown."""
    if name.upper() == "UTC":
        return UTC
    from zoneinfo import ZoneInfo  # imported when needed: it costs start-up time

    try:
        return ZoneInfo(name)
    except (ValueError, KeyError, OSError) as e:  # ZoneInfoNotFoundError is a KeyError
        raise ValueError(f"unknown time zone {name!r} (an IANA name: Europe/Berlin)") from e


class TimestampRule:
    """Where a record's time is and how it is written.

    ``format`` is ``auto`` (numbers and digit strings by their size, text as
    RFC 3339), ``rfc3339``, one of the epoch units, or a strptime pattern (it
    contains ``%``). ``timezone`` applies to times written without an offset.
    (Plain classes, not dataclasses, here and in parsed.py: building a dataclass
    costs start-up time on every run.)
    """

    __slots__ = ("field", "format", "timezone")

    def __init__(self, field: str | None = None, format: str = "auto", timezone: tzinfo = UTC):
        self.field = field
        self.format = format
        self.timezone = timezone

    @property
    def is_default(self) -> bool:
        return self.field is None and self.format == "auto" and self.timezone is UTC

    def to_ns(self, value: object, read_ns: int) -> int | None:
        """One value to epoch ns, None when it is not a time of this format (never raises)."""
        from logship.parsing.timevalues import to_ns

        return to_ns(self, value, read_ns)

    def column(self, values: Iterable[object], read_ns: int) -> list[int | None]:
        """Values to epoch ns (see :func:`logship.parsing.timevalues.column`)."""
        from logship.parsing.timevalues import column

        return column(self, values, read_ns)


class ParseOptions:
    """Per-source parsing settings; the defaults read the usual field names."""

    __slots__ = ("level_field", "message_field", "regex", "timestamp")

    def __init__(
        self,
        regex: re.Pattern[str] | None = None,
        timestamp: TimestampRule | None = None,
        level_field: str | None = None,
        message_field: str | None = None,
    ) -> None:
        self.regex = regex
        self.timestamp = timestamp if timestamp is not None else TimestampRule()
        self.level_field = level_field
        self.message_field = message_field

    @property
    def fast_json_timestamps(self) -> bool:
        """True when JSON lines may take the whole-batch timestamp path of formats.py."""
        return self.timestamp.is_default


DEFAULT_OPTIONS = ParseOptions()


def options_of(src: SourceConfig) -> ParseOptions:
    """The resolved options of a validated source config."""
    ts = src.timestamp
    return ParseOptions(
        regex=re.compile(src.regex) if src.regex else None,
        timestamp=TimestampRule(ts.field, ts.format, zone(ts.timezone)),
        level_field=src.level_field,
        message_field=src.message_field,
    )
