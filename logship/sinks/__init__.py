"""Sinks: one module per protocol plus the shared worker, HTTP driver and retry policy."""

from __future__ import annotations

import httpx

from logship.config.model import (
    ElasticsearchSinkConfig,
    LokiSinkConfig,
    OtlpSinkConfig,
    SinkConfig,
    StdoutSinkConfig,
)
from logship.sinks.base import SinkWorker
from logship.sinks.deadletter import DeadLetterFile
from logship.telemetry import Telemetry


def build_sink(
    name: str,
    cfg: SinkConfig,
    telemetry: Telemetry,
    transport: httpx.BaseTransport | None = None,
    dead_letter: DeadLetterFile | None = None,
) -> SinkWorker:
    if isinstance(cfg, StdoutSinkConfig):
        from logship.sinks.stdout import StdoutSink

        return StdoutSink(name, telemetry)
    if isinstance(cfg, LokiSinkConfig):
        from logship.sinks.loki import LokiSink

        return LokiSink(name, cfg, telemetry, transport, dead_letter)
    if isinstance(cfg, ElasticsearchSinkConfig):
        from logship.sinks.elasticsearch import ElasticsearchSink

        return ElasticsearchSink(name, cfg, telemetry, transport, dead_letter)
    if isinstance(cfg, OtlpSinkConfig):
        from logship.sinks.otlp import OtlpSink

        return OtlpSink(name, cfg, telemetry, transport, dead_letter)
    raise ValueError(f"unsupported sink type: {type(cfg).__name__}")  # pragma: no cover
