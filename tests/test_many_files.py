"""A thousand files with a low descriptor limit: idle files close and reopen at their offset."""

from __future__ import annotations

import resource
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from conftest import write_lines
from fakes.loki import FakeLoki


def _low_fd_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (200, 200))


def test_thousand_files_under_a_200_descriptor_limit(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    expected: list[str] = []
    for i in range(1000):
        lines = [f"file {i} line {j}" for j in range(5)]
        write_lines(logs / f"app-{i:04d}.log", lines)
        expected += lines
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"""
sources:
  app: {{include: ["{logs}/*.log"], start_at: beginning}}
sinks:
  loki: {{type: loki, url: "URL", batch: {{linger: 100ms}}}}
tailing: {{max_open_files: 100, close_idle_after: 300ms, rescan_interval: 200ms}}
"""
    )
    with FakeLoki() as loki:
        cfg.write_text(cfg.read_text().replace("URL", loki.url))
        err = open(tmp_path / "agent.err", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "logship", "run", "--config", str(cfg)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            preexec_fn=_low_fd_limit,
        )
        try:
            loki.wait_for(lambda s: s.line_count >= len(expected), timeout=120)
            # Files closed while idle are reopened at their offset when they grow.
            more = [f"file {i} later" for i in range(0, 1000, 20)]
            for i in range(0, 1000, 20):
                write_lines(logs / f"app-{i:04d}.log", [f"file {i} later"])
            loki.wait_for(lambda s: s.line_count >= len(expected) + len(more), timeout=120)
            open_fds = len(list(Path(f"/proc/{proc.pid}/fd").iterdir()))
        finally:
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(60)
            err.close()
    stderr = (tmp_path / "agent.err").read_text()
    assert rc == 0, stderr
    assert Counter(loki.lines()) == Counter(expected + more)
    assert open_fds < 200
    assert "Too many open files" not in stderr
