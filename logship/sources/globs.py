"""Glob patterns with ``**``, matched by walking the tree once, safe against symlink loops.

``glob.glob(recursive=True)`` follows a symlink loop until the path is too long
and multiplies paths with every extra loop; ``/var/log/containers`` is all
symlinks, and a shared volume is not always tidy. This walker follows symlinks
(the targets are what we tail) but enters each real folder once, and stops at the
depth the pattern can reach.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

_MAGIC = re.compile(r"[*?\[]")


def _translate(pattern: str) -> str:
    """Glob to regex: ``**/`` spans any folders, ``*`` and ``?`` stay within one."""
    out = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            j = pattern.find("]", i + 2)
            if j == -1:
                out.append(re.escape(c))
                i += 1
            else:
                body = pattern[i + 1 : j]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = j + 1
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


@dataclass(frozen=True)
class Glob:
    pattern: str
    root: str  # the folder above the first wildcard
    regex: re.Pattern[str]
    max_depth: int | None  # folders below root a match can be in; None with **

    def matches(self, path: str) -> bool:
        return self.regex.fullmatch(path) is not None


@lru_cache(maxsize=256)
def compile_glob(pattern: str) -> Glob:
    pattern = os.path.abspath(os.path.expanduser(pattern))
    parts = pattern.split("/")
    static: list[str] = []
    for p in parts:
        if _MAGIC.search(p):
            break
        static.append(p)
    root = "/".join(static) or "/"
    rest = parts[len(static) :]
    depth = None if any("**" in p for p in rest) else max(0, len(rest) - 1)
    return Glob(pattern, root, re.compile(_translate(pattern)), depth)


def _walk(root: str, max_depth: int | None) -> Iterator[str]:
    seen: set[tuple[int, int]] = set()
    stack: list[tuple[str, int]] = [(root, 0)]
    while stack:
        folder, depth = stack.pop()
        try:
            st = os.stat(folder)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in seen:  # a loop, or a second way into the same folder
            continue
        seen.add((st.st_dev, st.st_ino))
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for e in entries:
            try:
                if e.is_dir():  # follows symlinks
                    if max_depth is None or depth < max_depth:
                        stack.append((e.path, depth + 1))
                elif e.is_file():
                    yield e.path
            except OSError:
                continue


def expand(pattern: str) -> list[str]:
    """Regular files matching ``pattern`` (symlinks to files included), sorted.

    As in a shell, a wildcard does not match a file name starting with a dot
    unless the pattern's name does (editors' and rotators' temporary files).
    """
    g = compile_glob(pattern)
    if g.root == g.pattern:  # no wildcard: a plain path
        return [g.pattern] if os.path.isfile(g.pattern) else []
    dotfiles = os.path.basename(g.pattern).startswith(".")
    return sorted(
        p
        for p in _walk(g.root, g.max_depth)
        if g.matches(p) and (dotfiles or not os.path.basename(p).startswith("."))
    )


def excluded(path: str, patterns: list[str]) -> bool:
    """Exclude patterns match the whole path, or the file name when they have no slash."""
    name = os.path.basename(path)
    for p in patterns:
        if "/" in p:
            if compile_glob(p).matches(path):
                return True
        elif re.fullmatch(_translate(p), name):
            return True
    return False
