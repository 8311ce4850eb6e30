"""What a sink's classifier says about one response (DESIGN rule 6)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Verdict(Enum):
    DELIVERED = "delivered"
    RETRY = "retry"  # nothing (known to be) stored: send the same payload again later
    SPLIT = "split"  # too large: send halves
    REJECTED = "rejected"  # permanent: count with the server's reason, acknowledge
    PARTIAL = "partial"  # per-item answers: the rest stored, these retried, those refused


@dataclass(frozen=True, slots=True)
class Outcome:
    verdict: Verdict
    reason: str = ""
    retry_after: float | None = None
    rejected: int = 0  # records the server refused for good (REJECTED; partial for Loki 400)
    # PARTIAL: positions in the request (record order) to send again alone, and those
    # refused for good with the server's reason for each.
    retry_items: tuple[int, ...] = ()
    failed_items: tuple[tuple[int, str], ...] = ()


DELIVERED = Outcome(Verdict.DELIVERED)
