"""An in-process fake of Grafana Loki 3.6's push API, for integration tests.

It answers ``POST /loki/api/v1/push`` the way Loki 3.6.9 does (PROTOCOLS.md section A and
fixtures/loki/responses.md) and records what it stored. It does not share code with the agent.
Protobuf bodies are decoded by the official ``google.protobuf`` runtime, with the ``logproto``
messages built here from a ``FileDescriptorProto``. Snappy block bodies are decoded by
``cramjam.snappy.decompress_raw``. The label selector is parsed by a port of the Prometheus
lexer and grammar that Loki uses.

Typical use::

    with FakeLoki() as loki:
        ...  # point the agent at loki.url
        loki.wait_for_lines(1000, timeout=60)
        assert loki.entries[0].labels["app"] == "api"

Fault injection: :meth:`FakeLoki.fail_next`, :attr:`FakeLoki.hook`, :meth:`FakeLoki.down` and
:meth:`FakeLoki.up`, and an opt-in tenant ingestion rate limit (``ingestion_rate_mb``).

Things this fake does not model: per-stream rate limits, the active-stream limit, blocked
ingestion (260), the ``detected_level`` metadata that Loki adds, and chunk flushing. Flushing
matters because Loki only catches duplicates that are still in the head block, while this
fake remembers every (ts, line) pair of a stream.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import re
import socket
import sys
import threading
import time
import traceback
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import cramjam
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message

__all__ = [
    "DEFAULT_DISCOVER_SERVICE_NAME",
    "PUSH_PATH",
    "Entry",
    "EntryAdapter",
    "FakeLoki",
    "IncomingRequest",
    "LabelPairAdapter",
    "LabelParseError",
    "PushRequest",
    "Reply",
    "RequestRecord",
    "StoredEntry",
    "StreamAdapter",
    "Timestamp",
    "decode_push",
    "format_labels",
    "go_quote",
    "parse_labels",
    "rfc3339",
]

PUSH_PATH = "/loki/api/v1/push"

#: Loki's default ``discover_service_name`` list (pkg/validation/limits.go).
DEFAULT_DISCOVER_SERVICE_NAME: tuple[str, ...] = (
    "service",
    "app",
    "application",
    "app_name",
    "name",
    "app_kubernetes_io_name",
    "container",
    "container_name",
    "k8s_container_name",
    "component",
    "workload",
    "job",
    "k8s_job_name",
)

SERVICE_NAME = "service_name"
UNKNOWN_SERVICE = "unknown_service"
AGGREGATED_METRIC_LABEL = "__aggregated_metric__"
MIB = 1024 * 1024
_NS = 1_000_000_000
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_SNAPPY_STREAM_ID = b"\xff\x06\x00\x00sNaPpY"


# --------------------------------------------------------------------------------------------
# The logproto schema (PROTOCOLS.md A.2), built at import time.
# --------------------------------------------------------------------------------------------

_F = descriptor_pb2.FieldDescriptorProto


def _add_field(
    msg: descriptor_pb2.DescriptorProto,
    name: str,
    number: int,
    ftype: int,
    *,
    repeated: bool = False,
    type_name: str = "",
) -> None:
    f = msg.field.add(name=name, number=number, type=ftype)
    f.label = _F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
    if type_name:
        f.type_name = type_name


def _build_logproto(text_type: int) -> dict[str, type[Message]]:
    """Build Timestamp and the logproto messages in a private pool.

    ``text_type`` is TYPE_STRING for the faithful schema (used to build test bodies) or
    TYPE_BYTES for the decoder. Both are the same on the wire; the bytes variant lets invalid
    UTF-8 through, as Go's gogoproto does, where the proto3 runtime would refuse the message.
    """
    pool = descriptor_pool.DescriptorPool()

    ts_file = descriptor_pb2.FileDescriptorProto(
        name="google/protobuf/timestamp.proto", package="google.protobuf", syntax="proto3"
    )
    ts = ts_file.message_type.add(name="Timestamp")
    _add_field(ts, "seconds", 1, _F.TYPE_INT64)
    _add_field(ts, "nanos", 2, _F.TYPE_INT32)
    pool.Add(ts_file)

    push = descriptor_pb2.FileDescriptorProto(
        name="pkg/push/push.proto",
        package="logproto",
        syntax="proto3",
        dependency=["google/protobuf/timestamp.proto"],
    )
    req = push.message_type.add(name="PushRequest")
    _add_field(
        req, "streams", 1, _F.TYPE_MESSAGE, repeated=True, type_name=".logproto.StreamAdapter"
    )
    _add_field(req, "format", 2, _F.TYPE_STRING)
    stream = push.message_type.add(name="StreamAdapter")
    _add_field(stream, "labels", 1, text_type)
    _add_field(
        stream, "entries", 2, _F.TYPE_MESSAGE, repeated=True, type_name=".logproto.EntryAdapter"
    )
    _add_field(stream, "hash", 3, _F.TYPE_UINT64)
    entry = push.message_type.add(name="EntryAdapter")
    _add_field(entry, "timestamp", 1, _F.TYPE_MESSAGE, type_name=".google.protobuf.Timestamp")
    _add_field(entry, "line", 2, text_type)
    _add_field(
        entry,
        "structuredMetadata",
        3,
        _F.TYPE_MESSAGE,
        repeated=True,
        type_name=".logproto.LabelPairAdapter",
    )
    _add_field(
        entry, "parsed", 4, _F.TYPE_MESSAGE, repeated=True, type_name=".logproto.LabelPairAdapter"
    )
    pair = push.message_type.add(name="LabelPairAdapter")
    _add_field(pair, "name", 1, text_type)
    _add_field(pair, "value", 2, text_type)
    push.message_type.add(name="PushResponse")
    pool.Add(push)

    names = ["PushRequest", "StreamAdapter", "EntryAdapter", "LabelPairAdapter", "PushResponse"]
    classes = {
        n: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"logproto.{n}"))
        for n in names
    }
    classes["Timestamp"] = message_factory.GetMessageClass(
        pool.FindMessageTypeByName("google.protobuf.Timestamp")
    )
    return classes


_TEXT_CLASSES = _build_logproto(_F.TYPE_STRING)
_RAW_CLASSES = _build_logproto(_F.TYPE_BYTES)

#: The Loki schema with string fields. Use these to build test bodies.
PushRequest: Any = _TEXT_CLASSES["PushRequest"]
StreamAdapter: Any = _TEXT_CLASSES["StreamAdapter"]
EntryAdapter: Any = _TEXT_CLASSES["EntryAdapter"]
LabelPairAdapter: Any = _TEXT_CLASSES["LabelPairAdapter"]
Timestamp: Any = _TEXT_CLASSES["Timestamp"]
_RawPushRequest: Any = _RAW_CLASSES["PushRequest"]


# --------------------------------------------------------------------------------------------
# Go formatting helpers.
# --------------------------------------------------------------------------------------------

_GO_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def _go_quote_char(c: str, quote: str) -> str:
    if c == quote or c == "\\":
        return "\\" + c
    if c.isprintable():
        return c
    if c in _GO_ESCAPES:
        return _GO_ESCAPES[c]
    cp = ord(c)
    if cp < 0x20 or cp == 0x7F:
        return f"\\x{cp:02x}"
    if 0xD800 <= cp < 0xE000:
        return "\\ufffd"
    if cp < 0x10000:
        return f"\\u{cp:04x}"
    return f"\\U{cp:08x}"


def go_quote(s: str) -> str:
    """Go's ``strconv.Quote``: how Loki renders label values."""
    if s.isprintable() and '"' not in s and "\\" not in s:
        return f'"{s}"'
    return '"' + "".join(_go_quote_char(c, '"') for c in s) + '"'


