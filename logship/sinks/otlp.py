"""OTLP/HTTP logs (``<url>/v1/logs``): encoder (protobuf or JSON) and response classifier.

What a record becomes (PROTOCOLS.md C.2, C.6, C.7):

- ``time_unix_nano``: the record's timestamp (the read time when the line has none);
  ``observed_time_unix_nano``: when logship read the line.
- ``body``: the ``msg``/``message`` string of a JSON line, else the whole line.
- ``severity_text``: the level word as written (``level``/``lvl``/``severity``), and
  ``severity_number`` from it; a level that is not a string stays an attribute.
- ``attributes``: every other parsed field (nested objects and arrays as
  ``kvlist``/``array`` values), ``log.file.path``, and ``log.iostream`` from a
  Docker-style ``"stream": "stdout"|"stderr"`` field.
- The resource: see :func:`resource_attributes`; one ``ResourceLogs`` per distinct
  set of source labels, which are resource attributes too.

The protobuf encoder is built for the hot path (DESIGN.md "rules that make it
fast"): the official generated classes cost microseconds per record, so records
are written by hand, a column at a time. The JSON objects of a batch are grouped
by their key tuple (one logger writes the same keys on every line); each key's
values become a column, and a column of strings, floats or small integers turns
into bytes through C-level ``map`` calls over caches of whole field headers;
every fixed-size piece of a record (times, doubles, fixed-length strings and
their headers) is written by one ``struct`` pack per record. A column of
anything else (nested values, mixed types) is written value by value.
When every line of a batch has the same keys with one scalar JSON type per key (one
logger), the batch is not parsed into dicts at all: :mod:`logship.sinks.otlp_columns`
decodes it into typed columns in one msgspec call, and each record is then a cached
prefix (record header, severity and body header: found by the level word, then the body
length, when the rest of every record has one size; else by one integer key), the body,
the varying-length attributes and one packed piece; attributes may then come in another
order than in the line. A time outside fixed64 is not looked for beforehand: the pack
fails on it, and the batch is written again with such times as 0. Records of a request
are grouped by shape, so their order in a request is not their order in the file; each
carries its own timestamp. Unit tests check the bytes against the official
``opentelemetry-proto`` classes.
"""

from __future__ import annotations

import gc
import gzip
import logging
import operator
import socket
import struct
from collections.abc import Iterable, Mapping, Sequence
from itertools import repeat
from typing import Any, cast
from urllib.parse import unquote

import httpx
import orjson

from logship import __version__
from logship.config.model import OtlpSinkConfig
from logship.parsing.batch import Batch
from logship.parsing.levels import severity_number
from logship.parsing.parsed import LEVEL_KEYS, MESSAGE_KEYS
from logship.sinks.deadletter import DeadLetterFile
from logship.sinks.http import EncodedRequest, HttpSink, response_text
from logship.sinks.otlp_columns import ColumnDecoder, Columns
from logship.sinks.outcome import DELIVERED, Outcome, Verdict
from logship.sinks.protowire import WireError, iter_fields, len_field, varint
from logship.sinks.retry import parse_retry_after
from logship.telemetry import Telemetry

log = logging.getLogger("logship.sink.otlp")

SCOPE_NAME = "logship"
FILE_PATH = "log.file.path"
IOSTREAM = "log.iostream"
RETRYABLE = frozenset({429, 502, 503, 504})  # PROTOCOLS.md C.5: nothing else, 500 included

# Kubernetes resource attributes from downward-API environment variables: the first
# variable that is set (and not empty) wins.
K8S_ENV: dict[str, tuple[str, ...]] = {
    "k8s.namespace.name": ("K8S_NAMESPACE_NAME", "POD_NAMESPACE"),
    "k8s.pod.name": ("K8S_POD_NAME", "POD_NAME"),
    "k8s.pod.uid": ("K8S_POD_UID", "POD_UID"),
    "k8s.container.name": ("K8S_CONTAINER_NAME",),
    "k8s.node.name": ("K8S_NODE_NAME", "NODE_NAME"),
    "k8s.cluster.name": ("K8S_CLUSTER_NAME",),
    "k8s.deployment.name": ("K8S_DEPLOYMENT_NAME",),
}

_DOUBLE = struct.Struct("<d").pack
_U64 = (1 << 64) - 1
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_MAX_CACHE = 50_000


# -- resource ----------------------------------------------------------------------------
def parse_otel_resource_attributes(value: str) -> dict[str, str]:
    """``OTEL_RESOURCE_ATTRIBUTES`` (``k=v,k2=v2``, values percent-encoded); bad items skipped."""
    out: dict[str, str] = {}
    for item in value.split(","):
        key, sep, val = item.partition("=")
        key = key.strip()
        if sep and key:
            out[key] = unquote(val.strip())
    return out


def resource_attributes(env: Mapping[str, str], hostname: str | None = None) -> dict[str, str]:
    """The detected resource, before source labels and the sink's own settings.

    Later sources win: ``host.name`` (the hostname; a pod's name in Kubernetes), the
    ``k8s.*`` variables of :data:`K8S_ENV`, ``OTEL_RESOURCE_ATTRIBUTES``,
    ``OTEL_SERVICE_NAME``. :meth:`RecordEncoder.resource_for` then adds the source's
    labels, the sink's ``resource_attributes`` and ``service_name``, and
    ``service.name = unknown_service`` (what the OpenTelemetry SDKs use) if none set it.
    """
    attrs = {"host.name": socket.gethostname() if hostname is None else hostname}
    for name, variables in K8S_ENV.items():
        for var in variables:
            if env.get(var):
                attrs[name] = env[var]
                break
    attrs.update(parse_otel_resource_attributes(env.get("OTEL_RESOURCE_ATTRIBUTES", "")))
    if env.get("OTEL_SERVICE_NAME"):
        attrs["service.name"] = env["OTEL_SERVICE_NAME"]
    return attrs


# -- generic (value by value) encoding ----------------------------------------------------
def any_value(v: Any) -> bytes:
    """An ``AnyValue`` message for a JSON value (without its own tag and length)."""
    if isinstance(v, str):
        return len_field(1, v.encode("utf-8", "replace"))
    if v is True:
        return b"\x10\x01"
    if v is False:
        return b"\x10\x00"
    if isinstance(v, int):
        if _INT64_MIN <= v <= _INT64_MAX:
            return b"\x18" + varint(v & _U64)
        return len_field(1, str(v).encode())  # beyond int64: kept exact, as text
    if isinstance(v, float):
        return b"\x21" + _DOUBLE(v)
    if v is None:
        return b""  # an AnyValue with no value set: JSON null
    if isinstance(v, dict):
        return len_field(6, b"".join(len_field(1, key_value(str(k), x)) for k, x in v.items()))
    if isinstance(v, list | tuple):
        return len_field(5, b"".join(len_field(1, any_value(x)) for x in v))
    return len_field(1, str(v).encode("utf-8", "replace"))


def key_value(key: str, v: Any) -> bytes:
    """A ``KeyValue``; an empty key is left out, as proto3 serializers do."""
    k = len_field(1, key.encode("utf-8", "replace")) if key else b""
    return k + len_field(2, any_value(v))


