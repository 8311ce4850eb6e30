"""The unit that flows from a tailer to the sinks: one chunk's lines of one file.

A :class:`Batch` keeps the original line bytes (sinks that can carry the raw
line never decode and re-encode it) and computes the parsed views lazily and
once: the timestamp column that every sink needs, and full normalized records
only for sinks that want them (stdout; field labels).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from logship.parsing.formats import batch_timestamps, parse_lines
from logship.parsing.options import DEFAULT_OPTIONS, ParseOptions
from logship.parsing.timestamps import TimestampColumn

if TYPE_CHECKING:
    from logship.parsing.parsed import Parsed
    from logship.pipeline.acks import JoinTicket, Ticket
    from logship.telemetry import Telemetry


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What every record of a file shares."""

    source: str
    path: str
    format: str
    labels: dict[str, str] = field(default_factory=dict)
    options: ParseOptions = DEFAULT_OPTIONS


class Batch:
    __slots__ = (
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
        self._ts: TimestampColumn | None = None
        self._records: list[dict[str, Any]] | None = None
        self._parsed: Parsed | None = None

    def __len__(self) -> int:
        return len(self.lines)

    def line_offsets(self) -> list[int]:
        """Byte offset of each line's start (computed with C loops on demand)."""
        if self.offsets is None:
            starts = itertools.accumulate(
                map(len, self.lines[:-1]), lambda acc, n: acc + n + 1, initial=self.start_offset
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
            self._parsed = parsed = parse_lines(self.lines, info.format, info.options, self.read_ns)
            # Counted here, once per batch, so that a sink needing only timestamps of a
            # non-JSON format (Loki) counts malformed lines too.
            if parsed.malformed and self.telemetry is not None:
                self.telemetry.malformed(info.source, len(parsed.malformed))
        return self._parsed

    def records(self) -> list[dict[str, Any]]:
        if self._records is None:
            from logship.parsing.records import normalize_records

            self._records, _ = normalize_records(self)
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
            b.ticket = join
            halves.append(b)
        return halves[0], halves[1]
