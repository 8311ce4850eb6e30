"""logfmt (``ts=... level=info msg="hello world" user=42``): one ``re.findall`` per line.

The tokenizer is one regular expression: a key, optionally ``=`` and a value
(double-quoted with backslash escapes, or bare up to the next space), or else a
junk token. The regex engine does the character loop in C; Python only builds
the dict. Rules, following go-logfmt where it is strict and Vector where it is
lenient:

- values are strings (logfmt has no types); a key without ``=`` is a flag, ``True``;
- a bare value may contain ``=`` (``url=/a?b=c``); ``key=`` is an empty string;
- a line is malformed (kept raw, counted) when it has no ``key=value`` pair at
  all, or a token that is neither (an unterminated quote, ``=value``).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from logship.parsing.options import ParseOptions
from logship.parsing.parsed import Parsed, from_fields

_TOKEN = re.compile(r'([^\s="]+)(=(?:"(?:[^"\\]|\\.)*"|[^\s"]\S*|))?(?=\s|$)|(\S+)')
# What ``auto`` takes for logfmt: the line starts with an identifier-like key and ``=``.
LOOKS_LIKE_LOGFMT = re.compile(r"[ \t]*[A-Za-z_@][\w.@/-]*=")


def _unquote(quoted: str) -> str:
    inner = quoted[1:-1]
    if "\\" not in inner:
        return inner
    try:
        value = orjson.loads(quoted)  # JSON string escapes: \" \\ \n \t \uXXXX
    except orjson.JSONDecodeError:
        return inner.replace('\\"', '"').replace("\\\\", "\\")
    return value if isinstance(value, str) else inner


def parse_line(text: str) -> dict[str, Any] | None:
    """The fields of one logfmt line, or None when it is not logfmt."""
    tokens: list[tuple[str, str, str]] = _TOKEN.findall(text)
    out: dict[str, Any] = {}
    pairs = False
    for key, eq, junk in tokens:
        if junk:
            return None
        if not eq:
            out[key] = True
            continue
        pairs = True
        value = eq[1:]
        out[key] = _unquote(value) if value[:1] == '"' else value
    return out if pairs else None


def parse_logfmt(lines: list[bytes], opts: ParseOptions, read_ns: int) -> Parsed:
    """Every line as logfmt; lines that are not are kept raw and counted."""
    objs: list[dict[str, Any] | None] = [
        parse_line(line.decode("utf-8", "replace")) for line in lines
    ]
    malformed = [i for i, o in enumerate(objs) if o is None]
    return from_fields(objs, opts, read_ns, malformed)
