"""Tests of the fake Loki itself, against PROTOCOLS.md (A, D.1) and fixtures/loki/responses.md."""

from __future__ import annotations

import gzip
import json
import re
import threading
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import cramjam
import httpx
import pytest
from fakes.loki import (
    PUSH_PATH,
    FakeLoki,
    LabelParseError,
    PushRequest,
    Reply,
    format_labels,
    parse_labels,
    rfc3339,
)

# PROTOCOLS.md D.1: the 66-byte PushRequest, and the 69-byte snappy block sent on the wire.
D1_PUSH_REQUEST = bytes.fromhex(
    "0a400a177b6170703d22617069222c20656e763d2270726f64227d"
    "12250a0b0880e2cfaa0610959aef3a120568656c6c6f"
    "1a0f0a0874726163655f69641203616263"
)
D1_BODY = bytes.fromhex("42f041") + D1_PUSH_REQUEST
D1_TS_NS = 1_700_000_000_123_456_789
PB = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}
NS = 1_000_000_000


@pytest.fixture
def loki() -> Iterator[FakeLoki]:
    with FakeLoki() as server:
        yield server


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10.0) as c:
        yield c


def pb_body(streams: list[tuple[str, list[tuple[int, str, dict[str, str]]]]]) -> bytes:
    """A protobuf+snappy push body built with the protobuf runtime classes of the fake."""
    req = PushRequest()
    for labels, entries in streams:
        stream = req.streams.add(labels=labels)
        for ts_ns, line, metadata in entries:
            entry = stream.entries.add(line=line)
            entry.timestamp.seconds, entry.timestamp.nanos = divmod(ts_ns, NS)
            for name, value in metadata.items():
                entry.structuredMetadata.add(name=name, value=value)
    return bytes(cramjam.snappy.compress_raw(req.SerializeToString()))


def json_body(streams: list[dict[str, Any]]) -> bytes:
    return json.dumps({"streams": streams}).encode()


def push(
    client: httpx.Client, loki: FakeLoki, body: bytes, headers: dict[str, str]
) -> httpx.Response:
    return client.post(loki.url + PUSH_PATH, content=body, headers=headers)


# ---- the D.1 example ---------------------------------------------------------------------


def test_d1_bytes_are_what_protocols_md_says() -> None:
    assert len(D1_PUSH_REQUEST) == 66
    assert len(D1_BODY) == 69
    assert bytes(cramjam.snappy.decompress_raw(D1_BODY)) == D1_PUSH_REQUEST


def test_d1_body_decodes_to_the_documented_stream_entry_and_metadata(
    client: httpx.Client,
) -> None:
    # A clock one minute after the entry makes the 2023 timestamp "current".
    with FakeLoki(clock=lambda: D1_TS_NS + 60 * NS) as loki:
        r = push(client, loki, D1_BODY, {**PB, "X-Scope-OrgID": "team-a"})
        assert r.status_code == 204, r.text
        assert r.content == b""
        (entry,) = loki.entries
    assert entry.labels == {"app": "api", "env": "prod", "service_name": "api"}
    assert entry.ts_ns == D1_TS_NS
    assert entry.line == "hello"
    assert entry.metadata == {"trace_id": "abc"}
    assert entry.tenant == "team-a"
    (record,) = loki.requests
    assert (record.method, record.path, record.status) == ("POST", PUSH_PATH, 204)
    assert record.content_type == "application/x-protobuf"
    assert record.content_encoding is None
    assert record.body_size == 69
    assert record.tenant == "team-a"


def test_d1_body_is_too_old_in_the_fixture_format(loki: FakeLoki, client: httpx.Client) -> None:
    before = time.time_ns()
    r = push(client, loki, D1_BODY, PB)
    after = time.time_ns()
    assert r.status_code == 400
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    m = re.fullmatch(
        r"entry for stream '\{app=\"api\", env=\"prod\", service_name=\"api\"\}' has timestamp "
        r"too old: 2023-11-14T22:13:20Z, oldest acceptable timestamp is: (\S+)\n",
        r.text,
    )
    assert m, r.text
    week = 7 * 24 * 3600 * NS
    assert m.group(1) in {rfc3339(before - week), rfc3339(after - week)}
    assert loki.entries == []


