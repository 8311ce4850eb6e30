"""The agent's own counters, bumped once per batch or request (never per line).

One small module owns every name, so the metric catalogue stays in one place.
Counters are plain integers here; the Prometheus/OTLP exposition reads them.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field

log = logging.getLogger("logship")


@dataclass
class SinkStats:
    sent_records: int = 0
    sent_requests: int = 0
    sent_bytes: int = 0
    failed_requests: int = 0
    retries: int = 0
    dropped_records: int = 0
    rejected_records: int = 0
    last_error: str = ""
    last_success: float = 0.0
    failing_since: float | None = None


@dataclass
class SourceStats:
    lines: int = 0
    bytes: int = 0
    malformed: int = 0
    truncated_lines: int = 0
    invalid_utf8_lines: int = 0
    # Transforms: lines deliberately dropped, by step (drop, keep, sample, rate_limit), and
    # secrets replaced, by redaction rule.
    dropped_lines: int = 0
    dropped_by: dict[str, int] = field(default_factory=dict)
    redactions: dict[str, int] = field(default_factory=dict)
    transform_errors: int = 0


@dataclass
class Telemetry:
    sources: defaultdict[str, SourceStats] = field(default_factory=lambda: defaultdict(SourceStats))
    sinks: defaultdict[str, SinkStats] = field(default_factory=lambda: defaultdict(SinkStats))
    rotations: int = 0
    truncations: int = 0
    truncated_bytes: int = 0

    def read(self, source: str, lines: int, nbytes: int) -> None:
        s = self.sources[source]
        s.lines += lines
        s.bytes += nbytes

    def malformed(self, source: str, count: int) -> None:
        self.sources[source].malformed += count

    def invalid_utf8(self, source: str, count: int) -> None:
        self.sources[source].invalid_utf8_lines += count

    def line_truncated(self, source: str, count: int = 1) -> None:
        self.sources[source].truncated_lines += count

    def transform_dropped(self, source: str, reason: str, count: int) -> None:
        s = self.sources[source]
        s.dropped_lines += count
        s.dropped_by[reason] = s.dropped_by.get(reason, 0) + count

    def redacted(self, source: str, rule: str, count: int) -> None:
        r = self.sources[source].redactions
        r[rule] = r.get(rule, 0) + count

    def transform_failed(self, source: str) -> None:
        self.sources[source].transform_errors += 1

    def sent(self, sink: str, records: int, nbytes: int) -> None:
        s = self.sinks[sink]
        s.sent_records += records
        s.sent_requests += 1
        s.sent_bytes += nbytes
        s.last_success = time.monotonic()
        s.failing_since = None

    def retry(self, sink: str, reason: str) -> None:
        s = self.sinks[sink]
        s.retries += 1
        s.failed_requests += 1
        s.last_error = reason
        if s.failing_since is None:
            s.failing_since = time.monotonic()

    def rejected(self, sink: str, records: int, reason: str) -> None:
        """The server refused part of a request for good (Loki 400): counted, not retried."""
        s = self.sinks[sink]
        s.rejected_records += records
        s.failed_requests += 1
        s.last_error = reason

    def dropped(self, sink: str, records: int, reason: str) -> None:
        s = self.sinks[sink]
        s.dropped_records += records
        s.last_error = reason
