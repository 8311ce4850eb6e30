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
#
# Three simple expressions, each applied to the whole list in one C-level ``map``, cost
# about a third of one expression with all the alternatives (which the regex engine
# tries at every position); left word boundaries are checked on the few hits instead
# of by a look-behind at every position. Compiled on first use: only raw lines need them.
PLAIN_SCAN_BYTES = 200
_GLOG = {ord("I"): "info", ord("W"): "warn", ord("E"): "error", ord("F"): "fatal"}
_WORD_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


@functools.cache
def _scans() -> tuple[tuple[re.Pattern[bytes], int, bool], ...]:
    """(pattern, group holding the word, whether its start needs a word boundary)."""
    return (
        (re.compile(rb"[IWEF]\d{4} \d\d:\d\d:\d\d"), 0, False),  # .match only
        (
            re.compile(
                rb"(?:TRACE|DEBUG|INFO|NOTICE|WARN(?:ING)?|ERROR|CRIT(?:ICAL)?|FATAL|PANIC|SEVERE)\b"
            ),
            0,
            True,
        ),
        (
            re.compile(
                rb"\[(?i:(trace|debug|info|notice|warn|warning|error|err|crit|critical|fatal"
                rb"|alert|emerg))\]"
            ),
            1,
            False,
        ),
        (
            re.compile(
                rb"(?:level|lvl|severity)=[\"']?"
                rb"(?i:(trace|debug|info|notice|warn|warning|error|err|crit|critical|fatal|panic))\b"
            ),
            1,
            True,
        ),
    )


def detect_levels(lines: list[bytes]) -> list[str | None]:
    """The level word found in each plain-text line, or None (see above)."""
    n = len(lines)
    out: list[str | None] = [None] * n
    found_at: dict[int, int] = {}
    glog, *searches = _scans()
    matches = list(map(glog[0].match, lines))
    for i in itertools.compress(range(n), matches):
        out[i] = _GLOG[lines[i][0]]
        found_at[i] = 0
    limit = itertools.repeat(PLAIN_SCAN_BYTES)
    for pattern, group, bounded in searches:
        found = list(map(pattern.search, lines, itertools.repeat(0), limit))
        for i in itertools.compress(range(n), found):
            m: re.Match[bytes] | None = found[i]
            line = lines[i]
            while bounded and m is not None and m.start() and line[m.start() - 1] in _WORD_BYTES:
                m = pattern.search(line, m.start() + 1, PLAIN_SCAN_BYTES)
            if m is not None and m.start() < found_at.get(i, PLAIN_SCAN_BYTES):
                out[i] = m[group].decode("ascii")
                found_at[i] = m.start()
    return out
