"""The ack tracker: the one owner of "how far is this file safely delivered" (DESIGN rule 1).

Every batch a tailer reads gets a :class:`Ticket` that counts the sinks still
owing it. A file's committed offset advances only over a prefix of tickets that
are all done, so a slow sink holding an early batch holds the checkpoint back
even when later batches are already delivered.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

MAX_PREVIOUS = 4


class Ticket:
    __slots__ = ("end_offset", "file", "nbytes", "on_release", "remaining")

    def __init__(
        self,
        file: FileAcks,
        end_offset: int,
        nbytes: int,
        remaining: int,
        on_release: Callable[[int], None],
    ) -> None:
        self.file = file
        self.end_offset = end_offset
        self.nbytes = nbytes
        self.remaining = remaining
        self.on_release = on_release

    def done(self) -> None:
        """One sink has delivered (or deliberately dropped) every record of this batch."""
        self.remaining -= 1
        if self.remaining == 0:
            self.on_release(self.nbytes)
            self.file.advance()


class JoinTicket:
    """Stands for a ticket split across several requests (a 413 split): done when all are."""

    __slots__ = ("parent", "remaining")

    def __init__(self, parent: Ticket | JoinTicket, parts: int) -> None:
        self.parent = parent
        self.remaining = parts

    def done(self) -> None:
        self.remaining -= 1
        if self.remaining == 0:
            self.parent.done()


class FileAcks:
    """Delivery bookkeeping of one file identity."""

    __slots__ = (
        "committed",
        "fingerprint",
        "key",
        "partial",
        "path",
        "pending",
        "previous",
        "tracker",
    )

    def __init__(
        self, tracker: AckTracker, key: str, path: str, fingerprint: str, committed: int
    ) -> None:
        self.tracker = tracker
        self.key = key
        self.path = path
        self.fingerprint = fingerprint
        self.committed = committed
        # True when the committed offset ends inside a line that was flushed without
        # its newline (idle timeout): the newline that follows must not start a line.
        self.partial = False
        self.pending: deque[tuple[Ticket, bool]] = deque()
        # Fingerprints of the content before each truncation (newest first, a few kept).
        self.previous: list[str] = []

    def ticket(self, end_offset: int, nbytes: int, sinks: int, partial: bool = False) -> Ticket:
        t = Ticket(self, end_offset, nbytes, sinks, self.tracker.release)
        self.tracker.outstanding += 1
        self.pending.append((t, partial))
        if sinks == 0:
            t.remaining = 1
            t.done()
        return t

    def advance(self) -> None:
        pending = self.pending
        moved = False
        while pending and pending[0][0].remaining <= 0:
            t, partial = pending.popleft()
            self.committed = t.end_offset
            self.partial = partial
            moved = True
            self.tracker.outstanding -= 1
        if moved:
            self.tracker.dirty = True
            if self.tracker.outstanding == 0:
                self.tracker.idle.set()

    def remember_previous(self, fp: str | None = None) -> None:
        """Keep the fingerprint of content that is going away (truncation) to spot its copies."""
        fp = self.fingerprint if fp is None else fp
        if fp[:2] != "0:" and fp not in self.previous:
            self.previous = [fp, *self.previous][:MAX_PREVIOUS]

    @property
    def in_flight(self) -> int:
        return len(self.pending)


class AckTracker:
    def __init__(self, release: Callable[[int], None]) -> None:
        self.release = release
        self.files: dict[str, FileAcks] = {}
        self.outstanding = 0
        self.dirty = False
        self.idle = asyncio.Event()
        self.idle.set()

    def file(self, key: str, path: str, fingerprint: str, committed: int) -> FileAcks:
        f = self.files.get(key)
        if f is None:
            f = FileAcks(self, key, path, fingerprint, committed)
            self.files[key] = f
            # Saved at the next checkpoint even before anything is delivered, so that a
            # restart can find the file again if it is rotated away meanwhile.
            self.dirty = True
        return f

    def forget(self, key: str) -> None:
        f = self.files.get(key)
        if f is not None and not f.pending:
            del self.files[key]

    async def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every ticket is done; False when the timeout ran out first."""
        if self.outstanding == 0:
            return True
        self.idle.clear()
        if self.outstanding == 0:
            return True
        try:
            await asyncio.wait_for(self.idle.wait(), timeout)
        except TimeoutError:
            return False
        return True
