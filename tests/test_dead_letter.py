"""The shared HTTP driver's dead-letter paths, for Loki and Elasticsearch alike."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx

from logship.config.model import DeadLetterConfig, ElasticsearchSinkConfig, LokiSinkConfig
from logship.parsing.batch import Batch, SourceInfo
from logship.pipeline.acks import AckTracker
from logship.sinks.deadletter import DeadLetterFile
from logship.sinks.elasticsearch import ElasticsearchSink
from logship.sinks.http import HttpSink
from logship.sinks.loki import LokiSink
from logship.telemetry import Telemetry


def tracked_batch(lines: list[bytes]) -> tuple[Batch, AckTracker]:
    tracker = AckTracker(lambda n: None)
    acks = tracker.file("app:1:2", "/var/log/app.log", "0:x", 0)
    info = SourceInfo("app", "/var/log/app.log", "auto", {}, identity="app:1:2")
    end = sum(len(x) + 1 for x in lines)
    b = Batch(info, lines, 0, end, 1_764_410_000 * 10**9, Telemetry())
    b.ticket = acks.ticket(end, end, 1)
    return b, tracker


def run(s: HttpSink, b: Batch) -> None:
    async def go() -> None:
        try:
            await s.deliver([b])
        finally:
            await s.aclose()

    asyncio.run(go())


def dead_letters(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_loki_single_record_too_large_is_dead_lettered_and_acknowledged(tmp_path: Path) -> None:
    dl = DeadLetterFile(DeadLetterConfig(path=tmp_path / "dl.jsonl"))
    sizes: list[int] = []

    def handler(req: httpx.Request) -> httpx.Response:
        sizes.append(len(req.content))
        big = len(req.content) > 1000
        return httpx.Response(413 if big else 204)

    cfg = LokiSinkConfig(type="loki", url="http://loki", encoding="json")
    s = LokiSink("loki", cfg, Telemetry(), httpx.MockTransport(handler), dl)
    lines = [b'{"msg":"small %d"}' % i for i in range(3)] + [b'{"msg":"' + b"x" * 5000 + b'"}']
    b, tracker = tracked_batch(lines)
    run(s, b)
    (entry,) = dead_letters(tmp_path / "dl.jsonl")
    assert entry["sink"] == "loki" and "too large" in entry["reason"]
    assert entry["record"]["message"] == "x" * 5000
    assert entry["record"]["source"] == {"path": "/var/log/app.log", "offset": 54}
    assert tracker.files["app:1:2"].committed == b.end_offset  # acknowledged
    assert s.telemetry.sinks["loki"].dead_lettered_records == 1
    assert s.telemetry.sinks["loki"].sent_records == 3


def test_records_given_up_on_are_dead_lettered(tmp_path: Path) -> None:
    dl = DeadLetterFile(DeadLetterConfig(path=tmp_path / "dl.jsonl"))
    calls = 0

    def handler(req: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(503, text="<html>busy</html>")

    cfg = ElasticsearchSinkConfig.model_validate(
        {
            "type": "elasticsearch",
            "url": "http://es",
            "retry": {"initial_backoff": "1ms", "max_attempts": 2},
        }
    )
    s = ElasticsearchSink("es", cfg, Telemetry(), httpx.MockTransport(handler), dl)
    b, tracker = tracked_batch([b'{"msg":"a"}', b'{"msg":"b"}'])
    run(s, b)
    assert calls == 2
    entries = dead_letters(tmp_path / "dl.jsonl")
    assert [e["record"]["message"] for e in entries] == ["a", "b"]
    assert all("gave up after 2 attempt(s): 503" in e["reason"] for e in entries)
    assert tracker.files["app:1:2"].committed == b.end_offset
    assert s.undelivered is not None and "dead-letter" in s.undelivered


def test_without_a_dead_letter_file_refusals_are_counted(tmp_path: Path) -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        body = {"errors": True, "items": [{"create": {"status": 400, "error": {"type": "x"}}}]}
        return httpx.Response(200, json=body)

    cfg = ElasticsearchSinkConfig(type="elasticsearch", url="http://es")
    s = ElasticsearchSink("es", cfg, Telemetry(), httpx.MockTransport(handler))
    b, tracker = tracked_batch([b'{"msg":"a"}'])
    run(s, b)
    assert s.telemetry.sinks["es"].rejected_records == 1
    assert s.telemetry.sinks["es"].dead_lettered_records == 0
    assert tracker.files["app:1:2"].committed == b.end_offset
