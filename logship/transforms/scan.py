"""One text of a batch shared by the steps that search it: redaction and the level column.

Both steps need the batch as one ``bytes`` (C searches run over it) and a translation of it
into byte classes (``translate`` is one C pass, but at ~0.5 ns per byte it is one of the
costliest passes of the transforms). The card-number pre-check and the level column's number
checks can read the same classes (:data:`CLASSES`), and msgspec decodes the same text
``[line,\\nline,\\n...]``, so a chain of ``redact`` then a level label joins and translates
each batch once instead of twice.

When redaction changes lines, the scan of the new lines keeps the old text and the changed
lines, and nothing is joined or translated again: the number checks only ask whether a shape
exists anywhere, and no shape spans two lines (each line is followed by a ``,``, which ends
every shape), so the old classes (which also hold the replaced lines' old text: at worst a
needless fallback) plus the classes of the changed lines answer for the whole new batch;
msgspec decodes the old text and then each changed line on its own.
"""

from __future__ import annotations

import bisect
import itertools
import operator

from logship.parsing.batch import Batch
from logship.parsing.jsonlines import json_array
from logship.transforms.batchops import lines_containing

# Digits, spaces, dashes and "+" (what card numbers and numbers' signs are made of) -> "0";
# "e"/"E" -> "e"; what ends a number ("," "}" "]" tab, CR, LF) -> ","; everything else -> "x".
# Card numbers are runs of at least 13 "0"s; a number too large for a double has an "e"
# followed by three or more "0"s and a ",", or at least 210 "0"s (see jsonlevels.py).
CLASSES = bytes(
    0x30
    if chr(i) in "0123456789 -+"
    else 0x65
    if i in b"eE"
    else 0x2C
    if i in b",}]\t\r\n"
    else 0x78
    for i in range(256)
)


# Up to this many hits a line is found by bisecting the batch's offsets with a key; past it,
# one list of every line's start (a C pass that makes an int per line) is cheaper.
_FEW_HITS = 64

# Every card number is a run of at least this many "0"s in the classes, and so is every other
# run a check looks for (a number too long for a double): the lines holding one are found once.
RUN = b"0" * 13


