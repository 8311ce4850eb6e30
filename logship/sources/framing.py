"""Framing: physical lines in, records out (container formats, partial lines, multiline).

The stage between the tailer and the parsers, kept pure so that ``logship tail``
and a later ``logship parse`` share it: :meth:`Framer.push` takes a list of lines
with their byte offsets and returns framed records; the only state is what a
file (and each of its container streams) carries from one push to the next, and
time is passed in, never read.

Why it holds records back: a record that is not complete yet (a multiline group
still open, a CRI ``P`` fragment waiting for its ``F``, a docker ``log`` without
its trailing newline) must not be emitted in halves, and the file's checkpoint
must not move past its first byte. :attr:`Framer.hold_start` is that first byte;
the tailer uses it as the end offset of what it submits, so a restart re-reads
the open record whole. :meth:`Framer.flush` emits what has waited ``timeout``.

Hot path: a CRI batch is a few slices per line mapped in C (stream and tag,
message, timestamp keys) and checks per distinct value; a docker batch is an
orjson parse per line and ``itemgetter`` columns. Joining partials and grouping
lines loop in Python only when the batch has fragments, or, with multiline, when
the pattern matched somewhere in it. Plain files without multiline skip framing.
"""

from __future__ import annotations

import dataclasses
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import compress, repeat
from typing import TYPE_CHECKING, Any, cast

import orjson

from logship.config.model import MultilineConfig, SourceConfig, TailingConfig
from logship.parsing.formats import CONTAINER_FORMATS, MANY_FRACTIONS
from logship.parsing.timestamps import (
    EXACT_FRACTIONS,
    FRACTION_NS,
    SECONDS_NS,
    FractionKey,
    SecondsKey,
    TimestampColumn,
    parse_text_timestamp,
    split_ns,
    text_format_of,
)

if TYPE_CHECKING:
    from logship.parsing.batch import SourceInfo

STREAMS = ("stdout", "stderr")
# Appended where an over-long line (or joined fragment) is cut; the tailer uses it too.
TRUNCATION_MARKER = b"...[truncated by logship]"
_STREAM_BYTES = {b"stdout": "stdout", b"stderr": "stderr"}
_TAGS = {b"P", b"F"}
_STREAM_SET = set(STREAMS)
_QUOTE = b'"'

# Presets are (mode, pattern). They follow the stack-trace shapes the runtimes print;
# like any pattern-only rule they can join an unrelated line that looks like a frame.
PRESETS: dict[str, tuple[str, str]] = {
    # Indented frames ("\tat ...", "\t... 3 more"), "Caused by:"/"Suppressed:", and the
    # exception line (com.x.FooException: ...) that follows a logger's message line.
    "java": (
        "continue",
        r"^(?:[ \t]+\S|[ \t]*(?:Caused by|Suppressed): "
        r"|[\w$]+(?:\.[\w$]+)+(?:Exception|Error|Throwable)(?::|$))",
    ),
    # "Traceback (most recent call last):" starts a record (as in Fluent Bit); indented
    # frames, the exception line, chaining messages and blank lines continue it.
    "python": (
        "continue",
        r"^(?:[ \t]+\S|$|During handling of the above exception|The above exception was"
        r"|[A-Za-z_][\w.]*(?:Error|Exception|Warning|Exit|Interrupt|Iteration)(?::|$))",
    ),
    # "panic: ..." starts a record; goroutine headers, function lines, indented file
    # lines, "created by", blank lines and "exit status N" continue it.
    "go": (
        "continue",
        r"^(?:[ \t]+\S|$|goroutine \d+ \[[^\]]*\]:$|created by |\[signal "
        r"|[\w./*()\[\]~-]+\(.*\)$|exit status \d+$)",
    ),
}
MODES = ("start", "continue", "end")


@dataclass(frozen=True, slots=True)
class MultilineRule:
    """How lines of one stream are grouped into records.

    ``mode`` says what ``pattern`` marks: ``start`` the first line of a record,
    ``continue`` a line that belongs to the record before it, ``end`` the last
    line of a record. Defaults live in :class:`MultilineConfig`, not here.
    """

    mode: str
    pattern: re.Pattern[bytes]
    timeout: float
    max_lines: int
    max_bytes: int

    @classmethod
    def from_config(cls, cfg: MultilineConfig) -> MultilineRule:
        """From a validated config: a preset, or a mode and a pattern."""
        mode, pattern = PRESETS[cfg.preset] if cfg.preset is not None else (cfg.mode, cfg.pattern)
        if mode not in MODES or pattern is None:
            raise ValueError("set a preset, or a mode (start, continue or end) and a pattern")
        return cls(
            mode, re.compile(pattern.encode()), cfg.timeout, cfg.max_lines, int(cfg.max_bytes)
        )