def test_d1_too_old_body_exactly_with_a_fixed_clock(client: httpx.Client) -> None:
    now = int(datetime(2026, 11, 25, 6, 13, 21, tzinfo=UTC).timestamp()) * NS
    with FakeLoki(clock=lambda: now) as loki:
        r = push(client, loki, D1_BODY, PB)
    assert r.status_code == 400
    assert r.text == (
        'entry for stream \'{app="api", env="prod", service_name="api"}\' has timestamp '
        "too old: 2023-11-14T22:13:20Z, oldest acceptable timestamp is: 2026-11-18T06:13:21Z\n"
    )


def test_d1_entry_with_a_current_timestamp_is_stored(loki: FakeLoki, client: httpx.Client) -> None:
    now = time.time_ns()
    body = pb_body([('{app="api", env="prod"}', [(now, "hello", {"trace_id": "abc"})])])
    r = push(client, loki, body, {**PB, "X-Scope-OrgID": "team-a"})
    assert r.status_code == 204, r.text
    assert r.content == b""
    (entry,) = loki.entries
    assert entry.labels == {"app": "api", "env": "prod", "service_name": "api"}
    assert (entry.ts_ns, entry.line, entry.metadata) == (now, "hello", {"trace_id": "abc"})
    assert loki.lines() == ["hello"]


# ---- JSON ----------------------------------------------------------------------------------


def test_json_push_with_gzip(loki: FakeLoki, client: httpx.Client) -> None:
    now = time.time_ns()
    body = json_body(
        [
            {
                "stream": {"job": "fx", "env": "prod"},
                "values": [[str(now), "a", {"trace_id": "t1"}], [str(now + 1), "ünï"]],
            }
        ]
    )
    r = push(client, loki, gzip.compress(body), {**JSON, "Content-Encoding": "gzip"})
    assert r.status_code == 204, r.text
    assert loki.lines() == ["a", "ünï"]
    first, second = loki.entries
    assert first.labels == {"env": "prod", "job": "fx", "service_name": "fx"}
    assert first.metadata == {"trace_id": "t1"}
    assert (first.ts_ns, second.ts_ns) == (now, now + 1)
    assert second.metadata == {}
    assert first.tenant is None
    (record,) = loki.requests
    assert record.content_type == "application/json"
    assert record.content_encoding == "gzip"


def test_json_media_type_parameters_are_ignored(loki: FakeLoki, client: httpx.Client) -> None:
    body = json_body([{"stream": {"app": "x"}, "values": [[str(time.time_ns()), "l"]]}])
    r = push(client, loki, body, {"Content-Type": "Application/JSON; charset=utf-8"})
    assert r.status_code == 204, r.text
    assert loki.requests[0].content_type == "application/json"


def test_deflate_means_raw_deflate_like_go(loki: FakeLoki, client: httpx.Client) -> None:
    body = json_body([{"stream": {"app": "x"}, "values": [[str(time.time_ns()), "l"]]}])
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    deflated = raw.compress(body) + raw.flush()
    assert push(client, loki, deflated, {**JSON, "Content-Encoding": "deflate"}).status_code == 204
    # zlib-wrapped data is not what Go's compress/flate reads.
    r = push(client, loki, zlib.compress(body), {**JSON, "Content-Encoding": "deflate"})
    assert r.status_code == 400
    assert loki.lines() == ["l"]


def test_unsupported_content_encoding(loki: FakeLoki, client: httpx.Client) -> None:
    r = push(client, loki, b"{}", {**JSON, "Content-Encoding": "br"})
    assert (r.status_code, r.text) == (400, 'Content-Encoding "br" not supported\n')


def test_json_number_timestamp_is_refused(loki: FakeLoki, client: httpx.Client) -> None:
    body = json.dumps(
        {"streams": [{"stream": {"job": "fx"}, "values": [[time.time_ns(), "x"]]}]}
    ).encode()
    r = push(client, loki, body, JSON)
    assert r.status_code == 400
    assert r.text.startswith(
        "loghttp.PushRequest.Streams: []loghttp.LogProtoStream: unmarshalerDecoder: "
        "Value looks like Number/Boolean/None, but can't find its end"
    )
    assert r.text.endswith("\n")
    assert loki.entries == []


