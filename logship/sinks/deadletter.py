"""The dead-letter file: records a sink refused for good, kept instead of lost.

A sink that gets a permanent answer for a record (an Elasticsearch item 400, a
single document too large for the server, a request given up after its retry
limits) acknowledges it so the checkpoint can move on; the record itself, the
sink, the server's reason and the time go here as one JSON line, so an operator
can see why and replay it. The file is size-bounded and rotated like a log
(``path.1`` newest), because a misconfigured mapping can reject every record.
Writes are one ``write`` per request's worth of records, from the event loop:
this is the rare path, and a small synchronous append keeps the order obvious.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import orjson

from logship.config.model import DeadLetterConfig
from logship.parsing.timestamps import format_rfc3339

log = logging.getLogger("logship.deadletter")


class DeadLetterFile:
    def __init__(self, cfg: DeadLetterConfig) -> None:
        if cfg.path is None:
            raise ValueError("dead_letter.path is not set")
        self.path = Path(cfg.path)
        self.max_bytes = int(cfg.max_bytes)
        self.max_files = cfg.max_files
        self.written = 0  # records written since start

    def _size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def _rotate(self) -> None:
        oldest = self.path.with_name(f"{self.path.name}.{self.max_files}")
        oldest.unlink(missing_ok=True)
        for i in range(self.max_files - 1, 0, -1):
            src = self.path.with_name(f"{self.path.name}.{i}")
            if src.exists():
                os.replace(src, self.path.with_name(f"{self.path.name}.{i + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))

    def write(self, sink: str, reason: str, records: Sequence[bytes]) -> bool:
        """Append one line per record (each a JSON document); False when it could not.

        ``records`` are already JSON (the document the sink tried to deliver), spliced
        in as they are so nothing is decoded and re-encoded on the way.
        """
        if not records:
            return True
        head = (
            b'{"time":'
            + orjson.dumps(format_rfc3339(time.time_ns()))
            + b',"sink":'
            + orjson.dumps(sink)
            + b',"reason":'
            + orjson.dumps(reason)
            + b',"record":'
        )
        data = b"".join(head + r + b"}\n" for r in records)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self._size() > 0 and self._size() + len(data) > self.max_bytes:
                self._rotate()
            with open(self.path, "ab") as f:
                f.write(data)
        except OSError as e:
            log.error(
                "cannot write the dead-letter file",
                extra={"path": str(self.path), "error": e.strerror or str(e)},
            )
            return False
        self.written += len(records)
        return True
