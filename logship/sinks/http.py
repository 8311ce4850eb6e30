"""The shared HTTP driver: one client per sink, auth and TLS, and the retry loop.

A concrete sink supplies two pure functions: ``encode`` (batches to a request)
and ``classify`` (a response to an :class:`Outcome`). Everything about waiting,
retrying, splitting on 413 and acknowledging lives here once.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import logging
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from logship.config.model import HttpSinkBase
from logship.parsing.batch import Batch
from logship.sinks.base import SinkWorker, ack
from logship.sinks.outcome import Outcome, Verdict
from logship.sinks.retry import RetryPolicy
from logship.telemetry import Telemetry

log = logging.getLogger("logship.sink")


@dataclass(slots=True)
class EncodedRequest:
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    records: int = 0


def ssl_context(cfg: HttpSinkBase) -> ssl.SSLContext | bool:
    tls = cfg.tls
    if tls.insecure_skip_verify:
        log.warning("TLS certificate verification is OFF for %s", cfg.url)
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
    if tls.cert_file is not None:
        ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file) if tls.key_file else None)
    return ctx


class _FileSecret:
    """A credential read from a file and re-read when the file changes (rotated tokens)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mtime = -1.0
        self._value = ""

    def get(self) -> str:
        try:
            mtime = self.path.stat().st_mtime
            if mtime != self._mtime:
                self._value = self.path.read_text(encoding="utf-8").strip()
                self._mtime = mtime
        except OSError as e:
            log.error("cannot read credential file %s: %s", self.path, e.strerror)
        return self._value


