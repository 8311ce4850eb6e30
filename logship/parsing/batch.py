"""The unit that flows from a tailer to the sinks: one chunk's lines of one file.

A :class:`Batch` keeps the original line bytes (sinks that can carry the raw
line never decode and re-encode it) and computes the parsed views lazily and
once: the timestamp column that every sink needs, and full normalized records
only for sinks that want them (stdout; field labels).
"""

from __future__ import annotations

import itertools
import operator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from logship.parsing.formats import CONTAINER_FORMATS, batch_timestamps, parse_lines
from logship.parsing.options import DEFAULT_OPTIONS, ParseOptions
from logship.parsing.timestamps import TimestampColumn

if TYPE_CHECKING:
    from logship.parsing.parsed import Parsed
    from logship.pipeline.acks import JoinTicket, Ticket
    from logship.telemetry import Telemetry


T = TypeVar("T")


def take(items: list[T], indices: list[int]) -> list[T]:
    """``[items[i] for i in indices]`` as a C loop (``itemgetter``'s own loop: no call per
    item, about a third cheaper than ``map`` of ``__getitem__``)."""
    if len(indices) > 1:
        return list(operator.itemgetter(*indices)(items))
    return [items[i] for i in indices]


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What every record of a file shares."""

    source: str
    path: str
    format: str
    labels: dict[str, str] = field(default_factory=dict)
    # Keyword-only from here: several branches added fields, positions would mix them up.
    # Record attributes that are not labels: container stream, pod identity.
    attributes: dict[str, str] = field(default_factory=dict, kw_only=True)
    # Container lines that did not parse: kept whole, flagged and counted.
    malformed: bool = field(default=False, kw_only=True)
    # The file's identity key (source, device, inode): with a line's offset it names the
    # line across restarts (Elasticsearch document ids).
    identity: str = field(default="", kw_only=True)
    options: ParseOptions = field(default=DEFAULT_OPTIONS, kw_only=True)

    @property
    def line_format(self) -> str:
        """The format lines are parsed with: a container format's messages were framed
        already (logship/sources/framing.py) and read like ``auto``."""
        return "auto" if self.format in CONTAINER_FORMATS else self.format


class Batch:
    __slots__ = (
        "_malformed_counted",
        "_objects",
        "_offsets_of",
        "_parsed",
        "_records",
        "_ts",
        "end_offset",
        "info",
        "lines",
        "nbytes",
        "offsets",
        "read_ns",
        "start_offset",
        "telemetry",
        "ticket",
    )

    def __init__(
        self,
        info: SourceInfo,
        lines: list[bytes],
        start_offset: int,
        end_offset: int,
        read_ns: int,
        telemetry: Telemetry | None = None,
        offsets: list[int] | None = None,
        timestamps: TimestampColumn | None = None,
    ) -> None:
        self.info = info
        self.lines = lines
        self.start_offset = start_offset
        self.end_offset = end_offset
        self.read_ns = read_ns
        self.nbytes = end_offset - start_offset
        self.telemetry = telemetry
        self.offsets = offsets
        # A part cut from another batch (transforms) takes its offsets from that batch's
        # when asked: Loki never asks, and computing them cost ~50 ns a line.
        self._offsets_of: tuple[Batch, list[int] | None] | None = None
        self.ticket: Ticket | JoinTicket | None = None
        # Given when the timestamps come from outside the line (a container runtime's).
        self._ts: TimestampColumn | None = timestamps
        self._records: list[dict[str, Any]] | None = None
        self._parsed: Parsed | None = None
        self._objects: list[dict[str, Any] | None] | None = None
        self._malformed_counted = False

    def __len__(self) -> int:
        return len(self.lines)

    def offsets_are_lengths(self) -> bool:
        """Whether the line offsets are (or will be) the lines' lengths laid end to end from
        :attr:`start_offset` (a tailer's own batch), which lets a reader derive positions in
        the joined lines from them. False for framed lines (offsets given) and for parts."""
        return self.offsets is None and self._offsets_of is None

    def offsets_from(self, whole: Batch, keep: list[int] | None) -> None:
        """Take this batch's offsets from ``whole``'s lines at ``keep`` (None: every line,
        as for a batch whose lines' text was replaced), when first asked."""
        self._offsets_of = (whole, keep)

    def line_offsets(self) -> list[int]:
        """Byte offset of each line's start (computed with C loops on demand)."""
        if self.offsets is None and self._offsets_of is not None:
            whole, keep = self._offsets_of
            self._offsets_of = None
            offsets = whole.line_offsets()
            self.offsets = offsets if keep is None else take(offsets, keep)
        elif self.offsets is None:
            # Each line is followed by its newline; every step runs in C (no lambda).
            # operator.add over repeat(1): a C call per line, where a bound (1).__add__
            # goes through a method wrapper (~150 instructions more per line).
            starts = itertools.accumulate(
                map(operator.add, map(len, self.lines[:-1]), itertools.repeat(1)),
                initial=self.start_offset,
            )
            self.offsets = list(starts)
        return self.offsets

    def timestamps(self) -> TimestampColumn:
        if self._ts is None:
            self._ts = batch_timestamps(self)
        return self._ts

    def parsed(self) -> Parsed:
        """The format's parse of every line (shared by timestamps() and records())."""
        if self._parsed is None:
            info = self.info
            self._parsed = parsed = parse_lines(
                self.lines, info.line_format, info.options, self.read_ns
            )
            # Counted here, once per batch, so that a sink needing only timestamps of a
            # non-JSON format (Loki) counts malformed lines too.
            self._count_malformed(len(parsed.malformed))
        return self._parsed

    def _count_malformed(self, n: int) -> None:
        if n and self.telemetry is not None and not self._malformed_counted:
            self.telemetry.malformed(self.info.source, n)
        self._malformed_counted = True

    def objects(self) -> list[dict[str, Any] | None]:
        """The parsed fields of each line (a JSON object, logfmt pairs, ...), None for raw
        or malformed lines: what the OTLP sink turns into attributes.

        For JSON lines only the objects are built, without the level/message/time columns
        of :meth:`parsed`, which cost a Python step per line that this sink does not need.
        """
        if self._parsed is not None:
            return self._parsed.fields
        if self._objects is None:
            fmt = self.info.line_format
            if fmt in ("json", "auto"):
                from logship.parsing.jsonlines import objects_of

                self._objects, malformed = objects_of(self.lines, fmt)
                self._count_malformed(len(malformed))
            else:
                return self.parsed().fields
        return self._objects

    def release_objects(self) -> None:
        """Free the parsed objects (about 1 KiB a line) once a sink has encoded them.

        A batch waits in memory until every sink delivered it; its parsed form need
        not wait with it. A later :meth:`objects` parses again (without recounting).
        """
        self._objects = None
        self._parsed = None

    def records(self) -> list[dict[str, Any]]:
        if self._records is None:
            from logship.parsing.records import normalize_records

            self._records = normalize_records(self)
        return self._records

    def split(self) -> tuple[Batch, Batch]:
        """Two halves sharing this batch's ticket (acknowledged when both are)."""
        from logship.pipeline.acks import JoinTicket

        n = len(self.lines)
        mid = n // 2
        ts = self.timestamps()
        offsets = self.line_offsets()
        join = JoinTicket(self.ticket, 2) if self.ticket is not None else None
        halves = []
        for lo, hi in ((0, mid), (mid, n)):
            start = offsets[lo]
            end = offsets[hi] if hi < n else self.end_offset
            b = Batch(
                self.info,
                self.lines[lo:hi],
                start,
                end,
                self.read_ns,
                self.telemetry,
                offsets[lo:hi],
            )
            b._ts = TimestampColumn(ts.seconds[lo:hi], ts.fractions[lo:hi], ts.text_format)
            if self._records is not None:
                b._records = self._records[lo:hi]
            if self._parsed is not None:  # parsed (and its malformed lines counted) once
                b._parsed = self._parsed.slice(lo, hi)
            if self._objects is not None:
                b._objects = self._objects[lo:hi]
            b._malformed_counted = self._malformed_counted
            b.ticket = join
            halves.append(b)
        return halves[0], halves[1]
