"""Parser throughput per format: lines per CPU-second of a batch's timestamps and records.

In-process and single-threaded, on a deterministic corpus derived from the JSON benchmark
corpus (the same events written as logfmt, syslog, nginx, ...), so formats compare on the
same content. ``timestamps`` is what the Loki sink needs (for ``json`` the whole-batch fast
path; for the others a full parse), ``records`` is the additional cost of the normalized
records the stdout sink prints. Run with the venv's Python::

    .venv/bin/python benchmarks/formats.py [--lines 50000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import ensure_corpus

from logship.parsing.batch import Batch, SourceInfo
from logship.parsing.options import ParseOptions

READ_NS = 1_800_000_000 * 1_000_000_000
REGEX = re.compile(r"^(?P<time>\S+) (?P<level>\w+) (?P<msg>.*?)(?: status=(?P<status>\d+))?$")


def _logfmt(o: dict) -> bytes:  # type: ignore[type-arg]
    parts = []
    for k, v in o.items():
        if isinstance(v, dict | list):
            continue
        text = str(v)
        parts.append(f"{k}={orjson.dumps(text).decode()}" if " " in text else f"{k}={text}")
    return " ".join(parts).encode()


def _time(o: dict) -> datetime:  # type: ignore[type-arg]
    return datetime.fromisoformat(str(o.get("ts") or o.get("time")).replace("Z", "+00:00"))


def _syslog(o: dict) -> bytes:  # type: ignore[type-arg]
    return f"<14>1 {o.get('ts') or o.get('time')} web-1 app 12 - - {o.get('msg', '')}".encode()


def _nginx(o: dict) -> bytes:  # type: ignore[type-arg]
    t = _time(o).astimezone(UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")
    return (
        f'10.0.0.7 - - [{t}] "GET /api/v1/items?id=3 HTTP/1.1" {o.get("status", 200)} 612 '
        f'"-" "Mozilla/5.0 (X11; Linux x86_64)"'
    ).encode()


def _regex(o: dict) -> bytes:  # type: ignore[type-arg]
    return f"{o.get('ts') or o.get('time')} {o.get('level')} {o.get('msg')} status=200".encode()


WRITERS: dict[str, Callable[[dict], bytes] | None] = {  # type: ignore[type-arg]
    "json": None,
    "logfmt": _logfmt,
    "syslog": _syslog,
    "nginx": _nginx,
    "regex": _regex,
    "raw": None,
}


def measure(fmt: str, lines: list[bytes], repeat: int) -> dict[str, float]:
    opts = ParseOptions(regex=REGEX) if fmt == "regex" else ParseOptions()
    best: dict[str, float] = {}
    for _ in range(repeat):
        b = Batch(SourceInfo("bench", "/bench.log", fmt, {}, opts), lines, 0, 1 << 40, READ_NS)
        for what, step in (("timestamps", b.timestamps), ("records", b.records)):
            t = time.process_time()
            step()
            best[what] = min(best.get(what, float("inf")), time.process_time() - t)
    return {k: len(lines) / v for k, v in best.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=50_000, help="lines per format")
    parser.add_argument("--repeat", type=int, default=3, help="runs per format; best kept")
    args = parser.parse_args(argv)
    source = ensure_corpus(args.lines, quiet=True).read_bytes().split(b"\n")[: args.lines]
    objects = [orjson.loads(x) for x in source]
    print("| format | timestamps: lines/CPU-s | then records: lines/CPU-s |")
    print("|---|--:|--:|")
    for fmt, writer in WRITERS.items():
        lines = source if writer is None else [writer(o) for o in objects]
        r = measure(fmt, lines, args.repeat)
        print(f"| {fmt} | {r['timestamps']:,.0f} | {r['records']:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