# ---- labels --------------------------------------------------------------------------------


def test_label_name_with_a_dot_refuses_the_whole_request(
    loki: FakeLoki, client: httpx.Client
) -> None:
    now = str(time.time_ns())
    body = json_body(
        [
            {"stream": {"job": "ok"}, "values": [[now, "valid"]]},
            {"stream": {"service.name": "fx"}, "values": [[now, "x"]]},
        ]
    )
    r = push(client, loki, body, JSON)
    assert r.status_code == 400
    assert r.text == (
        "couldn't parse labels: 1:9: parse error: unexpected character inside braces: '.'\n"
    )
    assert loki.entries == []


def test_16_labels_refuse_that_stream_only(loki: FakeLoki, client: httpx.Client) -> None:
    now = str(time.time_ns())
    many = {f"l{i}": "v" for i in range(16)}
    body = json_body(
        [
            {"stream": many, "values": [[now, "too many labels"]]},
            {"stream": {"job": "fx"}, "values": [[now, "valid"]]},
        ]
    )
    r = push(client, loki, body, JSON)
    assert r.status_code == 400
    shown = format_labels(sorted([*many.items(), ("service_name", "unknown_service")]))
    assert shown.startswith('{l0="v", l1="v", l10="v"') and shown.endswith(
        'l9="v", service_name="unknown_service"}'
    )
    assert r.text == f"entry for stream '{shown}' has 16 label names; limit 15\n"
    assert loki.lines() == ["valid"]
    assert loki.entries[0].labels == {"job": "fx", "service_name": "fx"}


def test_15_labels_plus_service_name_are_accepted(loki: FakeLoki, client: httpx.Client) -> None:
    labels = {f"l{i}": "v" for i in range(15)}
    body = json_body([{"stream": labels, "values": [[str(time.time_ns()), "ok"]]}])
    assert push(client, loki, body, JSON).status_code == 204
    assert len(loki.entries[0].labels) == 16


def test_empty_label_values_are_dropped_and_service_name_discovered(
    loki: FakeLoki, client: httpx.Client
) -> None:
    now = time.time_ns()
    body = pb_body(
        [
            ('{job="j", app="", container="c"}', [(now, "one", {})]),
            ('{service_name="given", app="a"}', [(now, "two", {})]),
            ("{}", [(now, "three", {})]),
        ]
    )
    assert push(client, loki, body, PB).status_code == 204
    assert [e.labels for e in loki.entries] == [
        {"container": "c", "job": "j", "service_name": "c"},
        {"app": "a", "service_name": "given"},
        {"service_name": "unknown_service"},
    ]


def test_label_value_escapes_are_go_string_literals(loki: FakeLoki, client: httpx.Client) -> None:
    now = time.time_ns()
    body = pb_body([('{app="a\\"b\\n\\u00e9\\x41", raw=`c\\d`}', [(now, "x", {})])])
    assert push(client, loki, body, PB).status_code == 204
    assert loki.entries[0].labels == {"app": 'a"b\néA', "raw": "c\\d", "service_name": 'a"b\néA'}


def test_label_syntax_error_in_protobuf(loki: FakeLoki, client: httpx.Client) -> None:
    body = pb_body([("{app=api}", [(time.time_ns(), "x", {})])])
    r = push(client, loki, body, PB)
    assert r.status_code == 400
    assert r.text == (
        'couldn\'t parse labels: 1:6: parse error: unexpected identifier "api" in label set, '
        "expected string\n"
    )


def test_duplicate_label_name(loki: FakeLoki, client: httpx.Client) -> None:
    body = pb_body([('{app="a", app="b"}', [(time.time_ns(), "x", {})])])
    r = push(client, loki, body, PB)
    assert r.status_code == 400
    # service_name was added, so the message shows the re-rendered label string.
    assert r.text == (
        'stream \'{app="a", app="b", service_name="a"}\' has duplicate label name: \'app\'\n'
    )
    assert loki.entries == []


