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
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import OUT_DIR, START_MS, ensure_corpus


def ensure_container_corpus(lines: int, fmt: str = "cri") -> Path:
    out = OUT_DIR / f"corpus-{fmt}-{lines}.log"
    if out.exists():
        return out
    source = ensure_corpus(lines)
    tmp = out.with_suffix(".tmp")
    with source.open("rb") as src, tmp.open("wb") as dst:
        for i, line in enumerate(src):
            ms = START_MS + i
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000))
            t = f"{stamp}.{ms % 1000:03d}456789Z"
            if fmt == "cri":
                dst.write(f"{t} stdout F ".encode() + line)
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
    args = parser.parse_args()
    print(ensure_container_corpus(args.lines, args.format))
    return 0


if __name__ == "__main__":
    sys.exit(main())
