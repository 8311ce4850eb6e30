"""What every parser returns: one batch's results as columns, one entry per line.

Columns rather than one object per line: the parsers fill plain lists, and the
record builder (formats.py) walks them once. A line a parser could not read is
kept raw (``fields[i] is None``) and listed in ``malformed``.
"""

from __future__ import annotations

from typing import Any

from logship.parsing.options import ParseOptions
from logship.parsing.timestamps import TIME_KEYS

LEVEL_KEYS = ("level", "lvl", "severity")
MESSAGE_KEYS = ("msg", "message")


class Parsed:
    """Per-line results of one parser over one batch.

    - ``fields``: the parsed fields, or None for a line kept raw (raw format, or malformed);
    - ``timestamps``: epoch ns from the line, None for "use the read time"; the whole
      column is None when the JSON fast path (formats.timestamp_column) provides it;
    - ``levels``: the level word as written (``"WARNING"``, ``"crit"``), normalized later;
    - ``messages``: the message, or None for "the whole line";
    - ``malformed``: indices of lines that should have parsed but did not.
    """

    __slots__ = ("fields", "levels", "malformed", "messages", "timestamps")

    def __init__(
        self,
        fields: list[dict[str, Any] | None],
        timestamps: list[int | None] | None,
        levels: list[str | None],
        messages: list[str | None],
        malformed: list[int] | None = None,
    ) -> None:
        self.fields = fields
        self.timestamps = timestamps
        self.levels = levels
        self.messages = messages
        self.malformed = [] if malformed is None else malformed

    @classmethod
    def raw(cls, n: int, malformed: list[int] | None = None) -> Parsed:
        return cls([None] * n, [None] * n, [None] * n, [None] * n, malformed or [])

    def slice(self, lo: int, hi: int) -> Parsed:
        """Lines ``lo`` to ``hi`` (a batch split in halves keeps its parse)."""
        ts = self.timestamps
        return Parsed(
            self.fields[lo:hi],
            None if ts is None else ts[lo:hi],
            self.levels[lo:hi],
            self.messages[lo:hi],
            [i - lo for i in self.malformed if lo <= i < hi],
        )


def _first(obj: dict[str, Any], named: str | None, keys: tuple[str, ...]) -> Any:
    if named is not None:
        if named in obj:
            return obj[named]
        if "." in named:  # a nested JSON field: "log.level"
            cur: Any = obj
            for part in named.split("."):
                if not isinstance(cur, dict) or part not in cur:
                    return None
                cur = cur[part]
            return cur
        return None
    for k in keys:
        v = obj.get(k)
        if v is not None:
            return v
    return None


def from_fields(
    objs: list[dict[str, Any] | None],
    opts: ParseOptions,
    read_ns: int,
    malformed: list[int],
    with_timestamps: bool = True,
) -> Parsed:
    """Timestamp, level and message of field dicts (JSON, logfmt, regex groups).

    The configured field names win; otherwise the usual names (``ts``/``time``/
    ``timestamp``/``@timestamp``, ``level``/``lvl``/``severity``, ``msg``/``message``).
    """
    levels: list[str | None] = []
    messages: list[str | None] = []
    times: list[Any] = []
    lf, mf, tf = opts.level_field, opts.message_field, opts.timestamp.field
    for obj in objs:
        if obj is None:
            levels.append(None)
            messages.append(None)
            times.append(None)
            continue
        # The same rules as the Elasticsearch and OTLP encoders: the first level key present
        # wins even when null; the message is the first of msg/message that is a string.
        if lf is None:
            lv = next((obj[k] for k in LEVEL_KEYS if k in obj), None)
        else:
            lv = _first(obj, lf, LEVEL_KEYS)
        levels.append(None if lv is None else str(lv))
        if mf is None:
            msg = next((v for k in MESSAGE_KEYS if isinstance(v := obj.get(k), str)), None)
        else:
            msg = _first(obj, mf, MESSAGE_KEYS)
        messages.append(msg if isinstance(msg, str) else None)
        if with_timestamps:
            times.append(_first(obj, tf, TIME_KEYS))
    timestamps = opts.timestamp.column(times, read_ns) if with_timestamps else None
    return Parsed(objs, timestamps, levels, messages, malformed)


def parse_raw(lines: list[bytes], opts: ParseOptions, read_ns: int) -> Parsed:
    """``raw``: every line kept as it is."""
    return Parsed.raw(len(lines))
