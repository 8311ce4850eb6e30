"""The sink worker every sink shares: its own queue, batching, in-flight requests, acks.

Each sink has its own queue, so one sink that is down does not stop the others
(reading slows only when the shared memory budget is full). A worker groups whole
tailer batches into requests bounded by bytes, entries and linger, keeps up to
``max_in_flight`` requests going, and acknowledges a batch's ticket exactly once,
after the batch is delivered or deliberately dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

from logship.parsing.batch import Batch
from logship.pipeline.budget import MemoryBudget
from logship.telemetry import Telemetry

log = logging.getLogger("logship.sink")


class SinkWorker:
    """Subclasses implement :meth:`deliver` for one request's worth of batches."""

    def __init__(
        self,
        name: str,
        telemetry: Telemetry,
        *,
        max_bytes: int,
        max_entries: int,
        linger: float,
        max_in_flight: int,
    ) -> None:
        self.name = name
        self.telemetry = telemetry
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self.linger = linger
        self.queue: deque[Batch] = deque()
        self.queued_bytes = 0
        self.queued_entries = 0
        self.sending_bytes = 0  # in requests being sent or retried
        self._arrived = asyncio.Event()
        self._slots = asyncio.Semaphore(max_in_flight)
        self._tasks: set[asyncio.Task[None]] = set()
        self.flush_now = False  # no more input soon (--once at end, draining): skip linger
        self.closing = False  # no more input at all: finish the queue, then stop
        self.aborted = False  # stop retrying (drain timeout): leave the rest unacknowledged
        self.undelivered: str | None = None  # first reason a record was not delivered
        # The agent's bound on bytes held (set by the agent); sinks whose encoded requests
        # are much larger than their lines count those against it while in flight.
        self.budget: MemoryBudget | None = None

    # -- input -------------------------------------------------------------------------
    def submit(self, batch: Batch) -> None:
        self.queue.append(batch)
        self.queued_bytes += batch.nbytes
        self.queued_entries += len(batch.lines)
        self._arrived.set()

    def close(self) -> None:
        self.closing = True
        self.flush_now = True
        self._arrived.set()

    def flush(self) -> None:
        self.flush_now = True
        self._arrived.set()

    def abort(self) -> None:
        self.aborted = True
        self.close()
        for t in self._tasks:
            t.cancel()

    def note_undelivered(self, reason: str) -> None:
        if self.undelivered is None:
            self.undelivered = reason

    # -- batching loop -----------------------------------------------------------------
    def _take(self) -> list[Batch]:
        out: list[Batch] = []
        size = entries = 0
        q = self.queue
        while q:
            b = q[0]
            if out and (size + b.nbytes > self.max_bytes or entries + len(b) > self.max_entries):
                break
            q.popleft()
            self.queued_bytes -= b.nbytes
            self.queued_entries -= len(b.lines)
            out.append(b)
            size += b.nbytes
            entries += len(b)
        return out

    def _full(self) -> bool:
        return self.queued_bytes >= self.max_bytes or self.queued_entries >= self.max_entries

    async def run(self) -> None:
        try:
            while True:
                if not self.queue:
                    if self.closing:
                        break
                    self._arrived.clear()
                    await self._arrived.wait()
                    continue
                if not self.flush_now and not self._full():
                    deadline = time.monotonic() + self.linger
                    while not (self.flush_now or self._full()):
                        left = deadline - time.monotonic()
                        if left <= 0:
                            break
                        self._arrived.clear()
                        try:
                            await asyncio.wait_for(self._arrived.wait(), left)
                        except TimeoutError:
                            break
                await self._slots.acquire()
                batches = self._take()
                if not batches:
                    self._slots.release()
                    continue
                nbytes = sum(b.nbytes for b in batches)
                self.sending_bytes += nbytes
                task = asyncio.create_task(self._deliver_and_release(batches, nbytes))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            if self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)
        finally:
            await self.aclose()

    async def _deliver_and_release(self, batches: list[Batch], nbytes: int) -> None:
        try:
            await self.deliver(batches)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a bug must not kill the worker or lose the batch silently
            if self.aborted:
                return
            log.exception("sink delivery failed", extra={"sink": self.name})
            self.note_undelivered(f"{self.name}: internal error: {e}")
            self.telemetry.dropped(self.name, sum(len(b) for b in batches), str(e))
            for b in batches:
                ack(b)
        finally:
            self.sending_bytes -= nbytes
            self._slots.release()

    async def deliver(self, batches: list[Batch]) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release connections and files."""


def ack(batch: Batch) -> None:
    if batch.ticket is not None:
        batch.ticket.done()
