"""Grafana Loki push API: encoder (protobuf+snappy or JSON) and response classifier.

The protobuf encoder is built for the hot path: it never builds a message per
entry. An ``EntryAdapter`` is written as four byte strings per line,
``[entry header][line][timestamp seconds][timestamp nanos]``, all but the line
looked up in caches, and one ``b"".join`` assembles the whole request. The
fields are in ``line, timestamp`` order (protobuf readers accept any order) so
the header depends on the line length alone, and the two timestamp varints are
always five bytes (nanoseconds padded with continuation bits, which every
protobuf reader accepts), so the entry length never needs per-line arithmetic.
"""

from __future__ import annotations

import bisect
import gzip
import itertools
import logging
import operator
import re
from typing import Any

import cramjam
import httpx
import orjson

from logship.config.model import LokiSinkConfig
from logship.parsing.batch import Batch
from logship.parsing.timestamps import (
    FRACTION_NS,
    SECONDS_NS,
    FractionKey,
    SecondsKey,
    TimestampColumn,
    all_int_keys,
    keys_in_order,
    ns_of_keys,
)
from logship.sinks.deadletter import DeadLetterFile
from logship.sinks.http import EncodedRequest, HttpSink, response_text
from logship.sinks.outcome import DELIVERED, Outcome, Verdict
from logship.sinks.protowire import varint
from logship.sinks.retry import parse_retry_after
from logship.telemetry import Telemetry

log = logging.getLogger("logship.sink.loki")

MAX_LABELS = 15  # Loki's default max_label_names_per_series
_NS = 1_000_000_000
_BAD_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_]")


def varint5(value: int) -> bytes:
    """A varint padded to exactly five bytes (values below 2**35)."""
    return bytes(
        [
            (value & 0x7F) | 0x80,
            ((value >> 7) & 0x7F) | 0x80,
            ((value >> 14) & 0x7F) | 0x80,
            ((value >> 21) & 0x7F) | 0x80,
            (value >> 28) & 0x7F,
        ]
    )


_TS_LEN = 12  # 0x08 + 5 bytes seconds + 0x10 + 5 bytes nanos


class _EntryHeader(dict[int, bytes]):
    """Line length -> ``0x12 len(entry) 0x12 len(line)``."""

    def __missing__(self, n: int) -> bytes:
        line_field = 1 + len(varint(n)) + n
        entry_len = line_field + 2 + _TS_LEN
        v = b"\x12" + varint(entry_len) + b"\x12" + varint(n)
        if n < 1 << 16:
            self[n] = v
        return v


