"""The OTLP encoder and classifier as pure functions, checked against the official classes.

The expected records are computed here from the stdlib ``json`` parse of each line and the
severity table of PROTOCOLS.md C.7, independently of logship's ``record_view``; requests
are decoded by ``opentelemetry-proto`` (protobuf) and ``json_format`` (JSON).
"""

from __future__ import annotations

import asyncio
import gzip
import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fakes.otlp import JSON, PROTOBUF, BadRequest, decode_request, plain
from google.protobuf.message import DecodeError
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsPartialSuccess,
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList

from logship.config import build_config
from logship.parsing.batch import Batch, SourceInfo
from logship.pipeline.acks import AckTracker
from logship.sinks.otlp import (
    OtlpSink,
    RecordEncoder,
    any_value,
    classify,
    parse_otel_resource_attributes,
    resource_attributes,
)
from logship.sinks.outcome import Verdict
from logship.telemetry import Telemetry

NS = 1_000_000_000
READ_NS = int(datetime(2026, 11, 28, 12, tzinfo=UTC).timestamp()) * NS
PATH = "/var/log/app/a.log"
SEVERITY = {
    "trace": 1, "finest": 1, "debug": 5, "finer": 5, "verbose": 5, "fine": 6, "config": 7,
    "info": 9, "information": 9, "informational": 9, "notice": 10, "warn": 13, "warning": 13,
    "error": 17, "err": 17, "severe": 17, "critical": 18, "crit": 18, "dpanic": 18,
    "alert": 19, "panic": 19, "fatal": 21, "emerg": 21, "emergency": 21,
}  # fmt: skip


def sink_config(**extra: object) -> Any:
    cfg = build_config(
        {
            "sources": {"app": {"include": ["x"]}},
            "sinks": {"otlp": {"type": "otlp", "url": "http://otel.invalid:4318", **extra}},
        },
        "test",
    )
    return cfg.sinks["otlp"]


def batch(lines: list[bytes], labels: dict[str, str] | None = None, fmt: str = "auto") -> Batch:
    info = SourceInfo("app", PATH, fmt, labels or {})
    return Batch(info, lines, 0, sum(len(x) + 1 for x in lines), READ_NS)


def encoder(**overrides: str) -> RecordEncoder:
    return RecordEncoder({"host.name": "node-1"}, overrides)


def decode(body: bytes) -> ExportLogsServiceRequest:
    return ExportLogsServiceRequest.FromString(body)


def expected_record(line: bytes, ts: int) -> tuple[Any, ...]:
    """What PROTOCOLS.md C and the README promise for one line, computed independently."""
    obj = None
    if line.lstrip()[:1] == b"{":
        try:
            parsed = json.loads(line)
        except ValueError:
            parsed = None
        obj = parsed if isinstance(parsed, dict) else None
    attrs: dict[str, Any] = {}
    body: Any = line.decode()
    sev_text, sev_num = "", 0
    if obj is not None:
        body_key = next((k for k in ("msg", "message") if isinstance(obj.get(k), str)), None)
        if body_key is not None:
            body = obj[body_key]
        level_key = next((k for k in ("level", "lvl", "severity") if k in obj), None)
        if level_key is not None and isinstance(obj[level_key], str):
            sev_text = obj[level_key]
            sev_num = SEVERITY.get(sev_text.strip().lower(), 0)
        else:
            level_key = None
        for k, v in obj.items():
            if k in (body_key, level_key, "log.file.path"):
                continue
            if k == "stream" and v in ("stdout", "stderr") and "log.iostream" not in obj:
                k = "log.iostream"
            attrs[k] = big_ints_as_text(v)
    attrs["log.file.path"] = PATH
    # A time before 1970 (or after 2554) cannot be a fixed64: it is sent as 0, "unknown"
    # (PROTOCOLS.md C.2).
    return (ts if 0 <= ts < 2**64 else 0, READ_NS, sev_num, sev_text, body, canonical(attrs))