def _go_quote_rune(c: str) -> str:
    """Go's ``%q`` of a rune (``strconv.QuoteRune``)."""
    return "'" + _go_quote_char(c, "'") + "'"


def _go_unicode(c: str) -> str:
    """Go's ``%#U`` of a rune."""
    if c == "":
        return "U+FFFFFFFFFFFFFFFF"  # Go prints eof (-1) like this
    text = f"U+{ord(c):04X}"
    return f"{text} '{c}'" if c.isprintable() else text


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _utc(ts_ns: int) -> tuple[datetime, int]:
    seconds, frac = divmod(ts_ns, _NS)
    return _EPOCH + timedelta(seconds=seconds), frac


def rfc3339(ts_ns: int) -> str:
    """Go's ``t.UTC().Format(time.RFC3339)``: whole seconds, ``Z`` suffix."""
    dt, _ = _utc(ts_ns)
    return (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}Z"
    )


def _go_time_string(ts_ns: int) -> str:
    """Go's ``time.Time.String()`` for a UTC time."""
    dt, frac = _utc(ts_ns)
    fraction = f".{frac:09d}".rstrip("0") if frac else ""
    return (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d} "
        f"{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}{fraction} +0000 UTC"
    )


# --------------------------------------------------------------------------------------------
# Label selector parsing (PROTOCOLS.md A.6): a port of the part of the Prometheus lexer and
# grammar that ``promql_parser.ParseMetric`` uses. The first error is reported the way
# Prometheus formats it, e.g. ``1:9: parse error: unexpected character inside braces: '.'``.
# --------------------------------------------------------------------------------------------

_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_IDENT_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_IDENT_CHARS = _IDENT_START | frozenset("0123456789")
_METRIC_CHARS = _IDENT_CHARS | {":"}
_SPACES = frozenset(" \t\n\r")
_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_OPERATORS = frozenset({"=~", "!=", "!~"})


class LabelParseError(ValueError):
    """The label string is not a valid selector; ``str()`` is the message Loki sends."""

    def __init__(self, text: str, pos: int, message: str) -> None:
        before = text[:pos]
        line = before.count("\n") + 1
        col = len(before[before.rfind("\n") + 1 :].encode("utf-8", "surrogatepass")) + 1
        super().__init__(f"{line}:{col}: parse error: {message}")


class _Tok(NamedTuple):
    kind: str  # "{", "}", ",", "=", "=~", "!=", "!~", "ident", "metric", "string", "eof"
    val: str
    pos: int


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.in_braces = False

    def _error(self, start: int, message: str) -> LabelParseError:
        return LabelParseError(self.text, start, message)

    def _skip(self) -> None:
        s, n = self.text, len(self.text)
        while self.pos < n:
            c = s[self.pos]
            if c in _SPACES:
                self.pos += 1
            elif c == "#":  # a line comment
                end = s.find("\n", self.pos)
                self.pos = n if end < 0 else end
            else:
                return

    def next(self) -> _Tok:
        self._skip()
        s, start = self.text, self.pos
        if start >= len(s):
            if self.in_braces:
                raise self._error(start, "unexpected end of input inside braces")
            return _Tok("eof", "", start)
        c = s[start]
        self.pos += 1
        if c == ",":
            return _Tok(",", c, start)
        if c in "\"'":
            return self._string(start, c)
        if c == "`":
            return self._raw_string(start)
        if self.in_braces:
            return self._inside_braces(start, c)
        if c == "{":
            self.in_braces = True
            return _Tok("{", c, start)
        if c == "}":
            raise self._error(start, "unexpected right brace '}'")
        if c in _IDENT_START or c == ":":
            while self.pos < len(s) and s[self.pos] in _METRIC_CHARS:
                self.pos += 1
            word = s[start : self.pos]
            return _Tok("metric" if ":" in word else "ident", word, start)
        if c == "=":
            nxt = self._peek()
            if nxt == "~":
                raise self._error(start, "unexpected character after '=': '~'")
            return _Tok("=", c, start)
        raise self._error(start, f"unexpected character: {_go_quote_rune(c)}")

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _inside_braces(self, start: int, c: str) -> _Tok:
        s = self.text
        if c in _IDENT_START:
            while self.pos < len(s) and s[self.pos] in _IDENT_CHARS:
                self.pos += 1
            return _Tok("ident", s[start : self.pos], start)
        if c == "=":
            if self._peek() == "~":
                self.pos += 1
                return _Tok("=~", "=~", start)
            return _Tok("=", c, start)
        if c == "!":
            nxt = self._peek()
            if nxt in ("~", "="):
                self.pos += 1
                return _Tok("!" + nxt, "!" + nxt, start)
            shown = _go_quote_rune(nxt) if nxt else "'\ufffd'"
            raise self._error(start, f"unexpected character after '!' inside braces: {shown}")
        if c == "{":
            raise self._error(start, "unexpected left brace '{'")
        if c == "}":
            self.in_braces = False
            return _Tok("}", c, start)
        raise self._error(start, f"unexpected character inside braces: {_go_quote_rune(c)}")

    def _string(self, start: int, quote: str) -> _Tok:
        s, n = self.text, len(self.text)
        i = start + 1
        while True:
            if i >= n:
                raise self._error(start, "unterminated quoted string")
            c = s[i]
            if c == "\\":
                i = self._escape(start, i + 1, quote)
            elif c == "\n":
                raise self._error(start, "unterminated quoted string")
            elif c == "\ufffd":  # Go's lexer sees utf8.RuneError, valid or not
                raise self._error(start, "invalid UTF-8 rune")
            elif c == quote:
                self.pos = i + 1
                return _Tok("string", s[start : i + 1], start)
            else:
                i += 1

    def _escape(self, start: int, i: int, quote: str) -> int:
        """Validate one escape sequence (Prometheus ``lexEscape``); return the index after it."""
        s, n = self.text, len(self.text)
        if i >= n:
            raise self._error(start, "escape sequence not terminated")
        c = s[i]
        if c in _SIMPLE_ESCAPES or c == "\\" or c == quote:
            return i + 1
        if c in "01234567":
            digits, base, limit = 3, 8, 255
        elif c in "xuU":
            digits, base, limit = {"x": 2, "u": 4, "U": 8}[c], 16, 0x10FFFF
            i += 1
        else:
            raise self._error(start, f"unknown escape sequence {_go_unicode(c)}")
        value = 0
        for _ in range(digits):
            ch = s[i] if i < n else ""
            try:
                digit = int(ch, base) if ch and ch.isascii() else base
            except ValueError:
                digit = base
            if digit >= base:
                if not ch:
                    raise self._error(start, "escape sequence not terminated")
                raise self._error(start, f"illegal character {_go_unicode(ch)} in escape sequence")
            value = value * base + digit
            i += 1
        if value > limit or 0xD800 <= value < 0xE000:
            raise self._error(start, "escape sequence is an invalid Unicode code point")
        return i

    def _raw_string(self, start: int) -> _Tok:
        end = self.text.find("`", start + 1)
        if end < 0:
            raise self._error(start, "unterminated raw string")
        if "\ufffd" in self.text[start:end]:
            raise self._error(start, "invalid UTF-8 rune")
        self.pos = end + 1
        return _Tok("string", self.text[start : end + 1], start)


