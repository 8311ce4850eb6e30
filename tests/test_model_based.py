"""Model-based proof of "never lose a line" (hypothesis stateful testing).

A :class:`hypothesis.stateful.RuleBasedStateMachine` interleaves appends, rename rotations,
copytruncate, plain truncation, deletion, recreation, agent crashes (``kill -9``: nothing saved
after the last checkpoint, nothing delivered after the kill), clean restarts and sink outages,
against the real :class:`logship.agent.Agent` with a real checkpoint folder. The agent runs in a
background thread with its own event loop; the model runs beside it, so writes and renames race
with the agent's reads and rescans exactly as an application's would.

The receiver is an ``httpx.MockTransport`` Loki that decodes with the fake's independent decoder
(the protobuf runtime and cramjam) and records every delivery, duplicates included, with the
agent incarnation that made it. A crashed incarnation's transport refuses everything from the
instant of the kill, under the same lock that records deliveries, so "delivered before the kill"
is exact.

What the model proves, once everything deliverable has arrived (bounded wait):

* every line written is delivered, unless the model computed that it is legitimately lost;
* nothing is delivered that was not written (no fragments, no copies read as new files);
* a lost line is never delivered later, and truncation losses match the agent's counter
  (``truncated_bytes``) byte for byte;
* per file, within one agent lifetime, lines arrive in file order (by entry timestamp, which is
  how Loki orders a stream);
* a line is delivered at most once per lifetime, and again in a later lifetime only if it was
  not covered by the checkpoint saved when the earlier lifetime ended (in flight at a crash).

Where loss is legitimate (and how the model computes it exactly): a truncation or copytruncate
loses the lines the agent had not emitted when the file was cut. The model freezes the agent's
event loop at a clean point (a callback that blocks), reads the file's tailer (emitted offset,
read offset, last size the tailer checked), cuts the file, and lets the loop go: lines from the
emitted offset on are lost; the bytes the agent had checked or read but not emitted must be
counted in
``truncated_bytes``; bytes written after the agent's last look are the inherent copytruncate
race (documented in README, "Rotation"). Without a tailer on the current content (agent down,
file not found yet, tailer still on the previous content), every line of that content not yet
delivered is lost, uncounted. A file deleted (or its agent killed) before its lines were
delivered loses the undelivered lines.

File events (watchfiles) are switched off: rescans are the truth (DESIGN rule 5), so the model
proves correctness without them, and no watcher thread outlives a simulated kill.

Examples are derandomized so CI is deterministic; ``LOGSHIP_MODEL_EXAMPLES=200`` (and
``LOGSHIP_MODEL_STEPS``, ``LOGSHIP_MODEL_RANDOM=1`` for fresh random sequences) runs more locally.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import os
import shutil
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fakes.loki import decode_push, parse_labels
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import logship.agent as agent_module
from logship.agent import Agent
from logship.config import build_config
from logship.config.model import AgentConfig

FIDS = ("a", "b")
WAIT = 20.0  # bound on every wait for the agent (a loaded 2-core machine)


# ----------------------------------------------------------------------------------------------
# The receiver: a Loki behind httpx.MockTransport that knows which incarnation sent what.
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    incarnation: int
    line: str
    ts_ns: int
    filename: str
    order: int  # arrival order over the whole run


class Receiver:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.up = True
        self.alive: set[int] = set()
        self.deliveries: list[Delivery] = []
        self.delivered: set[str] = set()

    def transport(self, incarnation: int) -> httpx.MockTransport:
        self.alive.add(incarnation)

        def handle(request: httpx.Request) -> httpx.Response:
            streams = decode_push(
                request.content,
                request.headers.get("content-type"),
                request.headers.get("content-encoding"),
            )
            with self.lock:
                if incarnation not in self.alive:  # killed: no process to send anything
                    raise httpx.ConnectError("agent killed", request=request)
                if not self.up:
                    return httpx.Response(503, text="Loki is down (model)")
                for labels, entries in streams:
                    filename = dict(parse_labels(labels)).get("filename", "")
                    for ts, line in entries:
                        d = Delivery(incarnation, line, ts, filename, len(self.deliveries))
                        self.deliveries.append(d)
                        self.delivered.add(line)
            return httpx.Response(204)

        return httpx.MockTransport(handle)

    def kill(self, incarnation: int) -> None:
        with self.lock:
            self.alive.discard(incarnation)

    def snapshot(self) -> set[str]:
        with self.lock:
            return set(self.delivered)


# ----------------------------------------------------------------------------------------------
# The agent in a thread, with a faithful kill -9.
# ----------------------------------------------------------------------------------------------


async def _no_events(_roots: Any, _on: Any, stop: asyncio.Event) -> None:
    await stop.wait()


class Killed(SystemExit):
    """Raised inside the agent's loop to end it on the spot (SystemExit escapes the loop)."""