def big_ints_as_text(v: Any) -> Any:
    """Integers beyond int64 are sent as their decimal text."""
    if isinstance(v, dict):
        return {k: big_ints_as_text(x) for k, x in v.items()}
    if isinstance(v, list):
        return [big_ints_as_text(x) for x in v]
    if isinstance(v, int) and not isinstance(v, bool) and v >= 2**63:
        return str(v)
    return v


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def received(req: ExportLogsServiceRequest) -> list[tuple[Any, ...]]:
    out = []
    for rl in req.resource_logs:
        for sl in rl.scope_logs:
            assert sl.scope.name == "logship"
            for r in sl.log_records:
                keys = [kv.key for kv in r.attributes]
                assert len(keys) == len(set(keys)), f"duplicate attribute keys {keys}"
                attrs = {kv.key: plain(kv.value) for kv in r.attributes}
                out.append(
                    (
                        r.time_unix_nano,
                        r.observed_time_unix_nano,
                        r.severity_number,
                        r.severity_text,
                        plain(r.body),
                        canonical(attrs),
                    )
                )
    return out


def check_batch(lines: list[bytes]) -> None:
    b = batch(lines)
    ts = b.timestamps().ns()
    want = sorted((expected_record(line, t) for line, t in zip(lines, ts, strict=True)), key=repr)
    body, count = encoder().encode_protobuf([b])
    assert count == len(lines)
    assert sorted(received(decode(body)), key=repr) == want
    b = batch(lines)
    body, count = encoder().encode_json([b])
    assert count == len(lines)
    assert sorted(received(decode_request(body, JSON, "")), key=repr) == want


# -- records ------------------------------------------------------------------------------
def test_a_json_line_becomes_body_severity_and_attributes() -> None:
    line = json.dumps(
        {
            "ts": "2026-11-28T12:00:00.123Z",
            "level": "WARN",
            "msg": "slow request",
            "status": 429,
            "duration_ms": 12.5,
            "ok": False,
            "user": {"id": 7, "tags": ["a", None]},
            "stream": "stderr",
        }
    ).encode()
    body, _ = encoder().encode_protobuf([batch([line])])
    (rl,) = decode(body).resource_logs
    (r,) = rl.scope_logs[0].log_records
    assert r.time_unix_nano == READ_NS + 123_000_000
    assert r.observed_time_unix_nano == READ_NS
    assert (r.severity_number, r.severity_text) == (13, "WARN")
    assert plain(r.body) == "slow request"
    attrs = {kv.key: plain(kv.value) for kv in r.attributes}
    assert attrs == {
        "ts": "2026-11-28T12:00:00.123Z",
        "status": 429,
        "duration_ms": 12.5,
        "ok": False,
        "user": {"id": 7, "tags": ["a", None]},
        "log.iostream": "stderr",
        "log.file.path": PATH,
    }
    assert r.attributes[1].value.WhichOneof("value") == "int_value"


def test_raw_and_malformed_lines_are_kept_whole() -> None:
    telemetry = Telemetry()
    lines = [b"plain text", b'{"broken": ', b'{"msg": "ok", "level": "info"}']
    b = Batch(SourceInfo("app", PATH, "auto", {}), lines, 0, 50, READ_NS, telemetry)
    body, count = encoder().encode_protobuf([b])
    bodies = sorted(plain(r.body) for r in decode(body).resource_logs[0].scope_logs[0].log_records)
    assert count == 3
    assert bodies == sorted(["plain text", '{"broken": ', "ok"])
    assert telemetry.sources["app"].malformed == 1
    b.objects()
    assert telemetry.sources["app"].malformed == 1  # parsed again after release: counted once


def test_one_resource_per_label_set_with_service_name_and_overrides() -> None:
    enc = RecordEncoder({"host.name": "node-1", "k8s.pod.name": "api-1"}, {"team": "core"})
    b1 = batch([b"a"], labels={"service.name": "shop"})
    b2 = batch([b"b", b"c"])
    body, count = enc.encode_protobuf([b1, b2])
    req = decode(body)
    assert count == 3
    resources = [
        {kv.key: plain(kv.value) for kv in rl.resource.attributes} for rl in req.resource_logs
    ]
    base = {"host.name": "node-1", "k8s.pod.name": "api-1"}
    assert resources == [
        {**base, "service.name": "shop", "team": "core"},
        {**base, "team": "core", "service.name": "unknown_service"},
    ]
    assert [len(rl.scope_logs[0].log_records) for rl in req.resource_logs] == [1, 2]


