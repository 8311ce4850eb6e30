"""The Loki encoder and classifier as pure functions, decoded by an independent implementation."""

from __future__ import annotations

import asyncio
import gzip
import json
from datetime import UTC, datetime

import cramjam
import httpx
import pytest
from fakes.loki import PushRequest
from hypothesis import given, settings
from hypothesis import strategies as st

from logship.config import build_config
from logship.parsing.batch import Batch, SourceInfo
from logship.pipeline.acks import AckTracker
from logship.sinks.loki import (
    LokiSink,
    classify,
    count_rejected,
    encode_push_protobuf,
    label_string,
    sanitize_label_name,
    varint5,
)
from logship.sinks.outcome import Verdict
from logship.telemetry import Telemetry

NS = 1_000_000_000
T0 = int(datetime(2026, 11, 28, 12, tzinfo=UTC).timestamp())


def sink_config(**extra: object) -> object:
    cfg = build_config(
        {
            "sources": {"app": {"include": ["x"]}},
            "sinks": {"loki": {"type": "loki", "url": "http://loki.invalid:3100", **extra}},
        },
        "test",
    )
    return cfg.sinks["loki"]


def batch(
    lines: list[bytes], labels: dict[str, str] | None = None, path: str = "/l/a.log"
) -> Batch:
    info = SourceInfo("app", path, "auto", labels or {})
    return Batch(info, lines, 0, sum(len(x) + 1 for x in lines), 1_700_000_000 * NS)


def decode(body: bytes) -> object:
    req = PushRequest()
    req.ParseFromString(bytes(cramjam.snappy.decompress_raw(body)))
    return req


def make_sink(**extra: object) -> LokiSink:
    return LokiSink("loki", sink_config(**extra), Telemetry())  # type: ignore[arg-type]


def test_protobuf_request_decodes_with_official_runtime() -> None:
    lines = [
        b'{"ts":"2026-11-28T12:00:00.000000001Z","msg":"a"}',
        b'{"ts":"2026-11-28T12:00:01.5Z","msg":"b"}',
        "plain ünïcode line".encode(),
    ]
    s = make_sink(labels={"env": "prod"})
    req = s.encode([batch(lines, {"app": "api", "k8s.pod": "p-1"})])
    assert req.headers["Content-Type"] == "application/x-protobuf"
    push = decode(req.body)
    (stream,) = push.streams  # type: ignore[attr-defined]
    assert stream.labels == '{app="api", env="prod", filename="/l/a.log", k8s_pod="p-1"}'
    got = {e.line: (e.timestamp.seconds, e.timestamp.nanos) for e in stream.entries}
    assert got[lines[0].decode()] == (T0, 1)
    assert got[lines[1].decode()] == (T0 + 1, 500_000_000)
    assert got["plain ünïcode line"] == (1_700_000_000, 0)  # no timestamp: the read time
    assert stream.entries[0].line == "plain ünïcode line"  # sorted: oldest first


def test_entries_of_a_stream_are_sorted_by_time() -> None:
    lines = [b'{"ts":"2026-11-28T12:00:0%dZ"}' % i for i in (3, 1, 2)]
    push = decode(make_sink().encode([batch(lines)]).body)
    secs = [e.timestamp.seconds for e in push.streams[0].entries]  # type: ignore[attr-defined]
    assert secs == sorted(secs)


