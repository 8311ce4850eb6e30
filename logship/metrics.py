"""The agent's own metrics as OpenTelemetry instruments, exposed in Prometheus text format.

Imported only when an HTTP listen address is set: it loads the OpenTelemetry SDK and
prometheus_client, which ``logship tail`` without ``--http-listen`` never pays for.

Every instrument but one is *observable*: its callback reads :class:`~logship.telemetry.
Telemetry`'s plain counters, or the agent's state (tailer offsets, the memory budget, sink
queues), when a scrape collects. So the hot path stays plain integer adds, per-file lag costs
no stat calls of its own, and a file's series disappear when the agent stops following it.
The request latency histogram is the exception: a histogram needs each observation, so
:attr:`Telemetry.on_request_duration` records one per HTTP request.

:data:`CATALOGUE` is the one list of names, types, units, labels and meanings;
``docs/metrics.md`` is written from it and a test keeps the two in step.

Callbacks run in the HTTP server's thread while the event loop mutates the dicts they read;
they copy every dict with ``list()`` first, which CPython does without releasing the GIL.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from prometheus_client import CollectorRegistry, generate_latest

from logship.config.model import OtlpMetricsConfig
from logship.telemetry import Telemetry


class MetricsSetupError(Exception):
    """The metrics cannot be set up as configured; ``str()`` says what to do."""


class AgentView(Protocol):
    """What the metrics and ``/ready`` read from the agent (implemented by ``Agent``)."""

    telemetry: Telemetry

    def file_lags(self) -> dict[str, int]: ...

    def open_files(self) -> int: ...

    def buffer_bytes(self) -> tuple[int, int]: ...

    def sink_bytes_in_flight(self) -> dict[str, int]: ...

    def checkpoint_age(self) -> float | None: ...

    def readiness(self) -> tuple[bool, str]: ...

    def liveness(self) -> tuple[bool, str]: ...


@dataclass(frozen=True)
class MetricDoc:
    """One exposed metric, as Prometheus shows it (counters get ``_total`` on the wire)."""

    name: str
    kind: str  # counter | gauge | histogram
    unit: str  # OpenTelemetry unit: By, s, 1, {line}, ...
    labels: tuple[str, ...]
    description: str

    @property
    def exposed_name(self) -> str:
        return self.name + "_total" if self.kind == "counter" else self.name


LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

_S, _SINK, _P = ("source",), ("sink",), ("path",)

CATALOGUE: tuple[MetricDoc, ...] = (
    MetricDoc("logship_source_read_lines", "counter", "{line}", _S, "Lines read from files."),
    MetricDoc(
        "logship_source_read_bytes", "counter", "By", _S, "Bytes of those lines, newlines included."
    ),
    MetricDoc(
        "logship_source_malformed_lines",
        "counter",
        "{line}",
        _S,
        "Lines that looked like JSON (or format: json) but did not parse; shipped as raw text.",
    ),
    MetricDoc(
        "logship_source_truncated_lines",
        "counter",
        "{line}",
        _S,
        "Lines longer than tailing.max_line_size, cut with a marker.",
    ),
    MetricDoc(
        "logship_source_invalid_utf8_lines",
        "counter",
        "{line}",
        _S,
        "Lines whose invalid UTF-8 bytes were replaced with U+FFFD.",
    ),
    MetricDoc(
        "logship_source_multiline_cut_records",
        "counter",
        "{record}",
        _S,
        "Multiline records closed early by multiline.max_lines or max_bytes.",
    ),
    MetricDoc(
        "logship_source_dropped_lines",
        "counter",
        "{line}",
        ("source", "reason"),
        "Lines deliberately dropped by a transform (reason: drop, keep, sample, rate_limit, "
        "redact_error); their offsets are acknowledged.",
    ),
    MetricDoc(
        "logship_source_redactions",
        "counter",
        "{secret}",
        ("source", "rule"),
        "Secrets replaced by the redact transform, by rule.",
    ),
    MetricDoc(
        "logship_source_transform_errors",
        "counter",
        "{error}",
        _S,
        "Transform steps that failed on a batch (logged once per step).",
    ),
    MetricDoc("logship_file_read_bytes", "counter", "By", _P, "Bytes read from the file."),
    MetricDoc(
        "logship_file_lag_bytes",
        "gauge",
        "By",
        _P,
        "Bytes between the read offset and the end of the file, as of the last size check "
        "(each poll, and each rescan while reading is paused by backpressure).",
    ),
    MetricDoc(
        "logship_file_rotations",
        "counter",
        "{rotation}",
        _P,
        "Times the file under this path was renamed away or deleted (read to its end).",
    ),
    MetricDoc(
        "logship_file_truncations",
        "counter",
        "{truncation}",
        _P,
        "Times the file got shorter than the read offset (copytruncate); reading restarts at 0.",
    ),
    MetricDoc(
        "logship_file_truncation_lost_bytes",
        "counter",
        "By",
        _P,
        "Bytes the file was seen to have beyond the read offset when it was truncated: lost.",
    ),
    MetricDoc(
        "logship_files_open",
        "gauge",
        "{file}",
        (),
        "Files open and followed right now (idle files closed by close_idle_after excluded).",
    ),
    MetricDoc("logship_rotations", "counter", "{rotation}", (), "Rotations over all files, ever."),
    MetricDoc(
        "logship_truncations", "counter", "{truncation}", (), "Truncations over all files, ever."
    ),
    MetricDoc(
        "logship_config_reloads",
        "counter",
        "{reload}",
        (),
        "New configs applied by SIGHUP or a change of the config file (reload.watch_file).",
    ),
    MetricDoc(
        "logship_config_reload_failures",
        "counter",
        "{reload}",
        (),
        "New configs refused as invalid; the running config stays.",
    ),
    MetricDoc(
        "logship_sink_sent_records",
        "counter",
        "{record}",
        _SINK,
        "Records the sink's server accepted (stdout: records written).",
    ),
    MetricDoc(
        "logship_sink_sent_requests", "counter", "{request}", _SINK, "Requests that succeeded."
    ),
    MetricDoc(
        "logship_sink_sent_bytes", "counter", "By", _SINK, "Request bodies sent, as encoded."
    ),
    MetricDoc(
        "logship_sink_failed_requests",
        "counter",
        "{request}",
        _SINK,
        "Requests that failed: retried (5xx, 429, connection errors) or partly refused (400).",
    ),
    MetricDoc("logship_sink_retries", "counter", "{retry}", _SINK, "Retries scheduled."),
    MetricDoc(
        "logship_sink_rejected_records",
        "counter",
        "{record}",
        _SINK,
        "Records the server refused for good (Loki 400); not retried.",
    ),
    MetricDoc(
        "logship_sink_dropped_records",
        "counter",
        "{record}",
        _SINK,
        "Records given up on: retries exhausted, a single record too large, an internal error.",
    ),
    MetricDoc(
        "logship_sink_dead_lettered_records",
        "counter",
        "{record}",
        _SINK,
        "Records refused for good and written to a dead-letter file (dead_letter.path).",
    ),
    MetricDoc(
        "logship_sink_in_flight_bytes",
        "gauge",
        "By",
        _SINK,
        "Bytes of lines queued for the sink or in requests being sent or retried.",
    ),
    MetricDoc(
        "logship_sink_failing_seconds",
        "gauge",
        "s",
        _SINK,
        "How long the sink has been failing without a success; 0 when healthy. /ready turns "
        "503 above http.ready_max_failing.",
    ),
    MetricDoc(
        "logship_sink_request_duration_seconds",
        "histogram",
        "s",
        _SINK,
        "Round trip of each HTTP request, whatever its outcome.",
    ),
    MetricDoc(
        "logship_buffer_used_bytes",
        "gauge",
        "By",
        (),
        "Bytes of lines held between tailers and sinks (reserved by reads, freed on delivery), "
        "and of Elasticsearch request bodies in flight.",
    ),
    MetricDoc(
        "logship_buffer_limit_bytes", "gauge", "By", (), "memory_limit: reading pauses here."
    ),
    MetricDoc(
        "logship_buffer_fullness_ratio",
        "gauge",
        "1",
        (),
        "used / limit; near 1 means sinks are behind and tailers are paused.",
    ),
    MetricDoc(
        "logship_checkpoint_age_seconds",
        "gauge",
        "s",
        (),
        "Seconds since the saved checkpoints last matched what was delivered; grows when "
        "saving fails. Absent without checkpoint_dir.",
    ),
)

Callback = Callable[[CallbackOptions], Iterable[Observation]]


def _callbacks(agent: AgentView) -> dict[str, Callback]:
    """One reader per observable metric of :data:`CATALOGUE`."""
    tel = agent.telemetry

    def per_source(attr: str) -> Callback:
        def read(_: CallbackOptions) -> Iterable[Observation]:
            return [
                Observation(getattr(s, attr), {"source": n}) for n, s in list(tel.sources.items())
            ]

        return read

    def per_source_by(attr: str, label: str) -> Callback:
        def read(_: CallbackOptions) -> Iterable[Observation]:
            return [
                Observation(v, {"source": n, label: k})
                for n, s in list(tel.sources.items())
                for k, v in list(getattr(s, attr).items())
            ]

        return read

    def per_sink(attr: str) -> Callback:
        def read(_: CallbackOptions) -> Iterable[Observation]:
            return [Observation(getattr(s, attr), {"sink": n}) for n, s in list(tel.sinks.items())]

        return read

    def per_file(attr: str) -> Callback:
        def read(_: CallbackOptions) -> Iterable[Observation]:
            return [Observation(getattr(f, attr), {"path": p}) for p, f in list(tel.files.items())]

        return read

    def total(attr: str) -> Callback:
        return lambda _: [Observation(getattr(tel, attr))]

    def file_lag(_: CallbackOptions) -> Iterable[Observation]:
        return [Observation(lag, {"path": p}) for p, lag in agent.file_lags().items()]

    def files_open(_: CallbackOptions) -> Iterable[Observation]:
        return [Observation(agent.open_files())]

    def in_flight(_: CallbackOptions) -> Iterable[Observation]:
        return [Observation(b, {"sink": n}) for n, b in agent.sink_bytes_in_flight().items()]

    def failing(_: CallbackOptions) -> Iterable[Observation]:
        return [Observation(tel.failing_for(n), {"sink": n}) for n in agent.sink_bytes_in_flight()]

    def buffer(index: int) -> Callback:
        return lambda _: [Observation(agent.buffer_bytes()[index])]

    def fullness(_: CallbackOptions) -> Iterable[Observation]:
        used, limit = agent.buffer_bytes()
        return [Observation(used / limit if limit else 0.0)]

    def checkpoint_age(_: CallbackOptions) -> Iterable[Observation]:
        age = agent.checkpoint_age()
        return [] if age is None else [Observation(age)]

    return {
        "logship_source_read_lines": per_source("lines"),
        "logship_source_read_bytes": per_source("bytes"),
        "logship_source_malformed_lines": per_source("malformed"),
        "logship_source_truncated_lines": per_source("truncated_lines"),
        "logship_source_invalid_utf8_lines": per_source("invalid_utf8_lines"),
        "logship_source_multiline_cut_records": per_source("multiline_cut"),
        "logship_source_dropped_lines": per_source_by("dropped_by", "reason"),
        "logship_source_redactions": per_source_by("redactions", "rule"),
        "logship_source_transform_errors": per_source("transform_errors"),
        "logship_file_read_bytes": per_file("bytes_read"),
        "logship_file_lag_bytes": file_lag,
        "logship_file_rotations": per_file("rotations"),
        "logship_file_truncations": per_file("truncations"),
        "logship_file_truncation_lost_bytes": per_file("truncated_bytes"),
        "logship_files_open": files_open,
        "logship_rotations": total("rotations"),
        "logship_truncations": total("truncations"),
        "logship_config_reloads": total("config_reloads"),
        "logship_config_reload_failures": total("config_reload_failures"),
        "logship_sink_sent_records": per_sink("sent_records"),
        "logship_sink_sent_requests": per_sink("sent_requests"),
        "logship_sink_sent_bytes": per_sink("sent_bytes"),
        "logship_sink_failed_requests": per_sink("failed_requests"),
        "logship_sink_retries": per_sink("retries"),
        "logship_sink_rejected_records": per_sink("rejected_records"),
        "logship_sink_dropped_records": per_sink("dropped_records"),
        "logship_sink_dead_lettered_records": per_sink("dead_lettered_records"),
        "logship_sink_in_flight_bytes": in_flight,
        "logship_sink_failing_seconds": failing,
        "logship_buffer_used_bytes": buffer(0),
        "logship_buffer_limit_bytes": buffer(1),
        "logship_buffer_fullness_ratio": fullness,
        "logship_checkpoint_age_seconds": checkpoint_age,
    }


def _otlp_reader(cfg: OtlpMetricsConfig) -> MetricReader:
    """A reader that pushes every ``interval``, and once more at shutdown."""
    try:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    except ImportError as e:
        raise MetricsSetupError(
            f"otlp_metrics needs the OTLP exporter ({e.name} is missing): "
            "pip install 'logship[otlp-metrics]'"
        ) from None
    exporter = OTLPMetricExporter(
        endpoint=cfg.endpoint,
        headers={k: v.get_secret_value() for k, v in cfg.headers.items()},
        timeout=cfg.timeout,
    )
    return PeriodicExportingMetricReader(
        exporter,
        export_interval_millis=cfg.interval * 1000,
        export_timeout_millis=cfg.timeout * 1000,
    )


class AgentMetrics:
    """An OpenTelemetry meter provider over one agent, with its own Prometheus registry.

    The registry is private (not prometheus_client's global one), so two agents in one
    process, as in tests, never mix their series. With ``otlp`` the same instruments are
    also pushed to an OpenTelemetry collector.
    """

    def __init__(self, agent: AgentView, otlp: OtlpMetricsConfig | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        readers: list[MetricReader] = [
            PrometheusMetricReader(
                disable_target_info=True, scope_info_enabled=False, registry=self.registry
            )
        ]
        if otlp is not None:
            readers.append(_otlp_reader(otlp))
        self.provider = MeterProvider(metric_readers=readers)
        meter = self.provider.get_meter("logship")
        callbacks = _callbacks(agent)
        for m in CATALOGUE:
            if m.kind == "counter":
                meter.create_observable_counter(
                    m.name, [callbacks[m.name]], unit=m.unit, description=m.description
                )
            elif m.kind == "gauge":
                meter.create_observable_gauge(
                    m.name, [callbacks[m.name]], unit=m.unit, description=m.description
                )
        latency = meter.create_histogram(
            "logship_sink_request_duration_seconds",
            unit="s",
            description=next(
                m.description
                for m in CATALOGUE
                if m.name == "logship_sink_request_duration_seconds"
            ),
            explicit_bucket_boundaries_advisory=list(LATENCY_BUCKETS),
        )
        attrs: dict[str, dict[str, str]] = {}

        def record(sink: str, seconds: float) -> None:
            a = attrs.get(sink)
            if a is None:
                a = attrs[sink] = {"sink": sink}
            latency.record(seconds, a)

        agent.telemetry.on_request_duration = record
        # The exporter hands each collection to the next scrape through a shared queue:
        # two concurrent scrapes would split it, so they take turns.
        self.lock = threading.Lock()

    def prometheus_text(self) -> bytes:
        with self.lock:
            return generate_latest(self.registry)

    def shutdown(self) -> None:
        self.provider.shutdown()
