"""The benchmark corpus wrapped as container runtime logs, cached on disk.

``cri``: ``<time> stdout F <json line>``; ``docker``: ``{"log":"<json line>\\n",...}``.
Measures what ``--format cri|docker`` costs over ``--format json`` on the same messages: the
receiver still gets exactly the corpus's lines, because every line is a whole line. Times are
one millisecond apart, written with nanoseconds like the runtimes write them::

    python benchmarks/container_corpus.py --format cri     # prints the cached file's path
    python3 dev.py bench --agent-cmd "{logship} tail --once --from-beginning --format cri \\
        --to {to} $(python benchmarks/container_corpus.py --format cri)"
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import OUT_DIR, SEED, START_MS, ensure_corpus


def ensure_container_corpus(lines: int, fmt: str = "cri", nanos: bool = False) -> Path:
    """``nanos``: times with random nanoseconds, trailing zeros dropped (RFC3339Nano, as
    the runtimes write them), and one line in ten on stderr."""
    out = OUT_DIR / f"corpus-{fmt}{'-nanos' if nanos else ''}-{lines}.log"
    if out.exists():
        return out
    source = ensure_corpus(lines)
    rng = random.Random(SEED)
    tmp = out.with_suffix(".tmp")
    with source.open("rb") as src, tmp.open("wb") as dst:
        for i, line in enumerate(src):
            ms = START_MS + i
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000))
            t = f"{stamp}.{ms % 1000:03d}456789Z"
            stream = "stdout"
            if nanos:
                frac = f"{ms % 1000:03d}{rng.randrange(10**6):06d}".rstrip("0")
                t = f"{stamp}.{frac}Z" if frac else f"{stamp}Z"
                stream = "stderr" if rng.random() < 0.1 else "stdout"
            if fmt == "cri":
                dst.write(f"{t} {stream} F ".encode() + line)
            else:
                log = line.decode()
                dst.write(
                    json.dumps(
                        {"log": log, "stream": "stdout", "time": t}, separators=(",", ":")
                    ).encode()
                    + b"\n"
                )
    tmp.rename(out)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--format", choices=["cri", "docker"], default="cri")
    parser.add_argument("--nanos", action="store_true", help="nanosecond times, some stderr")
    args = parser.parse_args()
    print(ensure_container_corpus(args.lines, args.format, args.nanos))
    return 0


if __name__ == "__main__":
    sys.exit(main())
