"""``sample``: keep one line in ``rate``.

The choice is a hash of the line's bytes (CRC-32, computed for the whole batch in a C ``map``):
a line is kept when its hash is divisible by ``rate``. It is deterministic, so a batch read
again after a restart is sampled the same way (no line is shipped twice because a replay chose
differently), and independent of batch boundaries. Identical lines share their fate; lines that
differ only by a timestamp do not. With ``level``, only lines of those levels are sampled.
"""

from __future__ import annotations

import zlib

from logship.config.transforms import SampleTransform
from logship.parsing.batch import Batch
from logship.telemetry import Telemetry
from logship.transforms.batchops import select
from logship.transforms.filter import level_column


class Sampler:
    def __init__(self, cfg: SampleTransform, source: str, telemetry: Telemetry) -> None:
        self.rate = cfg.rate
        self.levels = frozenset(cfg.level) if cfg.level is not None else None
        self.source = source
        self.telemetry = telemetry

    def apply(self, batch: Batch) -> Batch:
        if self.rate == 1 or not batch.lines:
            return batch
        rate = self.rate
        hashes = map(zlib.crc32, batch.lines)
        if self.levels is None:
            keep = [i for i, h in enumerate(hashes) if h % rate == 0]
        else:
            levels = self.levels
            keep = [
                i
                for i, (h, lv) in enumerate(zip(hashes, level_column(batch), strict=True))
                if lv not in levels or h % rate == 0
            ]
        dropped = len(batch.lines) - len(keep)
        if dropped:
            self.telemetry.transform_dropped(self.source, "sample", dropped)
        return select(batch, keep)