class RunningAgent:
    def __init__(self, cfg: AgentConfig, transport: httpx.BaseTransport) -> None:
        self.loop = asyncio.new_event_loop()
        self.agent = Agent(cfg, transport=transport)
        self.exit_code: int | None = None
        self.error: BaseException | None = None
        self._parked = threading.Event()
        self._resume = threading.Event()
        self._kill = False
        self.thread = threading.Thread(target=self._main, name="model-agent", daemon=True)
        self.thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.exit_code = self.loop.run_until_complete(self.agent.run()).exit_code
        except Killed:
            pass
        except BaseException as e:
            self.error = e

    def _park(self) -> None:
        self._parked.set()
        self._resume.wait()
        if self._kill:
            raise Killed

    @contextlib.contextmanager
    def frozen(self) -> Iterator[Agent]:
        """The agent's loop blocked between two callbacks: its state is consistent and still."""
        self._parked.clear()
        self._resume.clear()
        self.loop.call_soon_threadsafe(self._park)
        if not self._parked.wait(WAIT):
            alive = self.thread.is_alive()
            raise AssertionError(f"agent loop did not park (thread alive: {alive})")
        try:
            yield self.agent
        finally:
            self._resume.set()

    def kill(self, receiver: Receiver, incarnation: int) -> None:
        """kill -9: the loop stops between two callbacks, descriptors close, nothing is saved."""
        self._parked.clear()
        self._resume.clear()
        self.loop.call_soon_threadsafe(self._park)
        assert self._parked.wait(WAIT), "agent loop did not park"
        receiver.kill(incarnation)  # from here on, nothing this process sends arrives
        self._kill = True
        self._resume.set()
        self.thread.join(WAIT)
        assert not self.thread.is_alive()
        for t in self.agent.tailers.values():
            if not t.closed:
                t.closed = True
                os.close(t.fd)
        self._release()

    def stop(self) -> int | None:
        """SIGTERM: deliver within drain_timeout, save checkpoints, exit."""
        self.loop.call_soon_threadsafe(self.agent.request_stop)
        self.thread.join(WAIT)
        assert not self.thread.is_alive(), "agent did not stop"
        self._release()
        if self.error is not None:
            raise self.error
        return self.exit_code

    def _release(self) -> None:
        for s in self.agent.sinks.values():
            senders = getattr(s, "_senders", None)
            if senders is not None:
                senders.shutdown(wait=True, cancel_futures=True)
        _GRAVEYARD.append(self.loop)  # pending tasks of a killed loop: never run, never collected
        if len(_GRAVEYARD) > 500:
            del _GRAVEYARD[:250]


_GRAVEYARD: list[asyncio.AbstractEventLoop] = []


# ----------------------------------------------------------------------------------------------
# The model of the files.
# ----------------------------------------------------------------------------------------------


@dataclass
class Line:
    text: str
    phys: Phys
    epoch: int
    start: int
    end: int
    seq: int


@dataclass
class Phys:
    """One file identity (inode) and what was written to it, per content epoch."""

    pid: int
    fid: str
    path: str | None  # None once deleted
    dev: int
    ino: int
    copy: bool = False  # a copytruncate copy: never to be read
    epochs: list[list[Line]] = field(default_factory=lambda: [[]])
    data: list[bytearray] = field(default_factory=lambda: [bytearray()])

    @property
    def lines(self) -> list[Line]:
        return self.epochs[-1]

    @property
    def size(self) -> int:
        return len(self.data[-1])

    def key(self) -> str:
        return f"app:{self.dev}:{self.ino}"

    def epoch_of(self, fp: str) -> int | None:
        """Which content epoch a fingerprint ``<len>:<sha256 prefix>`` was taken from."""
        length_s, _, digest = fp.partition(":")
        length = int(length_s)
        for e in range(len(self.data) - 1, -1, -1):
            head = bytes(self.data[e][:length])
            if len(head) == length and hashlib.sha256(head).hexdigest()[:32] == digest:
                return e
        return None