def test_label_value_too_long(client: httpx.Client) -> None:
    with FakeLoki(max_label_value_length=5) as loki:
        body = pb_body([('{app="abcdef"}', [(time.time_ns(), "x", {})])])
        r = push(client, loki, body, PB)
    assert r.text == (
        "stream '{app=\"abcdef\", service_name=\"abcdef\"}' has label value too long: 'abcdef'\n"
    )


@pytest.mark.parametrize(
    ("text", "pairs"),
    [
        ("", []),
        ("{}", []),
        ('{b="2", a="1",}', [("a", "1"), ("b", "2")]),
        ("{a='x', b=`y`}", [("a", "x"), ("b", "y")]),
        ('{ a = "1" }', [("a", "1")]),
        ('{a="\\101\\x42\\U0001F600"}', [("a", "AB\U0001f600")]),
        ('{"a.b"="x"}', [("a.b", "x")]),
        ('{a="", b="x"}', [("b", "x")]),
    ],
)
def test_parse_labels_accepts(text: str, pairs: list[tuple[str, str]]) -> None:
    assert parse_labels(text) == pairs


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{service.name="fx"}', "1:9: parse error: unexpected character inside braces: '.'"),
        ('{a:b="x"}', "1:3: parse error: unexpected character inside braces: ':'"),
        ("{a}", '1:3: parse error: unexpected "}" in label set, expected "="'),
        ('{a!="x"}', '1:3: parse error: unexpected <op:!=> in label set, expected "="'),
        (
            '{a="x" b="y"}',
            '1:8: parse error: unexpected identifier "b" in label set, expected "," or "}"',
        ),
        ("{,}", '1:2: parse error: unexpected "," in label set, expected identifier or "}"'),
        ('{a="x"', "1:7: parse error: unexpected end of input inside braces"),
        ('{a="x', "1:4: parse error: unterminated quoted string"),
        ('{a="\\q"}', "1:4: parse error: unknown escape sequence U+0071 'q'"),
        ('{a="\\ud83d"}', "1:4: parse error: escape sequence is an invalid Unicode code point"),
        ('{a="x"}}', "1:8: parse error: unexpected right brace '}'"),
        ('{1a="x"}', "1:2: parse error: unexpected character inside braces: '1'"),
    ],
)
def test_parse_labels_refuses(text: str, message: str) -> None:
    with pytest.raises(LabelParseError) as info:
        parse_labels(text)
    assert str(info.value) == message


# ---- entries -------------------------------------------------------------------------------


def test_too_old_entry_is_refused_but_the_others_are_stored(
    loki: FakeLoki, client: httpx.Client
) -> None:
    now = time.time_ns()
    old = now - 8 * 24 * 3600 * NS
    body = json_body([{"stream": {"job": "fx"}, "values": [[str(old), "old"], [str(now), "new"]]}])
    r = push(client, loki, body, JSON)
    assert r.status_code == 400
    assert r.text.startswith(
        f'entry for stream \'{{job="fx", service_name="fx"}}\' has timestamp too old: '
        f"{rfc3339(old)}, oldest acceptable timestamp is: "
    )
    assert loki.lines() == ["new"]


def test_old_samples_accepted_when_not_rejected(client: httpx.Client) -> None:
    with FakeLoki(reject_old_samples=False) as loki:
        assert push(client, loki, D1_BODY, PB).status_code == 204
        assert loki.lines() == ["hello"]


def test_too_new_and_too_long_entries(loki: FakeLoki, client: httpx.Client) -> None:
    now = time.time_ns()
    future = now + 3600 * NS
    body = json_body(
        [
            {
                "stream": {"job": "fx"},
                "values": [[str(future), "future"], [str(now), "x" * 300_000], [str(now), "ok"]],
            }
        ]
    )
    r = push(client, loki, body, JSON)
    assert r.status_code == 400
    stream = '{job="fx", service_name="fx"}'
    assert r.text == (
        f"1 errors like: entry for stream '{stream}' has timestamp too new: {rfc3339(future)}; "
        f"1 errors like: max entry size '262144' bytes exceeded for stream '{stream}' while "
        "adding an entry with length '300000' bytes\n"
    )
    assert loki.lines() == ["ok"]


