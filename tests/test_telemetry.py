"""The telemetry module, its OpenTelemetry/Prometheus exposition, the endpoints and log limits."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from promtext import get, parse, value

from logship.agent import Agent
from logship.config import ConfigError, build_config
from logship.http_server import Endpoints
from logship.logs import JsonFormatter, RepeatFilter
from logship.metrics import CATALOGUE, AgentMetrics
from logship.telemetry import Telemetry

DOCS = Path(__file__).resolve().parent.parent / "docs" / "metrics.md"


class FakeAgent:
    """The state /metrics and /ready read, set by each test."""

    def __init__(self) -> None:
        self.telemetry = Telemetry()
        self.lags: dict[str, int] = {}
        self.buffer = (0, 100)
        self.in_flight: dict[str, int] = {}
        self.age: float | None = None
        self.ready = (True, "ready")
        self.alive = (True, "ok")

    def file_lags(self) -> dict[str, int]:
        return dict(self.lags)

    def open_files(self) -> int:
        return len(self.lags)

    def buffer_bytes(self) -> tuple[int, int]:
        return self.buffer

    def sink_bytes_in_flight(self) -> dict[str, int]:
        return dict(self.in_flight)

    def checkpoint_age(self) -> float | None:
        return self.age

    def readiness(self) -> tuple[bool, str]:
        return self.ready

    def liveness(self) -> tuple[bool, str]:
        return self.alive


def scrape(metrics: AgentMetrics) -> dict:  # type: ignore[type-arg]
    return parse(metrics.prometheus_text().decode())


def test_a_counter_bump_shows_in_the_prometheus_text() -> None:
    agent = FakeAgent()
    m = AgentMetrics(agent)
    agent.telemetry.sent("loki", 120, 4000)
    agent.telemetry.sent("loki", 30, 1000)
    agent.telemetry.read("app", 150, 9000)
    s = scrape(m)
    assert value(s, "logship_sink_sent_records_total", sink="loki") == 150
    assert value(s, "logship_sink_sent_requests_total", sink="loki") == 2
    assert value(s, "logship_sink_sent_bytes_total", sink="loki") == 5000
    assert value(s, "logship_source_read_lines_total", source="app") == 150
    agent.telemetry.sent("loki", 1, 10)
    assert value(scrape(m), "logship_sink_sent_records_total", sink="loki") == 151
    m.shutdown()


def test_failures_retries_drops_and_dead_letters_per_sink() -> None:
    agent = FakeAgent()
    m = AgentMetrics(agent)
    t = agent.telemetry
    t.retry("es", "503")
    t.retry("es", "503")
    t.rejected("loki", 3, "400")
    t.dropped("es", 7, "gave up")
    t.dead_lettered("es", 2)
    s = scrape(m)
    assert value(s, "logship_sink_retries_total", sink="es") == 2
    assert value(s, "logship_sink_failed_requests_total", sink="es") == 2
    assert value(s, "logship_sink_failed_requests_total", sink="loki") == 1
    assert value(s, "logship_sink_rejected_records_total", sink="loki") == 3
    assert value(s, "logship_sink_dropped_records_total", sink="es") == 7
    assert value(s, "logship_sink_dead_lettered_records_total", sink="es") == 2
    m.shutdown()


def test_request_latency_histogram() -> None:
    agent = FakeAgent()
    m = AgentMetrics(agent)
    agent.telemetry.request_duration("loki", 0.003)
    agent.telemetry.request_duration("loki", 0.2)
    agent.telemetry.request_duration("loki", 40.0)
    s = scrape(m)
    name = "logship_sink_request_duration_seconds"
    assert value(s, name + "_count", sink="loki") == 3
    assert value(s, name + "_sum", sink="loki") == pytest.approx(40.203)
    assert value(s, name + "_bucket", sink="loki", le="0.005") == 1
    assert value(s, name + "_bucket", sink="loki", le="0.25") == 2
    assert value(s, name + "_bucket", sink="loki", le="30.0") == 2
    assert value(s, name + "_bucket", sink="loki", le="+Inf") == 3
    m.shutdown()


def test_per_file_series_and_their_removal() -> None:
    agent = FakeAgent()
    m = AgentMetrics(agent)
    t = agent.telemetry
    t.file_read("/l/a.log", 100)
    t.file_read("/l/b.log", 50)
    t.rotated("/l/a.log")
    t.truncated("/l/b.log", 30)
    agent.lags = {"/l/a.log": 0, "/l/b.log": 20}
    s = scrape(m)
    assert value(s, "logship_file_read_bytes_total", path="/l/a.log") == 100
    assert value(s, "logship_file_rotations_total", path="/l/a.log") == 1
    assert value(s, "logship_file_truncations_total", path="/l/b.log") == 1
    assert value(s, "logship_file_truncation_lost_bytes_total", path="/l/b.log") == 30
    assert value(s, "logship_file_lag_bytes", path="/l/b.log") == 20
    assert value(s, "logship_files_open") == 2
    assert value(s, "logship_rotations_total") == 1
    t.forget_files(["/l/a.log"])
    agent.lags = {"/l/a.log": 0}
    s = scrape(m)
    assert value(s, "logship_file_read_bytes_total", path="/l/b.log") is None
    assert value(s, "logship_file_lag_bytes", path="/l/b.log") is None
    assert value(s, "logship_file_read_bytes_total", path="/l/a.log") == 100
    assert value(s, "logship_truncations_total") == 1  # the total outlives the file's series
    m.shutdown()


def test_gauges_of_agent_state() -> None:
    agent = FakeAgent()
    m = AgentMetrics(agent)
    agent.buffer = (25, 100)
    agent.in_flight = {"loki": 4096}
    s = scrape(m)
    assert value(s, "logship_buffer_used_bytes") == 25
    assert value(s, "logship_buffer_limit_bytes") == 100
    assert value(s, "logship_buffer_fullness_ratio") == 0.25
    assert value(s, "logship_sink_in_flight_bytes", sink="loki") == 4096
    assert value(s, "logship_checkpoint_age_seconds") is None  # no checkpoint_dir
    agent.age = 3.5
    assert value(scrape(m), "logship_checkpoint_age_seconds") == 3.5
    m.shutdown()


def test_two_agents_in_one_process_keep_their_series_apart() -> None:
    a, b = FakeAgent(), FakeAgent()
    ma, mb = AgentMetrics(a), AgentMetrics(b)
    a.telemetry.sent("loki", 5, 1)
    b.telemetry.sent("loki", 9, 1)
    assert value(scrape(ma), "logship_sink_sent_records_total", sink="loki") == 5
    assert value(scrape(mb), "logship_sink_sent_records_total", sink="loki") == 9
    ma.shutdown()
    mb.shutdown()


def _full_exposition() -> str:
    agent = FakeAgent()
    m = AgentMetrics(agent)
    t = agent.telemetry
    t.read("app", 1, 1)
    t.transform_dropped("app", "drop", 1)
    t.redacted("app", "email", 1)
    t.file_read("/a.log", 1)
    t.sent("loki", 1, 1)
    t.request_duration("loki", 0.1)
    agent.lags = {"/a.log": 0}
    agent.in_flight = {"loki": 0}
    agent.age = 0.0
    text = m.prometheus_text().decode()
    m.shutdown()
    return text


def test_the_catalogue_is_what_is_exposed() -> None:
    text = _full_exposition()
    exposed = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    assert exposed == {m.exposed_name: m.kind for m in CATALOGUE}
    for name in exposed:
        assert name.startswith("logship_")
    helps = dict(re.findall(r"^# HELP (\S+) (.*)$", text, re.M))
    for m in CATALOGUE:
        assert helps[m.exposed_name] == m.description


def test_docs_list_every_metric_with_type_and_labels() -> None:
    docs = DOCS.read_text()
    rows = {r[0]: r for r in re.findall(r"^\| `(logship_\w+)` \| (\w+) \| ([^|]*) \|", docs, re.M)}
    assert set(rows) == {m.exposed_name for m in CATALOGUE}
    for m in CATALOGUE:
        _, kind, labels = rows[m.exposed_name]
        assert kind == m.kind
        assert re.findall(r"`(\w+)`", labels) == list(m.labels)


# -- the HTTP endpoints, in-process --------------------------------------------------


@pytest.fixture
def served() -> tuple[FakeAgent, str]:  # type: ignore[misc]
    agent = FakeAgent()
    cfg = build_config(
        {
            "sources": {"a": {"include": ["/nonexistent/*.log"]}},
            "sinks": {"out": {"type": "stdout"}},
            "http": {"listen": "127.0.0.1:0"},
        },
        "test",
    )
    metrics = AgentMetrics(agent)
    ep = Endpoints(cfg.http, agent, metrics)
    yield agent, f"http://127.0.0.1:{ep.port}"
    ep.close()
    metrics.shutdown()


def test_endpoints(served: tuple[FakeAgent, str]) -> None:
    agent, base = served
    agent.telemetry.sent("out", 3, 30)
    status, body = get(base + "/metrics")
    assert status == 200
    assert value(parse(body), "logship_sink_sent_records_total", sink="out") == 3
    assert get(base + "/healthz") == (200, "ok\n")
    assert get(base + "/ready") == (200, "ready\n")
    agent.ready = (False, "sink loki failing for 130s: ConnectError")
    assert get(base + "/ready") == (503, "sink loki failing for 130s: ConnectError\n")
    assert get(base + "/healthz")[0] == 200
    agent.alive = (False, "event loop stalled for 31s")
    assert get(base + "/healthz") == (503, "event loop stalled for 31s\n")
    assert get(base + "/other")[0] == 404
    req = urllib.request.Request(base + "/metrics", data=b"x", method="POST")
    try:
        urllib.request.urlopen(req, timeout=5)
        raise AssertionError("POST was accepted")
    except urllib.error.HTTPError as e:
        assert e.code == 405


def test_openmetrics_when_asked(served: tuple[FakeAgent, str]) -> None:
    _, base = served
    req = urllib.request.Request(
        base + "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    with urllib.request.urlopen(req, timeout=5) as r:
        assert r.headers["Content-Type"].startswith("application/openmetrics-text")
        assert r.read().decode().rstrip().endswith("# EOF")


# -- readiness of the real agent -----------------------------------------------------


def _agent(threshold: str) -> Agent:
    cfg = build_config(
        {
            "sources": {"a": {"include": ["/nonexistent/*.log"]}},
            "sinks": {"loki": {"type": "loki", "url": "http://127.0.0.1:9"}},
            "http": {"ready_max_failing": threshold},
        },
        "test",
    )
    return Agent(cfg, telemetry=Telemetry())


def test_readiness_follows_how_long_a_sink_has_failed() -> None:
    agent = _agent("60s")
    ready, reason = agent.readiness()
    assert not ready and "starting" in reason
    agent.started = True
    assert agent.readiness() == (True, "ready")
    agent.telemetry.retry("loki", "ConnectError: refused")
    assert agent.readiness()[0]  # failing, but not for long
    agent.telemetry.sinks["loki"].failing_since = time.monotonic() - 61
    ready, reason = agent.readiness()
    assert not ready
    assert reason.startswith("sink loki failing for 6") and "ConnectError: refused" in reason
    agent.telemetry.sent("loki", 1, 1)  # one success clears it
    assert agent.readiness() == (True, "ready")
    agent.request_stop()
    assert agent.readiness() == (False, "stopping")


def test_liveness_follows_the_event_loop_heartbeat() -> None:
    agent = _agent("60s")
    assert agent.liveness() == (True, "ok")  # not running yet: starting
    agent.heartbeat = time.monotonic()
    assert agent.liveness() == (True, "ok")
    agent.heartbeat = time.monotonic() - 31  # healthz_max_stall defaults to 30s
    alive, reason = agent.liveness()
    assert not alive and reason.startswith("event loop stalled for 3")


def test_the_heartbeat_beats_while_the_agent_runs(tmp_path: Path) -> None:
    import asyncio

    cfg = build_config(
        {
            "sources": {"a": {"include": [str(tmp_path / "*.log")]}},
            "sinks": {"o": {"type": "stdout"}},
        },
        "test",
    )
    agent = Agent(cfg, telemetry=Telemetry())

    async def scenario() -> list[float]:
        task = asyncio.create_task(agent.run())
        beats: list[float] = []
        deadline = time.monotonic() + 30
        while len(beats) < 2 and time.monotonic() < deadline:
            if agent.heartbeat is not None and agent.heartbeat not in beats:
                beats.append(agent.heartbeat)
            await asyncio.sleep(0.05)
        agent.request_stop()
        await task
        return beats

    beats = asyncio.run(scenario())
    assert len(beats) == 2 and beats[1] > beats[0]


# -- config ----------------------------------------------------------------------------


def test_http_config_defaults_and_errors() -> None:
    base = {"sources": {"a": {"include": ["x"]}}, "sinks": {"o": {"type": "stdout"}}}
    cfg = build_config(base, "t")
    assert cfg.http.listen is None  # nothing is served unless asked for
    assert cfg.http.ready_max_failing == 120.0
    cfg = build_config({**base, "http": {"listen": "[::1]:8686", "ready_max_failing": "5m"}}, "t")
    assert cfg.http.ready_max_failing == 300.0
    for bad in ("8686", "host", "1.2.3.4:70000", "a:b"):
        with pytest.raises(ConfigError, match=r"t: http.listen: expected HOST:PORT"):
            build_config({**base, "http": {"listen": bad}}, "t")
    with pytest.raises(ConfigError, match=r"http.listne: unknown field"):
        build_config({**base, "http": {"listne": ":1"}}, "t")


def test_otlp_metrics_headers_are_masked() -> None:
    from logship.config import effective_config

    base = {"sources": {"a": {"include": ["x"]}}, "sinks": {"o": {"type": "stdout"}}}
    otlp = {"endpoint": "http://c:4318/v1/metrics", "headers": {"Authorization": "Bearer s3"}}
    cfg = build_config({**base, "otlp_metrics": otlp}, "t")
    shown = effective_config(cfg)["otlp_metrics"]
    assert shown["headers"] == {"Authorization": "******"}
    assert shown["interval"] == 60.0


# -- the agent's own logs ----------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _logger(clock: Clock) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RepeatFilter(10.0, clock))
    lg = logging.getLogger(f"logship.test{time.monotonic_ns()}")
    lg.handlers[:] = [handler]
    lg.setLevel(logging.DEBUG)
    lg.propagate = False
    return lg, out


def _records(out: io.StringIO) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_repeated_warnings_are_rate_limited_with_a_count() -> None:
    clock = Clock()
    lg, out = _logger(clock)
    for attempt in range(5):
        lg.warning("request failed, retrying", extra={"sink": "loki", "attempt": attempt})
        clock.now += 1
    lg.warning("request failed, retrying", extra={"sink": "es", "attempt": 0})
    got = _records(out)
    assert [(r["sink"], r["attempt"]) for r in got] == [("loki", 0), ("es", 0)]
    assert "suppressed" not in got[0]
    clock.now += 10
    lg.warning("request failed, retrying", extra={"sink": "loki", "attempt": 9})
    last = _records(out)[-1]
    assert (last["attempt"], last["suppressed"]) == (9, 4)
    assert last["level"] == "warning" and last["msg"] == "request failed, retrying"


def test_info_and_distinct_messages_are_not_limited() -> None:
    clock = Clock()
    lg, out = _logger(clock)
    for _ in range(3):
        lg.info("following file", extra={"path": "/a.log"})
    lg.error("cannot open file", extra={"path": "/a.log"})
    lg.error("cannot open file", extra={"path": "/b.log"})
    lg.error("cannot save checkpoints")
    assert len(_records(out)) == 6


def test_otlp_push_without_the_exporter_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from logship.config.model import OtlpMetricsConfig
    from logship.metrics import MetricsSetupError

    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.metric_exporter", None)
    otlp = OtlpMetricsConfig(endpoint="http://127.0.0.1:4318/v1/metrics")
    with pytest.raises(MetricsSetupError, match=r"pip install 'logship\[otlp-metrics\]'"):
        AgentMetrics(FakeAgent(), otlp)


def test_transform_counters_carry_their_reason_and_rule() -> None:
    agent = FakeAgent()
    m = AgentMetrics(agent)
    t = agent.telemetry
    t.transform_dropped("app", "sample", 9)
    t.transform_dropped("app", "drop", 2)
    t.redacted("app", "card_number", 3)
    text = m.prometheus_text().decode()
    m.shutdown()
    assert 'logship_source_dropped_lines_total{reason="sample",source="app"} 9.0' in text
    assert 'logship_source_dropped_lines_total{reason="drop",source="app"} 2.0' in text
    assert 'logship_source_redactions_total{rule="card_number",source="app"} 3.0' in text
