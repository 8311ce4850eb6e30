"""Enrichment: labels that say where a line comes from.

* Static identity, computed once at start-up: the host name, and the pod's identity from the
  Kubernetes downward API, as environment variables (``POD_NAME``, ``POD_NAMESPACE``,
  ``NODE_NAME``, ``POD_UID``, ``POD_IP`` by default) and as mounted files
  (``/etc/podinfo/labels``, ``annotations``: one ``key="value"`` per line, the value quoted and
  escaped like a Go string). These join the source's labels (the source's own labels win) and
  cost nothing per line: a batch gets a shared, already-merged :class:`SourceInfo`.
* Labels from record fields (``field_labels``): the batch is split into one part per distinct
  combination of values, each part carrying those values as labels. A cardinality guard counts
  the distinct values of each field over a window; a field that exceeds ``max_values`` is
  refused as a label for good, with one warning (its value stays in the record's fields).
"""

from __future__ import annotations

import logging
import os
import re
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from logship.config.transforms import EnrichConfig
from logship.parsing.batch import Batch, SourceInfo
from logship.transforms.batchops import (
    field_column,
    group_indices,
    parse_objects,
    select,
    split_by_code,
)
from logship.transforms.filter import level_codes, level_column
from logship.transforms.jsonlevels import LevelWords
from logship.transforms.scan import BatchScan

log = logging.getLogger("logship.transforms")

_LINE = re.compile(r'^\s*([^=\s][^=]*?)\s*=\s*(".*")\s*$')
_ESCAPE = re.compile(r"\\(?:x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|([0-7]{3})|(.))")
_SIMPLE = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v"}


def _unescape(m: re.Match[str]) -> str:
    hx, u4, u8, octal, ch = m.groups()
    if hx or octal:  # Go escapes bytes this way: kept as the character of that code point
        return chr(int(hx, 16) if hx else int(octal, 8))
    if u4 or u8:
        return chr(int(u4 or u8, 16))
    return _SIMPLE.get(ch, ch)


