"""One tailer per file: chunked reads, partial-line carry, truncation and end-of-life.

The tailer reads large chunks (``read_chunk_size``) and hands whole lists of
lines downstream; it never loops per line in Python. It reserves memory from
the budget *before* reading, so a full pipeline stops it from reading at all.

Lifecycle (DESIGN rule 4): discovery tells a tailer when its file is no longer
matched (renamed away by rotation, deleted); the tailer then reads its open
descriptor to the end, waits one more poll for a writer that has not reopened
yet, emits the last partial line and closes. Truncation (copytruncate) is seen
as a size below the read offset; it is counted and reading restarts at 0 once
everything read before it is delivered, so the checkpoint never mixes offsets of
the old and the new content.

With a container format or a multiline rule, lines go through the file's
:class:`~logship.sources.framing.Framer` before they are submitted; what it
holds back (an open record) keeps the submitted end offset at the record's first
byte, so the checkpoint never passes it, and its bytes stay in the budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import operator
import os
import time
from collections.abc import Callable

from logship.config.model import TailingConfig
from logship.parsing.batch import Batch, SourceInfo
from logship.pipeline.acks import FileAcks
from logship.pipeline.budget import MemoryBudget
from logship.sources.framing import TRUNCATION_MARKER, Framed, Framer, framed_info
from logship.sources.identity import FINGERPRINT_BYTES, fingerprint, fingerprint_matches
from logship.telemetry import Telemetry

log = logging.getLogger("logship.tailer")

# Memory accounted per line on top of its bytes (object header, list slot, parse caches).
LINE_OVERHEAD = 64


def _may_hold_long_line(data: bytes, max_line: int) -> bool:
    """Whether a line in ``data`` may exceed ``max_line``, from a few ``find`` calls.

    Such a line covers a whole aligned window of half its length, so a window
    without a newline is the only case that needs the exact per-line check.
    """
    half = max(1, max_line // 2)
    return any(data.find(b"\n", p, p + half) == -1 for p in range(0, len(data) - half + 1, half))


def replace_invalid_utf8(complete: bytes, lines: list[bytes]) -> tuple[list[bytes], int]:
    """Lines with invalid UTF-8 get U+FFFD in place of the bad bytes; how many were fixed.

    Sinks carry text (Loki and OTLP strings, JSON); one check of the whole chunk
    keeps the common case, valid text, free of per-line work.
    """
    try:
        complete.decode("utf-8")
        return lines, 0
    except UnicodeDecodeError:
        pass
    fixed = 0
    out = []
    for ln in lines:
        try:
            ln.decode("utf-8")
        except UnicodeDecodeError:
            ln = ln.decode("utf-8", "replace").encode("utf-8")
            fixed += 1
        out.append(ln)
    return out, fixed


def truncate_long_lines(lines: list[bytes], max_line: int) -> tuple[list[bytes], int]:
    """Lines over ``max_line`` cut (on a character boundary) with the marker; how many."""
    if max(map(len, lines)) <= max_line:
        return lines, 0
    keep = max_line - len(TRUNCATION_MARKER)
    out = []
    cut = 0
    for ln in lines:
        if len(ln) > max_line:
            ln = ln[:keep].decode("utf-8", "ignore").encode("utf-8") + TRUNCATION_MARKER
            cut += 1
        out.append(ln)
    return out, cut


def fix_lines(complete: bytes, lines: list[bytes], max_line: int) -> tuple[list[bytes], int, int]:
    """The split lines of ``complete`` as they go on to framing and sinks: invalid UTF-8
    replaced, CR before LF dropped, over-long lines cut. Returns the lines and how many
    had invalid UTF-8 and were cut. Shared by the tailer and ``logship parse``."""
    invalid = cut = 0
    if not complete.isascii():
        lines, invalid = replace_invalid_utf8(complete, lines)
    if b"\r" in complete:
        lines = [ln[:-1] if ln[-1:] == b"\r" else ln for ln in lines]
    if len(complete) > max_line and _may_hold_long_line(complete, max_line):
        lines, cut = truncate_long_lines(lines, max_line)
    return lines, invalid, cut


def _needs_fixing(data: bytes, carry: bytes, lines: list[bytes], max_line: int) -> bool:
    """Whether :func:`fix_lines` may change any line, from checks of the whole chunk (and
    the carried partial line); ``data`` may hold more than the lines, never less."""
    return (
        not data.isascii()
        or not carry.isascii()
        or b"\r" in data
        or b"\r" in carry
        or (
            len(data) + len(carry) > max_line
            and (len(lines[0]) > max_line or _may_hold_long_line(data, max_line))
        )
    )


class Tailer:
    def __init__(
        self,
        *,
        path: str,
        fd: int,
        info: SourceInfo,
        acks: FileAcks,
        offset: int,
        partial: bool,
        submit: Callable[[Batch, FileAcks, int, bool], None],
        budget: MemoryBudget,
        tailing: TailingConfig,
        telemetry: Telemetry,
        once: bool,
        framer: Framer | None = None,
        pace: Callable[[], float] | None = None,
    ) -> None:
        self.path = path
        self.fd = fd
        self.info = info
        self.acks = acks
        self.read_offset = offset  # next byte to read
        self.emitted_offset = offset  # end of the last emitted line
        self.carry = b""
        self.skip_newline = partial  # a flushed partial line's newline is still to come
        self.discarding = False  # inside an over-long line, dropping bytes until newline
        self.submit = submit
        self.budget = budget
        self.tailing = tailing
        self.telemetry = telemetry
        self.once = once
        self.pace = pace  # a source's blocking rate limit: seconds to wait before a read
        self.wake_event = asyncio.Event()
        self.unmatched = False  # set by discovery: the file is no longer ours to follow
        self.close_requested = False  # the open-file cap wants this descriptor back
        self.dormant = False  # closed because idle; to be reopened when the file grows
        self.stopping = False
        self.closed = False
        self.last_data = time.monotonic()
        self.fp_len = int(acks.fingerprint.split(":", 1)[0] or 0)
        self.seen_size = offset  # the file's size when last looked at (fstat, or a rescan)
        # The size last seen by the tailer itself with the content checked (fingerprint): what
        # a cut is known to lose. A rescan's size may already be the next content's.
        self.checked_size = offset
        # Container formats and multiline (None for plain lines: no framing cost at all).
        self.framer = framer if framer is not None and framer.active else None
        self.held = 0  # bytes the framer holds in open records, counted in the budget
        self.submitted_end = offset
        self.stream_infos: dict[tuple[str | None, bool], SourceInfo] = {}
        self.truncations = 0  # truncations of this file noticed (and counted) by this tailer
        self.cut_counted = False  # a cut counted while stopping, left for the next start

    # -- control from discovery / the agent ---------------------------------------------
    def wake(self) -> None:
        self.wake_event.set()

    def release(self) -> None:
        """Discovery no longer finds this file: read to the end, then close."""
        self.unmatched = True
        self.wake_event.set()

    def request_close(self) -> None:
        self.close_requested = True
        self.wake_event.set()

    def stop(self) -> None:
        self.stopping = True
        self.wake_event.set()
        self.budget.wake()

    def _is_stopping(self) -> bool:
        return self.stopping

    def saw_size(self, size: int) -> None:
        """A rescan's stat of this file: keeps the lag current while reading is paused."""
        if size >= self.read_offset:  # smaller is a truncation, which the tailer handles
            self.seen_size = size

    @property
    def lag(self) -> int:
        """Bytes behind the end of the file, as of the last look at its size."""
        return max(0, self.seen_size - self.read_offset)

    # -- main loop ------------------------------------------------------------------------
    async def run(self) -> None:
        try:
            await self._run()
            if self.stopping and not self.once and not self.cut_counted and self._replaced():
                # Cut since the last look, and stopping: what it lost is known now, not later.
                self._count_truncation(os.fstat(self.fd).st_size)
        finally:
            self._close()

    async def _run(self) -> None:
        idle_rounds_after_release = 0
        while not self.stopping:
            # Before reading too: a file cut and rewritten past our offset since the last look
            # must not be read from that offset (the bytes there are new, mid-line content).
            if not self.once and await self._check_truncated():
                continue
            got = await self._read_available()
            if self.stopping:
                break
            if self.once:
                self._flush_partial()
                self._flush_framer()
                return
            if await self._check_truncated():
                continue
            if got:
                idle_rounds_after_release = 0
            if self.unmatched or self._deleted():
                # One more poll lets a writer that has not reopened yet finish its line.
                idle_rounds_after_release += 1
                if idle_rounds_after_release > 1:
                    self._flush_partial()
                    self._flush_framer()
                    return
            elif (
                self.carry
                and time.monotonic() - self.last_data >= self.tailing.partial_line_timeout
            ):
                self._flush_partial()
            elif (
                not self.carry
                and not self.discarding
                and not self._holding()
                and (
                    self.close_requested
                    or time.monotonic() - self.last_data >= self.tailing.close_idle_after
                )
            ):
                # Idle: give the descriptor back. Discovery reopens the file at this
                # offset when it grows, so many quiet files cost no descriptors.
                self.dormant = True
                return
            if self.framer is not None:
                due = self.framer.deadline()
                if due is not None and time.monotonic() >= due:
                    self._flush_framer(time.monotonic())
            await self._wait()

    def _holding(self) -> bool:
        return self.framer is not None and self.framer.hold_start is not None

    async def _wait(self) -> None:
        timeout = self.tailing.poll_interval
        if self.carry:
            remaining = self.tailing.partial_line_timeout - (time.monotonic() - self.last_data)
            timeout = max(0.01, min(timeout, remaining))
        due = self.framer.deadline() if self.framer is not None else None
        if due is not None:
            timeout = max(0.01, min(timeout, due - time.monotonic()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake_event.wait(), timeout)
        self.wake_event.clear()

    def _deleted(self) -> bool:
        try:
            return os.fstat(self.fd).st_nlink == 0
        except OSError:
            return True

    def _count_truncation(self, size: int) -> None:
        """Truncated: smaller than what was read, or (cut, then written past our offset between
        two looks) its first bytes changed. What the file had beyond the last emitted line, read
        (a partial line) or only seen, is gone for good and counted. Bytes written and cut
        between two looks cannot be seen at all: the copytruncate race, inherent to it."""
        lost = max(0, max(self.checked_size, self.read_offset) - self.emitted_offset)
        self.telemetry.truncated(self.path, lost)
        self.truncations += 1
        log.warning(
            "file truncated, restarting at 0",
            extra={"path": self.path, "size": size, "offset": self.read_offset, "lost": lost},
        )

    def _replaced(self, size: int | None = None) -> bool:
        """The content we were reading is gone: shorter than our offset, or its head changed.

        The fingerprint catches a file cut and written past our offset between two looks,
        which its size alone cannot tell. One small ``pread`` per look, not per line.
        """
        if size is None:
            try:
                size = os.fstat(self.fd).st_size
            except OSError:
                return False
        if size < self.read_offset:
            return True
        return self.fp_len > 0 and not fingerprint_matches(self.fd, self.acks.fingerprint)

    async def _check_truncated(self) -> bool:
        try:
            size = os.fstat(self.fd).st_size
        except OSError:
            return False
        if not self._replaced(size):
            self.seen_size = self.checked_size = size
            return False
        self._count_truncation(size)
        # What the framer holds will never be completed by the old content: emit it.
        self._flush_framer()
        # Offsets restart at 0: let everything read so far be delivered first.
        while self.acks.pending and not self.stopping:
            await asyncio.sleep(self.tailing.poll_interval)
        if self.acks.pending:
            # Stopping first: the old content's lines still out would, once delivered, move
            # the committed offset in the new content's bytes (and lose what it holds up to
            # there at the next start). Nothing is reset: the checkpoint keeps the old
            # content's offset and fingerprint, and the next start, seeing the content
            # changed, reads the file from its start.
            self.cut_counted = True
            log.info(
                "stopping before the lines read before the cut were delivered; the next "
                "start reads the file from its start",
                extra={"path": self.path},
            )
            return True
        self.read_offset = self.emitted_offset = self.submitted_end = self.seen_size = 0
        self.checked_size = 0
        self.carry = b""
        self.skip_newline = self.discarding = False
        self.acks.committed = 0
        self.acks.partial = False
        self.acks.remember_previous()
        self.acks.fingerprint = fingerprint(self.fd)
        self.fp_len = int(self.acks.fingerprint.split(":", 1)[0] or 0)
        self.acks.tracker.dirty = True
        return True

    async def _read_available(self) -> bool:
        """Read until the end of the file (or until told to stop); True if anything came."""
        chunk = int(self.tailing.read_chunk_size)
        got_any = False
        end: int | None = None
        if self.once:
            end = self.seen_size = self.checked_size = os.fstat(self.fd).st_size
        while not self.stopping:
            if end is not None and self.read_offset >= end:
                break
            want = chunk if end is None else min(chunk, end - self.read_offset)
            if self.pace is not None:
                await self._paced()
                if self.stopping:
                    break
            if not await self._acquire(want):
                break
            if self.stopping or (not self.once and self._replaced()):
                # Cut (and maybe rewritten) while we waited for room: _check_truncated
                # handles it; reading at our old offset would read the middle of new lines.
                self.budget.release(want)
                break
            try:
                data = os.pread(self.fd, want, self.read_offset)
            except OSError as e:
                self.budget.release(want)
                log.error("read failed", extra={"path": self.path, "error": str(e)})
                break
            if not data:
                self.budget.release(want)
                break
            got_any = True
            self.read_offset += len(data)
            self.telemetry.file_read(self.path, len(data))
            self.last_data = time.monotonic()
            self._consume(data, want)
            if self.fp_len < FINGERPRINT_BYTES and self.read_offset > self.fp_len:
                self.acks.fingerprint = fingerprint(self.fd)
                self.fp_len = int(self.acks.fingerprint.split(":", 1)[0])
            if len(data) < want:
                break
            await asyncio.sleep(0)  # let sinks run between chunks
        return got_any

    async def _acquire(self, n: int) -> bool:
        """Reserve budget for a read; False (nothing reserved) when the tailer is stopping.

        Open records must not block their own completion: the bytes the framer holds
        count in the budget. If they are all that fills it, they are emitted now;
        otherwise the wait for room ends at the framer's timeout, so a full budget never
        keeps an open record from being flushed.
        """
        while self.held and self.budget.would_block(n):
            if self.stopping:
                return False
            if self.budget.used <= self.held:
                self._flush_framer()  # memory pressure: nothing else to wait for
                continue
            due = self.framer.deadline() if self.framer is not None else None
            wait = None if due is None else max(0.01, due - time.monotonic())
            try:
                return await asyncio.wait_for(self.budget.acquire(n, self._is_stopping), wait)
            except TimeoutError:
                self._flush_framer(time.monotonic())
        return await self.budget.acquire(n, self._is_stopping)

    async def _paced(self) -> None:
        """Wait while the source is over its rate limit (``mode: block``); a stop ends the wait."""
        assert self.pace is not None
        while not self.stopping and (delay := self.pace()) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake_event.wait(), delay)
            self.wake_event.clear()

    def _consume(self, data: bytes, reserved: int) -> None:
        """Turn freshly read bytes into lines; ``reserved`` is what the budget holds for them."""
        if self.skip_newline:
            self.skip_newline = False
            if data[:1] == b"\n":
                data = data[1:]
                self.emitted_offset += 1
            elif data[:2] == b"\r\n":
                data = data[2:]
                self.emitted_offset += 2
        carry = self.carry
        cut = data.rfind(b"\n")
        max_line = int(self.tailing.max_line_size)
        if cut == -1:
            self.carry = carry + data
            if len(self.carry) > max_line:
                self._emit_overlong()
            self.budget.release(reserved)
            return
        # Split the chunk as read; the carried partial line joins the first line. Copying
        # the carry onto the chunk and then the complete lines out of it would copy every
        # chunk twice.
        lines = data.split(b"\n")
        self.carry = lines.pop()  # after the last newline: the next partial line
        if carry:
            lines[0] = carry + lines[0]
        consumed = len(carry) + cut + 1
        if self.discarding:  # the first line is the rest of an over-long line: drop it
            dropped = len(lines[0]) + 1
            self.emitted_offset += dropped
            consumed -= dropped
            self.discarding = False
            del lines[0]
            if not lines:
                self.budget.release(reserved)
                self._emit([], 0)
                return
        offsets = None
        if self.framer is not None:  # physical starts, before lines are fixed or cut
            offsets = list(
                itertools.accumulate(
                    map(operator.add, map(len, lines[:-1]), itertools.repeat(1)),
                    initial=self.emitted_offset,
                )
            )
        if _needs_fixing(data, carry, lines, max_line):
            lines, invalid, cut = fix_lines(b"\n".join(lines), lines, max_line)
            if invalid:
                self.telemetry.invalid_utf8(self.info.source, invalid)
            if cut:
                self.telemetry.line_truncated(self.info.source, cut)
        self._emit(lines, consumed, reserved, offsets=offsets)
        if len(self.carry) > max_line:
            self._emit_overlong()

    def _emit_overlong(self) -> None:
        """A line longer than the limit with no newline yet: ship its head, drop the rest."""
        max_line = int(self.tailing.max_line_size)
        if self.discarding:
            self.emitted_offset += len(self.carry)
            self.carry = b""
            self._emit([], 0)
            return
        head = self.carry[: max_line - len(TRUNCATION_MARKER)]
        if not head.isascii():  # the cut may have split a character
            head = head.decode("utf-8", "ignore").encode("utf-8")
        head += TRUNCATION_MARKER
        consumed = len(self.carry)
        self.carry = b""
        self.discarding = True
        self.telemetry.line_truncated(self.info.source, 1)
        self._emit([head], consumed)

    def _flush_partial(self) -> None:
        """Emit the last line although its newline has not arrived (idle timeout or end)."""
        if not self.carry:
            return
        if self.discarding:
            self.emitted_offset += len(self.carry)
            self.carry = b""
            self._emit([], 0)
            return
        line = self.carry.removesuffix(b"\r")
        if not line.isascii():
            (line,), invalid = replace_invalid_utf8(line, [line])
            if invalid:
                self.telemetry.invalid_utf8(self.info.source, invalid)
        consumed = len(self.carry)
        self.carry = b""
        self.skip_newline = True
        self._emit([line], consumed, partial=True)

    def _emit(
        self,
        lines: list[bytes],
        consumed: int,
        reserved: int = 0,
        partial: bool = False,
        offsets: list[int] | None = None,
    ) -> None:
        if self.framer is not None:
            if offsets is None:  # callers with one line (or none) that starts here
                offsets = [self.emitted_offset] * len(lines)
            self.emitted_offset += consumed
            framed = self.framer.push(lines, offsets, time.monotonic())
            if lines:
                self.telemetry.read(self.info.source, len(lines), consumed)
            self._submit_framed(framed, reserved)
            return
        start = self.emitted_offset
        self.emitted_offset += consumed
        nbytes = consumed
        cost = nbytes + LINE_OVERHEAD * len(lines)
        # Settle the reservation to what the batch really holds until it is delivered.
        if cost > reserved:
            self.budget.used += cost - reserved
        else:
            self.budget.release(reserved - cost)
        batch = Batch(self.info, lines, start, self.emitted_offset, time.time_ns(), self.telemetry)
        if lines:
            self.telemetry.read(self.info.source, len(lines), nbytes)
        self.submit(batch, self.acks, cost, partial)

    def _flush_framer(self, now: float | None = None) -> None:
        """Emit open records: those idle past the timeout, or all (end of file, --once)."""
        if self.framer is not None and self.framer.hold_start is not None:
            self._submit_framed(self.framer.flush(now), 0)

    def _stream_info(self, f: Framed) -> SourceInfo:
        """The record source of one container stream: ``stream`` as label and attribute."""
        return framed_info(self.info, f, self.stream_infos)

    def _submit_framed(self, framed: list[Framed], reserved: int) -> None:
        """Submit framed records; their end offset stops at the first byte still held.

        The held bytes stay counted in the memory budget until they leave in a batch.
        """
        fr = self.framer
        assert fr is not None
        hold = fr.hold_start
        end = self.emitted_offset if hold is None else min(hold, self.emitted_offset)
        held = fr.held_bytes
        malformed, cut, truncated = fr.take_counts()
        source = self.info.source
        if malformed:
            self.telemetry.malformed(source, malformed)
        if cut:
            self.telemetry.multiline_cut(source, cut)
        if truncated:
            self.telemetry.line_truncated(source, truncated)
        read_ns = time.time_ns()
        out: list[tuple[Batch, int]] = []
        total = held - self.held
        for f in framed:
            if not f.lines:
                continue
            ts = f.timestamp_column()
            b = Batch(
                self._stream_info(f),
                f.lines,
                f.offsets[0],
                end,
                read_ns,
                self.telemetry,
                f.offsets,
                ts,
            )
            b.nbytes = sum(map(len, f.lines))
            cost = b.nbytes + LINE_OVERHEAD * len(f.lines)
            total += cost
            out.append((b, cost))
        self.held = held
        if total > reserved:
            self.budget.used += total - reserved
        else:
            self.budget.release(reserved - total)
        # The checkpoint may end inside a line flushed without its newline only when
        # nothing before it is held back.
        partial = self.skip_newline and end == self.emitted_offset
        if not out and end > self.submitted_end:
            out.append((Batch(self.info, [], end, end, read_ns, self.telemetry), 0))
        self.submitted_end = end
        for b, cost in out:
            self.submit(b, self.acks, cost, partial)

    def _close(self) -> None:
        if self.held:
            self.budget.release(self.held)  # open records are dropped, to be re-read
            self.held = 0
        if not self.closed:
            self.closed = True
            with contextlib.suppress(OSError):
                os.close(self.fd)