class _Seconds(dict[Any, bytes]):
    """Seconds key -> ``0x0a 0x0c 0x08 <seconds>`` (timestamp field, its seconds)."""

    def __missing__(self, key: SecondsKey) -> bytes:
        ns = SECONDS_NS[key]
        s = 0 if ns is None or ns < 0 else min(ns // _NS, (1 << 35) - 1)
        v = b"\x0a\x0c\x08" + varint5(s)
        if len(self) > 100_000:
            self.clear()
        self[key] = v
        return v


class _Nanos(dict[Any, bytes]):
    def __missing__(self, key: FractionKey) -> bytes:
        v = b"\x10" + varint5(FRACTION_NS[key])
        if len(self) > 100_000:
            self.clear()
        self[key] = v
        return v


_LOW_BITS = 14
_NANOS_TABLES: list[list[bytes]] = []


def _nanos_tables() -> tuple[list[bytes], list[bytes]]:
    """``0x10`` + the first two bytes of a 5-byte varint for each value of its low 14 bits,
    and the last three bytes for each value of the bits above (nanoseconds < 2**30).

    Built on first use (~65,000 small objects): only sources with distinct fractions need it.
    """
    if not _NANOS_TABLES:
        _NANOS_TABLES.append(
            [bytes([0x10, (v & 0x7F) | 0x80, ((v >> 7) & 0x7F) | 0x80]) for v in range(1 << 14)]
        )
        _NANOS_TABLES.append(
            [bytes([(v & 0x7F) | 0x80, ((v >> 7) & 0x7F) | 0x80, v >> 14]) for v in range(1 << 16)]
        )
    return _NANOS_TABLES[0], _NANOS_TABLES[1]


def nanos_pieces(nanos: list[Any]) -> list[bytes]:
    """``0x10 varint5(n)`` for each nanosecond value, by two table lookups mapped in C.

    With distinct fractions on every line a cache of encoded pieces misses every time and
    encoding one value costs a Python call; splitting the value at the varint's byte
    boundary turns it into lookups in two fixed tables.
    """
    low, high = _nanos_tables()
    lows = map(low.__getitem__, map(operator.and_, nanos, itertools.repeat((1 << _LOW_BITS) - 1)))
    highs = map(high.__getitem__, map(operator.rshift, nanos, itertools.repeat(_LOW_BITS)))
    return list(map(operator.add, lows, highs))


_HEADER = _EntryHeader()
_SECONDS = _Seconds()
_NANOS = _Nanos()


def sanitize_label_name(name: str) -> str:
    clean = _BAD_LABEL_CHARS.sub("_", name)
    if not clean or clean[0].isdigit():
        clean = "_" + clean
    return clean


def label_string(labels: dict[str, str]) -> str:
    """A Loki stream selector ``{a="x", b="y"}``: sorted, empty values dropped."""
    items = sorted((k, v) for k, v in labels.items() if v != "")
    return "{" + ", ".join(f"{k}={orjson.dumps(v).decode()}" for k, v in items) + "}"


def seconds_runs(
    seconds: list[SecondsKey], fractions: list[FractionKey]
) -> list[tuple[SecondsKey, int]] | None:
    """Runs of equal seconds keys, when the (seconds, fraction) pairs are in order; else None.

    Text keys of one format compare like the times they spell. A logger writes many lines
    per second, so the seconds are checked in one C pass and the fractions run by run,
    cheaper than comparing pairs; the runs then give the encoder each second's bytes
    once per run instead of one lookup per entry.
    """
    n = len(seconds)
    if not all(map(operator.le, seconds, itertools.islice(seconds, 1, None))):
        return None
    runs: list[tuple[SecondsKey, int]] = []
    a = 0
    while a < n:
        k = seconds[a]
        b = bisect.bisect_right(seconds, k, a)
        if b - a > 1:
            f = fractions[a:b]
            if not all(map(operator.le, f, itertools.islice(f, 1, None))):
                return None
        runs.append((k, b - a))
        a = b
    return runs


class Stream:
    __slots__ = (
        "formats",
        "fractions",
        "int_fractions",
        "labels",
        "lines",
        "runs",
        "runs_known",
        "seconds",
    )

    def __init__(self, labels: str) -> None:
        self.labels = labels
        self.lines: list[bytes] = []
        self.seconds: list[SecondsKey] = []
        self.fractions: list[FractionKey] = []
        self.formats: set[bytes | None] = set()
        # Runs of equal seconds, set when the entries are known to be in order: carried
        # over from the timestamp columns while each one continues the last, else found
        # by sort().
        self.runs: list[tuple[SecondsKey, int]] | None = None
        self.runs_known = True
        self.int_fractions: bool | None = True  # every fraction an int (None: unknown)

    def add(self, lines: list[bytes], ts: TimestampColumn) -> None:
        if not lines:
            return
        self.formats.add(ts.text_format)
        if self.runs_known:
            self._continue_runs(ts)
        if self.int_fractions is not False:
            self.int_fractions = ts.int_fractions and self.int_fractions
        self.lines.extend(lines)
        self.seconds.extend(ts.seconds)
        self.fractions.extend(ts.fractions)

    def _continue_runs(self, ts: TimestampColumn) -> None:
        """Keep the in-order runs when ``ts`` brings its own and starts no earlier than the
        stream's last entry (keys of one text shape compare like the times they spell)."""
        runs = ts.runs
        if runs is None or len(self.formats) != 1:
            self.runs, self.runs_known = None, False
        elif self.runs is None:
            self.runs = list(runs)
        else:
            key, count = self.runs[-1]
            first, first_count = runs[0]
            if first > key:  # type: ignore[operator]  # one text shape: bytes keys
                self.runs.extend(runs)
            elif first == key and self.fractions[-1] <= ts.fractions[0]:  # type: ignore[operator]
                self.runs[-1] = (key, count + first_count)
                self.runs.extend(runs[1:])
            else:
                self.runs, self.runs_known = None, False

    def ns(self) -> list[int]:
        return ns_of_keys(self.seconds, self.fractions, self.int_fractions)

    def sort(self) -> None:
        """Entries of a stream in timestamp order (a no-op, checked in C, when they are)."""
        if self.runs is not None:  # every column proved its order and continued the last
            return
        text_format = next(iter(self.formats)) if len(self.formats) == 1 else None
        if text_format is not None:
            self.runs = seconds_runs(self.seconds, self.fractions)
            if self.runs is not None:
                return
        elif keys_in_order(self.seconds, self.fractions, text_format):
            self.runs = None
            return
        self.runs = None
        ns = self.ns()
        order = sorted(range(len(ns)), key=ns.__getitem__)
        self.lines = [self.lines[i] for i in order]
        self.seconds = [self.seconds[i] for i in order]
        self.fractions = [self.fractions[i] for i in order]


def encode_push_protobuf(streams: list[Stream]) -> bytes:
    """A ``logproto.PushRequest``, uncompressed."""
    out: list[bytes] = []
    for s in streams:
        n = len(s.lines)
        parts: list[bytes] = [b""] * (4 * n)
        parts[0::4] = map(_HEADER.__getitem__, map(len, s.lines))
        parts[1::4] = s.lines
        if s.runs is not None:
            pieces: list[bytes] = []
            for key, count in s.runs:
                pieces += [_SECONDS[key]] * count
            parts[2::4] = pieces
        else:
            parts[2::4] = map(_SECONDS.__getitem__, s.seconds)
        int_fractions = s.int_fractions
        if int_fractions is None:
            int_fractions = all_int_keys(s.fractions)
        if int_fractions:  # microsecond or nanosecond times: no cache can help
            parts[3::4] = nanos_pieces(s.fractions)
        else:
            parts[3::4] = map(_NANOS.__getitem__, s.fractions)
        labels = s.labels.encode()
        head = b"\x0a" + varint(len(labels)) + labels
        # Joining the entries first and copying them once more is cheaper than two passes
        # summing the lengths of headers and lines to write the stream's length up front.
        entries = b"".join(parts)
        out.append(b"\x0a" + varint(len(head) + len(entries)) + head)
        out.append(entries)
    return b"".join(out)


def encode_push_json(streams: list[Stream]) -> bytes:
    body: dict[str, Any] = {"streams": []}
    for s in streams:
        labels = _parse_label_string(s.labels)
        values = list(
            map(
                list,
                zip(
                    map(str, s.ns()), [ln.decode("utf-8", "replace") for ln in s.lines], strict=True
                ),
            )
        )
        body["streams"].append({"stream": labels, "values": values})
    return orjson.dumps(body)


_LABEL_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)=("(?:[^"\\]|\\.)*")')


