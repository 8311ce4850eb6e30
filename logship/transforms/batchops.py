"""Batch surgery shared by the transforms: keep some lines, replace line text, find lines.

The derived batches keep the per-line ``offsets`` of the original lines and its ``end_offset``,
so acknowledgements and checkpoints are unaffected by what a transform did to the text.
"""

from __future__ import annotations

import bisect
import itertools
import operator
import re
from collections.abc import Iterable
from typing import Any, Protocol

from logship.parsing.batch import Batch, take
from logship.parsing.jsonlines import parse_objects as json_objects

_FORMATS_WITH_JSON = ("auto", "json")


def _derived(
    batch: Batch, lines: list[bytes], offsets: list[int] | None, nbytes: int | None = None
) -> Batch:
    out = Batch(
        batch.info,
        lines,
        batch.start_offset,
        batch.end_offset,
        batch.read_ns,
        batch.telemetry,
        offsets,
    )
    # Sizes feed the sinks' request batching: count what is left, not what was read.
    out.nbytes = sum(map(len, lines)) + len(lines) if nbytes is None else nbytes
    return out


def select(batch: Batch, keep: list[int], nbytes: int | None = None) -> Batch:
    """The lines at ``keep`` (ascending indices); same end offset, so acks cover the rest.
    ``nbytes``: their size, when the caller knows it."""
    if len(keep) == len(batch.lines):
        return batch
    out = _derived(batch, take(batch.lines, keep), None, nbytes)
    out.offsets_from(batch, keep)
    ts = batch._ts
    if ts is not None:
        out._ts = ts.select(keep, take(ts.seconds, keep), take(ts.fractions, keep))
    if batch._records is not None:
        out._records = take(batch._records, keep)
    return out


def split_by_code(batch: Batch, codes: bytes, k: int) -> list[Batch]:
    """One part per code ``0..k-1`` (one byte per line, every code used), lines in order.

    Index lists and ``take`` per column: cutting each column with one ``compress`` pass per
    code over a 0/1 mask was measured at ~230 instructions per line more with four codes.
    """
    if k == 1:
        return [batch]
    groups = indices_by_code(codes, k)
    # The largest part's size is what the others leave of the batch's: one pass over the
    # lengths of the smaller parts only.
    largest = max(range(k), key=lambda c: len(groups[c]))
    parts = [select(batch, idx, 0 if c == largest else None) for c, idx in enumerate(groups)]
    parts[largest].nbytes = max(0, batch.nbytes - sum(p.nbytes for p in parts))
    return parts


# Table i maps byte i to 1 and every other byte to 0.
_ONE_CODE = [bytes(1 if j == i else 0 for j in range(256)) for i in range(8)]


def group_indices(column: list[Any]) -> dict[Any, list[int]]:
    """Line indices by value, in first-seen order of the values.

    With few distinct values (levels, status classes) one C ``compress`` pass per value beats a
    Python loop over the lines; with many, the loop is cheaper.
    """
    distinct = dict.fromkeys(column)
    n = len(column)
    if len(distinct) == 1:
        return {next(iter(distinct)): list(range(n))}
    if len(distinct) <= len(_ONE_CODE):
        # Each line's value as one byte (one dict lookup per line, in C), then per value a
        # translate to 0/1 bytes that ``compress`` reads without comparing objects.
        code = {v: i for i, v in enumerate(distinct)}
        codes = bytes(map(code.__getitem__, column))
        return dict(zip(code, indices_by_code(codes, len(code)), strict=True))
    groups: dict[Any, list[int]] = {}
    for i, v in enumerate(column):
        groups.setdefault(v, []).append(i)
    return groups


_INDICES: list[int] = []
_KEPT_INDICES = 16_384  # ~600 KiB of ints at most: a 1 MiB batch of 64-byte lines


def _indices(n: int) -> list[int]:
    """``list(range(n))`` from one kept list of the ints: most are past the interpreter's
    small ints, and making (then freeing) one object per line of every batch costs more
    than slicing."""
    if n > _KEPT_INDICES:
        return list(range(n))
    if n > len(_INDICES):
        _INDICES.extend(range(len(_INDICES), min(max(n, 2 * len(_INDICES), 1024), _KEPT_INDICES)))
    return _INDICES[:n]


def indices_by_code(codes: bytes, k: int) -> list[list[int]]:
    """Line indices of each code ``0..k-1`` (one byte per line), ascending."""
    n = len(codes)
    if k == 1:
        return [list(range(n))]
    if k <= len(_ONE_CODE):
        # One list of the indices, shared by the passes: a range would make each int again.
        every = _indices(n)
        return [list(itertools.compress(every, codes.translate(t))) for t in _ONE_CODE[:k]]
    groups: list[list[int]] = [[] for _ in range(k)]
    for i, c in enumerate(codes):
        groups[c].append(i)
    return groups


def replace_lines(batch: Batch, changed: dict[int, bytes]) -> Batch:
    """The batch with some lines' text replaced.

    The timestamps are taken from the original text first: the time of an event does not
    change because a secret in it was masked (and a masked epoch number cannot lose it).
    Records are derived again from the new text when a sink asks for them.
    """
    if not changed:
        return batch
    ts = batch.timestamps()
    lines = list(batch.lines)
    grown = 0
    for i, text in changed.items():
        grown += len(text) - len(lines[i])
        lines[i] = text
    out = _derived(batch, lines, None, batch.nbytes + grown)
    out.offsets_from(batch, None)  # the lines' positions in the file did not change
    out._ts = ts
    return out


