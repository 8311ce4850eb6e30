"""The bound on bytes held between tailers and sinks (DESIGN rule 3).

Tailers acquire before they read and tickets release when every sink is done,
so a slow or dead sink turns into tailers that stop reading: memory stays flat
and the log file on disk is the buffer of last resort.
"""

from __future__ import annotations

import asyncio


class MemoryBudget:
    def __init__(self, limit: int) -> None:
        self.limit = max(1, int(limit))
        self.used = 0
        self.peak = 0
        self._changed = asyncio.Event()

    def would_block(self, n: int) -> bool:
        return self.used > 0 and self.used + n > self.limit

    async def acquire(self, n: int) -> None:
        # A request larger than the whole bound is let through alone, never deadlocked.
        while self.would_block(n):
            self._changed.clear()
            await self._changed.wait()
        self.used += n
        if self.used > self.peak:
            self.peak = self.used

    def release(self, n: int) -> None:
        self.used -= n
        self._changed.set()