def test_repeated_error_is_grouped(loki: FakeLoki, client: httpx.Client) -> None:
    now = str(time.time_ns())
    body = json_body([{"stream": {"job": "fx"}, "values": [[now, "x" * 262145]] * 3}])
    r = push(client, loki, body, JSON)
    assert r.status_code == 400
    assert r.text.startswith("3 errors like: max entry size '262144' bytes exceeded")


def test_422_on_no_streams(loki: FakeLoki, client: httpx.Client) -> None:
    r = push(client, loki, b'{"streams":[]}', JSON)
    assert r.status_code == 422
    assert r.text == "error at least one valid stream is required for ingestion\n"
    r = push(client, loki, bytes(cramjam.snappy.compress_raw(b"")), PB)
    assert r.status_code == 422


def test_exact_duplicates_are_ignored(loki: FakeLoki, client: httpx.Client) -> None:
    now = time.time_ns()
    body = pb_body([('{app="a"}', [(now, "same", {}), (now, "same", {}), (now, "other", {})])])
    assert push(client, loki, body, PB).status_code == 204
    assert push(client, loki, body, PB).status_code == 204
    assert loki.lines() == ["same", "other"]
    assert len(loki.duplicates) == 4
    # Same line at another timestamp, or in another stream, is not a duplicate.
    body = pb_body([('{app="a"}', [(now + 1, "same", {})]), ('{app="b"}', [(now, "same", {})])])
    assert push(client, loki, body, PB).status_code == 204
    assert loki.lines() == ["same", "other", "same", "same"]


def test_entry_too_far_behind_in_its_stream(loki: FakeLoki, client: httpx.Client) -> None:
    now = time.time_ns()
    late = now - 2 * 3600 * NS
    assert push(client, loki, pb_body([('{app="a"}', [(now, "new", {})])]), PB).status_code == 204
    r = push(client, loki, pb_body([('{app="a"}', [(late, "late", {})])]), PB)
    assert r.status_code == 400
    assert r.text.startswith("entry with timestamp ")
    assert "ignored, reason: 'entry too far behind, entry timestamp is: " in r.text
    assert r.text.endswith(
        'user \'fake\', total ignored: 1 out of 1 for stream: {app="a", service_name="a"}\n'
    )
    assert loki.lines() == ["new"]


# ---- protobuf and snappy -------------------------------------------------------------------


def test_snappy_copies_are_decoded(loki: FakeLoki, client: httpx.Client) -> None:
    now = time.time_ns()
    lines = [f"repeated line number {i % 7} " * 20 for i in range(500)]
    body = pb_body([('{app="a"}', [(now + i, line, {}) for i, line in enumerate(lines)])])
    assert len(body) < 20_000  # compressed with copy elements
    assert push(client, loki, body, {}).status_code == 204  # no Content-Type: protobuf
    assert loki.lines() == lines


def test_framed_snappy_is_refused(loki: FakeLoki, client: httpx.Client) -> None:
    req = PushRequest()
    req.ParseFromString(D1_PUSH_REQUEST)
    req.streams[0].entries[0].timestamp.seconds = time.time_ns() // NS
    framed = bytes(cramjam.snappy.compress(req.SerializeToString()))
    assert framed.startswith(b"\xff\x06\x00\x00sNaPpY")
    r = push(client, loki, framed, PB)
    assert (r.status_code, r.text) == (400, "snappy: corrupt input\n")
    assert loki.entries == []


def test_content_encoding_snappy_is_ignored_for_protobuf(
    loki: FakeLoki, client: httpx.Client
) -> None:
    body = pb_body([('{app="a"}', [(time.time_ns(), "x", {})])])
    assert push(client, loki, body, {**PB, "Content-Encoding": "snappy"}).status_code == 204
    gz = gzip.compress(body)
    assert push(client, loki, gz, {**PB, "Content-Encoding": "gzip"}).status_code == 204


def test_protobuf_over_max_recv_msg_size_is_413(client: httpx.Client) -> None:
    with FakeLoki(max_recv_msg_size=20) as loki:
        body = pb_body([('{app="a"}', [(time.time_ns(), "x" * 200, {})])])
        assert len(body) > 20
        r = push(client, loki, body, PB)
        assert r.status_code == 413
        assert r.text == (
            f"request body too large: message size too large than max ({len(body)} vs 20)\n"
        )
        assert loki.entries == []


