"""A live status line for ``logship tail`` shipping from a terminal.

Someone who runs ``logship tail --to loki:URL`` at a prompt sees nothing otherwise: the
records go elsewhere and the agent's log is quiet until something fails. The line shows
progress and trouble (lines/s, what each sink accepted, retries and errors, how far
behind the files it is) and redraws in place. It is drawn with rich, which owns the
terminal handling (width, cursor, keeping log lines above the live line), and only when
stderr is a terminal, so pipes, files and container logs never get control characters.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import TYPE_CHECKING, Any

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


async def show(view: AgentView) -> None:
    """Redraw until cancelled; the agent's log lines print above the live line meanwhile."""
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    console = Console(stderr=True)
    handlers = [
        h
        for h in logging.getLogger("logship").handlers
        if isinstance(h, logging.StreamHandler) and h.stream is sys.__stderr__
    ]
    last_lines, last_t = 0, time.monotonic()
    rate = 0.0
    live = Live(Text(""), console=console, refresh_per_second=4, redirect_stderr=True)
    with live:
        # Log records go through rich's stderr proxy, so they land above the status line.
        previous: list[Any] = [h.setStream(sys.stderr) for h in handlers]
        try:
            while True:
                now = time.monotonic()
                lines = sum(s.lines for s in list(view.telemetry.sources.values()))
                if now > last_t:
                    rate = (lines - last_lines) / (now - last_t)
                last_lines, last_t = lines, now
                live.update(Text(render(view, rate), overflow="ellipsis", no_wrap=True))
                await asyncio.sleep(REFRESH_S)
        finally:
            for h, stream in zip(handlers, previous, strict=True):
                h.setStream(stream)
            live.update(Text(render(view, rate), overflow="ellipsis", no_wrap=True))