def _unquote(token: str) -> str:
    """Unquote a string token that the lexer has already validated."""
    quote, body = token[0], token[1:-1]
    if quote == "`":
        return body.replace("\r", "")
    if "\\" not in body:
        return body
    out = bytearray()
    i, n = 0, len(body)
    while i < n:
        c = body[i]
        if c != "\\":
            out += c.encode("utf-8", "surrogatepass")
            i += 1
            continue
        e = body[i + 1]
        if e in _SIMPLE_ESCAPES:
            out += _SIMPLE_ESCAPES[e].encode()
            i += 2
        elif e in "01234567":
            out.append(int(body[i + 1 : i + 4], 8))
            i += 4
        elif e == "x":
            out.append(int(body[i + 2 : i + 4], 16))
            i += 4
        elif e in "uU":
            width = 4 if e == "u" else 8
            out += chr(int(body[i + 2 : i + 2 + width], 16)).encode()
            i += 2 + width
        else:  # \\ or the quote
            out += e.encode()
            i += 2
    return out.decode("utf-8", "replace")


def _describe(tok: _Tok) -> str:
    """Prometheus ``Item.desc()`` for the tokens this grammar can meet."""
    if tok.kind == "eof":
        return "end of input"
    if tok.kind == "ident":
        return f"identifier {go_quote(tok.val)}"
    if tok.kind == "metric":
        return f"metric identifier {go_quote(tok.val)}"
    if tok.kind == "string":
        if len(tok.val.encode()) > 10:
            return f"string {go_quote(tok.val[:10])}..."
        return f"string {go_quote(tok.val)}"
    if tok.kind in _OPERATORS:
        return f"<op:{tok.val}>"
    return go_quote(tok.val)


def _unexpected(text: str, tok: _Tok, context: str = "", expected: str = "") -> LabelParseError:
    message = "unexpected " + _describe(tok)
    if context:
        message += " in " + context
    if expected:
        message += ", expected " + expected
    return LabelParseError(text, tok.pos, message)


def parse_labels(text: str) -> list[tuple[str, str]]:
    """Parse a stream selector like Loki's ``syntax.ParseLabels``.

    Returns the pairs sorted by name, with every label that has an empty value removed.
    Duplicates are kept (validation rejects them later). Raises :class:`LabelParseError`.
    """
    lx = _Lexer(text)
    tok = lx.next()
    metric_name: str | None = None
    if tok.kind in ("ident", "metric"):
        metric_name = tok.val
        tok = lx.next()
    pairs: list[tuple[str, str]] = []
    if tok.kind == "{":
        tok = lx.next()
        while tok.kind != "}":
            if tok.kind == "ident":
                name = tok.val
                tok = lx.next()
                if tok.kind != "=":
                    raise _unexpected(text, tok, "label set", '"="')
                tok = lx.next()
                if tok.kind != "string":
                    raise _unexpected(text, tok, "label set", "string")
                pairs.append((name, _unquote(tok.val)))
                tok = lx.next()
            elif tok.kind == "string":  # a quoted (UTF-8) name, or a quoted metric name
                name = _unquote(tok.val)
                tok = lx.next()
                if tok.kind == "=":
                    tok = lx.next()
                    if tok.kind != "string":
                        raise _unexpected(text, tok, "label set", "string")
                    pairs.append((name, _unquote(tok.val)))
                    tok = lx.next()
                else:
                    pairs.append(("__name__", name))
            else:
                raise _unexpected(text, tok, "label set", 'identifier or "}"')
            if tok.kind == ",":
                tok = lx.next()
            elif tok.kind != "}":
                raise _unexpected(text, tok, "label set", '"," or "}"')
        tok = lx.next()
    if tok.kind != "eof":
        raise _unexpected(text, tok)
    if metric_name is not None:
        pairs = [p for p in pairs if p[0] != "__name__"] + [("__name__", metric_name)]
    empty = {n for n, v in pairs if v == ""}
    if empty:
        pairs = [p for p in pairs if p[0] not in empty]
    pairs.sort(key=lambda p: p[0])
    return pairs


def format_labels(pairs: Iterable[tuple[str, str]]) -> str:
    """Prometheus ``labels.Labels.String()``: ``{a="1", b="2"}``."""
    parts = [f"{n if _NAME_RE.fullmatch(n) else go_quote(n)}={go_quote(v)}" for n, v in pairs]
    return "{" + ", ".join(parts) + "}"


