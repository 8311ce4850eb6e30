"""The benchmark corpus wrapped in CRI lines (``<time> stdout F <json line>``), cached on disk.

Measures what ``--format cri`` costs over ``--format json`` on the same messages: the
receiver still gets exactly the corpus's lines, because every line is a whole (``F``) line.
Times are one millisecond apart, written with nanoseconds like the kubelet writes them::

    python benchmarks/cri_corpus.py --lines 1000000      # prints the cached file's path
    python3 dev.py bench --agent-cmd \\
        "{logship} tail --once --from-beginning --format cri --to {to} $(python benchmarks/cri_corpus.py)"
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import OUT_DIR, START_MS, ensure_corpus  # noqa: E402


def ensure_cri_corpus(lines: int) -> Path:
    out = OUT_DIR / f"corpus-cri-{lines}.log"
    if out.exists():
        return out
    source = ensure_corpus(lines)
    tmp = out.with_suffix(".tmp")
    with source.open("rb") as src, tmp.open("wb") as dst:
        for i, line in enumerate(src):
            ms = START_MS + i
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000))
            dst.write(f"{stamp}.{ms % 1000:03d}456789Z stdout F ".encode() + line)
    tmp.rename(out)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    print(ensure_cri_corpus(parser.parse_args().lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
