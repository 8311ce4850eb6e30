"""``logship parse``: a source's whole line pipeline over standard input, records out.

Users try a config on real samples before deploying it, so this runs the same stages as
the agent, in the same order, on the same batch shapes: lines split and cleaned like the
tailer does (CRLF, invalid UTF-8, over-long lines), framing (CRI/docker partial lines,
multiline), the source's transforms and enrichment, then the normalized records that the
stdout sink prints. What it prints is what would be shipped. There is no checkpoint, no
sink and no event loop: input ends, open records are flushed, the program exits.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from logship.parsing.batch import Batch, SourceInfo
from logship.parsing.options import options_of
from logship.sinks.stdout import render_records
from logship.sources.framing import Framed, Framer, framed_info
from logship.sources.podpath import POD_LABELS, pod_identity
from logship.sources.tailer import fix_lines
from logship.telemetry import Telemetry

if TYPE_CHECKING:
    from logship.config.model import AgentConfig

SOURCE = "parse"


@dataclass
class PreviewStats:
    lines: int = 0
    records: int = 0


def clean_lines(complete: bytes, max_line: int, telemetry: Telemetry, source: str) -> list[bytes]:
    """The lines of a chunk as the tailer hands them on (the tailer's own function), counted."""
    lines, invalid, cut = fix_lines(complete, complete.split(b"\n"), max_line)
    if invalid:
        telemetry.invalid_utf8(source, invalid)
    if cut:
        telemetry.line_truncated(source, cut)
    return lines


class Preview:
    """One source's pipeline, fed from a stream; records are written to ``out``."""

    def __init__(self, cfg: AgentConfig, source: str, out: BinaryIO, path: str = "-") -> None:
        src = cfg.sources[source]
        self.cfg = cfg
        self.source = source
        self.out = out
        self.telemetry = Telemetry()
        pod = pod_identity(path)
        labels = dict(src.labels)
        for name in POD_LABELS:  # as the agent labels a pod's log file
            if name in pod:
                labels.setdefault(name, pod[name])
        self.info = SourceInfo(
            source, path, src.format, labels, attributes=pod, options=options_of(src)
        )
        self.framer: Framer | None = Framer.for_source(src, cfg.tailing)
        if not self.framer.active:
            self.framer = None
        self.chain = None
        if src.transforms or src.enrich is not None:
            from logship.transforms.pipeline import SourceChain

            self.chain = SourceChain(source, src, self.telemetry)
        self.stats = PreviewStats()
        self._offset = 0

    def _emit(self, batch: Batch) -> None:
        parts = self.chain.apply(batch) if self.chain is not None else [batch]
        for part in parts:
            if part.lines:
                self.out.write(render_records(part))
                self.stats.records += len(part.lines)
        self.out.flush()

    def _emit_framed(self, framed: list[Framed], read_ns: int) -> None:
        cache: dict[tuple[str | None, bool], SourceInfo] = {}
        for f in framed:
            if f.lines:
                ts = f.timestamp_column()
                info = framed_info(self.info, f, cache)
                start = f.offsets[0]
                end = max(self._offset, start)
                self._emit(Batch(info, f.lines, start, end, read_ns, self.telemetry, f.offsets, ts))

    def feed(self, lines: list[bytes]) -> None:
        """Complete physical lines, in order."""
        if not lines:
            return
        self.stats.lines += len(lines)
        offsets = list(
            itertools.accumulate(map((1).__add__, map(len, lines[:-1])), initial=self._offset)
        )
        self._offset = offsets[-1] + len(lines[-1]) + 1
        read_ns = time.time_ns()
        if self.framer is not None:
            self._emit_framed(self.framer.push(lines, offsets, time.monotonic()), read_ns)
        else:
            end = self._offset
            self._emit(Batch(self.info, lines, offsets[0], end, read_ns, self.telemetry, offsets))
        self._count_framing()

    def finish(self) -> None:
        """Input ended: open records (multiline groups, partial lines) go out now."""
        if self.framer is not None:
            self._emit_framed(self.framer.flush(), time.time_ns())
            self._count_framing()

    def _count_framing(self) -> None:
        if self.framer is None:
            return
        malformed, cut, truncated = self.framer.take_counts()
        if malformed:
            self.telemetry.malformed(self.source, malformed)
        if cut:
            self.telemetry.multiline_cut(self.source, cut)
        if truncated:
            self.telemetry.line_truncated(self.source, truncated)

    def run(self, stream: BinaryIO) -> PreviewStats:
        chunk = int(self.cfg.tailing.read_chunk_size)
        max_line = int(self.cfg.tailing.max_line_size)
        carry = b""
        while data := stream.read(chunk):
            data = carry + data
            cut = data.rfind(b"\n")
            if cut == -1:
                carry = data
                continue
            carry = data[cut + 1 :]
            self.feed(clean_lines(data[:cut], max_line, self.telemetry, self.source))
        if carry:  # a last line without its newline is still a line
            self.feed(clean_lines(carry, max_line, self.telemetry, self.source))
        self.finish()
        return self.stats