def json_any_value(v: Any) -> dict[str, Any]:
    """The OTLP JSON form of a value (int64 as a decimal string, PROTOCOLS.md C.3)."""
    if isinstance(v, str):
        return {"stringValue": v}
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        if _INT64_MIN <= v <= _INT64_MAX:
            return {"intValue": str(v)}
        return {"stringValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if v is None:
        return {}
    if isinstance(v, dict):
        return {"kvlistValue": {"values": [json_key_value(str(k), x) for k, x in v.items()]}}
    if isinstance(v, list | tuple):
        return {"arrayValue": {"values": [json_any_value(x) for x in v]}}
    return {"stringValue": str(v)}


def json_key_value(key: str, v: Any) -> dict[str, Any]:
    return {"key": key, "value": json_any_value(v)}


def record_view(
    obj: dict[str, Any] | None, line: bytes
) -> tuple[str | None, int, str | bytes, list[tuple[str, Any]]]:
    """(severity text, severity number, body, parsed attributes) of one line.

    The reference for what a record carries; the column encoder must agree with it.
    The body is the line itself (bytes) when the line has no message string.
    """
    if obj is None:
        return None, 0, line, []
    body: str | bytes = line
    body_key = None
    for key in MESSAGE_KEYS:
        v = obj.get(key)
        if isinstance(v, str):
            body, body_key = v, key
            break
    sev_text: str | None = None
    sev_num = 0
    level_key = next((k for k in LEVEL_KEYS if k in obj), None)
    if level_key is not None and isinstance(obj[level_key], str):
        sev_text = obj[level_key]
        sev_num = severity_number(sev_text)
    else:
        level_key = None
    attrs: list[tuple[str, Any]] = []
    for k, v in obj.items():
        if k in (body_key, level_key, FILE_PATH):
            continue
        if k == "stream" and v in ("stdout", "stderr") and IOSTREAM not in obj:
            k = IOSTREAM
        attrs.append((k, v))
    return sev_text, sev_num, body, attrs


# -- caches of whole field headers --------------------------------------------------------
class _LenHead(dict[int, bytes]):
    """Payload length -> every field header in front of a payload of that length.

    ``levels`` lists the enclosing fields from the outside in, each as (tag byte,
    bytes between its length and the next level, such as an attribute's key).
    """

    def __init__(self, levels: list[tuple[bytes, bytes]]) -> None:
        super().__init__()
        self.levels = levels

    def __missing__(self, n: int) -> bytes:
        v = self._build(n)
        if n < 1 << 16:
            self[n] = v
        return v

    def _build(self, n: int) -> bytes:
        head = b""
        payload_len = n
        for tag_byte, after in reversed(self.levels):
            content = len(after) + len(head) + payload_len
            head = tag_byte + varint(content) + after + head
        return head


def _str_attr_head(key: str) -> _LenHead:
    """For a string attribute: ``0x32 len KeyValue{0x0a key 0x12 len AnyValue{0x0a len`` ."""
    k = key.encode("utf-8", "replace")
    return _LenHead([(b"\x32", len_field(1, k)), (b"\x12", b""), (b"\x0a", b"")])


_BODY_HEAD = _LenHead([(b"\x2a", b""), (b"\x0a", b"")])  # body AnyValue{string_value}
_RECORD_HEAD = _LenHead([(b"\x12", b"")])  # ScopeLogs.log_records


class _Severity(dict[str, bytes]):
    """Level word -> ``severity_number`` and ``severity_text`` fields."""

    def __missing__(self, word: str) -> bytes:
        if not isinstance(word, str):
            raise TypeError("not a level word")  # the record-by-record path takes it
        num = severity_number(word)
        v = (b"\x10" + varint(num) if num else b"") + len_field(3, word.encode("utf-8", "replace"))
        if len(self) > _MAX_CACHE:
            self.clear()
        self[word] = v
        return v


class _ValueAttr(dict[Any, bytes]):
    """Value -> the whole attribute field, for columns of few distinct ints or bools."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
        # Every size a field of this cache ever had (kept across clears): when there is
        # one, a column's fields are known to be of that size without measuring them.
        self.sizes: set[int] = set()

    def __missing__(self, v: Any) -> bytes:
        out = len_field(6, key_value(self.key, v))
        if len(self) > _MAX_CACHE:
            self.clear()
        self[v] = out
        self.sizes.add(len(out))
        return out


_SEVERITY = _Severity()

# A record's prefix key: body length + _KEY_REST * (size of the rest of the record)
# + _KEY_LEVEL * level id; a line is far shorter than 2**40 bytes.
_KEY_REST = 1 << 40
_KEY_LEVEL = 1 << 80


class _LevelCodes(dict[str, int]):
    """Level word -> ``_KEY_LEVEL * id + base``: its share of a prefix key."""

    def __init__(self, ids: dict[str, int], base: int) -> None:
        super().__init__()
        self.ids = ids
        self.base = base

    def __missing__(self, word: str) -> int:
        level_id = self.ids.get(word)
        if level_id is None:
            level_id = self.ids[word] = len(self.ids) + 1
        v = self[word] = _KEY_LEVEL * level_id + self.base
        return v


class _Prefixes(dict[int, bytes]):
    """Prefix key -> record header, severity fields and body header of a record."""

    def __init__(self, ids: dict[str, int]) -> None:
        super().__init__()
        self.ids = ids
        self.words: dict[int, str] = {}

    def __missing__(self, key: int) -> bytes:
        level_id, rem = divmod(key, _KEY_LEVEL)
        rest, body_len = divmod(rem, _KEY_REST)
        sev = b""
        if level_id:
            if len(self.words) != len(self.ids):
                self.words = {i: w for w, i in self.ids.items()}
            sev = _SEVERITY[self.words[level_id]]
        head = _BODY_HEAD[body_len]
        v = self[key] = _RECORD_HEAD[len(sev) + len(head) + body_len + rest] + sev + head
        return v


class _BodyPrefixes(dict[int, bytes]):
    """Body length -> record header, severity fields and body header of a record.

    One per (severity fields, size of the rest of the record): a batch whose records
    share the rest's size finds each record's prefix by two lookups (level word, then
    body length) instead of computing a key per record.
    """

    def __init__(self, sev: bytes, rest: int, budget: list[int]) -> None:
        super().__init__()
        self.sev = sev
        self.rest = rest
        self.budget = budget  # entries made in all of them, for RecordEncoder to bound

    def __missing__(self, n: int) -> bytes:
        head = _BODY_HEAD[n]
        v = _RECORD_HEAD[len(self.sev) + len(head) + n + self.rest] + self.sev + head
        self[n] = v
        self.budget[0] += 1
        return v


class _LevelPrefixes(dict[str, _BodyPrefixes]):
    """Level word -> its :class:`_BodyPrefixes`, for one size of the rest of a record."""

    def __init__(self, rest: int, budget: list[int]) -> None:
        super().__init__()
        self.rest = rest
        self.budget = budget

    def __missing__(self, word: str) -> _BodyPrefixes:
        v = self[word] = _BodyPrefixes(_SEVERITY[word], self.rest, self.budget)
        self.budget[0] += 1
        return v


class _Shape:
    """How the records of one key tuple are encoded (cached per key tuple)."""

    __slots__ = ("attrs", "level_key", "message_keys")

    def __init__(self, keys: tuple[str, ...]) -> None:
        present = set(keys)
        self.message_keys = [k for k in MESSAGE_KEYS if k in present]
        self.level_key = next((k for k in LEVEL_KEYS if k in present), None)
        # Attribute keys in line order; body and level keys are left out per batch.
        self.attrs = [k for k in keys if k != FILE_PATH]


class _Columns:
    """The pieces of a group of records: varying ones, and fixed-size ones packed together."""

    __slots__ = ("args", "formats", "lengths", "pieces")

    def __init__(self) -> None:
        self.pieces: list[Sequence[bytes]] = []
        self.lengths: list[list[int]] = []
        self.formats: list[str] = []
        self.args: list[Iterable[Any]] = []

    def varying(self, piece: Sequence[bytes], lengths: list[int] | None = None) -> None:
        self.pieces.append(piece)
        self.lengths.append(list(map(len, piece)) if lengths is None else lengths)

    def fixed(self, fmt: str, *args: Iterable[Any]) -> None:
        """``fmt`` is a ``struct`` format of one record's share, ``args`` its columns."""
        self.formats.append(fmt)
        self.args.extend(args)


class RecordEncoder:
    """Batches to ``ExportLogsServiceRequest`` bytes or JSON; holds the per-sink caches.

    Each batch's parsed objects are released as soon as the batch is encoded: they
    take several times the memory of the lines, and a request holds many batches.
    """

    def __init__(self, resource: Mapping[str, str], overrides: Mapping[str, str]) -> None:
        self.resource = dict(resource)
        self.overrides = dict(overrides)
        self._resources: dict[tuple[tuple[str, str], ...], bytes] = {}
        self._shapes: dict[tuple[str, ...], _Shape] = {}
        self._str_heads: dict[str, _LenHead] = {}
        self._int_attrs: dict[str, _ValueAttr] = {}
        self._bool_attrs: dict[str, _ValueAttr] = {}
        self._float_heads: dict[str, bytes] = {}
        self._columns = ColumnDecoder()
        self._level_ids: dict[str, int] = {}
        self._level_codes: dict[int, _LevelCodes] = {}
        self._prefixes = _Prefixes(self._level_ids)
        self._prefix_budget = [0]
        self._level_prefixes: dict[int, _LevelPrefixes] = {}
        self._plain_prefixes: dict[int, _BodyPrefixes] = {}
        scope = len_field(1, SCOPE_NAME.encode()) + len_field(2, __version__.encode())
        self._scope_field = len_field(1, scope)

    # -- resource --------------------------------------------------------------------
    def resource_for(self, labels: Mapping[str, str]) -> dict[str, str]:
        attrs = dict(self.resource)
        attrs.update(labels)
        attrs.update(self.overrides)
        attrs.setdefault("service.name", "unknown_service")
        return attrs

    def _resource_field(self, key: tuple[tuple[str, str], ...]) -> bytes:
        field = self._resources.get(key)
        if field is None:
            attrs = self.resource_for(dict(key))
            res = b"".join(len_field(1, key_value(k, v)) for k, v in attrs.items())
            field = self._resources[key] = len_field(1, res)
        return field

    # -- protobuf --------------------------------------------------------------------
    def encode_protobuf(self, batches: list[Batch]) -> tuple[bytes, int]:
        """The request body and the number of records in it."""
        groups: dict[tuple[tuple[str, str], ...], tuple[list[bytes], list[int]]] = {}
        count = 0
        for b in batches:
            if not b.lines:
                continue
            key = tuple(sorted(b.info.labels.items()))
            parts, size = groups.setdefault(key, ([], [0]))
            size[0] += self._batch_records(b, parts)
            count += len(b.lines)
            b.release_objects()  # at most one batch's parsed objects alive at a time
        out: list[bytes] = []
        for key, (parts, size) in groups.items():
            res = self._resource_field(key)
            scope_logs = len(self._scope_field) + size[0]
            sl_head = b"\x12" + varint(scope_logs) + self._scope_field
            out.append(b"\x0a" + varint(len(res) + len(sl_head) + size[0]) + res + sl_head)
            out.extend(parts)
        return b"".join(out), count

    @staticmethod
    def _tail(path: str, read_ns: int) -> bytes:
        """What every record of a batch ends with: observed time and ``log.file.path``."""
        observed = b"\x59" + struct.pack("<Q", max(0, read_ns))
        return observed + len_field(6, key_value(FILE_PATH, path))

    def _batch_records(self, b: Batch, out: list[bytes]) -> int:
        """Append the ``log_records`` fields of a batch to ``out``; return their size."""
        ns = b.timestamps().ns()
        mark = len(out)
        try:
            return self._records(b, ns, out)
        except struct.error:  # packing a time outside fixed64: no check of every time first
            del out[mark:]
            return self._records(b, list(map(_time_field, ns)), out)

    def _records(self, b: Batch, ns: list[int], out: list[bytes]) -> int:
        """:meth:`_batch_records` with times that may not fit fixed64 (``struct.error``)."""
        tail = self._tail(b.info.path, b.read_ns)
        lines = b.lines
        if b.info.format != "raw":
            typed = self._columns.columns(lines)
            if typed is not None:
                size = self._typed(typed, lines, ns, tail, out)
                if size is not None:
                    return size
        objs = b.objects()
        first = objs[0]
        if first is None and objs.count(None) == len(objs):  # plain-text lines only
            return self._raw(lines, ns, tail, out)
        if first is not None:
            try:  # len(None) raises: a raw line among them
                sizes = set(map(len, objs))  # type: ignore[arg-type]
            except TypeError:
                sizes = set()
            keys = tuple(first)
            # Same number of keys and every key present: the same key set (checked in C).
            if sizes == {len(keys)}:
                size = self._group(keys, cast(list[dict[str, Any]], objs), lines, ns, tail, out)
                if size is not None:
                    return size
        shapes = [() if o is None else tuple(o) for o in objs]
        by_shape: dict[tuple[str, ...], list[int]] = {}
        raw: list[int] = []
        for i, (o, shape) in enumerate(zip(objs, shapes, strict=True)):
            if o is None:
                raw.append(i)
            else:
                by_shape.setdefault(shape, []).append(i)
        size = 0
        if raw:
            size += self._raw([lines[i] for i in raw], [ns[i] for i in raw], tail, out)
        for shape, idx in by_shape.items():
            group = cast(list[dict[str, Any]], [objs[i] for i in idx])
            group_lines = [lines[i] for i in idx]
            group_ns = [ns[i] for i in idx]
            got = self._group(shape, group, group_lines, group_ns, tail, out)
            if got is None:  # cannot happen: every record of a group has these keys
                got = self._slow(group, group_lines, group_ns, tail, out)
            size += got
        return size

    def _raw(self, lines: list[bytes], ns: list[int], tail: bytes, out: list[bytes]) -> int:
        cols = _Columns()
        lens = list(map(len, lines))
        cols.varying(list(map(_BODY_HEAD.__getitem__, lens)))
        cols.varying(lines, lens)
        return self._assemble(ns, cols, tail, out)

    def _group(
        self,
        keys: tuple[str, ...],
        objs: list[dict[str, Any]],
        lines: list[bytes],
        ns: list[int],
        tail: bytes,
        out: list[bytes],
    ) -> int | None:
        """Records that share ``keys``, a column at a time; None if a key is missing."""
        shape = self._shapes.get(keys)
        if shape is None:
            if len(self._shapes) > 10_000:
                self._forget()
            shape = self._shapes[keys] = _Shape(keys)
        try:
            column = {k: list(map(operator.itemgetter(k), objs)) for k in keys}
        except KeyError:
            return None
        cols = _Columns()
        body_key = level_key = None
        try:
            if shape.message_keys:  # the first one must be a string on every line
                body_key = shape.message_keys[0]
                body = _utf8(column[body_key])
            else:
                body = lines
            if shape.level_key is not None:
                level_key = shape.level_key
                cols.varying(list(map(_SEVERITY.__getitem__, column[level_key])))
        except TypeError:  # not all strings: decide record by record
            return self._slow(objs, lines, ns, tail, out)
        body_lens = list(map(len, body))
        cols.varying(list(map(_BODY_HEAD.__getitem__, body_lens)))
        cols.varying(body, body_lens)
        for key in shape.attrs:
            if key != body_key and key != level_key:
                self._attribute(key, column[key], keys, cols)
        return self._assemble(ns, cols, tail, out)

    def _typed(
        self,
        typed: Columns,
        lines: list[bytes],
        ns: list[int],
        tail: bytes,
        out: list[bytes],
    ) -> int | None:
        """Records of a batch parsed into typed columns (one key set, one type per key).

        Each record is four kinds of piece: a prefix (record header, severity fields and
        body header) taken from a cache by one integer key per record, the body, the
        varying-length attributes, and every fixed-size piece packed by one ``struct``.
        """
        keys, kinds, values = typed
        kind = dict(zip(keys, kinds, strict=True))
        column = dict(zip(keys, values, strict=True))
        body_key = next((k for k in MESSAGE_KEYS if kind.get(k) is str), None)
        level_key = next((k for k in LEVEL_KEYS if k in kind), None)
        if level_key is not None and kind[level_key] is not str:
            level_key = None
        fixed = _Columns()
        fixed.fixed(f"{len(tail) + 1}sQ", repeat(tail + b"\x09"), ns)
        for key in keys:
            if key in (body_key, level_key, FILE_PATH):
                continue
            name = key
            if key == "stream" and kind[key] is str and IOSTREAM not in kind:
                streams = set(column[key])
                if streams <= {"stdout", "stderr"}:
                    name = IOSTREAM
                elif streams & {"stdout", "stderr"}:
                    return None  # some are, some are not: record by record
            self._typed_attribute(name, kind[key], column[key], fixed)
        body = lines if body_key is None else _utf8(column[body_key])
        body_lens = list(map(len, body))
        packer = struct.Struct("<" + "".join(fixed.formats))
        packed = list(map(packer.pack, *fixed.args))
        if not fixed.lengths:  # the rest of every record has one size
            prefixes = self._same_rest_prefixes(
                packer.size, body_lens, None if level_key is None else column[level_key]
            )
        else:
            prefixes = self._prefixes_by_key(
                packer.size, body_lens, None if level_key is None else column[level_key], fixed
            )
        pieces = [prefixes, body, *fixed.pieces, packed]
        stride = len(pieces)
        parts: list[bytes] = [b""] * (len(lines) * stride)
        for j, piece in enumerate(pieces):
            parts[j::stride] = piece
        out.extend(parts)
        # The prefixes' total size: one C join of short pieces costs less than a len() each.
        size = len(b"".join(prefixes)) + sum(body_lens) + packer.size * len(lines)
        return size + sum(map(sum, fixed.lengths))

    def _same_rest_prefixes(
        self, rest: int, body_lens: list[int], levels: Sequence[str] | None
    ) -> list[bytes]:
        """Each record's prefix by two lookups: its level word's cache, then its body length."""
        if self._prefix_budget[0] > _MAX_CACHE:
            self._prefix_budget[0] = 0
            self._level_prefixes.clear()
            self._plain_prefixes.clear()
        if levels is None:
            plain = self._plain_prefixes.get(rest)
            if plain is None:
                plain = self._plain_prefixes[rest] = _BodyPrefixes(b"", rest, self._prefix_budget)
            return list(map(plain.__getitem__, body_lens))
        by_level = self._level_prefixes.get(rest)
        if by_level is None:
            by_level = self._level_prefixes[rest] = _LevelPrefixes(rest, self._prefix_budget)
        return list(map(_BodyPrefixes.__getitem__, map(by_level.__getitem__, levels), body_lens))

    def _prefixes_by_key(
        self, size: int, body_lens: list[int], levels: Sequence[str] | None, fixed: _Columns
    ) -> list[bytes]:
        """Each record's prefix from one integer key (the rest's size varies by record)."""
        if len(self._prefixes) > _MAX_CACHE:
            self._prefixes.clear()
        if len(self._level_ids) > _MAX_CACHE or len(self._level_codes) > 1_000:
            self._level_ids.clear()
            self._level_codes.clear()
            self._prefixes = _Prefixes(self._level_ids)
        base = _KEY_REST * size
        if levels is None:
            pkeys = list(map(base.__add__, body_lens))
        else:
            codes = self._level_codes.get(base)
            if codes is None:
                codes = self._level_codes[base] = _LevelCodes(self._level_ids, base)
            pkeys = list(map(operator.add, body_lens, map(codes.__getitem__, levels)))
        if fixed.lengths:
            rest = (
                fixed.lengths[0]
                if len(fixed.lengths) == 1
                else map(sum, zip(*fixed.lengths, strict=True))
            )
            pkeys = list(map(operator.add, pkeys, map(_KEY_REST.__mul__, rest)))
        prefixes = list(map(self._prefixes.__getitem__, pkeys))
        return prefixes

    def _typed_attribute(self, name: str, kind: type, col: Sequence[Any], cols: _Columns) -> None:
        """One attribute column of one JSON type; fixed-size ones join the packed piece."""
        n = len(col)
        if kind is str:
            enc = _utf8(col)
            cache = self._str_heads.get(name)
            if cache is None:
                cache = self._str_heads[name] = _str_attr_head(name)
            size = _one_size(enc)
            if size is not None:  # ids, fixed-format times: one header
                cols.fixed(f"{len(cache[size])}s{size}s", repeat(cache[size]), enc)
            else:
                lens = list(map(len, enc))
                cols.varying(list(map(cache.__getitem__, lens)))
                cols.varying(enc, lens)
        elif kind is float:
            fhead = self._float_head(name)
            cols.fixed(f"{len(fhead)}sd", repeat(fhead), col)
        elif kind is type(None):
            field = len_field(6, key_value(name, None))
            cols.fixed(f"{len(field)}s", repeat(field))
        else:  # int (within int64) or bool: few distinct values, whole fields cached
            caches = self._int_attrs if kind is int else self._bool_attrs
            vcache = caches.get(name)
            if vcache is None:
                vcache = caches[name] = _ValueAttr(name)
            fields = list(map(vcache.__getitem__, col))
            if len(vcache.sizes) == 1:  # every field this cache made has one size
                cols.fixed(f"{len(fields[0])}s", fields)
                return
            lens = list(map(len, fields))
            if lens.count(lens[0]) == n:
                cols.fixed(f"{lens[0]}s", fields)
            else:
                cols.varying(fields, lens)

    def _float_head(self, name: str) -> bytes:
        """The bytes of a double attribute ``name`` up to its 8-byte value (cached per key)."""
        fhead = self._float_heads.get(name)
        if fhead is None:
            kv = len_field(1, name.encode("utf-8", "replace")) + b"\x12\x09"
            fhead = self._float_heads[name] = b"\x32" + varint(len(kv) + 9) + kv + b"\x21"
        return fhead

    def _forget(self) -> None:
        """Bound the caches when lines have ever-new keys (ids used as keys)."""
        self._shapes.clear()
        self._str_heads.clear()
        self._int_attrs.clear()
        self._bool_attrs.clear()
        self._float_heads.clear()

    def _attribute(self, src: str, col: list[Any], keys: tuple[str, ...], cols: _Columns) -> None:
        """Add one attribute column to ``cols``."""
        name = src
        if src == "stream" and IOSTREAM not in keys:
            try:
                streams_only = set(col) <= {"stdout", "stderr"}
            except TypeError:  # unhashable values
                streams_only = False
            if streams_only:
                name = IOSTREAM
            else:  # some are, some are not: record by record
                cols.varying(
                    [
                        len_field(6, key_value(IOSTREAM if v in ("stdout", "stderr") else src, v))
                        for v in col
                    ]
                )
                return
        try:
            enc = _utf8(col)
        except TypeError:
            pass
        else:
            cache = self._str_heads.get(name)
            if cache is None:
                cache = self._str_heads[name] = _str_attr_head(name)
            lens = list(map(len, enc))
            if lens.count(lens[0]) == len(lens):  # ids, fixed-format times: one header
                cols.fixed(f"{len(cache[lens[0]])}s{lens[0]}s", repeat(cache[lens[0]]), enc)
            else:
                cols.varying(list(map(cache.__getitem__, lens)))
                cols.varying(enc, lens)
            return
        kinds = set(map(type, col))
        kind = kinds.pop() if len(kinds) == 1 else None
        if kind is float:
            fhead = self._float_head(name)
            cols.fixed(f"{len(fhead)}sd", repeat(fhead), col)
            return
        if kind is int or kind is bool:
            caches = self._int_attrs if kind is int else self._bool_attrs
            vcache = caches.get(name)
            if vcache is None:
                vcache = caches[name] = _ValueAttr(name)
            fields = list(map(vcache.__getitem__, col))
        else:
            fields = [len_field(6, key_value(name, v)) for v in col]
        lens = list(map(len, fields))
        if lens.count(lens[0]) == len(lens):
            cols.fixed(f"{lens[0]}s", fields)
        else:
            cols.varying(fields, lens)

    def _assemble(self, ns: list[int], cols: _Columns, tail: bytes, out: list[bytes]) -> int:
        """Interleave per record: its header, the varying pieces, one packed fixed piece.

        Every piece of a fixed size (the time, the tail, doubles, fixed-length strings
        and their headers) is written by one ``struct`` pack per record.
        """
        packer = struct.Struct("<BQ" + "".join(cols.formats) + f"{len(tail)}s")
        fixed = list(map(packer.pack, repeat(9), ns, *cols.args, repeat(tail)))
        pieces = [*cols.pieces, fixed]
        sizes = list(map(sum, zip(*cols.lengths, repeat(packer.size))))
        heads = list(map(_RECORD_HEAD.__getitem__, sizes))
        stride = len(pieces) + 1
        parts: list[bytes] = [b""] * (len(ns) * stride)
        parts[0::stride] = heads
        for j, piece in enumerate(pieces, 1):
            parts[j::stride] = piece
        out.extend(parts)
        return sum(sizes) + sum(map(len, heads))

    def _slow(
        self,
        objs: list[dict[str, Any]],
        lines: list[bytes],
        ns: list[int],
        tail: bytes,
        out: list[bytes],
    ) -> int:
        """Record by record, for shapes the column path does not take (mixed types)."""
        fields: list[bytes] = []
        for obj, line in zip(objs, lines, strict=True):
            sev_text, sev_num, body, attrs = record_view(obj, line)
            rec = b""
            if sev_num:
                rec += b"\x10" + varint(sev_num)
            if sev_text is not None:
                rec += len_field(3, sev_text.encode("utf-8", "replace"))
            if isinstance(body, str):
                body = body.encode("utf-8", "replace")
            rec += len_field(5, len_field(1, body))
            rec += b"".join(len_field(6, key_value(k, v)) for k, v in attrs)
            fields.append(rec)
        cols = _Columns()
        cols.varying(fields)
        return self._assemble(ns, cols, tail, out)

    # -- JSON ------------------------------------------------------------------------
    def encode_json(self, batches: list[Batch]) -> tuple[bytes, int]:
        """The proto3-JSON form of the same request (camelCase, int64 as strings)."""
        groups: dict[tuple[tuple[str, str], ...], list[dict[str, Any]]] = {}
        count = 0
        for b in batches:
            if not b.lines:
                continue
            key = tuple(sorted(b.info.labels.items()))
            records = groups.setdefault(key, [])
            objs = b.objects()
            ns = b.timestamps().ns()
            observed = str(max(0, b.read_ns))
            path_attr = json_key_value(FILE_PATH, b.info.path)
            for obj, line, t in zip(objs, b.lines, ns, strict=True):
                sev_text, sev_num, body, attrs = record_view(obj, line)
                rec: dict[str, Any] = {
                    "timeUnixNano": str(_time_field(t)),
                    "observedTimeUnixNano": observed,
                }
                if sev_num:
                    rec["severityNumber"] = sev_num
                if sev_text is not None:
                    rec["severityText"] = sev_text
                if isinstance(body, bytes):
                    body = body.decode("utf-8", "replace")
                rec["body"] = {"stringValue": body}
                rec["attributes"] = [*(json_key_value(k, v) for k, v in attrs), path_attr]
                records.append(rec)
            count += len(b.lines)
            b.release_objects()
        doc = {
            "resourceLogs": [
                {
                    "resource": {
                        "attributes": [
                            json_key_value(k, v) for k, v in self.resource_for(dict(key)).items()
                        ]
                    },
                    "scopeLogs": [
                        {
                            "scope": {"name": SCOPE_NAME, "version": __version__},
                            "logRecords": records,
                        }
                    ],
                }
                for key, records in groups.items()
            ]
        }
        return orjson.dumps(doc), count


def _time_field(ns: int) -> int:
    """A time outside fixed64 (before 1970, after 2554) is sent as 0: "unknown"."""
    return ns if 0 <= ns <= _U64 else 0


def _one_size(pieces: list[bytes]) -> int | None:
    """The size of every piece when they all have one, else None; C loops only.

    The pieces are UTF-8, which never holds the byte 0xFF: joined with 0xFF between
    them, they all have size ``k`` exactly when every ``k + 1``-th byte is a 0xFF (no
    ``len()`` per piece).
    """
    n = len(pieces)
    k = len(pieces[0])
    joined = b"\xff".join(pieces)
    if len(joined) == n * (k + 1) - 1 and joined[k :: k + 1] == b"\xff" * (n - 1):
        return k
    return None


def _utf8(col: Sequence[Any]) -> list[bytes]:
    """UTF-8 of a column of strings; TypeError when a value is not a string."""
    try:
        return list(map(str.encode, col))
    except UnicodeEncodeError:  # a lone surrogate from a \ud800 escape
        return [s.encode("utf-8", "replace") for s in col]


# -- responses ---------------------------------------------------------------------------
def _is_json(headers: httpx.Headers) -> bool:
    ctype: str = headers.get("content-type", "")
    return ctype.split(";", 1)[0].strip().lower() == "application/json"


def partial_success(body: bytes, is_json: bool) -> tuple[int, str] | None:
    """(rejected records, message) of an ``ExportLogsServiceResponse``; None when unset."""
    if not body:
        return None
    if is_json:
        doc = orjson.loads(body)
        ps = doc.get("partialSuccess") if isinstance(doc, dict) else None
        if not isinstance(ps, dict):
            return None
        return int(ps.get("rejectedLogRecords") or 0), str(ps.get("errorMessage") or "")
    for number, _, value in iter_fields(body):
        if number == 1 and isinstance(value, bytes):
            rejected, message = 0, ""
            for n2, _, v2 in iter_fields(value):
                if n2 == 1 and isinstance(v2, int):
                    rejected = v2 - (1 << 64) if v2 > _INT64_MAX else v2
                elif n2 == 2 and isinstance(v2, bytes):
                    message = v2.decode("utf-8", "replace")
            return rejected, message
    return None


def status_message(body: bytes, headers: httpx.Headers) -> str:
    """The ``message`` of a ``google.rpc.Status`` error body, or the body as text."""
    if not body:
        return ""
    try:
        if _is_json(headers):
            doc = orjson.loads(body)
            if isinstance(doc, dict) and isinstance(doc.get("message"), str):
                return str(doc["message"])
        else:
            message = None
            for number, wire_type, value in iter_fields(body):
                if number == 2 and isinstance(value, bytes):
                    message = value.decode("utf-8")
                elif number == 1 and wire_type != 0:
                    raise WireError("not a Status")
            if message is not None:
                return message
    except (orjson.JSONDecodeError, WireError, UnicodeDecodeError):
        pass
    return response_text(body)


def classify(status: int, headers: httpx.Headers, body: bytes, records: int) -> Outcome:
    """An OTLP/HTTP answer (PROTOCOLS.md C.4, C.5) mapped to what the agent does next."""
    if 200 <= status < 300:
        try:
            ps = partial_success(body, _is_json(headers))
        except (orjson.JSONDecodeError, WireError, ValueError, TypeError):
            ps = None  # an unreadable success body is still a success
        if ps is None:
            return DELIVERED
        rejected, message = ps
        if rejected <= 0:
            return Outcome(Verdict.DELIVERED, message)  # a warning only
        reason = f"partial success: {message}" if message else "partial success"
        return Outcome(Verdict.REJECTED, reason, rejected=min(rejected, records))
    message = status_message(body, headers)
    reason = f"{status}: {message}" if message else f"HTTP {status}"
    if status in RETRYABLE:
        return Outcome(Verdict.RETRY, reason, parse_retry_after(headers.get("retry-after")))
    if status == 413:
        return Outcome(Verdict.SPLIT, reason)
    return Outcome(Verdict.REJECTED, reason, rejected=records)


class OtlpSink(HttpSink):
    path = "/v1/logs"

    def __init__(
        self,
        name: str,
        cfg: OtlpSinkConfig,
        telemetry: Telemetry,
        transport: httpx.BaseTransport | None = None,
        dead_letter: DeadLetterFile | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(name, cfg, telemetry, transport, dead_letter)
        import os

        self.otlp = cfg
        overrides = dict(cfg.resource_attributes)
        if cfg.service_name:
            overrides["service.name"] = cfg.service_name
        self.encoder = RecordEncoder(
            resource_attributes(os.environ if env is None else env), overrides
        )
        ctype = "application/json" if cfg.encoding == "json" else "application/x-protobuf"
        self._headers = {"Content-Type": ctype}
        if cfg.compression == "gzip":
            self._headers["Content-Encoding"] = "gzip"

    def encode(self, batches: list[Batch]) -> EncodedRequest:
        # Parsing makes thousands of dicts that live until the end of this call; the
        # collections they trigger would walk them all again, and they hold no cycles.
        gc_was_on = gc.isenabled()
        gc.disable()
        try:
            if self.otlp.encoding == "json":
                body, records = self.encoder.encode_json(batches)
            else:
                body, records = self.encoder.encode_protobuf(batches)
        finally:
            if gc_was_on:
                gc.enable()
        if self.otlp.compression == "gzip":
            body = gzip.compress(body, compresslevel=self.otlp.gzip_level)
        return EncodedRequest(body, self._headers, records)

    def classify(self, status: int, headers: httpx.Headers, body: bytes, records: int) -> Outcome:
        outcome = classify(status, headers, body, records)
        if outcome.verdict is Verdict.DELIVERED and outcome.reason:
            log.warning(
                "server accepted every record with a warning",
                extra={"sink": self.name, "reason": outcome.reason},
            )
        return outcome
