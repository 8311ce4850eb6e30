"""Credentials from the environment or files, and TLS verified unless turned off explicitly."""

from __future__ import annotations

import base64
import http.server
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from conftest import write_lines
from fakes.loki import FakeLoki


def run_once(cfg: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "logship", "run", "--once", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def config(tmp_path: Path, log: Path, sink: str) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(
        f"""
sources:
  app: {{include: ["{log}"], start_at: beginning}}
sinks:
  loki:
    type: loki
    batch: {{linger: 20ms}}
    retry: {{max_attempts: 2, initial_backoff: 50ms}}
{sink}
"""
    )
    return p


def test_bearer_token_from_file_never_logged(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    write_lines(log, ["hello"])
    token = tmp_path / "token"
    token.write_text("s3cr3t-token\n")
    with FakeLoki(expected_auth="Bearer s3cr3t-token") as loki:
        cfg = config(tmp_path, log, f'    url: "{loki.url}"\n    bearer_token_file: "{token}"')
        r = run_once(cfg)
        assert r.returncode == 0, r.stderr
        assert loki.lines() == ["hello"]
    assert "s3cr3t" not in r.stderr + r.stdout


def test_basic_auth_password_from_environment(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    write_lines(log, ["hello"])
    expected = "Basic " + base64.b64encode(b"shipper:pa55").decode()
    with FakeLoki(expected_auth=expected) as loki:
        cfg = config(
            tmp_path,
            log,
            f'    url: "{loki.url}"\n'
            '    basic_auth: {username: shipper, password: "${LOKI_PW}"}',
        )
        r = run_once(cfg, {"LOKI_PW": "pa55"})
        assert r.returncode == 0, r.stderr
        assert loki.lines() == ["hello"]
        bad = run_once(cfg, {"LOKI_PW": "wrong"})
        assert bad.returncode == 1
        assert "401" in bad.stderr and "pa55" not in bad.stderr


class _Ok(http.server.BaseHTTPRequestHandler):
    received: list[bytes] = []

    def do_POST(self) -> None:
        n = int(self.headers.get("Content-Length", "0"))
        _Ok.received.append(self.rfile.read(n))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[str, Path, trustme.CA, ssl.SSLContext]]:
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_cert.configure_cert(ctx)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    _Ok.received = []
    try:
        yield f"https://127.0.0.1:{srv.server_address[1]}", ca_file, ca, ctx
    finally:
        srv.shutdown()
        srv.server_close()


def test_tls_verified_by_default(tmp_path: Path, tls_server: tuple) -> None:  # type: ignore[type-arg]
    url, ca_file, _, _ = tls_server
    log = tmp_path / "app.log"
    write_lines(log, ["over tls"])
    refused = run_once(config(tmp_path, log, f'    url: "{url}"'))
    assert refused.returncode == 1
    assert "CERTIFICATE_VERIFY_FAILED" in refused.stderr
    assert _Ok.received == []
    ok = run_once(config(tmp_path, log, f'    url: "{url}"\n    tls: {{ca_file: "{ca_file}"}}'))
    assert ok.returncode == 0, ok.stderr
    assert len(_Ok.received) == 1


def test_tls_client_certificate(tmp_path: Path, tls_server: tuple) -> None:  # type: ignore[type-arg]
    url, ca_file, ca, ctx = tls_server
    ctx.verify_mode = ssl.CERT_REQUIRED
    ca.configure_trust(ctx)
    client = ca.issue_cert("logship-client")
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    client.cert_chain_pems[0].write_to_path(str(cert))
    client.private_key_pem.write_to_path(str(key))
    log = tmp_path / "app.log"
    write_lines(log, ["mutual tls"])
    without = run_once(
        config(tmp_path, log, f'    url: "{url}"\n    tls: {{ca_file: "{ca_file}"}}')
    )
    assert without.returncode == 1
    sink = (
        f'    url: "{url}"\n    tls: {{ca_file: "{ca_file}", cert_file: "{cert}", '
        f'key_file: "{key}"}}'
    )
    with_cert = run_once(config(tmp_path, log, sink))
    assert with_cert.returncode == 0, with_cert.stderr
    assert len(_Ok.received) == 1


def test_insecure_skip_verify_must_be_explicit(tmp_path: Path, tls_server: tuple) -> None:  # type: ignore[type-arg]
    url, _, _, _ = tls_server
    log = tmp_path / "app.log"
    write_lines(log, ["no verification, by choice"])
    r = run_once(
        config(tmp_path, log, f'    url: "{url}"\n    tls: {{insecure_skip_verify: true}}')
    )
    assert r.returncode == 0, r.stderr
    assert "verification is OFF" in r.stderr
