"""Which files to follow: glob rescans are the truth, file events only make them sooner.

Shared volumes and overlay filesystems drop inotify events (DESIGN rule 5), so
every ``rescan_interval`` the globs are evaluated again and each match is
identified by device + inode. watchfiles events wake the rescan early and wake
the tailer of a file that changed, which keeps latency low without trusting
events for correctness.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from logship.config.model import SourceConfig
from logship.sources.globs import excluded, expand

log = logging.getLogger("logship.discovery")


@dataclass(frozen=True, slots=True)
class Match:
    source: str
    path: str
    dev: int
    ino: int
    size: int = 0

    @property
    def key(self) -> str:
        return f"{self.source}:{self.dev}:{self.ino}"


def scan(sources: dict[str, SourceConfig]) -> dict[str, Match]:
    """Every regular file the globs match now, keyed by identity (first path wins)."""
    found: dict[str, Match] = {}
    for name, src in sources.items():
        for pattern in src.include:
            for path in expand(pattern):
                if excluded(path, src.exclude):
                    continue
                try:
                    st = os.stat(path)  # follows symlinks: identity of the target
                except OSError:
                    continue
                m = Match(name, path, st.st_dev, st.st_ino, st.st_size)
                found.setdefault(m.key, m)
    return found


def watch_roots(sources: dict[str, SourceConfig]) -> list[str]:
    """The deepest existing folder above each glob: where events can tell us something."""
    roots: set[str] = set()
    for src in sources.values():
        for pattern in src.include:
            p = Path(os.path.expanduser(pattern)).absolute()
            parts = []
            for part in p.parts:
                if glob.has_magic(part):
                    break
                parts.append(part)
            root = Path(*parts) if parts else Path("/")
            if root == p:
                root = root.parent
            while not root.exists() and root != root.parent:
                root = root.parent
            roots.add(str(root))
    # Drop roots nested inside another root: the outer watch is recursive.
    ordered = sorted(roots)
    return [
        r for r in ordered if not any(r != o and r.startswith(o.rstrip("/") + "/") for o in ordered)
    ]


async def watch_events(
    roots: list[str],
    on_paths: Callable[[set[str]], Awaitable[None] | None],
    stop: asyncio.Event,
) -> None:
    """Forward filesystem events as hints; any failure here only costs latency."""
    if not roots:
        return
    try:
        from watchfiles import awatch
    except ImportError:  # pragma: no cover - dependency is declared
        return
    try:
        async for changes in awatch(
            *roots, stop_event=stop, debounce=50, step=20, recursive=True, yield_on_timeout=False
        ):
            res = on_paths({p for _, p in changes})
            if res is not None:
                await res
    except Exception as e:
        with contextlib.suppress(Exception):
            log.warning("file events unavailable, relying on rescans", extra={"error": str(e)})