@dataclass(slots=True)
class Framed:
    """Records of one stream from one push, in the order they start in the file."""

    stream: str | None  # "stdout"/"stderr" for container formats; None for plain files
    lines: list[bytes]  # the message of each record (joined fragments / lines)
    offsets: list[int]  # where each record's first physical line starts
    # Container timestamps as timestamp keys; None: taken from the message later.
    seconds: list[SecondsKey] | None = None
    fractions: list[FractionKey] | None = None
    malformed: bool = False  # container lines that did not parse, kept whole

    def timestamp_column(self) -> TimestampColumn | None:
        """The container runtime's timestamps, None when they come from the message."""
        if self.seconds is None or self.fractions is None:
            return None
        return TimestampColumn(
            self.seconds, self.fractions, text_format_of(set(self.seconds), set(self.fractions))
        )


def framed_info(
    base: SourceInfo, f: Framed, cache: dict[tuple[str | None, bool], SourceInfo]
) -> SourceInfo:
    """The record source of one container stream: ``stream`` as label and attribute.

    ``dataclasses.replace`` keeps the file's identity and parsing options; ``cache`` holds
    one per (stream, malformed) so that batches of a stream share it.
    """
    key = (f.stream, f.malformed)
    info = cache.get(key)
    if info is None:
        if f.malformed:
            info = dataclasses.replace(base, format="raw", malformed=True)
        elif f.stream is None:
            info = base
        else:
            info = dataclasses.replace(
                base,
                labels={**base.labels, "stream": f.stream},
                attributes={**base.attributes, "stream": f.stream},
            )
        cache[key] = info
    return info


@dataclass(slots=True)
class _Stream:
    """What one stream carries between pushes."""

    frags: list[bytes] = field(default_factory=list)  # partial fragments waiting for F
    frag_start: int | None = None
    frag_ts: tuple[Any, Any] = (None, None)
    frag_bytes: int = 0
    discarding: bool = False  # partial record over the line limit: skip until its F
    group: list[bytes] = field(default_factory=list)  # open multiline record
    group_start: int | None = None
    group_ts: tuple[Any, Any] = (None, None)
    group_bytes: int = 0
    last: float = 0.0  # when this stream last received a line


class _Out:
    """Columns of framed records being built for one stream."""

    __slots__ = ("fractions", "lines", "offsets", "seconds")

    def __init__(self, with_ts: bool) -> None:
        self.lines: list[bytes] = []
        self.offsets: list[int] = []
        self.seconds: list[Any] | None = [] if with_ts else None
        self.fractions: list[Any] | None = [] if with_ts else None

    def add(self, line: bytes, offset: int, ts: tuple[Any, Any]) -> None:
        self.lines.append(line)
        self.offsets.append(offset)
        if self.seconds is not None and self.fractions is not None:
            self.seconds.append(ts[0])
            self.fractions.append(ts[1])


def _ts_keys(text: bytes) -> tuple[SecondsKey, FractionKey] | None:
    """Timestamp keys of one RFC 3339 container timestamp; None when it is not one."""
    s = text[:19]
    if len(s) != 19 or s[4:5] != b"-" or s[10:11] != b"T" or SECONDS_NS[s] is None:
        return None
    f = text[19:] + _QUOTE
    FRACTION_NS[f]  # classifies the key (fills EXACT_FRACTIONS)
    if f not in EXACT_FRACTIONS:
        return s, f
    ns = parse_text_timestamp(text.decode("ascii", "replace"))
    return None if ns is None else split_ns(ns)


# Parsed container lines as columns: stream (None = malformed), partial flag, message,
# seconds key, fraction key.
_Columns = tuple[list[str | None], list[bool], list[bytes], list[Any], list[Any]]


# What follows the timestamp, up to the message: stream and tag with their spaces.
_MID_STREAM = {
    b" stdout F ": "stdout",
    b" stdout P ": "stdout",
    b" stderr F ": "stderr",
    b" stderr P ": "stderr",
}
_MID_PARTIAL = {mid: mid[8:9] == b"P" for mid in _MID_STREAM}