class LineStarts:
    """Where each line of ``b"\\n".join(lines)`` starts, computed (in C) on first use.

    Given the batch the lines are from, its own line offsets are used when it has none yet:
    they are the same starts shifted by the batch's start offset, and computing them here
    saves :func:`select` a second pass when a later step splits the batch.
    """

    __slots__ = ("_base", "_batch", "_lines", "_starts")

    def __init__(self, lines: list[bytes], batch: Batch | None = None) -> None:
        self._lines = lines
        self._batch = batch if batch is not None and batch.lines is lines else None
        self._starts: list[int] | None = None
        self._base = 0

    def starts(self) -> list[int]:
        if self._starts is None:
            b = self._batch
            if b is not None and b.offsets_are_lengths():
                self._starts, self._base = b.line_offsets(), b.start_offset
            else:
                self._starts = line_starts(self._lines)
        return self._starts

    def line_of(self, pos: int) -> int:
        """The index of the line holding position ``pos`` of the joined text."""
        return bisect.bisect_right(self.starts(), pos + self._base) - 1

    def start(self, i: int) -> int:
        """Where line ``i`` starts in the joined text."""
        return self.starts()[i] - self._base

    def hit(self, pos: int, first: int) -> tuple[int, int]:
        """The line of a search hit at ``pos`` and where the next line starts (see
        :class:`LineIndex`)."""
        i = self.line_of(pos)
        return i, self.start(i + 1) if i + 1 < len(self._lines) else -1


class LineIndex(Protocol):
    """Where the lines of a joined text start: :class:`LineStarts`, or a batch's scan."""

    def hit(self, pos: int, first: int) -> tuple[int, int]:
        """The index of the line holding ``pos``, a hit of a search that found nothing
        from the start of line ``first`` up to it, and where the line after it starts (-1
        past the last line)."""
        ...


def lines_containing(
    haystack: bytes,
    needle: bytes,
    lines: list[bytes],
    found: set[int],
    starts: LineIndex | None = None,
) -> None:
    """Add to ``found`` the index of each line with ``needle``.

    ``haystack`` is ``b"\\n".join(lines)``, or a same-length translation of it. C ``find``
    calls locate the hits; each hit's line comes from the line starts (computed, in C, only
    when there is a hit) and the search resumes at the next line.
    """
    pos = haystack.find(needle)
    if pos == -1:
        return
    if starts is None:
        starts = LineStarts(lines)
    first = 0
    while pos != -1:
        i, after = starts.hit(pos, first)
        found.add(i)
        if after < 0:
            return
        first = i + 1
        pos = haystack.find(needle, after)


def line_starts(lines: list[bytes], first: int = 0) -> list[int]:
    """Where each line starts in ``b"\\n".join(lines)`` (plus ``first``), as C loops."""
    return list(
        itertools.accumulate(
            map(operator.add, map(len, lines[:-1]), itertools.repeat(1)), initial=first
        )
    )


def matching_lines(
    joined_pattern: re.Pattern[bytes],
    line_pattern: re.Pattern[bytes],
    joined: bytes,
    lines: list[bytes],
) -> list[int]:
    """Indices of the lines ``line_pattern`` finds something in, found with C-speed searches.

    ``joined_pattern`` (the same expression compiled with MULTILINE, so ``^``/``$`` work per
    line) searches the whole batch at once; each hit is confirmed on its own line, which keeps
    a hit that spans a line break from counting, and the search resumes at the next line.
    """
    m = joined_pattern.search(joined)
    if m is None:
        return []
    starts = line_starts(lines)
    n = len(lines)
    out: list[int] = []
    while m is not None:
        i = bisect.bisect_right(starts, m.start()) - 1
        if line_pattern.search(lines[i]) is not None:
            out.append(i)
        if i + 1 >= n:
            break
        m = joined_pattern.search(joined, starts[i + 1])
    return out


def parse_objects(batch: Batch) -> list[dict[str, Any] | None]:
    """The JSON object of each line (None for other lines), parsed in one C call when possible.

    Malformed lines are not counted here: the sinks' parse of the same batch counts them.
    """
    if batch.info.format not in _FORMATS_WITH_JSON:
        records = batch.records()
        return [r.get("fields") or None for r in records]
    return json_objects(batch.lines, batch.info.format)[0]


def get_path(obj: dict[str, Any], path: tuple[str, ...]) -> Any:
    """The value at a dotted path; a key that contains dots is tried whole first."""
    v: Any = obj
    for key in path:
        if not isinstance(v, dict):
            return None
        v = v.get(key)
    return v


def split_path(path: str) -> tuple[str, ...]:
    return tuple(path.split("."))


def as_text(value: Any) -> str | None:
    """A field value as the text users write in config (JSON spelling for true/false)."""
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def field_column(objs: Iterable[dict[str, Any] | None], path: str) -> list[str | None]:
    """One field's value as text per line; None where the line has no such field."""
    keys = split_path(path)
    out: list[str | None] = []
    for obj in objs:
        if obj is None:
            out.append(None)
            continue
        v = obj.get(path) if len(keys) > 1 and path in obj else get_path(obj, keys)
        out.append(as_text(v))
    return out
