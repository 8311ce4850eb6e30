"""Batch surgery shared by the transforms: keep some lines, replace line text, find lines.

The derived batches keep the per-line ``offsets`` of the original lines and its ``end_offset``,
so acknowledgements and checkpoints are unaffected by what a transform did to the text.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Iterable
from typing import Any

import orjson

from logship.parsing.batch import Batch

_FORMATS_WITH_JSON = ("auto", "json")


def _derived(batch: Batch, lines: list[bytes], offsets: list[int]) -> Batch:
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
    out.nbytes = sum(map(len, lines)) + len(lines)
    return out


def select(batch: Batch, keep: list[int]) -> Batch:
    """The lines at ``keep`` (ascending indices); same end offset, so acks cover the rest."""
    if len(keep) == len(batch.lines):
        return batch
    lines = batch.lines
    offsets = batch.line_offsets()
    out = _derived(batch, [lines[i] for i in keep], [offsets[i] for i in keep])
    if batch._ts is not None:
        out._ts = batch._ts.take(keep)
    if batch._records is not None:
        records = batch._records
        out._records = [records[i] for i in keep]
    return out


def replace_lines(batch: Batch, changed: dict[int, bytes]) -> Batch:
    """The batch with some lines' text replaced.

    The timestamps are taken from the original text first: the time of an event does not
    change because a secret in it was masked (and a masked epoch number cannot lose it).
    Records are derived again from the new text when a sink asks for them.
    """
    if not changed:
        return batch
    ts = batch.timestamps()
    offsets = batch.line_offsets()
    lines = list(batch.lines)
    for i, text in changed.items():
        lines[i] = text
    out = _derived(batch, lines, offsets)
    out._ts = ts
    return out


def line_starts(lines: list[bytes]) -> list[int]:
    """Where each line starts in ``b"\\n".join(lines)``."""
    return list(itertools.accumulate(map(len, lines[:-1]), lambda a, n: a + n + 1, initial=0))


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
    """The JSON object of each line (None for other lines), parsed in one C call when possible."""
    lines = batch.lines
    n = len(lines)
    if batch.info.format not in _FORMATS_WITH_JSON:
        records = batch.records()
        return [r.get("fields") or None for r in records]
    out: list[dict[str, Any] | None] = [None] * n
    candidates = [i for i, line in enumerate(lines) if line.lstrip()[:1] == b"{"]
    if not candidates:
        return out
    try:
        parsed = orjson.loads(b"[" + b",".join([lines[i] for i in candidates]) + b"]")
        if len(parsed) == len(candidates):
            for i, obj in zip(candidates, parsed, strict=True):
                out[i] = obj if isinstance(obj, dict) else None
            return out
    except orjson.JSONDecodeError:
        pass
    for i in candidates:  # a malformed line in the batch: parse line by line
        try:
            obj = orjson.loads(lines[i])
        except orjson.JSONDecodeError:
            continue
        out[i] = obj if isinstance(obj, dict) else None
    return out


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
