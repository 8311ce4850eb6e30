"""Container formats and multiline with the real `logship` process and the fake Loki."""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import AgentProcess, wait_until, write_lines
from fakes.loki import FakeLoki


@pytest.fixture
def loki() -> Iterator[FakeLoki]:
    with FakeLoki() as server:
        yield server


def cri_time(offset_s: float) -> str:
    t = datetime.fromtimestamp(time.time() - 60 + offset_s, UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"


def ns_of(text: str) -> int:
    dt = datetime.strptime(text[:26], "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=UTC)
    return int(dt.timestamp()) * 10**9 + int(text[20:29])


def test_cri_pod_log_with_partials(
    tmp_path: Path, loki: FakeLoki, agents: Callable[..., AgentProcess]
) -> None:
    folder = tmp_path / "pods" / "shop_web-5f7c_8e1d-42aa" / "nginx"
    folder.mkdir(parents=True)
    log = folder / "0.log"
    t = [cri_time(i) for i in range(5)]
    write_lines(
        log,
        [
            f"{t[0]} stdout P GET /index.html ",
            f"{t[1]} stderr F warning: slow upstream",
            f"{t[2]} stdout P 200 ",
            f"{t[3]} stdout F 512 bytes",
            "this line is not CRI",
            f"{t[4]} stdout F " + '{"msg":"json app line"}',
        ],
    )
    a = agents("tail", "--once", "--format", "cri", "--to", f"loki:{loki.url}", str(log))
    assert a.wait(120) == 0, a.stderr
    by_line = {e.line: e for e in loki.entries}
    assert Counter(loki.lines()) == Counter(
        [
            "GET /index.html 200 512 bytes",
            "warning: slow upstream",
            "this line is not CRI",
            '{"msg":"json app line"}',
        ]
    )
    joined = by_line["GET /index.html 200 512 bytes"]
    assert joined.ts_ns == ns_of(t[0])  # the first fragment's container time
    assert joined.labels["stream"] == "stdout"
    assert by_line["warning: slow upstream"].labels["stream"] == "stderr"
    assert by_line["warning: slow upstream"].ts_ns == ns_of(t[1])
    for e in loki.entries:
        assert (e.labels["namespace"], e.labels["pod"], e.labels["container"]) == (
            "shop",
            "web-5f7c",
            "nginx",
        )
        assert "pod_uid" not in e.labels
    assert "stream" not in by_line["this line is not CRI"].labels  # kept raw, not guessed


def test_docker_json_file_with_partials(
    tmp_path: Path, agents: Callable[..., AgentProcess]
) -> None:
    log = tmp_path / "c-json.log"

    def d(text: str, stream: str = "stdout") -> str:
        return json.dumps({"log": text, "stream": stream, "time": "2026-11-29T10:00:00.5Z"})

    write_lines(log, [d("a long line, "), d("oops\n", "stderr"), d("continued\n")])
    a = agents("tail", "--once", "--from-beginning", "--format", "docker", str(log))
    assert a.wait(60) == 0, a.stderr
    recs = [json.loads(x) for x in a.stdout.splitlines()]
    got = {(r["message"], r["attributes"]["stream"], r["timestamp"]) for r in recs}
    assert got == {
        ("a long line, continued", "stdout", "2026-11-29T10:00:00.500000000Z"),
        ("oops", "stderr", "2026-11-29T10:00:00.500000000Z"),
    }


TRACE = [
    "2026-11-29 10:00:01 ERROR request failed",
    "java.lang.IllegalStateException: boom",
    "\tat com.example.Service.run(Service.java:42)",
    "\tat com.example.Main.main(Main.java:7)",
    "Caused by: java.io.IOException: disk full",
    "\t... 2 more",
]


def test_java_stack_trace_is_one_entry(
    tmp_path: Path, loki: FakeLoki, agents: Callable[..., AgentProcess]
) -> None:
    log = tmp_path / "app.log"
    write_lines(log, ["2026-11-29 10:00:00 INFO started", *TRACE, "2026-11-29 10:00:02 INFO ok"])
    a = agents("tail", "--once", "--multiline", "java", "--to", f"loki:{loki.url}", str(log))
    assert a.wait(120) == 0, a.stderr
    assert Counter(loki.lines()) == Counter(
        ["2026-11-29 10:00:00 INFO started", "\n".join(TRACE), "2026-11-29 10:00:02 INFO ok"]
    )


def test_idle_open_group_is_flushed_after_the_timeout(
    tmp_path: Path, loki: FakeLoki, agents: Callable[..., AgentProcess]
) -> None:
    log = tmp_path / "app.log"
    write_lines(log, TRACE)
    a = agents(
        "tail", "--from-beginning", "--multiline", "java", "--to", f"loki:{loki.url}", str(log)
    )
    # Nothing follows the trace: the default 1 s timeout emits it while the agent runs.
    loki.wait_for(lambda s: s.lines() == ["\n".join(TRACE)], timeout=30)
    a.signal(signal.SIGTERM)
    assert a.wait(30) == 0, a.stderr


@pytest.mark.parametrize("command", ["tail", "run"])
def test_restart_inside_an_open_group_delivers_it_once_whole(
    command: str, tmp_path: Path, loki: FakeLoki, agents: Callable[..., AgentProcess]
) -> None:
    log = tmp_path / "app.log"
    state = tmp_path / "state"
    if command == "tail":
        # The timeout comes from the environment, so the group stays open until SIGTERM.
        env = {"LOGSHIP_SOURCES__TAIL__MULTILINE__TIMEOUT": "5m"}
        args = ["tail", "--state-dir", str(state), "--multiline", "java"]
        first = [*args, "--from-beginning", "--to", f"loki:{loki.url}", str(log)]
        second = [*args, "--once", "--to", f"loki:{loki.url}", str(log)]
    else:
        env = {}
        cfg = tmp_path / "agent.yaml"
        cfg.write_text(
            f"""
sources:
  app:
    include: ["{log}"]
    start_at: beginning
    multiline: {{preset: java, timeout: 5m}}
sinks:
  loki: {{type: loki, url: "{loki.url}", batch: {{linger: 50ms}}}}
checkpoint_dir: "{state}"
checkpoint_interval: 100ms
"""
        )
        first = ["run", "--config", str(cfg)]
        second = ["run", "--once", "--config", str(cfg)]
    before = ["2026-11-29 10:00:00 INFO one", "2026-11-29 10:00:00 INFO two"]
    write_lines(log, [*before, *TRACE[:3]])
    group_start = sum(len(x) + 1 for x in before)
    a = agents(*first, env=env)
    loki.wait_for(lambda s: sorted(s.lines()) == sorted(before), timeout=30)

    def checkpoint() -> int | None:
        try:
            files = json.loads((state / "checkpoints.json").read_text())["files"]
        except (OSError, ValueError, KeyError):
            return None
        return next(iter(files.values()))["offset"] if files else None

    # The checkpoint reaches the start of the open trace, and stays there.
    wait_until(lambda: checkpoint() == group_start, 30, "checkpoint at the open group's start")
    a.signal(signal.SIGTERM)
    assert a.wait(30) == 0, a.stderr
    assert checkpoint() == group_start
    assert sorted(loki.lines()) == sorted(before)  # the open trace was not sent in halves

    write_lines(log, [*TRACE[3:], "2026-11-29 10:00:03 INFO after"])
    b = agents(*second, env=env)
    assert b.wait(120) == 0, b.stderr
    assert Counter(loki.lines()) == Counter(
        [*before, "\n".join(TRACE), "2026-11-29 10:00:03 INFO after"]
    )
    assert loki.duplicates == []


def test_restart_between_a_cri_fragment_and_its_end_joins_it_once(
    tmp_path: Path, loki: FakeLoki, agents: Callable[..., AgentProcess]
) -> None:
    log = tmp_path / "0.log"
    state = tmp_path / "state"
    env = {"LOGSHIP_TAILING__PARTIAL_LINE_TIMEOUT": "5m"}
    args = ["tail", "--format", "cri", "--state-dir", str(state), "--to", f"loki:{loki.url}"]
    t = [cri_time(i) for i in range(3)]
    whole = f"{t[0]} stdout F first"
    write_lines(log, [whole, f"{t[1]} stdout P begins "])
    a = agents(*args, "--from-beginning", str(log), env=env)
    loki.wait_for(lambda s: s.lines() == ["first"], timeout=30)
    saved = state / "checkpoints.json"

    def checkpoint() -> int | None:
        try:
            return int(next(iter(json.loads(saved.read_text())["files"].values()))["offset"])
        except (OSError, ValueError, KeyError, StopIteration):
            return None

    wait_until(lambda: checkpoint() == len(whole) + 1, 30, "checkpoint at the fragment's start")
    a.signal(signal.SIGTERM)
    assert a.wait(30) == 0, a.stderr
    write_lines(log, [f"{t[2]} stdout F and ends"])
    b = agents(*args, "--once", str(log), env=env)
    assert b.wait(120) == 0, b.stderr
    assert Counter(loki.lines()) == Counter(["first", "begins and ends"])
    assert loki.duplicates == []
    (joined,) = [e for e in loki.entries if e.line == "begins and ends"]
    assert joined.ts_ns == ns_of(t[1])


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ("start:([", "sources.tail.multiline.pattern: invalid regular expression"),
        ("cobol", "sources.tail.multiline.preset: Input should be 'java', 'python' or 'go'"),
        ("middle:x", "expected java, python, go or start|continue|end:REGEX"),
    ],
)
def test_bad_multiline_option_is_a_clear_error(tmp_path: Path, spec: str, error: str) -> None:
    import subprocess
    import sys

    log = tmp_path / "app.log"
    log.write_text("x\n")
    r = subprocess.run(
        [sys.executable, "-m", "logship", "tail", "--once", "--multiline", spec, str(log)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert error in r.stderr


def test_restart_with_an_open_stdout_group_and_later_stderr_lines(
    tmp_path: Path, loki: FakeLoki, agents: Callable[..., AgentProcess]
) -> None:
    """Nothing is lost; what is re-sent (stderr after the open stdout group) Loki drops."""
    log = tmp_path / "0.log"
    state = tmp_path / "state"
    env = {"LOGSHIP_SOURCES__TAIL__MULTILINE__TIMEOUT": "5m"}
    args = ["tail", "--format", "cri", "--multiline", "python", "--state-dir", str(state)]
    args += ["--to", f"loki:{loki.url}"]
    t = [cri_time(i) for i in range(6)]
    write_lines(
        log,
        [
            f"{t[0]} stdout F ready",
            f"{t[1]} stdout F Traceback (most recent call last):",
            f"{t[2]} stderr F warning one",
            f'{t[3]} stdout F   File "app.py", line 1, in <module>',
            f"{t[3]} stderr F warning two",
        ],
    )
    a = agents(*args, "--from-beginning", str(log), env=env)
    # Each stream's last record may still continue: "warning two" waits like the trace.
    loki.wait_for(lambda s: sorted(s.lines()) == ["ready", "warning one"], 30)
    a.signal(signal.SIGTERM)
    assert a.wait(30) == 0, a.stderr
    write_lines(log, [f"{t[4]} stdout F ValueError: bad", f"{t[5]} stdout F done"])
    b = agents(*args, "--once", str(log), env=env)
    assert b.wait(120) == 0, b.stderr
    trace = 'Traceback (most recent call last):\n  File "app.py", line 1, in <module>\n'
    assert Counter(loki.lines()) == Counter(
        ["ready", "warning one", "warning two", trace + "ValueError: bad", "done"]
    )
    assert {e.line for e in loki.duplicates} <= {"warning one"}
