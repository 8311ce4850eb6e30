"""The real ``logship run`` with transforms against the fake Loki (an independent decoder)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import AgentProcess, write_lines
from fakes.loki import FakeLoki


@pytest.fixture
def loki() -> Iterator[FakeLoki]:
    with FakeLoki() as server:
        yield server


def ts(i: int) -> str:
    t = time.time() - 60 + i / 1e3
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1e6) % 10**6:06d}Z"


def run_once(cfg: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "logship", "run", "--once", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def totals(stderr: str) -> dict[str, object]:
    found = [json.loads(x) for x in stderr.splitlines() if '"transform totals"' in x]
    assert len(found) == 1, stderr
    return found[0]  # type: ignore[no-any-return]


def test_secrets_never_reach_loki_and_dropped_lines_are_acknowledged(
    tmp_path: Path, loki: FakeLoki
) -> None:
    log = tmp_path / "app.log"
    state = tmp_path / "state"
    kept, dropped = [], []
    for i in range(300):
        if i % 3 == 0:
            dropped.append(json.dumps({"ts": ts(i), "level": "debug", "msg": f"noise {i}"}))
        else:
            kept.append(
                json.dumps(
                    {
                        "ts": ts(i),
                        "level": "info",
                        "msg": f"login {i} Authorization: Bearer tok{i}secret",
                        "dsn": f"postgres://svc:pw{i}word@db:5432/app",
                        "card": "4111 1111 1111 1111",
                    }
                )
            )
    # Interleaved, and the file ends with dropped lines: the checkpoint must still reach its end.
    lines = [dropped[i // 3] if i % 3 == 0 else kept[i - i // 3 - 1] for i in range(300)]
    lines += [json.dumps({"ts": ts(301), "level": "debug", "msg": "last, dropped"})]
    write_lines(log, lines)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"""
sources:
  app:
    include: ["{log}"]
    start_at: beginning
    transforms:
      - {{type: redact, rules: [bearer, url_password, card_number]}}
      - {{type: drop, level: [debug]}}
    enrich: {{host: host, field_labels: [level], kubernetes: {{labels_file: null}}}}
sinks:
  loki: {{type: loki, url: "{loki.url}", batch: {{linger: 50ms}}}}
checkpoint_dir: "{state}"
"""
    )
    r = run_once(cfg, {"POD_NAME": "shop-7d9", "POD_NAMESPACE": "prod"})
    assert r.returncode == 0, r.stderr
    got = loki.lines()
    assert len(got) == len(kept)
    wire = "\n".join(got)
    for secret in ("secret", "pw1word", "4111 1111", "noise", "last, dropped"):
        assert secret not in wire
    assert all("Bearer [REDACTED]" in x and "svc:[REDACTED]@db" in x for x in got)
    assert {json.loads(x)["card"] for x in got} == {"[REDACTED]"}
    e = loki.entries[0]
    assert e.labels["level"] == "info"
    assert e.labels["pod"] == "shop-7d9" and e.labels["namespace"] == "prod"
    assert e.labels["host"] == socket.gethostname()
    t = totals(r.stderr)
    assert t["dropped_lines"] == len(dropped) + 1
    assert t["dropped_by"] == {"drop": len(dropped) + 1}
    assert t["redactions"] == {"bearer": 200, "url_password": 200, "card_number": 200}
    saved = json.loads((state / "checkpoints.json").read_text())
    (entry,) = saved["files"].values()
    assert entry["offset"] == log.stat().st_size


def test_a_file_of_only_dropped_lines_is_checkpointed_to_its_end(
    tmp_path: Path, loki: FakeLoki
) -> None:
    log = tmp_path / "app.log"
    state = tmp_path / "state"
    write_lines(log, [json.dumps({"ts": ts(i), "msg": "GET /healthz"}) for i in range(500)])
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"""
sources:
  app:
    include: ["{log}"]
    start_at: beginning
    transforms: [{{type: drop, field: msg, regex: healthz}}]
sinks:
  loki: {{type: loki, url: "{loki.url}", batch: {{linger: 50ms}}}}
checkpoint_dir: "{state}"
"""
    )
    r = run_once(cfg)
    assert r.returncode == 0, r.stderr
    assert loki.lines() == []
    assert totals(r.stderr)["dropped_by"] == {"drop": 500}
    (entry,) = json.loads((state / "checkpoints.json").read_text())["files"].values()
    assert entry["offset"] == log.stat().st_size


def test_block_rate_limit_delivers_everything(tmp_path: Path, loki: FakeLoki) -> None:
    log = tmp_path / "app.log"
    lines = [json.dumps({"ts": ts(i), "msg": f"line {i}"}) for i in range(3000)]
    write_lines(log, lines)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"""
sources:
  app:
    include: ["{log}"]
    start_at: beginning
    transforms: [{{type: rate_limit, lines_per_second: 5000, burst: 100, mode: block}}]
sinks:
  loki: {{type: loki, url: "{loki.url}", batch: {{linger: 50ms}}}}
tailing: {{read_chunk_size: 16KiB}}
"""
    )
    r = run_once(cfg)
    assert r.returncode == 0, r.stderr
    assert sorted(loki.lines()) == sorted(lines)
    assert '"transform totals"' not in r.stderr  # nothing dropped, nothing redacted


def test_sigterm_ends_a_long_rate_limit_wait(
    tmp_path: Path, loki: FakeLoki, agents: Callable[..., AgentProcess]
) -> None:
    log = tmp_path / "app.log"
    state = tmp_path / "state"
    write_lines(log, [json.dumps({"ts": ts(i), "msg": f"line {i}"}) for i in range(2000)])
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"""
sources:
  app:
    include: ["{log}"]
    start_at: beginning
    transforms: [{{type: rate_limit, lines_per_second: 1, burst: 1, mode: block}}]
sinks:
  loki: {{type: loki, url: "{loki.url}", batch: {{linger: 50ms}}}}
checkpoint_dir: "{state}"
tailing: {{read_chunk_size: 16KiB}}
"""
    )
    a = agents("run", "--config", str(cfg))
    # The first chunk (about 100 lines) goes through, then the source owes ~100 s of reading.
    loki.wait_for(lambda s: len(s.lines()) > 0, timeout=30)
    a.signal(signal.SIGTERM)
    assert a.wait(30) == 0, a.stderr
    (entry,) = json.loads((state / "checkpoints.json").read_text())["files"].values()
    assert 0 < entry["offset"] < log.stat().st_size  # the rest waits in the file