# Fraction and zone of many distinct UTC times, checked in one pass (joined by newlines).
_UTC_FRACTIONS = re.compile(rb"(?:(?:\.\d{1,9})?Z\n)*")


_ZONE = re.compile(rb"[+-]\d\d:\d\d")
_NS = 1_000_000_000


def _utc_keys(seconds: list[bytes], fractions: list[bytes]) -> tuple[list[Any], list[Any]] | None:
    """Timestamp keys for sliced times (``fractions`` without the closing quote).

    None unless every time is a valid RFC 3339 time in UTC, or in one zone shared by
    the whole batch (a node not on UTC); checked per distinct key.
    """
    distinct = set(seconds)
    if not all(len(k) == 19 and k[4:5] == b"-" and k[10:11] == b"T" for k in distinct) or (
        None in map(SECONDS_NS.__getitem__, distinct)
    ):
        return None
    getitem: Callable[[bytes, slice], bytes] = operator.getitem  # type: ignore[assignment]
    dfracs = set(fractions)
    shift = 0
    zones = set(map(getitem, dfracs, repeat(slice(-6, None))))
    if len(zones) == 1 and _ZONE.fullmatch(zone := zones.pop()):
        # One zone for the batch: read the times as UTC, then move the whole seconds.
        shift = (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60) * (-1 if zone[:1] == b"-" else 1)
        fractions = list(
            map(operator.add, map(getitem, fractions, repeat(slice(0, -6))), repeat(b"Z"))
        )
        dfracs = set(fractions)
    if len(dfracs) > MANY_FRACTIONS:  # nanosecond times, as the kubelet and docker write them
        if _UTC_FRACTIONS.fullmatch(b"\n".join(dfracs) + b"\n") is None:
            return None
        digits = map(getitem, fractions, repeat(slice(1, -1)))
        keys: list[Any] = list(map(int, map(bytes.ljust, digits, repeat(9), repeat(b"0"))))
    else:
        keys = list(map(operator.add, fractions, repeat(_QUOTE)))
        dkeys = set(keys)
        for k in dkeys.difference(FRACTION_NS.keys()):
            FRACTION_NS[k]  # classifies the key (fills EXACT_FRACTIONS)
        if EXACT_FRACTIONS.intersection(dkeys):
            return None
    if not shift:
        return seconds, keys
    epoch = map(operator.floordiv, map(SECONDS_NS.__getitem__, seconds), repeat(_NS))
    return list(map(operator.sub, epoch, repeat(shift))), keys


def parse_cri(lines: list[bytes]) -> _Columns:
    """``<time> <stream> <P|F> <message>`` lines as columns, by slicing.

    The first space ends the timestamp; the ten bytes from there name the stream and
    the tag, so each column is one slice per line mapped in C (one width for the
    whole batch in the common case), checked per distinct value.
    """
    getitem: Callable[[bytes, slice], bytes] = operator.getitem  # type: ignore[assignment]
    mids: list[bytes]
    msgs: list[bytes]
    fracs: list[bytes]
    # Guess one timestamp width for the batch from its first line; the stream and tag
    # check below proves the guess for every line.
    w = lines[0].find(b" ")
    ok = w >= 19
    if ok:
        mids = list(map(getitem, lines, repeat(slice(w, w + 10))))
        ok = _MID_STREAM.keys() >= set(mids)
        if ok:
            msgs = list(map(getitem, lines, repeat(slice(w + 10, None))))
            fracs = list(map(getitem, lines, repeat(slice(19, w))))
    if not ok:  # fractions of varying width (RFC3339Nano drops trailing zeros)
        spaces = list(map(bytes.find, lines, repeat(b" ")))
        ok = min(spaces) >= 19
        if ok:
            ends = list(map(operator.add, spaces, repeat(10)))
            mids = list(map(getitem, lines, map(slice, spaces, ends)))
            ok = _MID_STREAM.keys() >= set(mids)
            msgs = list(map(getitem, lines, map(slice, ends, repeat(None))))
            fracs = list(map(getitem, lines, map(slice, repeat(19), spaces)))
    if ok:
        seconds: list[bytes] = list(map(getitem, lines, repeat(slice(0, 19))))
        keys = _utc_keys(seconds, fracs)
        if keys is not None:
            return (
                list(map(_MID_STREAM.__getitem__, mids)),
                list(map(_MID_PARTIAL.__getitem__, mids)),
                msgs,
                keys[0],
                keys[1],
            )
    return _parse_cri_slow(list(map(bytes.split, lines, repeat(b" "), repeat(3))))


