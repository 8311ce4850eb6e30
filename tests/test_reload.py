"""Reloading the config (SIGHUP, or the file changing) with the real process: no line lost,
none sent twice, an invalid config refused while the old one keeps running."""

from __future__ import annotations

import json
import signal
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import AgentProcess, wait_until, write_lines
from fakes.loki import FakeLoki

from logship.agent import Agent
from logship.config import build_config


@pytest.fixture
def loki() -> Iterator[FakeLoki]:
    with FakeLoki() as server:
        yield server


def config(log_glob: str, url: str, phase: str, extra: str = "") -> str:
    return f"""
sources:
  app: {{include: ["{log_glob}"], start_at: beginning, labels: {{phase: {phase}}}}}
sinks:
  loki: {{type: loki, url: "{url}", batch: {{linger: 50ms}}}}
drain_timeout: 30s
{extra}
"""


class Writer:
    """Appends numbered lines to a file from a thread until stopped: traffic during a reload."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.written: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            batch = [json.dumps({"msg": "line", "n": n + i}) for i in range(50)]
            write_lines(self.path, batch)
            self.written.extend(batch)
            n += len(batch)
            self._stop.wait(0.005)  # pacing of the workload, not a wait for a result

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)


def phases(loki: FakeLoki) -> Counter[str]:
    return Counter(e.labels.get("phase", "") for e in loki.entries)


def test_sighup_applies_new_config_without_losing_or_duplicating(
    tmp_path: Path, loki: FakeLoki, agents: Callable[..., AgentProcess]
) -> None:
    log = tmp_path / "logs" / "app.log"
    log.parent.mkdir()
    cfg = tmp_path / "logship.yaml"
    # No checkpoint_dir: the new agent continues from the old one's offsets held in memory.
    cfg.write_text(config(str(log), loki.url, "one"))
    write_lines(log, [json.dumps({"msg": "before", "n": i}) for i in range(1000)])
    a = agents("run", "--config", str(cfg))
    loki.wait_for_lines(1000, timeout=60)
    with Writer(log) as w:
        wait_until(lambda: len(w.written) > 2000, 30, "the writer to get going")
        cfg.write_text(config(str(log), loki.url, "two"))
        a.signal(signal.SIGHUP)
        wait_until(lambda: "config reloaded" in a.stderr, 60, "the reload")
        wait_until(lambda: phases(loki)["two"] > 0, 60, "lines shipped under the new config")
    expected = 1000 + len(w.written)
    loki.wait_for_lines(expected, timeout=120)
    a.signal(signal.SIGTERM)
    assert a.wait(60) == 0, a.stderr
    written = [json.dumps({"msg": "before", "n": i}) for i in range(1000)] + w.written
    # The labels changed at the reload, so a line sent twice would be stored twice.
    assert Counter(loki.lines()) == Counter(written)
    assert not loki.duplicates
    # Each line went out under exactly one config: the old one up to a point, then the new.
    order = {line: i for i, line in enumerate(written)}
    one = [order[e.line] for e in loki.entries if e.labels.get("phase") == "one"]
    two = [order[e.line] for e in loki.entries if e.labels.get("phase") == "two"]
    assert one and two and max(one) < min(two)


def test_invalid_config_is_refused_and_the_old_one_keeps_running(
    tmp_path: Path, loki: FakeLoki, agents: Callable[..., AgentProcess]
) -> None:
    log = tmp_path / "logs" / "app.log"
    log.parent.mkdir()
    state = tmp_path / "state"
    cfg = tmp_path / "logship.yaml"
    cfg.write_text(config(str(log), loki.url, "one", f"checkpoint_dir: {state}"))
    write_lines(log, ["first"])
    a = agents("run", "--config", str(cfg))
    loki.wait_for_lines(1, timeout=60)
    cfg.write_text(config(str(log), "not a url", "two", f"checkpoint_dir: {state}"))
    a.signal(signal.SIGHUP)
    wait_until(lambda: "new config refused" in a.stderr, 60, "the refusal")
    refusal = next(ln for ln in a.stderr.splitlines() if "new config refused" in ln)
    assert "sinks.loki.url" in refusal and str(cfg) in refusal
    write_lines(log, ["second"])
    loki.wait_for_lines(2, timeout=60)  # still shipping, under the old config
    assert phases(loki) == Counter({"one": 2})
    cfg.write_text(config(str(log), loki.url, "two", f"checkpoint_dir: {state}"))
    a.signal(signal.SIGHUP)
    wait_until(lambda: "config reloaded" in a.stderr, 60, "the reload of the fixed config")
    write_lines(log, ["third"])
    loki.wait_for_lines(3, timeout=60)
    a.signal(signal.SIGTERM)
    assert a.wait(60) == 0, a.stderr
    assert sorted(loki.lines()) == ["first", "second", "third"]
    assert phases(loki) == Counter({"one": 2, "two": 1})


def test_a_changed_config_file_is_applied_when_watched(
    tmp_path: Path, loki: FakeLoki, agents: Callable[..., AgentProcess]
) -> None:
    log = tmp_path / "logs" / "app.log"
    log.parent.mkdir()
    cfg = tmp_path / "logship.yaml"
    watch = "reload: {watch_file: true, poll_interval: 100ms}"
    cfg.write_text(config(str(log), loki.url, "one", watch))
    write_lines(log, ["a"])
    a = agents("run", "--config", str(cfg))
    loki.wait_for_lines(1, timeout=60)
    cfg.write_text(config(str(log), loki.url, "two", watch))  # no signal
    wait_until(lambda: "config reloaded" in a.stderr, 60, "the file change to be applied")
    write_lines(log, ["b"])
    loki.wait_for_lines(2, timeout=60)
    a.signal(signal.SIGTERM)
    assert a.wait(60) == 0, a.stderr
    assert {e.line: e.labels["phase"] for e in loki.entries} == {"a": "one", "b": "two"}


def test_files_the_old_config_would_follow_are_read_from_their_start(tmp_path: Path) -> None:
    """A file unknown to the old agent but matched by its globs appeared during the switch."""
    logs = tmp_path / "logs"
    old = build_config(
        {
            "sources": {"app": {"include": [f"{logs}/*.log"], "exclude": ["*.old.log"]}},
            "sinks": {"out": {"type": "stdout"}},
        },
        "old.yaml",
    )
    new = build_config(
        {
            "sources": {
                "app": {"include": [f"{logs}/*.log", f"{tmp_path}/more/*.txt"]},
                "other": {"include": [f"{logs}/*.log"]},
            },
            "sinks": {"out": {"type": "stdout"}},
        },
        "new.yaml",
    )
    agent = Agent(new, previous=old)
    assert agent._followed_before("app", f"{logs}/a.log")
    assert not agent._followed_before("app", f"{logs}/a.old.log")  # excluded before
    assert not agent._followed_before("app", f"{tmp_path}/more/b.txt")  # newly included
    assert not agent._followed_before("other", f"{logs}/a.log")  # a new source: start_at
    assert not Agent(new)._followed_before("app", f"{logs}/a.log")  # not a reload
