"""A fake Elasticsearch 8 / OpenSearch 2 ``_bulk`` endpoint for tests (PROTOCOLS.md section B).

It shares no code with logship's encoder: bodies are split into lines and decoded with the
standard ``json`` module, responses are built as dictionaries and pruned by an independent
``filter_path`` implementation. What it does like the real servers:

* ``POST|PUT /_bulk`` and ``/{target}/_bulk``; ``Content-Type`` must be (vnd.elasticsearch+)
  x-ndjson or json; ``Content-Encoding: gzip`` bodies; ``http.max_content_length`` applies to
  the uncompressed body and answers 413 with an **empty** body, as Netty does.
* NDJSON rules: the last line must end with a newline; an action line that is malformed, has
  an unknown action or an unknown metadata key (``_type`` included) fails the whole request
  with 400; a source line that does not parse fails only its item (400
  ``document_parsing_exception``, ``mapper_parsing_exception`` on OpenSearch).
* ``create`` on an existing ``(index, _id)`` answers item 409
  ``version_conflict_engine_exception``; ``index`` replaces; ``delete`` has no source.
* Response shape ``{"errors","took","items"}``, one item per action in request order,
  ``filter_path`` with ``*`` wildcards and pruning of emptied objects and arrays.
* Auth: ``expected_auth`` (the whole ``Authorization`` value) else 401 ``security_exception``
  with ``WWW-Authenticate``. ES sends ``X-Elastic-Product: Elasticsearch``; OpenSearch does not.

Scripted failures: :meth:`fail_next` (whole request, e.g. 429 with ``Retry-After``, 413, 503),
:meth:`fail_items` (the next N items get 429/5xx, stored nothing), and ``reject_when`` (a
predicate over the decoded document: item 400, as a mapping error would).
"""

from __future__ import annotations

import contextlib
import fnmatch
import gzip
import json
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

ACTIONS = {"index", "create", "update", "delete"}
META_KEYS = {
    "_index",
    "_id",
    "routing",
    "pipeline",
    "require_alias",
    "dynamic_templates",
    "if_seq_no",
    "if_primary_term",
    "version",
    "version_type",
    "op_type",
    "retry_on_conflict",
}
CONTENT_TYPES = (
    "application/x-ndjson",
    "application/json",
    "application/vnd.elasticsearch+x-ndjson",
    "application/vnd.elasticsearch+json",
)
_MISSING = object()


def filter_response(value: Any, filter_path: str) -> Any:
    """Apply ES's ``filter_path``: keep matching paths, prune emptied objects and arrays."""
    patterns = [p.split(".") for p in filter_path.split(",") if p.strip()]
    if not patterns:
        return value
    out = _filter(value, patterns)
    return {} if out is _MISSING else out


def _filter(value: Any, patterns: list[list[str]]) -> Any:
    if any(not p for p in patterns):  # a path ended here: keep the whole value
        return value
    if isinstance(value, list):  # paths go through arrays transparently
        kept = [r for v in value if (r := _filter(v, patterns)) is not _MISSING]
        return kept if kept else _MISSING
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, v in value.items():
            sub = [p[1:] for p in patterns if fnmatch.fnmatchcase(key, p[0])]
            if sub:
                r = _filter(v, sub)
                if r is not _MISSING:
                    out[key] = r
        return out if out else _MISSING
    return _MISSING


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class BulkRequestRecord:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    status: int
    ids: list[str | None] = field(default_factory=list)  # the _id of each action, in order
    item_statuses: list[int] = field(default_factory=list)


@dataclass
class StoredDoc:
    index: str
    id: str
    source: dict[str, Any]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: FakeElasticsearch

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _any(self) -> None:
        self.server.owner._serve(self)

    do_POST = do_GET = do_PUT = do_DELETE = do_HEAD = _any


