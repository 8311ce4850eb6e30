"""The real `logship` process against an in-process Loki that answers like Loki 3.6.

The fake decodes protobuf with the official protobuf runtime and snappy with a
real snappy decoder, so these tests check logship's wire format independently.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import AgentProcess, wait_until, write_lines
from fakes.loki import FakeLoki
from promtext import free_port, get_or_none, parse, value


@pytest.fixture
def loki() -> Iterator[FakeLoki]:
    with FakeLoki() as server:
        yield server


def now_ts(i: int = 0) -> str:
    t = time.time() + i / 1e6
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1e6) % 10**6:06d}Z"


def json_lines(n: int, start: int = 0) -> list[str]:
    base = time.time()
    out = []
    for i in range(start, start + n):
        t = base + i / 1e6
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1e6) % 10**6:06d}Z"
        out.append(json.dumps({"ts": ts, "level": "info", "msg": f"line {i}", "i": i}))
    return out


def test_100k_lines_delivered_exactly_once(
    tmp_path: Path, loki: FakeLoki, agents: Callable[..., AgentProcess]
) -> None:
    log = tmp_path / "app.log"
    lines = json_lines(100_000)
    write_lines(log, lines)
    a = agents("tail", "--once", "--to", f"loki:{loki.url}", "--label", "app=test", str(log))
    assert a.wait(180) == 0, a.stderr
    got = loki.lines()
    assert len(got) == len(lines)
    assert Counter(got) == Counter(lines)
    e = loki.entries[0]
    assert e.labels["app"] == "test"
    assert e.labels["filename"] == str(log)
    # The entry timestamp is the record's own timestamp, in nanoseconds.
    first = json.loads(lines[0])["ts"]
    assert time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(e.ts_ns // 10**9)) == first[:19]
    assert all(r.content_type == "application/x-protobuf" for r in loki.requests)


def test_json_encoding_with_gzip(tmp_path: Path, loki: FakeLoki) -> None:
    import subprocess
    import sys

    log = tmp_path / "app.log"
    lines = [*json_lines(50), "plain line with ünïcode"]
    write_lines(log, lines)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"""
sources:
  app: {{include: ["{log}"], start_at: beginning, labels: {{service.name: shop}}}}
sinks:
  loki: {{type: loki, url: "{loki.url}", encoding: json, compression: gzip, tenant_id: team-a,
          batch: {{linger: 50ms}}}}
"""
    )
    r = subprocess.run(
        [sys.executable, "-m", "logship", "run", "--once", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert sorted(loki.lines()) == sorted(lines)
    assert all(e.tenant == "team-a" for e in loki.entries)
    assert loki.entries[0].labels["service_name"] == "shop"  # sanitized from service.name
    assert all(r.content_encoding == "gzip" for r in loki.requests)


def test_kill_9_then_restart_delivers_every_line(
    tmp_path: Path, loki: FakeLoki, agents: Callable[..., AgentProcess]
) -> None:
    log = tmp_path / "app.log"
    state = tmp_path / "state"
    lines = json_lines(60_000)
    write_lines(log, lines[:30_000])
    a = agents(
        "tail", "--from-beginning", "--state-dir", str(state), "--to", f"loki:{loki.url}", str(log)
    )
    loki.wait_for(lambda s: len(s.lines()) >= 10_000, timeout=60)
    write_lines(log, lines[30_000:])
    # Checkpoints are saved at start (offset 0), then as deliveries are acknowledged.
    wait_until(lambda: _saved_offset(state) > 0, 30, "a checkpoint past the start")
    (saved,) = json.loads((state / "checkpoints.json").read_text())["files"].values()
    a.kill9()
    # A request the killed agent sent may still be being stored: let the server finish it.
    wait_until(lambda: loki.open_connections == 0, 30, "the killed agent's requests to end")
    delivered_before = set(loki.lines())
    # Restart from the checkpoints: everything arrives; only lines after the checkpoint
    # (read but maybe unacknowledged at the kill) may be sent twice.
    b = agents("tail", "--once", "--state-dir", str(state), "--to", f"loki:{loki.url}", str(log))
    assert b.wait(180) == 0, b.stderr
    assert Counter(loki.lines()) == Counter(lines)  # Loki drops exact replays; none is missing
    offsets, pos = {}, 0
    for line in lines:
        offsets[line] = pos
        pos += len(line.encode()) + 1
    replayed = [e.line for e in loki.duplicates]
    assert all(offsets[r] >= saved["offset"] for r in replayed), "replayed a checkpointed line"
    assert set(replayed) <= delivered_before
    assert saved["offset"] > 0


def _saved_offset(state: Path) -> int:
    path = state / "checkpoints.json"
    if not path.exists():
        return 0
    return max((f["offset"] for f in json.loads(path.read_text())["files"].values()), default=0)


def _rchar(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar")


def test_loki_down_at_start_then_up(
    tmp_path: Path, loki: FakeLoki, agents: Callable[..., AgentProcess]
) -> None:
    log = tmp_path / "app.log"
    lines = json_lines(150_000)
    write_lines(log, lines)
    size = log.stat().st_size
    loki.down()
    port = free_port()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"""
