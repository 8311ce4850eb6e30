"""The real `logship tail` process with the new formats: Loki gets each line's own time.

The fake Loki decodes protobuf and snappy with implementations independent of logship's.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import LOGSHIP, AgentProcess, write_lines
from fakes.loki import FakeLoki


@pytest.fixture
def loki() -> Iterator[FakeLoki]:
    with FakeLoki() as server:
        yield server


def test_logfmt_lines_reach_loki_with_their_own_timestamps(
    tmp_path: Path, loki: FakeLoki, agents: Callable[..., AgentProcess]
) -> None:
    # An hour ago: Loki refuses entries older than its reject_old_samples_max_age (a week).
    hour_ago = int(time.time()) - 3600
    base = datetime.fromtimestamp(hour_ago, UTC)
    berlin = base.astimezone(timezone(timedelta(hours=1)))
    log = tmp_path / "app.log"
    lines = [
        f'ts={base:%Y-%m-%dT%H:%M:%S}.123456789Z level=info msg="first line" n=1',
        f"time={hour_ago + 1} level=warn msg=second n=2",  # epoch seconds
        f"ts={berlin:%Y-%m-%dT%H:%M:%S}.5+01:00 level=error msg=third n=3",  # offset zone
        "no pairs here",  # malformed: read time
    ]
    write_lines(log, lines)
    before = time.time_ns()
    a = agents("tail", "--once", "--format", "logfmt", "--to", f"loki:{loki.url}", str(log))
    assert a.wait(120) == 0, a.stderr
    got = {e.line: e.ts_ns for e in loki.entries}
    assert set(got) == set(lines)  # the original lines, each once
    second = 1_000_000_000
    assert got[lines[0]] == hour_ago * second + 123_456_789
    assert got[lines[1]] == (hour_ago + 1) * second
    assert got[lines[2]] == hour_ago * second + second // 2
    assert got[lines[3]] >= before  # the malformed line: its read time


def test_tail_regex_to_stdout_prints_group_fields(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    write_lines(log, ["2026-01-05T11:59:58Z WARN cache: miss", "unmatched line"])
    r = subprocess.run(
        [*LOGSHIP, "tail", "--once", "--from-beginning", "--regex",
         r"^(?P<time>\S+) (?P<level>\w+) (?P<component>\w+): (?P<msg>.*)$", str(log)],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    first, second = (json.loads(x) for x in r.stdout.splitlines())
    assert first["fields"] == {
        "time": "2026-01-05T11:59:58Z",
        "level": "WARN",
        "component": "cache",
        "msg": "miss",
    }
    assert (first["level"], first["severity_number"], first["message"]) == ("warn", 13, "miss")
    assert first["timestamp"] == "2026-01-05T11:59:58.000000000Z"
    assert second["malformed"] is True and second["message"] == "unmatched line"


def test_syslog_config_with_timezone(tmp_path: Path) -> None:
    log = tmp_path / "syslog"
    write_lines(log, ["<11>Jan  5 13:00:00 web-1 app[7]: disk error"])
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"""
sources:
  sys:
    include: ["{log}"]
    start_at: beginning
    format: syslog
    timestamp: {{timezone: Europe/Berlin}}
sinks:
  out: {{type: stdout}}
"""
    )
    r = subprocess.run(
        [*LOGSHIP, "run", "--once", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    (rec,) = (json.loads(x) for x in r.stdout.splitlines())
    assert rec["fields"]["facility"] == "user" and rec["fields"]["hostname"] == "web-1"
    assert (rec["level"], rec["severity_number"], rec["message"]) == ("error", 17, "disk error")
    # 13:00 in Berlin (UTC+1 in January); the year is inferred from the read time.
    assert rec["timestamp"].endswith("-01-05T12:00:00.000000000Z")
    assert datetime.fromisoformat(rec["observed_timestamp"]) > datetime(2026, 1, 1, tzinfo=UTC)
