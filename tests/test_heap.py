"""Heap slack: asked of glibc where it exists, skipped quietly elsewhere."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from logship.heap import keep_heap_slack


def test_heap_slack_is_set_exactly_where_glibc_is() -> None:
    glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert keep_heap_slack() is glibc


_BUFFERS = """
import resource
from logship.heap import keep_heap_slack
keep_heap_slack()
lines = [b"x" * 150] * 7000
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
s = b",\\n".join(lines)  # the first pair may fault its pages in
c = s.translate(bytes(range(256)))
del s, c
before = faults()
for _ in range(20):
    s = b",\\n".join(lines)  # two 1 MiB buffers made and freed, as a batch's passes do
    c = s.translate(bytes(range(256)))
    del s, c
print((faults() - before) // 20)
"""


@pytest.mark.skipif(
    not (sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"),
    reason="glibc only",
)
def test_megabyte_buffers_reuse_the_heap_instead_of_faulting_in_afresh() -> None:
    """In a fresh process (so nothing before it raised glibc's mmap threshold), a 1 MiB
    buffer made and freed again and again is not mapped anew each time: without the
    threshold set, each pair costs ~650 page faults."""
    out = subprocess.run(
        [sys.executable, "-c", _BUFFERS], capture_output=True, text=True, check=True
    ).stdout
    assert int(out) < 50
