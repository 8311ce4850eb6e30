"""An in-process fake OTLP/HTTP logs receiver, for integration tests.

It answers ``POST /v1/logs`` as PROTOCOLS.md section C describes and records what it
stored. It shares no code with the agent: bodies are decoded by the official
``opentelemetry-proto`` classes (protobuf with ``FromString``, JSON with
``google.protobuf.json_format`` after the OTLP-specific checks of C.3).

Typical use::

    with FakeOtlp() as otlp:
        ...  # point the agent at otlp.url
        otlp.wait_for_records(1000)
        assert otlp.records[0].body == "hello"

Fault injection: :meth:`FakeOtlp.fail_next` (any status, a ``google.rpc.Status`` body in
the request's encoding, optional headers such as ``Retry-After``) and
:meth:`FakeOtlp.partial_next` (200 with ``partial_success``).

``FakeOtlp(loki=True)`` answers like Loki's ``/otlp/v1/logs`` (PROTOCOLS.md C.8): 204 with
no body on success, error bodies as protobuf ``Status`` with ``application/octet-stream``,
and every 500 rewritten to 503.
"""

from __future__ import annotations

import base64
import gzip
import json
import threading
import time
import zlib
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsPartialSuccess,
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

LOGS_PATH = "/v1/logs"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_HEX_FIELDS = {"traceId": 16, "spanId": 8}
_INT64_FIELDS = {"timeUnixNano", "observedTimeUnixNano", "intValue"}


def plain(value: AnyValue) -> Any:
    """An ``AnyValue`` as a Python value (kvlist as dict, array as list, unset as None)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "kvlist_value":
        return {kv.key: plain(kv.value) for kv in value.kvlist_value.values}
    if kind == "array_value":
        return [plain(v) for v in value.array_value.values]
    return getattr(value, kind)


@dataclass
class StoredRecord:
    resource: dict[str, Any]
    scope: str
    record: LogRecord

    @property
    def body(self) -> Any:
        return plain(self.record.body)

    @property
    def attributes(self) -> dict[str, Any]:
        return {kv.key: plain(kv.value) for kv in self.record.attributes}


@dataclass
class RequestRecord:
    arrived: float  # time.monotonic()
    status: int
    content_type: str
    content_encoding: str
    headers: dict[str, str]
    records: int


@dataclass
class _Fault:
    status: int
    message: str
    headers: dict[str, str] = field(default_factory=dict)
    rejected: int = 0  # with status 200: a partial success


class BadRequest(Exception):
    pass


def _check_json(node: Any, path: str = "") -> None:
    """The OTLP JSON rules the protobuf JSON parser does not enforce (PROTOCOLS.md C.3)."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            _check_json(item, f"{path}[{i}]")
        return
    if not isinstance(node, dict):
        return
    for key, value in list(node.items()):
        where = f"{path}.{key}" if path else key
        if "_" in key:
            raise BadRequest(f"{where}: field names are lowerCamelCase in OTLP JSON")
        if key == "severityNumber" and not isinstance(value, int):
            raise BadRequest(f"{where}: enums are integers in OTLP JSON, got {value!r}")
        if key in _INT64_FIELDS and not isinstance(value, str | int):
            raise BadRequest(f"{where}: a 64-bit integer is a decimal string, got {value!r}")
        if key in _HEX_FIELDS and value != "":
            try:
                raw = bytes.fromhex(value)
            except (TypeError, ValueError):
                raise BadRequest(f"{where}: ids are hex in OTLP JSON, got {value!r}") from None
            if len(raw) != _HEX_FIELDS[key]:
                raise BadRequest(f"{where}: {key} must be {_HEX_FIELDS[key]} bytes")
            node[key] = base64.b64encode(raw).decode()  # what json_format expects for bytes
            continue
        _check_json(value, where)


def decode_request(
    body: bytes, content_type: str, content_encoding: str
) -> ExportLogsServiceRequest:
    encoding = content_encoding.strip().lower()
    if encoding == "gzip":
        body = gzip.decompress(body)
    elif encoding == "deflate":
        body = zlib.decompress(body)
    elif encoding not in ("", "identity"):
        raise BadRequest(f"unsupported Content-Encoding {content_encoding!r}")
    if content_type == JSON:
        doc = json.loads(body)
        _check_json(doc)
        req = ExportLogsServiceRequest()
        json_format.ParseDict(doc, req, ignore_unknown_fields=True)
        return req
    if content_type == PROTOBUF:
        try:
            return ExportLogsServiceRequest.FromString(body)
        except DecodeError as e:
            raise BadRequest(f"cannot decode protobuf: {e}") from None
    raise BadRequest(f"unsupported Content-Type {content_type!r}")


