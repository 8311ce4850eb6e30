"""The real `logship` process against in-process fake Elasticsearch servers.

The fake (tests/fakes/elasticsearch.py) decodes every ``_bulk`` body with the ``json``
module and answers like Elasticsearch 8, so these tests check the wire format, the
per-item handling and the bookkeeping independently of logship's own encoder.
"""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import AgentProcess, wait_until, write_lines
from fakes.elasticsearch import FakeElasticsearch, reserved_port


@pytest.fixture
def es() -> Iterator[FakeElasticsearch]:
    with FakeElasticsearch() as server:
        yield server


def json_lines(n: int, start: int = 0, word: str = "line") -> list[str]:
    base = time.time()
    out = []
    for i in range(start, start + n):
        t = base + i / 1e6
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1e6) % 10**6:06d}Z"
        out.append(json.dumps({"ts": ts, "level": "INFO", "msg": f"{word} {i}", "i": i}))
    return out


def sink_yaml(url: str, **extra: Any) -> str:
    cfg = {
        "type": "elasticsearch",
        "url": url,
        "batch": {"linger": "50ms", "max_entries": 500},
        "retry": {"initial_backoff": "50ms", "max_backoff": "200ms", "max_attempts": 20},
        **extra,
    }
    return json.dumps(cfg)


def write_config(tmp_path: Path, log: Path, sinks: dict[str, str], **top: Any) -> Path:
    cfg = tmp_path / "logship.yaml"
    lines = [
        "sources:",
        f'  app: {{include: ["{log}"], start_at: beginning, labels: {{team: shop}}}}',
        "sinks:",
        *(f"  {name}: {spec}" for name, spec in sinks.items()),
        *(f"{k}: {json.dumps(v)}" for k, v in top.items()),
    ]
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


def test_every_line_arrives_once_with_its_fields(
    tmp_path: Path, es: FakeElasticsearch, agents: Callable[..., AgentProcess]
) -> None:
    log = tmp_path / "app.log"
    lines = [*json_lines(3000), "a plain text line"]
    write_lines(log, lines)
    a = agents("tail", "--once", "--to", f"elasticsearch:{es.url}", "--label", "app=t", str(log))
    assert a.wait(120) == 0, a.stderr
    docs = es.docs
    assert len(docs) == len(lines)
    assert Counter(es.messages()) == Counter([f"line {i}" for i in range(3000)] + [lines[-1]])
    first = docs[0]
    src = json.loads(lines[0])
    assert first.source["@timestamp"] == src["ts"]
    assert first.index == "logs-" + src["ts"][:10].replace("-", ".")
    assert first.source["log"]["level"] == "info"
    assert first.source["log"]["file"]["path"] == str(log)
    assert first.source["log"]["offset"] == 0
    assert first.source["labels"] == {"app": "t"}
    assert first.source["fields"] == src
    assert docs[-1].source["fields"] == {}
    for r in es.requests:
        assert r.query["filter_path"] == ["errors,items.*.status,items.*.error"]
        assert r.headers["content-type"] == "application/x-ndjson"


def test_item_429_is_retried_alone_and_never_duplicated(
    tmp_path: Path, es: FakeElasticsearch, agents: Callable[..., AgentProcess]
) -> None:
    log = tmp_path / "app.log"
    lines = json_lines(200)
    write_lines(log, lines)
    es.fail_items(1, 429)  # the very first item of the first request
    cfg = write_config(tmp_path, log, {"es": sink_yaml(es.url)})
    a = agents("run", "--once", "--config", str(cfg))
    assert a.wait(120) == 0, a.stderr
    assert Counter(es.messages()) == Counter(f"line {i}" for i in range(200))
    assert es.conflicts == 0
    reqs = es.requests
    first_id = reqs[0].ids[0]
    assert reqs[0].item_statuses[0] == 429
    # The failed item went again alone, in a request of its own, and was stored then.
    retries = [r for r in reqs if first_id in r.ids and r is not reqs[0]]
    assert len(retries) == 1
    assert retries[0].ids == [first_id]
    assert retries[0].item_statuses == [201]