def _parse_cri_slow(parts: list[list[bytes]]) -> _Columns:
    streams: list[str | None] = []
    partial: list[bool] = []
    msgs: list[bytes] = []
    seconds: list[Any] = []
    fracs: list[Any] = []
    for p in parts:
        if len(p) == 3 and p[2] in _TAGS:
            p = [*p, b""]  # "<time> stdout F" with an empty message
        keys = _ts_keys(p[0]) if len(p) == 4 else None
        stream = _STREAM_BYTES.get(p[1]) if keys is not None else None
        if keys is None or stream is None or p[2] not in _TAGS:
            streams.append(None)
            partial.append(False)
            msgs.append(b"")
            seconds.append(None)
            fracs.append(None)
            continue
        streams.append(stream)
        partial.append(p[2] == b"P")
        msgs.append(p[3])
        seconds.append(keys[0])
        fracs.append(keys[1])
    return streams, partial, msgs, seconds, fracs


def _loads(line: bytes) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return None


def parse_docker(lines: list[bytes]) -> _Columns:
    """docker json-file lines (``{"log":..., "stream":..., "time":...}``) as columns.

    A ``log`` without its trailing newline is a fragment (docker splits lines at
    16 KiB); the newline (and a ``\\r`` before it) is not part of the message.
    """
    try:
        objs = list(map(orjson.loads, lines))
    except orjson.JSONDecodeError:
        objs = list(map(_loads, lines))
    else:
        fast = _parse_docker_fast(objs)
        if fast is not None:
            return fast
    return _parse_docker_slow(objs)


_GET_LOG = operator.itemgetter("log")
_GET_STREAM = operator.itemgetter("stream")
_GET_TIME = operator.itemgetter("time")


def _parse_docker_fast(objs: list[Any]) -> _Columns | None:
    """Columns by C-mapped item lookups when every line is a whole, well-formed entry."""
    try:
        logs: list[str] = list(map(_GET_LOG, objs))
        streams: list[str] = list(map(_GET_STREAM, objs))
        times: list[str] = list(map(_GET_TIME, objs))
    except (KeyError, TypeError, IndexError):
        return None
    if (
        set(map(type, logs)) != {str}
        or set(map(type, times)) != {str}
        or not _STREAM_SET.issuperset(streams)
        or not all(map(str.endswith, logs, repeat("\n")))
        or any(map(str.endswith, logs, repeat("\r\n")))
    ):
        return None
    getitem: Callable[[Any, slice], Any] = operator.getitem
    try:
        msgs = list(map(str.encode, map(getitem, logs, repeat(slice(0, -1)))))
        encoded = list(map(str.encode, times))
    except UnicodeEncodeError:
        return None
    seconds = list(map(getitem, encoded, repeat(slice(0, 19))))
    keys = _utc_keys(seconds, list(map(getitem, encoded, repeat(slice(19, None)))))
    if keys is None:
        return None
    return cast("list[str | None]", streams), [False] * len(objs), msgs, keys[0], keys[1]


def _parse_docker_slow(objs: list[Any]) -> _Columns:
    streams: list[str | None] = []
    partial: list[bool] = []
    msgs: list[bytes] = []
    seconds: list[Any] = []
    fracs: list[Any] = []
    for o in objs:
        keys = None
        log: Any = ""
        stream: Any = None
        if isinstance(o, dict):
            log, stream, t = o.get("log"), o.get("stream"), o.get("time")
            if isinstance(log, str) and stream in STREAMS and isinstance(t, str):
                keys = _ts_keys(t.encode())
        if keys is None or not isinstance(log, str):
            streams.append(None)
            partial.append(False)
            msgs.append(b"")
            seconds.append(None)
            fracs.append(None)
            continue
        streams.append(stream)
        if log.endswith("\n"):
            partial.append(False)
            log = log[:-2] if log.endswith("\r\n") else log[:-1]
        else:
            partial.append(True)
        msgs.append(log.encode("utf-8", "replace"))
        seconds.append(keys[0])
        fracs.append(keys[1])
    return streams, partial, msgs, seconds, fracs


