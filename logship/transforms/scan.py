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
        "_starts",
        "_text",
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
        self._text: bytes | None = b"[" + b",\n".join(lines) + b"]" if text is None else text
        # The batch lends its line offsets when they are computed from the lines' lengths.
        lend = batch is not None and batch.lines is lines and batch.offsets is None
        self.batch = batch if lend else None
        self._hits = 0
        self._classes: bytes | None = None
        self._starts: list[int] | None = None
        # For a scan from replaced(): the text and classes it came from, the changed lines
        # (index -> text) and their classes.
        self.base_text = b""
        self.patches: dict[int, bytes] = {}
        self.old_classes: list[bytes] = []
        self.changed_classes = b""

    @property
    def text(self) -> bytes:
        """``[`` + ``,\\n``.join(lines) + ``]`` (joined on first use for a replaced scan)."""
        if self._text is None:
            self._text = b"[" + b",\n".join(self.lines) + b"]"
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
        return out


def scan_of(lines: list[bytes], scan: BatchScan | None, batch: Batch | None = None) -> BatchScan:
    """``scan`` when it describes ``lines``, else a new scan of them."""
    if scan is not None and scan.lines is lines:
        return scan
    return BatchScan(lines, batch)
