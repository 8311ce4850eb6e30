"""``/metrics``, ``/healthz`` and ``/ready`` on one port, served from a background thread.

Why this server: prometheus_client, which the OpenTelemetry Prometheus exporter installs
anyway, ships the exposition as a WSGI app (content negotiation, OpenMetrics, gzip), and
the standard library's ``wsgiref`` server parses the HTTP, with one thread per request as
prometheus_client's own ``start_http_server`` does. That adds no dependency to an agent that
runs beside someone else's application, and keeps scrapes off the event loop: a slow or
stuck scraper never delays tailing or delivery. Routing three paths is the only code here.

Imported only when ``http.listen`` (or ``--http-listen``) is set.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client import make_wsgi_app

from logship.config.model import HttpConfig, parse_listen
from logship.metrics import AgentMetrics, AgentView

log = logging.getLogger("logship.http")

StartResponse = Any  # wsgiref's typing needs _typeshed; the shape is the WSGI one


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a hung scraper must not keep the agent from exiting
    allow_reuse_address = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Access logs would be noise on stderr every scrape; keep them at debug."""
        log.debug("http request", extra={"request": format % args})


class Endpoints:
    """The running server; :meth:`close` stops it (the metrics are the caller's to shut down)."""

    def __init__(self, cfg: HttpConfig, agent: AgentView, metrics: AgentMetrics) -> None:
        if cfg.listen is None:
            raise ValueError("http.listen is not set")
        host, port = parse_listen(cfg.listen)
        self.agent = agent
        self.metrics = metrics
        self._metrics_app = make_wsgi_app(self.metrics.registry)
        server_class = _Server6 if ":" in host else _Server
        self.server = server_class((host, port), _Handler)  # binds: OSError if taken
        self.server.set_app(self.app)
        self.host, self.port = host, self.server.server_address[1]
        self._thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.5},
            name="logship-http",
            daemon=True,
        )
        self._thread.start()
        log.info("serving /metrics, /healthz, /ready", extra={"host": host, "port": self.port})

    def app(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return _text(start_response, "405 Method Not Allowed", "only GET and HEAD\n")
        if path == "/metrics":
            with self.metrics.lock:
                return list(self._metrics_app(environ, start_response))
        if path == "/healthz":
            alive, reason = self.agent.liveness()
            status = "200 OK" if alive else "503 Service Unavailable"
            return _text(start_response, status, reason + "\n")
        if path == "/ready":
            ready, reason = self.agent.readiness()
            status = "200 OK" if ready else "503 Service Unavailable"
            return _text(start_response, status, reason + "\n")
        return _text(start_response, "404 Not Found", "not found: /metrics, /healthz, /ready\n")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


def _text(start_response: StartResponse, status: str, body: str) -> list[bytes]:
    data = body.encode()
    start_response(
        status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(data)))]
    )
    return [data]
