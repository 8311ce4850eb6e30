"""``rate_limit``: a token bucket per source, ``lines_per_second`` on average, ``burst`` at once.

Two modes with two different interfaces, because they act at different places:

* ``drop``: :meth:`RateLimiter.apply` keeps as many lines of the batch as there are tokens (the
  first ones) and drops the rest, counted under ``rate_limit``. Nothing waits.
* ``block``: :meth:`RateLimiter.apply` lets every line through and takes its tokens, going into
  debt; the source's tailers call :meth:`RateLimiter.delay` before each read and wait until
  the debt is paid. Reading slows to the rate, the file on disk is the buffer and nothing
  is dropped. A batch may overshoot by one read chunk; the sleep that follows pays it back.

The clock is injected (monotonic seconds) so that tests drive time themselves.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from logship.config.transforms import RateLimitTransform
from logship.parsing.batch import Batch
from logship.telemetry import Telemetry
from logship.transforms.batchops import select


class RateLimiter:
    def __init__(
        self,
        cfg: RateLimitTransform,
        source: str,
        telemetry: Telemetry,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = cfg.lines_per_second
        self.burst = float(cfg.burst if cfg.burst is not None else max(1, round(self.rate)))
        self.block = cfg.mode == "block"
        self.source = source
        self.telemetry = telemetry
        self.clock = clock
        self.tokens = self.burst
        self.updated = clock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def apply(self, batch: Batch) -> Batch:
        n = len(batch.lines)
        if n == 0:
            return batch
        self._refill()
        if self.block:
            self.tokens -= n
            return batch
        allowed = max(0, min(n, int(self.tokens)))
        self.tokens -= allowed
        if allowed == n:
            return batch
        self.telemetry.transform_dropped(self.source, "rate_limit", n - allowed)
        return select(batch, list(range(allowed)))

    def delay(self) -> float:
        """Seconds until the bucket is out of debt (block mode); 0 when reading may go on.

        The source's tailers ask before each read and wait this long (a stop ends the wait).
        """
        self._refill()
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate
