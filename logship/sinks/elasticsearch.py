"""Elasticsearch 8 / OpenSearch 2 ``_bulk``: encoder and response classifier (PROTOCOLS B).

Every record becomes a ``create`` action with a deterministic ``_id`` and a document::

    {"create":{"_id":"<file>-<crc><offset>","_index":"logs-2026.11.29"}}
    {"@timestamp":"...","message":...,"log":{"level":...,"offset":N,"file":{"path":...}},
     "labels":{...},"fields":{...}}

Why these choices:

* ``create`` with an id derived from the file identity, the line's byte offset and a
  CRC-32C of the line: a replay after a restart (at-least-once) answers 409, which is
  counted as delivered, instead of storing a duplicate. The CRC keeps a recycled inode
  (a new file, same device and inode, same offsets) from colliding with old documents.
  It is one CRC per line, not one per batch over a prefix: batch boundaries depend on
  how much of the file a read found (a live tail reads small chunks, a replay after a
  restart large ones), so anything hashed across lines would give a replayed line
  another id; and the file's fingerprint grows with the file's first KiB, so it cannot
  stand in for the content either. ``create`` is also the only action data streams accept.
* ``fields`` is the original JSON line, spliced in as it is (it parsed, so it is valid
  JSON): nothing is re-encoded, and the application's keys never collide with ours. A
  string ``msg`` is spliced the same way, as the line wrote it.
* The id is the file's name, a dash, the line's CRC-32C as eight hex digits and the
  line's offset in decimal (the fixed-width CRC keeps the two apart): the same decimal
  bytes serve the id and the document's ``log.offset``, so one format per line makes both.
* Each record is eleven pieces of the batch's columns (CRC, offset, pieces cached per
  second, fraction, message, level, line, constants), laid into one
  list by extended-slice assignments and joined once: every column is a C loop over the
  batch, and a piece costs one step of the join (a ``%`` format per record cost ~4 k
  instructions, the join of its pieces ~1 k). Item retries and 413 splits cut records
  out of that body (two lines each) instead of encoding anything again.
* ``filter_path=errors,items.*.status,items.*.error`` keeps responses small while every
  item keeps its status, so answers map back to records by position (B.6).
"""

from __future__ import annotations

import binascii
import gc
import gzip
import hashlib
import operator
import re
import struct
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from itertools import repeat
from json.encoder import encode_basestring
from typing import Any

import httpx
import msgspec
import orjson
from google_crc32c import value as crc32c

from logship.config.model import ElasticsearchSinkConfig
from logship.parsing.batch import Batch
from logship.parsing.levels import normalize_level
from logship.parsing.parsed import LEVEL_KEYS, MESSAGE_KEYS
from logship.parsing.timestamps import SECONDS_NS, SecondsKey
from logship.sinks.deadletter import DeadLetterFile
from logship.sinks.http import EncodedRequest, HttpSink, _FileSecret, response_text
from logship.sinks.outcome import DELIVERED, Outcome, Verdict
from logship.sinks.retry import parse_retry_after
from logship.telemetry import Telemetry

_NS = 1_000_000_000
FILTER_PATH = "errors,items.*.status,items.*.error"
_NULL = b"null"
_EMPTY = b"{}"
_MAX_CACHE = 100_000


# Epoch seconds that ``datetime`` can name (years 1 to 9999).
_FIRST_SECOND, _LAST_SECOND = -62_135_596_800, 253_402_300_799


def _utc(seconds: int) -> datetime:
    """An epoch number's time; one outside what ``datetime`` can name is clamped, not fatal.

    A line such as ``{"ts": 2.5e20}`` once made the encoder raise on every attempt.
    """
    return datetime.fromtimestamp(min(max(seconds, _FIRST_SECOND), _LAST_SECOND), UTC)


class _SecondsText(dict[Any, bytes]):
    """Seconds key -> ``2026-11-29T10:00:00`` (text keys are already UTC; ints are epochs)."""

    def __missing__(self, key: SecondsKey) -> bytes:
        if isinstance(key, int):
            v = _utc(key).strftime("%Y-%m-%dT%H:%M:%S").encode()
        else:
            v = key.replace(b" ", b"T")
        if len(self) >= _MAX_CACHE:
            self.clear()
        self[key] = v
        return v


_FRACTION = re.compile(rb'(?:[.,](\d{1,9}))?(?:Z|z|[+-]00:?00)?"')


class _FractionText(dict[Any, bytes]):
    """Fraction key -> ``.123Z","message":`` (the timestamp's rest, then the next key)."""

    def __missing__(self, key: bytes | int) -> bytes:
        if isinstance(key, int):
            v = b'.%09dZ"' % key
        else:
            m = _FRACTION.fullmatch(key)
            digits = m.group(1) if m is not None else None
            v = b"." + digits + b'Z"' if digits else b'Z"'
        v += b',"message":'
        if len(self) >= _MAX_CACHE:
            self.clear()
        self[key] = v
        return v


class _NoLevelKey(Exception):
    """A line without a ``level`` key: ``lvl`` or ``severity`` may name its level."""


class _LevelJson(dict[Any, bytes]):
    """A level value -> ``,"log":{"level":<normalized>,"offset":``; caches text and None.

    Other values are not cached: ``1``, ``True`` and ``1.0`` are one dict key but
    normalize differently.
    """

    def __missing__(self, key: object) -> bytes:
        if key is msgspec.UNSET:
            raise _NoLevelKey
        v = _level_piece(key)
        if type(key) in _CACHEABLE_LEVELS:
            if len(self) >= 10_000:
                self.clear()
            self[key] = v
        return v


# The shape of a batch's text timestamps (TimestampColumn.text_format, after the date/time
# separator) when each fraction key is already what the document needs.
_AS_WRITTEN = re.compile(rb'(?:\.0{1,9})?Z"')

_SECONDS = _SecondsText()
_FRACTIONS = _FractionText()
_LEVELS = _LevelJson()


def _decode(line: bytes) -> str:
    return line.decode("utf-8", "replace")


# A str as a JSON string, as bytes. Measured here, ``json``'s C string encoder mapped over
# a batch costs ~0.2 µs per message against ~2 µs for one ``orjson.dumps`` call each
# (orjson's per-call overhead dominates for short strings).
_encode_str = encode_basestring  # the C version when CPython has it


def json_strings(values: list[str]) -> list[bytes]:
    return list(map(str.encode, map(_encode_str, values)))


def _level_piece(value: object) -> bytes:
    return b',"log":{"level":' + orjson.dumps(normalize_level(value)) + b',"offset":'


_NO_LEVEL = _level_piece(None)


_CACHEABLE_LEVELS = {str, type(None)}  # level values cached by value


class LineKeys(msgspec.Struct, gc=False):
    """The keys of a JSON line the document needs; every other key is checked, not built.

    Decoding into this instead of a dict proves the line is valid JSON (it is spliced
    into the document as ``fields``) at a third of the cost. UNSET tells "absent" from
    ``null``, so the first level key *present* wins, as in the normalized record.
    ``gc=False``: the values are decoded JSON, which cannot refer back to the struct,
    and untracked structs do not set off collections that walk every one of them.
    """

    msg: Any = msgspec.UNSET
    message: Any = msgspec.UNSET
    level: Any = msgspec.UNSET
    lvl: Any = msgspec.UNSET
    severity: Any = msgspec.UNSET


_ABSENT = msgspec.Raw(b"")


class RawMsgKeys(msgspec.Struct, gc=False):
    """:class:`LineKeys` with ``msg`` kept as its JSON text, for the usual batch.

    A string ``msg`` is then spliced into the document as written (its escapes were
    checked by the decoder), instead of being decoded and encoded again. The decoder
    does not check the UTF-8 inside a value it keeps raw, so the batch's ``msg`` texts
    are checked together; a batch where that fails, or where some ``msg`` is not a
    string, is decoded again with :class:`LineKeys`.
    """

    msg: msgspec.Raw = _ABSENT
    message: Any = msgspec.UNSET
    level: Any = msgspec.UNSET
    lvl: Any = msgspec.UNSET
    severity: Any = msgspec.UNSET


assert MESSAGE_KEYS == ("msg", "message") and LEVEL_KEYS == ("level", "lvl", "severity")
_decode_keys = msgspec.json.Decoder(LineKeys).decode
_decode_raw_msg = msgspec.json.Decoder(RawMsgKeys).decode
_UNSET = msgspec.UNSET


def _message_of(keys: LineKeys, line: bytes) -> str:
    if type(keys.msg) is str:
        return keys.msg
    if type(keys.message) is str:
        return keys.message
    return _decode(line)


def _level_of(keys: LineKeys | RawMsgKeys) -> object:
    for v in (keys.level, keys.lvl, keys.severity):
        if v is not _UNSET:
            return v
    return None


def _objects(batch: Batch) -> tuple[list[LineKeys | None], int]:
    """The keys of each JSON object line (None: kept raw) and how many were malformed."""
    lines = batch.lines
    if all(map(bytes.startswith, lines, repeat(b"{"))):
        try:  # the usual case: one C loop
            return list(map(_decode_keys, lines)), 0
        except (msgspec.DecodeError, RecursionError):  # deep nesting exhausts the stack
            pass
    objs: list[LineKeys | None] = []
    malformed = 0
    strict = batch.info.format == "json"
    for line in lines:
        obj = None
        if line.lstrip()[:1] == b"{":
            try:
                obj = _decode_keys(line)
            except (msgspec.DecodeError, RecursionError):  # kept raw, like orjson's depth limit
                malformed += 1
        elif strict:
            malformed += 1
        objs.append(obj)
    return objs, malformed


_get_msg = operator.attrgetter("msg")
_get_level = operator.attrgetter("level")


def _raw_msg_keys(lines: list[bytes]) -> tuple[list[Any], list[RawMsgKeys]] | None:
    """Each line's ``msg`` JSON string and keys, when every line is an object with one.

    Every step is a C loop over the batch: one decode per line, then one join of the
    ``msg`` texts, checked at once to be strings (each starts with a quote: the decoder
    already checked where it ends) and UTF-8.
    """
    try:  # a line that is not an object fails too: no need to look at first bytes
        keys = list(map(_decode_raw_msg, lines))
    except (msgspec.DecodeError, RecursionError):
        return None
    msgs: list[Any] = list(map(_get_msg, keys))
    # JSON text holds no raw newline, so newlines separate the values unambiguously.
    joined = b"\n".join(msgs)
    if joined[:1] != b'"' or joined.count(b'\n"') != len(msgs) - 1:
        return None  # a msg that is absent (empty) or not a string
    if not joined.isascii():
        try:
            joined.decode()
        except UnicodeDecodeError:
            return None
    return msgs, keys


def _level_column(keys: list[Any]) -> list[bytes]:
    """The level piece of each line: one cached lookup per line in the usual case."""
    try:  # the cache holds text and None only, so 1, True and 1.0 never hit it
        return list(map(_LEVELS.__getitem__, map(_get_level, keys)))
    except (_NoLevelKey, TypeError):  # absent "level", or an unhashable value
        pass
    levels = list(map(_level_of, keys))
    try:
        return list(map(_LEVELS.__getitem__, levels))
    except TypeError:
        return list(map(_level_piece, levels))


def record_columns(batch: Batch) -> tuple[list[Any], list[bytes], list[bytes]]:
    """Per line: ``message`` as JSON, the level piece, and ``fields`` (a JSON object).

    The common case (every line a JSON object with a string ``msg``) runs as C loops
    over the batch; other lines take a per-line path. A ``message`` is bytes or a
    :class:`msgspec.Raw` (a JSON string as the line wrote it); both are buffers.
    """
    lines = batch.lines
    n = len(lines)
    if batch.info.format == "raw":
        return json_strings(list(map(_decode, lines))), [_NO_LEVEL] * n, [_EMPTY] * n
    fast = _raw_msg_keys(lines)
    if fast is not None:
        msgs, raw_keys = fast
        return msgs, _level_column(raw_keys), lines
    objs, malformed = _objects(batch)
    if malformed and batch.telemetry is not None:
        batch.telemetry.malformed(batch.info.source, malformed)
    if None not in objs:
        keys: list[LineKeys] = objs  # type: ignore[assignment]
        msgs = list(map(_get_msg, keys))
        if set(map(type, msgs)) != {str}:
            msgs = list(map(_message_of, keys, lines))
        return json_strings(msgs), _level_column(keys), lines
    msg_json: list[bytes] = []
    level_json: list[bytes] = []
    fields: list[bytes] = []
    for obj, line in zip(objs, lines, strict=True):
        if obj is None:
            msg_json.append(_encode_str(_decode(line)).encode())
            level_json.append(_NO_LEVEL)
            fields.append(_EMPTY)
        else:
            msg_json.append(_encode_str(_message_of(obj, line)).encode())
            level = _level_of(obj)
            cacheable = type(level) in _CACHEABLE_LEVELS
            level_json.append(_LEVELS[level] if cacheable else _level_piece(level))
            fields.append(line)
    return msg_json, level_json, fields


