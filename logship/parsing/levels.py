"""Level words to logship's canonical levels and OpenTelemetry severity numbers (PROTOCOLS C.7)."""

from __future__ import annotations

import functools
import itertools
import re

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


# Level words in plain text, searched in the first 200 bytes of each line; the leftmost
# hit wins. Kept to forms that are rarely anything but a level: glog/klog prefixes
# (``E1129 10:00:00.123 ...``), upper-case words (``ERROR``, ``WARNING:root:``,
# ``production.ERROR:``), bracketed words in any case (``[info]``, ``[Warn]``) and
# ``level=``/``lvl=``/``severity=`` pairs. Lower-case words alone (``error``) are not
# taken: in prose they are too often not a level.
@functools.cache
def _plain_level() -> re.Pattern[bytes]:
    """Compiled on first use: only raw lines need it, and compiling costs start-up time."""
    return re.compile(
        rb"^([IWEF])\d{4} \d\d:\d\d:\d\d"
        rb"|\b(TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|CRITICAL|CRIT|FATAL|PANIC|SEVERE)\b"
        rb"|\[(?i:(trace|debug|info|notice|warn|warning|error|err|crit|critical|fatal|alert|emerg))\]"
        rb'|\b(?:level|lvl|severity)=["\']?'
        rb"(?i:(trace|debug|info|notice|warn|warning|error|err|crit|critical|fatal|panic))\b"
    )


_GLOG = {b"I": "info", b"W": "warn", b"E": "error", b"F": "fatal"}
PLAIN_SCAN_BYTES = 200


def detect_levels(lines: list[bytes]) -> list[str | None]:
    """The level word found in each plain-text line, or None (see ``_plain_level``)."""
    matches = map(
        _plain_level().search, lines, itertools.repeat(0), itertools.repeat(PLAIN_SCAN_BYTES)
    )
    out: list[str | None] = []
    for m in matches:
        if m is None:
            out.append(None)
        elif m.lastindex == 1:
            out.append(_GLOG[m[1]])
        else:
            out.append(m[m.lastindex or 0].decode("ascii"))
    return out