@pytest.mark.parametrize(
    "stamps",
    [
        ["2026-11-28T12:00:00.300Z", "2026-11-28T12:00:00.100Z", "2026-11-28T12:00:00.200Z"],
        ["2026-11-28T12:00:01.000Z", "2026-11-28T12:00:00.999Z", "2026-11-28T11:59:59.000Z"],
        # Same width, other separator: text order would be wrong here, time order is not.
        ["2026-11-28 13:00:00.000Z", "2026-11-28T12:00:00.000Z", "2026-11-28 11:00:00.000Z"],
        ["2026-11-28T12:00:00.5Z", "2026-11-28T12:00:00.123Z", "2026-11-28T12:00:00.45Z"],
        ["2026-11-28T14:00:00.000+02:00", "2026-11-28T11:00:00.000Z"],
    ],
)
def test_stream_order_is_time_order(stamps: list[str]) -> None:
    lines = [b'{"ts":"%s","i":%d}' % (t.encode(), i) for i, t in enumerate(stamps)]
    entries = decode(make_sink().encode([batch(lines)]).body).streams[0].entries  # type: ignore[attr-defined]
    got = [e.timestamp.seconds * NS + e.timestamp.nanos for e in entries]
    assert got == sorted(got)
    assert len(got) == len(stamps)


def test_batches_of_two_files_are_two_streams() -> None:
    push = decode(make_sink().encode([batch([b"a"], path="/a"), batch([b"b"], path="/b")]).body)
    labels = sorted(s.labels for s in push.streams)  # type: ignore[attr-defined]
    assert labels == ['{filename="/a"}', '{filename="/b"}']


def test_label_fields_split_streams() -> None:
    lines = [b'{"level":"info","msg":"x"}', b'{"level":"error","msg":"y"}']
    push = decode(
        make_sink(label_fields=["level"], filename_label=False).encode([batch(lines)]).body
    )
    by_label = {s.labels: [e.line for e in s.entries] for s in push.streams}  # type: ignore[attr-defined]
    assert by_label == {
        '{level="info"}': [lines[0].decode()],
        '{level="error"}': [lines[1].decode()],
    }


def test_labels_capped_at_15() -> None:
    labels = {f"l{i:02d}": "v" for i in range(20)}
    push = decode(make_sink(filename_label=False).encode([batch([b"x"], labels)]).body)
    assert push.streams[0].labels.count("=") == 15  # type: ignore[attr-defined]


def test_json_encoding_and_gzip() -> None:
    s = make_sink(encoding="json", compression="gzip", tenant_id="team-a")
    req = s.encode([batch([b'{"ts":"2026-11-28T12:00:00Z"}', b"line \xff bad utf8"])])
    by_line = {}
    assert req.headers["Content-Encoding"] == "gzip"
    assert req.headers["X-Scope-OrgID"] == "team-a"
    body = json.loads(gzip.decompress(req.body))
    (stream,) = body["streams"]
    assert stream["stream"] == {"filename": "/l/a.log"}
    by_line = {line: ts for ts, line in stream["values"]}
    assert by_line['{"ts":"2026-11-28T12:00:00Z"}'] == str(T0 * NS)  # a string, not a number
    assert by_line["line \ufffd bad utf8"] == str(1_700_000_000 * NS)


@given(
    st.lists(st.text(max_size=300).map(str.encode), min_size=1, max_size=30),
    st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=10), max_size=5),
)
@settings(max_examples=50, deadline=None)
def test_any_lines_and_labels_encode_to_a_valid_push(
    lines: list[bytes], labels: dict[str, str]
) -> None:
    lines = [ln.replace(b"\n", b" ") for ln in lines]
    push = decode(make_sink().encode([batch(lines, labels)]).body)
    got = sorted(e.line for s in push.streams for e in s.entries)  # type: ignore[attr-defined]
    assert got == sorted(ln.decode() for ln in lines)


def test_padded_varint_is_a_valid_varint() -> None:
    from google.protobuf.internal.decoder import _DecodeVarint  # type: ignore[attr-defined]

    for v in (0, 1, 127, 128, 999_999_999, 2**35 - 1):
        assert _DecodeVarint(varint5(v), 0) == (v, 5)


def test_label_helpers() -> None:
    assert sanitize_label_name("service.name") == "service_name"
    assert sanitize_label_name("1abc") == "_1abc"
    assert label_string({"b": 'q"uote', "a": "x", "empty": ""}) == '{a="x", b="q\\"uote"}'
    assert encode_push_protobuf([]) == b""


