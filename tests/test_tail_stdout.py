"""`logship tail` as a real process with the stdout sink: follow, partial lines, stop, resume."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from conftest import AgentProcess, wait_until, write_lines


def records(agent: AgentProcess) -> list[dict]:  # type: ignore[type-arg]
    out = []
    for line in agent.stdout.splitlines():
        if line.strip():
            out.append(json.loads(line))
    return out


def messages(agent: AgentProcess) -> list[str]:
    return [r["message"] for r in records(agent)]


def test_bundled_sample_prints_records(agents: Callable[..., AgentProcess]) -> None:
    a = agents("tail")
    assert a.wait(60) == 0, a.stderr
    recs = records(a)
    sample = (Path(__file__).parents[1] / "logship" / "samples" / "app.log").read_text()
    assert len(recs) == len(sample.splitlines())
    assert all(r["source"]["path"].endswith("app.log") for r in recs)
    malformed = [r for r in recs if r.get("malformed")]
    assert len(malformed) == 1  # the sample carries one JSON line cut short


def test_once_from_beginning_reads_everything(
    tmp_path: Path, agents: Callable[..., AgentProcess]
) -> None:
    log = tmp_path / "app.log"
    write_lines(
        log, [json.dumps({"ts": "2026-11-28T12:00:00Z", "msg": f"m{i}"}) for i in range(500)]
    )
    a = agents("tail", "--once", str(log))
    assert a.wait(60) == 0, a.stderr
    assert messages(a) == [f"m{i}" for i in range(500)]


def test_follow_starts_at_end_and_sees_new_lines(
    tmp_path: Path, agents: Callable[..., AgentProcess]
) -> None:
    log = tmp_path / "app.log"
    write_lines(log, ["old line"])
    a = agents("tail", str(log), "--log-level", "info")
    wait_until(lambda: "following file" in a.stderr, 30, "agent to open the file")
    write_lines(log, ["new 1", "new 2"])
    wait_until(lambda: messages(a) == ["new 1", "new 2"], 30, "new lines on stdout")
    a.signal(signal.SIGTERM)
    assert a.wait(30) == 0


def test_new_file_matching_glob_is_read_from_start(
    tmp_path: Path, agents: Callable[..., AgentProcess]
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    a = agents("tail", str(logs / "*.log"), "--log-level", "info")
    wait_until(lambda: "agent started" in a.stderr, 30, "agent start")
    write_lines(logs / "late.log", ["first", "second"])
    wait_until(lambda: messages(a) == ["first", "second"], 30, "lines of a file created later")


def test_partial_line_flushed_after_idle_and_not_twice(
    tmp_path: Path, agents: Callable[..., AgentProcess]
) -> None:
    log = tmp_path / "app.log"
    log.write_text("")
    a = agents("tail", str(log), "--log-level", "info")
    wait_until(lambda: "following file" in a.stderr, 30, "agent to open the file")
    with open(log, "a") as f:
        f.write("no newline yet")
    wait_until(lambda: messages(a) == ["no newline yet"], 30, "partial line after idle timeout")
    with open(log, "a") as f:
        f.write("\nnext\n")
    wait_until(lambda: messages(a) == ["no newline yet", "next"], 30, "the following line")


def test_state_dir_resumes_after_sigterm(
    tmp_path: Path, agents: Callable[..., AgentProcess]
) -> None:
    log = tmp_path / "app.log"
    state = tmp_path / "state"
    write_lines(log, ["a", "b"])
    first = agents("tail", "--from-beginning", "--state-dir", str(state), str(log))
    wait_until(lambda: messages(first) == ["a", "b"], 30, "first run output")
    wait_until(lambda: (state / "checkpoints.json").exists(), 30, "checkpoint file")
    first.signal(signal.SIGTERM)
    assert first.wait(30) == 0
    write_lines(log, ["c"])
    second = agents("tail", "--once", "--state-dir", str(state), str(log))
    assert second.wait(60) == 0, second.stderr
    assert messages(second) == ["c"]


def test_crlf_and_long_lines(tmp_path: Path, agents: Callable[..., AgentProcess]) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"windows\r\n" + b"x" * 300_000 + b"\nafter\n")
    a = agents("tail", "--once", str(log))
    assert a.wait(60) == 0, a.stderr
    got = messages(a)
    assert got[0] == "windows"
    assert len(got[1].encode()) <= 256 * 1024 and got[1].endswith("[truncated by logship]")
    assert got[2] == "after"


def test_rename_rotation_reads_old_file_to_end_then_new_file(
    tmp_path: Path, agents: Callable[..., AgentProcess]
) -> None:
    log = tmp_path / "app.log"
    write_lines(log, [])
    a = agents("tail", str(log), "--log-level", "info")
    wait_until(lambda: "agent started" in a.stderr, 30, "agent start")
    with open(log, "a") as old:
        old.write("before rotation\n")
        old.flush()
        log.rename(tmp_path / "app.log.1")
        # The application still holds the old file for a moment, as after logrotate.
        old.write("written to the old file after the rename\n")
    write_lines(log, ["in the new file"])
    want = ["before rotation", "written to the old file after the rename", "in the new file"]
    wait_until(lambda: sorted(messages(a)) == sorted(want), 30, "lines of both files")
    old_lines = [m for m in messages(a) if m != "in the new file"]
    assert old_lines == want[:2]


def test_file_rotated_while_stopped_is_read_to_its_end(
    tmp_path: Path, agents: Callable[..., AgentProcess]
) -> None:
    log = tmp_path / "app.log"
    state = tmp_path / "state"
    write_lines(log, ["one", "two"])
    first = agents("tail", "--once", "--state-dir", str(state), str(log))
    assert first.wait(60) == 0, first.stderr
    assert messages(first) == ["one", "two"]
    # While logship is stopped: more lines, then a rotation and a new file.
    write_lines(log, ["three"])
    log.rename(tmp_path / "app.log.1")
    write_lines(log, ["new one"])
    second = agents("tail", "--once", "--state-dir", str(state), str(log))
    assert second.wait(60) == 0, second.stderr
    assert sorted(messages(second)) == ["new one", "three"]


def test_invalid_utf8_replaced_and_kept(
    tmp_path: Path, agents: Callable[..., AgentProcess]
) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"caf\xc3\xa9 ok\nbad \xff\xfe byte\nlast\n")
    a = agents("tail", "--once", str(log))
    assert a.wait(60) == 0, a.stderr
    assert messages(a) == ["café ok", "bad \ufffd\ufffd byte", "last"]


def test_ignore_older_skips_stale_files(
    tmp_path: Path, agents: Callable[..., AgentProcess]
) -> None:
    old, fresh = tmp_path / "old.log", tmp_path / "fresh.log"
    write_lines(old, ["stale"])
    write_lines(fresh, ["current"])
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"""
sources:
  app: {{include: ["{tmp_path}/*.log"], start_at: beginning, ignore_older: 1h}}
sinks:
  out: {{type: stdout}}
"""
    )
    a = agents("run", "--once", "--config", str(cfg))
    assert a.wait(60) == 0, a.stderr
    assert messages(a) == ["current"]


def test_copytruncate_continues_from_zero(
    tmp_path: Path, agents: Callable[..., AgentProcess]
) -> None:
    log = tmp_path / "app.log"
    write_lines(log, [])
    a = agents("tail", str(log), "--log-level", "info")
    wait_until(lambda: "agent started" in a.stderr, 30, "agent start")
    write_lines(log, ["before 1", "before 2"])
    wait_until(lambda: messages(a) == ["before 1", "before 2"], 30, "lines before truncation")
    (tmp_path / "app.log.1").write_bytes(log.read_bytes())  # logrotate copytruncate
    with open(log, "r+") as f:
        f.truncate(0)
    wait_until(lambda: "file truncated" in a.stderr, 30, "truncation detected")
    write_lines(log, ["after"])
    want = ["before 1", "before 2", "after"]
    wait_until(lambda: messages(a) == want, 30, "the line after the truncation")