def test_replay_after_restart_answers_409_and_counts_as_delivered(
    tmp_path: Path, es: FakeElasticsearch, agents: Callable[..., AgentProcess]
) -> None:
    log = tmp_path / "app.log"
    lines = json_lines(500)
    write_lines(log, lines)
    a = agents("tail", "--once", "--to", f"elasticsearch:{es.url}", str(log))
    assert a.wait(120) == 0, a.stderr
    assert len(es.docs) == 500
    # No checkpoints: the second run reads the whole file again, as a restart after a
    # crash replays what was not checkpointed. The same ids answer 409: no duplicates.
    b = agents("tail", "--once", "--to", f"elasticsearch:{es.url}", str(log))
    assert b.wait(120) == 0, b.stderr
    assert len(es.docs) == 500
    assert es.conflicts == 500
    assert Counter(es.messages()) == Counter(f"line {i}" for i in range(500))


def test_413_splits_the_request_in_halves(
    tmp_path: Path, agents: Callable[..., AgentProcess]
) -> None:
    log = tmp_path / "app.log"
    lines = json_lines(400)
    write_lines(log, lines)
    with FakeElasticsearch(max_content_length=40_000) as es:
        cfg = write_config(tmp_path, log, {"es": sink_yaml(es.url)})
        a = agents("run", "--once", "--config", str(cfg))
        assert a.wait(120) == 0, a.stderr
        assert Counter(es.messages()) == Counter(f"line {i}" for i in range(400))
        statuses = [r.status for r in es.requests]
        assert 413 in statuses
        assert all(len(r.ids) * 100 < 40_000 for r in es.requests if r.status == 200)


def test_single_document_too_large_goes_to_the_dead_letter_file(
    tmp_path: Path, agents: Callable[..., AgentProcess]
) -> None:
    log = tmp_path / "app.log"
    big = json.dumps({"msg": "big " + "x" * 5000})
    lines = [*json_lines(5), big, *json_lines(5, start=5)]
    write_lines(log, lines)
    dlq = tmp_path / "dead.jsonl"
    with FakeElasticsearch(max_content_length=4000) as es:
        cfg = write_config(tmp_path, log, {"es": sink_yaml(es.url)}, dead_letter={"path": str(dlq)})
        a = agents("run", "--once", "--config", str(cfg))
        assert a.wait(120) == 1, a.stderr  # --once reports what was not delivered
        assert "dead-letter" in a.stderr
        assert Counter(es.messages()) == Counter(f"line {i}" for i in range(10))
    (entry,) = [json.loads(x) for x in dlq.read_text().splitlines()]
    assert entry["sink"] == "es"
    assert "too large" in entry["reason"]
    assert entry["record"]["message"] == json.loads(big)["msg"]


def test_item_400_is_dead_lettered_with_the_reason_and_the_rest_delivered(
    tmp_path: Path, agents: Callable[..., AgentProcess]
) -> None:
    log = tmp_path / "app.log"
    state = tmp_path / "state"
    lines = [*json_lines(50), *json_lines(2, start=50, word="bad"), *json_lines(50, start=52)]
    write_lines(log, lines)
    dlq = tmp_path / "dead.jsonl"

    def reject(doc: dict[str, Any]) -> bool:
        return str(doc["message"]).startswith("bad")

    with FakeElasticsearch(reject_when=reject) as es:
        cfg = write_config(
            tmp_path,
            log,
            {"es": sink_yaml(es.url)},
            dead_letter={"path": str(dlq)},
            checkpoint_dir=str(state),
        )
        a = agents("run", "--once", "--config", str(cfg))
        assert a.wait(120) == 1, a.stderr
        assert "rejected 2 record(s)" in a.stderr
        assert len(es.docs) == 100
        # Each refused item was sent once: a 400 is not retried.
        sent = Counter(i for r in es.requests for i in r.ids)
        assert set(sent.values()) == {1}
        entries = [json.loads(x) for x in dlq.read_text().splitlines()]
        assert sorted(e["record"]["message"] for e in entries) == ["bad 50", "bad 51"]
        for e in entries:
            assert e["sink"] == "es"
            assert "document_parsing_exception" in e["reason"]
            assert e["time"].endswith("Z")
            assert e["record"]["log"]["file"]["path"] == str(log)
        # The checkpoint moved past the dead-lettered lines: a restart sends nothing.
        before = len(es.requests)
        b = agents("run", "--once", "--config", str(cfg))
        assert b.wait(120) == 0, b.stderr
        assert len(es.requests) == before