def document_id_prefix(batch: Batch) -> bytes:
    """A short stable name for the file a batch came from."""
    ident = batch.info.identity or f"{batch.info.source}:{batch.info.path}"
    return hashlib.blake2b(ident.encode(), digest_size=8).hexdigest().encode()


class _SecondPiece(dict[Any, bytes]):
    """Seconds key -> the action's end and the document's start, to the whole second.

    ``","_index":"<index of that second>"}}`` + newline + ``{"@timestamp":"2026-11-29T10:00:00``:
    the action line names ``_id`` first, so all that follows it up to the fraction
    depends on the second alone.
    """

    def __init__(self, index: str) -> None:
        super().__init__()
        self.index = index
        self.templated = "%" in index

    def __missing__(self, seconds: SecondsKey) -> bytes:
        name = self.index
        if self.templated:
            ns = SECONDS_NS[seconds] or 0
            name = _utc(ns // _NS).strftime(self.index)
        v = b'","_index":' + orjson.dumps(name) + b'}}\n{"@timestamp":"' + _SECONDS[seconds]
        if len(self) >= _MAX_CACHE:
            self.clear()
        self[seconds] = v
        return v


class BulkEncoder:
    """Batches to a ``_bulk`` body; the index template is applied once per distinct second."""

    def __init__(self, index: str) -> None:
        self.index = index
        self.second_piece = _SecondPiece(index)

    def body(self, batches: list[Batch]) -> tuple[bytes, int]:
        """The NDJSON body of every batch's records, in order, and how many records it holds.

        Each record is ten pieces (see :func:`_record_pieces`) laid into one list by
        extended-slice assignments, then one ``b"".join``: every piece costs a C step of
        the join instead of a ``%`` specifier (several times dearer, measured).
        """
        parts: list[Any] = []
        records = 0
        for b in batches:
            if b.lines:
                parts += _record_pieces(b, self.second_piece)
                records += len(b.lines)
        if not parts:
            return b"", 0
        parts[0] = parts[0][2:]  # the first record has no record before it to close
        parts.append(b"}\n")
        return b"".join(parts), records


_STRIDE = 11  # pieces per record in _record_pieces


def _record_pieces(b: Batch, second_piece: _SecondPiece) -> list[Any]:
    """A batch's records as pieces, eleven per record (each line's in one place)::

        }\n{"create":{"_id":"<file>-   <CRC-32C hex>   <offset>   ","_index":...}}\n
        {"@timestamp":"<second>   <fraction>   ,"message":   <message>   ,"log":{"level":..,
        "offset":   <offset>   ,"file":{...}},"labels":{...},"fields":   <line>

    The record's closing brace and newline open the next one. Every column is a C loop
    over the batch; the pieces that are the same for every record are one object.
    """
    n = len(b.lines)
    ts = b.timestamps()
    msgs, levels, fields = record_columns(b)
    offsets = b.line_offsets()
    info = b.info
    tail = (
        b',"file":{"path":'
        + orjson.dumps(info.path)
        + b'}},"labels":'
        + orjson.dumps(info.labels)
        + b',"fields":'
    )
    fractions: list[Any]
    if ts.text_format is not None and _AS_WRITTEN.fullmatch(ts.text_format, 1):
        # Every fraction is written as Elasticsearch gets it (".123Z""): no lookups.
        fractions = ts.fractions
        message_key = b',"message":'
    else:
        fractions = list(map(_FRACTIONS.__getitem__, ts.fractions))
        message_key = b""  # the pieces end with the "message" key
    start = b'}\n{"create":{"_id":"' + document_id_prefix(b) + b"-"
    # One C pass for all the CRCs as zero-padded hex ("%08x" per record costs ~3x more).
    crcs = binascii.hexlify(struct.pack(f">{n}I", *map(crc32c, b.lines)), b"-", 4)
    p: list[Any] = [start, None, None, None, None, message_key, None, None, None, tail, None] * n
    decimal = list(map(operator.mod, repeat(b"%d"), offsets))  # no method-wrapper calls
    p[1::_STRIDE] = crcs.split(b"-")
    p[2::_STRIDE] = decimal
    p[3::_STRIDE] = map(second_piece.__getitem__, ts.seconds)
    p[4::_STRIDE] = fractions
    p[6::_STRIDE] = msgs
    p[7::_STRIDE] = levels  # with the "log" object's start and the "offset" key
    p[8::_STRIDE] = decimal
    p[10::_STRIDE] = fields
    return p


class BulkItems:
    """The records of one ``_bulk`` request, for item retries, splits and dead letters.

    Only the uncompressed body is kept while the request is in flight (the piece list is
    dropped after the join: it cost twice the body in memory). Its lines are cut apart
    only on the failure path: every record is exactly two lines, because JSON escapes
    newlines and a log line never holds one.
    """

    __slots__ = ("_body", "_lines", "finish", "headers", "records")

    def __init__(
        self,
        body: bytes | None,
        lines: list[bytes] | None,
        records: int,
        finish: Callable[[bytes], bytes],
        headers: dict[str, str],
    ) -> None:
        self._body = body  # the NDJSON body, or None when built from ``lines``
        self._lines = lines  # action and source line of each record, without newlines
        self.records = records
        self.finish = finish  # the body as sent (gzip or not)
        self.headers = headers

    def _ops(self) -> list[bytes]:
        if self._lines is None:
            assert self._body is not None
            self._lines = self._body.split(b"\n")[:-1]
            self._body = None
        return self._lines

    def request(self) -> EncodedRequest:
        body = self._body
        if body is None:
            body = b"\n".join(self._ops()) + b"\n"
        return EncodedRequest(self.finish(body), self.headers, self.records, self)

    def subset(self, positions: Sequence[int]) -> EncodedRequest:
        ops = self._ops()
        chosen = [ops[j] for p in positions for j in (2 * p, 2 * p + 1)]
        return BulkItems(None, chosen, len(positions), self.finish, self.headers).request()

    def documents(self, positions: Sequence[int]) -> list[bytes]:
        ops = self._ops()
        return [ops[2 * p + 1] for p in positions]


def _error_reason(status: int, error: object) -> str:
    if isinstance(error, dict):
        text = f"{status} {error.get('type', 'error')}: {error.get('reason', '')}"
        cause = error.get("caused_by")
        if isinstance(cause, dict) and cause.get("reason"):
            text += f" (caused by {cause.get('type', '')}: {cause['reason']})"
        return text[:500]
    if error:
        return f"{status}: {str(error)[:500]}"
    return f"HTTP {status}"


def _envelope_reason(status: int, body: bytes) -> str:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        doc = None
    if isinstance(doc, dict) and "error" in doc:
        return _error_reason(status, doc["error"])
    text = response_text(body)
    return f"{status}: {text}" if text else f"HTTP {status}"


def classify_items(items: list[Any]) -> Outcome:
    """Per-item statuses (B.4), by position: 200/201/409 done, 429/5xx again, others refused."""
    retry: list[int] = []
    failed: list[tuple[int, str]] = []
    first_retry = ""
    for i, item in enumerate(items):
        result = next(iter(item.values()), None) if isinstance(item, dict) else None
        status = result.get("status") if isinstance(result, dict) else None
        if status in (200, 201, 409):  # 409: this id exists, i.e. delivered before
            continue
        error = result.get("error") if isinstance(result, dict) else None
        if not isinstance(status, int) or status == 429 or status >= 500:
            retry.append(i)
            if not first_retry:
                first_retry = _error_reason(status or 0, error)
        else:
            failed.append((i, _error_reason(status, error)))
    if not retry and not failed:
        return DELIVERED
    reason = first_retry or failed[0][1]
    return Outcome(Verdict.PARTIAL, reason, retry_items=tuple(retry), failed_items=tuple(failed))


def classify(status: int, headers: httpx.Headers, body: bytes, records: int) -> Outcome:
    """Elasticsearch's and OpenSearch's answers (B.3-B.7) mapped to what the agent does."""
    if 200 <= status < 300:
        if body.startswith(b'{"errors":false'):  # the usual answer: no need to read the items
            return DELIVERED
        try:
            doc = orjson.loads(body) if body.strip() else {}
        except orjson.JSONDecodeError:
            doc = None
        if not isinstance(doc, dict):
            # Documents may be stored: sending all again is safe, their ids answer 409.
            return Outcome(
                Verdict.RETRY, f"{status}: unreadable _bulk response: {response_text(body, 200)}"
            )
        if not doc.get("errors"):
            return DELIVERED
        items = doc.get("items")
        if not isinstance(items, list) or len(items) != records:
            got = len(items) if isinstance(items, list) else 0
            return Outcome(
                Verdict.RETRY,
                f"{status}: _bulk answered {got} item(s) for {records} document(s)",
            )
        out = classify_items(items)
        if out.verdict is Verdict.PARTIAL and out.retry_items:
            after = parse_retry_after(headers.get("retry-after"))
            if after is not None:
                return Outcome(
                    Verdict.PARTIAL,
                    out.reason,
                    after,
                    retry_items=out.retry_items,
                    failed_items=out.failed_items,
                )
        return out
    reason = _envelope_reason(status, body)
    if status == 413:
        return Outcome(Verdict.SPLIT, "413: request larger than the server accepts")
    if status == 429 or status >= 500:
        return Outcome(Verdict.RETRY, reason, parse_retry_after(headers.get("retry-after")))
    if status in (401, 403):
        hint = "check the credentials" if status == 401 else "check the user's privileges"
        return Outcome(Verdict.RETRY, f"{reason} ({hint}; data stays in the files)")
    if status in (404, 407, 408):
        return Outcome(Verdict.RETRY, reason, parse_retry_after(headers.get("retry-after")))
    return Outcome(Verdict.REJECTED, reason, rejected=records)


class ElasticsearchSink(HttpSink):
    path = "/_bulk"
    # A body is ~3 times its lines' bytes (the budget counts lines only) and up to
    # max_in_flight of them are alive: counted, the process stays near memory_limit plus
    # its fixed part.
    hold_bodies = True

    def __init__(
        self,
        name: str,
        cfg: ElasticsearchSinkConfig,
        telemetry: Telemetry,
        transport: httpx.BaseTransport | None = None,
        dead_letter: DeadLetterFile | None = None,
    ) -> None:
        super().__init__(name, cfg, telemetry, transport, dead_letter)
        self.es = cfg
        query = httpx.QueryParams({"filter_path": FILTER_PATH})
        if cfg.pipeline:
            query = query.set("pipeline", cfg.pipeline)
        self.url = f"{cfg.url}/_bulk?{query}"
        self.encoder = BulkEncoder(cfg.index)
        headers = {"Content-Type": "application/x-ndjson"}
        if cfg.compression == "gzip":
            headers["Content-Encoding"] = "gzip"
            self._finish: Callable[[bytes], bytes] = _gzip
        else:
            self._finish = _same
        self._headers = headers
        if cfg.api_key is not None:
            self._static_auth = "ApiKey " + cfg.api_key.get_secret_value()
        elif cfg.api_key_file is not None:
            self._file_auth = ("apikey", _FileSecret(cfg.api_key_file))

    def encode(self, batches: list[Batch]) -> EncodedRequest:
        # Thousands of short-lived objects per batch, none in a cycle: collections during
        # the encode would only walk them.
        gc_was_on = gc.isenabled()
        gc.disable()
        try:
            body, records = self.encoder.body(batches)
        finally:
            if gc_was_on:
                gc.enable()
        return BulkItems(body, None, records, self._finish, self._headers).request()

    def classify(self, status: int, headers: httpx.Headers, body: bytes, records: int) -> Outcome:
        return classify(status, headers, body, records)


def _same(body: bytes) -> bytes:
    return body


def _gzip(body: bytes) -> bytes:
    return gzip.compress(body, compresslevel=1, mtime=0)
