"""A fast, counting sink server for the benchmark: Loki push, Elasticsearch ``_bulk``, OTLP logs.

It runs in its own process (``python benchmarks/receiver.py``) so that its CPU time is never
charged to the agent being measured, and it decodes every body with an implementation that is
independent of the agent's (the protobuf runtime, not a hand-written encoder) so that the line
count it reports is a real correctness check, not an echo of the agent's own bookkeeping.

Protocol with the harness:

* It prints ``PORT <n>`` on stdout once it listens on 127.0.0.1 (port 0 = chosen by the OS).
* ``GET /_stats`` returns JSON counters; ``POST /_reset`` zeroes them.
* It exits when its stdin reaches EOF, so it can never outlive a harness that crashed.

The HTTP/1.1 server is a small asyncio-streams loop (keep-alive, ``Content-Length`` and chunked
bodies) rather than ``http.server``: it answers each request before decoding the body, so the
agent never waits on the receiver's bookkeeping.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import sys
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import cramjam
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

LOKI_PATH = "/loki/api/v1/push"
BULK_SUFFIX = "/_bulk"
OTLP_PATH = "/v1/logs"


def _message_classes() -> dict[str, Any]:
    """Build decoders from descriptors written here, so no generated ``*_pb2`` files are needed.

    Loki follows PROTOCOLS.md A.2 (``Timestamp`` is declared locally with the same field numbers
    as ``google.protobuf.Timestamp``, which is wire-identical). For OTLP only the path down to
    ``LogRecord`` is declared: every other field is skipped as unknown by the C runtime, which is
    all a counter needs.
    """
    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(
        name="logship_bench_receiver.proto", package="bench", syntax="proto3"
    )

    def msg(name: str, *fields: tuple[str, int, int, str | None, bool]) -> None:
        m = fdp.message_type.add(name=name)
        for fname, number, ftype, type_name, repeated in fields:
            f = m.field.add(name=fname, number=number, type=ftype)
            f.label = F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL
            if type_name:
                f.type_name = f".bench.{type_name}"

    # Loki (package logproto in the real schema).
    msg(
        "Timestamp",
        ("seconds", 1, F.TYPE_INT64, None, False),
        ("nanos", 2, F.TYPE_INT32, None, False),
    )
    msg(
        "LabelPairAdapter",
        ("name", 1, F.TYPE_STRING, None, False),
        ("value", 2, F.TYPE_STRING, None, False),
    )
    msg(
        "EntryAdapter",
        ("timestamp", 1, F.TYPE_MESSAGE, "Timestamp", False),
        ("line", 2, F.TYPE_STRING, None, False),
        ("structuredMetadata", 3, F.TYPE_MESSAGE, "LabelPairAdapter", True),
        ("parsed", 4, F.TYPE_MESSAGE, "LabelPairAdapter", True),
    )
    msg(
        "StreamAdapter",
        ("labels", 1, F.TYPE_STRING, None, False),
        ("entries", 2, F.TYPE_MESSAGE, "EntryAdapter", True),
        ("hash", 3, F.TYPE_UINT64, None, False),
    )
    msg(
        "PushRequest",
        ("streams", 1, F.TYPE_MESSAGE, "StreamAdapter", True),
        ("format", 2, F.TYPE_STRING, None, False),
    )
    # OTLP ExportLogsServiceRequest, reduced to the path that reaches each LogRecord.
    msg("LogRecord")
    msg("ScopeLogs", ("log_records", 2, F.TYPE_MESSAGE, "LogRecord", True))
    msg("ResourceLogs", ("scope_logs", 2, F.TYPE_MESSAGE, "ScopeLogs", True))
    msg("ExportLogsServiceRequest", ("resource_logs", 1, F.TYPE_MESSAGE, "ResourceLogs", True))

    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"bench.{name}"))
        for name in ("PushRequest", "ExportLogsServiceRequest")
    }


MESSAGES = _message_classes()


class BadRequest(Exception):
    """The body could not be decoded; the receiver answers 400 and counts an error."""


def _content_decode(body: bytes, encoding: str) -> bytes:
    """Undo ``Content-Encoding`` (gzip/deflate); snappy on Loki is handled by the Loki decoder."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity", "snappy"):
        return body
    if encoding in ("gzip", "x-gzip"):
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    raise BadRequest(f"Content-Encoding {encoding!r} not supported")