class Framer:
    """Framing state of one file: its format, its multiline rule, one state per stream."""

    def __init__(
        self,
        fmt: str,
        multiline: MultilineRule | None,
        *,
        timeout: float,
        max_line: int,
    ) -> None:
        self.container = fmt in CONTAINER_FORMATS
        self.parse = parse_docker if fmt == "docker" else parse_cri
        self.rule = multiline
        # How long an open record waits for more: the multiline timeout, or for
        # container fragments alone the partial-line timeout.
        self.timeout = multiline.timeout if multiline is not None else timeout
        self.max_line = max_line
        self.streams: dict[str | None, _Stream] = {}
        # Counters since the caller last took them (take_counts).
        self.malformed = 0
        self.cut = 0
        self.truncated = 0

    @classmethod
    def for_source(cls, src: SourceConfig, tailing: TailingConfig) -> Framer:
        """A fresh framing state for one file of a source."""
        rule = MultilineRule.from_config(src.multiline) if src.multiline is not None else None
        return cls(
            src.format,
            rule,
            timeout=tailing.partial_line_timeout,
            max_line=int(tailing.max_line_size),
        )

    @property
    def active(self) -> bool:
        """Whether this framer changes anything; plain files without multiline skip it."""
        return self.container or self.rule is not None

    # -- state the tailer needs ----------------------------------------------------------
    @property
    def hold_start(self) -> int | None:
        """Offset of the first byte of the earliest record still open (None: nothing held)."""
        starts = [
            s
            for st in self.streams.values()
            for s in (st.frag_start, st.group_start)
            if s is not None
        ]
        return min(starts) if starts else None

    @property
    def held_bytes(self) -> int:
        return sum(st.frag_bytes + st.group_bytes for st in self.streams.values())

    def deadline(self) -> float | None:
        """When the earliest open record is due for a timeout flush."""
        times = [
            st.last + self.timeout
            for st in self.streams.values()
            if st.frag_start is not None or st.group_start is not None
        ]
        return min(times) if times else None

    def take_counts(self) -> tuple[int, int, int]:
        """(malformed container lines, records cut by a multiline limit, truncated fragments)."""
        counts = (self.malformed, self.cut, self.truncated)
        self.malformed = self.cut = self.truncated = 0
        return counts

    def _stream(self, name: str | None) -> _Stream:
        st = self.streams.get(name)
        if st is None:
            st = self.streams[name] = _Stream()
        return st

    # -- input ---------------------------------------------------------------------------
    def push(self, lines: list[bytes], offsets: list[int], now: float) -> list[Framed]:
        """Frame a list of complete physical lines starting at ``offsets``."""
        if not lines:
            return []
        if not self.container:
            st = self._stream(None)
            st.last = now
            out = self._group(st, lines, offsets, None, None)
            return [Framed(None, out.lines, out.offsets)] if out.lines else []
        streams, partial, msgs, seconds, fracs = self.parse(lines)
        result: list[Framed] = []
        names = set(streams)
        if None in names:
            bad = [i for i, s in enumerate(streams) if s is None]
            self.malformed += len(bad)
            result.append(
                Framed(None, [lines[i] for i in bad], [offsets[i] for i in bad], malformed=True)
            )
            names.discard(None)
        for name in sorted(names, key=str):
            st = self._stream(name)
            st.last = now
            if len(names) == 1 and len(result) == 0:
                cols = (msgs, offsets, seconds, fracs, partial)
            else:
                sel = list(map(operator.eq, streams, repeat(name)))  # selectors, in C
                cols = (
                    list(compress(msgs, sel)),
                    list(compress(offsets, sel)),
                    list(compress(seconds, sel)),
                    list(compress(fracs, sel)),
                    list(compress(partial, sel)),
                )
            m, o, s, f = self._join(st, *cols)
            out = self._group(st, m, o, s, f)
            if out.lines:
                result.append(Framed(name, out.lines, out.offsets, out.seconds, out.fractions))
        return result

    def flush(self, now: float | None = None) -> list[Framed]:
        """Emit open records: all of them (``now`` None), or those idle for ``timeout``."""
        result: list[Framed] = []
        for name, st in self.streams.items():
            if st.frag_start is None and st.group_start is None:
                continue
            if now is not None and now - st.last < self.timeout:
                continue
            out = _Out(self.container)
            if st.frag_start is not None:
                if not st.discarding:
                    line = b"".join(st.frags)
                    if self.rule is None:
                        out.add(line, st.frag_start, st.frag_ts)
                    else:
                        self._group_into(
                            out, st, [line], [st.frag_start], [st.frag_ts[0]], [st.frag_ts[1]]
                        )
                self._reset_frags(st)
            if st.group_start is not None:
                self._close_group(st, out)
            if out.lines:
                result.append(Framed(name, out.lines, out.offsets, out.seconds, out.fractions))
        return result

    # -- partial lines -------------------------------------------------------------------
    @staticmethod
    def _reset_frags(st: _Stream) -> None:
        st.frags = []
        st.frag_start = None
        st.frag_bytes = 0
        st.discarding = False

    def _join(
        self,
        st: _Stream,
        msgs: list[bytes],
        offsets: list[int],
        seconds: list[Any],
        fracs: list[Any],
        partial: list[bool],
    ) -> tuple[list[bytes], list[int], list[Any], list[Any]]:
        """Join ``P`` fragments (or docker lines without newline) with the line that ends them."""
        if st.frag_start is None and not any(partial):
            return msgs, offsets, seconds, fracs
        out = _Out(True)
        limit = self.max_line
        for i, msg in enumerate(msgs):
            if st.frag_start is None:
                if not partial[i]:
                    out.add(msg, offsets[i], (seconds[i], fracs[i]))
                    continue
                st.frag_start = offsets[i]
                st.frag_ts = (seconds[i], fracs[i])
            if not st.discarding:
                st.frags.append(msg)
                st.frag_bytes += len(msg)
                if st.frag_bytes > limit:
                    # Like an over-long line: ship the head with a marker, skip the rest.
                    head = b"".join(st.frags)[: limit - len(TRUNCATION_MARKER)]
                    head = head.decode("utf-8", "ignore").encode("utf-8") + TRUNCATION_MARKER
                    out.add(head, st.frag_start, st.frag_ts)
                    self.truncated += 1
                    st.frags = []
                    st.frag_bytes = 0
                    st.discarding = True
            if not partial[i]:
                if not st.discarding:
                    out.add(b"".join(st.frags), st.frag_start, st.frag_ts)
                self._reset_frags(st)
        assert out.seconds is not None and out.fractions is not None
        return out.lines, out.offsets, out.seconds, out.fractions

    # -- multiline -----------------------------------------------------------------------
    def _group(
        self,
        st: _Stream,
        msgs: list[bytes],
        offsets: list[int],
        seconds: list[Any] | None,
        fracs: list[Any] | None,
    ) -> _Out:
        out = _Out(seconds is not None)
        if self.rule is None:
            out.lines, out.offsets, out.seconds, out.fractions = msgs, offsets, seconds, fracs
            return out
        if msgs:
            self._group_into(out, st, msgs, offsets, seconds, fracs)
        return out

    def _group_into(
        self,
        out: _Out,
        st: _Stream,
        msgs: list[bytes],
        offsets: list[int],
        seconds: list[Any] | None,
        fracs: list[Any] | None,
    ) -> None:
        rule = self.rule
        assert rule is not None
        hits = list(map(rule.pattern.search, msgs))
        mode = rule.mode
        n = len(msgs)
        if (mode == "continue" and not any(hits)) or (mode == "start" and all(hits)):
            # Every line starts a record (the common case): no loop over lines.
            if st.group_start is not None:
                self._close_group(st, out)
            out.lines.extend(msgs[:-1])
            out.offsets.extend(offsets[:-1])
            if out.seconds is not None and out.fractions is not None:
                assert seconds is not None and fracs is not None
                out.seconds.extend(seconds[:-1])
                out.fractions.extend(fracs[:-1])
            first = n - 1
        else:
            first = 0
        for i in range(first, n):
            msg = msgs[i]
            hit = hits[i] is not None
            new = (not hit) if mode == "continue" else (hit if mode == "start" else False)
            if st.group_start is not None and (new or st.group_bytes + len(msg) > rule.max_bytes):
                if not new:
                    self.cut += 1
                self._close_group(st, out)
            if st.group_start is None:
                st.group_start = offsets[i]
                st.group_ts = (
                    (seconds[i], fracs[i])
                    if seconds is not None and fracs is not None
                    else (None, None)
                )
            st.group.append(msg)
            st.group_bytes += len(msg) + 1
            if mode == "end" and hit:
                self._close_group(st, out)
            elif len(st.group) >= rule.max_lines or st.group_bytes > rule.max_bytes:
                self.cut += 1
                self._close_group(st, out)

    def _close_group(self, st: _Stream, out: _Out) -> None:
        assert st.group_start is not None
        group = st.group
        out.add(group[0] if len(group) == 1 else b"\n".join(group), st.group_start, st.group_ts)
        st.group = []
        st.group_start = None
        st.group_bytes = 0
