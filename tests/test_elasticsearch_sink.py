"""The Elasticsearch encoder and classifier as pure functions, and the sink in-process."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from fakes.elasticsearch import FakeElasticsearch, filter_response
from hypothesis import assume, given, settings
from hypothesis import strategies as hs

from logship.config import ConfigError, build_config
from logship.config.model import DeadLetterConfig, ElasticsearchSinkConfig
from logship.parsing.batch import Batch, SourceInfo
from logship.sinks.deadletter import DeadLetterFile
from logship.sinks.elasticsearch import ElasticsearchSink, classify
from logship.sinks.outcome import Verdict
from logship.telemetry import Telemetry

READ_NS = 1_764_410_000 * 10**9  # 2025-11-29T09:53:20Z


def make_batch(
    lines: list[bytes], fmt: str = "auto", identity: str = "app:1:2", start: int = 0
) -> Batch:
    info = SourceInfo("app", "/var/log/app.log", fmt, {"team": "a"}, identity=identity)
    end = start + sum(len(x) + 1 for x in lines)
    return Batch(info, lines, start, end, READ_NS, Telemetry())


def sink(**cfg: Any) -> ElasticsearchSink:
    model = ElasticsearchSinkConfig.model_validate(
        {"type": "elasticsearch", "url": "http://127.0.0.1:9", **cfg}
    )
    return ElasticsearchSink("es", model, Telemetry())


def decode(body: bytes) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    assert body.endswith(b"\n")
    rows = [json.loads(x) for x in body.decode().split("\n")[:-1]]
    return list(zip(rows[0::2], rows[1::2], strict=True))


LINES = [
    b'{"ts":"2026-11-28T23:59:59.5Z","level":"WARNING","msg":"say \\"hi\\"\\n","n":1}',
    b"plain text \xe2\x9c\x93",
    b'{"time":"2026-11-29 00:00:01","lvl":"err","message":"second"}',
    b'{"broken": ',
    b'{"ts":1764374400123,"msg":42}',
]


def test_documents_carry_timestamp_message_level_fields_labels_and_path() -> None:
    s = sink()
    ops = decode(s.encode([make_batch(LINES)]).body)
    assert [a["create"]["_index"] for a, _ in ops] == [
        "logs-2026.11.28",
        "logs-2025.11.29",  # no timestamp: the read time
        "logs-2026.11.29",
        "logs-2025.11.29",
        "logs-2025.11.29",  # epoch milliseconds
    ]
    docs = [d for _, d in ops]
    assert docs[0]["@timestamp"] == "2026-11-28T23:59:59.5Z"
    assert docs[0]["message"] == 'say "hi"\n'
    assert docs[0]["log"] == {"level": "warn", "offset": 0, "file": {"path": "/var/log/app.log"}}
    assert docs[0]["labels"] == {"team": "a"}
    assert docs[0]["fields"] == json.loads(LINES[0])
    assert docs[1]["message"] == "plain text ✓"
    assert docs[1]["fields"] == {} and docs[1]["log"]["level"] is None
    assert docs[1]["@timestamp"] == "2025-11-29T09:53:20.000000000Z"
    assert docs[1]["log"]["offset"] == len(LINES[0]) + 1
    assert docs[2]["@timestamp"] == "2026-11-29T00:00:01Z"
    assert (docs[2]["message"], docs[2]["log"]["level"]) == ("second", "error")
    assert docs[3]["message"] == '{"broken": ' and docs[3]["fields"] == {}
    assert docs[4]["@timestamp"] == "2025-11-29T00:00:00.123000000Z"
    assert docs[4]["message"] == LINES[4].decode()  # msg is not text: the whole line


def test_a_malformed_line_is_counted() -> None:
    b = make_batch(LINES)
    sink().encode([b])
    assert b.telemetry is not None
    assert b.telemetry.sources["app"].malformed == 1


def test_raw_format_sends_lines_as_messages() -> None:
    ops = decode(sink().encode([make_batch([b'{"a":1}', b"x"], fmt="raw")]).body)
    assert [d["message"] for _, d in ops] == ['{"a":1}', "x"]
    assert all(d["fields"] == {} for _, d in ops)


def test_ids_are_stable_and_name_file_offset_and_content() -> None:
    lines = [b'{"msg":"a"}', b'{"msg":"b"}']
    ids = [a["create"]["_id"] for a, _ in decode(sink().encode([make_batch(lines)]).body)]
    again = [a["create"]["_id"] for a, _ in decode(sink().encode([make_batch(lines)]).body)]
    assert ids == again and len(set(ids)) == 2
    other_file = decode(sink().encode([make_batch(lines, identity="app:1:3")]).body)
    assert not set(ids) & {a["create"]["_id"] for a, _ in other_file}
    moved = decode(sink().encode([make_batch(lines, start=100)]).body)
    assert not set(ids) & {a["create"]["_id"] for a, _ in moved}
    # A recycled inode with other content at the same offsets gets other ids.
    recycled = decode(sink().encode([make_batch([b'{"msg":"c"}', b'{"msg":"d"}'])]).body)
    assert not set(ids) & {a["create"]["_id"] for a, _ in recycled}


def test_fixed_index_and_item_subsets() -> None:
    s = sink(index="logs-app-default")
    req = s.encode([make_batch([b'{"msg":"%d"}' % i for i in range(5)])])
    assert req.records == 5 and req.items is not None
    assert {a["create"]["_index"] for a, _ in decode(req.body)} == {"logs-app-default"}
    sub = req.items.subset([1, 3])
    assert [d["message"] for _, d in decode(sub.body)] == ["1", "3"]
    assert sub.items is not None
    assert [d["message"] for _, d in decode(sub.items.subset([1]).body)] == ["3"]
    (doc,) = sub.items.documents([0])
    assert json.loads(doc)["message"] == "1"


def test_gzip_body() -> None:
    import gzip

    req = sink(compression="gzip").encode([make_batch([b'{"msg":"z"}'])])
    assert req.headers["Content-Encoding"] == "gzip"
    assert decode(gzip.decompress(req.body))[0][1]["message"] == "z"


def _items(*statuses: int, flavor: str = "es") -> bytes:
    items = []
    for st in statuses:
        body: dict[str, Any] = {"status": st}
        if st == 429:
            kind = (
                "es_rejected_execution_exception"
                if flavor == "es"
                else "rejected_execution_exception"
            )
            body["error"] = {"type": kind, "reason": "rejected execution"}
        elif st == 409:
            body["error"] = {"type": "version_conflict_engine_exception", "reason": "exists"}
        elif st >= 400:
            body["error"] = {"type": "document_parsing_exception", "reason": "failed to parse"}
        items.append({"create": body})
    errors = any(s >= 300 for s in statuses)
    return json.dumps({"errors": errors, "items": items}).encode()


H = httpx.Headers()


@pytest.mark.parametrize(
    ("status", "body", "verdict"),
    [
        (200, _items(201, 201), Verdict.DELIVERED),
        (200, b'{"took":3,"errors":false,"items":[{"create":{"status":201}}]}', Verdict.DELIVERED),
        (200, b"{}", Verdict.DELIVERED),  # filter_path=items.*.error on full success
        (200, _items(201, 409), Verdict.DELIVERED),  # 409: delivered before
        (200, _items(201, 429), Verdict.PARTIAL),
        (200, _items(429, 201, flavor="os"), Verdict.PARTIAL),  # OpenSearch: by status
        (200, json.dumps({"errors": True, "items": []}).encode(), Verdict.RETRY),
        (200, b"<html>proxy</html>", Verdict.RETRY),
        (413, b"", Verdict.SPLIT),
        (429, b'{"error":{"type":"es_rejected_execution_exception"},"status":429}', Verdict.RETRY),
        (503, b"<html>Service Unavailable</html>", Verdict.RETRY),
        (
            401,
            b'{"error":{"type":"security_exception","reason":"missing"},"status":401}',
            Verdict.RETRY,
        ),
        (
            400,
            b'{"error":{"type":"illegal_argument_exception","reason":"x"},"status":400}',
            Verdict.REJECTED,
        ),
    ],
)
def test_classify(status: int, body: bytes, verdict: Verdict) -> None:
    assert classify(status, H, body, 2).verdict is verdict


def test_classify_maps_items_by_position() -> None:
    out = classify(200, H, _items(201, 429, 400, 503, 409, 201), 6)
    assert out.verdict is Verdict.PARTIAL
    assert out.retry_items == (1, 3)
    assert [p for p, _ in out.failed_items] == [2]
    assert "document_parsing_exception" in out.failed_items[0][1]


def test_classify_reasons() -> None:
    out = classify(429, httpx.Headers({"Retry-After": "7"}), b"", 3)
    assert out.retry_after == 7.0
    out = classify(401, H, b'{"error":{"type":"security_exception","reason":"no"}}', 3)
    assert "security_exception" in out.reason and "credentials" in out.reason
    out = classify(400, H, b'{"error":{"type":"illegal_argument_exception","reason":"nl"}}', 3)
    assert out.rejected == 3 and "illegal_argument_exception: nl" in out.reason


def test_fake_filter_path_prunes_like_elasticsearch() -> None:
    resp = {"took": 1, "errors": False, "items": [{"create": {"_id": "a", "status": 201}}]}
    assert filter_response(resp, "items.*.error") == {}
    assert filter_response(resp, "errors,items.*.status,items.*.error") == {
        "errors": False,
        "items": [{"create": {"status": 201}}],
    }


def deliver(s: ElasticsearchSink, batch: Batch) -> None:
    async def go() -> None:
        try:
            await s.deliver([batch])
        finally:
            await s.aclose()

    asyncio.run(go())


@pytest.mark.parametrize("flavor", ["elasticsearch", "opensearch"])
def test_api_key_basic_and_gzip_against_the_fake(flavor: str, tmp_path: Path) -> None:
    lines = [b'{"msg":"m%d"}' % i for i in range(20)]
    with FakeElasticsearch(flavor=flavor, expected_auth="ApiKey c2VjcmV0") as es:
        s = sink(url=es.url, api_key="c2VjcmV0", compression="gzip")
        deliver(s, make_batch(lines))
        assert sorted(es.messages()) == sorted(f"m{i}" for i in range(20))
    key_file = tmp_path / "key"
    key_file.write_text("ZmlsZQ==\n")
    with FakeElasticsearch(flavor=flavor, expected_auth="ApiKey ZmlsZQ==") as es:
        deliver(sink(url=es.url, api_key_file=str(key_file)), make_batch(lines))
        assert len(es.docs) == 20
    basic = "Basic " + base64.b64encode(b"u:p").decode()
    with FakeElasticsearch(flavor=flavor, expected_auth=basic) as es:
        deliver(sink(url=es.url, basic_auth={"username": "u", "password": "p"}), make_batch(lines))
        assert len(es.docs) == 20


def test_the_body_is_counted_in_the_memory_budget_while_in_flight() -> None:
    """Tailers see a request body (~3x its lines) as used room until it is delivered."""
    from logship.pipeline.budget import MemoryBudget

    seen: list[tuple[int, int]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append((budget.used, len(request.content)))
        return httpx.Response(200, json={"errors": False, "items": []})

    budget = MemoryBudget(1 << 20)
    model = ElasticsearchSinkConfig.model_validate({"type": "elasticsearch", "url": "http://es"})
    s = ElasticsearchSink("es", model, Telemetry(), httpx.MockTransport(answer))
    s.budget = budget
    deliver(s, make_batch([b'{"msg":"m%d","level":"info"}' % i for i in range(50)]))
    assert len(seen) == 1 and seen[0][0] == seen[0][1] > 0
    assert budget.used == 0 and budget.peak == seen[0][1]


def test_a_server_error_item_is_resent_alone(tmp_path: Path) -> None:
    with FakeElasticsearch() as es:
        es.fail_items(2, 503)
        s = sink(url=es.url, retry={"initial_backoff": "10ms"})
        deliver(s, make_batch([b'{"msg":"m%d"}' % i for i in range(6)]))
        assert sorted(es.messages()) == [f"m{i}" for i in range(6)]
        assert [len(r.ids) for r in es.requests] == [6, 2]
        assert s.telemetry.sinks["es"].sent_records == 6


def test_dead_letter_file_rotates_and_keeps_max_files(tmp_path: Path) -> None:
    path = tmp_path / "dl" / "dead.jsonl"
    dl = DeadLetterFile(DeadLetterConfig(path=path, max_bytes=300, max_files=2))
    for i in range(12):
        assert dl.write("es", f"reason {i}", [b'{"n":%d}' % i])
    names = sorted(p.name for p in path.parent.iterdir())
    assert names == ["dead.jsonl", "dead.jsonl.1", "dead.jsonl.2"]
    last = [json.loads(x) for x in path.read_text().splitlines()][-1]
    assert last["record"] == {"n": 11} and last["reason"] == "reason 11" and last["sink"] == "es"
    assert all(p.stat().st_size <= 300 for p in path.parent.iterdir())


def test_config_rejects_bad_index_and_two_auth_methods() -> None:
    base = {"sources": {"a": {"include": ["x"]}}}
    with pytest.raises(ConfigError, match="index names"):
        build_config(
            {**base, "sinks": {"e": {"type": "elasticsearch", "url": "http://h", "index": "Logs"}}},
            "test",
        )
    with pytest.raises(ConfigError, match="choose one authentication"):
        build_config(
            {
                **base,
                "sinks": {
                    "e": {
                        "type": "elasticsearch",
                        "url": "http://h",
                        "api_key": "k",
                        "bearer_token": "t",
                    }
                },
            },
            "test",
        )


ODD_LINES = [
    b'{"level":null,"lvl":"warn","msg":"null level wins, as in the normalized record"}',
    b'{"severity":"CRITICAL","message":"from message"}',
    b'{"msg":{"nested":1},"message":"fallback to message"}',
    b'{"a":{"msg":"nested msg is not the message"}}',
    b'{"level":["list"],"msg":"unhashable level"}',
    b'{"level":true,"msg":"bool level"}',
    b'{"level":1,"msg":"number level"}',
    b'{"msg":"a","x":[1,}',
    b"   ",
    b'{"msg":"trailing"} x',
    b'{"msg":"\\u00e9\\t\\"q\\""}',
]


@pytest.mark.parametrize("fmt", ["auto", "json"])
def test_message_and_level_match_the_normalized_record(fmt: str) -> None:
    from logship.parsing.records import normalize_records

    b = make_batch(ODD_LINES + LINES, fmt=fmt)
    ops = decode(sink().encode([b]).body)
    reference = make_batch(ODD_LINES + LINES, fmt=fmt)
    records = normalize_records(reference)
    assert reference.telemetry is not None
    malformed = reference.telemetry.sources["app"].malformed
    assert [d["message"] for _, d in ops] == [r["message"] for r in records]
    assert [d["log"]["level"] for _, d in ops] == [r["level"] for r in records]
    assert [d["fields"] for _, d in ops] == [r["fields"] for r in records]
    assert b.telemetry is not None
    assert b.telemetry.sources["app"].malformed == malformed


def test_example_config_is_valid() -> None:
    from logship.config import load_config

    cfg = load_config(Path(__file__).parent.parent / "configs" / "sidecar-elasticsearch.yaml")
    es = cfg.sinks["es"]
    assert isinstance(es, ElasticsearchSinkConfig) and es.index == "logs-%Y.%m.%d"
    assert cfg.dead_letter.path == Path("/var/lib/logship/dead-letter.jsonl")


_values = hs.recursive(
    hs.none()
    | hs.booleans()
    | hs.integers(-(2**70), 2**70)
    | hs.floats(allow_nan=False, allow_infinity=False)
    | hs.text(),
    lambda inner: hs.lists(inner, max_size=3) | hs.dictionaries(hs.text(max_size=5), inner),
    max_leaves=5,
)
_keys = hs.sampled_from(["msg", "message", "level", "lvl", "severity", "ts", "x", "é"])
_json_line = hs.builds(
    lambda obj, ascii_only, pad: pad + json.dumps(obj, ensure_ascii=ascii_only).encode(),
    hs.dictionaries(
        _keys,
        _values
        | hs.sampled_from(["info", "WARN", " Error ", "", "débug"])
        | hs.just("2026-11-28T12:00:00.5Z"),
        max_size=5,
    ),
    hs.booleans(),
    hs.sampled_from([b"", b" "]),
)
_odd_line = hs.sampled_from(
    [
        b"not json",
        b'{"msg":"a","x":[1,}',
        b"[1,2]",
        b'"just a string"',
        b"",
        b'{"msg":"\xff bad utf-8"}',
        b'{"msg":"\xed\xa0\x80 surrogate"}',
        b'{"other":"\xc3\xa9","msg":"ok"}',
        b'{"msg":"\\u00e9\\ud83d\\ude00\\/"}',
        b'{"msg":1e999}',
        b'{"msg":"x"} trailing',
        b'{"level":1,"msg":"n"}',
        b'{"level":true,"msg":"b"}',
        # Values under keys the document does not use are still decoded: kept raw as before.
        b'{"msg":"a","level":"info","message":1e999}',
        b'{"msg":"a","level":"info","lvl":1e999}',
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    lines=hs.lists(_json_line | _odd_line, min_size=1, max_size=12),
    fmt=hs.sampled_from(["auto", "json", "raw"]),
)
def test_documents_are_those_of_the_previous_encoder(lines: list[bytes], fmt: str) -> None:
    """The faster encoder's bulk body decodes to the same actions and documents."""
    import es_previous_encoder

    new, old = make_batch(lines, fmt=fmt), make_batch(lines, fmt=fmt)
    body = sink().encode([new]).body
    try:
        before = es_previous_encoder.encode("logs-%Y.%m.%d", [old])
    except (ValueError, OverflowError):  # a time beyond year 9999: see the test below
        assume(False)
    rows = [json.loads(x) for x in body.split(b"\n")[:-1]]
    assert rows == [json.loads(x) for x in before.split(b"\n")[:-1]]
    assert new.telemetry is not None and old.telemetry is not None
    assert new.telemetry.sources.get("app") == old.telemetry.sources.get("app")