def count_loki(body: bytes, content_type: str) -> int:
    """Entries in a Loki push: JSON, or (like Loki for any other type) snappy-block protobuf."""
    if content_type.split(";", 1)[0].strip().lower() == "application/json":
        doc = json.loads(body)
        return sum(len(s.get("values") or ()) for s in doc.get("streams") or ())
    raw = bytes(cramjam.snappy.decompress_raw(body))
    req = MESSAGES["PushRequest"]()
    req.ParseFromString(raw)
    return sum(len(s.entries) for s in req.streams)


def bulk_response(body: bytes) -> tuple[int, bytes]:
    """Count documents in an NDJSON ``_bulk`` body and build the all-success response.

    The response carries one item per action in request order (what ES returns with
    ``filter_path=errors,items.*.status,items.*.error``), so an agent that maps items back to its
    batch positionally does its real work.
    """
    if body and not body.endswith(b"\n"):
        raise BadRequest("The bulk request must be terminated by a newline [\\n]")
    lines = body.split(b"\n")
    lines.pop()  # the empty string after the final newline
    # Fast path, all in C: every line pair is (create|index action, source). Joining the action
    # lines lets bytes.count check that without a Python-level loop over a million lines.
    actions = lines[0::2]
    if len(lines) % 2 == 0 and b"" not in lines:
        joined = b"\n" + b"\n".join(actions)
        creates = joined.count(b'\n{"create":')
        indexes = joined.count(b'\n{"index":')
        if creates == len(actions) or indexes == len(actions):
            item = b'{"create":{"status":201}}' if creates else b'{"index":{"status":201}}'
            return len(actions), _bulk_ok([item] * len(actions))
    items: list[bytes] = []
    docs = 0
    i = 0
    n = len(lines)
    while i < n:
        action_line = lines[i].strip()
        i += 1
        if not action_line:
            continue
        action = json.loads(action_line)
        if not isinstance(action, dict) or len(action) != 1:
            raise BadRequest(f"Malformed action/metadata line [{i}]")
        (name,) = action
        if name == "delete":
            items.append(b'{"delete":{"status":200}}')
            continue
        if name not in ("index", "create", "update"):
            raise BadRequest(f"Malformed action/metadata line [{i}], unknown action [{name}]")
        if i >= n:
            raise BadRequest(f"Validation Failed: source missing for action line [{i}]")
        i += 1
        docs += 1
        items.append(b'{"%s":{"status":%d}}' % (name.encode(), 200 if name == "update" else 201))
    return docs, _bulk_ok(items)


def _bulk_ok(items: list[bytes]) -> bytes:
    return b'{"errors":false,"items":[' + b",".join(items) + b"]}"


def count_otlp(body: bytes, content_type: str) -> int:
    """Log records in an OTLP/HTTP export request (protobuf or proto3-JSON)."""
    if content_type.split(";", 1)[0].strip().lower() == "application/json":
        doc = json.loads(body)
        return sum(
            len(sl.get("logRecords") or ())
            for rl in doc.get("resourceLogs") or ()
            for sl in rl.get("scopeLogs") or ()
        )
    req = MESSAGES["ExportLogsServiceRequest"]()
    req.ParseFromString(body)
    return sum(len(sl.log_records) for rl in req.resource_logs for sl in rl.scope_logs)


@dataclass
class Stats:
    """Counters the harness reads back through ``GET /_stats``."""

    requests: int = 0
    bytes: int = 0
    lines: int = 0
    errors: int = 0
    by_path: dict[str, int] = field(default_factory=dict)
    last_error: str = ""

    def reset(self) -> None:
        """Zero every counter between benchmark repetitions."""
        self.__dict__.update(asdict(Stats()))


STATS = Stats()

# A handler returns (status, body, content type, deferred count). When the answer does not depend
# on the body (Loki, OTLP), counting is deferred until after the answer is on the wire, so the agent
# never waits on the receiver's decoding; the event loop is single-threaded, so a later
# ``GET /_stats`` still sees every count.
Reply = tuple[int, bytes, str, Callable[[], None] | None]
Handler = Callable[[bytes, dict[str, str]], Reply]


def _add_lines(count: Callable[[], int]) -> Callable[[], None]:
    def run() -> None:
        try:
            STATS.lines += count()
        except Exception as e:  # a body we cannot decode is the agent's bug: report it
            STATS.errors += 1
            STATS.last_error = f"{type(e).__name__}: {e}"

    return run