def test_invalid_utf8_line_is_accepted_like_go(loki: FakeLoki, client: httpx.Client) -> None:
    # Build the message by hand: the proto3 runtime would refuse to serialize invalid UTF-8.
    req = PushRequest()
    stream = req.streams.add(labels='{app="a"}')
    entry = stream.entries.add(line="a#b")
    entry.timestamp.seconds = time.time_ns() // NS
    raw = req.SerializeToString().replace(b"\x03a#b", b"\x03a\xffb")
    r = push(client, loki, bytes(cramjam.snappy.compress_raw(raw)), PB)
    assert r.status_code == 204, r.text
    assert loki.lines() == ["a\ufffdb"]


# ---- HTTP, tenants, auth -------------------------------------------------------------------


def test_routes(loki: FakeLoki, client: httpx.Client) -> None:
    r = client.get(loki.url + PUSH_PATH)
    assert (r.status_code, r.content) == (405, b"")
    r = client.post(loki.url + "/api/prom/push", content=b"{}", headers=JSON)
    assert (r.status_code, r.text) == (404, "404 page not found\n")
    assert [x.status for x in loki.requests] == [405, 404]


def test_tenant_required(client: httpx.Client) -> None:
    body = pb_body([('{app="a"}', [(time.time_ns(), "x", {})])])
    with FakeLoki(tenant_required=True) as loki:
        r = push(client, loki, body, PB)
        assert (r.status_code, r.text) == (401, "no org id\n")
        assert loki.entries == []
        r = push(client, loki, body, {**PB, "X-Scope-OrgID": "a/b"})
        assert (r.status_code, r.text) == (
            400,
            "tenant ID 'a/b' contains unsupported character '/'\n",
        )
        r = push(client, loki, body, {**PB, "X-Scope-OrgID": "team-a"})
        assert r.status_code == 204
        assert [e.tenant for e in loki.entries] == ["team-a"]


def test_expected_auth(client: httpx.Client) -> None:
    body = pb_body([('{app="a"}', [(time.time_ns(), "x", {})])])
    with FakeLoki(expected_auth="Bearer s3cret") as loki:
        assert push(client, loki, body, PB).status_code == 401
        assert push(client, loki, body, {**PB, "Authorization": "Bearer nope"}).status_code == 401
        r = push(client, loki, body, {**PB, "Authorization": "Bearer s3cret"})
        assert r.status_code == 204
        assert loki.lines() == ["x"]


# ---- fault injection -----------------------------------------------------------------------


def test_fail_next_429_with_retry_after(loki: FakeLoki, client: httpx.Client) -> None:
    body = pb_body([('{app="a"}', [(time.time_ns(), "x", {})])])
    loki.fail_next(2, 429, "ingestion rate limit exceeded for user fake\n", {"Retry-After": "2"})
    for _ in range(2):
        r = push(client, loki, body, PB)
        assert r.status_code == 429
        assert r.headers["retry-after"] == "2"
        assert r.text == "ingestion rate limit exceeded for user fake\n"
    assert loki.entries == []
    assert push(client, loki, body, PB).status_code == 204
    assert [x.status for x in loki.requests] == [429, 429, 204]
    assert loki.lines() == ["x"]


def test_fail_next_5xx_then_success(loki: FakeLoki, client: httpx.Client) -> None:
    body = pb_body([('{app="a"}', [(time.time_ns(), "x", {})])])
    loki.fail_next(1, 500)
    loki.fail_next(1, 503, "unavailable")
    assert push(client, loki, body, PB).status_code == 500
    assert push(client, loki, body, PB).status_code == 503
    assert push(client, loki, body, PB).status_code == 204
    assert loki.lines() == ["x"]


