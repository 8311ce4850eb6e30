"""Normalized records (README, "The normalized record") from a batch's parse."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from logship.parsing.levels import detect_levels, normalize_level, severity_number
from logship.parsing.timestamps import format_rfc3339

if TYPE_CHECKING:
    from logship.parsing.batch import Batch


def _decode(line: bytes) -> str:
    return line.decode("utf-8", "replace")


def normalize_records(batch: Batch) -> list[dict[str, Any]]:
    """The normalized record of every line (see README, "The normalized record")."""
    lines = batch.lines
    parsed = batch.parsed()
    ts = batch.timestamps().ns()
    offsets = batch.line_offsets()
    observed = format_rfc3339(batch.read_ns)
    info = batch.info
    labels = info.labels
    path = info.path
    attributes = info.attributes  # container stream, pod identity
    container_malformed = info.malformed  # a container line that did not parse
    objs, words, messages = parsed.fields, parsed.levels, parsed.messages
    bad = set(parsed.malformed)
    # Plain-text level detection, for lines kept raw (raw format, malformed, auto's raw).
    raw_idx = [i for i, o in enumerate(objs) if o is None]
    if raw_idx:
        words = list(words)
        found = detect_levels([lines[i] for i in raw_idx])
        for i, w in zip(raw_idx, found, strict=True):
            words[i] = w
    records: list[dict[str, Any]] = []
    append = records.append
    for i, line in enumerate(lines):
        word = words[i]
        message = messages[i]
        fields = objs[i]
        rec: dict[str, Any] = {
            "timestamp": format_rfc3339(ts[i]),
            "observed_timestamp": observed,
            "level": normalize_level(word),
            "severity_number": severity_number(word),
            "message": _decode(line) if message is None else message,
            "fields": {} if fields is None else fields,
            "labels": labels,
            "source": {"path": path, "offset": offsets[i]},
        }
        if attributes:
            rec["attributes"] = attributes
        if i in bad or container_malformed:
            rec["malformed"] = True
        append(rec)
    return records