def _handle_loki(body: bytes, headers: dict[str, str]) -> Reply:
    def count() -> int:
        raw = _content_decode(body, headers.get("content-encoding", ""))
        return count_loki(raw, headers.get("content-type", ""))

    return 204, b"", "", _add_lines(count)


def _handle_bulk(body: bytes, headers: dict[str, str]) -> Reply:
    docs, response = bulk_response(_content_decode(body, headers.get("content-encoding", "")))
    STATS.lines += docs
    return 200, response, "application/json", None


def _handle_otlp(body: bytes, headers: dict[str, str]) -> Reply:
    ctype = headers.get("content-type", "")

    def count() -> int:
        return count_otlp(_content_decode(body, headers.get("content-encoding", "")), ctype)

    if ctype.split(";", 1)[0].strip().lower() == "application/json":
        return 200, b"{}", "application/json", _add_lines(count)
    return 200, b"", "application/x-protobuf", _add_lines(count)


def route(method: str, path: str) -> Handler | None:
    """Pick the handler for a push request; ``None`` means 404."""
    if method not in ("POST", "PUT"):
        return None
    if path == LOKI_PATH:
        return _handle_loki
    if path.endswith(BULK_SUFFIX):
        return _handle_bulk
    if path.endswith(OTLP_PATH):
        return _handle_otlp
    return None


REASONS = {200: "OK", 204: "No Content", 400: "Bad Request", 404: "Not Found", 405: "Not Allowed"}


def _response(status: int, body: bytes, ctype: str, keep_alive: bool) -> bytes:
    head = [f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}"]
    if ctype:
        head.append(f"Content-Type: {ctype}")
    if status != 204:
        head.append(f"Content-Length: {len(body)}")
    if not keep_alive:
        head.append("Connection: close")
    if status == 200 and ctype == "application/json" and body.startswith(b'{"errors"'):
        head.append("X-Elastic-Product: Elasticsearch")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (b"" if status == 204 else body)


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        parts: list[bytes] = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                # Trailers (normally none), then the blank line.
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
    length = int(headers.get("content-length", "0") or 0)
    return await reader.readexactly(length) if length else b""


async def handle_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Serve requests on one keep-alive connection until the client closes it."""
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            request_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
            method, target, version = request_line.split(" ", 2)
            headers: dict[str, str] = {}
            for line in header_lines:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await _read_body(reader, headers)
            conn = headers.get("connection", "").lower()
            keep_alive = conn != "close" and (version == "HTTP/1.1" or conn == "keep-alive")
            path = target.split("?", 1)[0]

            if path == "/_stats" and method == "GET":
                payload = json.dumps(asdict(STATS)).encode()
                writer.write(_response(200, payload, "application/json", keep_alive))
            elif path == "/_reset" and method == "POST":
                STATS.reset()
                writer.write(_response(204, b"", "", keep_alive))
            else:
                handler = route(method, path)
                STATS.requests += 1
                STATS.bytes += len(body)
                STATS.by_path[path] = STATS.by_path.get(path, 0) + 1
                if handler is None:
                    STATS.errors += 1
                    STATS.last_error = f"no route for {method} {path}"
                    writer.write(_response(404, b"404 page not found\n", "text/plain", keep_alive))
                else:
                    deferred = None
                    try:
                        status, payload, ctype, deferred = handler(body, headers)
                    except Exception as e:  # a body we cannot decode is the agent's bug
                        STATS.errors += 1
                        STATS.last_error = f"{method} {path}: {type(e).__name__}: {e}"
                        status, payload, ctype = 400, f"{e}\n".encode(), "text/plain"
                    writer.write(_response(status, payload, ctype, keep_alive))
                    if deferred is not None:
                        deferred()
            await writer.drain()
            if not keep_alive:
                return
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def _stdin_eof() -> None:
    """Complete when the harness closes our stdin (or dies), so the receiver never lingers."""
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.buffer.read)


async def serve(host: str, port: int) -> None:
    """Listen, announce the port, and serve until stdin closes."""
    server = await asyncio.start_server(handle_connection, host, port, backlog=256)
    bound = server.sockets[0].getsockname()[1]
    print(f"PORT {bound}", flush=True)
    async with server:
        await _stdin_eof()


def main(argv: list[str] | None = None) -> int:
    """Command-line entry (run by ``benchmarks/run.py``; handy alone for manual testing)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = any free port (default)")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
