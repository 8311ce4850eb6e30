"""``redact``: replace secrets in the line bytes before anything leaves the process.

Redaction changes the line text itself (what the Loki sink sends as the line); records are
derived from the redacted text afterwards, so their ``message`` and ``fields`` carry the marker
too. A batch without secrets costs one cheap check per rule over the joined batch: a ``find`` of
the rule's literal anchors (``://`` for URL passwords, ``@`` for e-mail addresses, ...), or for
rules without a literal (card numbers, custom rules) one regex search of the whole batch in C.
Only the lines where a rule may match are rewritten, one ``subn`` per line.

Built-in rules (``rules:``), each counted under its name in the source's telemetry:

* ``bearer``: the token after ``Bearer``/``bearer``/``BEARER`` (``Authorization: Bearer x``) and
  after ``bearer_token=`` / ``bearer_token:`` (also quoted JSON keys).
* ``url_password``: ``scheme://user:pass@host`` becomes ``scheme://user:[REDACTED]@host``.
* ``aws_access_key``: access key ids ``AKIA`` / ``ASIA`` + 16 upper-case letters or digits.
* ``aws_secret_key``: the 40-character value after ``aws_secret_access_key=`` (or ``:``, any
  quoting; also ``AWS_SECRET_ACCESS_KEY``).
* ``card_number``: 13 to 19 digits, optionally grouped by single spaces or dashes, replaced only
  when the Luhn check passes. Numbers starting with 0 or 1 are left alone: epoch timestamps in
  milliseconds, microseconds and nanoseconds start with 1 until 2033 and would pass Luhn one time
  in ten. A card number that is a bare JSON number becomes the quoted marker, so the line stays
  valid JSON.
* ``email``: e-mail addresses.

The marker (default ``[REDACTED]``) cannot hold quotes, backslashes or newlines, so a redacted
JSON line stays JSON and a line stays one line.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from logship.config.transforms import CustomRedaction, RedactTransform
from logship.parsing.batch import Batch
from logship.telemetry import Telemetry
from logship.transforms.batchops import (
    LineStarts,
    lines_containing,
    matching_lines,
    replace_lines,
)
from logship.transforms.scan import CLASSES, RUN, BatchScan, scan_of

_TOKEN = rb"[A-Za-z0-9\-._~+/]+=*"

# name -> (pattern, literal anchors or None). Group 1 is kept before the marker; the rest of
# the match is the secret.
BUILTIN: dict[str, tuple[bytes, tuple[bytes, ...] | None]] = {
    "bearer": (
        rb"(\b(?:[Bb]earer|BEARER)[ \t]+|(?:bearer_token|BEARER_TOKEN)[\"']?[ \t]*[=:][ \t]*[\"']?)"
        + _TOKEN,
        (b"earer", b"EARER"),
    ),
    "url_password": (
        rb"(\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@\"'<>]*:)[^\s@/\"'<>]+(?=@)",
        (b"://",),
    ),
    "aws_access_key": (rb"()\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", (b"AKIA", b"ASIA")),
    "aws_secret_key": (
        rb"((?:aws_secret_access_key|AWS_SECRET_ACCESS_KEY)[\"']?[ \t]*[=:][ \t]*[\"']?)"
        rb"[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])",
        (b"aws_secret_access_key", b"AWS_SECRET_ACCESS_KEY"),
    ),
    # The lookbehind refuses a start in the middle of a longer number (the pre-check is
    # below the table).
    "card_number": (rb"[2-9](?<![0-9][2-9])(?:[ \-]?[0-9]){12,18}(?![0-9])", None),
    "email": (
        rb"(?<![A-Za-z0-9._%+\-])()[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*"
        rb"\.[A-Za-z]{2,}",
        (b"@",),
    ),
}


# Card numbers have no literal to look for. The batch is translated (one C pass, shared with
# the level column: logship/transforms/scan.py) so that digits, spaces and dashes (and "+")
# become "0" and what separates lines does not; every card number is then a run of at least
# 13 "0"s, which ``find`` locates. About 8x cheaper than a regex search of the batch on
# digit-heavy JSON logs (timestamps, ids), where every digit would start a match attempt.
_CARD_ANCHOR = RUN


def luhn_ok(digits: bytes) -> bool:
    """The Luhn checksum of a run of ASCII digits (what every payment card number passes)."""
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = c - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _in_json_string(text: bytes, pos: int) -> bool:
    """Whether ``pos`` of a JSON line lies inside a string (quotes before it, unescaped, odd)."""
    return (text.count(b'"', 0, pos) - text.count(b'\\"', 0, pos)) % 2 == 1


class Rule:
    """One redaction rule: a cheap pre-check over the batch, then ``subn`` on candidate lines."""

    def __init__(
        self,
        name: str,
        pattern: bytes,
        anchors: tuple[bytes, ...] | None,
        replacement: bytes | Callable[[re.Match[bytes]], bytes],
        table: bytes | None = None,
    ) -> None:
        self.name = name
        self.pattern = re.compile(pattern)
        self.joined = re.compile(pattern, re.MULTILINE)
        self.table = table  # translate the batch before looking for the anchors
        self.anchors = anchors
        self.replacement = replacement

    def candidates(
        self, joined: bytes, lines: list[bytes], starts: LineStarts | None = None
    ) -> list[int]:
        """Lines that may hold a secret of this rule (every line that does is among them)."""
        if self.anchors is None:
            return matching_lines(self.joined, self.pattern, joined, lines)
        found: set[int] = set()
        if self.table is not None:
            joined = joined.translate(self.table)
        for anchor in self.anchors:
            lines_containing(joined, anchor, lines, found, starts)
        return sorted(found)

    def sub(self, text: bytes) -> tuple[bytes, int]:
        return self.pattern.subn(self.replacement, text)


class CardRule(Rule):
    """Card numbers: a match is replaced only when its digits pass the Luhn check."""

    def __init__(self, marker: bytes) -> None:
        pattern, _ = BUILTIN["card_number"]
        super().__init__("card_number", pattern, (_CARD_ANCHOR,), marker, CLASSES)
        self.marker = marker
        self.quoted = b'"' + marker + b'"'

    def scan_candidates(self, scan: BatchScan) -> list[int]:
        """:meth:`candidates` from the batch's shared scan (its classes are this rule's table)."""
        return sorted(scan.run_lines())

    def sub(self, text: bytes) -> tuple[bytes, int]:
        count = 0
        json_line = text.lstrip()[:1] == b"{"

        def repl(m: re.Match[bytes]) -> bytes:
            nonlocal count
            digits = m.group(0).replace(b" ", b"").replace(b"-", b"")
            if not luhn_ok(digits):
                return m.group(0)
            count += 1
            if json_line and not _in_json_string(text, m.start()):
                return self.quoted
            return self.marker

        out = self.pattern.sub(repl, text)
        return (out, count) if count else (text, 0)


def build_rules(cfg: RedactTransform) -> list[Rule]:
    marker = cfg.marker.encode()
    rules: list[Rule] = []
    for name in cfg.rules:
        if name == "card_number":
            rules.append(CardRule(marker))
            continue
        pattern, anchors = BUILTIN[name]
        rules.append(Rule(name, pattern, anchors, b"\\g<1>" + marker))
    for c in cfg.custom:
        rules.append(_custom(c, marker))
    return rules


def _custom(c: CustomRedaction, marker: bytes) -> Rule:
    if c.replacement is None:
        return Rule(c.name, c.regex.encode(), None, lambda _m: marker)
    return Rule(c.name, c.regex.encode(), None, c.replacement.encode())


class Redactor:
    """One ``redact`` step with its rules, counted per rule in the source's telemetry."""

    def __init__(self, cfg: RedactTransform, source: str, telemetry: Telemetry) -> None:
        self.rules = build_rules(cfg)
        # The card rule reads the batch's shared scan; other rules their own joined text.
        self.scans = any(isinstance(r, CardRule) for r in self.rules)
        self.source = source
        self.telemetry = telemetry

    def redact_lines(
        self, lines: list[bytes], batch: Batch | None = None, scan: BatchScan | None = None
    ) -> tuple[dict[int, bytes], dict[str, int]]:
        """The changed lines by index, and how many secrets each rule replaced.

        ``batch`` (the lines' batch) lends its line offsets to find the line of a hit;
        ``scan`` is the lines' shared scan when the caller has one.
        """
        changed: dict[int, bytes] = {}
        counts: dict[str, int] = {}
        if not lines:
            return changed, counts
        joined: bytes | None = None
        starts: LineStarts | None = None
        for rule in self.rules:
            if isinstance(rule, CardRule):
                scan = scan_of(lines, scan, batch)
                candidates = rule.scan_candidates(scan)
            else:
                if joined is None:
                    joined = b"\n".join(lines)
                    starts = LineStarts(lines, batch)
                candidates = rule.candidates(joined, lines, starts)
            total = 0
            for i in candidates:
                text = changed.get(i, lines[i])
                new, n = rule.sub(text)
                if n:
                    changed[i] = new
                    total += n
            if total:
                counts[rule.name] = total
        return changed, counts

    def apply_scanned(self, batch: Batch, scan: BatchScan | None) -> tuple[Batch, BatchScan | None]:
        """:meth:`apply`, taking and giving the batch's shared scan (for a level column next)."""
        lines = batch.lines
        if scan is not None and scan.lines is not lines:
            scan = None
        if scan is None and self.scans:
            scan = BatchScan(lines, batch)
        changed, counts = self.redact_lines(lines, batch, scan)
        for name, n in counts.items():
            self.telemetry.redacted(self.source, name, n)
        out = replace_lines(batch, changed)
        return out, (scan.replaced(out.lines, changed) if scan is not None else None)

    def apply(self, batch: Batch) -> Batch:
        return self.apply_scanned(batch, None)[0]