def test_fan_out_one_sink_down_the_other_keeps_delivering(
    tmp_path: Path, es: FakeElasticsearch, agents: Callable[..., AgentProcess]
) -> None:
    log = tmp_path / "app.log"
    state = tmp_path / "state"
    lines = json_lines(300)
    write_lines(log, lines)
    with reserved_port() as down_port:  # refused while the first agent runs
        cfg = write_config(
            tmp_path,
            log,
            {"up": sink_yaml(es.url), "down": sink_yaml(f"http://127.0.0.1:{down_port}")},
            checkpoint_dir=str(state),
            drain_timeout="1s",
        )
        a = agents("run", "--config", str(cfg))
        wait_until(lambda: len(es.docs) == 300, 60, "the healthy sink to get every line")
        write_lines(log, json_lines(100, start=300))
        wait_until(lambda: len(es.docs) == 400, 60, "lines written later, still delivered")
        a.signal(signal.SIGTERM)
        assert a.wait(60) == 0, a.stderr
    # The down sink owed everything: the checkpoint did not move past what it missed.
    saved = json.loads((state / "checkpoints.json").read_text())
    assert all(f["offset"] == 0 for f in saved["files"].values())
    with FakeElasticsearch(port=down_port) as late:
        b = agents("run", "--once", "--config", str(cfg))
        assert b.wait(120) == 0, b.stderr
        assert Counter(late.messages()) == Counter(f"line {i}" for i in range(400))
    # The healthy sink got the replay too, answered 409: still no duplicates.
    assert len(es.docs) == 400
    assert es.conflicts == 400


def test_whole_request_429_waits_for_retry_after(
    tmp_path: Path, es: FakeElasticsearch, agents: Callable[..., AgentProcess]
) -> None:
    log = tmp_path / "app.log"
    write_lines(log, json_lines(20))
    es.fail_next(1, 429, headers={"Retry-After": "1"})
    cfg = write_config(tmp_path, log, {"es": sink_yaml(es.url)})
    a = agents("run", "--once", "--log-level", "warning", "--config", str(cfg))
    assert a.wait(120) == 0, a.stderr
    assert len(es.docs) == 20
    (retry,) = [json.loads(x) for x in a.stderr.splitlines() if "retrying" in x]
    assert retry["delay_s"] == 1.0  # the server's Retry-After, not a jittered backoff
    assert "es_rejected_execution_exception" in retry["reason"]


def test_401_is_retried_with_a_hint_then_dead_lettered_at_the_retry_limit(
    tmp_path: Path, agents: Callable[..., AgentProcess]
) -> None:
    log = tmp_path / "app.log"
    write_lines(log, json_lines(20))
    dlq = tmp_path / "dead.jsonl"
    with FakeElasticsearch(expected_auth="ApiKey cmlnaHQ=") as es:
        bad = sink_yaml(
            es.url, api_key="d3Jvbmc=", retry={"initial_backoff": "10ms", "max_attempts": 3}
        )
        cfg = write_config(tmp_path, log, {"es": bad}, dead_letter={"path": str(dlq)})
        a = agents("run", "--once", "--config", str(cfg))
        assert a.wait(120) == 1
        assert "401 security_exception" in a.stderr and "check the credentials" in a.stderr
        assert es.docs == []
        assert [r.status for r in es.requests] == [401, 401, 401]
    entries = [json.loads(x) for x in dlq.read_text().splitlines()]
    assert sorted(e["record"]["message"] for e in entries) == sorted(f"line {i}" for i in range(20))
    assert all("gave up after 3 attempt(s): 401" in e["reason"] for e in entries)
