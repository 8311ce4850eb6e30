"""Level words to logship's canonical levels and OpenTelemetry severity numbers (PROTOCOLS C.7)."""

from __future__ import annotations

_TABLE: dict[str, tuple[str, int]] = {}
for _words, _level, _number in (
    (("trace", "finest"), "trace", 1),
    (("debug", "finer", "verbose"), "debug", 5),
    (("fine",), "debug", 6),
    (("config",), "debug", 7),
    (("info", "information", "informational"), "info", 9),
    (("notice",), "notice", 10),
    (("warn", "warning"), "warn", 13),
    (("error", "err", "severe"), "error", 17),
    (("critical", "crit", "dpanic"), "error", 18),
    (("alert", "panic"), "fatal", 19),
    (("fatal", "emerg", "emergency"), "fatal", 21),
):
    for _w in _words:
        _TABLE[_w] = (_level, _number)


def normalize_level(value: object) -> str | None:
    """Canonical level for a level word; unknown words are kept lower-cased."""
    if value is None:
        return None
    word = str(value).strip().lower()
    if not word:
        return None
    hit = _TABLE.get(word)
    return hit[0] if hit else word


def severity_number(value: object) -> int:
    if value is None:
        return 0
    hit = _TABLE.get(str(value).strip().lower())
    return hit[1] if hit else 0
