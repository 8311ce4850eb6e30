"""The bound on bytes held between tailers and sinks (DESIGN rule 3).

Tailers acquire before they read and tickets release when every sink is done,
so a slow or dead sink turns into tailers that stop reading: memory stays flat
and the log file on disk is the buffer of last resort.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class MemoryBudget:
    def __init__(self, limit: int) -> None:
        self.limit = max(1, int(limit))
        self.used = 0
        self.peak = 0
        self._changed = asyncio.Event()

    def would_block(self, n: int) -> bool:
        return self.used > 0 and self.used + n > self.limit

    async def acquire(self, n: int, give_up: Callable[[], bool] | None = None) -> bool:
        """Wait for room for ``n`` bytes and take it; False (nothing taken) once ``give_up()``.

        A tailer stopping (SIGTERM) while the sinks are down and the budget is full must not
        wait for room that never comes: it gives up, and shutdown goes on to the drain.
        """
        # A request larger than the whole bound is let through alone, never deadlocked.
        while self.would_block(n):
            if give_up is not None and give_up():
                return False
            self._changed.clear()
            await self._changed.wait()
        self.used += n
        if self.used > self.peak:
            self.peak = self.used
        return True

    def hold(self, n: int) -> None:
        """Count ``n`` bytes that already exist (a request body in flight), without waiting.

        Tailers then find less room and read less until :meth:`release` gives it back. It
        never waits: a sink waiting for room that only its own deliveries free would stall.
        """
        self.used += n
        if self.used > self.peak:
            self.peak = self.used

    def wake(self) -> None:
        """Let every waiter look at its ``give_up`` again."""
        self._changed.set()

    def release(self, n: int) -> None:
        self.used -= n
        self._changed.set()
