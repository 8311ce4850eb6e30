"""Deterministic benchmark corpus: JSON lines that look like a real service's log.

The benchmark must measure the same input on every machine and every run, so the corpus is
generated from a fixed seed (no wall clock, no ``hash()`` randomisation) and cached on disk:
generating a million lines takes a few seconds, which would otherwise dominate short runs.

Run as a script to (re)build the cached file and print its path::

    python benchmarks/corpus.py --lines 1000000
"""

from __future__ import annotations

import argparse
import calendar
import os
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path

OUT_DIR = Path(__file__).resolve().parent / "out"

# Bump when the generator's output changes, so stale cached corpora are not reused.
CORPUS_VERSION = 1
SEED = 20261128
START_MS = calendar.timegm((2026, 11, 28, 12, 0, 0, 0, 0, 0)) * 1000

# Weighted like a healthy production service: mostly info, some debug, few warnings/errors.
LEVELS = ("info",) * 80 + ("debug",) * 10 + ("warn",) * 7 + ("error",) * 3
STATUS_BY_LEVEL = {
    "info": (200, 200, 200, 200, 200, 201, 204, 304),
    "debug": (200, 200, 204),
    "warn": (400, 401, 404, 404, 409, 429),
    "error": (500, 502, 503, 504),
}
RESOURCES = ("items", "orders", "users", "carts", "invoices", "sessions")
VERBS = ("request handled", "request handled", "request handled", "served", "proxied")
MESSAGES_BY_LEVEL = {
    "debug": (
        "cache hit key=user:{n}",
        "cache miss key=item:{n}",
        "db query table=orders rows={small}",
    ),
    "warn": (
        "slow request path=/api/v1/{res}/{n}",
        "retrying upstream host=payments-{small} attempt=2",
        "client error path=/api/v1/{res}/{n}",
    ),
    "error": (
        "upstream timeout host=payments-{small}",
        "request failed path=/api/v2/{res}/{n} err=connection reset",
        "db error table={res} err=deadlock detected",
    ),
}


def corpus_path(lines: int) -> Path:
    """Where the corpus of ``lines`` lines is cached (name encodes size and generator version)."""
    return OUT_DIR / f"corpus-v{CORPUS_VERSION}-{lines}.jsonl"


def _timestamp(ms: int, cache: dict[int, str]) -> str:
    """Format epoch milliseconds as RFC 3339 UTC; the per-second prefix is cached for speed."""
    sec, frac = divmod(ms, 1000)
    prefix = cache.get(sec)
    if prefix is None:
        cache.clear()
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        cache[sec] = prefix
    return f"{prefix}.{frac:03d}Z"


def iter_lines(count: int, seed: int = SEED) -> Iterator[bytes]:
    """Yield ``count`` newline-terminated JSON log lines, identical for identical arguments.

    Timestamps strictly increase (1-3 ms apart) like a busy service's; keys keep a fixed order,
    as most structured loggers emit them.
    """
    rng = random.Random(seed)
    ts_cache: dict[int, str] = {}
    ms = START_MS
    for _ in range(count):
        ms += rng.randint(1, 3)
        level = rng.choice(LEVELS)
        status = rng.choice(STATUS_BY_LEVEL[level])
        res = rng.choice(RESOURCES)
        n = rng.randint(1, 99_999)
        if level == "info":
            msg = f"{rng.choice(VERBS)} path=/api/v1/{res}/{n}"
        else:
            msg = rng.choice(MESSAGES_BY_LEVEL[level]).format(n=n, res=res, small=rng.randint(1, 9))
        duration = round(rng.lognormvariate(2.3, 0.9), 3)
        req = f"{rng.getrandbits(64):016x}"
        yield (
            f'{{"ts":"{_timestamp(ms, ts_cache)}","level":"{level}","msg":"{msg}",'
            f'"status":{status},"duration_ms":{duration},"req":"{req}"}}\n'
        ).encode()


def ensure_corpus(lines: int, *, quiet: bool = False) -> Path:
    """Return the cached corpus path, generating it first if needed.

    Written to a temporary name and renamed, so an interrupted run never leaves a short corpus
    that a later run would trust.
    """
    path = corpus_path(lines)
    if path.exists():
        return path
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    if not quiet:
        print(f"generating corpus: {lines:,} lines -> {path}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb", buffering=1 << 20) as f:
            f.writelines(iter_lines(lines))
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    if not quiet:
        size = path.stat().st_size
        print(
            f"generated {size / 1e6:.1f} MB ({size / max(lines, 1):.0f} B/line) "
            f"in {time.perf_counter() - started:.1f}s",
            file=sys.stderr,
            flush=True,
        )
    return path


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: build (or find) the corpus and print its path."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000, help="number of lines")
    args = parser.parse_args(argv)
    print(ensure_corpus(args.lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
