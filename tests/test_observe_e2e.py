"""The real ``logship`` process serving /metrics, /healthz and /ready while it ships to a fake Loki.

The scrapes are read by ``promtext`` (a reader written for the tests), and what the metrics
claim is checked against what the fake Loki stored.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import AgentProcess, wait_until, write_lines
from fakes.loki import FakeLoki
from promtext import free_port, get, get_or_none, scrape, value


@pytest.fixture
def loki() -> Iterator[FakeLoki]:
    with FakeLoki() as server:
        yield server


def lines(n: int, start: int = 0) -> list[str]:
    return [json.dumps({"level": "info", "msg": f"line {i}", "i": i}) for i in range(start, n)]


def started(base: str, a: AgentProcess) -> None:
    def up() -> bool:
        assert a.proc.poll() is None, a.stderr
        return get_or_none(base + "/healthz") is not None

    wait_until(up, 30, "the agent's HTTP endpoints")


def sent(base: str, sink: str = "loki") -> float:
    return value(scrape(base), "logship_sink_sent_records_total", sink=sink) or 0.0


def test_sent_counter_matches_what_loki_received(
    tmp_path: Path, loki: FakeLoki, agents: Callable[..., AgentProcess]
) -> None:
    log = tmp_path / "app.log"
    log.touch()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    a = agents("tail", "--http-listen", f"127.0.0.1:{port}", "--to", f"loki:{loki.url}", str(log))
    started(base, a)
    assert get(base + "/healthz") == (200, "ok\n")
    wait_until(lambda: get(base + "/ready")[0] == 200, 30, "ready")
    total = 0
    for round_ in range(5):
        batch = lines(total + 20_000, total)
        write_lines(log, batch)
        total += len(batch)
        # Scraped while shipping: never more sent than Loki stored (it stores, then answers).
        for _ in range(3):
            samples = scrape(base)
            got = value(samples, "logship_sink_sent_records_total", sink="loki") or 0.0
            assert got <= loki.line_count, f"round {round_}"
    loki.wait_for_lines(total, timeout=60)
    wait_until(lambda: sent(base) == total, 30, f"sent counter to reach {total}")
    samples = scrape(base)
    assert value(samples, "logship_sink_sent_records_total", sink="loki") == loki.line_count
    assert value(samples, "logship_source_read_lines_total", source="tail") == total
    size = log.stat().st_size
    assert value(samples, "logship_source_read_bytes_total", source="tail") == size
    assert value(samples, "logship_file_read_bytes_total", path=str(log)) == size
    assert value(samples, "logship_file_lag_bytes", path=str(log)) == 0
    assert value(samples, "logship_sink_dropped_records_total", sink="loki") == 0
    requests = value(samples, "logship_sink_request_duration_seconds_count", sink="loki")
    assert requests == value(samples, "logship_sink_sent_requests_total", sink="loki")
    assert requests == len(loki.requests)
    assert get(base + "/nope")[0] == 404
    a.signal(signal.SIGTERM)
    assert a.wait(60) == 0, a.stderr


def test_ready_turns_503_while_loki_fails_and_back_to_200(
    tmp_path: Path, loki: FakeLoki, agents: Callable[..., AgentProcess]
) -> None:
    log = tmp_path / "app.log"
    write_lines(log, lines(10))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"""
sources:
  app: {{include: ["{log}"], start_at: beginning}}
sinks:
  loki: {{type: loki, url: "{loki.url}", batch: {{linger: 50ms}},
          retry: {{initial_backoff: 50ms, max_backoff: 200ms}}}}
http: {{ready_max_failing: 1s}}
"""
    )
    # The flag overrides the file's (absent) http.listen.
    a = agents("run", "--config", str(cfg), "--http-listen", f"127.0.0.1:{port}")
    started(base, a)
    loki.wait_for_lines(10, timeout=30)
    wait_until(lambda: get(base + "/ready")[0] == 200, 30, "ready while Loki works")
    loki.down()
    write_lines(log, lines(20, 10))
    wait_until(lambda: get(base + "/ready")[0] == 503, 60, "/ready to fail while Loki is down")
    status, body = get(base + "/ready")
    assert status == 503 and "sink loki failing" in body
    assert get(base + "/healthz")[0] == 200  # alive, only not ready
    samples = scrape(base)
    assert (value(samples, "logship_sink_failing_seconds", sink="loki") or 0) > 0

    def retries() -> float:
        return value(scrape(base), "logship_sink_retries_total", sink="loki") or 0

    wait_until(lambda: retries() >= 4, 60, "several retries")
    # The agent's log: JSON lines, and the repeated retry warning held back (10 s window).
    logged = [json.loads(line) for line in a.stderr.splitlines()]
    retry_logs = [r for r in logged if r["msg"] == "request failed, retrying"]
    assert 1 <= len(retry_logs) < retries()
    assert all(r["level"] == "warning" and r["sink"] == "loki" for r in retry_logs)
    loki.up()
    wait_until(lambda: get(base + "/ready")[0] == 200, 60, "/ready to recover after Loki is up")
    loki.wait_for_lines(20, timeout=30)
    assert value(scrape(base), "logship_sink_failing_seconds", sink="loki") == 0
    a.signal(signal.SIGTERM)
    assert a.wait(60) == 0, a.stderr


def _run_following(
    tmp_path: Path, log: Path, loki: FakeLoki, agents: Callable[..., AgentProcess]
) -> tuple[AgentProcess, str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"""
sources:
  app: {{include: ["{log}"], start_at: beginning}}