def test_mixed_shapes_and_types_in_one_batch() -> None:
    lines = [
        b'{"msg": "a", "n": 1}',
        b'{"msg": "b", "n": 2.5}',
        b'{"msg": 3, "message": "c"}',
        b'{"level": 30, "msg": "d"}',
        b'{"x": null, "msg": "e"}',
        b"raw",
        b'{"msg": "f", "n": 18446744073709551615}',
        b'{"msg": "g", "log.file.path": "spoofed"}',
    ]
    check_batch(lines)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=("Cs",)), max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=6,
)
KEYS = ["msg", "message", "level", "lvl", "severity", "ts", "stream", "log.file.path", "a", "b"]
level_words = st.sampled_from([*SEVERITY, "INFO", "Warning", "other", ""])
objects = st.dictionaries(
    st.sampled_from(KEYS) | st.text(max_size=4),
    json_values | level_words | st.sampled_from(["stdout", "stderr"]),
    max_size=6,
)
raw_lines = st.text(
    st.characters(exclude_categories=("Cs",), exclude_characters="\n\r"), max_size=30
)


@settings(max_examples=150, deadline=None)
@given(st.lists(objects.map(json.dumps) | raw_lines, min_size=1, max_size=12))
def test_any_lines_encode_to_what_the_official_classes_decode(lines: list[str]) -> None:
    check_batch([line.encode() for line in lines])


@settings(max_examples=60, deadline=None)
@given(st.lists(objects, min_size=1, max_size=30))
def test_one_shape_many_values_take_the_column_path(objs: list[dict[str, Any]]) -> None:
    keys = list(objs[0])
    same = [{k: o.get(k, i) for k in keys} for i, o in enumerate(objs)]
    check_batch([json.dumps(o).encode() for o in same])


def _official_any(v: Any) -> AnyValue:
    if isinstance(v, str):
        return AnyValue(string_value=v)
    if isinstance(v, bool):
        return AnyValue(bool_value=v)
    if isinstance(v, int):
        return AnyValue(int_value=v) if v < 2**63 else AnyValue(string_value=str(v))
    if isinstance(v, float):
        return AnyValue(double_value=v)
    if v is None:
        return AnyValue()
    if isinstance(v, list):
        return AnyValue(array_value=ArrayValue(values=[_official_any(x) for x in v]))
    kvs = [KeyValue(key=k, value=_official_any(x)) for k, x in v.items()]
    return AnyValue(kvlist_value=KeyValueList(values=kvs))


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_any_value_is_byte_for_byte_the_official_serialization(value: Any) -> None:
    assert any_value(value) == _official_any(value).SerializeToString()


# -- resource ---------------------------------------------------------------------------
def test_resource_from_environment_and_config() -> None:
    env = {
        "POD_NAME": "api-7d9f-x2",
        "POD_NAMESPACE": "prod",
        "K8S_NODE_NAME": "node-a",
        "NODE_NAME": "ignored",
        "K8S_CONTAINER_NAME": "",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod,team=a%20b,bad",
        "OTEL_SERVICE_NAME": "api",
    }
    attrs = resource_attributes(env, hostname="api-7d9f-x2")
    assert attrs == {
        "host.name": "api-7d9f-x2",
        "k8s.pod.name": "api-7d9f-x2",
        "k8s.namespace.name": "prod",
        "k8s.node.name": "node-a",
        "deployment.environment": "prod",
        "team": "a b",
        "service.name": "api",
    }
    assert parse_otel_resource_attributes("") == {}


def test_sink_config_service_name_wins() -> None:
    cfg = sink_config(service_name="checkout", resource_attributes={"service.name": "x", "a": "1"})
    sink = OtlpSink("otlp", cfg, Telemetry(), env={"OTEL_SERVICE_NAME": "env"})
    attrs = sink.encoder.resource_for({"service.name": "label"})
    assert attrs["service.name"] == "checkout" and attrs["a"] == "1"


