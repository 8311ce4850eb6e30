"""A live status line for ``logship tail`` shipping from a terminal.

Someone who runs ``logship tail --to loki:URL`` at a prompt sees nothing otherwise: the
records go elsewhere and the agent's log is quiet until something fails. The line shows
progress and trouble (lines/s, what each sink accepted, retries and errors, how far
behind the files it is) and redraws in place, only when stderr is a terminal, so pipes,
files and container logs never get control characters.

Not drawn with rich (which DESIGN.md suggests): with rich installed, ``import httpx`` also
imports rich and pygments for httpx's own command line, +0.2 G instructions at every start
(~2 % of shipping a million lines); one line needs a carriage return and an erase code only.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import sys
import time
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from logship.metrics import AgentView

REFRESH_S = 0.5


def wanted(sink_types: list[str]) -> bool:
    """Only for a terminal, and only when records do not go to stdout (they would interleave)."""
    return sys.stderr.isatty() and "stdout" not in sink_types


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} GiB"


def render(view: AgentView, rate: float) -> str:
    """One line from the counters: what was read, what each sink did, how far behind."""
    tel = view.telemetry
    lines = sum(s.lines for s in list(tel.sources.values()))
    read = sum(s.bytes for s in list(tel.sources.values()))
    parts = [f"read {lines:,} lines ({rate:,.0f}/s, {_size(read)})"]
    for name, s in list(tel.sinks.items()):
        # Records refused or given up on; retried requests show as retries, not errors.
        errors = s.rejected_records + s.dropped_records + s.dead_lettered_records
        state = f"{name}: {s.sent_records:,} sent"
        if s.retries:
            state += f", {s.retries:,} retries"
        if errors:
            state += f", {errors:,} errors"
        if s.failing_since is not None and s.last_error:
            state += f" (failing: {s.last_error[:60]})"
        parts.append(state)
    lag = sum(view.file_lags().values())
    parts.append(f"lag {_size(lag)}")
    return " | ".join(parts)


class _Terminal:
    """stderr with one live line at the bottom: log records are written above it.

    Log records are written through :meth:`write` (the log handler's stream while the line
    is shown): the line is cleared, the record written, and the line drawn again.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.line = ""

    def _draw(self) -> None:
        width = shutil.get_terminal_size((120, 24)).columns
        text = self.line if len(self.line) < width else self.line[: max(width - 2, 0)] + "…"
        self.stream.write("\r\x1b[2K" + text)
        self.stream.flush()

    def show(self, line: str) -> None:
        self.line = line
        self._draw()

    def write(self, text: str) -> int:
        self.stream.write("\r\x1b[2K" + text)
        if text.endswith("\n"):
            self._draw()
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\r\x1b[2K" + self.line + "\n")  # the last state stays on screen
        self.stream.flush()


async def show(view: AgentView) -> None:
    """Redraw until cancelled; the agent's log lines print above the live line meanwhile."""
    term = _Terminal(sys.stderr)
    handlers = [
        h
        for h in logging.getLogger("logship").handlers
        if isinstance(h, logging.StreamHandler) and h.stream is sys.stderr
    ]
    previous = [h.setStream(term) for h in handlers]
    last_lines, last_t = 0, time.monotonic()
    rate = 0.0
    try:
        while True:
            now = time.monotonic()
            lines = sum(s.lines for s in list(view.telemetry.sources.values()))
            if now > last_t:
                rate = (lines - last_lines) / (now - last_t)
            last_lines, last_t = lines, now
            term.show(render(view, rate))
            await asyncio.sleep(REFRESH_S)
    finally:
        term.line = render(view, rate)
        for h, stream in zip(handlers, previous, strict=True):
            h.setStream(stream)
        term.close()
