"""Applying a new config without losing or duplicating a line (SIGHUP, or the file changing).

A reload is a stop and a start inside one process: the running agent stops reading, delivers
what it read (within ``drain_timeout``, as on SIGTERM) and records its checkpoints; a new agent
built from the new config continues from those checkpoints, in memory even when no
``checkpoint_dir`` is set. Offsets only move after delivery, so the switch cannot lose a line,
and since the old agent's work is acknowledged before the new one reads, nothing is sent twice
(unless the drain times out: then the undelivered lines are read again, as after a restart).

Reusing the stop path instead of diffing configs keeps one code path for every change (a new
sink, a changed glob, other batching) and the old agent's invariants intact. An invalid new
config is refused with its errors in the log and the running agent keeps going. ``http`` and
``otlp_metrics`` are bound to the process (a listening port) and change only on restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import signal
from collections.abc import Callable
from pathlib import Path

import httpx

from logship.agent import Agent, RunResult
from logship.config.loader import ConfigError, load_config
from logship.config.model import AgentConfig
from logship.sources.checkpoints import CheckpointStore
from logship.telemetry import Telemetry

log = logging.getLogger("logship.reload")


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


class Supervisor:
    """Runs one :class:`Agent` at a time and swaps it for a new one on a valid new config.

    It implements the read-only view that ``/metrics`` and ``/ready`` use, forwarding to the
    current agent; the :class:`Telemetry` counters are shared by all agents, so counters
    never go backwards across a reload.
    """

    def __init__(
        self,
        cfg: AgentConfig,
        config_path: Path,
        *,
        telemetry: Telemetry | None = None,
        transport: httpx.BaseTransport | None = None,
        adjust: Callable[[AgentConfig], AgentConfig] | None = None,
    ) -> None:
        """``adjust`` re-applies command-line overrides to every config read from the file."""
        self.cfg = cfg
        self.adjust = adjust
        self.config_path = config_path
        self.telemetry = telemetry or Telemetry()
        self.transport = transport
        self.agent = Agent(cfg, telemetry=self.telemetry, transport=transport, handle_signals=False)
        self._pending: AgentConfig | None = None
        self._stopping = False
        self._digest = _digest(config_path)
        self._refused_digest: str | None = None

    # -- what the HTTP endpoints read (AgentView), from the current agent -----------------
    def file_lags(self) -> dict[str, int]:
        return self.agent.file_lags()

    def open_files(self) -> int:
        return self.agent.open_files()

    def buffer_bytes(self) -> tuple[int, int]:
        return self.agent.buffer_bytes()

    def sink_bytes_in_flight(self) -> dict[str, int]:
        return self.agent.sink_bytes_in_flight()

    def checkpoint_age(self) -> float | None:
        return self.agent.checkpoint_age()

    def readiness(self) -> tuple[bool, str]:
        if self._pending is not None and not self._stopping:
            return False, "reloading the config"
        return self.agent.readiness()

    def liveness(self) -> tuple[bool, str]:
        return self.agent.liveness()

    # -- control ---------------------------------------------------------------------------
    def request_stop(self) -> None:
        self._stopping = True
        self.agent.request_stop()

    def request_reload(self) -> None:
        """Read the config file again; apply it if it is valid and different."""
        if self._stopping:
            return
        self._digest = _digest(self.config_path)
        try:
            new = load_config(self.config_path)
            if self.adjust is not None:
                new = self.adjust(new)
        except ConfigError as e:
            self.telemetry.config_reload_failures += 1
            self._refused_digest = self._digest
            log.error(
                "new config refused; the running config stays",
                extra={"config": str(self.config_path), "problems": e.problems},
            )
            return
        current = self._pending or self.cfg
        if new == current:
            log.info("config unchanged; nothing to reload", extra={"config": str(self.config_path)})
            return
        if new.http != self.cfg.http or new.otlp_metrics != self.cfg.otlp_metrics:
            log.warning(
                "http and otlp_metrics changes apply at the next restart",
                extra={"config": str(self.config_path)},
            )
        self._pending = new
        log.info("reloading config", extra={"config": str(self.config_path)})
        self.agent.request_stop()

    async def _watch_file(self) -> None:
        """Poll the file's content: mtimes are unreliable across ConfigMap symlink swaps."""
        while True:
            await asyncio.sleep(self._current_cfg().reload.poll_interval)
            digest = _digest(self.config_path)
            if digest is None or digest == self._digest or digest == self._refused_digest:
                continue
            log.info("config file changed", extra={"config": str(self.config_path)})
            self.request_reload()

    def _current_cfg(self) -> AgentConfig:
        return self._pending or self.cfg

    def _next_agent(self, new: AgentConfig) -> Agent:
        old = self.agent
        store = old.store
        if new.checkpoint_dir != self.cfg.checkpoint_dir:
            # The old agent's offsets are the newest word on the files it followed.
            store = CheckpointStore(new.checkpoint_dir)
            store.entries.update(old.store.entries)
            with contextlib.suppress(OSError):
                store.save()
        return Agent(
            new,
            telemetry=self.telemetry,
            transport=self.transport,
            store=store,
            previous=self.cfg,
            handle_signals=False,
        )

    async def run(self) -> RunResult:
        loop = asyncio.get_running_loop()
        for sig, handler in (
            (signal.SIGTERM, self.request_stop),
            (signal.SIGINT, self.request_stop),
            (signal.SIGHUP, self.request_reload),
        ):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, handler)
        watcher: asyncio.Task[None] | None = None
        try:
            while True:
                if watcher is None and self.cfg.reload.watch_file:
                    watcher = asyncio.create_task(self._watch_file(), name="config watch")
                elif watcher is not None and not self.cfg.reload.watch_file:
                    watcher.cancel()
                    watcher = None
                result = await self.agent.run()
                new = self._pending
                if self._stopping or new is None:
                    return result
                self.agent = self._next_agent(new)
                self.cfg = new
                self._pending = None
                self.telemetry.config_reloads += 1
                log.info("config reloaded", extra={"config": str(self.config_path)})
        finally:
            if watcher is not None:
                watcher.cancel()