sources:
  app: {{include: ["{log}"], start_at: beginning}}
sinks:
  loki: {{type: loki, url: "{loki.url}", retry: {{initial_backoff: 100ms, max_backoff: 500ms}}}}
memory_limit: 2MiB
tailing: {{read_chunk_size: 64KiB}}
http: {{listen: "127.0.0.1:{port}"}}
"""
    )
    a = agents("run", "--config", str(cfg))

    def retries() -> float:
        # Counted from /metrics: the log repeats "retrying" at most once per 10 s.
        got = get_or_none(f"http://127.0.0.1:{port}/metrics")
        return (value(parse(got[1]), "logship_sink_retries_total", sink="loki") or 0) if got else 0

    wait_until(lambda: "retrying" in a.stderr, 60, "the agent to retry a refused connection")
    # Memory stays bounded: with the sink down the agent stops reading the file.
    wait_until(lambda: retries() >= 5, 60, "several failed attempts")
    before = _rchar(a.pid)
    wait_until(lambda: retries() >= 8, 60, "more failed attempts")
    assert _rchar(a.pid) - before < 256 * 1024, "kept reading while the sink was down"
    assert before < size, "read the whole file into memory"
    assert a.proc.poll() is None
    loki.up()
    loki.wait_for(lambda s: len(s.lines()) >= len(lines), timeout=180)
    assert Counter(loki.lines()) == Counter(lines)
    a.signal(signal.SIGTERM)
    assert a.wait(60) == 0


def test_429_retry_after_is_respected(
    tmp_path: Path, loki: FakeLoki, agents: Callable[..., AgentProcess]
) -> None:
    log = tmp_path / "app.log"
    lines = json_lines(100)
    write_lines(log, lines)
    loki.fail_next(1, 429, "ingestion rate limit exceeded for user fake\n", {"Retry-After": "2"})
    a = agents("tail", "--once", "--to", f"loki:{loki.url}", str(log))
    assert a.wait(120) == 0, a.stderr
    assert sorted(loki.lines()) == sorted(lines)
    first, second = loki.requests[0], loki.requests[1]
    assert first.status == 429
    assert second.arrived - first.arrived >= 1.9
    assert "ingestion rate limit exceeded" in a.stderr


def test_400_is_not_retried_and_reason_reported(
    tmp_path: Path, loki: FakeLoki, agents: Callable[..., AgentProcess]
) -> None:
    log = tmp_path / "app.log"
    old = json.dumps({"ts": "2020-01-01T00:00:00Z", "msg": "too old"})
    fresh = json_lines(5)
    write_lines(log, [old, *fresh])
    a = agents("tail", "--once", "--to", f"loki:{loki.url}", str(log))
    rc = a.wait(120)
    assert len(loki.requests) == 1 and loki.requests[0].status == 400
    assert sorted(loki.lines()) == sorted(fresh)  # Loki stored the valid entries
    assert rc == 1
    assert "timestamp too old" in a.stderr
    assert "rejected 1 record" in a.stderr


def test_sigterm_drains_and_saves(
    tmp_path: Path, loki: FakeLoki, agents: Callable[..., AgentProcess]
) -> None:
    log = tmp_path / "app.log"
    state = tmp_path / "state"
    lines = json_lines(5000)
    write_lines(log, lines)
    a = agents(
        "tail", "--from-beginning", "--state-dir", str(state), "--to", f"loki:{loki.url}", str(log)
    )
    loki.wait_for(lambda s: len(s.lines()) == len(lines), timeout=60)
    a.signal(signal.SIGTERM)
    assert a.wait(60) == 0
    saved = json.loads((state / "checkpoints.json").read_text())
    (entry,) = saved["files"].values()
    assert entry["offset"] == os.path.getsize(log)


def test_fan_out_to_stdout_and_loki(
    tmp_path: Path, loki: FakeLoki, agents: Callable[..., AgentProcess]
) -> None:
    log = tmp_path / "app.log"
    lines = json_lines(2000)
    write_lines(log, lines)
    a = agents("tail", "--once", "--to", "stdout", "--to", f"loki:{loki.url}", str(log))
    assert a.wait(120) == 0, a.stderr
    printed = [json.loads(x)["fields"]["i"] for x in a.stdout.splitlines()]
    assert printed == list(range(2000))
    assert Counter(loki.lines()) == Counter(lines)