def _parse_label_string(s: str) -> dict[str, str]:
    return {m.group(1): orjson.loads(m.group(2)) for m in _LABEL_PAIR.finditer(s)}


_COUNT_LIKE = re.compile(r"(\d+) errors like:")
_TOTAL_IGNORED = re.compile(r"total ignored: (\d+) out of")


def count_rejected(body: str, records: int) -> int:
    """How many entries a Loki 400 names as refused (the rest were stored)."""
    if ("entry" not in body and "stream" not in body) or "couldn't parse labels" in body:
        return records
    total = sum(int(m) for m in _TOTAL_IGNORED.findall(body))
    grouped = [int(m) for m in _COUNT_LIKE.findall(body)]
    if grouped:
        total += sum(grouped)
    elif total == 0:
        total = max(1, body.count("\n") + 1 - body.count("total ignored"))
    return min(records, total)


def classify(status: int, headers: httpx.Headers, body: bytes, records: int) -> Outcome:
    """Loki's answers (PROTOCOLS A.8) mapped to what the agent does next."""
    if status == 260:
        return Outcome(Verdict.RETRY, "260: ingestion blocked by the Loki administrator")
    if 200 <= status < 300:
        return DELIVERED
    text = response_text(body)
    reason = f"{status}: {text}" if text else f"HTTP {status}"
    if status == 429 or status >= 500:
        return Outcome(Verdict.RETRY, reason, parse_retry_after(headers.get("retry-after")))
    if status == 413:
        return Outcome(Verdict.SPLIT, reason)
    if status in (401, 403, 404, 407, 408):
        # Configuration or a proxy, not the data: keep it in the file and keep trying.
        return Outcome(Verdict.RETRY, reason, parse_retry_after(headers.get("retry-after")))
    if status == 400:
        # Loki stored the valid entries before answering: never resend them.
        return Outcome(Verdict.REJECTED, reason, rejected=count_rejected(text, records))
    return Outcome(Verdict.REJECTED, reason, rejected=records)