def _normalize_metadata_name(name: str) -> str:
    """Loki rewrites structured-metadata names into Prometheus-safe form (``a.b`` -> ``a_b``)."""
    if _NAME_RE.fullmatch(name):
        return name
    out = "".join(c if c in _IDENT_CHARS else "_" for c in name)
    if out[:1].isdigit():
        out = "key_" + out
    return out


# --------------------------------------------------------------------------------------------
# Records.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """One entry that Loki stored. ``labels`` includes ``service_name`` as Loki adds it.

    ``labels`` is shared by the entries of one stream in one request: don't mutate it.
    ``tenant`` is the ``X-Scope-OrgID`` header (None when absent), whatever ``tenant_required``.
    """

    labels: dict[str, str]
    ts_ns: int
    line: str
    metadata: dict[str, str]
    tenant: str | None


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One answered HTTP request. ``headers`` has lower-case names."""

    method: str
    path: str
    headers: dict[str, str]
    content_type: str | None  # the media type, lower case, without parameters
    content_encoding: str | None
    status: int
    body_size: int  # bytes on the wire (before Content-Encoding and snappy)
    arrived: float  # time.monotonic() when the request line was read
    response_body: str
    tenant: str | None


@dataclass(frozen=True, slots=True)
class Reply:
    """A canned answer, from :meth:`FakeLoki.fail_next` or a :attr:`FakeLoki.hook`."""

    status: int
    body: str | bytes = ""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class IncomingRequest:
    """What a :attr:`FakeLoki.hook` sees: the request as received (body still encoded)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Hook = Callable[[IncomingRequest], Reply | None]
Entry = StoredEntry


class _HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# (ts_ns, line, line length in bytes, structured metadata pairs)
_RawEntry = tuple[int, str, int, list[tuple[str, str]]]


class _RawStream(NamedTuple):
    labels: str
    entries: list[_RawEntry]


@dataclass(slots=True)
class _StreamState:
    highest_ts: int | None = None
    seen: set[tuple[int, str]] = field(default_factory=set)


# --------------------------------------------------------------------------------------------
# Body decoding.
# --------------------------------------------------------------------------------------------

_JSON_PREFIX = "loghttp.PushRequest.Streams: []loghttp.LogProtoStream: unmarshalerDecoder: "
_JSON_NOT_STRING = "Value looks like Number/Boolean/None, but can't find its end: ',' or '}' symbol"


def _json_error(message: str, value: object) -> _HTTPError:
    shown = json.dumps(value, ensure_ascii=False)[:40]
    context = f"error found in #10 byte of ...|{shown}|..., bigger context ...|{shown}|..."
    return _HTTPError(400, f"{_JSON_PREFIX}{message}, {context}")


def _clean_text(s: str) -> tuple[str, int]:
    """Replace lone surrogates (as Go's JSON decoders do); return the text and its UTF-8 size."""
    try:
        return s, len(s.encode("utf-8"))
    except UnicodeEncodeError:
        fixed = s.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return fixed, len(fixed.encode("utf-8"))


def _reject_constant(name: str) -> float:
    raise ValueError(f"invalid character '{name[0]}' looking for beginning of value")


def _decode_json(data: bytes) -> list[_RawStream]:
    try:
        doc = json.loads(data, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise _HTTPError(400, f"ReadObjectCB: {exc}") from None
    if not isinstance(doc, dict):
        raise _HTTPError(400, "ReadObjectCB: expect { or n, but found " + repr(data[:1])[2:-1])
    raw_streams = doc.get("streams")
    if raw_streams is None:
        return []
    if not isinstance(raw_streams, list):
        raise _HTTPError(400, "loghttp.PushRequest.Streams: decode slice: expect [ or n")
    streams: list[_RawStream] = []
    for s in raw_streams:
        if not isinstance(s, dict):
            raise _json_error("Value is not an object", s)
        stream = s.get("stream") or {}
        if not isinstance(stream, dict) or not all(isinstance(v, str) for v in stream.values()):
            raise _json_error("Value is not a string", stream)
        # loghttp.LabelSet.String(): sorted, names unquoted, values strconv.Quote'd.
        rendered = [f"{k}={go_quote(_clean_text(stream[k])[0])}" for k in sorted(stream)]
        labels = "{" + ", ".join(rendered) + "}"
        values = s.get("values") or []
        if not isinstance(values, list):
            raise _json_error("Value is not an array", values)
        entries: list[_RawEntry] = []
        for v in values:
            if not isinstance(v, list) or len(v) not in (2, 3):
                raise _json_error("Value is not an array of 2 or 3 elements", v)
            ts = v[0]
            if not isinstance(ts, str) or not re.fullmatch(r"-?[0-9]+", ts):
                raise _json_error(_JSON_NOT_STRING, ts)
            ts_ns = int(ts)
            if not _INT64_MIN <= ts_ns <= _INT64_MAX:
                raise _json_error("Value is number, but overflowed while parsing", ts)
            if not isinstance(v[1], str):
                raise _json_error("Value is not a string", v[1])
            line, size = _clean_text(v[1])
            metadata: list[tuple[str, str]] = []
            if len(v) == 3 and v[2] is not None:
                if not isinstance(v[2], dict) or not all(isinstance(x, str) for x in v[2].values()):
                    raise _json_error("Value is not a string", v[2])
                metadata = [(_clean_text(k)[0], _clean_text(x)[0]) for k, x in v[2].items()]
            entries.append((ts_ns, line, size, metadata))
        streams.append(_RawStream(labels, entries))
    return streams


def _decode_protobuf(data: bytes, max_decompressed: int) -> list[_RawStream]:
    if data.startswith(_SNAPPY_STREAM_ID):  # the framed format: Go's snappy.Decode refuses it
        raise _HTTPError(400, "snappy: corrupt input")
    decoded_len = _snappy_decoded_len(data)
    if decoded_len > max_decompressed:
        raise _HTTPError(
            400,
            f"decompressed message size too large than max ({decoded_len} vs {max_decompressed})",
        )
    try:
        raw = bytes(cramjam.snappy.decompress_raw(data))
    except cramjam.DecompressionError:
        raise _HTTPError(400, "snappy: corrupt input") from None
    req = _RawPushRequest()
    try:
        req.ParseFromString(raw)
    except DecodeError as exc:
        raise _HTTPError(400, f"proto: {exc}") from None
    streams: list[_RawStream] = []
    for s in req.streams:
        entries: list[_RawEntry] = []
        append = entries.append
        for e in s.entries:
            ts = e.timestamp
            nanos = ts.nanos
            if not 0 <= nanos < _NS:
                raise _HTTPError(400, f"timestamp: nanos:{nanos}: nanos not in range [0, 1e9)")
            line_b = e.line
            metadata = [
                (p.name.decode("utf-8", "replace"), p.value.decode("utf-8", "replace"))
                for p in e.structuredMetadata
            ]
            append(
                (ts.seconds * _NS + nanos, line_b.decode("utf-8", "replace"), len(line_b), metadata)
            )
        streams.append(_RawStream(s.labels.decode("utf-8", "replace"), entries))
    return streams


def _snappy_decoded_len(data: bytes) -> int:
    value = shift = 0
    for i, b in enumerate(data[:10]):
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value
        shift += 7
        if i == 9:
            break
    raise _HTTPError(400, "snappy: corrupt input")


def _content_decode(data: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        try:
            return gzip.decompress(data)
        except gzip.BadGzipFile:
            raise _HTTPError(400, "gzip: invalid header") from None
        except EOFError:
            raise _HTTPError(400, "unexpected EOF") from None
        except zlib.error as exc:
            raise _HTTPError(400, f"flate: corrupt input ({exc})") from None
    if encoding == "deflate":
        # Go's compress/flate reads *raw* DEFLATE (RFC 1951), not zlib-wrapped data.
        d = zlib.decompressobj(-zlib.MAX_WBITS)
        try:
            out = d.decompress(data) + d.flush()
        except zlib.error:
            raise _HTTPError(400, "flate: corrupt input before offset 0") from None
        if not d.eof:
            raise _HTTPError(400, "unexpected EOF")
        return out
    return data


def decode_push(
    body: bytes, content_type: str | None, content_encoding: str | None
) -> list[tuple[str, list[tuple[int, str]]]]:
    """Decode a push body the way :class:`FakeLoki` does, without a server.

    For tests that receive requests through ``httpx.MockTransport``: returns
    ``(labels, [(ts_ns, line), ...])`` per stream; raises ValueError for a body Loki would refuse.
    """
    try:
        data = _content_decode(body, content_encoding or "")
        if _media_type(content_type) == "application/json":
            streams = _decode_json(data)
        else:
            streams = _decode_protobuf(data, 5000 * MIB)
    except _HTTPError as exc:
        raise ValueError(exc.message) from None
    return [(s.labels, [(e[0], e[1]) for e in s.entries]) for s in streams]


def _media_type(header: str | None) -> str | None:
    if header is None or header.strip() == "":
        return None
    return header.split(";", 1)[0].strip().lower()


# --------------------------------------------------------------------------------------------
# The server.
# --------------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    owner: FakeLoki

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):  # resets, or down() closing connections
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.owner._track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _any(self) -> None:
        self.server.owner._serve(self)

    do_POST = do_GET = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _any


class FakeLoki:
    """A fake Loki 3.6 push endpoint on ``127.0.0.1:<random port>`` (see the module docstring).

    Limits default to Loki's. Durations are in seconds. ``ingestion_rate_mb`` (off by
    default) turns on Loki's tenant ingestion rate limiter: 429, nothing stored.
    ``out_of_order_window`` is half of the ingester's ``max_chunk_age`` (1h); set it to None
    to accept any order.
    """

    def __init__(
        self,
        *,
        tenant_required: bool = False,
        expected_auth: str | None = None,
        max_recv_msg_size: int = 100 * MIB,
        max_decompressed_size: int = 5000 * MIB,
        reject_old_samples: bool = True,
        reject_old_samples_max_age: float = 7 * 24 * 3600.0,
        creation_grace_period: float = 600.0,
        max_line_size: int = 256 * 1024,
        max_line_size_truncate: bool = False,
        max_label_names_per_series: int = 15,
        max_label_name_length: int = 1024,
        max_label_value_length: int = 2048,
        allow_structured_metadata: bool = True,
        max_structured_metadata_size: int = 64 * 1024,
        max_structured_metadata_entries_count: int = 128,
        out_of_order_window: float | None = 3600.0,
        discover_service_name: Sequence[str] = DEFAULT_DISCOVER_SERVICE_NAME,
        ingestion_rate_mb: float | None = None,
        ingestion_burst_size_mb: float = 6.0,
        max_returned_stream_errors: int = 10,
        hook: Hook | None = None,
        clock: Callable[[], int] = time.time_ns,
        host: str = "127.0.0.1",
    ) -> None:
        self.tenant_required = tenant_required
        self.expected_auth = expected_auth
        self.max_recv_msg_size = max_recv_msg_size
        self.max_decompressed_size = max_decompressed_size
        self.reject_old_samples = reject_old_samples
        self.reject_old_samples_max_age = reject_old_samples_max_age
        self.creation_grace_period = creation_grace_period
        self.max_line_size = max_line_size
        self.max_line_size_truncate = max_line_size_truncate
        self.max_label_names_per_series = max_label_names_per_series
        self.max_label_name_length = max_label_name_length
        self.max_label_value_length = max_label_value_length
        self.allow_structured_metadata = allow_structured_metadata
        self.max_structured_metadata_size = max_structured_metadata_size
        self.max_structured_metadata_entries_count = max_structured_metadata_entries_count
        self.out_of_order_window = out_of_order_window
        self.discover_service_name = tuple(discover_service_name)
        self.ingestion_rate_mb = ingestion_rate_mb
        self.ingestion_burst_size_mb = ingestion_burst_size_mb
        self.max_returned_stream_errors = max_returned_stream_errors
        #: Called for each push request before anything else; a Reply answers it unstored.
        self.hook: Hook | None = hook
        self.clock = clock
        self.host = host

        self._lock = threading.Lock()  # guards the data below
        self._entries: list[StoredEntry] = []
        self._duplicates: list[StoredEntry] = []
        self._requests: list[RequestRecord] = []
        self._streams: dict[tuple[str | None, str], _StreamState] = {}
        self._failures: deque[Reply] = deque()
        self._buckets: dict[str, tuple[float, float]] = {}  # tenant -> (tokens, updated)
        self._changed = threading.Condition(threading.Lock())
        self._generation = 0

        self._state_lock = threading.RLock()  # guards the server state below
        self._port = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._reserved: socket.socket | None = None  # holds the port while down()
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()

    # ---- lifecycle ---------------------------------------------------------------------

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("FakeLoki has not been started")
        return self._port

    @property
    def url(self) -> str:
        """The Loki base URL, e.g. ``http://127.0.0.1:40123`` (no trailing slash)."""
        return f"http://{self.host}:{self.port}"

    @property
    def push_url(self) -> str:
        return self.url + PUSH_PATH

    @property
    def is_up(self) -> bool:
        return self._server is not None

    def start(self) -> FakeLoki:
        """Bind (port 0 the first time, the same port afterwards) and serve in a thread."""
        self.up()
        return self

    def stop(self) -> None:
        """Stop serving, close every connection and release the port."""
        with self._state_lock:
            self._shutdown()
            if self._reserved is not None:
                self._reserved.close()
                self._reserved = None

    def __enter__(self) -> FakeLoki:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def down(self) -> None:
        """Make Loki unreachable: new connections are refused, open ones are cut.

        The port stays reserved (bound, not listening) so that :meth:`up` gets it back.
        """
        with self._state_lock:
            if self._server is None:
                return
            self._shutdown()
            self._reserved = self._bind(self._port)

    def up(self) -> None:
        """Listen again on the same port (or start for the first time)."""
        with self._state_lock:
            if self._server is not None:
                return
            sock = self._reserved or self._bind(self._port)
            self._reserved = None
            server = _Server((self.host, 0), _Handler, bind_and_activate=False)
            server.socket.close()
            server.socket = sock
            server.server_address = sock.getsockname()
            server.server_name, server.server_port = self.host, server.server_address[1]
            server.owner = self
            sock.listen(server.request_queue_size)
            self._port = server.server_address[1]
            self._server = server
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"fake-loki-{self._port}",
                daemon=True,
            )
            self._thread.start()

    def _bind(self, port: int) -> socket.socket:
        deadline = time.monotonic() + 5.0
        while True:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((self.host, port))
                return sock
            except OSError:
                sock.close()
                if port == 0 or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _shutdown(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=10)
        self._server = self._thread = None
        with self._conn_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def _track(self, conn: socket.socket) -> None:
        with self._conn_lock:
            self._connections.add(conn)

    def _untrack(self, conn: socket.socket) -> None:
        with self._conn_lock:
            self._connections.discard(conn)

    @property
    def open_connections(self) -> int:
        """Client connections being served; 0 once a killed client's last request is stored.

        A request fully sent before its client died is still handled afterwards, so a
        test that snapshots what arrived before a kill waits for this to reach 0 first.
        """
        with self._conn_lock:
            return len(self._connections)

    # ---- fault injection ---------------------------------------------------------------

    def fail_next(
        self, count: int, status: int, body: str | bytes = "", headers: dict[str, str] | None = None
    ) -> None:
        """Answer the next ``count`` push requests with this reply, storing nothing.

        Only requests to ``POST /loki/api/v1/push`` use these up, before auth checks.
        """
        with self._lock:
            for _ in range(count):
                self._failures.append(Reply(status, body, dict(headers or {})))

    # ---- observation -------------------------------------------------------------------

    @property
    def entries(self) -> list[StoredEntry]:
        """A snapshot of the stored entries, in the order they were stored."""
        with self._lock:
            return list(self._entries)

    def lines(self) -> list[str]:
        with self._lock:
            return [e.line for e in self._entries]

    @property
    def line_count(self) -> int:
        with self._lock:
            return len(self._entries)

    @property
    def duplicates(self) -> list[StoredEntry]:
        """Entries that were silently ignored as exact duplicates (same stream, ts and line)."""
        with self._lock:
            return list(self._duplicates)

    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot of the answered requests, in the order they were answered."""
        with self._lock:
            return list(self._requests)

    def streams(self) -> dict[str, list[StoredEntry]]:
        """Stored entries grouped by their stream's canonical label string."""
        out: dict[str, list[StoredEntry]] = {}
        for e in self.entries:
            out.setdefault(format_labels(sorted(e.labels.items())), []).append(e)
        return out

    def clear(self) -> None:
        """Forget stored entries, requests, stream state and pending failures."""
        with self._lock:
            self._entries.clear()
            self._duplicates.clear()
            self._requests.clear()
            self._streams.clear()
            self._failures.clear()
            self._buckets.clear()

    def wait_for(
        self, predicate: Callable[[FakeLoki], bool], timeout: float = 30.0, what: str = ""
    ) -> None:
        """Return as soon as ``predicate(self)`` is true; raise TimeoutError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            with self._changed:
                generation = self._generation
            if predicate(self):
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(self._timeout_message(predicate, timeout, what))
            with self._changed:
                if self._generation == generation:  # nothing new since the predicate ran
                    self._changed.wait(timeout=min(remaining, 0.1))

    def wait_for_lines(self, n: int, timeout: float = 30.0) -> list[str]:
        """Wait until at least ``n`` lines are stored; return the stored lines."""
        self.wait_for(lambda s: s.line_count >= n, timeout, what=f"{n} stored lines")
        return self.lines()

    def _timeout_message(self, predicate: object, timeout: float, what: str) -> str:
        with self._lock:
            stored, requests = len(self._entries), list(self._requests)
        recent = "; ".join(f"{r.status} {r.response_body.strip()[:200]!r}" for r in requests[-5:])
        return (
            f"FakeLoki: timed out after {timeout}s waiting for {what or predicate}: "
            f"{stored} lines stored from {len(requests)} requests "
            f"(up={self.is_up}); last answers: [{recent}]"
        )

    def _notify(self) -> None:
        with self._changed:
            self._generation += 1
            self._changed.notify_all()

    # ---- request handling --------------------------------------------------------------

    def _serve(self, h: _Handler) -> None:
        arrived = time.monotonic()
        headers: dict[str, str] = {}
        for k, v in h.headers.items():
            k = k.lower()
            headers[k] = f"{headers[k]}, {v}" if k in headers else v
        try:
            body = _read_body(h, headers)
        except ValueError as exc:
            h.close_connection = True
            reply = _text_reply(400, f"malformed request body: {exc}")
            body = b""
        else:
            try:
                reply = self._route(h.command, urlsplit(h.path).path, headers, body)
            except _HTTPError as exc:
                reply = _text_reply(exc.status, exc.message)
            except Exception:
                traceback.print_exc()
                reply = _text_reply(500, "FakeLoki internal error:\n" + traceback.format_exc())
        media = _media_type(headers.get("content-type"))
        reply_body = reply.body.encode() if isinstance(reply.body, str) else reply.body
        record = RequestRecord(
            method=h.command,
            path=h.path,
            headers=headers,
            content_type=media,
            content_encoding=headers.get("content-encoding"),
            status=reply.status,
            body_size=len(body),
            arrived=arrived,
            response_body=reply_body.decode("utf-8", "replace"),
            tenant=headers.get("x-scope-orgid"),
        )
        with self._lock:
            self._requests.append(record)
        self._notify()
        h.send_response(reply.status)
        for k, v in reply.headers.items():
            h.send_header(k, v)
        if reply.status != 204 and reply.status >= 200:
            h.send_header("Content-Length", str(len(reply_body)))
        h.end_headers()
        if reply_body and h.command != "HEAD" and reply.status != 204:
            h.wfile.write(reply_body)

    def _route(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        if path != PUSH_PATH:
            return _text_reply(404, "404 page not found")
        if method != "POST":
            return Reply(405)  # gorilla/mux: no body
        with self._lock:
            failure = self._failures.popleft() if self._failures else None
        if failure is not None:
            if failure.body and not any(k.lower() == "content-type" for k in failure.headers):
                failure = Reply(
                    failure.status,
                    failure.body,
                    {"Content-Type": "text/plain; charset=utf-8", **failure.headers},
                )
            return failure
        hook = self.hook
        if hook is not None:
            reply = hook(IncomingRequest(method, path, headers, body))
            if reply is not None:
                return reply
        if self.expected_auth is not None and headers.get("authorization") != self.expected_auth:
            return _text_reply(401, "Unauthorized")
        header_tenant = headers.get("x-scope-orgid")
        if self.tenant_required:
            if not header_tenant:
                return _text_reply(401, "no org id")
            _check_tenant(header_tenant)
        return self._push(headers, body, header_tenant)

    def _push(self, headers: dict[str, str], body: bytes, tenant: str | None) -> Reply:
        encoding = headers.get("content-encoding", "")
        if encoding not in ("", "snappy", "gzip", "deflate"):
            raise _HTTPError(400, f"Content-Encoding {go_quote(encoding)} not supported")
        media = _media_type(headers.get("content-type"))
        if media == "":
            raise _HTTPError(400, "mime: no media type")
        if media == "application/json":
            data = _content_decode(body, encoding)
            if len(data) > self.max_recv_msg_size:
                raise _HTTPError(
                    400,
                    f"message size too large than max ({len(data)} vs {self.max_recv_msg_size})",
                )
            raw_streams = _decode_json(data)
        else:
            if len(body) > self.max_recv_msg_size:
                raise _HTTPError(
                    413,
                    "request body too large: message size too large than max "
                    f"({len(body)} vs {self.max_recv_msg_size})",
                )
            data = _content_decode(body, encoding)
            raw_streams = _decode_protobuf(data, self.max_decompressed_size)
        return self._ingest(raw_streams, tenant)

    def _prepare_labels(self, raw: str) -> tuple[list[tuple[str, str]], str]:
        """Parse like ParseLokiRequest and add service_name; return pairs and stream.Labels."""
        try:
            pairs = parse_labels(raw)
        except LabelParseError as exc:
            raise _HTTPError(400, f"couldn't parse labels: {exc}") from None
        names = {n for n, _ in pairs}
        if (
            SERVICE_NAME not in names
            and self.discover_service_name
            and AGGREGATED_METRIC_LABEL not in names
        ):
            values = dict(reversed(pairs))  # Labels.Get returns the first match
            service = next(
                (values[n] for n in self.discover_service_name if n in values), UNKNOWN_SERVICE
            )
            pairs = sorted([*pairs, (SERVICE_NAME, service)], key=lambda p: p[0])
            return pairs, format_labels(pairs)
        return pairs, raw

    def _validate_labels(self, pairs: list[tuple[str, str]], text: str) -> str | None:
        if not pairs:
            return "error at least one label pair is required per stream"
        names = [n for n, _ in pairs]
        if AGGREGATED_METRIC_LABEL in names:
            return None
        count = len(pairs) - (1 if SERVICE_NAME in names else 0)
        if count > self.max_label_names_per_series:
            return (
                f"entry for stream '{text}' has {count} label names; "
                f"limit {self.max_label_names_per_series}"
            )
        last = ""
        for name, value in pairs:
            if len(name.encode()) > self.max_label_name_length:
                return f"stream '{text}' has label name too long: '{name}'"
            if len(value.encode()) > self.max_label_value_length:
                return f"stream '{text}' has label value too long: '{value}'"
            if name == last:
                return f"stream '{text}' has duplicate label name: '{name}'"
            last = name
        return None

    def _ingest(self, raw_streams: list[_RawStream], tenant: str | None) -> Reply:
        if not raw_streams:
            return _text_reply(422, "error at least one valid stream is required for ingestion")
        prepared = [(self._prepare_labels(s.labels), s.entries) for s in raw_streams]

        now = self.clock()
        oldest = now - int(self.reject_old_samples_max_age * _NS)
        newest = now + int(self.creation_grace_period * _NS)
        max_line = self.max_line_size
        errors: list[str] = []
        accepted: list[tuple[str, dict[str, str], list[_RawEntry]]] = []
        for (pairs, labels_text), entries in prepared:
            if not entries:
                continue
            problem = self._validate_labels(pairs, labels_text)
            if problem is not None:
                errors.append(problem)
                continue
            canonical = format_labels(pairs)
            valid: list[_RawEntry] = []
            for entry in entries:
                ts, line, size, metadata = entry
                if self.reject_old_samples and ts < oldest:
                    errors.append(
                        f"entry for stream '{canonical}' has timestamp too old: {rfc3339(ts)}, "
                        f"oldest acceptable timestamp is: {rfc3339(oldest)}"
                    )
                    continue
                if ts > newest:
                    errors.append(
                        f"entry for stream '{canonical}' has timestamp too new: {rfc3339(ts)}"
                    )
                    continue
                if max_line and size > max_line:
                    if not self.max_line_size_truncate:
                        errors.append(
                            f"max entry size '{max_line}' bytes exceeded for stream "
                            f"'{canonical}' while adding an entry with length '{size}' bytes"
                        )
                        continue
                    line = line.encode()[:max_line].decode("utf-8", "ignore")
                    size = len(line.encode())
                if metadata:
                    metadata = [
                        (_normalize_metadata_name(n), v.replace("\ufffd", "")) for n, v in metadata
                    ]
                    problem = self._validate_metadata(metadata, canonical)
                    if problem is not None:
                        errors.append(problem)
                        continue
                valid.append((ts, line, size, metadata))
            if valid:
                accepted.append((canonical, dict(pairs), valid))

        validation_error = _group_errors(errors) if errors else None
        if not accepted:
            return _text_reply(400, validation_error) if validation_error else _no_content()

        tenant_name = tenant or "fake"
        with self._lock:
            if self.ingestion_rate_mb is not None:
                refusal = self._rate_limit(tenant_name, accepted)
                if refusal is not None:
                    return refusal
            ingester_error: str | None = None
            for canonical, labels, valid in accepted:
                # instance.Push keeps the result of the last stream only.
                ingester_error = self._store(tenant, tenant_name, canonical, labels, valid)
        if ingester_error is not None:
            return _text_reply(400, ingester_error)
        if validation_error is not None:
            return _text_reply(400, validation_error)
        return _no_content()

    def _validate_metadata(self, metadata: list[tuple[str, str]], canonical: str) -> str | None:
        if not self.allow_structured_metadata:
            return (
                f"stream '{canonical}' includes structured metadata, but this feature is "
                "disallowed. Please see `limits_config.allow_structured_metadata` or contact "
                "your Loki administrator to enable it."
            )
        size = sum(len(n.encode()) + len(v.encode()) for n, v in metadata)
        limit = self.max_structured_metadata_size
        if limit and size > limit:
            return (
                f"stream '{canonical}' has structured metadata too large: '{size}' bytes, "
                f"limit: '{limit}' bytes. Please see "
                "`limits_config.max_structured_metadata_size` or contact your Loki "
                "administrator to increase it."
            )
        limit = self.max_structured_metadata_entries_count
        if limit and len(metadata) > limit:
            return (
                f"stream '{canonical}' has too many structured metadata labels: "
                f"'{len(metadata)}', limit: '{limit}'. Please see "
                "`limits_config.max_structured_metadata_entries_count` or contact your Loki "
                "administrator to increase it."
            )
        return None

    def _rate_limit(
        self, tenant_name: str, accepted: list[tuple[str, dict[str, str], list[_RawEntry]]]
    ) -> Reply | None:
        """Loki's tenant ingestion limiter (a token bucket); call with the lock held."""
        assert self.ingestion_rate_mb is not None
        rate = self.ingestion_rate_mb * MIB
        burst = self.ingestion_burst_size_mb * MIB
        lines = sum(len(valid) for _, _, valid in accepted)
        size = sum(
            e[2] + sum(len(n.encode()) + len(v.encode()) for n, v in e[3])
            for _, _, valid in accepted
            for e in valid
        )
        now = time.monotonic()
        tokens, updated = self._buckets.get(tenant_name, (burst, now))
        tokens = min(burst, tokens + (now - updated) * rate)
        if size > tokens:
            self._buckets[tenant_name] = (tokens, now)
            return _text_reply(
                429,
                f"ingestion rate limit exceeded for user {tenant_name} (limit: {int(rate)} "
                f"bytes/sec) while attempting to ingest '{lines}' lines totaling '{size}' "
                "bytes, reduce log volume or contact your Loki administrator to see if the "
                "limit can be increased",
            )
        self._buckets[tenant_name] = (tokens - size, now)
        return None

    def _store(
        self,
        tenant: str | None,
        tenant_name: str,
        canonical: str,
        labels: dict[str, str],
        valid: list[_RawEntry],
    ) -> str | None:
        """The ingester's stream.Push; call with the lock held. Returns its error, if any."""
        state = self._streams.get((tenant, canonical))
        if state is None:
            state = self._streams[(tenant, canonical)] = _StreamState()
        window = None if self.out_of_order_window is None else int(self.out_of_order_window * _NS)
        failed: list[tuple[int, str]] = []
        highest, seen = state.highest_ts, state.seen
        entries, duplicates = self._entries, self._duplicates
        for ts, line, _size, metadata in valid:
            if window is not None and highest is not None and ts < highest - window:
                failed.append(
                    (
                        ts,
                        f"entry too far behind, entry timestamp is: {rfc3339(ts)}, "
                        f"oldest acceptable timestamp is: {rfc3339(highest - window)}",
                    )
                )
                continue
            if highest is None or ts > highest:
                highest = ts
            entry = StoredEntry(labels, ts, line, dict(metadata), tenant)
            key = (ts, line)
            if key in seen:
                duplicates.append(entry)
                continue
            seen.add(key)
            entries.append(entry)
        state.highest_ts = highest
        if not failed:
            return None
        shown = failed[: self.max_returned_stream_errors or None]
        text = "".join(
            f"entry with timestamp {_go_time_string(ts)} ignored, reason: '{reason}',\n"
            for ts, reason in shown
        )
        return (
            text + f"user '{tenant_name}', total ignored: {len(failed)} out of {len(valid)} "
            f"for stream: {canonical}"
        )


def _group_errors(errors: list[str]) -> str:
    """Loki's util.GroupedErrors (distinct messages in first-seen order; Go's order is random)."""
    counts: dict[str, int] = {}
    for e in errors:
        counts[e] = counts.get(e, 0) + 1
    many = len(counts) > 1
    return "; ".join(f"{n} errors like: {e}" if many or n > 1 else e for e, n in counts.items())


def _check_tenant(header: str) -> None:
    """dskit's tenant.TenantID: 400 on an invalid or multi-tenant ID."""
    ids: list[str] = []
    for tenant_id in header.split("|"):
        for c in tenant_id:
            if not (c.isascii() and (c.isalnum() or c in "!-_.*'()")):
                raise _HTTPError(
                    400, f"tenant ID '{tenant_id}' contains unsupported character '{c}'"
                )
        if len(tenant_id) > 150:
            raise _HTTPError(400, "tenant ID is too long: max 150 characters")
        if tenant_id in (".", ".."):
            raise _HTTPError(400, "tenant ID is '.' or '..'")
        if tenant_id not in ids:
            ids.append(tenant_id)
    if len(ids) > 1:
        raise _HTTPError(400, "multiple org IDs present")


def _text_reply(status: int, message: str) -> Reply:
    """Go's http.Error: text/plain, the message and a newline."""
    return Reply(
        status,
        message + "\n",
        {"Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff"},
    )


def _no_content() -> Reply:
    return Reply(204)


def _read_body(h: BaseHTTPRequestHandler, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        parts: list[bytes] = []
        while True:
            size_line = h.rfile.readline(65537)
            if not size_line:
                raise ValueError("truncated chunked body")
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while h.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            chunk = h.rfile.read(size)
            if len(chunk) != size:
                raise ValueError("truncated chunked body")
            parts.append(chunk)
            h.rfile.readline(3)
    length = headers.get("content-length")
    if length is None:
        return b""
    n = int(length)
    if n < 0:
        raise ValueError("negative Content-Length")
    data = h.rfile.read(n)
    if len(data) != n:
        raise ValueError("truncated body")
    return data
