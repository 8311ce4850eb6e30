"""glibc's heap kept for the next request body instead of given back to the kernel each time.

An agent builds request bodies of megabytes (Elasticsearch ~2.4 MB, OTLP ~1.2 MB) a few times
a second and frees them once delivered. glibc returns the freed top of its heap to the kernel
as soon as a few MB are free, so the next body faults every page in again: ~40,000 page faults
and ~0.1 CPU-s of system time per million lines to Elasticsearch (measured with
``/usr/bin/time``: 40k -> 18k minor faults). Keeping 64 MiB of slack at the top of the heap
(``M_TOP_PAD``) stops that churn; pages are only resident once used, and the memory budget
still bounds what is held.

Setting ``M_TOP_PAD`` also freezes glibc's mmap threshold, which otherwise rises to the size of
the largest block freed so far: frozen at its start value (128 KiB), every buffer of a batch
(a 1 MiB read, its joined text, a request body) would be mapped and faulted in afresh (~650
faults and ~1 ms per pair of 1 MiB buffers, measured), so the threshold is set too, above the
largest buffer the agent makes.
"""

from __future__ import annotations

import sys

M_TOP_PAD = -2  # glibc <malloc.h>
M_MMAP_THRESHOLD = -3
TOP_PAD = 64 << 20
MMAP_THRESHOLD = 32 << 20  # glibc's own ceiling for the threshold it moves


def keep_heap_slack() -> bool:
    """Ask glibc for heap slack; False where there is no glibc ``mallopt`` (musl, macOS)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
            libc.mallopt(M_TOP_PAD, TOP_PAD)
        )
    except (OSError, AttributeError):
        return False