class LokiSink(HttpSink):
    path = "/loki/api/v1/push"

    def __init__(
        self,
        name: str,
        cfg: LokiSinkConfig,
        telemetry: Telemetry,
        transport: httpx.BaseTransport | None = None,
        dead_letter: DeadLetterFile | None = None,
    ) -> None:
        super().__init__(name, cfg, telemetry, transport, dead_letter)
        self.loki = cfg
        self._static = {sanitize_label_name(k): v for k, v in cfg.labels.items()}
        self._field_labels = [(f, sanitize_label_name(f)) for f in cfg.label_fields]
        self._warned_cap = False
        headers = {"Content-Type": "application/x-protobuf"}
        if cfg.encoding == "json":
            headers = {"Content-Type": "application/json"}
            if cfg.compression == "gzip":
                headers["Content-Encoding"] = "gzip"
        if cfg.tenant_id:
            headers["X-Scope-OrgID"] = cfg.tenant_id
        self._headers = headers

    def _labels_for(self, batch: Batch) -> dict[str, str]:
        labels = dict(self._static)
        for k, v in batch.info.labels.items():
            labels.setdefault(sanitize_label_name(k), v)
        if self.loki.filename_label:
            labels.setdefault("filename", batch.info.path)
        return labels

    def _capped(self, labels: dict[str, str]) -> str:
        if len(labels) > MAX_LABELS:
            if not self._warned_cap:
                self._warned_cap = True
                log.warning(
                    "more than 15 labels; extra labels dropped",
                    extra={"sink": self.name, "dropped": sorted(labels)[MAX_LABELS:]},
                )
            labels = dict(itertools.islice(labels.items(), MAX_LABELS))
        return label_string(labels)

    def streams(self, batches: list[Batch]) -> list[Stream]:
        streams: dict[str, Stream] = {}
        for b in batches:
            if not b.lines:
                continue
            base = self._labels_for(b)
            ts = b.timestamps()
            if not self._field_labels:
                groups: list[tuple[dict[str, str], list[int] | None]] = [(base, None)]
                by_values: dict[tuple[str, ...], list[int]] = {}
            else:
                by_values = {}
                for i, rec in enumerate(b.records()):
                    vals = tuple(
                        str(rec["level"] if f == "level" else rec["fields"].get(f, "") or "")
                        for f, _ in self._field_labels
                    )
                    by_values.setdefault(vals, []).append(i)
                groups = []
                for vals, members in by_values.items():
                    labels = dict(base)
                    for (_, lname), v in zip(self._field_labels, vals, strict=True):
                        labels.setdefault(lname, v)
                    groups.append((labels, members))
            for labels, idx in groups:
                key = self._capped(labels)
                s = streams.get(key)
                if s is None:
                    s = streams[key] = Stream(key)
                if idx is None:
                    s.add(b.lines, ts)
                else:
                    s.add([b.lines[i] for i in idx], ts.take(idx))
        for s in streams.values():
            s.sort()
        return list(streams.values())

    def encode(self, batches: list[Batch]) -> EncodedRequest:
        streams = self.streams(batches)
        records = sum(len(s.lines) for s in streams)
        if self.loki.encoding == "json":
            body = encode_push_json(streams)
            if self.loki.compression == "gzip":
                body = gzip.compress(body, compresslevel=5)
        else:
            body = bytes(cramjam.snappy.compress_raw(encode_push_protobuf(streams)))
        return EncodedRequest(body, self._headers, records)

    def classify(self, status: int, headers: httpx.Headers, body: bytes, records: int) -> Outcome:
        return classify(status, headers, body, records)