class BatchScan:
    """``[`` + ``,\\n``.join(lines) + ``]`` of one list of lines, its classes, its line starts.

    ``lines`` is the exact list the scan describes; a step given a scan of another list (a
    step in between replaced the batch) must build its own (:func:`scan_of`).

    A scan made by :meth:`replaced` keeps the text it came from and the changed lines
    (``patches``) instead of splicing them into a new text: readers that only ask whether
    something exists, or decode the lines, read the old text and then the changed lines, and
    the new text is made only if a reader needs positions in it (:attr:`text`).
    """

    __slots__ = (
        "_classes",
        "_hits",
        "_run_lines",
        "_starts",
        "_text",
        "base_runs",
        "base_text",
        "batch",
        "changed_classes",
        "lines",
        "old_classes",
        "patches",
    )

    def __init__(
        self, lines: list[bytes], batch: Batch | None = None, text: bytes | None = None
    ) -> None:
        self.lines = lines
        self._text: bytes | None = json_array(lines) if text is None else text
        # The batch lends its line offsets when they are computed from the lines' lengths.
        lend = batch is not None and batch.lines is lines and batch.offsets_are_lengths()
        self.batch = batch if lend else None
        self._hits = 0
        self._run_lines: set[int] | None = None
        self._classes: bytes | None = None
        self._starts: list[int] | None = None
        # For a scan from replaced(): the text and classes it came from, the changed lines
        # (index -> text) and their classes.
        self.base_text = b""
        self.patches: dict[int, bytes] = {}
        self.old_classes: list[bytes] = []
        self.changed_classes = b""
        # The lines (and their indices) that held a RUN in the scan this one came from.
        self.base_runs: tuple[list[bytes], set[int]] | None = None

    @property
    def text(self) -> bytes:
        """``[`` + ``,\\n``.join(lines) + ``]`` (joined on first use for a replaced scan)."""
        if self._text is None:
            self._text = json_array(self.lines)
        return self._text

    def decode_source(self) -> tuple[bytes, dict[int, bytes]]:
        """A text to decode (one value per line, in order) and the lines to decode on their
        own afterwards in place of the text's (the changed lines of a replaced scan)."""
        if self._text is not None or not self.patches:
            return self.text, {}
        return self.base_text, self.patches

    def classes(self) -> bytes:
        """The text translated by :data:`CLASSES` (same length, same positions)."""
        if self._classes is None:
            self._classes = self.text.translate(CLASSES)
        return self._classes

    def class_texts(self) -> list[bytes]:
        """Texts of classes in which every shape of this batch's lines can be found.

        The exact translation when there is one; for a replaced scan, the classes it came
        from and those of the changed lines (each followed by a ``,``).
        """
        if self._classes is not None or not self.old_classes:
            return [self.classes()]
        return [*self.old_classes, self.changed_classes]

    def starts(self) -> list[int]:
        """Where each line starts in :attr:`text` (computed in C, on first use)."""
        if self._starts is None:
            offsets = self._offsets()
            if offsets is not None:
                # line i starts at 1 + (its offset - the first offset) + i.
                shift = 1 - offsets[0]
                n = len(offsets)
                self._starts = list(map(operator.add, offsets, range(shift, shift + n)))
            else:
                self._starts = list(
                    itertools.accumulate(
                        map(operator.add, map(len, self.lines[:-1]), itertools.repeat(2)),
                        initial=1,
                    )
                )
        return self._starts

    def _offsets(self) -> list[int] | None:
        """The batch's line offsets when they are its lines' lengths laid end to end (a
        tailer's own batch, whose offsets are computed on demand; a later split of the batch
        reuses them). Offsets given by framing are positions in the file: None."""
        return self.batch.line_offsets() if self.batch is not None else None

    def line_of(self, pos: int) -> int:
        """The index of the line holding position ``pos`` of :attr:`text`."""
        if self._starts is None and self._hits < _FEW_HITS:
            offsets = self._offsets()
            if offsets is not None:
                # A few hits: a bisection over the batch's offsets, without a list of starts.
                self._hits += 1
                shift = 1 - offsets[0]
                return (
                    bisect.bisect_right(
                        range(len(offsets)), pos, key=lambda i: offsets[i] + i + shift
                    )
                    - 1
                )
        return bisect.bisect_right(self.starts(), pos) - 1

    def start(self, i: int) -> int:
        """Where line ``i`` starts in :attr:`text`."""
        if self._starts is None:
            offsets = self._offsets()
            if offsets is not None:
                return offsets[i] - offsets[0] + 1 + i
        return self.starts()[i]

    def hit(self, pos: int, first: int) -> tuple[int, int]:
        """The line of a search hit at ``pos`` (nothing found from line ``first`` up to it)
        and where the line after it starts (-1 past the last line).

        In a tailer's batch no line holds a newline: the hit's line is the text between the
        newlines around it (``find`` and ``rfind``, C searches), looked up among the lines
        from ``first`` on. A line there equal to it would hold the same match and have been
        hit first, so the first equal line is the one. This costs a comparison of lengths
        per line passed over, against an int per line for the batch's offsets.
        """
        if self.batch is not None and self._starts is None:
            text = self.text
            nl = text.find(b"\n", pos)
            end = len(text) - 1 if nl < 0 else nl - 1
            begin = text.rfind(b"\n", 0, pos) + 1 or 1
            try:
                return self.lines.index(text[begin:end], first), (nl + 1 if nl >= 0 else -1)
            except ValueError:  # not reached: the line is there
                pass
        i = self.line_of(pos)
        return i, self.start(i + 1) if i + 1 < len(self.lines) else -1

    def run_lines(self) -> set[int]:
        """The lines whose classes hold a :data:`RUN` (found once, with ``find``)."""
        if self._run_lines is None:
            self._run_lines = set()
            self.lines_with(RUN, self._run_lines)
        return self._run_lines

    def knows_runs(self) -> bool:
        """Whether :meth:`holds_run` looks at a few lines only (their runs are known)."""
        return self._run_lines is not None or (self.base_runs is not None and self._classes is None)

    def holds_run(self, needle: bytes) -> bool:
        """Whether some line's classes hold ``needle``, a run of at least 13 ``0``.

        Only the lines known to hold a :data:`RUN` are looked at when they are known (the
        card-number rule found them, here or in the scan this one was replaced from);
        otherwise one search of the classes.
        """
        if self._run_lines is not None:
            return any(needle in self.lines[i].translate(CLASSES) for i in self._run_lines)
        if self.base_runs is not None and self._classes is None:
            old_lines, old_runs = self.base_runs
            return needle in self.changed_classes or any(
                needle in old_lines[i].translate(CLASSES) for i in old_runs
            )
        return any(needle in classes for classes in self.class_texts())

    def lines_with(self, needle: bytes, found: set[int]) -> None:
        """Add to ``found`` every line whose classes hold ``needle`` (no ``,`` in it)."""
        lines_containing(self.classes(), needle, self.lines, found, self)

    def replaced(self, lines: list[bytes], changed: dict[int, bytes]) -> BatchScan:
        """The scan of ``lines``: these lines with ``changed`` put in (index -> new text)."""
        if not changed:
            return self if lines is self.lines else BatchScan(lines, None, self.text)
        out = BatchScan(lines, None, b"")
        out._text = None
        out.base_text = self.text
        out.patches = changed
        out.old_classes = self.class_texts()
        out.changed_classes = (b",".join(changed.values()) + b",").translate(CLASSES)
        if self._run_lines is not None:
            out.base_runs = (self.lines, self._run_lines)
        return out


def scan_of(lines: list[bytes], scan: BatchScan | None, batch: Batch | None = None) -> BatchScan:
    """``scan`` when it describes ``lines``, else a new scan of them."""
    if scan is not None and scan.lines is lines:
        return scan
    return BatchScan(lines, batch)