H = httpx.Headers


@pytest.mark.parametrize(
    ("status", "headers", "body", "verdict", "retry_after"),
    [
        (204, {}, b"", Verdict.DELIVERED, None),
        (200, {}, b"", Verdict.DELIVERED, None),
        (429, {"Retry-After": "7"}, b"ingestion rate limit exceeded\n", Verdict.RETRY, 7.0),
        (500, {}, b"internal", Verdict.RETRY, None),
        (503, {}, b"", Verdict.RETRY, None),
        (260, {}, b"", Verdict.RETRY, None),
        (413, {}, b"request body too large", Verdict.SPLIT, None),
        (401, {}, b"no org id\n", Verdict.RETRY, None),
        (
            400,
            {},
            b"entry for stream '{a=\"b\"}' has timestamp too old: x\n",
            Verdict.REJECTED,
            None,
        ),
        (
            422,
            {},
            b"error at least one valid stream is required for ingestion\n",
            Verdict.REJECTED,
            None,
        ),
    ],
)
def test_classify(
    status: int, headers: dict[str, str], body: bytes, verdict: Verdict, retry_after: float | None
) -> None:
    out = classify(status, H(headers), body, 10)
    assert out.verdict is verdict
    assert out.retry_after == retry_after
    if body and verdict is not Verdict.DELIVERED:
        assert body.decode().strip() in out.reason


def test_count_rejected_reads_loki_texts() -> None:
    grouped = "3 errors like: entry for stream '{a=\"b\"}' has timestamp too old: x"
    assert count_rejected(grouped, 10) == 3
    single = "entry for stream '{a=\"b\"}' has timestamp too new: x"
    assert count_rejected(single, 10) == 1
    ingester = (
        "entry with timestamp 2026 ignored, reason: 'entry too far behind',\n"
        "user 'fake', total ignored: 4 out of 9 for stream: {a=\"b\"}"
    )
    assert count_rejected(ingester, 10) == 4
    assert count_rejected("couldn't parse labels: 1:9: parse error", 10) == 10


def test_413_splits_until_parts_fit_and_acks_once() -> None:
    sizes: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        push = decode(request.content)
        n = sum(len(s.entries) for s in push.streams)  # type: ignore[attr-defined]
        sizes.append(n)
        return httpx.Response(413 if n > 2 else 204)

    async def scenario() -> tuple[int, int]:
        tracker = AckTracker(lambda _: None)
        f = tracker.file("k", "/l/a.log", "0:", 0)
        s = LokiSink(
            "loki",
            sink_config(),
            Telemetry(),  # type: ignore[arg-type]
            transport=httpx.MockTransport(handler),
        )
        b = batch([b"l%d" % i for i in range(7)])
        b.ticket = f.ticket(b.end_offset, 1, 1)
        await s.deliver([b])
        await s.aclose()
        return f.committed, s.telemetry.sinks["loki"].sent_records

    committed, sent = asyncio.run(scenario())
    assert committed == sum(len(b"l%d" % i) + 1 for i in range(7))
    assert sent == 7
    assert sizes[0] == 7 and max(sizes[1:]) <= 7 and sum(n for n in sizes if n <= 2) == 7


def test_seconds_runs_are_found_only_for_ordered_keys() -> None:
    from logship.sinks.loki import seconds_runs

    s = [b"2026-01-01T00:00:00", b"2026-01-01T00:00:00", b"2026-01-01T00:00:01"]
    assert seconds_runs(s, [b'.1Z"', b'.2Z"', b'.0Z"']) == [(s[0], 2), (s[2], 1)]
    assert seconds_runs(s, [b'.2Z"', b'.1Z"', b'.0Z"']) is None  # fractions out of order
    assert seconds_runs(list(reversed(s)), [b'.0Z"'] * 3) is None  # seconds out of order
    assert seconds_runs([], []) == []


