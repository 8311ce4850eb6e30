"""Syslog lines, RFC 5424 and RFC 3164 (BSD), with facility and severity decoded.

One compiled expression per line and per dialect; timestamps convert once per
distinct text in a batch (a batch of syslog lines shares a handful of seconds).

- RFC 5424: ``<PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD...] MSG``. Structured
  data is kept as ``fields["structured_data"] = {sd_id: {param: value}}``.
- RFC 3164: ``<PRI>Mmm dd hh:mm:ss HOST TAG[PID]: MSG``, as found on the wire and in
  files written by syslog daemons; ``<PRI>`` and the host are optional (files
  written by rsyslog have no ``<PRI>``; local ``/dev/log`` messages have no host), and
  an RFC 3339 time in place of ``Mmm dd hh:mm:ss`` (rsyslog's high-precision
  file format) is accepted. Its time has no year and no zone: the zone is the
  source's ``timestamp.timezone`` (UTC by default) and the year is inferred from
  the read time (:func:`logship.parsing.timevalues.infer_year`: December lines read
  in January belong to last year).

The severity name (``emerg`` … ``debug``) is the level word, so it normalizes
through the level table (``crit`` → error, OpenTelemetry severity number 18).
Nil values (``-``) are left out of the fields.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from logship.parsing.options import ParseOptions
from logship.parsing.parsed import Parsed
from logship.parsing.timestamps import parse_text_timestamp
from logship.parsing.timevalues import infer_year

FACILITIES = (
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    *(f"local{i}" for i in range(8)),
)
SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")

_SD_ELEMENT = r'\[[^\s\]="]+(?: [^\s\]="]+="(?:[^"\\]|\\.)*")*\]'
_RFC5424 = re.compile(
    r"<(\d{1,3})>(\d{1,2}) (\S+) (\S+) (\S+) (\S+) (\S+) (-|(?:" + _SD_ELEMENT + r")+)(?: (.*))?",
    re.DOTALL,
)
_SD_ONE = re.compile(r'\[([^\s\]="]+)((?: [^\s\]="]+="(?:[^"\\]|\\.)*")*)\]')
_SD_PARAM = re.compile(r'([^\s\]="]+)="((?:[^"\\]|\\.)*)"')
_SD_ESCAPE = re.compile(r'\\([\\"\]])')
_RFC3164 = re.compile(
    r"(?:<(\d{1,3})>)?"
    r"([A-Z][a-z]{2} [ \d]?\d \d\d:\d\d:\d\d|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\S*)"
    r"(?: ([^\s\[:]+)(?= ))?"  # host: absent when the next word is the tag (followed by [ or :)
    r"(?: ([^\s\[:]+)(?:\[([^\]]*)\])?:)?"
    r" ?(.*)",
    re.DOTALL,
)
_MONTHS = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}


def _pri(text: str, fields: dict[str, Any]) -> str | None:
    """Decode ``<PRI>`` into fields; the severity name, or None when PRI is out of range."""
    pri = int(text)
    if pri > 191:
        return None
    fields["facility"] = FACILITIES[pri >> 3]
    severity = SEVERITIES[pri & 7]
    fields["severity"] = severity
    return severity


def _structured_data(sd: str) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for sd_id, params in _SD_ONE.findall(sd):
        out[sd_id] = {k: _SD_ESCAPE.sub(r"\1", v) for k, v in _SD_PARAM.findall(params)}
    return out


def _bsd_time(text: str, opts: ParseOptions, read_ns: int) -> int | None:
    tz = opts.timestamp.timezone
    if text[:1].isdigit():
        return parse_text_timestamp(text, tz)
    mon, day_text, clock = text.split()
    month = _MONTHS.get(mon)
    if month is None:
        return None
    day = int(day_text)
    h, mi, s = int(clock[:2]), int(clock[3:5]), int(clock[6:8])

    def make(year: int) -> datetime | None:
        try:
            return datetime(year, month, day, h, mi, s, tzinfo=tz)
        except ValueError:
            return None

    return infer_year(make, read_ns, tz)


def parse_syslog(lines: list[bytes], opts: ParseOptions, read_ns: int) -> Parsed:
    """Each line as RFC 5424, else RFC 3164; neither: kept raw and counted."""
    n = len(lines)
    parsed = Parsed([None] * n, [None] * n, [None] * n, [None] * n)
    fields_col, ts_col, levels, messages = (
        parsed.fields,
        parsed.timestamps,
        parsed.levels,
        parsed.messages,
    )
    assert ts_col is not None
    times: dict[str, int | None] = {}
    for i, line in enumerate(lines):
        text = line.decode("utf-8", "replace")
        fields: dict[str, Any] = {}
        m = _RFC5424.fullmatch(text)
        if m is not None:
            pri, version, ts, host, app, procid, msgid, sd, msg = m.groups()
            severity = _pri(pri, fields)
            if severity is None:
                parsed.malformed.append(i)
                continue
            fields["version"] = int(version)
            for key, value in (
                ("hostname", host),
                ("appname", app),
                ("procid", procid),
                ("msgid", msgid),
            ):
                if value != "-":
                    fields[key] = value
            if sd != "-":
                fields["structured_data"] = _structured_data(sd)
            if ts != "-":
                if ts not in times:
                    times[ts] = parse_text_timestamp(ts, opts.timestamp.timezone)
                ts_col[i] = times[ts]
            msg = msg or ""
            messages[i] = msg[1:] if msg[:1] == "\ufeff" else msg  # the BOM of a UTF-8 MSG
        else:
            m = _RFC3164.fullmatch(text)
            if m is None:
                parsed.malformed.append(i)
                continue
            pri, ts, host, app, procid, msg = m.groups()
            severity = None
            if pri is not None:
                severity = _pri(pri, fields)
                if severity is None:
                    parsed.malformed.append(i)
                    continue
            if host:
                fields["hostname"] = host
            if app:
                fields["appname"] = app
            if procid:
                fields["procid"] = procid
            if ts not in times:
                times[ts] = _bsd_time(ts, opts, read_ns)
            ts_col[i] = times[ts]
            messages[i] = msg
        levels[i] = severity
        fields_col[i] = fields
    return parsed
