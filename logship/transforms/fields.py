"""``rename`` and ``remove``: change the fields of JSON lines.

The Loki sink sends the line text, so a field change has to rewrite the line: the batch is
parsed in one C call, the objects that have one of the fields are changed and re-serialized with
orjson (compact, keys in their original order, a renamed key moved to the end); lines without
the fields and non-JSON lines keep their original bytes. Timestamps are read from the original
text (see :func:`logship.transforms.batchops.replace_lines`).
"""

from __future__ import annotations

from typing import Any

import orjson

from logship.config.transforms import RemoveTransform, RenameTransform
from logship.parsing.batch import Batch
from logship.transforms.batchops import parse_objects, replace_lines, split_path

_MISSING = object()


def _pop(obj: dict[str, Any], path: tuple[str, ...]) -> Any:
    """Remove and return the value at ``path`` (``_MISSING`` when absent)."""
    whole = ".".join(path)
    if len(path) > 1 and whole in obj:
        return obj.pop(whole)
    parent: Any = obj
    for key in path[:-1]:
        parent = parent.get(key) if isinstance(parent, dict) else None
        if not isinstance(parent, dict):
            return _MISSING
    return parent.pop(path[-1], _MISSING)


def _put(obj: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    parent = obj
    for key in path[:-1]:
        child = parent.get(key)
        if not isinstance(child, dict):
            child = parent[key] = {}
        parent = child
    parent[path[-1]] = value


class FieldEditor:
    """One ``rename`` or ``remove`` step."""

    def __init__(self, cfg: RenameTransform | RemoveTransform) -> None:
        if isinstance(cfg, RenameTransform):
            self.renames = [(split_path(a), split_path(b)) for a, b in cfg.fields.items()]
            self.removals: list[tuple[str, ...]] = []
        else:
            self.renames = []
            self.removals = [split_path(f) for f in cfg.fields]
        # A cheap pre-check: a line can only have a field whose first key it contains.
        firsts = [p[0] for p, _ in self.renames] + [p[0] for p in self.removals]
        self.needles = [orjson.dumps(k) for k in dict.fromkeys(firsts)]

    def edit(self, obj: dict[str, Any]) -> bool:
        changed = False
        for src, dst in self.renames:
            v = _pop(obj, src)
            if v is not _MISSING:
                _put(obj, dst, v)
                changed = True
        for path in self.removals:
            if _pop(obj, path) is not _MISSING:
                changed = True
        return changed

    def apply(self, batch: Batch) -> Batch:
        lines = batch.lines
        if not lines or batch.info.format not in ("auto", "json"):
            return batch
        joined = b"\n".join(lines)
        if not any(n[1:-1] in joined for n in self.needles):
            return batch
        changed: dict[int, bytes] = {}
        for i, obj in enumerate(parse_objects(batch)):
            if obj is not None and self.edit(obj):
                changed[i] = orjson.dumps(obj)
        return replace_lines(batch, changed)