# -- the sink: headers, gzip, JSON ------------------------------------------------------
def test_sink_sends_json_gzip_with_headers_to_v1_logs() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={}, headers={"Content-Type": "application/json"})

    cfg = sink_config(
        encoding="json", compression="gzip", headers={"X-Tenant": "a"}, bearer_token="s3cret"
    )

    async def scenario() -> None:
        s = OtlpSink("otlp", cfg, Telemetry(), transport=httpx.MockTransport(handler), env={})
        await s.deliver([batch([b'{"msg": "hi", "level": "info"}'])])
        await s.aclose()

    asyncio.run(scenario())
    (req,) = seen
    assert str(req.url) == "http://otel.invalid:4318/v1/logs"
    assert req.headers["content-type"] == "application/json"
    assert req.headers["content-encoding"] == "gzip"
    assert req.headers["x-tenant"] == "a"
    assert req.headers["authorization"] == "Bearer s3cret"
    decoded = decode_request(req.content, JSON, "gzip")
    (r,) = decoded.resource_logs[0].scope_logs[0].log_records
    assert plain(r.body) == "hi" and r.severity_number == 9
    assert json.loads(gzip.decompress(req.content))["resourceLogs"][0]["scopeLogs"][0][
        "logRecords"
    ][0]["timeUnixNano"] == str(READ_NS)


def test_fake_rejects_what_otlp_json_forbids() -> None:
    good = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"severityNumber": 9}]}]}]}
    decode_request(json.dumps(good).encode(), JSON, "")
    bad_enum = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"severityNumber": "INFO"}]}]}]}
    snake = {"resource_logs": []}
    b64_id = {
        "resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "W47/95gDgQPSabYzgT/GDA=="}]}]}]
    }
    for doc in (bad_enum, snake, b64_id):
        with pytest.raises(BadRequest):
            decode_request(json.dumps(doc).encode(), JSON, "")


# -- responses --------------------------------------------------------------------------
def _partial(rejected: int, message: str) -> bytes:
    resp = ExportLogsServiceResponse(
        partial_success=ExportLogsPartialSuccess(
            rejected_log_records=rejected, error_message=message
        )
    )
    return resp.SerializeToString()


PB = {"Content-Type": PROTOBUF}
JS = {"Content-Type": "application/json; charset=utf-8"}


@pytest.mark.parametrize(
    ("status", "headers", "body", "verdict", "rejected", "retry_after", "reason"),
    [
        (200, PB, b"", Verdict.DELIVERED, 0, None, ""),
        (200, JS, b"{}", Verdict.DELIVERED, 0, None, ""),
        (204, {}, b"", Verdict.DELIVERED, 0, None, ""),  # Loki's /otlp
        (200, PB, _partial(2, "2 log records had invalid trace ids"), Verdict.REJECTED, 2, None,
         "2 log records had invalid trace ids"),
        (200, JS, b'{"partialSuccess":{"rejectedLogRecords":"3","errorMessage":"too old"}}',
         Verdict.REJECTED, 3, None, "too old"),
        (200, PB, _partial(0, "deprecated field"), Verdict.DELIVERED, 0, None, "deprecated field"),
        (200, PB, _partial(99, "all"), Verdict.REJECTED, 10, None, "all"),
        (400, PB, b"\x12\x0bbad request", Verdict.REJECTED, 10, None, "400: bad request"),
        (400, JS, b'{"message":"bad request"}', Verdict.REJECTED, 10, None, "bad request"),
        (500, PB, b"\x08\x0d\x12\x04oops", Verdict.REJECTED, 10, None, "500: oops"),
        (401, {"Content-Type": "text/plain"}, b"no auth", Verdict.REJECTED, 10, None, "no auth"),
        (429, PB, b"", Verdict.RETRY, 0, None, "HTTP 429"),
        (503, {**PB, "Retry-After": "7"}, b"\x12\x04busy", Verdict.RETRY, 0, 7.0, "busy"),
        (502, {}, b"", Verdict.RETRY, 0, None, ""),
        (504, {}, b"", Verdict.RETRY, 0, None, ""),
        (413, {}, b"", Verdict.SPLIT, 0, None, ""),
    ],
)  # fmt: skip
def test_classify(
    status: int,
    headers: dict[str, str],
    body: bytes,
    verdict: Verdict,
    rejected: int,
    retry_after: float | None,
    reason: str,
) -> None:
    out = classify(status, httpx.Headers(headers), body, 10)
    assert out.verdict is verdict
    assert out.rejected == rejected
    assert out.retry_after == retry_after
    assert reason in out.reason


