"""Heap slack: asked of glibc where it exists, skipped quietly elsewhere."""

from __future__ import annotations

import platform
import sys

from logship.heap import keep_heap_slack


def test_heap_slack_is_set_exactly_where_glibc_is() -> None:
    glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert keep_heap_slack() is glibc
