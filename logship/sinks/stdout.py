"""The default sink: one compact JSON record per line on standard output."""

from __future__ import annotations

import sys
from typing import BinaryIO

import orjson

from logship.parsing.batch import Batch
from logship.sinks.base import SinkWorker, ack
from logship.telemetry import Telemetry


def render_records(batch: Batch) -> bytes:
    """A batch's normalized records, one compact JSON object per line (what stdout prints)."""
    dumps = orjson.dumps
    return b"\n".join([dumps(r) for r in batch.records()]) + b"\n"


class StdoutSink(SinkWorker):
    def __init__(self, name: str, telemetry: Telemetry, out: BinaryIO | None = None) -> None:
        super().__init__(
            name, telemetry, max_bytes=1 << 20, max_entries=100_000, linger=0.0, max_in_flight=1
        )
        self.out = out if out is not None else sys.stdout.buffer
        self.broken = False

    async def deliver(self, batches: list[Batch]) -> None:
        for b in batches:
            if b.lines and not self.broken:
                body = render_records(b)
                try:
                    self.out.write(body)
                    self.out.flush()
                except BrokenPipeError:
                    # The reader went away (| head): nothing more can be shown.
                    self.broken = True
                    self.note_undelivered(f"{self.name}: output closed")
                else:
                    self.telemetry.sent(self.name, len(b.lines), len(body))
            ack(b)
