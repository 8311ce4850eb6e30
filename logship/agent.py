"""The agent: composes discovery, tailers, the ack tracker, sinks and checkpoints.

Lifecycle: start sinks, scan, start a tailer per file; then rescan on a timer
(woken early by file events) and save checkpoints as the ack tracker moves them.
On SIGTERM/SIGINT: stop reading, let the sinks deliver what was read within the
drain timeout, save the checkpoints of what was delivered, exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from logship.config.model import AgentConfig
from logship.parsing.batch import Batch, SourceInfo
from logship.parsing.options import options_of
from logship.pipeline.acks import AckTracker, FileAcks
from logship.pipeline.budget import MemoryBudget
from logship.sinks import build_sink
from logship.sinks.base import SinkWorker
from logship.sinks.deadletter import DeadLetterFile
from logship.sources.checkpoints import Checkpoint, CheckpointStore
from logship.sources.discovery import Match, scan, watch_events, watch_roots
from logship.sources.framing import Framer
from logship.sources.globs import compile_glob, excluded
from logship.sources.identity import fingerprint, fingerprint_matches
from logship.sources.podpath import POD_LABELS, pod_identity
from logship.sources.tailer import Tailer
from logship.telemetry import Telemetry

if TYPE_CHECKING:
    from logship.transforms.pipeline import SourceChain

log = logging.getLogger("logship.agent")

HEARTBEAT_INTERVAL = 1.0  # seconds between the event loop's beats, read by /healthz

# Rotated names with these endings are compressed copies, not text to tail.
COMPRESSED = (".gz", ".zst", ".bz2", ".xz", ".zip", ".lz4", ".snappy")
# What follows a watched name in its rotated files' names (app.log.1, app.log-20261128).
ROTATION_SEPARATORS = ".-"
# How long the folder of a watched name that disappeared is checked for files rotated away.
VANISHED_WATCH_S = 600.0


@dataclass
class RunResult:
    exit_code: int
    reason: str = ""


class Agent:
    def __init__(
        self,
        cfg: AgentConfig,
        *,
        once: bool = False,
        transport: httpx.BaseTransport | None = None,
        telemetry: Telemetry | None = None,
        store: CheckpointStore | None = None,
        previous: AgentConfig | None = None,
        handle_signals: bool = True,
    ) -> None:
        """``store`` and ``previous`` continue a run under a new config (a reload): the old
        agent's checkpoints (kept in memory even without ``checkpoint_dir``) and its config,
        so that files it would have followed are not skipped by ``start_at: end``."""
        self.cfg = cfg
        self.once = once
        self.transport = transport
        self.telemetry = telemetry or Telemetry()
        self.budget = MemoryBudget(int(cfg.memory_limit))
        self.tracker = AckTracker(self.budget.release)
        self.store = store if store is not None else CheckpointStore(cfg.checkpoint_dir)
        self.previous = previous
        self.handle_signals = handle_signals
        self.sinks: dict[str, SinkWorker] = {}
        self.routes: dict[str, list[SinkWorker]] = {}
        self.tailers: dict[str, Tailer] = {}
        self.tailer_tasks: dict[str, asyncio.Task[None]] = {}
        # Closed tailers' last position: (offset, partial line pending, path).
        self.resume_at: dict[str, tuple[int, bool, str]] = {}
        self.stop_event = asyncio.Event()
        self.rescan_now = asyncio.Event()
        self.by_path: dict[str, Tailer] = {}
        self._warned_cap = False
        self.retired: set[str] = set()  # identities followed before (even without checkpoints)
        # Watched path -> (identity seen there, when the last scan saw it).
        self.path_ident: dict[str, tuple[str, float]] = {}
        self.started = False  # sources scanned and tailers started (part of /ready)
        self.checkpoints_current_at = time.monotonic()  # saved checkpoints matched the acks
        self.heartbeat: float | None = None  # last time the event loop ran a beat (/healthz)
        # Transforms and enrichment: a chain only for sources that configure them, and the
        # package is imported only then, so other sources' path is unchanged.
        self.chains: dict[str, SourceChain] = {}
        if any(s.transforms or s.enrich is not None for s in cfg.sources.values()):
            from logship.transforms.pipeline import build_chains

            self.chains = build_chains(cfg, self.telemetry)
        self.vanished: dict[str, float] = {}  # watched path -> when scans stopped finding it

    # -- routing -----------------------------------------------------------------------
    def submit(self, batch: Batch, acks: FileAcks, cost: int, partial: bool) -> None:
        sinks = self.routes[batch.info.source]
        chain = self.chains.get(batch.info.source) if self.chains else None
        if chain is not None:
            # One ticket for every part of the transformed batch: the file's offset moves past
            # this batch (dropped lines included) once each sink has delivered each part.
            parts = [p for p in chain.apply(batch) if p.lines]
            ticket = acks.ticket(batch.end_offset, cost, len(sinks) * len(parts), partial)
            for p in parts:
                p.ticket = ticket
                for s in sinks:
                    s.submit(p)
            return
        batch.ticket = acks.ticket(batch.end_offset, cost, len(sinks), partial)
        for s in sinks:
            s.submit(batch)

    # -- files -------------------------------------------------------------------------
    def _make_room(self) -> bool:
        """Under the open-file cap? If not, ask the idlest tailer to close (it reopens later)."""
        if len(self.tailers) < self.cfg.tailing.max_open_files:
            return True
        idle = [t for t in self.tailers.values() if not t.carry and not t.close_requested]
        if idle:
            min(idle, key=lambda t: t.last_data).request_close()
        elif not self._warned_cap:
            self._warned_cap = True
            log.warning(
                "open-file cap reached; new files wait for a free slot",
                extra={"max_open_files": self.cfg.tailing.max_open_files},
            )
        return False

    def _start_tailer(self, m: Match, startup: bool) -> None:
        src = self.cfg.sources[m.source]
        if not self._make_room():
            return  # the next rescan tries again
        try:
            fd = os.open(m.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            log.warning("cannot open file", extra={"path": m.path, "error": e.strerror})
            return
        st = os.fstat(fd)
        key = f"{m.source}:{st.st_dev}:{st.st_ino}"
        if key in self.tailers:  # raced with a rename: already followed
            os.close(fd)
            return
        partial = False
        cp = self.store.get(key)
        if (
            src.ignore_older is not None
            and cp is None
            and key not in self.resume_at
            and time.time() - st.st_mtime > src.ignore_older
        ):
            os.close(fd)  # looked at again on every rescan: a write makes it current
            return
        if key in self.resume_at:
            offset, partial, _ = self.resume_at.pop(key)
            fp = (
                self.tracker.files[key].fingerprint
                if key in self.tracker.files
                else fingerprint(fd)
            )
        elif cp is not None and fingerprint_matches(fd, cp.fingerprint, cp.offset):
            offset, partial = cp.offset, cp.partial
            if offset > st.st_size:
                log.warning(
                    "file shorter than its checkpoint; reading from the start",
                    extra={"path": m.path},
                )
                offset, partial = 0, False
                self.telemetry.truncated(m.path)
            fp = fingerprint(fd)
        else:
            # A checkpoint of this identity that does not hold: the file was followed and its
            # content replaced since (cut, rewritten), so all of it is new: from its start,
            # whatever ``start_at`` says and however long ago it changed.
            at_end = (
                cp is None
                and startup
                and not self.once
                and src.start_at == "end"
                and not self._followed_before(m.source, m.path)
                and not self._changed_since_last_run(st)
            )
            offset = st.st_size if at_end else 0
            fp = fingerprint(fd)
        acks = self.tracker.file(key, m.path, fp, offset)
        acks.path = m.path
        if cp is not None and not acks.previous:
            acks.previous = list(cp.previous)
            if cp.fingerprint != fp and not fingerprint_matches(fd, cp.fingerprint):
                acks.remember_previous(cp.fingerprint)  # truncated or replaced while stopped
        labels = dict(self.extra_labels(m.source))
        pod = pod_identity(m.path)
        for name in POD_LABELS:
            if name in pod:
                labels.setdefault(name, pod[name])
        info = SourceInfo(
            m.source,
            m.path,
            src.format,
            labels,
            attributes=pod,
            identity=key,
            options=options_of(src),
        )
        t = Tailer(
            path=m.path,
            fd=fd,
            info=info,
            acks=acks,
            offset=offset,
            partial=partial,
            submit=self.submit,
            budget=self.budget,
            tailing=self.cfg.tailing,
            telemetry=self.telemetry,
            once=self.once,
            framer=self.framer_for(m.source),
            pace=self.chains[m.source].pace if m.source in self.chains else None,
        )
        self.tailers[key] = t
        self.by_path[m.path] = t
        task = asyncio.create_task(t.run(), name=f"tail {m.path}")
        self.tailer_tasks[key] = task
        task.add_done_callback(functools.partial(self._tailer_done, key))
        log.info("following file", extra={"path": m.path, "offset": offset, "source": m.source})

    def _followed_before(self, source: str, path: str) -> bool:
        """Would the config before a reload have followed this file? Then it is new since the
        old agent's last scan (the old agent checkpointed every file it followed) and is read
        from its start, like any file that appears while the agent runs."""
        old = self.previous.sources.get(source) if self.previous is not None else None
        if old is None:
            return False
        return any(compile_glob(p).matches(path) for p in old.include) and not excluded(
            path, old.exclude
        )

    def framer_for(self, source: str) -> Framer:
        """A fresh framing state for one file of ``source`` (container format, multiline)."""
        return Framer.for_source(self.cfg.sources[source], self.cfg.tailing)

    def _changed_since_last_run(self, st: os.stat_result) -> bool:
        """A file without a checkpoint that changed after the previous run's last save.

        The previous run checkpoints every file it follows at its first save, so such a
        file (created by a rotation just before a crash, or replaced while stopped) holds
        lines nobody read: it is read from its beginning, whatever ``start_at`` says.
        """
        since = self.store.unseen_since
        return since is not None and st.st_ctime >= since - 1.0  # coarse fs clocks

    def extra_labels(self, source: str) -> dict[str, str]:
        return dict(self.cfg.sources[source].labels)

    def _tailer_done(self, key: str, _task: asyncio.Task[None] | None = None) -> None:
        t = self.tailers.pop(key, None)
        self.tailer_tasks.pop(key, None)
        if t is None:
            return
        if self.by_path.get(t.path) is t:
            del self.by_path[t.path]
        if len(self.retired) > 10_000:
            self.retired.clear()
        self.retired.add(key)
        if t.stopping:
            return
        if t.dormant:
            self.resume_at[key] = (t.read_offset, t.skip_newline, t.path)
            return
        if t._deleted():
            # Gone for good: once delivered, its checkpoint has nothing left to say.
            self.store.forget(key)
        else:
            self.resume_at[key] = (t.emitted_offset, t.skip_newline, t.path)

    def _read_rest_beside(
        self, key: str, old_path: str, offset: int, partial: bool | None = None
    ) -> bool:
        """A file no glob matches any more, looked for beside its old path.

        Rotation renames ``app.log`` to ``app.log.1``; if the same file (same identity)
        is there with bytes past ``offset``, its tail is read and the file let go.
        Returns False when there is nothing left to read.
        """
        source, _, ident = key.partition(":")
        if source not in self.cfg.sources:
            return False
        try:
            dev, ino = (int(x) for x in ident.split(":"))
            entries = list(os.scandir(os.path.dirname(old_path) or "."))
        except (ValueError, OSError):
            return False
        for e in entries:
            try:
                st = e.stat()
            except OSError:
                continue
            if (st.st_dev, st.st_ino) != (dev, ino) or not e.is_file():
                continue
            replaced = self._content_replaced(key, e.path, st.st_size, offset)
            if st.st_size > offset or replaced:
                log.info(
                    "reading the rest of a file rotated away",
                    extra={"path": e.path, "was": old_path, "offset": 0 if replaced else offset},
                )
                if partial is not None and not replaced:  # resume where the tailer stopped
                    self.resume_at[key] = (offset, partial, e.path)
                self._start_tailer(Match(source, e.path, dev, ino, st.st_size), startup=True)
                t = self.tailers.get(key)
                if t is not None:
                    t.release()
                    return True
        return False

    def _content_replaced(self, key: str, path: str, size: int, offset: int) -> bool:
        """Whether a file's content is not what ``offset`` was read in: cut below it, or its
        head changed (cut and rewritten, maybe to fewer bytes, while nobody watched). Then
        it is read from its start (:meth:`_start_tailer` sees the fingerprint differ)."""
        if size < offset:
            return True
        acks = self.tracker.files.get(key)
        cp = self.store.get(key)
        expected = acks.fingerprint if acks is not None else cp.fingerprint if cp else None
        if not expected:
            return False
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return False
        try:
            return not fingerprint_matches(fd, expected, offset)
        finally:
            os.close(fd)

    def _recover_rotated(self, found: dict[str, Match]) -> None:
        """At start: checkpointed files rotated away while the agent was down."""
        for key, cp in list(self.store.entries.items()):
            if key not in found and key not in self.tailers:
                self._read_rest_beside(key, cp.path, cp.offset)

    def _catch_unseen_rotations(self, m: Match, since: float) -> None:
        """Files rotated away from ``m.path`` before any scan saw them under that name.

        When two rotations happen between scans (an agent slower than the writer),
        the middle file never shows under the watched name. Siblings named like
        ``app.log.1`` / ``app.log-2026...`` that are unknown, written since the last
        scan and not a copy of a known file (copytruncate) are read from the start.
        """
        src = self.cfg.sources[m.source]
        folder, base = os.path.split(m.path)
        try:
            entries = list(os.scandir(folder))
        except OSError:
            return
        known = [f.fingerprint for f in self.tracker.files.values()]
        known += [cp.fingerprint for cp in self.store.entries.values()]
        for f in self.tracker.files.values():
            known += f.previous
        for cp in self.store.entries.values():
            known += cp.previous
        for e in entries:
            if (
                e.path == m.path
                or not e.name.startswith(tuple(base + c for c in ROTATION_SEPARATORS))
                or e.name.endswith(COMPRESSED)
                or excluded(e.path, src.exclude)
            ):
                continue
            try:
                st = e.stat()
            except OSError:
                continue
            key = f"{m.source}:{st.st_dev}:{st.st_ino}"
            if (
                not e.is_file()
                or st.st_mtime < since - 1.0  # coarse file-system clocks
                or key in self.tailers
                or key in self.resume_at
                or key in self.tracker.files
                or key in self.store.entries
                or key in self.retired
            ):
                continue
            try:
                fd = os.open(e.path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                copy = any(fingerprint_matches(fd, fp) for fp in known if fp[:2] != "0:")
            finally:
                os.close(fd)
            if copy:
                continue
            log.warning(
                "found a file rotated away before it was seen; reading it",
                extra={"path": e.path, "watched": m.path},
            )
            self.resume_at[key] = (0, False, e.path)
            self._start_tailer(Match(m.source, e.path, st.st_dev, st.st_ino, st.st_size), False)
            t = self.tailers.get(key)
            if t is not None:
                t.release()

    def _catch_rotated_while_stopped(self, found: dict[str, Match]) -> None:
        """At start: beside names the previous run followed (its checkpoints' paths and the
        names its scans found) that no file has now, files changed since its last scan that
        it never checkpointed (found names are looked at beside themselves in :meth:`rescan`)."""
        since = self.store.unseen_since
        if since is None:
            return
        present = {m.path for m in found.values()}
        paths = {cp.path: key.partition(":")[0] for key, cp in self.store.entries.items()}
        paths.update(self.store.watched)  # names followed, even if no checkpoint has them now
        paths.update(self._rotated_names(paths, present))
        for path, source in paths.items():
            if path not in present and source in self.cfg.sources:
                self._catch_unseen_rotations(Match(source, path, 0, 0), since=since)

    def _rotated_names(self, known: dict[str, str], present: set[str]) -> dict[str, str]:
        """Watched names (path -> source) with no file now that rotated files in the folders
        the sources use are named after (``app.log.1``, ``app.log-2026...``): a file made
        and rotated away between two of the previous run's scans left no other trace."""
        folders = {os.path.dirname(p) for p in [*present, *known]}
        for src in self.cfg.sources.values():  # the folder of a pattern's last part
            for p in src.include:
                g = compile_glob(p)
                folders.add(g.root if g.root != g.pattern else os.path.dirname(g.root))
        out: dict[str, str] = {}
        for folder in folders:
            try:
                names = [e.name for e in os.scandir(folder)]
            except OSError:
                continue
            for name in names:
                for i, c in enumerate(name):
                    if c not in ROTATION_SEPARATORS or i == 0:
                        continue
                    base = os.path.join(folder, name[:i])
                    if base in present or base in known or base in out:
                        continue
                    for source, src in self.cfg.sources.items():
                        if any(compile_glob(p).matches(base) for p in src.include) and not (
                            excluded(base, src.exclude)
                        ):
                            out[base] = source
                            break
        return out

    def _watch_vanished(self, found: dict[str, Match], now: float) -> None:
        """Watched names no scan finds any more: rotated away with no new file yet, or deleted.

        A file created under such a name and rotated away again between two scans is only
        found beside it, so the siblings are looked at for a while (``VANISHED_WATCH_S``).
        """
        present = {m.path for m in found.values()}
        for path, (key, since) in list(self.path_ident.items()):
            if path in present:
                continue
            self._catch_unseen_rotations(Match(key.partition(":")[0], path, 0, 0), since)
            if now - self.vanished.setdefault(path, now) > VANISHED_WATCH_S:
                del self.path_ident[path]
                del self.vanished[path]
            else:
                self.path_ident[path] = (key, now)

    def rescan(self, startup: bool = False) -> None:
        scanned_at = time.time()  # before the scan: a file made during it may be missed
        found = scan(self.cfg.sources)
        if startup:
            self._recover_rotated(found)
            self._catch_rotated_while_stopped(found)
        now = time.time()
        self._watch_vanished(found, now)
        for key, m in found.items():
            prev = self.path_ident.get(m.path)
            self.vanished.pop(m.path, None)
            if prev is not None and prev[0] != key:
                self._catch_unseen_rotations(m, since=prev[1])
            elif startup and self.store.unseen_since is not None:
                # Rotated away after the previous run's last scan, before it checkpointed
                # them (a kill -9 shortly after a rotation, a stop waiting on a sink): no
                # checkpoint points at them.
                self._catch_unseen_rotations(m, since=self.store.unseen_since)
            self.path_ident[m.path] = (key, now)
        for key, m in found.items():
            t = self.tailers.get(key)
            if t is None:
                resume = self.resume_at.get(key)
                if resume is not None and resume[0] == m.size:
                    continue  # closed while idle and still unchanged
                self._start_tailer(m, startup)
                continue
            t.saw_size(m.size)
            if t.path != m.path:  # renamed but still matched: keep following it
                if self.by_path.get(t.path) is t:
                    del self.by_path[t.path]
                t.path = m.path
                t.acks.path = m.path
                self.by_path[m.path] = t
        for key in [k for k in self.resume_at if k not in found and k not in self.tailers]:
            # Closed while idle, then renamed away or deleted: read what it gained, if any.
            offset, partial, path = self.resume_at.pop(key)
            self._read_rest_beside(key, path, offset, partial)
        for key, t in list(self.tailers.items()):
            if key not in found and not t.unmatched:
                t.release()
                self.telemetry.rotated(t.path)
        # Per-file series live while their path is followed (or waits to be reopened).
        self.telemetry.forget_files(
            [t.path for t in self.tailers.values()] + [r[2] for r in self.resume_at.values()]
        )
        self.store.scanned_at = scanned_at  # saved with the checkpoints (unseen_since)
        self.store.watched = {p: k.partition(":")[0] for p, (k, _) in self.path_ident.items()}

    async def _on_events(self, paths: set[str]) -> None:
        for p in paths:
            t = self.by_path.get(p)
            if t is not None:
                t.wake()
        self.rescan_now.set()

    # -- checkpoints -------------------------------------------------------------------
    def save_checkpoints(self) -> None:
        """Record committed offsets; written to disk only with a ``checkpoint_dir``, but kept
        in memory regardless, so a reload continues exactly where this agent stopped."""
        now = time.time()
        for key, f in list(self.tracker.files.items()):
            self.store.update(
                key,
                Checkpoint(f.path, f.committed, f.fingerprint, f.partial, now, tuple(f.previous)),
            )
            if not f.pending and key not in self.tailers:
                self.tracker.forget(key)
        self.tracker.dirty = False
        try:
            self.store.save()
        except OSError as e:
            self.tracker.dirty = True  # try again at the next interval
            log.error("cannot save checkpoints", extra={"error": str(e)})
        else:
            self.checkpoints_current_at = time.monotonic()

    # -- what /metrics and /ready read, from the HTTP server's thread --------------------
    # Only reads: dicts are copied with list() (atomic under the GIL) before iterating.
    def file_lags(self) -> dict[str, int]:
        """Bytes behind the end, per path, from each tailer's last look at its file's size."""
        lags: dict[str, int] = {}
        for t in list(self.tailers.values()):
            lags[t.path] = lags.get(t.path, 0) + t.lag
        return lags

    def open_files(self) -> int:
        """Files with a tailer (open descriptor) right now; idle closed ones are not counted."""
        return len(self.tailers)

    def buffer_bytes(self) -> tuple[int, int]:
        """(bytes held between tailers and sinks, memory_limit)."""
        return self.budget.used, self.budget.limit

    def sink_bytes_in_flight(self) -> dict[str, int]:
        """Per sink: bytes queued for it plus bytes in requests being sent."""
        return {n: s.queued_bytes + s.sending_bytes for n, s in list(self.sinks.items())}

    def checkpoint_age(self) -> float | None:
        """Seconds since the saved checkpoints last matched what was delivered (None: none kept).

        Stays near zero while saving works; grows when saving fails (disk full, read-only).
        """
        if self.store.directory is None:
            return None
        return max(0.0, time.monotonic() - self.checkpoints_current_at)

    def liveness(self) -> tuple[bool, str]:
        """Alive = the event loop keeps running; a thread answering HTTP alone proves nothing."""
        if self.heartbeat is None:
            return True, "ok"  # starting
        stalled = time.monotonic() - self.heartbeat
        if stalled > self.cfg.http.healthz_max_stall:
            return False, f"event loop stalled for {stalled:.0f}s"
        return True, "ok"

    async def _beat(self) -> None:
        while True:
            self.heartbeat = time.monotonic()
            await asyncio.sleep(HEARTBEAT_INTERVAL)

    def readiness(self) -> tuple[bool, str]:
        """Ready = config loaded, sources started, no sink failing longer than the threshold."""
        if self.stop_event.is_set():
            return False, "stopping"
        if not self.started:
            return False, "starting: sources not scanned yet"
        limit = self.cfg.http.ready_max_failing
        now = time.monotonic()
        for name in self.cfg.sinks:
            failing = self.telemetry.failing_for(name, now)
            if failing > limit:
                stats = self.telemetry.sinks.get(name)  # .get: never insert from this thread
                error = stats.last_error if stats is not None else ""
                return False, f"sink {name} failing for {failing:.0f}s: {error}"
        return True, "ready"

    # -- lifecycle ---------------------------------------------------------------------
    def request_stop(self) -> None:
        if not self.stop_event.is_set():
            log.info("stopping: delivering what was read")
            self.stop_event.set()

    async def run(self) -> RunResult:
        loop = asyncio.get_running_loop()
        if self.handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, self.request_stop)
        dlq = DeadLetterFile(self.cfg.dead_letter) if self.cfg.dead_letter.path else None
        for name, scfg in self.cfg.sinks.items():
            self.sinks[name] = build_sink(name, scfg, self.telemetry, self.transport, dlq)
            self.sinks[name].budget = self.budget
        for source in self.cfg.sources:
            self.routes[source] = [self.sinks[n] for n in self.cfg.sinks_for(source)]
        sink_tasks = [asyncio.create_task(s.run(), name=f"sink {n}") for n, s in self.sinks.items()]
        beat = asyncio.create_task(self._beat(), name="heartbeat")
        self.rescan(startup=True)
        # Saved at once, so that a kill -9 at any later instant leaves a checkpoint for every
        # file followed from the start: the next run resumes them instead of "starting at end".
        self.save_checkpoints()
        self.started = True
        log.info("agent started", extra={"files": len(self.tailers), "sinks": list(self.sinks)})
        if self.once:
            if self.tailer_tasks:
                stopper = asyncio.create_task(self.stop_event.wait())
                await asyncio.wait(
                    [*self.tailer_tasks.values(), stopper], return_when=asyncio.FIRST_COMPLETED
                )
                if not self.stop_event.is_set():
                    await asyncio.gather(*self.tailer_tasks.values())
                stopper.cancel()
        else:
            await self._follow()
        try:
            return await self._shutdown(sink_tasks)
        finally:
            beat.cancel()

    async def _follow(self) -> None:
        watch_stop = asyncio.Event()
        watcher = asyncio.create_task(
            watch_events(watch_roots(self.cfg.sources), self._on_events, watch_stop)
        )
        last_scan = last_save = time.monotonic()
        tick = min(self.cfg.tailing.rescan_interval, self.cfg.checkpoint_interval, 0.5)
        try:
            while not self.stop_event.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop_event.wait(), tick)
                now = time.monotonic()
                if self.rescan_now.is_set() or now - last_scan >= self.cfg.tailing.rescan_interval:
                    self.rescan_now.clear()
                    try:
                        self.rescan()
                    except Exception:  # a bug here must not stop delivery of what is read
                        log.exception("rescan failed; retrying at the next interval")
                    last_scan = now
                if self.tracker.dirty and now - last_save >= self.cfg.checkpoint_interval:
                    self.save_checkpoints()
                    last_save = now
                elif not self.tracker.dirty:
                    self.checkpoints_current_at = now
        finally:
            watch_stop.set()
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher

    async def _shutdown(self, sink_tasks: list[asyncio.Task[None]]) -> RunResult:
        for t in list(self.tailers.values()):
            t.stop()
        if self.tailer_tasks:
            await asyncio.gather(*self.tailer_tasks.values(), return_exceptions=True)
        for s in self.sinks.values():
            s.close()
        timeout = None if self.once and not self.stop_event.is_set() else self.cfg.drain_timeout
        _done, pending = await asyncio.wait(sink_tasks, timeout=timeout)
        drained = not pending
        if pending:
            log.error(
                "drain timeout: undelivered data stays in the files for the next start",
                extra={"timeout_s": self.cfg.drain_timeout},
            )
            for s in self.sinks.values():
                s.abort()
            await asyncio.gather(*pending, return_exceptions=True)
        self.save_checkpoints()
        if self.chains:
            from logship.transforms.pipeline import log_totals

            log_totals(self.telemetry, list(self.chains))
        reasons = [s.undelivered for s in self.sinks.values() if s.undelivered]
        if self.once and not self.stop_event.is_set():
            if reasons:
                return RunResult(1, reasons[0])
            if not drained:
                return RunResult(1, "not everything could be delivered")
        return RunResult(0)
