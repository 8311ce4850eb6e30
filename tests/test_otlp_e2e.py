"""The real `logship` process against an in-process OTLP/HTTP receiver.

The fake decodes with the official opentelemetry-proto classes (and ``json_format`` for
JSON), so these tests check logship's wire format independently.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import AgentProcess, write_lines
from fakes.otlp import FakeOtlp

from logship.sinks.otlp import K8S_ENV


@pytest.fixture
def otlp() -> Iterator[FakeOtlp]:
    with FakeOtlp() as server:
        yield server


def json_lines(n: int) -> list[str]:
    base = time.time()
    out = []
    for i in range(n):
        t = base + i / 1e6
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1e6) % 10**6:06d}Z"
        level = ("info", "warn", "error")[i % 3]
        out.append(json.dumps({"ts": ts, "level": level, "msg": f"line {i}", "i": i}))
    return out


def test_lines_arrive_once_with_resource_severity_and_attributes(
    tmp_path: Path, otlp: FakeOtlp, agents: Callable[..., AgentProcess]
) -> None:
    log = tmp_path / "app.log"
    lines = [*json_lines(20_000), "a plain line", '{"broken": ']
    write_lines(log, lines)
    unset = {var: "" for variables in K8S_ENV.values() for var in variables}
    env = {
        **unset,
        "OTEL_RESOURCE_ATTRIBUTES": "",
        "POD_NAME": "api-7d9f-x2",
        "POD_NAMESPACE": "prod",
        "OTEL_SERVICE_NAME": "api",
    }
    a = agents(
        "tail", "--once", "--to", f"otlp:{otlp.url}", "--label", "team=core", str(log), env=env
    )
    assert a.wait(180) == 0, a.stderr
    assert Counter(otlp.bodies()) == Counter(
        [f"line {i}" for i in range(20_000)] + ["a plain line", '{"broken": ']
    )
    by_body = {r.body: r for r in otlp.records}
    r = by_body["line 4"]
    assert (r.record.severity_number, r.record.severity_text) == (13, "warn")
    assert r.attributes == {
        "ts": json.loads(lines[4])["ts"],
        "i": 4,
        "log.file.path": str(log),
    }
    first = json.loads(lines[4])["ts"]
    assert (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(r.record.time_unix_nano // 10**9))
        == (first[:19])
    )
    assert r.record.observed_time_unix_nano >= r.record.time_unix_nano
    assert r.resource == {
        "host.name": socket.gethostname(),
        "k8s.pod.name": "api-7d9f-x2",
        "k8s.namespace.name": "prod",
        "service.name": "api",
        "team": "core",
    }
    assert by_body["a plain line"].record.severity_number == 0
    assert all(q.content_type == "application/x-protobuf" for q in otlp.requests)


def test_json_encoding_gzip_and_auth_headers(tmp_path: Path, otlp: FakeOtlp) -> None:
    log = tmp_path / "app.log"
    lines = json_lines(300)
    write_lines(log, lines)
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"""
sources:
  app: {{include: ["{log}"], start_at: beginning}}
sinks:
  otlp:
    type: otlp
    url: "{otlp.url}"
    encoding: json
    compression: gzip
    service_name: checkout
    resource_attributes: {{deployment.environment: test}}
    headers: {{X-Scope-OrgID: team-a}}
    bearer_token_file: "{token}"
    batch: {{linger: 50ms}}
"""
    )
    r = subprocess.run(
        [sys.executable, "-m", "logship", "run", "--once", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert sorted(otlp.bodies()) == sorted(f"line {i}" for i in range(300))
    assert otlp.records[0].resource["service.name"] == "checkout"
    assert otlp.records[0].resource["deployment.environment"] == "test"
    for q in otlp.requests:
        assert (q.content_type, q.content_encoding) == ("application/json", "gzip")
        assert q.headers["authorization"] == "Bearer s3cret"
        assert q.headers["x-scope-orgid"] == "team-a"


def test_partial_success_is_counted_logged_and_not_retried(
    tmp_path: Path, otlp: FakeOtlp, agents: Callable[..., AgentProcess]
) -> None:
    log = tmp_path / "app.log"
    write_lines(log, json_lines(10))
    otlp.partial_next(2, "2 log records had invalid trace ids")
    a = agents("tail", "--once", "--to", f"otlp:{otlp.url}", str(log))
    rc = a.wait(120)
    assert len(otlp.requests) == 1
    assert len(otlp.records) == 8  # the receiver kept the others
    assert rc == 1  # --once reports what was not delivered
    assert "2 log records had invalid trace ids" in a.stderr
    assert "rejected 2 record" in a.stderr


def test_500_is_not_retried_and_its_message_reported(
    tmp_path: Path, otlp: FakeOtlp, agents: Callable[..., AgentProcess]
) -> None:
    log = tmp_path / "app.log"
    state = tmp_path / "state"
    write_lines(log, json_lines(10))
    otlp.fail_next(1, 500, "exporter pipeline crashed")
    a = agents("tail", "--once", "--state-dir", str(state), "--to", f"otlp:{otlp.url}", str(log))
    rc = a.wait(120)
    assert [q.status for q in otlp.requests] == [500]
    assert rc == 1
    assert "exporter pipeline crashed" in a.stderr
    # Dropped deliberately: the checkpoint moves past the lines, a rerun does not resend them.
    b = agents("tail", "--once", "--state-dir", str(state), "--to", f"otlp:{otlp.url}", str(log))
    assert b.wait(120) == 0, b.stderr
    assert len(otlp.requests) == 1


def test_503_with_retry_after_is_waited_for(
    tmp_path: Path, otlp: FakeOtlp, agents: Callable[..., AgentProcess]
) -> None:
    log = tmp_path / "app.log"
    write_lines(log, json_lines(100))
    otlp.fail_next(1, 503, "collector is overloaded", {"Retry-After": "2"})
    a = agents("tail", "--once", "--to", f"otlp:{otlp.url}", str(log))
    assert a.wait(120) == 0, a.stderr
    assert sorted(otlp.bodies()) == sorted(f"line {i}" for i in range(100))
    first, second = otlp.requests[0], otlp.requests[1]
    assert first.status == 503 and second.status == 200
    # Without Retry-After the first backoff is at most 0.5 s (initial_backoff).
    assert second.arrived - first.arrived >= 1.9
    assert "collector is overloaded" in a.stderr


def test_loki_otlp_endpoint_204_and_500_rewritten_to_503(
    tmp_path: Path, agents: Callable[..., AgentProcess]
) -> None:
    log = tmp_path / "app.log"
    write_lines(log, json_lines(50))
    with FakeOtlp(path="/otlp/v1/logs", loki=True) as loki:
        loki.fail_next(1, 500, "ingester unavailable")
        a = agents("tail", "--once", "--to", f"otlp:{loki.url}/otlp", str(log))
        assert a.wait(120) == 0, a.stderr
        assert sorted(loki.bodies()) == sorted(f"line {i}" for i in range(50))
        assert [q.status for q in loki.requests] == [503, 204]
        assert "ingester unavailable" in a.stderr
