"""Ack tracker, memory budget, checkpoints and retry policy: the rules that make it correct."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import orjson
import pytest

from logship.config.model import RetryConfig
from logship.pipeline.acks import AckTracker, JoinTicket
from logship.pipeline.budget import MemoryBudget
from logship.sinks.retry import RetryPolicy, parse_retry_after
from logship.sources.checkpoints import Checkpoint, CheckpointStore
from logship.sources.identity import fingerprint, fingerprint_matches


def test_offset_moves_only_over_a_delivered_prefix() -> None:
    released: list[int] = []
    tracker = AckTracker(released.append)
    f = tracker.file("s:1:2", "/x", "0:", 0)
    t1 = f.ticket(100, 10, sinks=2)
    t2 = f.ticket(200, 20, sinks=2)
    t2.done()
    t2.done()
    assert f.committed == 0  # t1 still owed by two sinks
    t1.done()
    assert f.committed == 0  # still owed by one
    t1.done()
    assert f.committed == 200
    assert sorted(released) == [10, 20]
    assert tracker.outstanding == 0


def test_join_ticket_acks_parent_once_when_all_parts_done() -> None:
    tracker = AckTracker(lambda n: None)
    f = tracker.file("k", "/x", "0:", 0)
    t = f.ticket(50, 1, sinks=1)
    j = JoinTicket(t, 2)
    j.done()
    assert f.committed == 0
    j.done()
    assert f.committed == 50


def test_ticket_with_no_sinks_is_done_at_once() -> None:
    tracker = AckTracker(lambda n: None)
    f = tracker.file("k", "/x", "0:", 0)
    f.ticket(10, 1, sinks=0)
    assert f.committed == 10


def test_budget_blocks_at_bound_and_wakes_on_release() -> None:
    async def scenario() -> list[str]:
        b = MemoryBudget(100)
        events: list[str] = []
        await b.acquire(80)

        async def second() -> None:
            await b.acquire(50)
            events.append("second acquired")

        task = asyncio.create_task(second())
        await asyncio.sleep(0)
        events.append(f"blocked used={b.used}")
        b.release(80)
        await asyncio.wait_for(task, 5)
        return events

    assert asyncio.run(scenario()) == ["blocked used=80", "second acquired"]


def test_budget_lets_one_oversized_request_through_alone() -> None:
    async def scenario() -> int:
        b = MemoryBudget(10)
        await asyncio.wait_for(b.acquire(1000), 5)
        return b.used

    assert asyncio.run(scenario()) == 1000


def test_budget_hold_counts_without_waiting_and_blocks_readers_until_released() -> None:
    """A held request body takes room at once, even past the bound, and gives it back."""

    async def scenario() -> list[str]:
        b = MemoryBudget(100)
        events: list[str] = []
        await b.acquire(60)
        b.hold(70)  # past the bound: holding never waits
        events.append(f"held used={b.used} peak={b.peak}")

        async def reader() -> None:
            await b.acquire(30)
            events.append(f"reader acquired used={b.used}")

        task = asyncio.create_task(reader())
        await asyncio.sleep(0)
        events.append(f"reader blocked={not task.done()}")
        b.release(70)
        await asyncio.wait_for(task, 5)
        return events

    assert asyncio.run(scenario()) == [
        "held used=130 peak=130",
        "reader blocked=True",
        "reader acquired used=90",
    ]


def test_checkpoint_store_round_trip(tmp_path: Path) -> None:
    s = CheckpointStore(tmp_path)
    s.update("a:1:2", Checkpoint("/var/log/a.log", 1234, "4:abcd", True, 1e12))
    s.save()
    data = orjson.loads((tmp_path / "checkpoints.json").read_bytes())
    assert data["version"] == 1
    again = CheckpointStore(tmp_path)
    cp = again.get("a:1:2")
    assert cp is not None and (cp.offset, cp.partial, cp.path) == (1234, True, "/var/log/a.log")
    assert not list(tmp_path.glob(".*.tmp"))


def test_corrupt_checkpoint_file_is_moved_aside(tmp_path: Path) -> None:
    (tmp_path / "checkpoints.json").write_text("{not json")
    s = CheckpointStore(tmp_path)
    assert s.entries == {}
    assert list(tmp_path.glob("checkpoints.corrupt-*"))


def test_fingerprint_tells_recreated_file_from_grown_file(tmp_path: Path) -> None:
    import os

    p = tmp_path / "f.log"
    p.write_bytes(b"first line\n")
    fd = os.open(p, os.O_RDONLY)
    fp = fingerprint(fd)
    os.close(fd)
    with open(p, "ab") as f:
        f.write(b"second line\n")
    fd = os.open(p, os.O_RDONLY)
    assert fingerprint_matches(fd, fp)  # same file, grown
    os.close(fd)
    p.write_bytes(b"other content\n")
    fd = os.open(p, os.O_RDONLY)
    assert not fingerprint_matches(fd, fp)  # same name (maybe inode), different file
    os.close(fd)


def test_backoff_is_full_jitter_under_a_growing_cap() -> None:
    policy = RetryPolicy(RetryConfig(initial_backoff=0.5, max_backoff=4), random.Random(1))
    for attempt, cap in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 4.0)]:
        delays = [policy.delay(attempt) for _ in range(200)]
        assert all(0 <= d <= cap for d in delays)
        assert max(delays) > cap * 0.8  # full jitter spreads over the whole range


def test_retry_after_wins_and_is_capped() -> None:
    policy = RetryPolicy(RetryConfig(max_retry_after=60))
    assert policy.delay(1, retry_after=7) == 7
    assert policy.delay(1, retry_after=600) == 60


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after("7") == 7.0
    when = datetime.now(UTC) + timedelta(seconds=30)
    parsed = parse_retry_after(format_datetime(when, usegmt=True))
    assert parsed is not None and 25 <= parsed <= 31
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_exhausted_by_attempts_or_time() -> None:
    p = RetryPolicy(RetryConfig(max_attempts=3))
    assert not p.exhausted(2, 1000)
    assert p.exhausted(3, 0)
    q = RetryPolicy(RetryConfig(max_elapsed=10))
    assert not q.exhausted(100, 9.9)
    assert q.exhausted(1, 10)
    assert not RetryPolicy(RetryConfig()).exhausted(10**6, 10**6)


@pytest.mark.parametrize("n", [0, 1])
def test_wait_idle(n: int) -> None:
    async def scenario() -> bool:
        tracker = AckTracker(lambda _: None)
        f = tracker.file("k", "/x", "0:", 0)
        tickets = [f.ticket(10, 1, sinks=1) for _ in range(n)]
        asyncio.get_running_loop().call_later(0.01, lambda: [t.done() for t in tickets])
        return await tracker.wait_idle(5)

    assert asyncio.run(scenario())