class _BadRequest(Exception):
    def __init__(self, reason: str, status: int = 400, type_: str = "illegal_argument_exception"):
        super().__init__(reason)
        self.status = status
        self.type = type_
        self.reason = reason


class FakeElasticsearch:
    """A fake ``_bulk`` endpoint on ``127.0.0.1:<random port>`` (see the module docstring)."""

    def __init__(
        self,
        *,
        flavor: str = "elasticsearch",
        expected_auth: str | None = None,
        max_content_length: int = 100 * 1024 * 1024,
        reject_when: Callable[[dict[str, Any]], bool] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if flavor not in ("elasticsearch", "opensearch"):
            raise ValueError(flavor)
        self.flavor = flavor
        self.expected_auth = expected_auth
        self.max_content_length = max_content_length
        self.reject_when = reject_when
        self.host = host
        self._port = port
        self._lock = threading.Lock()
        self._docs: dict[tuple[str, str], StoredDoc] = {}
        self._order: list[tuple[str, str]] = []
        self._requests: list[BulkRequestRecord] = []
        self._failures: deque[Reply] = deque()
        self._item_failures: deque[int] = deque()
        self._conflicts = 0
        self._seq = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle ---------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self._port}"

    @property
    def port(self) -> int:
        return self._port

    def start(self) -> FakeElasticsearch:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deadline = time.monotonic() + 5
        while True:
            try:
                sock.bind((self.host, self._port))
                break
            except OSError:
                if self._port == 0 or time.monotonic() > deadline:
                    sock.close()
                    raise
                time.sleep(0.05)
        server = _Server((self.host, 0), _Handler, bind_and_activate=False)
        server.socket.close()
        server.socket = sock
        server.server_address = sock.getsockname()
        server.owner = self
        sock.listen(64)
        self._port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(10)
            self._server = self._thread = None

    def __enter__(self) -> FakeElasticsearch:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- scripting ---------------------------------------------------------------------
    def fail_next(
        self,
        count: int,
        status: int,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next ``count`` bulk requests with ``status``, storing nothing."""
        if body is None:
            body = b"" if status == 413 else self._envelope(status)
        with self._lock:
            for _ in range(count):
                self._failures.append(Reply(status, body, dict(headers or {})))

    def fail_items(self, count: int, status: int = 429) -> None:
        """The next ``count`` items (in arrival order) fail with ``status``, not stored."""
        with self._lock:
            self._item_failures.extend([status] * count)

    # ---- observation -------------------------------------------------------------------
    @property
    def docs(self) -> list[StoredDoc]:
        with self._lock:
            return [self._docs[k] for k in self._order]

    @property
    def requests(self) -> list[BulkRequestRecord]:
        with self._lock:
            return list(self._requests)

    @property
    def conflicts(self) -> int:
        """Items answered 409 (``create`` on an existing id)."""
        with self._lock:
            return self._conflicts

    def messages(self) -> list[str]:
        return [d.source.get("message", "") for d in self.docs]

    # ---- serving -----------------------------------------------------------------------
    def _error_types(self, status: int) -> tuple[str, str]:
        os_ = self.flavor == "opensearch"
        if status == 429:
            kind = "rejected_execution_exception" if os_ else "es_rejected_execution_exception"
            return kind, "rejected execution of coordinating operation [shard_detail=...]"
        if status == 401:
            return "security_exception", "missing authentication credentials for REST request"
        if status == 403:
            return "security_exception", "action [indices:data/write/bulk] is unauthorized"
        if status >= 500:
            return "unavailable_shards_exception", "primary shard is not active"
        return "illegal_argument_exception", "bad request"

    def _envelope(self, status: int, type_: str | None = None, reason: str | None = None) -> bytes:
        t, r = self._error_types(status)
        err = {"type": type_ or t, "reason": reason or r}
        doc = {"error": {"root_cause": [err], **err}, "status": status}
        return json.dumps(doc).encode()

    def _serve(self, h: _Handler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        parts = urlsplit(h.path)
        query = parse_qs(parts.query)
        headers = {k.lower(): v for k, v in h.headers.items()}
        reply = self._answer(h.command, parts.path, query, headers, raw)
        h.send_response(reply.status)
        if self.flavor == "elasticsearch":
            h.send_header("X-Elastic-Product", "Elasticsearch")
        if reply.body:
            h.send_header("Content-Type", "application/json")
        for k, v in reply.headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(reply.body)))
        h.end_headers()
        h.wfile.write(reply.body)

    def _answer(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        raw: bytes,
    ) -> Reply:
        record = BulkRequestRecord(method, path, query, headers, 0)
        reply = self._answer_bulk(method, path, query, headers, raw, record)
        record.status = reply.status
        with self._lock:
            self._requests.append(record)
        return reply

    def _answer_bulk(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        raw: bytes,
        record: BulkRequestRecord,
    ) -> Reply:
        segments = [s for s in path.split("/") if s]
        if method not in ("POST", "PUT") or not segments or segments[-1] != "_bulk":
            return Reply(404, self._envelope(404, "resource_not_found", f"no handler for {path}"))
        if len(segments) > 2:
            return Reply(404, self._envelope(404, "resource_not_found", f"no handler for {path}"))
        target = segments[0] if len(segments) == 2 else None
        if self.expected_auth is not None and headers.get("authorization") != self.expected_auth:
            return Reply(
                401,
                self._envelope(401),
                {"WWW-Authenticate": 'Basic realm="security" charset="UTF-8", ApiKey'},
            )
        with self._lock:
            scripted = self._failures.popleft() if self._failures else None
        if scripted is not None:
            return scripted
        media = headers.get("content-type", "").split(";")[0].strip().lower()
        if media not in CONTENT_TYPES:
            return Reply(
                406,
                json.dumps(
                    {"error": f"Content-Type header [{media}] is not supported", "status": 406}
                ).encode(),
            )
        body = raw
        if headers.get("content-encoding", "").lower() == "gzip":
            try:
                body = gzip.decompress(raw)
            except (OSError, EOFError):
                return Reply(400, self._envelope(400, reason="cannot decompress the body"))
        if len(body) > self.max_content_length:
            return Reply(413)
        try:
            ops = self._parse(body, target)
        except _BadRequest as e:
            return Reply(e.status, self._envelope(e.status, e.type, e.reason))
        started = time.monotonic()
        items = [self._apply(op) for op in ops]
        record.ids = [op[2] for op in ops]
        record.item_statuses = [next(iter(i.values()))["status"] for i in items]
        errors = any("error" in next(iter(i.values())) for i in items)
        took = int((time.monotonic() - started) * 1000)
        response: dict[str, Any] = {"errors": errors, "took": took, "items": items}
        filters = query.get("filter_path")
        if filters:
            response = filter_response(response, ",".join(filters))
        return Reply(200, json.dumps(response, separators=(",", ":")).encode())

    def _parse(
        self, body: bytes, target: str | None
    ) -> list[tuple[str, str | None, str | None, Any]]:
        """(action, index, id, source or an exception marker) per operation."""
        if body and not body.endswith(b"\n"):
            raise _BadRequest("The bulk request must be terminated by a newline [\\n]")
        lines = [ln[:-1] if ln.endswith(b"\r") else ln for ln in body.split(b"\n")[:-1]]
        ops: list[tuple[str, str | None, str | None, Any]] = []
        i = 0
        while i < len(lines):
            line_no = i + 1
            if not lines[i].strip():
                i += 1
                continue
            try:
                action_line = json.loads(lines[i])
            except ValueError as e:
                raise _BadRequest(f"Malformed action/metadata line [{line_no}]: {e}") from None
            if not isinstance(action_line, dict) or len(action_line) != 1:
                raise _BadRequest(
                    f"Malformed action/metadata line [{line_no}], expected a simple value"
                )
            ((action, meta),) = action_line.items()
            if action not in ACTIONS:
                raise _BadRequest(
                    f"Malformed action/metadata line [{line_no}], expected one of "
                    f"[create, delete, index, update] but found [{action}]"
                )
            if not isinstance(meta, dict):
                raise _BadRequest(f"Malformed action/metadata line [{line_no}]")
            for k in meta:
                if k not in META_KEYS:
                    raise _BadRequest(
                        f"Action/metadata line [{line_no}] contains an unknown parameter [{k}]"
                    )
            index = meta.get("_index", target)
            if index is None:
                raise _BadRequest(
                    "Validation Failed: 1: index is missing;",
                    400,
                    "action_request_validation_exception",
                )
            doc_id = meta.get("_id")
            if action == "index" and meta.get("op_type") == "create":
                action = "create"
            i += 1
            source: Any = None
            if action != "delete":
                if i >= len(lines):
                    raise _BadRequest("Validation Failed: 1: source is missing;")
                try:
                    source = json.loads(lines[i])
                except ValueError as e:
                    source = _ParseFailure(str(e))
                i += 1
            ops.append((action, index, doc_id, source))
        return ops

    def _apply(self, op: tuple[str, str | None, str | None, Any]) -> dict[str, Any]:
        action, index, doc_id, source = op
        index = index or ""
        with self._lock:
            self._seq += 1
            if doc_id is None:
                doc_id = f"gen{self._seq:017d}"
            base: dict[str, Any] = {"_index": index, "_id": doc_id}
            if self._item_failures:
                status = self._item_failures.popleft()
                t, r = self._error_types(status)
                return {action: {**base, "status": status, "error": {"type": t, "reason": r}}}
            parse_error = (
                "mapper_parsing_exception"
                if self.flavor == "opensearch"
                else "document_parsing_exception"
            )
            if isinstance(source, _ParseFailure) or (
                action != "delete" and not isinstance(source, dict)
            ):
                return {
                    action: {
                        **base,
                        "status": 400,
                        "error": {"type": parse_error, "reason": "[1:1] failed to parse"},
                    }
                }
            if action != "delete" and self.reject_when is not None and self.reject_when(source):
                return {
                    action: {
                        **base,
                        "status": 400,
                        "error": {
                            "type": parse_error,
                            "reason": "[1:42] failed to parse field [fields.n] of type [long]",
                            "caused_by": {
                                "type": "illegal_argument_exception",
                                "reason": "For input string",
                            },
                        },
                    }
                }
            key = (index, doc_id)
            exists = key in self._docs
            if action == "create" and exists:
                self._conflicts += 1
                return {
                    action: {
                        **base,
                        "status": 409,
                        "error": {
                            "type": "version_conflict_engine_exception",
                            "reason": f"[{doc_id}]: version conflict, document already exists "
                            "(current version [1])",
                            "index": index,
                            "shard": "0",
                        },
                    }
                }
            if action == "delete":
                if exists:
                    del self._docs[key]
                    self._order.remove(key)
                return {
                    action: {
                        **base,
                        "status": 200 if exists else 404,
                        "result": "deleted" if exists else "not_found",
                    }
                }
            self._docs[key] = StoredDoc(index, doc_id, source)
            if not exists:
                self._order.append(key)
            return {
                action: {
                    **base,
                    "_version": 1,
                    "result": "updated" if exists else "created",
                    "_shards": {"total": 2, "successful": 1, "failed": 0},
                    "_seq_no": self._seq,
                    "_primary_term": 1,
                    "status": 200 if exists else 201,
                }
            }


@dataclass
class _ParseFailure:
    message: str


@contextlib.contextmanager
def reserved_port() -> Iterator[int]:
    """A port bound but not listening while the block runs: connections to it are refused,
    and no other process (nor an outgoing connection's local end) can take it meanwhile."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])
