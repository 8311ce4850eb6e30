"""The live status line of ``logship tail``: on a terminal it shows progress; elsewhere nothing."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import AgentProcess, write_lines
from fakes.loki import FakeLoki

from logship.status import render
from logship.telemetry import Telemetry


@pytest.fixture
def loki() -> Iterator[FakeLoki]:
    with FakeLoki() as server:
        yield server


def read_until(fd: int, done: Callable[[bytes], bool], timeout: float) -> bytes:
    """Read a pty until ``done(output)`` or the timeout (then return what came)."""
    out = b""
    deadline = time.monotonic() + timeout
    while not done(out) and (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], min(left, 0.5))
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the other end closed
                break
            if not chunk:
                break
            out += chunk
    return out


def test_status_line_on_a_terminal(tmp_path: Path, loki: FakeLoki) -> None:
    log = tmp_path / "app.log"
    write_lines(log, [json.dumps({"msg": "x", "n": i}) for i in range(2000)])
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": "200", "TERM": "xterm"}
    argv = ["tail", "--from-beginning", "--to", f"loki:{loki.url}", str(log)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "logship", *argv],
        stdout=subprocess.DEVNULL,
        stderr=slave,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    os.close(slave)
    try:
        out = read_until(master, lambda o: b"loki: 2,000 sent" in o, 60)
        text = out.decode(errors="replace")
        assert "read 2,000 lines" in text and "loki: 2,000 sent" in text, text[-2000:]
        assert "lag 0 B" in text
        loki.down()
        write_lines(log, ["one more"])
        out = read_until(master, lambda o: b"retries" in o, 60)
        assert b"retries" in out  # trouble shows on the line, too
        loki.up()
        loki.wait_for_lines(2001, timeout=60)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        os.close(master)


def test_no_status_line_when_stderr_is_not_a_terminal(
    tmp_path: Path, loki: FakeLoki, agents: Callable[..., AgentProcess]
) -> None:
    log = tmp_path / "app.log"
    write_lines(log, [json.dumps({"n": i}) for i in range(500)])
    a = agents("tail", "--from-beginning", "--to", f"loki:{loki.url}", str(log))
    loki.wait_for_lines(500, timeout=60)
    a.signal(signal.SIGTERM)
    assert a.wait(60) == 0
    assert "sent" not in a.stderr and "\r" not in a.stderr and "\x1b" not in a.stderr


def test_render_reports_reads_sinks_and_lag() -> None:
    class View:
        telemetry = Telemetry()

        def file_lags(self) -> dict[str, int]:
            return {"/a.log": 1024, "/b.log": 1024}

    v = View()
    v.telemetry.read("tail", 1200, 3 * 1024 * 1024)
    v.telemetry.sent("loki", 1000, 1)
    v.telemetry.retry("loki", "503")
    text = render(v, 250.0)  # type: ignore[arg-type]
    assert text.startswith("read 1,200 lines (250/s, 3.0 MiB)")
    assert "loki: 1,000 sent, 1 retries (failing: 503) |" in text  # a retry is not an error
    v.telemetry.rejected("loki", 3, "entry too old")
    assert "loki: 1,000 sent, 1 retries, 3 errors" in render(v, 0.0)  # type: ignore[arg-type]
    assert text.endswith("lag 2.0 KiB")
