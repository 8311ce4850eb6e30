"""``drop`` and ``keep``: remove lines by level, field value or regular expression.

The conditions are evaluated as columns over the whole batch (one JSON parse of the batch in
C when a level or field is asked for, one regex search over the joined batch for a pattern), so
the per-line Python work is a comprehension, not a call chain. Dropped lines are counted under
``drop`` / ``keep`` in the source's telemetry, and acknowledged with the rest of the batch.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from logship.config.transforms import DropTransform, KeepTransform
from logship.parsing.batch import Batch
from logship.parsing.levels import normalize_level
from logship.parsing.parsed import LEVEL_KEYS
from logship.telemetry import Telemetry
from logship.transforms.batchops import field_column, matching_lines, parse_objects, select
from logship.transforms.jsonlevels import LevelWords, raw_level_codes, raw_levels
from logship.transforms.scan import BatchScan


class _Levels(dict[Any, str | None]):
    """Level value -> normalized level, filled on first sight (a handful of words per log).

    Only strings (and None) are keys: values of other types can be equal without meaning the
    same level (``True == 1 == 1.0``, normalized ``true``, ``1``, ``1.0``), so those are
    cached apart, by type and value.
    """

    def __init__(self) -> None:
        super().__init__()
        self.typed: dict[tuple[type, Any], str | None] = {}

    def __missing__(self, raw: Any) -> str | None:
        if raw is None or type(raw) is str:
            level = normalize_level(raw)
            if len(self) < 1000:
                self[raw] = level
            return level
        key = (type(raw), raw)
        if key in self.typed:
            return self.typed[key]
        level = normalize_level(raw)
        if len(self.typed) < 1000:
            self.typed[key] = level
        return level


_LEVELS = _Levels()
_NO_LEVEL = object()


def _level_of(obj: dict[str, Any] | None) -> str | None:
    if obj is None:
        return None
    for key in LEVEL_KEYS:
        if key in obj:
            raw = obj[key]
            try:
                return _LEVELS[raw]
            except TypeError:  # an unhashable level value (a list): rare, not cached
                return normalize_level(raw)
    return None


def level_column(
    batch: Batch,
    objs: list[dict[str, Any] | None] | None = None,
    scan: BatchScan | None = None,
) -> list[str | None]:
    """The normalized level of each line (as in the normalized record); None without one.

    The common case, every line an object with a ``level`` key holding a string, is two C
    ``map`` passes; other lines go through the per-line lookup of every level key. ``scan``
    is the batch's shared scan when an earlier step (``redact``) made one.
    """
    if batch._records is not None:
        return [r["level"] for r in batch._records]
    if objs is None:
        # The formats parse_objects reads as JSON; raw_levels gives hashable values only.
        raw = raw_levels(batch.lines, scan) if batch.info.format in ("json", "auto") else None
        if raw is not None:
            return list(map(_LEVELS.__getitem__, raw))
        objs = parse_objects(batch)
    if None not in objs:
        n = len(objs)
        get: Any = dict.get
        raw = list(map(get, objs, itertools.repeat("level", n), itertools.repeat(_NO_LEVEL, n)))
        if _NO_LEVEL not in raw:
            try:
                return list(map(_LEVELS.__getitem__, raw))
            except TypeError:
                pass
    return list(map(_level_of, objs))


def level_codes(
    batch: Batch,
    scan: BatchScan | None = None,
    level_only: bool = False,
    words: LevelWords | None = None,
) -> tuple[list[str | None], bytes, bool] | None:
    """The level column as its distinct values (first seen first), one byte per line (the
    index of the line's value), and whether a line had no ``level`` key (then ``lvl`` or
    ``severity`` may give its level: ``level_only`` is worth trying again when not); None
    when :func:`level_column` must answer instead.

    Grouping lines by level needs no list of level strings: the raw values are normalized
    once per distinct value, and each line's code is one C ``map`` over the raw values.
    """
    if batch._records is not None or batch.info.format not in ("json", "auto"):
        return None
    found = raw_level_codes(batch.lines, scan, level_only, words)
    if found is None:
        return None
    distinct, codes, missing = found
    index: dict[str | None, int] = {}
    remap = bytes(index.setdefault(_LEVELS[v], len(index)) for v in distinct)
    if len(index) < len(distinct):  # raw values that mean one level ("INFO" and "info")
        codes = codes.translate(remap.ljust(256, b"\0"))
    return list(index), codes, missing


class LineFilter:
    """One ``drop`` or ``keep`` step."""

    def __init__(
        self, cfg: DropTransform | KeepTransform, source: str, telemetry: Telemetry
    ) -> None:
        self.keep_matching = cfg.type == "keep"
        self.reason = cfg.type
        self.source = source
        self.telemetry = telemetry
        self.levels = frozenset(cfg.level) if cfg.level is not None else None
        self.field = cfg.field
        self.values = frozenset(cfg.values) if cfg.values is not None else None
        self.regex: re.Pattern[bytes] | None = None
        self.joined_regex: re.Pattern[bytes] | None = None
        self.text_regex: re.Pattern[str] | None = None
        if cfg.regex is not None:
            if cfg.field is None:
                self.regex = re.compile(cfg.regex.encode())
                self.joined_regex = re.compile(cfg.regex.encode(), re.MULTILINE)
            else:
                self.text_regex = re.compile(cfg.regex)

    def matches(self, batch: Batch) -> list[bool]:
        """Whether each line meets every condition."""
        lines = batch.lines
        n = len(lines)
        result = [True] * n
        objs = None
        if self.levels is not None:
            if batch._records is None and self.field is not None:
                objs = parse_objects(batch)
            levels = self.levels
            result = [
                ok and lv in levels
                for ok, lv in zip(result, level_column(batch, objs), strict=True)
            ]
        if self.field is not None:
            if objs is None:
                objs = (
                    [r["fields"] for r in batch._records]
                    if batch._records is not None
                    else parse_objects(batch)
                )
            col = field_column(objs, self.field)
            if self.values is not None:
                values = self.values
                result = [ok and v in values for ok, v in zip(result, col, strict=True)]
            if self.text_regex is not None:
                search = self.text_regex.search
                result = [
                    ok and v is not None and search(v) is not None
                    for ok, v in zip(result, col, strict=True)
                ]
        if self.regex is not None and self.joined_regex is not None:
            hits = set(matching_lines(self.joined_regex, self.regex, b"\n".join(lines), lines))
            result = [ok and i in hits for i, ok in enumerate(result)]
        return result

    def apply(self, batch: Batch) -> Batch:
        if not batch.lines:
            return batch
        want = self.keep_matching
        keep = [i for i, m in enumerate(self.matches(batch)) if m is want]
        dropped = len(batch.lines) - len(keep)
        if dropped:
            self.telemetry.transform_dropped(self.source, self.reason, dropped)
        return select(batch, keep)
