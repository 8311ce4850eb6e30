"""The agent's own logs: one JSON object per line on stderr, never into a watched folder.

Stderr, because a sidecar's stdout and stderr are collected by the container runtime, and a
log file of the agent's own could land in a folder it tails and feed on itself.

Repeated warnings and errors are rate-limited: a Loki outage would otherwise print "request
failed, retrying" for every request, every backoff, and drown the one line that explains it.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}

#: A warning or error with the same key is written at most once per this many seconds.
REPEAT_INTERVAL = 10.0
# Extra fields that make a message about a different thing, not a repeat.
_KEY_FIELDS = ("sink", "path", "source")
_MAX_KEYS = 10_000


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for k, v in record.__dict__.items():
            if k not in _STANDARD and not k.startswith("_"):
                out[k] = v
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


class RepeatFilter(logging.Filter):
    """Let a warning or error through at most once per ``interval`` for the same key.

    The key is the logger, the level, the message template (before ``%`` formatting) and the
    ``sink``/``path``/``source`` fields, so retries of one sink are one stream and two sinks
    failing are two. The next line let through carries ``suppressed``: how many were not
    written since the last one. Info and debug lines are never held back.
    """

    def __init__(
        self, interval: float = REPEAT_INTERVAL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.interval = interval
        self.clock = clock
        self._seen: dict[tuple[Any, ...], list[float]] = {}  # key -> [last written, suppressed]
        self._lock = threading.Lock()  # sink threads log too

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (
            record.name,
            record.levelno,
            str(record.msg),
            *(str(getattr(record, f, "")) for f in _KEY_FIELDS),
        )
        now = self.clock()
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and now - seen[0] < self.interval:
                seen[1] += 1
                return False
            if seen is not None and seen[1]:
                record.suppressed = int(seen[1])
            if len(self._seen) >= _MAX_KEYS:
                self._seen.clear()  # bounded: at worst a repeat is written early
            self._seen[key] = [now, 0]
        return True


def setup_logging(level: str = "info", repeat_interval: float = REPEAT_INTERVAL) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    if repeat_interval > 0:
        handler.addFilter(RepeatFilter(repeat_interval))
    for name in ("logship", "opentelemetry"):  # the OTLP exporter's complaints too, as JSON
        root = logging.getLogger(name)
        root.handlers[:] = [handler]
        root.setLevel(level.upper())
        root.propagate = False
