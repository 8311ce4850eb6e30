"""A source's chain: its ``transforms`` in config order, then its enrichment.

The agent builds one :class:`SourceChain` per source that configures transforms or enrichment
and calls :meth:`SourceChain.apply` where a tailer's batch is handed to the sinks; sources that
configure neither have no chain, so their path is unchanged. Enrichment runs last, so dropped
lines never count towards a field label's distinct values.

A step that raises is a bug, not bad input: it is logged (with its traceback, once per step) and
counted, and the batch goes on without that step (a failed enrichment: without its labels),
except a failed ``redact``, which drops the batch (counted under ``redact_error``): a secret
must not leave because a rule crashed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from logship.config.model import AgentConfig, SourceConfig
from logship.config.transforms import (
    DropTransform,
    KeepTransform,
    RateLimitTransform,
    RedactTransform,
    RemoveTransform,
    RenameTransform,
    SampleTransform,
    TransformConfig,
)
from logship.parsing.batch import Batch
from logship.telemetry import Telemetry
from logship.transforms.batchops import select
from logship.transforms.enrich import Enricher, static_labels
from logship.transforms.fields import FieldEditor
from logship.transforms.filter import LineFilter
from logship.transforms.ratelimit import RateLimiter
from logship.transforms.redact import Redactor
from logship.transforms.sample import Sampler
from logship.transforms.scan import BatchScan

log = logging.getLogger("logship.transforms")


class Step(Protocol):
    def apply(self, batch: Batch) -> Batch: ...


def build_step(
    cfg: TransformConfig, source: str, telemetry: Telemetry, clock: Callable[[], float]
) -> Step:
    if isinstance(cfg, DropTransform | KeepTransform):
        return LineFilter(cfg, source, telemetry)
    if isinstance(cfg, RenameTransform | RemoveTransform):
        return FieldEditor(cfg)
    if isinstance(cfg, RedactTransform):
        return Redactor(cfg, source, telemetry)
    if isinstance(cfg, SampleTransform):
        return Sampler(cfg, source, telemetry)
    if isinstance(cfg, RateLimitTransform):
        return RateLimiter(cfg, source, telemetry, clock)
    raise TypeError(f"unknown transform {cfg!r}")


class SourceChain:
    def __init__(
        self,
        source: str,
        cfg: SourceConfig,
        telemetry: Telemetry,
        *,
        clock: Callable[[], float] = time.monotonic,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.source = source
        self.telemetry = telemetry
        self.steps: list[tuple[str, Step]] = [
            (t.type, build_step(t, source, telemetry, clock)) for t in cfg.transforms
        ]
        self.enricher = (
            Enricher(cfg.enrich, source, static_labels(cfg.enrich, env), clock)
            if cfg.enrich is not None
            else None
        )
        self._logged: set[int] = set()
        blocking = [s for _, s in self.steps if isinstance(s, RateLimiter) and s.block]
        # What the source's tailers ask before each read (seconds to wait); None when nothing
        # can block.
        self.pace: Callable[[], float] | None = blocking[0].delay if blocking else None

    def apply(self, batch: Batch) -> list[Batch]:
        """The batch after every step: one part, or one per label set with field labels."""
        # The batch's joined text and byte classes, made by the card-number rule and read by
        # the level column (see scan.py); a step that replaces the lines makes it stale, which
        # the readers see (it describes another list) and ignore.
        scan: BatchScan | None = None
        for i, (kind, step) in enumerate(self.steps):
            try:
                if isinstance(step, Redactor):
                    batch, scan = step.apply_scanned(batch, scan)
                else:
                    batch = step.apply(batch)
            except Exception:
                self.telemetry.transform_failed(self.source)
                if i not in self._logged:
                    self._logged.add(i)
                    log.exception(
                        "transform failed", extra={"source": self.source, "transform": kind}
                    )
                if kind == "redact":
                    self.telemetry.transform_dropped(self.source, "redact_error", len(batch))
                    batch = select(batch, [])
        if self.enricher is not None:
            try:
                return self.enricher.apply(batch, scan)
            except Exception:  # the lines still go, without the labels enrichment would add
                self.telemetry.transform_failed(self.source)
                if -1 not in self._logged:
                    self._logged.add(-1)
                    log.exception("enrichment failed", extra={"source": self.source})
        return [batch]


def build_chains(cfg: AgentConfig, telemetry: Telemetry) -> dict[str, SourceChain]:
    """Chains of the sources that configure transforms or enrichment (the others need none)."""
    return {
        name: SourceChain(name, src, telemetry)
        for name, src in cfg.sources.items()
        if src.transforms or src.enrich is not None
    }


def log_totals(telemetry: Telemetry, sources: list[str]) -> None:
    """One line per source with what its transforms dropped and redacted (at shutdown)."""
    for name in sources:
        s = telemetry.sources.get(name)
        if s is None or not (s.dropped_lines or s.redactions or s.transform_errors):
            continue
        log.info(
            "transform totals",
            extra={
                "source": name,
                "dropped_lines": s.dropped_lines,
                "dropped_by": dict(s.dropped_by),
                "redactions": dict(s.redactions),
                "transform_errors": s.transform_errors,
            },
        )
