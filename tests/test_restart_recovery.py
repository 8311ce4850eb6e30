"""Restarts around rotations: files the previous run never checkpointed, copies never re-read.

Found by the model-based test (tests/test_model_based.py) and pinned here with the real process.
The agent follows the live name with the default ``start_at: end`` and a state folder, and is
stopped with SIGTERM in between, as a sidecar is on every rollout.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

from conftest import AgentProcess, wait_until, write_lines
from fakes.loki import FakeLoki, IncomingRequest, Reply
from test_tail_stdout import messages


def _follow(agents: Callable[..., AgentProcess], log: Path, state: Path) -> AgentProcess:
    a = agents("tail", "--state-dir", str(state), "--log-level", "info", str(log))
    wait_until(lambda: "agent started" in a.stderr, 30, "agent start")
    return a


def _stop(a: AgentProcess) -> None:
    a.signal(signal.SIGTERM)
    assert a.wait(30) == 0, a.stderr


def _lines_of_next_start(
    agents: Callable[..., AgentProcess], log: Path, state: Path, count: int
) -> list[str]:
    """What a start with ``state`` prints once it has printed ``count`` lines (then stopped)."""
    a = _follow(agents, log, state)
    wait_until(lambda: len(messages(a)) >= count, 30, f"{count} lines")
    _stop(a)
    return messages(a)


def _fingerprint(head: bytes) -> str:
    """A fingerprint as logship/sources/identity.py writes it (independent copy)."""
    return f"{len(head)}:{hashlib.sha256(head).hexdigest()[:32]}"


def _saved_state(
    state: Path,
    log: Path | None,
    offset: int = 0,
    fingerprint: str = "",
    saved_at: float | None = None,
    **extra: float,
) -> Path:
    """A checkpoint file as a previous run would have left it: one entry for ``log`` (its
    identity), ``extra`` top-level keys (``scanned_at``), modified at ``saved_at``."""
    files = {}
    if log is not None:
        st = log.stat()
        files[f"tail:{st.st_dev}:{st.st_ino}"] = {
            "path": str(log), "offset": offset, "fingerprint": fingerprint,
            "partial": False, "updated": time.time(), "previous": [],
        }  # fmt: skip
    state.mkdir()
    saved = state / "checkpoints.json"
    saved.write_text(json.dumps({"version": 1, "files": files, **extra}))
    if saved_at is not None:
        os.utime(saved, (saved_at, saved_at))
    return saved


def test_files_created_and_rotated_while_stopped_are_read_from_their_start(
    tmp_path: Path, agents: Callable[..., AgentProcess]
) -> None:
    log, state = tmp_path / "app.log", tmp_path / "state"
    write_lines(log, [])
    first = _follow(agents, log, state)
    write_lines(log, ["one"])
    wait_until(lambda: messages(first) == ["one"], 30, "the first line")
    _stop(first)
    # While stopped, two rotations: the middle file is never seen under the live name, and
    # the newest has no checkpoint, yet both hold lines written after the last save.
    write_lines(log, ["two"])
    log.rename(tmp_path / "app.log.1")
    write_lines(log, ["three"])
    log.rename(tmp_path / "app.log.2")
    write_lines(log, ["four"])
    second = _follow(agents, log, state)
    want = ["four", "three", "two"]
    wait_until(lambda: sorted(messages(second)) == want, 30, "every line written while stopped")
    _stop(second)
    assert sorted(messages(second)) == want


def test_file_rotated_away_while_stopped_with_no_new_file_yet_is_read(
    tmp_path: Path, agents: Callable[..., AgentProcess]
) -> None:
    log, state = tmp_path / "app.log", tmp_path / "state"
    write_lines(log, [])
    first = _follow(agents, log, state)
    write_lines(log, ["one"])
    wait_until(lambda: messages(first) == ["one"], 30, "the first line")
    _stop(first)
    # While stopped: rotate, a new file gets lines, and is rotated too; the application
    # creates the next file only when it next writes, so the watched name does not exist.
    log.rename(tmp_path / "app.log.1")
    write_lines(log, ["two"])
    log.rename(tmp_path / "app.log.2")
    second = _follow(agents, log, state)
    wait_until(lambda: messages(second) == ["two"], 30, "the line of the unseen file")
    write_lines(log, ["three"])
    wait_until(lambda: messages(second) == ["two", "three"], 30, "the next file")
    _stop(second)


def test_file_truncated_rewritten_and_rotated_while_stopped_is_read_from_its_start(
    tmp_path: Path, agents: Callable[..., AgentProcess]
) -> None:
    """Found by the model-based test: the checkpoint pointed past the end of the rotated
    file's new, shorter content, so nothing of it was read (lines lost)."""
    log, state = tmp_path / "app.log", tmp_path / "state"
    write_lines(log, [])
    first = _follow(agents, log, state)
    old = [f"old line {i:03d} " + "x" * 40 for i in range(20)]
    write_lines(log, old)
    wait_until(lambda: messages(first) == old, 30, "the first lines")
    _stop(first)
    # While stopped: the file is cut, gets fewer bytes than the checkpoint's offset, and is
    # rotated away with a new file under the live name.
    os.truncate(log, 0)
    new = ["new one", "new two", "new three"]
    write_lines(log, new)
    log.rename(tmp_path / "app.log.1")
    write_lines(log, [])
    second = _follow(agents, log, state)
    wait_until(lambda: messages(second) == new, 30, "the lines written after the cut")
    _stop(second)
    assert messages(second) == new