sinks:
  loki: {{type: loki, url: "{loki.url}", batch: {{linger: 50ms}}}}
tailing: {{rescan_interval: 200ms, poll_interval: 50ms}}
checkpoint_dir: "{tmp_path / "state"}"
http: {{listen: "127.0.0.1:{port}"}}
"""
    )
    a = agents("run", "--config", str(cfg))
    started(base, a)
    return a, base


def test_rename_rotation_shows_in_the_rotations_counter(
    tmp_path: Path, loki: FakeLoki, agents: Callable[..., AgentProcess]
) -> None:
    log = tmp_path / "app.log"
    write_lines(log, lines(100))
    a, base = _run_following(tmp_path, log, loki, agents)
    loki.wait_for_lines(100, timeout=30)
    path = str(log)
    assert value(scrape(base), "logship_file_rotations_total", path=path) == 0
    os.rename(log, tmp_path / "app.log.1")
    write_lines(log, lines(150, 100))
    loki.wait_for_lines(150, timeout=30)

    def rotated() -> bool:
        return value(scrape(base), "logship_file_rotations_total", path=path) == 1

    wait_until(rotated, 30, "the rotation to be counted")
    samples = scrape(base)
    assert value(samples, "logship_rotations_total") == 1
    assert value(samples, "logship_file_truncations_total", path=path) == 0
    # Both files were read under the watched path, the old one to its end.
    size = (tmp_path / "app.log.1").stat().st_size + log.stat().st_size
    assert value(samples, "logship_file_read_bytes_total", path=path) == size
    age = value(samples, "logship_checkpoint_age_seconds")
    assert age is not None and age >= 0
    a.signal(signal.SIGTERM)
    assert a.wait(60) == 0, a.stderr


def test_copytruncate_shows_in_the_truncations_counter(
    tmp_path: Path, loki: FakeLoki, agents: Callable[..., AgentProcess]
) -> None:
    log = tmp_path / "app.log"
    write_lines(log, lines(100))
    a, base = _run_following(tmp_path, log, loki, agents)
    loki.wait_for_lines(100, timeout=30)
    path = str(log)
    shutil.copyfile(log, tmp_path / "app.log.1")
    with open(log, "r+b") as f:
        f.truncate(0)

    def truncated() -> bool:
        return value(scrape(base), "logship_file_truncations_total", path=path) == 1

    wait_until(truncated, 30, "the truncation to be counted")
    write_lines(log, lines(130, 100))
    loki.wait_for_lines(130, timeout=30)
    samples = scrape(base)
    assert value(samples, "logship_truncations_total") == 1
    assert value(samples, "logship_file_rotations_total", path=path) == 0
    a.signal(signal.SIGTERM)
    assert a.wait(60) == 0, a.stderr


def test_listen_address_in_use_is_a_clear_error(
    tmp_path: Path, loki: FakeLoki, agents: Callable[..., AgentProcess]
) -> None:
    import socket

    log = tmp_path / "app.log"
    log.touch()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        a = agents("tail", "--http-listen", f"127.0.0.1:{port}", str(log))
        assert a.wait(30) == 2
    assert f"http.listen 127.0.0.1:{port}:" in a.stderr
    assert "Traceback" not in a.stderr


def test_bad_http_listen_flag_names_the_flag(
    tmp_path: Path, agents: Callable[..., AgentProcess]
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f'sources: {{app: {{include: ["{tmp_path}/*.log"]}}}}\nsinks: {{out: {{type: stdout}}}}\n'
    )
    a = agents("run", "--config", str(cfg), "--http-listen", "8686")
    assert a.wait(30) == 2
    assert "--http-listen: http.listen: expected HOST:PORT" in a.stderr
    t = agents("tail", "--http-listen", "localhost", str(tmp_path / "x.log"))
    assert t.wait(30) == 2
    assert "http.listen: expected HOST:PORT" in t.stderr


def test_lag_and_buffer_while_the_sink_is_down(
    tmp_path: Path, loki: FakeLoki, agents: Callable[..., AgentProcess]
) -> None:
    """Backpressure stops reading; the lag gauge still tracks the file's growth (rescans)."""
    log = tmp_path / "app.log"
    log.touch()
    loki.down()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"""
sources:
  app: {{include: ["{log}"], start_at: beginning}}
sinks:
  loki: {{type: loki, url: "{loki.url}", retry: {{initial_backoff: 50ms, max_backoff: 200ms}}}}
memory_limit: 1MiB
tailing: {{read_chunk_size: 64KiB, rescan_interval: 200ms}}
http: {{listen: "127.0.0.1:{port}"}}
"""
    )
    a = agents("run", "--config", str(cfg))
    started(base, a)
    write_lines(log, lines(60_000))
    size = log.stat().st_size
    path = str(log)

    def behind() -> bool:
        s = scrape(base)
        read = value(s, "logship_file_read_bytes_total", path=path) or 0
        lag = value(s, "logship_file_lag_bytes", path=path)
        return 0 < read < size and lag == size - read

    wait_until(behind, 60, "reading to pause with the lag showing the unread rest")
    s = scrape(base)
    assert (value(s, "logship_buffer_fullness_ratio") or 0) > 0.5
    assert (value(s, "logship_sink_in_flight_bytes", sink="loki") or 0) > 0
    assert value(s, "logship_buffer_limit_bytes") == 1024 * 1024
    loki.up()
    loki.wait_for_lines(60_000, timeout=120)

    def caught_up() -> bool:
        s = scrape(base)
        return (
            value(s, "logship_file_lag_bytes", path=path) == 0
            and value(s, "logship_sink_in_flight_bytes", sink="loki") == 0
            and value(s, "logship_sink_sent_records_total", sink="loki") == 60_000
        )

    wait_until(caught_up, 60, "lag and bytes in flight back to 0")
    a.signal(signal.SIGTERM)
    assert a.wait(60) == 0, a.stderr