def parse_downward_file(text: str) -> dict[str, str]:
    """``key="value"`` lines of a downward API volume file; lines that are not are skipped."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if m is None:
            continue
        out[m.group(1)] = _ESCAPE.sub(_unescape, m.group(2)[1:-1])
    return out


def _read_downward(path: str) -> dict[str, str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return parse_downward_file(f.read())
    except FileNotFoundError:
        log.info("no downward API file; its labels are not added", extra={"file": path})
    except OSError as e:
        log.warning("cannot read downward API file", extra={"file": path, "error": str(e)})
    return {}


def static_labels(
    cfg: EnrichConfig,
    env: Mapping[str, str] | None = None,
    hostname: Callable[[], str] = socket.gethostname,
) -> dict[str, str]:
    """The labels enrichment adds to every line of a source, read once."""
    env = os.environ if env is None else env
    labels: dict[str, str] = {}
    k8s = cfg.kubernetes
    if k8s is not None:
        wanted = set(k8s.pod_labels) if k8s.pod_labels is not None else None
        for path, everything in ((k8s.labels_file, True), (k8s.annotations_file, False)):
            if path is None:
                continue
            for key, value in _read_downward(path).items():
                # Annotations are long and many: only the ones asked for by name.
                if (wanted is None and everything) or (wanted is not None and key in wanted):
                    labels[k8s.prefix + key] = value
        for label, var in k8s.env.items():
            value = env.get(var, "")
            if value:
                labels[label] = value
    if cfg.host is not None:
        labels[cfg.host] = hostname()
    return labels


class Enricher:
    """Static labels and field labels of one source: a batch in, one part per label set out."""

    def __init__(
        self,
        cfg: EnrichConfig,
        source: str,
        labels: dict[str, str],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.labels = labels
        self.fields = list(cfg.field_labels)
        self.max_values = cfg.max_values
        self.window = cfg.window
        self.clock = clock
        self.window_start = clock()
        self.seen: dict[str, set[str]] = {f: set() for f in self.fields}
        self.refused: set[str] = set()
        self._infos: dict[Any, tuple[SourceInfo, SourceInfo]] = {}
        self._level_only = True
        self._words = LevelWords()  # the level words this source's lines were seen with

    def _info(self, base: SourceInfo, extra: tuple[tuple[str, str], ...]) -> SourceInfo:
        """The merged info for a file's info and field values, made once and shared."""
        key = (id(base), extra)
        hit = self._infos.get(key)
        if hit is not None and hit[0] is base:
            return hit[1]
        if len(self._infos) > 10_000:
            self._infos.clear()
        labels = {**self.labels, **dict(extra), **base.labels}
        info = SourceInfo(base.source, base.path, base.format, labels)
        self._infos[key] = (base, info)  # holding base keeps its id from being reused
        return info

    def _roll_window(self) -> None:
        now = self.clock()
        if now - self.window_start >= self.window:
            self.window_start = now
            for s in self.seen.values():
                s.clear()

    def _admit(self, f: str, values: Iterable[str | None]) -> bool:
        """Whether field ``f`` stays a label after seeing ``values`` (the cardinality guard)."""
        seen = self.seen[f]
        seen.update(v for v in values if v is not None)
        if len(seen) <= self.max_values:
            return True
        self.refused.add(f)
        seen.clear()
        log.warning(
            "field label refused: too many distinct values; the field stays in records",
            extra={"source": self.source, "field": f, "max_values": self.max_values},
        )
        return False

    def _level_parts(
        self, batch: Batch, scan: BatchScan | None
    ) -> list[tuple[tuple[tuple[str, str], ...], Batch]] | None:
        """The parts by the level alone, from the level codes (no column of strings); None
        when the batch needs the general path, empty when the label was refused."""
        found = level_codes(batch, scan, self._level_only, self._words)
        if found is None:
            return None
        values, codes, missing = found
        self._level_only = not missing  # this source's lines have a "level" key (or not)
        self._roll_window()
        if not self._admit("level", values):
            return []
        if len(values) > 1:
            # Once for the whole batch, then cut per part: cheaper than once per part.
            batch.timestamps()
        parts = split_by_code(batch, codes, len(values))
        return [(_extra(["level"], (v,)), part) for v, part in zip(values, parts, strict=True)]

    def _columns(
        self, batch: Batch, scan: BatchScan | None = None
    ) -> list[tuple[str, list[str | None]]]:
        active = [f for f in self.fields if f not in self.refused]
        if not active:
            return []
        # The level alone does not need each line's object (see jsonlevels.py).
        need_objs = batch._records is None and any(f != "level" for f in active)
        objs = parse_objects(batch) if need_objs else None
        cols: list[tuple[str, list[str | None]]] = []
        for f in active:
            if f == "level":
                cols.append((f, level_column(batch, objs, scan)))
                continue
            src = objs if objs is not None else [r["fields"] for r in batch.records()]
            cols.append((f, field_column(src, f)))
        self._roll_window()
        return [(f, col) for f, col in cols if self._admit(f, set(col))]

    def _parts(
        self, batch: Batch, scan: BatchScan | None
    ) -> list[tuple[tuple[tuple[str, str], ...], Batch]]:
        """Each part with the labels its field values add (none: no part, the whole batch
        goes without field labels)."""
        if [f for f in self.fields if f not in self.refused] == ["level"]:
            fast = self._level_parts(batch, scan)
            if fast is not None:
                return fast
        cols = self._columns(batch, scan)
        if not cols:
            return []
        names = [f for f, _ in cols]
        if len(cols) == 1:
            groups = {(v,): idx for v, idx in group_indices(cols[0][1]).items()}
        else:
            groups = group_indices(list(zip(*(c for _, c in cols), strict=True)))
        if len(groups) == 1:
            return [(_extra(names, next(iter(groups))), batch)]
        batch.timestamps()  # once for the whole batch, then sliced per part
        return [(_extra(names, values), select(batch, idx)) for values, idx in groups.items()]

    def apply(self, batch: Batch, scan: BatchScan | None = None) -> list[Batch]:
        """One part per label set; ``scan``: the batch's shared scan, if a step made one."""
        parts = self._parts(batch, scan) if self.fields and batch.lines else []
        if not parts:
            batch.info = self._info(batch.info, ())
            return [batch]
        base = batch.info
        for extra, part in parts:
            part.info = self._info(base, extra)
        return [part for _, part in parts]


def _extra(names: list[str], values: tuple[str | None, ...]) -> tuple[tuple[str, str], ...]:
    """The labels of one part: its field values, without the empty ones."""
    return tuple((n, v) for n, v in zip(names, values, strict=True) if v not in (None, ""))
