"""A small reader of the Prometheus text exposition format, for tests.

Written here rather than taken from prometheus_client, whose writer logship uses, so that the
tests read the format the way Prometheus defines it, independently of the code under test.
"""

from __future__ import annotations

import re
import socket
import urllib.error
import urllib.request

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?')

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """``{(name, labels): value}`` of every sample; fails on a line that is not valid."""
    out: Samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        name, labels_text, value = m.groups()
        labels: list[tuple[str, str]] = []
        pos = 0
        while labels_text and pos < len(labels_text):
            lm = _LABEL.match(labels_text, pos)
            assert lm, f"bad labels in {line!r}"
            raw = lm.group(2)
            unescaped = raw.replace("\\\\", "\0").replace('\\"', '"').replace("\\n", "\n")
            labels.append((lm.group(1), unescaped.replace("\0", "\\")))
            pos = lm.end()
        out[(name, frozenset(labels))] = float(value)
    return out


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    """(status, body) of a GET; connection errors raise."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def get_or_none(url: str) -> tuple[int, str] | None:
    """Like :func:`get`, but None while nothing listens (the agent is starting)."""
    try:
        return get(url)
    except (urllib.error.URLError, ConnectionError):
        return None


def scrape(base: str) -> Samples:
    status, body = get(base + "/metrics")
    assert status == 200, body
    return parse(body)


def free_port() -> int:
    """A port nothing listens on right now (the CLI cannot report a port 0 binding)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
