"""The agent's own counters, bumped once per batch, chunk or request (never per line).

One small module owns every event, so the metric catalogue (``docs/metrics.md``) stays
in one place. Counters are plain integers here: bumping one costs a dict lookup and an
add, whether or not metrics are served. ``logship.metrics`` exposes them through
OpenTelemetry only when an HTTP listen address is set, reading them at scrape time, so
the hot path never touches the OpenTelemetry SDK and ``logship tail`` never imports it.

Request latency is the one measurement that cannot be read back later (a histogram
needs every observation); it goes to :attr:`Telemetry.on_request_duration` when the
metrics layer has set it.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
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
    dead_lettered_records: int = 0
    last_error: str = ""
    last_success: float = 0.0
    failing_since: float | None = None  # time.monotonic() of the first failure since a success


@dataclass
class SourceStats:
    lines: int = 0
    bytes: int = 0
    malformed: int = 0
    truncated_lines: int = 0
    invalid_utf8_lines: int = 0
    multiline_cut: int = 0  # multiline records closed by max_lines / max_bytes
    # Transforms: lines deliberately dropped, by step (drop, keep, sample, rate_limit), and
    # secrets replaced, by redaction rule.
    dropped_lines: int = 0
    dropped_by: dict[str, int] = field(default_factory=dict)
    redactions: dict[str, int] = field(default_factory=dict)
    transform_errors: int = 0


class FileStats:
    """Per watched path; kept while the path is followed, pruned by the agent after.

    A plain class, not a dataclass: generating a dataclass's methods at import costs more
    CPU than ``logship tail`` spends on a thousand lines.
    """

    __slots__ = ("bytes_read", "rotations", "truncated_bytes", "truncations")

    def __init__(self) -> None:
        self.bytes_read = 0
        self.rotations = 0
        self.truncations = 0
        self.truncated_bytes = 0


@dataclass
class Telemetry:
    sources: defaultdict[str, SourceStats] = field(default_factory=lambda: defaultdict(SourceStats))
    sinks: defaultdict[str, SinkStats] = field(default_factory=lambda: defaultdict(SinkStats))
    files: defaultdict[str, FileStats] = field(default_factory=lambda: defaultdict(FileStats))
    rotations: int = 0
    truncations: int = 0
    truncated_bytes: int = 0
    config_reloads: int = 0  # new configs applied
    config_reload_failures: int = 0  # new configs refused (invalid); the old one kept running
    # Set by logship.metrics when metrics are served: (sink, seconds) for each HTTP request.
    on_request_duration: Callable[[str, float], None] | None = None

    # -- sources and files ------------------------------------------------------------
    def read(self, source: str, lines: int, nbytes: int) -> None:
        s = self.sources[source]
        s.lines += lines
        s.bytes += nbytes

    def file_read(self, path: str, nbytes: int) -> None:
        """Bytes read from a file by one read call (a chunk, not a line)."""
        self.files[path].bytes_read += nbytes

    def rotated(self, path: str) -> None:
        """The file followed under ``path`` was renamed away or deleted; it is read to its end."""
        self.rotations += 1
        self.files[path].rotations += 1

    def truncated(self, path: str, lost_bytes: int = 0) -> None:
        """``path`` got shorter than what was read (copytruncate): reading restarts at 0."""
        self.truncations += 1
        self.truncated_bytes += lost_bytes
        f = self.files[path]
        f.truncations += 1
        f.truncated_bytes += lost_bytes

    def forget_files(self, keep: Iterable[str]) -> None:
        """Drop the series of paths no longer followed, so per-file labels stay bounded."""
        keep = set(keep)
        for path in [p for p in self.files if p not in keep]:
            del self.files[path]

    def malformed(self, source: str, count: int) -> None:
        self.sources[source].malformed += count

    def invalid_utf8(self, source: str, count: int) -> None:
        self.sources[source].invalid_utf8_lines += count

    def line_truncated(self, source: str, count: int = 1) -> None:
        self.sources[source].truncated_lines += count

    def multiline_cut(self, source: str, count: int) -> None:
        self.sources[source].multiline_cut += count

    def transform_dropped(self, source: str, reason: str, count: int) -> None:
        s = self.sources[source]
        s.dropped_lines += count
        s.dropped_by[reason] = s.dropped_by.get(reason, 0) + count

    def redacted(self, source: str, rule: str, count: int) -> None:
        r = self.sources[source].redactions
        r[rule] = r.get(rule, 0) + count

    def transform_failed(self, source: str) -> None:
        self.sources[source].transform_errors += 1

    # -- sinks ------------------------------------------------------------------------
    def sent(self, sink: str, records: int, nbytes: int) -> None:
        s = self.sinks[sink]
        s.sent_records += records
        s.sent_requests += 1
        s.sent_bytes += nbytes
        s.last_success = time.monotonic()
        s.failing_since = None

    def request_duration(self, sink: str, seconds: float) -> None:
        """One HTTP request's round trip, whatever its outcome."""
        if self.on_request_duration is not None:
            self.on_request_duration(sink, seconds)

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

    def dead_lettered(self, sink: str, records: int) -> None:
        """Records refused or given up on were written to the dead-letter file."""
        self.sinks[sink].dead_lettered_records += records

    def dropped(self, sink: str, records: int, reason: str) -> None:
        s = self.sinks[sink]
        s.dropped_records += records
        s.last_error = reason

    def failing_for(self, sink: str, now: float | None = None) -> float:
        """Seconds ``sink`` has been failing without a success in between; 0 when healthy."""
        stats = self.sinks.get(sink)  # .get: called from the scrape thread, must not insert
        since = None if stats is None else stats.failing_since
        if since is None:
            return 0.0
        return (time.monotonic() if now is None else now) - since