def test_an_epoch_beyond_year_9999_is_clamped_not_fatal() -> None:
    ops = decode(sink().encode([make_batch([b'{"ts":1e23,"msg":"far"}', b'{"ts":-1e22}'])]).body)
    first, year_one = (a["create"]["_index"] for a, _ in ops)
    assert first == "logs-9999.12.31" and year_one.endswith(".01.01")
    assert ops[0][1]["@timestamp"].startswith("9999-12-31T23:59:59.")
    assert ops[0][1]["message"] == "far"


@pytest.mark.parametrize("fmt", ["auto", "json"])
def test_a_deeply_nested_line_is_kept_raw_not_a_failed_batch(fmt: str) -> None:
    """msgspec runs out of stack on deep nesting; the line is malformed, the batch goes."""
    deep = b'{"a":' * 3000 + b"1" + b"}" * 3000
    b = make_batch([deep, b'{"msg":"next"}'], fmt=fmt)
    body = sink().encode([b]).body
    actions = body.split(b"\n")[:-1]
    assert len(actions) == 4  # two documents, each with its action line
    assert json.loads(actions[3])["message"] == "next"
    assert b.telemetry is not None and b.telemetry.sources["app"].malformed == 1


@settings(max_examples=100, deadline=None)
@given(
    first=hs.lists(_json_line | _odd_line, min_size=0, max_size=6),
    second=hs.lists(_json_line | _odd_line, min_size=0, max_size=6),
)
def test_a_request_of_two_batches_is_the_previous_encoders_records_in_order(
    first: list[bytes], second: list[bytes]
) -> None:
    """Each batch's records open with the previous record's end: the seams are exact."""
    import es_previous_encoder

    def batches() -> list[Batch]:
        a = make_batch(first)
        b = make_batch(second, identity="app:1:9", start=a.end_offset)
        return [a, b]

    body = sink().encode(batches()).body
    try:
        before = es_previous_encoder.encode("logs-%Y.%m.%d", batches())
    except (ValueError, OverflowError):  # a time beyond year 9999
        assume(False)
    assert body.count(b"\n") == 2 * (len(first) + len(second))
    rows = [json.loads(x) for x in body.split(b"\n")[:-1]]
    assert rows == [json.loads(x) for x in before.split(b"\n")[:-1]]


def test_a_line_without_level_in_a_batch_of_levels_takes_lvl_or_severity() -> None:
    """The first level key present wins, line by line, in a batch where most have ``level``."""
    lines = [
        b'{"msg":"a","level":"warn"}',
        b'{"msg":"b","lvl":"error"}',
        b'{"msg":"c","severity":"debug","level":null}',
        b'{"msg":"d","severity":"info"}',
    ]
    docs = [d for _, d in decode(sink().encode([make_batch(lines)]).body)]
    assert [d["log"]["level"] for d in docs] == ["warn", "error", None, "info"]
    assert [d["message"] for d in docs] == ["a", "b", "c", "d"]
