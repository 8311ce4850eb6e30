"""One retry policy for every sink: exponential backoff, full jitter, Retry-After wins.

Kept apart from sending (as Vector does) so the policy is a pure function of the
attempt number and the server's hint, and can be tested without a network.
"""

from __future__ import annotations

import random
import time
from email.utils import parsedate_to_datetime

from logship.config.model import RetryConfig


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class RetryPolicy:
    def __init__(self, cfg: RetryConfig, rng: random.Random | None = None) -> None:
        self.cfg = cfg
        self.rng = rng or random.Random()

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Sleep before retry number ``attempt`` (1 = first retry)."""
        if retry_after is not None:
            return min(retry_after, self.cfg.max_retry_after)
        ceiling = min(self.cfg.max_backoff, self.cfg.initial_backoff * (2 ** (attempt - 1)))
        return self.rng.uniform(0, ceiling)

    def exhausted(self, attempts: int, elapsed: float) -> bool:
        """True when ``attempts`` tries (so far) and ``elapsed`` seconds use up the limits."""
        cfg = self.cfg
        if cfg.max_attempts is not None and attempts >= cfg.max_attempts:
            return True
        return cfg.max_elapsed is not None and elapsed >= cfg.max_elapsed