@given(st.lists(st.integers(min_value=0, max_value=999_999_999), max_size=50))
def test_nanos_pieces_are_padded_varints(nanos: list[int]) -> None:
    from logship.sinks.loki import nanos_pieces, varint5

    assert nanos_pieces(nanos) == [b"\x10" + varint5(n) for n in nanos]


def test_microsecond_times_keep_every_digit_through_the_encoder() -> None:
    """Thousands of distinct fractions take the integer-key path; the values must not move."""
    from logship.parsing.formats import MANY_FRACTIONS

    n = MANY_FRACTIONS * 3
    base = int(datetime(2026, 11, 29, 10, 0, 0, tzinfo=UTC).timestamp())
    want = [(base + i // 1000, (i * 997 % 1_000_000) * 1000) for i in range(n)]
    lines = [
        b'{"ts":"2026-11-29T10:00:%02d.%06dZ","i":%d}' % (i // 1000, i * 997 % 1_000_000, i)
        for i in range(n)
    ]
    b = batch(lines)
    ts = b.timestamps()
    assert all(isinstance(f, int) for f in ts.fractions)
    assert ts.ns() == [sec * NS + frac for sec, frac in want]
    (stream,) = decode(make_sink().encode([b]).body).streams  # type: ignore[attr-defined]
    got = {e.line: (e.timestamp.seconds, e.timestamp.nanos) for e in stream.entries}
    assert [got[line.decode()] for line in lines] == want
    # Out of order within a second: sorted by the full time.
    assert [e.timestamp.seconds * NS + e.timestamp.nanos for e in stream.entries] == sorted(
        sec * NS + frac for sec, frac in want
    )


@given(
    st.lists(
        st.lists(st.tuples(st.integers(0, 2), st.integers(0, 999)), min_size=1, max_size=30),
        min_size=1,
        max_size=4,
    ),
    st.booleans(),
)
def test_a_stream_of_several_batches_is_in_time_order(
    parts: list[list[tuple[int, int]]], sort_each: bool
) -> None:
    """Batches that each know their own order (runs) are joined into one stream only as
    far as each continues the last; the request is in time order either way."""
    batches = []
    for k, events in enumerate(parts):
        if sort_each:
            events = sorted(events)
        lines = [
            b'{"ts":"2026-11-28T12:00:0%d.%03dZ","b":%d,"i":%d}' % (s, ms, k, i)
            for i, (s, ms) in enumerate(events)
        ]
        batches.append(batch(lines))
    (stream,) = decode(make_sink().encode(batches).body).streams  # type: ignore[attr-defined]
    got = [(e.timestamp.seconds, e.timestamp.nanos) for e in stream.entries]
    assert got == sorted(got)
    want = sorted((T0 + s, ms * 1_000_000) for events in parts for s, ms in events)
    assert got == want
    assert len({e.line for e in stream.entries}) == sum(map(len, parts))


def test_raw_lines_of_batches_read_at_different_times_are_in_time_order() -> None:
    """Raw lines take their batch's read time (one run per batch); a later batch read at an
    earlier time (the clock stepped back) must not be sent after it."""
    info = SourceInfo("app", "/l/a.log", "raw")
    reads = [1_700_000_005 * NS + 7, 1_700_000_009 * NS, 1_700_000_002 * NS + 1]
    batches = [
        Batch(info, [b"r%d-%d" % (k, i) for i in range(3)], 0, 1, t) for k, t in enumerate(reads)
    ]
    (stream,) = decode(make_sink().encode(batches).body).streams  # type: ignore[attr-defined]
    got = [e.timestamp.seconds * NS + e.timestamp.nanos for e in stream.entries]
    assert got == sorted(t for t in reads for _ in range(3))
    in_order = decode(make_sink().encode(batches[:2]).body).streams[0].entries  # type: ignore[attr-defined]
    assert [e.line for e in in_order] == [f"r{k}-{i}" for k in range(2) for i in range(3)]
