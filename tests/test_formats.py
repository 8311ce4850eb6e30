"""Each format's parser, the timestamp options, level normalization and the source config."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from logship.config import ConfigError, build_config
from logship.parsing.access import parse_access
from logship.parsing.batch import Batch, SourceInfo
from logship.parsing.formats import FORMATS, parse_lines
from logship.parsing.levels import detect_levels, normalize_level, severity_number
from logship.parsing.logfmt import parse_line, parse_logfmt
from logship.parsing.options import ParseOptions, TimestampRule, zone
from logship.parsing.regex import parse_regex
from logship.parsing.syslog import parse_syslog

NS = 1_000_000_000
READ_NS = 1_767_614_400 * NS  # 2026-01-05T12:00:00Z


def utc_ns(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp()) * NS  # type: ignore[misc]


def records(
    lines: list[bytes], fmt: str, opts: ParseOptions | None = None, read_ns: int = READ_NS
) -> list[dict[str, Any]]:
    info = SourceInfo("app", "/logs/x.log", fmt, {}, options=opts or ParseOptions())
    return Batch(info, lines, 0, sum(len(x) + 1 for x in lines), read_ns).records()


def ts_of(lines: list[bytes], fmt: str, opts: ParseOptions | None = None) -> list[int]:
    info = SourceInfo("app", "/logs/x.log", fmt, {}, options=opts or ParseOptions())
    return Batch(info, lines, 0, sum(len(x) + 1 for x in lines), READ_NS).timestamps().ns()


# ---- never raises -------------------------------------------------------------------------

ARBITRARY_LINES = st.lists(st.binary(max_size=300), max_size=12)
REGEX_OPTS = ParseOptions(regex=re.compile(r"(?P<a>\w+)=(?P<level>\w*)"))


@pytest.mark.parametrize(
    "parser", [parse_logfmt, parse_syslog, parse_access, parse_regex], ids=lambda p: p.__name__
)
@given(lines=ARBITRARY_LINES)
def test_parser_never_raises_on_arbitrary_bytes(parser: Any, lines: list[bytes]) -> None:
    p = parser(lines, REGEX_OPTS, READ_NS)
    assert len(p.fields) == len(p.levels) == len(p.messages) == len(lines)
    assert p.timestamps is not None and len(p.timestamps) == len(lines)
    assert all(p.fields[i] is None for i in p.malformed)


@pytest.mark.parametrize("fmt", FORMATS)
@given(lines=ARBITRARY_LINES)
def test_records_and_timestamps_never_raise_for_any_format(fmt: str, lines: list[bytes]) -> None:
    opts = ParseOptions(regex=REGEX_OPTS.regex, timestamp=TimestampRule("a", "%d/%m/%Y"))
    recs = records(lines, fmt, opts)
    assert len(recs) == len(lines)
    orjson.dumps(recs)  # what the stdout sink does with them


@given(
    st.one_of(st.text(max_size=40), st.integers(), st.floats(allow_nan=True), st.booleans()),
    st.sampled_from(["auto", "rfc3339", "epoch_s", "epoch_ms", "epoch_us", "epoch_ns", "%Y %j"]),
)
def test_timestamp_rule_never_raises(value: object, fmt: str) -> None:
    ns = TimestampRule(None, fmt, zone("Europe/Berlin")).to_ns(value, READ_NS)
    assert ns is None or isinstance(ns, int)


# ---- logfmt -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "fields"),
    [
        ('a=1 b="two words" c=', {"a": "1", "b": "two words", "c": ""}),
        (r'msg="say \"hi\"\n" path=C:\\x', {"msg": 'say "hi"\n', "path": r"C:\\x"}),
        ("url=/q?a=b&c=d flag", {"url": "/q?a=b&c=d", "flag": True}),
        ("  spaced=1\t\ttabs=2  ", {"spaced": "1", "tabs": "2"}),
        ("k=1 k=2", {"k": "2"}),
        ('m="ünïcode ✓"', {"m": "ünïcode ✓"}),
    ],
)
def test_logfmt_fields(line: str, fields: dict[str, Any]) -> None:
    assert parse_line(line) == fields


@pytest.mark.parametrize("line", ["", "just words", 'a="open', "=v", 'a=1 "x"', "a=1 =2"])
def test_logfmt_malformed(line: str) -> None:
    assert parse_line(line) is None


# ---- syslog -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("severity", "word", "level", "number"),
    [
        (0, "emerg", "fatal", 21),
        (1, "alert", "fatal", 19),
        (2, "crit", "error", 18),
        (3, "err", "error", 17),
        (4, "warning", "warn", 13),
        (5, "notice", "notice", 10),
        (6, "info", "info", 9),
        (7, "debug", "debug", 5),
    ],
)
def test_syslog_severity_to_level_and_otel_number(
    severity: int, word: str, level: str, number: int
) -> None:
    pri = 23 * 8 + severity  # local7
    for line in (
        b"<%d>1 2026-01-05T11:00:00Z h a - - - m" % pri,
        b"<%d>Jan  5 11:00:00 h a: m" % pri,
    ):
        (rec,) = records([line], "syslog")
        assert rec["fields"]["facility"] == "local7"
        assert rec["fields"]["severity"] == word
        assert (rec["level"], rec["severity_number"]) == (level, number)


@pytest.mark.parametrize(
    ("read", "line_time", "expected"),
    [
        ((2026, 1, 1, 0, 0, 5), "Dec 31 23:59:58", (2025, 12, 31, 23, 59, 58)),  # last year
        ((2025, 12, 31, 23, 59, 59), "Jan  1 00:00:01", (2026, 1, 1, 0, 0, 1)),  # clock ahead
        ((2026, 6, 1, 0, 0, 0), "Jun  1 00:00:00", (2026, 6, 1, 0, 0, 0)),
        ((2026, 6, 1, 0, 0, 0), "Jul  1 00:00:00", (2025, 7, 1, 0, 0, 0)),  # an old file
        ((2028, 3, 1, 0, 0, 0), "Feb 29 12:00:00", (2028, 2, 29, 12, 0, 0)),  # leap year
        ((2027, 3, 1, 0, 0, 0), "Feb 29 12:00:00", (2027, 3, 1, 0, 0, 0)),  # none: read time
    ],
)
def test_rfc3164_year_inference(
    read: tuple[int, ...], line_time: str, expected: tuple[int, ...]
) -> None:
    read_ns = utc_ns(*read)
    line = f"<13>{line_time} host app: x".encode()
    (rec,) = records([line], "syslog", read_ns=read_ns)
    assert rec["timestamp"] == datetime(*expected, tzinfo=UTC).strftime(  # type: ignore[misc]
        "%Y-%m-%dT%H:%M:%S.000000000Z"
    )


def test_rfc3164_time_in_the_configured_zone() -> None:
    opts = ParseOptions(timestamp=TimestampRule(timezone=zone("America/New_York")))
    lines = [b"<13>Jan  5 06:00:00 h a: winter", b"<13>Jul  5 06:00:00 h a: summer (DST)"]
    assert ts_of(lines, "syslog", opts) == [utc_ns(2026, 1, 5, 11), utc_ns(2025, 7, 5, 10)]


def test_rfc3164_tag_and_host_variants() -> None:
    p = parse_syslog(
        [
            b"Jan  5 11:00:00 host app[12]: with host",
            b"Jan  5 11:00:00 app[12]: no host",
            b"Jan  5 11:00:00 app: no host, no pid",
            b"Jan 5 11:00:00 host kernel: one-digit day",
        ],
        ParseOptions(),
        READ_NS,
    )
    assert p.fields == [
        {"hostname": "host", "appname": "app", "procid": "12"},
        {"appname": "app", "procid": "12"},
        {"appname": "app"},
        {"hostname": "host", "appname": "kernel"},
    ]
    assert p.messages == ["with host", "no host", "no host, no pid", "one-digit day"]
    assert p.timestamps == [utc_ns(2026, 1, 5, 11)] * 4


def test_rfc5424_nil_timestamp_uses_read_time_and_keeps_observed() -> None:
    (rec,) = records([b"<14>1 - h app - - - no time"], "syslog")
    assert rec["timestamp"] == rec["observed_timestamp"] == "2026-01-05T12:00:00.000000000Z"


# ---- access logs --------------------------------------------------------------------------


def test_access_log_timezone_offset_and_combined_fields() -> None:
    line = (
        b'10.1.2.3 - bob [05/Jan/2026:07:00:00 -0500] "PUT /a/b?c=1 HTTP/1.1" 500 0 '
        b'"https://ref/" "agent/1.0"'
    )
    for fmt in ("nginx", "apache"):
        (rec,) = records([line], fmt)
        assert rec["timestamp"] == "2026-01-05T12:00:00.000000000Z"
        f = rec["fields"]
        assert (f["method"], f["path"], f["protocol"]) == ("PUT", "/a/b?c=1", "HTTP/1.1")
        assert (f["status"], f["size"], f["user"]) == (500, 0, "bob")
        assert (f["referer"], f["agent"]) == ("https://ref/", "agent/1.0")
        assert "malformed" not in rec


@pytest.mark.parametrize(
    "line",
    [
        b'1.2.3.4 - - [05/Jan/2026:07:00:00 -0500] "GET / HTTP/1.1" 2000 1',  # status
        b'1.2.3.4 - - [05/Jan/2026:07:00:00 -0500] "GET / HTTP/1.1 200 1',  # quote
        b'1.2.3.4 - - 05/Jan/2026:07:00:00 -0500 "GET /" 200 1',  # brackets
    ],
)
def test_access_log_malformed(line: bytes) -> None:
    p = parse_access([line], ParseOptions(), READ_NS)
    assert p.malformed == [0] and p.fields == [None]


def test_access_log_unreadable_time_falls_back_to_read_time() -> None:
    (rec,) = records([b'1.2.3.4 - - [yesterday] "GET / HTTP/1.1" 200 1'], "nginx")
    assert rec["timestamp"] == "2026-01-05T12:00:00.000000000Z"
    assert rec["fields"]["status"] == 200


# ---- regex --------------------------------------------------------------------------------


def test_regex_groups_fields_and_configured_names() -> None:
    opts = ParseOptions(
        regex=re.compile(r"^(?P<when>\d+) (?P<sev>\w+) (?P<text>.*?)(?: id=(?P<id>\d+))?$"),
        timestamp=TimestampRule("when", "epoch_ms"),
        level_field="sev",
        message_field="text",
    )
    recs = records(
        [b"1767614398250 crit disk full id=7", b"1767614398251 info ok", b"nope"], "regex", opts
    )
    assert recs[0]["fields"] == {
        "when": "1767614398250",
        "sev": "crit",
        "text": "disk full",
        "id": "7",
    }
    assert recs[0]["timestamp"] == "2026-01-05T11:59:58.250000000Z"
    assert (recs[0]["level"], recs[0]["severity_number"], recs[0]["message"]) == (
        "error",
        18,
        "disk full",
    )
    assert "id" not in recs[1]["fields"]  # a group that did not take part is not a field
    assert recs[2]["malformed"] is True and recs[2]["message"] == "nope"


# ---- timestamps ---------------------------------------------------------------------------

T = utc_ns(2026, 1, 5, 11, 59, 58)


@pytest.mark.parametrize(
    ("fmt", "value", "expected"),
    [
        ("epoch_s", 1767614398, T),
        ("epoch_s", "1767614398.5", T + NS // 2),
        ("epoch_s", 1767614398.25, T + NS // 4),
        ("epoch_ms", 1767614398250, T + 250_000_000),
        ("epoch_ms", "1767614398250.5", T + 250_500_000),
        ("epoch_us", 1767614398250001, T + 250_001_000),
        ("epoch_us", "1767614398250001", T + 250_001_000),
        ("epoch_ns", 1767614398250000001, T + 250_000_001),
        ("epoch_ns", "1767614398250000001", T + 250_000_001),
        ("auto", "1767614398250", T + 250_000_000),  # digits sized like numbers
        ("auto", "2026-01-05T11:59:58.000000001Z", T + 1),
        ("rfc3339", "2026-01-05T12:59:58+01:00", T),
        ("rfc3339", 1767614398, None),  # a number is not RFC 3339
        ("epoch_ms", "soon", None),
        ("%d/%m/%Y %H:%M:%S", "05/01/2026 11:59:58", T),
        ("%d/%m/%Y %H:%M:%S %z", "05/01/2026 12:59:58 +0100", T),
        ("%Y-%m-%d %H:%M:%S.%f", "2026-01-05 11:59:58.123456", T + 123_456_000),
        ("%b %d %H:%M:%S", "Jan 05 11:59:58", T),  # no year: inferred like RFC 3164
        ("%d/%m/%Y", "31/02/2026", None),
    ],
)
def test_timestamp_formats(fmt: str, value: object, expected: int | None) -> None:
    assert TimestampRule(None, fmt).to_ns(value, READ_NS) == expected


def test_timezone_applies_to_times_without_offset_only() -> None:
    rule = TimestampRule(None, "auto", zone("Europe/Berlin"))
    assert rule.to_ns("2026-01-05T12:59:58", READ_NS) == T
    assert rule.to_ns("2026-07-05T13:59:58", READ_NS) == utc_ns(2026, 7, 5, 11, 59, 58)  # CEST
    assert rule.to_ns("2026-01-05T11:59:58Z", READ_NS) == T
    strp = TimestampRule(None, "%Y-%m-%d %H:%M:%S", zone("Asia/Tokyo"))
    assert strp.to_ns("2026-01-05 20:59:58", READ_NS) == T


def test_json_timestamp_field_nested_and_unit() -> None:
    opts = ParseOptions(timestamp=TimestampRule("meta.at", "epoch_s"))
    lines = [b'{"meta":{"at":1767614398},"ts":"2020-01-01T00:00:00Z"}', b'{"ts":1}']
    assert ts_of(lines, "json", opts) == [T, READ_NS]


def test_fallback_to_read_time_keeps_observed_time() -> None:
    for fmt, line in (("logfmt", b"level=info msg=x"), ("json", b'{"msg":"x"}'), ("raw", b"x")):
        (rec,) = records([line], fmt)
        assert rec["timestamp"] == rec["observed_timestamp"] == "2026-01-05T12:00:00.000000000Z"
    (rec,) = records([b"ts=2026-01-05T11:59:58Z"], "logfmt")
    assert rec["timestamp"] == "2026-01-05T11:59:58.000000000Z"
    assert rec["observed_timestamp"] == "2026-01-05T12:00:00.000000000Z"


def test_auto_reads_logfmt_timestamps_beside_json() -> None:
    lines = [b'{"ts":"2026-01-05T11:59:58Z"}', b"ts=1767614399 level=info", b"raw words"]
    assert ts_of(lines, "auto") == [T, T + NS, READ_NS]
    recs = records(lines, "auto")
    assert recs[1]["fields"] == {"ts": "1767614399", "level": "info"}
    assert not any(r.get("malformed") for r in recs)


def test_malformed_lines_are_counted_per_format() -> None:
    lines = [b"level=info msg=ok", b"not logfmt"]
    p = parse_lines(lines, "logfmt", ParseOptions(), READ_NS)
    assert p.malformed == [1]
    assert parse_lines(lines, "raw", ParseOptions(), READ_NS).malformed == []
    assert parse_lines(lines, "json", ParseOptions(), READ_NS).malformed == [0, 1]


# ---- levels -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("words", "level", "number"),
    [
        (("trace", "finest"), "trace", 1),
        (("debug", "finer", "verbose"), "debug", 5),
        (("fine",), "debug", 6),
        (("config",), "debug", 7),
        (("info", "information", "informational"), "info", 9),
        (("notice",), "notice", 10),
        (("warn", "warning"), "warn", 13),
        (("error", "err", "severe"), "error", 17),
        (("critical", "crit", "dpanic"), "error", 18),
        (("alert", "panic"), "fatal", 19),
        (("fatal", "emerg", "emergency"), "fatal", 21),
    ],
)
def test_otel_severity_numbers_of_protocols_c7(
    words: tuple[str, ...], level: str, number: int
) -> None:
    for w in words:
        for written in (w, w.upper(), w.capitalize()):
            assert (normalize_level(written), severity_number(written)) == (level, number)


def test_unknown_or_empty_level_is_unspecified() -> None:
    assert (normalize_level("chatty"), severity_number("chatty")) == ("chatty", 0)
    assert (normalize_level(""), severity_number("")) == (None, 0)
    assert (normalize_level(None), severity_number(None)) == (None, 0)


@pytest.mark.parametrize(
    ("line", "word"),
    [
        (b"2026-01-05 12:00:00 ERROR db: down", "ERROR"),
        (b"W0105 12:00:00.000000 1 x.go:1] slow", "warn"),
        (b"F0105 12:00:00.000000 1 x.go:1] dead", "fatal"),
        (b"[Info] started", "Info"),
        (b"<3>[crit] disk", "crit"),
        (b"WARNING:root:careful", "WARNING"),
        (b"[2026-01-05 12:00:00] production.ERROR: boom", "ERROR"),
        (b"app lvl=debug x", "debug"),
        (b"INFO then ERROR", "INFO"),  # leftmost wins
        (b"an error in prose", None),
        (b"INFORMATION is not INFO-rmation", "INFO"),
        (b"ERRORS", None),
        (b"XERROR_Y ERROR", "ERROR"),  # a word boundary on both sides
        (b"mylevel=debug level=warn", "warn"),
        (b"E0105 x [error]", "error"),  # not a glog prefix: the bracketed word
        (b"x" * 300 + b" ERROR", None),  # past the scanned prefix
        (b"", None),
    ],
)
def test_plain_text_level_detection(line: bytes, word: str | None) -> None:
    assert detect_levels([line]) == [word]


def test_level_detection_only_for_lines_kept_raw() -> None:
    recs = records([b'{"msg":"ERROR in message"}', b"ERROR raw"], "auto")
    assert [r["level"] for r in recs] == [None, "error"]


# ---- config -------------------------------------------------------------------------------


def source_config(**source: Any) -> Any:
    data = {
        "sources": {"app": {"include": ["x.log"], **source}},
        "sinks": {"o": {"type": "stdout"}},
    }
    return build_config(data, "inline")


@pytest.mark.parametrize(
    ("source", "field", "words"),
    [
        ({"format": "regex"}, "sources.app", "no `regex` pattern"),
        ({"format": "regex", "regex": "(unclosed"}, "sources.app.regex", "does not compile"),
        ({"format": "regex", "regex": r"\d+"}, "sources.app.regex", "no named groups"),
        ({"format": "json", "regex": "(?P<a>.)"}, "sources.app", "format is 'json'"),
        ({"format": "csv"}, "sources.app.format", "logfmt"),
        ({"timestamp": {"timezone": "Mars/Olympus"}}, "sources.app.timestamp.timezone", "Mars"),
        ({"timestamp": {"format": "epoch_days"}}, "sources.app.timestamp.format", "strptime"),
        ({"timestamp": {"format": "%Q"}}, "sources.app.timestamp.format", "does not work"),
        ({"timestamp": {"feld": "t"}}, "sources.app.timestamp.feld", "unknown field"),
    ],
)
def test_source_config_errors_name_the_field(
    source: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(ConfigError) as e:
        source_config(**source)
    assert f"{field}: " in str(e.value) and words in str(e.value)


def test_source_config_options_reach_the_parser() -> None:
    from logship.parsing.options import options_of

    cfg = source_config(
        format="regex",
        regex=r"(?P<t>\S+) (?P<m>.*)",
        timestamp={"field": "t", "format": "%H:%M", "timezone": "Europe/Berlin"},
        level_field="lv",
        message_field="m",
    )
    opts = options_of(cfg.sources["app"])
    assert opts.regex is not None and opts.regex.pattern == r"(?P<t>\S+) (?P<m>.*)"
    assert (opts.timestamp.field, opts.timestamp.format) == ("t", "%H:%M")
    assert str(opts.timestamp.timezone) == "Europe/Berlin"
    assert (opts.level_field, opts.message_field) == ("lv", "m")
    default = options_of(source_config().sources["app"])
    assert default.timestamp.is_default and default.regex is None


@given(
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1)),
    st.sampled_from(["T", " ", "t"]),
    st.sampled_from(["", ".5", ".123", ",250", ".123456789"]),
    st.sampled_from(["", "Z", "z", "+01:00", "-0530", "+00:00"]),
    st.sampled_from(["UTC", "Europe/Berlin"]),
)
def test_rfc3339_column_matches_the_one_value_parse(
    dt: datetime, sep: str, frac: str, tz: str, default_zone: str
) -> None:
    text = dt.strftime(f"%Y-%m-%d{sep}%H:%M:%S") + frac + tz
    rule = TimestampRule(None, "rfc3339", zone(default_zone))
    expected = rule.to_ns(text, READ_NS)
    assert expected is not None
    assert rule.column([text, text, None], READ_NS) == [expected, expected, None]


def test_malformed_counted_once_also_when_only_timestamps_are_needed() -> None:
    from logship.telemetry import Telemetry

    t = Telemetry()
    info = SourceInfo("app", "/logs/x.log", "syslog", {})
    b = Batch(info, [b"<13>Jan  5 11:00:00 h a: ok", b"not syslog", b""], 0, 40, READ_NS, t)
    b.timestamps()  # what the Loki sink asks for
    assert t.sources["app"].malformed == 2
    b.records()  # what the stdout sink asks for
    assert t.sources["app"].malformed == 2


def test_split_halves_keep_the_parse_and_count_nothing_twice() -> None:
    from logship.telemetry import Telemetry

    t = Telemetry()
    lines = [b"a=1", b"bad", b"b=2", b"worse", b"c=3"]
    b = Batch(SourceInfo("app", "/x", "logfmt", {}), lines, 0, 30, READ_NS, t)
    whole = b.records()
    left, right = b.split()
    b2 = Batch(SourceInfo("app", "/x", "logfmt", {}), lines, 0, 30, READ_NS)
    b2.timestamps()
    l2, r2 = b2.split()
    assert [r["message"] for r in l2.records() + r2.records()] == [r["message"] for r in whole]
    assert [r.get("malformed", False) for r in l2.records() + r2.records()] == [
        False, True, False, True, False,
    ]  # fmt: skip
    assert left.parsed().malformed == [1] and right.parsed().malformed == [1]
    assert t.sources["app"].malformed == 2


def test_the_cli_offers_every_format() -> None:
    from logship.cli import FORMAT_NAMES
    from logship.parsing.formats import FORMATS

    assert sorted(FORMAT_NAMES) == sorted(FORMATS)
