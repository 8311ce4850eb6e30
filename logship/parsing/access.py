"""Web server access logs: the NCSA *common* and *combined* formats of nginx and Apache.

``client ident user [29/Nov/2026:10:00:00 +0000] "GET /path HTTP/1.1" status size``
and, for combined, ``"referer" "user agent"``. nginx's default ``combined``
log_format and Apache's ``%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"``
write the same layout, so ``nginx`` and ``apache`` share this parser. Anything
after the combined fields (nginx formats often append ``"$http_x_forwarded_for"``
or request times) is kept as one ``extra`` field.

Fields: ``client``, ``ident``, ``user``, ``request``, ``method``, ``path``,
``protocol``, ``status`` (int), ``size`` (int), ``referer``, ``agent``, ``extra``;
``-`` (no value) is left out. The request is split only when it looks like one
(a TLS handshake sent to a plain-HTTP port is logged as binary junk). The
message is the whole line and there is no level: access logs have none.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

from logship.parsing.options import ParseOptions
from logship.parsing.parsed import Parsed

_QUOTED = r'"((?:[^"\\]|\\.)*)"'
_LINE = re.compile(
    r"(\S+) (\S+) (\S+) \[([^\]]+)\] "
    + _QUOTED
    + r" (\d{3}) (\d+|-)(?: "
    + _QUOTED
    + " "
    + _QUOTED
    + r")?(?: (.*))?",
    re.DOTALL,
)
_REQUEST = re.compile(r"([A-Z][A-Z_-]*) (\S+)(?: (\S+))?")
_TIME = re.compile(r"(\d\d)/([A-Z][a-z]{2})/(\d{4}):(\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)")
_MONTHS = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
_NS = 1_000_000_000


def _time_ns(text: str) -> int | None:
    """``29/Nov/2026:10:00:00 +0100`` (strftime ``%d/%b/%Y:%H:%M:%S %z``) to epoch ns."""
    m = _TIME.fullmatch(text)
    if m is None:
        return None
    d, mon, y, h, mi, s, sign, oh, om = m.groups()
    month = _MONTHS.get(mon)
    if month is None:
        return None
    offset = timedelta(hours=int(oh), minutes=int(om))
    try:
        tz = timezone(-offset if sign == "-" else offset)
        dt = datetime(int(y), month, int(d), int(h), int(mi), int(s), tzinfo=tz)
        return int(dt.timestamp()) * _NS
    except (ValueError, OverflowError):
        return None


def parse_access(lines: list[bytes], opts: ParseOptions, read_ns: int) -> Parsed:
    """Each line as a common or combined access log line; others kept raw and counted."""
    n = len(lines)
    parsed = Parsed([None] * n, [None] * n, [None] * n, [None] * n)
    fields_col, ts_col = parsed.fields, parsed.timestamps
    assert ts_col is not None
    times: dict[str, int | None] = {}
    for i, line in enumerate(lines):
        m = _LINE.fullmatch(line.decode("utf-8", "replace"))
        if m is None:
            parsed.malformed.append(i)
            continue
        client, ident, user, ts, request, status, size, referer, agent, extra = m.groups()
        fields: dict[str, Any] = {"client": client}
        if ident != "-":
            fields["ident"] = ident
        if user != "-":
            fields["user"] = user
        fields["request"] = request
        r = _REQUEST.fullmatch(request)
        if r is not None:
            fields["method"], fields["path"] = r.group(1), r.group(2)
            if r.group(3):
                fields["protocol"] = r.group(3)
        fields["status"] = int(status)
        if size != "-":
            fields["size"] = int(size)
        if referer is not None and referer != "-":
            fields["referer"] = referer
        if agent is not None and agent != "-":
            fields["agent"] = agent
        if extra:
            fields["extra"] = extra
        if ts not in times:
            times[ts] = _time_ns(ts)
        ts_col[i] = times[ts]
        fields_col[i] = fields
    return parsed
