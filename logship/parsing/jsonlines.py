"""JSON lines: one object per line (``json``), or mixed with logfmt and raw lines (``auto``)."""

from __future__ import annotations

import itertools
import operator
from typing import Any

import orjson

from logship.parsing.options import ParseOptions
from logship.parsing.parsed import Parsed, from_fields


def json_array(lines: list[bytes]) -> bytes:
    """``[`` + ``,\n``.join(lines) + ``]`` with one copy of the lines (the brackets go on the
    first and last line's copies): the text one C parse reads a whole batch from.

    Lines are joined with ``,\n``: a JSON string cannot hold a raw newline, so a line that
    ends inside a string (``{"a":"``) cannot combine with the next one into valid JSON.
    """
    if len(lines) > 1:
        return b",\n".join([b"[" + lines[0], *lines[1:-1], lines[-1] + b"]"])
    return b"[" + lines[0] + b"]" if lines else b"[]"


def parse_objects(lines: list[bytes], fmt: str) -> tuple[list[dict[str, Any] | None], list[int]]:
    """JSON objects per line (None for other lines) and the indices of malformed lines.

    With ``json`` every line that is not an object is malformed; with ``auto`` only
    lines that start with ``{`` and do not parse.
    """
    n = len(lines)
    if not n:
        return [], []
    try:  # the usual case: every line is one object, parsed in one C call and checked in C
        whole = orjson.loads(json_array(lines))
        if len(whole) == n and set(map(type, whole)) == {dict}:
            return whole, []
    except orjson.JSONDecodeError:
        pass
    candidates = [i for i, line in enumerate(lines) if line.lstrip()[:1] == b"{"]
    out: list[dict[str, Any] | None] = [None] * n
    malformed: list[int] = []
    if fmt == "json" and len(candidates) != n:
        starts = set(candidates)
        malformed = [i for i in range(n) if i not in starts]
    if not candidates:
        return out, malformed
    try:  # one C call for the whole batch when every line is well-formed
        parsed = orjson.loads(json_array([lines[i] for i in candidates]))
        if len(parsed) != len(candidates) or not all(isinstance(o, dict) for o in parsed):
            raise ValueError("not one object per line")
        for i, obj in zip(candidates, parsed, strict=True):
            out[i] = obj
        return out, malformed
    except (orjson.JSONDecodeError, ValueError):
        pass
    for i in candidates:
        try:
            obj = orjson.loads(lines[i])
        except orjson.JSONDecodeError:
            obj = None
        if isinstance(obj, dict):
            out[i] = obj
        else:
            malformed.append(i)
    malformed.sort()
    return out, malformed


def parse_json(lines: list[bytes], opts: ParseOptions, read_ns: int) -> Parsed:
    objs, malformed = parse_objects(lines, "json")
    return from_fields(objs, opts, read_ns, malformed, not opts.fast_json_timestamps)


def objects_of(lines: list[bytes], fmt: str) -> tuple[list[dict[str, Any] | None], list[int]]:
    """Fields per line for ``json`` or ``auto`` (JSON objects, and logfmt pairs with
    ``auto``), and the malformed lines: :func:`parse_auto` without the level, message and
    time columns."""
    objs, malformed = parse_objects(lines, fmt)
    if fmt == "auto":
        _logfmt_lines(lines, objs)
    return objs, malformed


def _logfmt_lines(lines: list[bytes], objs: list[dict[str, Any] | None]) -> None:
    """``auto``: lines that are not JSON objects but tokenize as logfmt get its pairs."""
    rest = list(
        itertools.compress(range(len(objs)), map(operator.is_, objs, itertools.repeat(None)))
    )
    if not rest:
        return
    from logship.parsing import logfmt

    looks = logfmt.LOOKS_LIKE_LOGFMT.match
    for i in rest:
        if looks(text := lines[i].decode("utf-8", "replace")):
            objs[i] = logfmt.parse_line(text)


def parse_auto(lines: list[bytes], opts: ParseOptions, read_ns: int) -> Parsed:
    """JSON objects, logfmt lines and raw lines, told apart line by line.

    A line starting with ``{`` is JSON (malformed if it does not parse); one starting
    with ``key=`` is logfmt if it tokenizes as such (else raw, not malformed: it was a
    guess); anything else is raw.
    """
    objs, malformed = parse_objects(lines, "auto")
    _logfmt_lines(lines, objs)
    return from_fields(objs, opts, read_ns, malformed, not opts.fast_json_timestamps)