def test_copytruncate_copy_is_not_read_again_after_restarts(
    tmp_path: Path, agents: Callable[..., AgentProcess]
) -> None:
    log, state = tmp_path / "app.log", tmp_path / "state"
    write_lines(log, [])
    first = _follow(agents, log, state)
    write_lines(log, ["one"])
    wait_until(lambda: messages(first) == ["one"], 30, "the first line")
    _stop(first)
    copy = tmp_path / "app.log.1"
    shutil.copyfile(log, copy)  # logrotate copytruncate while the agent is stopped
    os.truncate(log, 0)
    second = _follow(agents, log, state)
    write_lines(log, ["two"])
    wait_until(lambda: messages(second) == ["two"], 30, "the line after the truncation")
    _stop(second)
    os.utime(copy, (time.time(), time.time()))  # however recent, a copy is still a copy
    third = _follow(agents, log, state)
    write_lines(log, ["three"])
    wait_until(lambda: "three" in messages(third), 30, "the next line")
    _stop(third)
    assert messages(third) == ["three"]


def test_sigterm_with_sink_down_and_memory_full_exits_within_drain_timeout(
    tmp_path: Path, agents: Callable[..., AgentProcess]
) -> None:
    from fakes.loki import FakeLoki

    log = tmp_path / "app.log"
    write_lines(log, [f"line {i} " + "x" * 100 for i in range(20_000)])
    with FakeLoki() as loki:
        loki.down()
        cfg = tmp_path / "c.yaml"
        cfg.write_text(
            f"""
sources:
  app: {{include: ["{log}"], start_at: beginning}}
sinks:
  loki: {{type: loki, url: "{loki.url}", retry: {{initial_backoff: 50ms, max_backoff: 200ms}}}}
memory_limit: 64KiB
drain_timeout: 1s
tailing: {{read_chunk_size: 16KiB}}
"""
        )
        a = agents("run", "--config", str(cfg))
        wait_until(lambda: a.stderr.count("retrying") >= 3, 30, "failed attempts")
        # Tailers wait for room in the full budget; SIGTERM must not wait for that room.
        a.signal(signal.SIGTERM)
        assert a.wait(30) == 0, a.stderr
        assert "drain timeout" in a.stderr


def test_lines_in_flight_when_a_cut_file_stops_do_not_become_the_new_contents_offset(
    tmp_path: Path, agents: Callable[..., AgentProcess]
) -> None:
    """Found by the model-based test (random mode). The file is cut while its lines wait for
    a sink that refuses them, and the agent is stopped before they are delivered; they are
    delivered while it stops. Their offsets are the old content's: saved as the checkpoint of
    the new content, the next start would skip the new content's first bytes."""
    log, state = tmp_path / "app.log", tmp_path / "state"
    refusing = threading.Event()
    refusing.set()
    tried = threading.Event()

    def hook(_request: IncomingRequest) -> Reply | None:
        tried.set()
        return Reply(503, "service unavailable") if refusing.is_set() else None

    with FakeLoki(hook=hook) as loki:
        write_lines(log, [])
        first = agents(
            "tail", "--state-dir", str(state), "--log-level", "info", "--to", f"loki:{loki.url}",
            str(log),
        )  # fmt: skip
        wait_until(lambda: "agent started" in first.stderr, 30, "agent start")
        old = [f"old line {i:02d} " + "x" * 40 for i in range(20)]
        write_lines(log, old)
        wait_until(tried.is_set, 30, "a refused request")
        os.truncate(log, 0)
        wait_until(lambda: "file truncated" in first.stderr, 30, "the cut noticed")
        first.signal(signal.SIGTERM)  # stopping while the old lines are still out
        wait_until(lambda: "before the cut were delivered" in first.stderr, 30, "the tailer")
        refusing.clear()
        assert first.wait(60) == 0, first.stderr
        assert sorted(loki.lines()) == old  # delivered while stopping
        new = [f"new line {i:02d} " + "y" * 20 for i in range(60)]  # more bytes than the old
        write_lines(log, new)
        second = agents(
            "tail", "--state-dir", str(state), "--log-level", "info", "--to", f"loki:{loki.url}",
            str(log),
        )  # fmt: skip
        wait_until(lambda: len(loki.lines()) >= len(old) + len(new), 30, "the new lines")
        _stop(second)
        assert sorted(loki.lines()) == sorted(old + new)


