"""Shared fixtures: real agent processes, temporary log folders, bounded waits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

LOGSHIP = [sys.executable, "-m", "logship"]

# No time limit per example: a deadline is a timing threshold, and on a shared 2-core
# machine a first example that pays for an import or a collection fails it at random.
settings.register_profile("logship", deadline=None)
settings.load_profile("logship")


def wait_until(
    predicate: Callable[[], bool], timeout: float = 30.0, what: str = "condition"
) -> None:
    """Poll ``predicate`` until true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class AgentProcess:
    """A real ``logship`` process; stderr is kept for assertions."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
        self.stderr_path = cwd / f"agent-{time.monotonic_ns()}.err"
        self.stdout_path = cwd / f"agent-{time.monotonic_ns()}.out"
        self._err = open(self.stderr_path, "wb")  # noqa: SIM115 - closed in wait()
        self._out = open(self.stdout_path, "wb")  # noqa: SIM115
        full_env = {**os.environ, **(env or {})}
        self.proc = subprocess.Popen(
            [*LOGSHIP, *args], cwd=cwd, stdout=self._out, stderr=self._err, env=full_env
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait(self, timeout: float = 60.0) -> int:
        try:
            rc = self.proc.wait(timeout=timeout)
        finally:
            self._err.close()
            self._out.close()
        return rc

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def kill9(self) -> None:
        self.proc.kill()
        self.wait()

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.wait()


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[Callable[..., AgentProcess]]:
    started: list[AgentProcess] = []

    def start(*args: str, env: dict[str, str] | None = None) -> AgentProcess:
        a = AgentProcess(list(args), tmp_path, env)
        started.append(a)
        return a

    yield start
    for a in started:
        a.stop()


def write_lines(path: Path, lines: list[str], mode: str = "a") -> None:
    with open(path, mode, encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in lines))
        f.flush()