def _config(root: Path) -> AgentConfig:
    data: dict[str, Any] = {
        "sources": {"app": {"include": [str(root / "logs" / "*.log")], "format": "raw"}},
        "sinks": {
            "loki": {
                "type": "loki",
                "url": "http://loki.model.invalid",
                "max_in_flight": 2,
                "batch": {"linger": 0.01, "max_entries": 40},
                "retry": {"initial_backoff": 0.01, "max_backoff": 0.05},
            }
        },
        "checkpoint_dir": str(root / "state"),
        "checkpoint_interval": 0.1,
        "drain_timeout": 1.0,
        # Small reads and a small budget: reads end mid-line and a down sink stops reading,
        # so truncations meet tailers holding a partial line or behind the file's end.
        "memory_limit": 2048,
        "tailing": {
            "read_chunk_size": 512,
            "poll_interval": 0.01,
            "rescan_interval": 0.03,
            "partial_line_timeout": 5.0,
        },
    }
    return build_config(data, "model", env={})


class LogLifecycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="logship-model-"))
        (self.root / "logs").mkdir()
        self.cfg = _config(self.root)
        self.receiver = Receiver()
        self.incarnation = 0
        self.agent: RunningAgent | None = None
        self.phys: list[Phys] = []
        self.live: dict[str, Phys | None] = dict.fromkeys(FIDS)
        self.by_text: dict[str, Line] = {}
        self.lost: dict[str, str] = {}  # line -> why the model allows its loss
        # Lost lines that a copytruncate copy still holds -> the copy's path. The agent may
        # read a copy whose content it never saw (it cannot tell it from a rotated file).
        self.rescuable: dict[str, str] = {}
        self.copied: dict[tuple[int, int], str] = {}  # (file, content epoch) -> its copy
        # Copies made on the inode of a file deleted before: the agent finds a checkpoint for
        # that inode (saved before the deletion, when it crashed before saving again) and reads
        # the copy as that file's content, from its start. Nothing tells the copy apart from a
        # rotated file with a reused inode (names do not: rotation schemes rename freely, and a
        # head shared with a known file is no proof), so a duplicate is the safe side: it
        # is allowed from such a copy, never a loss.
        self.reused_inode_copies: set[str] = set()
        self.seq = 0
        self.suffix = 0
        # Lines the checkpoint saved at the end of each incarnation covers.
        self.committed_at_end: dict[int, set[str]] = {}
        self.expected_truncated_bytes = 0
        self.unnoticed: list[tuple[Any, int, int]] = []  # (tailer, its truncations, bytes)
        self.counted_truncated_bytes = 0  # from finished incarnations
        self.log: list[str] = []

    # -- helpers ---------------------------------------------------------------------------
    def note(self, what: str) -> None:
        self.log.append(what)

    def _new_phys(self, fid: str, path: Path) -> Phys:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        st_ = os.fstat(fd)
        os.close(fd)
        p = Phys(len(self.phys), fid, str(path), st_.st_dev, st_.st_ino)
        self.phys.append(p)
        return p

    def _live_path(self, fid: str) -> Path:
        return self.root / "logs" / f"{fid}.log"

    def _rotated_path(self, fid: str) -> Path:
        self.suffix += 1
        return self.root / "logs" / f"{fid}.log.{self.suffix}"

    def _start(self) -> None:
        self.incarnation += 1
        self.agent = RunningAgent(self.cfg, self.receiver.transport(self.incarnation))

    def _wait(self, predicate: Callable[[], bool], what: str, timeout: float = WAIT) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.005)
        return False

    def _undelivered(self, lines: list[Line]) -> list[Line]:
        got = self.receiver.snapshot()
        return [ln for ln in lines if ln.text not in got and ln.text not in self.lost]

    def _lose(self, lines: list[Line], why: str) -> None:
        for ln in lines:
            self.lost.setdefault(ln.text, why)

    def _end_of_incarnation(self, agent: Agent) -> None:
        """After a kill or a stop: what the saved checkpoints cover, and what is gone for good."""
        self.counted_truncated_bytes += agent.telemetry.truncated_bytes
        self.unnoticed.clear()
        committed: set[str] = set()
        path = self.root / "state" / "checkpoints.json"
        if path.exists():
            files = orjson.loads(path.read_bytes())["files"]
            for key, cp in files.items():
                _, dev, ino = key.split(":")
                for p in self.phys:
                    if (p.dev, p.ino) != (int(dev), int(ino)):
                        continue
                    e = p.epoch_of(cp["fingerprint"])
                    if e is not None:
                        committed |= {ln.text for ln in p.epochs[e] if ln.end <= cp["offset"]}
        self.committed_at_end[self.incarnation] = committed
        # Read but undelivered lines of a deleted file, or of content cut by a truncation,
        # were only in the ended process's memory: nobody can read them again (but a copy).
        for p in self.phys:
            gone = range(len(p.epochs)) if p.path is None else range(len(p.epochs) - 1)
            for e in gone:
                lines = self._undelivered(p.epochs[e])
                self._lose(lines, "deleted or truncated, then the agent ended")
                if (p.pid, e) in self.copied:
                    copy = self.copied[(p.pid, e)]
                    self.rescuable.update(dict.fromkeys([ln.text for ln in lines], copy))

    # -- lifecycle -------------------------------------------------------------------------
    @initialize()
    def start(self) -> None:
        for fid in FIDS:
            self.live[fid] = self._new_phys(fid, self._live_path(fid))
        self._start()
        assert self.agent is not None
        a = self.agent.agent
        keys = [p.key() for p in self.live.values() if p is not None]
        # Files present at the first start are read from their end (start_at: end): wait until
        # the agent follows them before writing, so that "from the end" means "from 0".
        state = self.root / "state" / "checkpoints.json"
        started = self._wait(lambda: all(a.tailers.get(k) for k in keys) and state.exists(), "")
        assert started, "the agent did not start"
        self.note("start")

    @precondition(lambda self: self.agent is not None)
    @rule()
    def crash(self) -> None:
        assert self.agent is not None
        self.agent.kill(self.receiver, self.incarnation)
        # A cut the killed agent had not noticed yet was never counted: the next run only
        # sees a file shorter than (or different from) its checkpoint.
        for t, before, counted in self.unnoticed:
            if t.truncations == before:
                self.expected_truncated_bytes -= counted
        self._end_of_incarnation(self.agent.agent)
        self.agent = None
        self.note("crash")

    @precondition(lambda self: self.agent is not None)
    @rule()
    def clean_stop(self) -> None:
        assert self.agent is not None
        rc = self.agent.stop()
        assert rc == 0
        self.receiver.kill(self.incarnation)
        self._end_of_incarnation(self.agent.agent)
        self.agent = None
        self.note("clean_stop")

    @precondition(lambda self: self.agent is None)
    @rule()
    def restart(self) -> None:
        self._start()
        self.note("restart")

    @rule(up=st.booleans())
    def sink(self, up: bool) -> None:
        with self.receiver.lock:
            self.receiver.up = up
        self.note(f"sink_{'up' if up else 'down'}")

    # -- the application -------------------------------------------------------------------
    @rule(fid=st.sampled_from(FIDS), n=st.integers(1, 30), pad=st.integers(0, 90))
    def write(self, fid: str, n: int, pad: int) -> None:
        p = self.live[fid]
        if p is None:
            return
        assert p.path is not None
        chunk = bytearray()
        for _ in range(n):
            self.seq += 1
            text = f"{fid} f{p.pid} e{len(p.epochs) - 1} n{self.seq:06d} " + "x" * (
                (pad + self.seq) % 97
            )
            start = p.size + len(chunk)
            raw = text.encode() + b"\n"
            chunk += raw
            ln = Line(text, p, len(p.epochs) - 1, start, start + len(raw), self.seq)
            p.lines.append(ln)
            self.by_text[text] = ln
        fd = os.open(p.path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, bytes(chunk))
        finally:
            os.close(fd)
        p.data[-1] += chunk
        self.note(f"write {fid} {n}")

    @rule(fid=st.sampled_from(FIDS), create=st.booleans())
    def rotate_by_rename(self, fid: str, create: bool) -> None:
        p = self.live[fid]
        if p is None:
            return
        target = self._rotated_path(fid)
        os.rename(self._live_path(fid), target)
        p.path = str(target)
        self.live[fid] = self._new_phys(fid, self._live_path(fid)) if create else None
        self.note(f"rotate {fid} -> {target.name}{' +create' if create else ''}")

    @rule(fid=st.sampled_from(FIDS))
    def recreate(self, fid: str) -> None:
        if self.live[fid] is not None:
            return
        self.live[fid] = self._new_phys(fid, self._live_path(fid))
        self.note(f"recreate {fid}")

    @rule(fid=st.sampled_from(FIDS), copy=st.booleans())
    def truncate(self, fid: str, copy: bool) -> None:
        """copytruncate (copy=True) or a plain truncation to 0 of the live file."""
        p = self.live[fid]
        if p is None:
            return
        assert p.path is not None
        with self._maybe_frozen() as agent:
            if copy:
                target = self._rotated_path(fid)
                shutil.copyfile(p.path, target)
                c = self._new_phys_existing(fid, target, bytes(p.data[-1]))
                c.copy = True
            before = set(self.lost)
            counted = self._truncation_loss(agent, p)
            if copy:  # the copy still holds them: reading it is a rescue, not a duplicate
                self.rescuable.update(dict.fromkeys(set(self.lost) - before, str(target)))
                self.copied[(p.pid, len(p.epochs) - 1)] = str(target)
            os.truncate(p.path, 0)
            self.expected_truncated_bytes += counted
            p.epochs.append([])
            p.data.append(bytearray())
        self.note(f"{'copytruncate' if copy else 'truncate'} {fid} (counted {counted})")

    def _new_phys_existing(self, fid: str, path: Path, data: bytes) -> Phys:
        st_ = os.stat(path)
        if any((q.dev, q.ino) == (st_.st_dev, st_.st_ino) for q in self.phys):
            self.reused_inode_copies.add(str(path))
        p = Phys(len(self.phys), fid, str(path), st_.st_dev, st_.st_ino)
        p.data[0] += data
        self.phys.append(p)
        return p

    @contextlib.contextmanager
    def _maybe_frozen(self) -> Iterator[Agent | None]:
        if self.agent is None:
            yield None
        else:
            with self.agent.frozen() as a:
                yield a

    def _truncation_loss(self, agent: Agent | None, p: Phys) -> int:
        """Lines the cut loses, and the bytes the agent must count (called frozen)."""
        t = None if agent is None else agent.tailers.get(p.key())
        fp_epoch = None if t is None or t.closed else p.epoch_of(t.acks.fingerprint)
        if t is None or fp_epoch != len(p.epochs) - 1 or t.read_offset > p.size:
            # No tailer on this content: nothing of it is read, what is undelivered is lost.
            self._lose(self._undelivered(p.lines), "truncated before the agent read it")
            return 0
        emitted, read, seen = t.emitted_offset, t.read_offset, t.checked_size
        self._lose([ln for ln in p.lines if ln.start >= emitted], "truncated before emitted")
        # Seen or read but not emitted: counted. Written after the last look: the inherent race.
        counted = max(0, max(seen, read) - emitted)
        self.unnoticed.append((t, t.truncations, counted))
        return counted

    @rule(fid=st.sampled_from(FIDS))
    def delete(self, fid: str) -> None:
        p = self.live[fid]
        if p is None:
            return
        assert p.path is not None
        with self._maybe_frozen() as agent:
            t = None if agent is None else agent.tailers.get(p.key())
            if t is None or t.closed:  # nobody holds it open: what is undelivered is gone
                self._lose(self._undelivered(p.lines), "deleted before the agent opened it")
            os.unlink(p.path)
        p.path = None
        self.live[fid] = None
        self.note(f"delete {fid}")

    @rule(pick=st.integers(0, 15))
    def remove_rotated(self, pick: int) -> None:
        """Old rotated files go away once the model knows they were delivered (or are copies)."""
        got = self.receiver.snapshot()
        done = [
            p
            for p in self.phys
            if p.path is not None
            and p not in self.live.values()
            and (p.copy or all(ln.text in got or ln.text in self.lost for ln in p.lines))
        ]
        if not done:
            return
        # Drawn whatever the state: which files are done depends on the agent's timing.
        p = done[pick % len(done)]
        assert p.path is not None
        os.unlink(p.path)
        self.note(f"remove {Path(p.path).name}")
        p.path = None

    # -- checks ----------------------------------------------------------------------------
    @invariant()
    def agent_alive(self) -> None:
        if self.agent is not None:
            assert self.agent.thread.is_alive(), f"agent ended: {self.agent.error!r}"

    def teardown(self) -> None:
        try:
            if self.log:
                self._final_check()
        finally:
            if self.agent is not None:
                with contextlib.suppress(Exception):
                    self.agent.kill(self.receiver, self.incarnation)
            shutil.rmtree(self.root, ignore_errors=True)

    def _final_check(self) -> None:
        with self.receiver.lock:
            self.receiver.up = True
        if self.agent is None:
            self._start()
        expected = [t for t in self.by_text if t not in self.lost]
        arrived = self._wait(
            lambda: self.receiver.snapshot().issuperset(expected), "delivery", timeout=WAIT / 2
        )
        assert self.agent is not None
        rc = self.agent.stop()
        self.receiver.kill(self.incarnation)
        self._end_of_incarnation(self.agent.agent)
        self.agent = None
        steps = "\n  ".join(self.log)
        got = self.receiver.snapshot()
        missing = [t for t in expected if t not in got]
        assert arrived and not missing, f"lines never delivered: {missing[:5]}\n  {steps}"
        assert rc == 0
        unknown = [t for t in got if t not in self.by_text]
        assert not unknown, f"delivered lines never written: {unknown[:5]}\n  {steps}"
        # A line is declared lost only while undelivered and unreadable: it must never arrive,
        # except from the copytruncate copy that still holds it.
        by_name: dict[str, set[str]] = defaultdict(set)
        for d in self.receiver.deliveries:
            by_name[d.line].add(d.filename)
        resurrected = [t for t in self.lost if t in got and by_name[t] != {self.rescuable.get(t)}]
        assert not resurrected, f"lines the model had lost arrived: {resurrected[:5]}\n  {steps}"
        self._check_duplicates_and_order(steps)
        assert self.counted_truncated_bytes == self.expected_truncated_bytes, (
            f"truncated_bytes {self.counted_truncated_bytes} != "
            f"{self.expected_truncated_bytes} the agent saw or read but could not emit\n  {steps}"
        )

    def _check_duplicates_and_order(self, steps: str) -> None:
        by_line: dict[str, list[Delivery]] = defaultdict(list)
        # One stream per file read in one lifetime (a copy read to rescue lines is its own).
        per_file: dict[tuple[int, str, int], list[Delivery]] = defaultdict(list)
        for d in self.receiver.deliveries:
            by_line[d.line].append(d)
            per_file[(d.incarnation, d.filename, self.by_text[d.line].phys.pid)].append(d)
        for text, ds in by_line.items():
            incs = [d.incarnation for d in ds]
            assert len(set(incs)) == len(incs), f"{text!r} delivered twice by one agent\n  {steps}"
            ds = sorted(ds, key=lambda d: d.incarnation)
            for first, again in itertools.pairwise(ds):
                if again.filename in self.reused_inode_copies:
                    continue  # see reused_inode_copies
                for end in range(first.incarnation, again.incarnation):
                    assert text not in self.committed_at_end.get(end, set()), (
                        f"{text!r} re-sent although the checkpoint saved at the end of "
                        f"incarnation {end} covered it\n  {steps}"
                    )
        for (inc, _name, pid), ds in per_file.items():
            ds.sort(key=lambda d: (d.ts_ns, d.order))
            seqs = [self.by_text[d.line].seq for d in ds]
            assert seqs == sorted(seqs), f"file {pid} out of order in incarnation {inc}\n  {steps}"


def _settings() -> settings:
    return settings(
        max_examples=int(os.environ.get("LOGSHIP_MODEL_EXAMPLES", "60")),
        stateful_step_count=int(os.environ.get("LOGSHIP_MODEL_STEPS", "25")),
        deadline=None,
        derandomize=os.environ.get("LOGSHIP_MODEL_RANDOM", "") != "1",
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        print_blob=True,
        report_multiple_bugs=False,
    )


@pytest.mark.timeout(1800)  # shrinking a failure replays many examples; a pass takes < 60 s
def test_no_line_lost_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agent_module, "watch_events", _no_events)
    run_state_machine_as_test(LogLifecycle, settings=_settings())