def test_an_offset_saved_with_an_empty_files_fingerprint_is_not_resumed(
    tmp_path: Path, agents: Callable[..., AgentProcess]
) -> None:
    """A fingerprint covers at least what was read (a tailer takes it again while it reads
    past it), so an offset saved with the fingerprint of an empty file, which matches every
    file, can only come from a bug: the file is read from its start, not skipped."""
    log, state = tmp_path / "app.log", tmp_path / "state"
    write_lines(log, ["one", "two", "three"])
    _saved_state(state, log, offset=8, fingerprint=_fingerprint(b""))
    got = _lines_of_next_start(agents, log, state, 3)
    assert got == ["one", "two", "three"]


def test_a_followed_file_whose_content_was_replaced_is_read_from_its_start(
    tmp_path: Path, agents: Callable[..., AgentProcess]
) -> None:
    """Found by the model-based test (random mode): a file cut and written again while the
    agent waited on a sink, stopped more than a second later. Its checkpoint no longer
    matches, and its change is older than the last save, so it passed for an old file
    never seen, which ``start_at: end`` (the default) skips to its end: its lines were lost."""
    log, state = tmp_path / "app.log", tmp_path / "state"
    write_lines(log, ["one", "two", "three"])
    head = b"zero\n"  # what the checkpoint saw: other content, on this same file
    # Saved well after the file last changed.
    _saved_state(state, log, len(head), _fingerprint(head), saved_at=time.time() + 60)
    got = _lines_of_next_start(agents, log, state, 3)
    assert got == ["one", "two", "three"]


def test_a_file_rotated_away_after_the_last_scan_but_before_the_last_save_is_read(
    tmp_path: Path, agents: Callable[..., AgentProcess]
) -> None:
    """Found by the model-based test (random mode, under load): a file made by a rotation and
    rotated away again between the previous run's last scan and its last save (a stop waits
    up to the drain timeout for a sink) was never followed, and it changed before that save:
    taken as an old file, it was never read. The previous run's last scan time is saved with
    the checkpoints, and files changed since then are looked at."""
    log, state = tmp_path / "app.log", tmp_path / "state"
    write_lines(log, ["one"])
    rotated = tmp_path / "app.log.1"
    write_lines(rotated, ["missed one", "missed two"])  # unknown to the checkpoints
    head = log.read_bytes()
    now = time.time()  # saved long after the rotated file last changed, scanned before it
    saved = _saved_state(
        state, log, len(head), _fingerprint(head), saved_at=now + 30, scanned_at=now - 30
    )
    got = _lines_of_next_start(agents, log, state, 2)
    assert sorted(got) == ["missed one", "missed two"]
    assert json.loads(saved.read_text())["scanned_at"] >= now - 1  # this run's own last scan


def test_a_file_made_and_rotated_away_unseen_is_read_at_the_next_start(
    tmp_path: Path, agents: Callable[..., AgentProcess]
) -> None:
    """Found by the model-based test (random mode, under load): a file created under the
    watched name and rotated away before any scan of the previous run saw it, with no file
    under the name now. No checkpoint or scan knew the name; the rotated file is found by
    its name (the watched name plus a rotation suffix) and read."""
    log, state = tmp_path / "app.log", tmp_path / "state"
    rotated = tmp_path / "app.log.1"
    write_lines(rotated, ["unseen one", "unseen two"])
    _saved_state(state, None, scanned_at=time.time() - 30)
    got = _lines_of_next_start(agents, log, state, 2)  # the name has no file
    assert sorted(got) == ["unseen one", "unseen two"]