def _status_body(message: str, content_type: str) -> bytes:
    if content_type == JSON:
        return json.dumps({"message": message}).encode()
    # google.rpc.Status { int32 code = 1; string message = 2; }, written by hand: the
    # googleapis classes are not a dependency. Field 2, length-delimited.
    raw = message.encode()
    return b"\x12" + _varint(len(raw)) + raw


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        headers = {k.lower(): v for k, v in self.headers.items()}
        ctype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        reply_type = JSON if ctype == JSON else PROTOBUF
        status, payload, extra, count = fake._handle(self.path, ctype, headers, body)
        if fake.loki:
            reply_type = "application/octet-stream"
            if status == 200:
                status, payload = 204, b""
            elif status == 500:
                status = 503
        fake._log(
            RequestRecord(
                time.monotonic(),
                status,
                ctype,
                headers.get("content-encoding", ""),
                headers,
                count,
            )
        )
        self.send_response(status)
        if status != 204:
            self.send_header("Content-Type", reply_type)
            self.send_header("Content-Length", str(len(payload)))
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(payload)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeOtlp


class FakeOtlp:
    def __init__(self, path: str = LOGS_PATH, loki: bool = False) -> None:
        self.path = path
        self.loki = loki
        self.records: list[StoredRecord] = []
        self.requests: list[RequestRecord] = []
        self._faults: deque[_Fault] = deque()
        self._lock = threading.Condition()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The base URL an agent is given (records go to ``url + /v1/logs``)."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeOtlp:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail_next(
        self, count: int, status: int, message: str, headers: dict[str, str] | None = None
    ) -> None:
        """Answer the next ``count`` requests with ``status`` and a Status ``message``."""
        with self._lock:
            for _ in range(count):
                self._faults.append(_Fault(status, message, dict(headers or {})))

    def partial_next(self, rejected: int, message: str) -> None:
        """Answer the next request with a partial success; its first records are not stored."""
        with self._lock:
            self._faults.append(_Fault(200, message, rejected=rejected))

    def bodies(self) -> list[Any]:
        with self._lock:
            return [r.body for r in self.records]

    def wait_for_records(self, n: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.records) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    got = len(self.records)
                    raise AssertionError(f"timed out waiting for {n} records, got {got}")
                self._lock.wait(left)

    def _log(self, rec: RequestRecord) -> None:
        with self._lock:
            self.requests.append(rec)

    def _handle(
        self, path: str, ctype: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes, dict[str, str], int]:
        reply_type = PROTOBUF if self.loki or ctype != JSON else JSON
        if path.split("?", 1)[0] != self.path:
            return 404, _status_body(f"no route for {path}", reply_type), {}, 0
        try:
            req = decode_request(body, ctype, headers.get("content-encoding", ""))
        except (BadRequest, ValueError, json_format.ParseError) as e:
            status = 415 if "Content-Type" in str(e) else 400
            return status, _status_body(str(e), reply_type), {}, 0
        stored = [
            StoredRecord(
                {kv.key: plain(kv.value) for kv in rl.resource.attributes},
                sl.scope.name,
                rec,
            )
            for rl in req.resource_logs
            for sl in rl.scope_logs
            for rec in sl.log_records
        ]
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
        if fault is not None and fault.status != 200:
            return fault.status, _status_body(fault.message, reply_type), fault.headers, len(stored)
        response = ExportLogsServiceResponse()
        if fault is not None:
            response.partial_success.CopyFrom(
                ExportLogsPartialSuccess(
                    rejected_log_records=fault.rejected, error_message=fault.message
                )
            )
            stored = stored[fault.rejected :]
        with self._lock:
            self.records.extend(stored)
            self._lock.notify_all()
        if reply_type == JSON:
            payload = json_format.MessageToJson(response, indent=None).encode()
        else:
            payload = response.SerializeToString()
        return 200, payload, {}, len(stored)
