"""``regex``: a user's pattern with named groups; each group that matched is a field.

The pattern is searched in each line (it need not match the whole line; anchor it
with ``^``/``$`` to insist). A line it does not match is kept raw and counted.
The timestamp, level and message come from the configured fields, or from groups
with the usual names (``time``/``ts``/``timestamp``, ``level``/``lvl``/``severity``,
``msg``/``message``).
"""

from __future__ import annotations

from typing import Any

from logship.parsing.options import ParseOptions
from logship.parsing.parsed import Parsed, from_fields


def parse_regex(lines: list[bytes], opts: ParseOptions, read_ns: int) -> Parsed:
    """Every line searched with ``opts.regex``; without a pattern every line is malformed."""
    pattern = opts.regex
    if pattern is None:
        return Parsed.raw(len(lines), list(range(len(lines))))
    search = pattern.search
    objs: list[dict[str, Any] | None] = []
    malformed: list[int] = []
    for i, line in enumerate(lines):
        m = search(line.decode("utf-8", "replace"))
        if m is None:
            malformed.append(i)
            objs.append(None)
        else:
            objs.append({k: v for k, v in m.groupdict().items() if v is not None})
    return from_fields(objs, opts, read_ns, malformed)
