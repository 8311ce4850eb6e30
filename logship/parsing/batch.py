"""The unit that flows from a tailer to the sinks: one chunk's lines of one file.

A :class:`Batch` keeps the original line bytes (sinks that can carry the raw
line never decode and re-encode it) and computes the parsed views lazily and
once: the timestamp column that every sink needs, the parsed JSON objects and
full normalized records only for sinks that want them (stdout, OTLP; field labels).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from logship.parsing.formats import (
    CONTAINER_FORMATS,
    normalize_records,
    parse_objects,
    timestamp_column,
)
from logship.parsing.timestamps import TimestampColumn

if TYPE_CHECKING:
    from logship.pipeline.acks import JoinTicket, Ticket
    from logship.telemetry import Telemetry


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What every record of a file shares."""

    source: str
    path: str
    format: str
    labels: dict[str, str] = field(default_factory=dict)
    # Record attributes that are not labels: container stream, pod identity.
    attributes: dict[str, str] = field(default_factory=dict)
    # Container lines that did not parse: kept whole, flagged and counted.
    malformed: bool = False
    # The file's identity key (source, device, inode): with a line's offset it names the
    # line across restarts (Elasticsearch document ids).
    identity: str = ""


class Batch:
    __slots__ = (
        "_malformed_counted",
        "_objects",
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
        self.ticket: Ticket | JoinTicket | None = None
        # Given when the timestamps come from outside the line (a container runtime's).
        self._ts: TimestampColumn | None = timestamps
        self._records: list[dict[str, Any]] | None = None
        self._objects: list[dict[str, Any] | None] | None = None
        self._malformed_counted = False

    def __len__(self) -> int:
        return len(self.lines)

    def line_offsets(self) -> list[int]:
        """Byte offset of each line's start (computed with C loops on demand)."""
        if self.offsets is None:
            # Each line is followed by its newline; every step runs in C (no lambda).
            starts = itertools.accumulate(
                map((1).__add__, map(len, self.lines[:-1])), initial=self.start_offset
            )
            self.offsets = list(starts)
        return self.offsets

    def timestamps(self) -> TimestampColumn:
        if self._ts is None:
            self._ts = timestamp_column(self.lines, self.info.format, self.read_ns)
        return self._ts

    def objects(self) -> list[dict[str, Any] | None]:
        """The JSON object of each line, None for raw or malformed lines.

        Parsed once per batch however many sinks want it, so malformed lines are
        counted once.
        """
        if self._objects is None:
            fmt = self.info.format
            # A container format's messages were framed already; they read like `auto`.
            self._objects, malformed = parse_objects(
                self.lines, "auto" if fmt in CONTAINER_FORMATS else fmt
            )
            if malformed and self.telemetry is not None and not self._malformed_counted:
                self.telemetry.malformed(self.info.source, malformed)
            self._malformed_counted = True
        return self._objects

    def release_objects(self) -> None:
        """Free the parsed objects (about 1 KiB a line) once a sink has encoded them.

        A batch waits in memory until every sink delivered it; its parsed form need
        not wait with it. A later :meth:`objects` parses again (without recounting).
        """
        self._objects = None

    def records(self) -> list[dict[str, Any]]:
        if self._records is None:
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
            if self._objects is not None:
                b._objects = self._objects[lo:hi]
            b.ticket = join
            halves.append(b)
        return halves[0], halves[1]