def test_413_splits_and_acks_once() -> None:
    sizes: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        req = decode(request.content)
        n = sum(len(sl.log_records) for rl in req.resource_logs for sl in rl.scope_logs)
        sizes.append(n)
        return httpx.Response(413 if n > 2 else 200)

    async def scenario() -> tuple[int, int]:
        tracker = AckTracker(lambda _: None)
        f = tracker.file("k", PATH, "0:", 0)
        s = OtlpSink("otlp", sink_config(), Telemetry(), httpx.MockTransport(handler), env={})
        b = batch([b'{"msg": "l%d"}' % i for i in range(7)])
        b.ticket = f.ticket(b.end_offset, 1, 1)
        await s.deliver([b])
        await s.aclose()
        return f.committed, s.telemetry.sinks["otlp"].sent_records

    committed, sent = asyncio.run(scenario())
    assert committed == sum(len(b'{"msg": "l%d"}' % i) + 1 for i in range(7))
    assert sent == 7
    assert sizes[0] == 7 and sum(n for n in sizes if n <= 2) == 7


def test_caches_stay_bounded_when_every_line_has_new_keys() -> None:
    enc = encoder()
    for start in range(0, 10_500, 3_500):
        lines = [b'{"msg": "m", "id-%d": %d}' % (i, i) for i in range(start, start + 3_500)]
        body, count = enc.encode_protobuf([batch(lines)])
        assert count == len(decode(body).resource_logs[0].scope_logs[0].log_records)
    assert len(enc._shapes) <= 10_001
    assert len(enc._int_attrs) <= 10_001


def test_raw_format_sends_json_lines_whole_without_parsing() -> None:
    lines = [b'{"msg": "a", "level": "info", "n": 1}', b"plain"]
    body, count = encoder().encode_protobuf([batch(lines, fmt="raw")])
    records = decode(body).resource_logs[0].scope_logs[0].log_records
    assert count == 2
    assert [plain(r.body) for r in records] == [line.decode() for line in lines]
    assert all(r.severity_number == 0 for r in records)
    assert all([kv.key for kv in r.attributes] == ["log.file.path"] for r in records)


# -- typed columns (one key set, one type per key) against the dict path -----------------
scalar_kinds = {
    "str": st.text(max_size=12),
    "int": st.integers(min_value=-(2**63), max_value=2**63 - 1),
    "float": st.floats(allow_nan=False, allow_infinity=False),
    "bool": st.booleans(),
    "null": st.none(),
}
odd_lines = st.sampled_from(
    [
        "not json",
        '{"msg": "cut',
        '{"msg": "nested", "a": {"b": [1, 2.5, null]}}',
        '{"msg": "\\u00e9\\ud83d\\ude00 escaped", "level": "\\u0049NFO"}',
        '{"msg": 7, "level": 3}',
        '{"level": "warn"}',
        "[1, 2]",
        '{"msg": "big", "n": 18446744073709551615}',
        '{"msg": "two"}, {"msg": "objects"}',
    ]
)


@st.composite
def uniform_batches(draw: st.DrawFn) -> tuple[list[bytes], bool]:
    """Lines with one key set and one JSON type per key, sometimes with odd lines mixed in."""
    keys = draw(st.lists(st.sampled_from(KEYS) | st.text(max_size=4), min_size=1, max_size=6))
    kinds = {k: draw(st.sampled_from(sorted(scalar_kinds))) for k in keys}
    if "level" in kinds and draw(st.booleans()):
        kinds["level"] = "level"
    strategies = {**scalar_kinds, "level": level_words}
    n = draw(st.integers(min_value=1, max_value=15))
    objs = [{k: draw(strategies[kinds[k]]) for k in kinds} for _ in range(n)]
    lines = [json.dumps(o, ensure_ascii=draw(st.booleans())) for o in objs]
    odd = draw(st.booleans())
    if odd:
        lines.insert(draw(st.integers(0, len(lines))), draw(odd_lines))
    return [line.encode() for line in lines], odd


@settings(max_examples=200, deadline=None)
@given(uniform_batches())
def test_typed_columns_encode_what_the_dict_path_encodes(case: tuple[list[bytes], bool]) -> None:
    lines, odd = case
    check_batch(lines)
    enc = encoder()
    keys = json.loads(lines[0]) if not odd else {}
    if not odd and all(c not in '"\\' and c >= " " for k in keys for c in k):
        assert enc._columns.columns(lines) is not None, "a uniform batch takes the typed path"
    typed = received(decode(enc.encode_protobuf([batch(lines)])[0]))
    slow = encoder()
    slow._columns.columns = lambda lines: None  # type: ignore[method-assign]
    by_dicts = received(decode(slow.encode_protobuf([batch(lines)])[0]))
    assert sorted(typed, key=repr) == sorted(by_dicts, key=repr)


