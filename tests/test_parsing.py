"""Timestamps, levels and normalized records from lists of lines."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from logship.parsing.batch import Batch, SourceInfo
from logship.parsing.formats import timestamp_column
from logship.parsing.levels import normalize_level, severity_number
from logship.parsing.timestamps import format_rfc3339, parse_text_timestamp

READ_NS = 1_800_000_000_123_456_789


def ns_of(text: str) -> int:
    dt = datetime.fromisoformat(text)
    return int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b'{"ts":"2026-11-28T12:00:00.123Z","msg":"x"}', ns_of("2026-11-28T12:00:00.123+00:00")),
        (b'{"level":"info","time":"2026-11-28T12:00:01Z"}', ns_of("2026-11-28T12:00:01+00:00")),
        (
            b'{"a":{"b":1},"@timestamp":"2026-11-28T14:00:00.5+02:00"}',
            ns_of("2026-11-28T12:00:00.500+00:00"),
        ),
        (b'{"timestamp":"2026-11-28 12:00:00.000000001"}', ns_of("2026-11-28T12:00:00+00:00") + 1),
        (b'{"ts":1764331200.25}', 1_764_331_200_250_000_000),  # epoch seconds (zap)
        (b'{"time":1764331200250}', 1_764_331_200_250_000_000),  # epoch ms (pino)
        (b'{"ts":"yesterday"}', READ_NS),  # unreadable: read time
        (b'{"ts":"2026-13-45T00:00:00Z"}', READ_NS),  # not a date: read time
        (b"plain text 2026-11-28T12:00:00Z", READ_NS),
        (b'{"broken json', READ_NS),
        (b"", READ_NS),
    ],
)
def test_timestamp_of_each_kind(line: bytes, expected: int) -> None:
    col = timestamp_column([line], "auto", READ_NS)
    assert col.ns() == [expected]


def test_timestamp_column_keeps_line_order_in_mixed_batch() -> None:
    lines = [
        b'{"ts":"2026-11-28T12:00:00.001Z"}',
        b"raw",
        b'{"ts":"2026-11-28T12:00:00.002Z"}',
        b'{"ts":1764331200}',
    ]
    ns = timestamp_column(lines, "auto", READ_NS).ns()
    base = ns_of("2026-11-28T12:00:00+00:00")
    assert ns == [base + 1_000_000, READ_NS, base + 2_000_000, 1_764_331_200_000_000_000]


def test_raw_format_uses_read_time() -> None:
    col = timestamp_column([b'{"ts":"2026-11-28T12:00:00Z"}'], "raw", READ_NS)
    assert col.ns() == [READ_NS]


@given(st.lists(st.binary(max_size=200).map(lambda b: b.replace(b"\n", b" ")), max_size=20))
def test_timestamp_column_never_raises(lines: list[bytes]) -> None:
    col = timestamp_column(lines, "auto", READ_NS)
    assert len(col.ns()) == len(lines)


def test_parse_text_timestamp_keeps_nanoseconds() -> None:
    assert parse_text_timestamp("2026-11-28T12:00:00.123456789Z") == (
        ns_of("2026-11-28T12:00:00+00:00") + 123_456_789
    )
    assert parse_text_timestamp("nonsense") is None


def test_format_rfc3339() -> None:
    assert format_rfc3339(1_764_331_200_000_000_001) == "2025-11-28T12:00:00.000000001Z"


@pytest.mark.parametrize(
    ("word", "level", "number"),
    [
        ("INFO", "info", 9),
        ("Warning", "warn", 13),
        ("err", "error", 17),
        ("panic", "fatal", 19),
        ("emerg", "fatal", 21),
        ("trace", "trace", 1),
        ("custom", "custom", 0),
    ],
)
def test_levels(word: str, level: str, number: int) -> None:
    assert normalize_level(word) == level
    assert severity_number(word) == number


def make_batch(lines: list[bytes], fmt: str = "auto") -> Batch:
    info = SourceInfo("app", "/var/log/app.log", fmt, {"team": "a"})
    end = 100 + sum(len(x) + 1 for x in lines)
    return Batch(info, lines, 100, end, READ_NS)


def test_normalized_record_shape() -> None:
    b = make_batch(
        [b'{"ts":"2026-11-28T12:00:00.5Z","level":"WARN","msg":"disk low","pct":91}', b"plain line"]
    )
    first, second = b.records()
    assert first["timestamp"] == "2026-11-28T12:00:00.500000000Z"
    assert first["level"] == "warn"
    assert first["message"] == "disk low"
    assert first["fields"]["pct"] == 91
    assert first["labels"] == {"team": "a"}
    assert first["source"] == {"path": "/var/log/app.log", "offset": 100}
    assert second["message"] == "plain line"
    assert second["source"]["offset"] == 100 + len(b.lines[0]) + 1
    assert second["level"] is None and "malformed" not in second


def test_malformed_json_kept_raw_and_counted() -> None:
    from logship.telemetry import Telemetry

    t = Telemetry()
    b = make_batch([b'{"ok":1}', b'{"cut short', b"[1,2]"], fmt="json")
    b.telemetry = t
    recs = b.records()
    assert [r.get("malformed", False) for r in recs] == [False, True, True]
    assert recs[1]["message"] == '{"cut short'
    assert t.sources["app"].malformed == 2


@given(
    st.lists(st.binary(max_size=100).map(lambda b: b.replace(b"\n", b"")), max_size=10),
    st.sampled_from(["auto", "json", "raw"]),
)
def test_records_never_raise_and_are_json(lines: list[bytes], fmt: str) -> None:
    recs = make_batch(lines, fmt).records()
    assert len(recs) == len(lines)
    for r in recs:
        orjson.dumps(r)


def test_split_keeps_offsets_and_timestamps() -> None:
    b = make_batch([b'{"ts":"2026-11-28T12:00:0%dZ"}' % i for i in range(5)])
    left, right = b.split()
    assert left.lines + right.lines == b.lines
    assert left.timestamps().ns() + right.timestamps().ns() == b.timestamps().ns()
    assert right.start_offset == b.line_offsets()[2] and right.end_offset == b.end_offset


def test_timestamps_are_utc_when_zone_missing() -> None:
    col = timestamp_column([b'{"ts":"2026-11-28T12:00:00"}'], "json", READ_NS)
    assert col.ns() == [int(datetime(2026, 11, 28, 12, tzinfo=UTC).timestamp()) * 10**9]


def test_same_layout_batch_with_a_broken_value_in_the_middle() -> None:
    good = b'{"ts":"2026-11-28T12:00:00.123Z","m":1}'
    lines = [
        good,
        b'{"ts":"2026-11-28T12:00:00.1x3Z","m":1}',  # same width, not a fraction
        b'{"ts":"2026-99-28T12:00:00.123Z","m":1}',  # same width, not a date
        b'{"ts":"2026-11-28T14:00:00.123+02:00"}',  # another width, another zone
        good,
    ]
    ns = timestamp_column(lines, "json", READ_NS).ns()
    want = ns_of("2026-11-28T12:00:00.123+00:00")
    assert ns == [want, READ_NS, READ_NS, want, want]


def test_same_layout_with_offset_zone() -> None:
    lines = [b'{"time":"2026-11-28T14:00:00.5+02:00"}'] * 3
    assert (
        timestamp_column(lines, "json", READ_NS).ns()
        == [ns_of("2026-11-28T12:00:00.500+00:00")] * 3
    )


@given(st.binary(max_size=3000).map(lambda b: b.replace(b"\r", b"\n")), st.integers(2, 300))
def test_long_line_precheck_never_misses_a_long_line(data: bytes, max_line: int) -> None:
    from logship.sources.tailer import _may_hold_long_line

    if max(map(len, data.split(b"\n"))) > max_line:
        assert _may_hold_long_line(data, max_line)


@pytest.mark.parametrize("fmt", ["auto", "json"])
def test_two_broken_lines_never_parse_as_one_batch(fmt: str) -> None:
    """Parsed together, `{"a":"` and `"},{"b":1}` would read as two valid objects."""
    from logship.parsing.jsonlines import parse_objects

    lines = [b'{"a":"', b'"},{"b":1}', b'{"ok":1}']
    objs, malformed = parse_objects(lines, fmt)
    assert objs == [None, None, {"ok": 1}]
    assert malformed == ([0] if fmt == "auto" else [0, 1])


_STAMP_SHAPES = [
    "{d}T{t}.{f:03d}Z",  # the usual shape, most lines
    "{d}T{t}.{f:03d}Z",
    "{d}T{t}.{f:03d}Z",
    "{d} {t}.{f:03d}Z",  # other separator
    "{d}T{t}.{f6:06d}Z",  # wider fraction
    "{d}T{t}.{f1}Z",  # narrower fraction
    "{d}T{t}Z",  # none
    "{d}T{t}.{f:03d}+01:00",  # another zone
]


@st.composite
def timed_batches(draw: st.DrawFn) -> list[bytes]:
    """JSON lines of one logger: mostly one layout, often in time order, with the odd ones
    that must not be mistaken for it (other shapes, equal times, plain text)."""
    n = draw(st.integers(min_value=1, max_value=60))
    events = draw(
        st.lists(
            st.tuples(
                st.integers(min_value=0, max_value=3),  # second
                st.integers(min_value=0, max_value=999),  # millisecond
                st.integers(min_value=0, max_value=len(_STAMP_SHAPES) + 1),  # shape or text
                st.sampled_from(["a", "b", "zz", "é"]),  # text after the time value
            ),
            min_size=n,
            max_size=n,
        )
    )
    if draw(st.booleans()):
        events.sort()
    out = []
    for i, (sec, ms, shape, text) in enumerate(events):
        if shape == len(_STAMP_SHAPES):
            out.append(b"plain text without a time")
            continue
        if shape == len(_STAMP_SHAPES) + 1:
            shape = 0  # same stamp, the time key not first
            stamp = _STAMP_SHAPES[0].format(d="2026-11-28", t=f"12:00:0{sec}", f=ms)
            out.append(orjson.dumps({"msg": text, "ts": stamp, "i": i}))
            continue
        stamp = _STAMP_SHAPES[shape].format(
            d="2026-11-28", t=f"12:00:0{sec}", f=ms, f6=ms * 1000 + i, f1=ms // 100
        )
        out.append(b'{"ts":"%s","msg":"%s","i":%d}' % (stamp.encode(), text.encode(), i))
    return out


@given(timed_batches())
def test_timestamp_column_agrees_with_the_exact_parse_and_its_runs_are_true(
    lines: list[bytes],
) -> None:
    """The fast paths (runs found by binary search, sliced keys) give every line the time
    a full parse gives it; a column that claims to be in time order is."""
    from logship.parsing.formats import _slow_timestamp

    col = timestamp_column(lines, "auto", READ_NS)
    exact = [_slow_timestamp(line) for line in lines]
    assert col.ns() == [READ_NS if ns is None else ns for ns in exact]
    if col.runs is not None:
        expanded = [k for k, count in col.runs for _ in range(count)]
        assert expanded == col.seconds
        keys = [k for k, _ in col.runs]
        assert keys == sorted(set(keys))  # type: ignore[type-var]
        assert col.ns() == sorted(col.ns())
    if col.int_fractions is not None:
        assert col.int_fractions == all(isinstance(f, int) for f in col.fractions)


def test_runs_of_a_time_ordered_batch_are_found_and_proved() -> None:
    lines = [
        b'{"ts":"2026-11-28T12:00:0%d.%03dZ","i":%d}' % (i // 1000, i % 1000, i)
        for i in range(3500)
    ]
    col = timestamp_column(lines, "auto", READ_NS)
    assert col.runs == [(b"2026-11-28T12:00:0%d" % s, 1000 if s < 3 else 500) for s in range(4)]
    # Equal times with text out of byte order: same keys, but no claim of order is made
    # from byte order alone; the times are still right.
    swapped = [*lines[:10], lines[11], lines[10], *lines[12:]]
    swapped[10] = swapped[10].replace(b".011Z", b".010Z")
    col = timestamp_column(swapped, "auto", READ_NS)
    assert col.ns()[10] == col.ns()[11]
    assert col.runs is None
    assert col.ns() == sorted(col.ns())
    # One line of a second that belongs earlier: the keys stay right, no runs are claimed.
    late = [*lines[:2000], lines[5], *lines[2000:]]
    col = timestamp_column(late, "auto", READ_NS)
    assert col.runs is None
    assert col.seconds[2000] == b"2026-11-28T12:00:00"


@given(timed_batches(), st.data())
def test_a_selected_part_keeps_true_runs(lines: list[bytes], data: st.DataObject) -> None:
    """Lines kept in order from a column in time order: the part's runs are its own."""
    col = timestamp_column(lines, "auto", READ_NS)
    keep = sorted(data.draw(st.sets(st.integers(0, len(lines) - 1))))
    part = col.select(keep, [col.seconds[i] for i in keep], [col.fractions[i] for i in keep])
    assert part.int_fractions == col.int_fractions
    if col.runs is None:
        assert part.runs is None
    else:
        assert part.runs is not None
        assert [k for k, count in part.runs for _ in range(count)] == part.seconds
        assert all(count > 0 for _, count in part.runs)