def test_hook_can_answer_instead_of_loki(loki: FakeLoki, client: httpx.Client) -> None:
    seen: list[int] = []

    def hook(req: Any) -> Reply | None:
        seen.append(len(req.body))
        return Reply(260) if len(seen) == 1 else None

    loki.hook = hook
    body = pb_body([('{app="a"}', [(time.time_ns(), "x", {})])])
    assert push(client, loki, body, PB).status_code == 260
    assert push(client, loki, body, PB).status_code == 204
    assert seen == [len(body), len(body)]
    assert loki.lines() == ["x"]


def test_ingestion_rate_limit(client: httpx.Client) -> None:
    with FakeLoki(ingestion_rate_mb=0.001, ingestion_burst_size_mb=0.001) as loki:
        body = pb_body([('{app="a"}', [(time.time_ns(), "x" * 2000, {})])])
        r = push(client, loki, body, {**PB, "X-Scope-OrgID": "team-a"})
        assert r.status_code == 429
        assert r.text.startswith(
            "ingestion rate limit exceeded for user team-a (limit: 1048 bytes/sec) while "
            "attempting to ingest '1' lines totaling '2000' bytes"
        )
        assert loki.entries == []


def test_down_refuses_connections_then_up_accepts_on_the_same_port(
    loki: FakeLoki, client: httpx.Client
) -> None:
    url = loki.url
    body = pb_body([('{app="a"}', [(time.time_ns(), "before", {})])])
    assert push(client, loki, body, PB).status_code == 204  # leaves a keep-alive connection
    loki.down()
    assert not loki.is_up
    with pytest.raises(httpx.TransportError):
        push(client, loki, body, PB)
    with pytest.raises(httpx.ConnectError):
        httpx.post(url + PUSH_PATH, content=body, headers=PB, timeout=5)
    loki.up()
    assert loki.url == url
    body = pb_body([('{app="a"}', [(time.time_ns(), "after", {})])])
    assert push(client, loki, body, PB).status_code == 204
    assert loki.lines() == ["before", "after"]


def test_down_before_any_client_then_up(client: httpx.Client) -> None:
    loki = FakeLoki()
    loki.start()
    try:
        loki.down()
        with pytest.raises(httpx.ConnectError):
            client.post(loki.url + PUSH_PATH, content=b"", headers=PB)
        loki.up()
        assert client.post(loki.url + PUSH_PATH, content=b"x", headers=PB).status_code == 400
    finally:
        loki.stop()


# ---- waiting and volume --------------------------------------------------------------------


def test_wait_for_times_out_with_a_useful_message(loki: FakeLoki) -> None:
    start = time.monotonic()
    with pytest.raises(TimeoutError, match=r"waiting for 5 stored lines: 0 lines stored"):
        loki.wait_for_lines(5, timeout=0.3)
    assert time.monotonic() - start < 5


def test_many_concurrent_requests_with_100k_lines(loki: FakeLoki) -> None:
    now = time.time_ns()
    per_request, requests, threads = 5_000, 20, 5
    bodies = [
        pb_body(
            [
                (
                    f'{{app="bulk", part="{r}"}}',
                    [
                        (now + i, f"request {r} line {i} " + "x" * 80, {})
                        for i in range(per_request)
                    ],
                )
            ]
        )
        for r in range(requests)
    ]
    assert max(len(b) for b in bodies) > 20_000
    statuses: list[int] = []

    def send(mine: list[bytes]) -> None:
        with httpx.Client(timeout=30) as c:
            statuses.extend(push(c, loki, b, PB).status_code for b in mine)

    start = time.monotonic()
    workers = [threading.Thread(target=send, args=(bodies[i::threads],)) for i in range(threads)]
    for w in workers:
        w.start()
    lines = loki.wait_for_lines(per_request * requests, timeout=60)
    for w in workers:
        w.join()
    elapsed = time.monotonic() - start
    assert statuses == [204] * requests
    assert len(lines) == len(set(lines)) == 100_000
    assert elapsed < 30, elapsed


def test_large_single_json_body(loki: FakeLoki, client: httpx.Client) -> None:
    now = time.time_ns()
    values = [[str(now + i), f"line {i} " + "y" * 100] for i in range(40_000)]
    body = json_body([{"stream": {"app": "big"}, "values": values}])
    assert len(body) > 4 * 1024 * 1024
    assert push(client, loki, body, JSON).status_code == 204
    assert loki.line_count == 40_000