def test_a_uniform_batch_takes_the_typed_path_and_odd_lines_do_not() -> None:
    lines = [
        b'{"ts":"2026-11-28T12:00:00.002Z","level":"info","msg":"served","status":200,'
        b'"duration_ms":0.791,"req":"b2609a0bdd2b7550"}',
        b'{"ts":"2026-11-28T12:00:00.003Z","level":"error","msg":"failed \\u00e9","status":503,'
        b'"duration_ms":12.5,"req":"99ba695ab78d8387"}',
    ]
    enc = encoder()
    typed = enc._columns.columns(lines)
    assert typed is not None
    keys, kinds, columns = typed
    assert keys == ("ts", "level", "msg", "status", "duration_ms", "req")
    assert kinds == (str, str, str, int, float, str)
    assert list(columns[2]) == ["served", "failed é"]
    for odd in (
        b"plain",  # not JSON
        b'{"ts":"x","level":"info","msg":"m","status":200,"duration_ms":1,"req":"r"}',  # an int
        b'{"ts":"x","level":"info","msg":"m","status":200,"duration_ms":1.5}',  # a key missing
        b'{"ts":"x","level":"info","msg":"m","status":2e0,"duration_ms":1.5,"req":"r"}',
        b'{"ts":"x","level":"info","msg":"m","status":9223372036854775808,'
        b'"duration_ms":1.5,"req":"r"}',  # beyond int64
    ):
        assert enc._columns.columns([*lines, odd]) is None
    check_batch([*lines, b"plain"])


def test_typed_caches_stay_bounded_with_ever_new_level_words() -> None:
    enc = encoder()
    n = 20_000
    for start in range(0, 4 * n, n):
        words = [f"w{i}" for i in range(start, start + n)]
        lines = [f'{{"level": "{w}", "msg": "m{w}"}}'.encode() for w in words]
        body, count = enc.encode_protobuf([batch(lines)])
        records = decode(body).resource_logs[0].scope_logs[0].log_records
        assert count == len(records) == n
        assert sorted((r.severity_text, plain(r.body)) for r in records) == sorted(
            (w, f"m{w}") for w in words
        )
    # Without the reset at 50,000 entries, four batches would leave 80,000 words (each with
    # its own cache of prefixes by body length).
    entries = sum(
        len(by_level) + sum(map(len, by_level.values()))
        for by_level in enc._level_prefixes.values()
    )
    assert 0 < entries <= 2 * (50_000 + n)
    assert len(enc._level_ids) <= 50_000 + n
    assert len(enc._prefixes) <= 50_000 + n


# -- the current encoder against the previous one (tests/otlp_previous_encoder.py) -------
def _records_by_resource(body: bytes) -> list[tuple[bytes, bytes, list[bytes]]]:
    """Each ResourceLogs as (resource, scope, its records as bytes in sorted order).

    Re-serialized by the official classes, so two encoders agree here exactly when their
    records carry the same fields with the same values and attributes in the same order;
    the order of records inside a request is free (they are grouped by shape).
    """
    out = []
    for rl in decode(body).resource_logs:
        for sl in rl.scope_logs:
            recs = sorted(r.SerializeToString(deterministic=True) for r in sl.log_records)
            out.append((rl.resource.SerializeToString(deterministic=True), sl.scope.name, recs))
    return sorted(out, key=repr)  # type: ignore[arg-type]


_any_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=5,
)
_mixed_objects = st.dictionaries(
    st.sampled_from(KEYS) | st.text(max_size=4),
    _any_json | level_words | st.sampled_from(["stdout", "stderr", "2026-11-28T12:00:00.5Z"]),
    max_size=6,
)
_odd_bytes = st.sampled_from(
    [
        b"not json",
        b'{"msg":"a","x":[1,}',
        b"[1,2]",
        b'"just a string"',
        b"",
        b'{"msg":"\xff bad utf-8"}',
        b'{"msg":"\xed\xa0\x80 surrogate"}',
        b'{"msg":"\\ud800 lone escape","level":"info"}',
        b'{"msg":"\\u00e9\\ud83d\\ude00\\/","level":"\\u0049NFO"}',
        b'{"msg":1e999}',
        b'{"msg":"x"} trailing',
        b'{"level":1,"msg":"n"}',
        b'{"level":true,"msg":"b"}',
        b'{"msg":"big","status":18446744073709551616}',
        b'{"msg":"deep","a":{"b":{"c":[1,2.5,null,"s"]}}}',
    ]
)