class OtlpMetricsReceiver:
    """Accepts OTLP/HTTP metric pushes; decodes them with the official protobuf classes."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

        self.latest: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        self.kinds: dict[str, str] = {}
        self.pushes = 0
        self.authorization: str | None = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.authorization = self.headers.get("Authorization")
                req = metrics_service_pb2.ExportMetricsServiceRequest.FromString(body)
                receiver.take(req)
                out = metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/metrics"
        import threading

        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def take(self, req: object) -> None:
        for rm in req.resource_metrics:  # type: ignore[attr-defined]
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    kind = m.WhichOneof("data")
                    self.kinds[m.name] = kind
                    if kind not in ("sum", "gauge"):
                        continue
                    for p in getattr(m, kind).data_points:
                        attrs = frozenset((a.key, a.value.string_value) for a in p.attributes)
                        v = p.as_int if p.WhichOneof("value") == "as_int" else p.as_double
                        self.latest[(m.name, attrs)] = v
        self.pushes += 1

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_metrics_pushed_over_otlp(
    tmp_path: Path, loki: FakeLoki, agents: Callable[..., AgentProcess]
) -> None:
    log = tmp_path / "app.log"
    write_lines(log, lines(500))
    receiver = OtlpMetricsReceiver()
    try:
        cfg = tmp_path / "c.yaml"
        cfg.write_text(
            f"""
sources:
  app: {{include: ["{log}"], start_at: beginning}}
sinks:
  loki: {{type: loki, url: "{loki.url}", batch: {{linger: 50ms}}}}
otlp_metrics:
  endpoint: "{receiver.url}"
  interval: 200ms
  headers: {{Authorization: "Bearer ${{OTEL_TOKEN}}"}}
"""
        )
        a = agents("run", "--config", str(cfg), env={"OTEL_TOKEN": "t0ken"})
        loki.wait_for_lines(500, timeout=30)
        key = ("logship_sink_sent_records", frozenset({("sink", "loki")}))
        wait_until(lambda: receiver.latest.get(key) == 500, 30, "a push with 500 records sent")
        assert receiver.kinds["logship_sink_sent_records"] == "sum"
        assert receiver.authorization == "Bearer t0ken"
        assert receiver.kinds["logship_sink_request_duration_seconds"] == "histogram"
        assert receiver.latest[("logship_source_read_lines", frozenset({("source", "app")}))] == 500
        a.signal(signal.SIGTERM)
        assert a.wait(60) == 0, a.stderr
    finally:
        receiver.close()