class HttpSink(SinkWorker):
    path = "/"

    def __init__(
        self,
        name: str,
        cfg: HttpSinkBase,
        telemetry: Telemetry,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(
            name,
            telemetry,
            max_bytes=int(cfg.batch.max_bytes),
            max_entries=cfg.batch.max_entries,
            linger=cfg.batch.linger,
            max_in_flight=cfg.max_in_flight,
        )
        self.cfg = cfg
        self.url = cfg.url + self.path
        self.policy = RetryPolicy(cfg.retry)
        self.stop_retrying = asyncio.Event()
        limits = httpx.Limits(
            max_connections=cfg.max_in_flight, max_keepalive_connections=cfg.max_in_flight
        )
        self.client = httpx.Client(
            timeout=cfg.timeout,
            limits=limits,
            # Plain http never uses TLS: skip loading the CA bundle (a noticeable start-up cost).
            verify=ssl_context(cfg) if cfg.url.startswith("https:") else False,
            transport=transport,
            headers={"User-Agent": "logship/0.1", **cfg.headers},
        )
        # Requests go out from a few threads with the synchronous client: per request it
        # costs a third of the CPU of the asyncio client, and sending overlaps encoding.
        self._senders = ThreadPoolExecutor(cfg.max_in_flight, thread_name_prefix=f"sink-{name}")
        self._static_auth: str | None = None
        self._file_auth: tuple[str, _FileSecret] | None = None
        if cfg.basic_auth is not None:
            ba = cfg.basic_auth
            if ba.password is not None:
                raw = f"{ba.username}:{ba.password.get_secret_value()}".encode()
                self._static_auth = "Basic " + base64.b64encode(raw).decode()
            elif ba.password_file is not None:
                self._file_auth = (f"basic:{ba.username}", _FileSecret(ba.password_file))
        elif cfg.bearer_token is not None:
            self._static_auth = "Bearer " + cfg.bearer_token.get_secret_value()
        elif cfg.bearer_token_file is not None:
            self._file_auth = ("bearer", _FileSecret(cfg.bearer_token_file))

    def auth_header(self) -> str | None:
        if self._static_auth is not None:
            return self._static_auth
        if self._file_auth is not None:
            kind, secret = self._file_auth
            if kind == "bearer":
                return "Bearer " + secret.get()
            user = kind.split(":", 1)[1]
            return "Basic " + base64.b64encode(f"{user}:{secret.get()}".encode()).decode()
        return None

    # -- to implement ------------------------------------------------------------------
    def encode(self, batches: list[Batch]) -> EncodedRequest:
        raise NotImplementedError

    def classify(self, status: int, headers: httpx.Headers, body: bytes, records: int) -> Outcome:
        raise NotImplementedError

    # -- the retry loop ----------------------------------------------------------------
    def abort(self) -> None:
        self.stop_retrying.set()
        super().abort()

    async def deliver(self, batches: list[Batch]) -> None:
        loop = asyncio.get_running_loop()
        req = self.encode(batches)
        if req.records == 0:  # only offsets to move (empty lines were cut, etc.)
            for b in batches:
                ack(b)
            return
        headers = dict(req.headers)
        headers["Content-Length"] = str(len(req.body))
        started = time.monotonic()
        attempts = 0
        while True:
            attempts += 1
            auth = self.auth_header()
            if auth:
                headers["Authorization"] = auth
            sent_at = time.monotonic()
            try:
                # The body goes in as a one-item iterator: httpx's request and response
                # objects form reference cycles, and with ``content=bytes`` each request
                # kept its body alive until the next garbage collection (tens of MiB).
                resp = await loop.run_in_executor(
                    self._senders,
                    functools.partial(
                        self.client.post, self.url, content=iter((req.body,)), headers=headers
                    ),
                )
                outcome = self.classify(resp.status_code, resp.headers, resp.content, req.records)
            except httpx.TransportError as e:
                outcome = Outcome(Verdict.RETRY, f"{type(e).__name__}: {e or 'no detail'}")
            self.telemetry.request_duration(self.name, time.monotonic() - sent_at)
            v = outcome.verdict
            if v is Verdict.DELIVERED:
                self.telemetry.sent(self.name, req.records, len(req.body))
                for b in batches:
                    ack(b)
                return
            if v is Verdict.REJECTED:
                self.telemetry.rejected(self.name, outcome.rejected, outcome.reason)
                if outcome.rejected < req.records:
                    self.telemetry.sent(self.name, req.records - outcome.rejected, len(req.body))
                log.error(
                    "sink rejected records",
                    extra={
                        "sink": self.name,
                        "records": outcome.rejected,
                        "reason": outcome.reason,
                    },
                )
                self.note_undelivered(
                    f"{self.name} rejected {outcome.rejected} record(s): {outcome.reason}"
                )
                for b in batches:
                    ack(b)
                return
            if v is Verdict.SPLIT:
                halves = split_batches(batches)
                if halves is None:
                    self.telemetry.dropped(self.name, req.records, outcome.reason)
                    self.note_undelivered(f"{self.name}: single record too large: {outcome.reason}")
                    for b in batches:
                        ack(b)
                    return
                log.warning("request too large, splitting", extra={"sink": self.name})
                await asyncio.gather(*(self.deliver(h) for h in halves))
                return
            # RETRY
            if self.aborted:  # shutting down: leave it unacknowledged, it is re-read next start
                return
            elapsed = time.monotonic() - started
            if self.policy.exhausted(attempts, elapsed):
                self.telemetry.dropped(self.name, req.records, outcome.reason)
                self.note_undelivered(
                    f"{self.name}: gave up after {attempts} attempt(s): {outcome.reason}"
                )
                log.error(
                    "giving up on request",
                    extra={"sink": self.name, "attempts": attempts, "reason": outcome.reason},
                )
                for b in batches:
                    ack(b)
                return
            delay = self.policy.delay(attempts, outcome.retry_after)
            self.telemetry.retry(self.name, outcome.reason)
            log.warning(
                "request failed, retrying",
                extra={
                    "sink": self.name,
                    "attempt": attempts,
                    "delay_s": round(delay, 3),
                    "reason": outcome.reason,
                },
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_retrying.wait(), delay)

    async def aclose(self) -> None:
        self._senders.shutdown(wait=False, cancel_futures=True)
        self.client.close()


def split_batches(batches: list[Batch]) -> list[list[Batch]] | None:
    """Two halves of a request, or None when it is one record that cannot be split."""
    if len(batches) > 1:
        mid = len(batches) // 2
        return [batches[:mid], batches[mid:]]
    (b,) = batches
    if len(b) <= 1:
        return None
    left, right = b.split()
    return [[left], [right]]


def response_text(body: bytes, limit: int = 500) -> str:
    text = body.decode("utf-8", "replace").strip()
    return text if len(text) <= limit else text[:limit] + "..."