@st.composite
def _previous_encoder_cases(draw: st.DrawFn) -> tuple[list[bytes], str]:
    """Uniform batches (the typed path), mixed shapes, odd lines, or all of them."""
    kind = draw(st.sampled_from(["uniform", "mixed"]))
    if kind == "uniform":
        lines, _ = draw(uniform_batches())
    else:
        pick = st.builds(
            lambda o, a: json.dumps(o, ensure_ascii=a).encode(), _mixed_objects, st.booleans()
        )
        lines = draw(st.lists(pick | _odd_bytes, min_size=1, max_size=12))
    return lines, draw(st.sampled_from(["auto", "json", "raw"]))


@settings(max_examples=300, deadline=None)
@given(_previous_encoder_cases(), st.sampled_from([{}, {"pod": "p-1"}]))
def test_requests_decode_to_those_of_the_previous_encoder(
    case: tuple[list[bytes], str], labels: dict[str, str]
) -> None:
    """The faster encoder's requests carry exactly the records the previous one sent."""
    import otlp_previous_encoder

    lines, fmt = case
    old = otlp_previous_encoder.RecordEncoder({"host.name": "node-1"}, {})
    new = encoder()
    for _ in range(2):  # the second round runs on warm caches
        before, n_before = old.encode_protobuf([batch(lines, labels, fmt)])
        after, n_after = new.encode_protobuf([batch(lines, labels, fmt)])
        assert n_after == n_before == len(lines)
        try:
            want = _records_by_resource(before)
        except DecodeError:  # a line of invalid UTF-8 sent as a string: both must do so
            with pytest.raises(DecodeError):
                _records_by_resource(after)
            continue
        assert _records_by_resource(after) == want


def test_level_words_learned_by_a_shape_and_new_ones_still_decoded() -> None:
    """A shape decodes its known level words as cached strings; a new word is not lost."""
    enc = encoder()
    first = [b'{"level":"info","msg":"a"}', b'{"level":"debug","msg":"b"}']
    then = [b'{"level":"info","msg":"c"}', b'{"level":"NOTICE","msg":"d"}']
    many = [b'{"level":"w%d","msg":"e"}' % i for i in range(100)]  # more than are learned
    for lines in (first, first, then, then, many, many):
        check_batch(lines)
        body, _ = enc.encode_protobuf([batch(lines)])
        records = decode(body).resource_logs[0].scope_logs[0].log_records
        assert sorted((r.severity_text, plain(r.body)) for r in records) == sorted(
            (json.loads(x)["level"], json.loads(x)["msg"]) for x in lines
        )
    (shape,) = (s for s in enc._columns._shapes.values() if s is not None)
    assert {"info", "debug", "NOTICE"} <= shape.words
    assert len(shape.words) <= 64
    assert shape.decode_words is None, "too many words: the shape stopped trying them"


@pytest.mark.parametrize("ts", [b"-1", b'"2600-01-01T00:00:00Z"', b'"1960-01-01T00:00:00Z"'])
def test_a_time_outside_fixed64_is_sent_as_zero(ts: bytes) -> None:
    lines = [b'{"ts":%s,"msg":"far"}' % ts, b'{"ts":1764331200,"msg":"near"}']
    check_batch(lines)
    (record, near) = sorted(
        decode(encoder().encode_protobuf([batch(lines)])[0])
        .resource_logs[0]
        .scope_logs[0]
        .log_records,
        key=lambda r: r.time_unix_nano,
    )
    assert record.time_unix_nano == 0 and plain(record.body) == "far"
    assert near.time_unix_nano == 1764331200 * NS


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=4).map(str.encode), min_size=1))
def test_one_size_is_the_size_of_every_piece_or_none(pieces: list[bytes]) -> None:
    from logship.sinks.otlp import _one_size

    sizes = set(map(len, pieces))
    assert _one_size(pieces) == (sizes.pop() if len(sizes) == 1 else None)
