"""The framing stage on its own: golden examples and properties, no files, no clock."""

from __future__ import annotations

import json
from itertools import accumulate
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logship.config.model import MultilineConfig, TailingConfig
from logship.parsing.timestamps import ns_of_keys, parse_text_timestamp
from logship.sources.framing import TRUNCATION_MARKER, Framed, Framer, MultilineRule
from logship.sources.podpath import pod_identity


def offsets_of(lines: list[bytes], start: int = 0) -> list[int]:
    return list(accumulate((len(x) + 1 for x in lines[:-1]), initial=start))


class Feeder:
    """Pushes lines into a framer the way the tailer does, tracking file offsets."""

    def __init__(self, framer: Framer) -> None:
        self.framer = framer
        self.pos = 0
        self.now = 0.0

    def push(self, *lines: str | bytes) -> list[Framed]:
        raw = [x.encode() if isinstance(x, str) else x for x in lines]
        offs = offsets_of(raw, self.pos)
        self.pos += sum(len(x) + 1 for x in raw)
        return self.framer.push(raw, offs, self.now)


def records(framed: list[Framed]) -> list[tuple[str | None, str, int]]:
    return [
        (f.stream, ln.decode(), o) for f in framed for ln, o in zip(f.lines, f.offsets, strict=True)
    ]


def texts(framed: list[Framed]) -> list[str]:
    return [ln.decode() for f in framed for ln in f.lines]


def preset(name: str, **kw: int | float) -> MultilineRule:
    return MultilineRule.from_config(MultilineConfig(preset=name, **kw))  # type: ignore[arg-type]


def rule_of(mode: str, pattern: str, **kw: int | float) -> MultilineRule:
    cfg = MultilineConfig(mode=mode, pattern=pattern, **kw)  # type: ignore[arg-type]
    return MultilineRule.from_config(cfg)


def make_framer(fmt: str, rule: MultilineRule | None = None, **tailing: int) -> Framer:
    """A framer for ``fmt`` with the config's defaults (and ``tailing`` overrides)."""
    t = TailingConfig(**tailing)  # type: ignore[arg-type]
    return Framer(fmt, rule, timeout=t.partial_line_timeout, max_line=int(t.max_line_size))


JAVA = [
    "2026-11-29 10:00:00 INFO started",
    "2026-11-29 10:00:01 ERROR request failed",
    "java.lang.IllegalStateException: boom",
    "\tat com.example.Service.run(Service.java:42)",
    "\tat com.example.Main.main(Main.java:7)",
    "Caused by: java.io.IOException: disk full",
    "\tat com.example.Store.write(Store.java:9)",
    "\t... 2 more",
    "2026-11-29 10:00:02 INFO recovered",
]

PYTHON = [
    "INFO:app:handling request",
    "Traceback (most recent call last):",
    '  File "app.py", line 10, in handle',
    "    return 1 / 0",
    "ZeroDivisionError: division by zero",
    "INFO:app:next request",
]

GO = [
    "starting server",
    "panic: runtime error: index out of range [5] with length 3",
    "",
    "goroutine 1 [running]:",
    "main.handler(0xc000012345, 0x3)",
    "\t/app/main.go:15 +0x1d",
    "main.main()",
    "\t/app/main.go:20 +0x25",
    "exit status 2",
    "server stopped",
]


@pytest.mark.parametrize(
    ("name", "lines", "want"),
    [
        ("java", JAVA, [[0], [1, 2, 3, 4, 5, 6, 7], [8]]),
        ("python", PYTHON, [[0], [1, 2, 3, 4], [5]]),
        ("go", GO, [[0], [1, 2, 3, 4, 5, 6, 7, 8], [9]]),
    ],
)
def test_presets_group_stack_traces(name: str, lines: list[str], want: list[list[int]]) -> None:
    f = Feeder(make_framer("raw", preset(name)))
    out = f.push(*lines)
    out += f.framer.flush()  # end of input: the last record is complete
    starts = offsets_of([x.encode() for x in lines])
    assert records(out) == [(None, "\n".join(lines[i] for i in g), starts[g[0]]) for g in want]


def test_open_group_is_held_and_its_start_is_the_hold_offset() -> None:
    f = Feeder(make_framer("raw", preset("java")))
    out = f.push(*JAVA[:5])
    # The started trace may continue in the next read: only the first record is out.
    assert texts(out) == [JAVA[0]]
    assert f.framer.hold_start == len(JAVA[0]) + 1
    assert f.framer.held_bytes == sum(len(x) + 1 for x in JAVA[1:5])
    out = f.push(*JAVA[5:])
    assert texts(out) == ["\n".join(JAVA[1:8])]
    assert f.framer.hold_start == sum(len(x) + 1 for x in JAVA[:8])  # "recovered" is open


def test_timeout_flushes_an_open_group_only_after_the_timeout() -> None:
    f = Feeder(make_framer("raw", preset("java", timeout=0.5)))
    f.now = 10.0
    f.push(*JAVA[1:4])
    assert f.framer.deadline() == 10.5
    assert f.framer.flush(10.4) == []
    assert f.framer.hold_start == 0
    out = f.framer.flush(10.5)
    assert texts(out) == ["\n".join(JAVA[1:4])]
    assert f.framer.hold_start is None
    assert f.framer.held_bytes == 0
    assert f.framer.deadline() is None


def test_timeout_is_per_stream() -> None:
    f = Feeder(make_framer("cri", preset("python", timeout=1.0)))
    f.push("2026-11-29T10:00:00Z stderr F Traceback (most recent call last):")
    f.now = 0.9
    f.push("2026-11-29T10:00:01Z stdout F busy")
    # stderr has been idle for the timeout although stdout is busy: its record goes out.
    assert records(f.framer.flush(1.0)) == [("stderr", "Traceback (most recent call last):", 0)]
    assert f.framer.deadline() == 1.9  # stdout's "busy" is still open


def test_start_mode() -> None:
    rule = rule_of("start", r"^\d{4}-")
    f = Feeder(make_framer("raw", rule))
    out = f.push("orphan", "2026 not a date", "2026-01-01 a", "  more", "2026-01-02 b")
    out += f.framer.flush()
    # A line before any start line opens a record of its own.
    assert texts(out) == ["orphan\n2026 not a date", "2026-01-01 a\n  more", "2026-01-02 b"]


def test_end_mode() -> None:
    rule = rule_of("end", r";$")
    f = Feeder(make_framer("raw", rule))
    out = f.push("SELECT *", "FROM t;", "DELETE", "FROM u;", "UPDATE")
    assert texts(out) == ["SELECT *\nFROM t;", "DELETE\nFROM u;"]
    assert f.framer.hold_start == len("SELECT *\nFROM t;\nDELETE\nFROM u;\n")


def test_max_lines_closes_a_record_and_counts_it() -> None:
    f = Feeder(make_framer("raw", preset("java", max_lines=3)))
    out = f.push(*JAVA[1:8]) + f.framer.flush()
    assert texts(out) == ["\n".join(JAVA[1:4]), "\n".join(JAVA[4:7]), JAVA[7]]
    assert f.framer.take_counts() == (0, 2, 0)


def test_max_bytes_closes_a_record_before_it_grows_past_the_limit() -> None:
    lines = ["head", *(f"\tat frame{i}" for i in range(10))]
    f = Feeder(make_framer("raw", preset("java", max_bytes=30)))
    out = f.push(*lines) + f.framer.flush()
    assert all(len(r) <= 30 for r in texts(out))
    assert "\n".join(texts(out)) == "\n".join(lines)  # nothing lost, only cut


def test_cri_partials_are_joined_with_the_first_fragments_offset_and_time() -> None:
    lines = [
        "2026-11-29T10:00:00.000000001Z stdout P first ",
        "2026-11-29T10:00:00.5Z stdout P second ",
        "2026-11-29T10:00:01Z stdout F third",
        "2026-11-29T10:00:02.25Z stdout F whole",
    ]
    f = Feeder(make_framer("cri"))
    out = f.push(*lines[:2])
    assert out == []
    assert f.framer.hold_start == 0
    out = f.push(*lines[2:])
    assert records(out) == [
        ("stdout", "first second third", 0),
        ("stdout", "whole", sum(len(x) + 1 for x in lines[:3])),
    ]
    ns = ns_of_keys(out[0].seconds or [], out[0].fractions or [])
    assert ns == [
        parse_text_timestamp("2026-11-29T10:00:00.000000001Z"),
        parse_text_timestamp("2026-11-29T10:00:02.25Z"),
    ]
    assert f.framer.hold_start is None


def test_cri_streams_never_mix() -> None:
    lines = [
        "2026-11-29T10:00:00Z stdout P out-a ",
        "2026-11-29T10:00:00Z stderr F Traceback (most recent call last):",
        "2026-11-29T10:00:00Z stdout F out-b",
        '2026-11-29T10:00:01Z stderr F   File "x.py", line 1',
        "2026-11-29T10:00:01Z stdout F   indented stdout line",
        "2026-11-29T10:00:02Z stderr F ValueError: bad",
        "2026-11-29T10:00:03Z stdout F next stdout",
        "2026-11-29T10:00:03Z stderr F next stderr",
    ]
    f = Feeder(make_framer("cri", preset("python")))
    out = f.push(*lines) + f.framer.flush()
    got = sorted((s or "", t) for s, t, _ in records(out))
    assert got == [
        ("stderr", 'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: bad'),
        ("stderr", "next stderr"),
        ("stdout", "next stdout"),
        ("stdout", "out-a out-b\n  indented stdout line"),
    ]


def test_interleaved_open_records_hold_the_earliest_start() -> None:
    f = Feeder(make_framer("cri"))
    out = f.push(
        "2026-11-29T10:00:00Z stderr P err-part ",
        "2026-11-29T10:00:00Z stdout F out-done",
    )
    assert records(out) == [
        ("stdout", "out-done", len("2026-11-29T10:00:00Z stderr P err-part \n"))
    ]
    assert f.framer.hold_start == 0  # the stderr fragment is still open


def test_malformed_container_lines_are_kept_whole_and_counted() -> None:
    lines = [
        "2026-11-29T10:00:00Z stdout F good",
        "garbage without structure",
        "2026-13-45T99:00:00Z stdout F bad date",
        "2026-11-29T10:00:00Z stdlog F bad stream",
        "2026-11-29T10:00:00Z stdout X bad tag",
        "2026-11-29T10:00:00Z stdout F",
    ]
    f = Feeder(make_framer("cri"))
    out = f.push(*lines)
    bad = [r for r in out if r.malformed]
    assert texts(bad) == lines[1:5]
    assert bad[0].offsets == offsets_of([x.encode() for x in lines])[1:5]
    assert texts([r for r in out if not r.malformed]) == ["good", ""]
    assert f.framer.take_counts() == (4, 0, 0)


@pytest.mark.parametrize(
    "times",
    [
        ["2026-11-29T12:00:00.5+02:00", "2026-11-29T12:00:01+02:00"],  # one zone per batch
        ["2026-11-29T12:00:00.5+02:00", "2026-11-29T05:00:01-05:00", "2026-11-29T10:00:02Z"],
    ],
)
def test_cri_timestamps_with_zone_offsets_are_converted(times: list[str]) -> None:
    f = Feeder(make_framer("cri"))
    (out,) = f.push(*(f"{t} stdout F hi" for t in times))
    assert ns_of_keys(out.seconds or [], out.fractions or []) == [
        parse_text_timestamp(t) for t in times
    ]


@pytest.mark.parametrize("zone", ["Z", "+01:00"])
def test_cri_nanosecond_times_of_varying_width(zone: str) -> None:
    # Many distinct fractions (as the kubelet writes them) take the integer-key path;
    # a zone other than Z takes the exact one. Both give the same instants.
    times = [
        f"2026-11-29T10:00:{i % 60:02d}.{i * 7919 % 10**9:09d}".rstrip("0") for i in range(3000)
    ]
    times = [(t.rstrip(".") if t.endswith(".") else t) + zone for t in times]
    f = Feeder(make_framer("cri"))
    (out,) = f.push(*(f"{t} stdout F line {i}" for i, t in enumerate(times)))
    assert ns_of_keys(out.seconds or [], out.fractions or []) == [
        parse_text_timestamp(t) for t in times
    ]
    assert texts([out]) == [f"line {i}" for i in range(3000)]


def test_cri_partial_longer_than_the_line_limit_is_cut_and_the_rest_skipped() -> None:
    f = Feeder(make_framer("cri", max_line_size=100))
    piece = "x" * 60
    out = f.push(
        f"2026-11-29T10:00:00Z stdout P {piece}",
        f"2026-11-29T10:00:00Z stdout P {piece}",
        f"2026-11-29T10:00:00Z stdout P {piece}",
    )
    assert texts(out) == ["x" * (100 - len(TRUNCATION_MARKER)) + TRUNCATION_MARKER.decode()]
    assert f.framer.hold_start == 0  # the record is not over until its F
    out = f.push("2026-11-29T10:00:00Z stdout F tail", "2026-11-29T10:00:00Z stdout F next")
    assert texts(out) == ["next"]
    assert f.framer.take_counts() == (0, 0, 1)


def docker(log: str, stream: str = "stdout", time: str = "2026-11-29T10:00:00.123456789Z") -> str:
    return json.dumps({"log": log, "stream": stream, "time": time})


def test_docker_partials_and_streams() -> None:
    lines = [
        docker("part one, "),
        docker("err line\n", "stderr"),
        docker("part two\r\n", time="2026-11-29T10:00:01Z"),
        docker('{"msg":"json app line"}\n'),
        '{"log": "no stream or time\\n"}',
    ]
    f = Feeder(make_framer("docker"))
    out = f.push(*lines)
    starts = offsets_of([x.encode() for x in lines])
    assert sorted(records(out), key=lambda r: r[2]) == [
        ("stdout", "part one, part two", starts[0]),
        ("stderr", "err line", starts[1]),
        ("stdout", '{"msg":"json app line"}', starts[3]),
        (None, lines[4], starts[4]),
    ]
    stdout = next(r for r in out if r.stream == "stdout")
    assert ns_of_keys(stdout.seconds or [], stdout.fractions or [])[0] == parse_text_timestamp(
        "2026-11-29T10:00:00.123456789Z"
    )
    assert f.framer.take_counts()[0] == 1


def test_docker_whole_lines() -> None:
    lines = [
        docker("one\n"),
        docker("two\n", "stderr", time="2026-11-29T10:00:01.5Z"),
        docker("ünï\n"),
    ]
    f = Feeder(make_framer("docker"))
    out = f.push(*lines)
    starts = offsets_of([x.encode() for x in lines])
    assert sorted(records(out), key=lambda r: r[2]) == [
        ("stdout", "one", starts[0]),
        ("stderr", "two", starts[1]),
        ("stdout", "ünï", starts[2]),
    ]
    err = next(r for r in out if r.stream == "stderr")
    assert ns_of_keys(err.seconds or [], err.fractions or []) == [
        parse_text_timestamp("2026-11-29T10:00:01.5Z")
    ]
    assert f.framer.hold_start is None


def test_pod_identity_from_the_kubelet_path() -> None:
    path = "/var/log/pods/shop_web-7d9f_0b5e-11aa/nginx/3.log"
    assert pod_identity(path) == {
        "namespace": "shop",
        "pod": "web-7d9f",
        "pod_uid": "0b5e-11aa",
        "container": "nginx",
    }
    assert pod_identity("/var/log/app/nginx/3.log") == {}


# -- properties ------------------------------------------------------------------------------

line_bytes = st.binary(max_size=40).map(lambda b: b.replace(b"\n", b""))


@settings(max_examples=200, deadline=None)
@given(
    fmt=st.sampled_from(["raw", "cri", "docker"]),
    rule=st.sampled_from([None, "java", "python", "go", "start", "end"]),
    chunks=st.lists(st.lists(line_bytes, max_size=8), max_size=6),
)
def test_framing_never_raises_on_arbitrary_bytes(
    fmt: str, rule: str | None, chunks: list[list[bytes]]
) -> None:
    ml = None
    if rule in ("start", "end"):
        ml = rule_of(rule, r"^\d")
    elif rule is not None:
        ml = preset(rule, max_lines=3)
    f = Feeder(make_framer(fmt, ml))
    seen = []
    safe = 0  # where the tailer's checkpoint may go: it never moves back
    for chunk in chunks:
        f.now += 1
        out = f.push(*chunk)
        seen += out
        hold = f.framer.hold_start
        assert hold is None or 0 <= hold <= f.pos
        now_safe = f.pos if hold is None else hold
        assert now_safe >= safe
        safe = now_safe
    seen += f.framer.flush()
    assert f.framer.hold_start is None and f.framer.held_bytes == 0
    for fr in seen:
        assert len(fr.lines) == len(fr.offsets)
        assert all(0 <= o < max(f.pos, 1) for o in fr.offsets)


cri_piece = st.tuples(
    st.sampled_from(["stdout", "stderr"]),
    st.booleans(),  # partial
    st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")),
)


@settings(max_examples=200, deadline=None)
@given(pieces=st.lists(cri_piece, max_size=30), split=st.integers(0, 30), multi=st.booleans())
def test_cri_joining_is_lossless_per_stream(
    pieces: list[tuple[str, bool, bytes]], split: int, multi: bool
) -> None:
    lines = [
        b"2026-11-29T10:00:00.1Z " + s.encode() + (b" P " if p else b" F ") + m
        for s, p, m in pieces
    ]
    rule = rule_of("continue", r"^ ") if multi else None
    f = Feeder(make_framer("cri", rule))
    out = f.push(*lines[:split]) + f.push(*lines[split:]) + f.framer.flush()
    assert not any(r.malformed for r in out)
    for stream in ("stdout", "stderr"):
        sent = b"".join(m for s, _, m in pieces if s == stream)
        got = [ln for r in out if r.stream == stream for ln in r.lines]
        # Joining adds only the newlines between grouped lines, and loses nothing.
        assert b"".join(got).replace(b"\n", b"") == sent.replace(b"\n", b"")
        assert len(b"".join(got)) >= len(sent)
        offs = [o for r in out if r.stream == stream for o in r.offsets]
        assert offs == sorted(offs)


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(st.text(alphabet=" \tabXY0123", max_size=12), max_size=30),
    mode=st.sampled_from(["start", "continue", "end"]),
    max_lines=st.integers(1, 5),
)
def test_multiline_joining_is_lossless(lines: list[str], mode: str, max_lines: int) -> None:
    rule = rule_of(mode, r"^[ \t]", max_lines=max_lines)
    f = Feeder(make_framer("raw", rule))
    half = len(lines) // 2
    out = f.push(*lines[:half]) + f.push(*lines[half:]) + f.framer.flush()
    assert "\n".join(texts(out)) == "\n".join(lines)
    assert all(t.count("\n") < max_lines for t in texts(out))
    starts = offsets_of([x.encode() for x in lines])
    counts = [t.count("\n") + 1 for t in texts(out)]
    first_lines = list(accumulate(counts[:-1], initial=0)) if counts else []
    assert [o for r in out for o in r.offsets] == [starts[i] for i in first_lines]


@pytest.mark.parametrize(
    ("multiline", "error"),
    [
        (
            {"mode": "start", "pattern": "(["},
            "c.yaml: sources.app.multiline.pattern: invalid regular expression",
        ),
        ({"preset": "java", "pattern": "x"}, "c.yaml: sources.app.multiline: set either preset"),
        ({"mode": "start"}, "c.yaml: sources.app.multiline: set a preset"),
        ({"preset": "cobol"}, "c.yaml: sources.app.multiline.preset: Input should be"),
        ({"preset": "go", "max_lines": 0}, "c.yaml: sources.app.multiline.max_lines:"),
    ],
)
def test_multiline_config_errors_name_the_field(multiline: dict[str, object], error: str) -> None:
    from logship.config import ConfigError, build_config

    data = {
        "sources": {"app": {"include": ["x.log"], "multiline": multiline}},
        "sinks": {"out": {"type": "stdout"}},
    }
    with pytest.raises(ConfigError) as e:
        build_config(data, "c.yaml")
    assert str(e.value).startswith(error)


def test_tailer_checkpoint_and_budget_with_an_open_group(tmp_path: Path) -> None:
    """The tailer submits up to the open group's start and keeps its bytes in the budget."""
    import asyncio
    import os

    from logship.parsing.batch import Batch, SourceInfo
    from logship.pipeline.acks import AckTracker, FileAcks
    from logship.pipeline.budget import MemoryBudget
    from logship.sources.tailer import Tailer
    from logship.telemetry import Telemetry

    log = tmp_path / "app.log"
    log.write_bytes("".join(x + "\n" for x in JAVA[:4]).encode())
    group_start = len(JAVA[0]) + 1
    held = sum(len(x) + 1 for x in JAVA[1:4])

    async def scenario() -> None:
        budget = MemoryBudget(1 << 20)
        tracker = AckTracker(budget.release)
        acks = tracker.file("k", str(log), "0:", 0)
        got: list[Batch] = []

        def submit(b: Batch, a: FileAcks, cost: int, partial: bool) -> None:
            b.ticket = a.ticket(b.end_offset, cost, 1, partial)
            got.append(b)

        fd = os.open(log, os.O_RDONLY)
        t = Tailer(
            path=str(log),
            fd=fd,
            info=SourceInfo("app", str(log), "raw"),
            acks=acks,
            offset=0,
            partial=False,
            submit=submit,
            budget=budget,
            tailing=TailingConfig(),
            telemetry=Telemetry(),
            once=False,
            framer=make_framer("raw", preset("java")),
        )
        await t._read_available()
        assert [b.lines for b in got] == [[JAVA[0].encode()]]
        assert got[0].end_offset == group_start
        for b in got:
            assert b.ticket is not None
            b.ticket.done()
        assert acks.committed == group_start
        assert budget.used == held  # only the open group is still held
        t._flush_framer()  # e.g. end of file: the group goes out, the checkpoint follows
        assert got[-1].lines == [b"\n".join(x.encode() for x in JAVA[1:4])]
        assert got[-1].end_offset == log.stat().st_size
        got[-1].ticket.done()  # type: ignore[union-attr]
        assert budget.used == 0
        t._close()

    asyncio.run(scenario())


@settings(max_examples=200, deadline=None)
@given(
    pieces=st.lists(cri_piece, max_size=25),
    cuts=st.lists(st.integers(0, 25), max_size=4),
    rule=st.sampled_from([None, "python", "start"]),
    garbage=st.lists(st.integers(0, 25), max_size=2),
)
def test_read_boundaries_do_not_change_the_records(
    pieces: list[tuple[str, bool, bytes]], cuts: list[int], rule: str | None, garbage: list[int]
) -> None:
    lines = [
        b"2026-11-29T10:00:0"
        + str(i % 10).encode()
        + b".5Z "
        + s.encode()
        + b" "
        + (b"P " if p else b"F ")
        + m
        for i, (s, p, m) in enumerate(pieces)
    ]
    for g in garbage:
        lines.insert(min(g, len(lines)), b"not a cri line")

    def frame(bounds: list[int]) -> list[tuple[str, str, int, bool]]:
        ml = None
        if rule == "start":
            ml = rule_of("start", r"^[a-m]")
        elif rule is not None:
            ml = preset(rule)
        f = Feeder(make_framer("cri", ml))
        out: list[Framed] = []
        prev = 0
        for b in [*sorted(bounds), len(lines)]:
            out += f.push(*lines[prev:b])
            prev = max(prev, b)
        out += f.framer.flush()
        return sorted(
            (r.stream or "", ln.decode("utf-8", "replace"), o, r.malformed)
            for r in out
            for ln, o in zip(r.lines, r.offsets, strict=True)
        )

    assert frame([min(c, len(lines)) for c in cuts]) == frame([])


def test_framer_for_a_source_takes_everything_from_the_config() -> None:
    from logship.config.model import SourceConfig

    src = SourceConfig.model_validate(
        {"include": ["x.log"], "format": "cri", "multiline": {"preset": "go", "timeout": "250ms"}}
    )
    f = Framer.for_source(src, TailingConfig.model_validate({"max_line_size": "1KiB"}))
    assert f.container and f.rule is not None
    assert (f.rule.mode, f.rule.max_lines, f.rule.max_bytes) == ("continue", 500, 256 * 1024)
    assert (f.timeout, f.max_line) == (0.25, 1024)
    plain = Framer.for_source(SourceConfig.model_validate({"include": ["x.log"]}), TailingConfig())
    assert not plain.active  # plain lines skip framing altogether


docker_piece = st.tuples(
    st.sampled_from(["stdout", "stderr"]),
    st.booleans(),  # partial: no trailing newline in `log`
    st.text(max_size=20).map(lambda t: t.replace("\n", "").replace("\r", "")),
)


@settings(max_examples=200, deadline=None)
@given(pieces=st.lists(docker_piece, max_size=25), split=st.integers(0, 25))
def test_docker_joining_is_lossless_per_stream(
    pieces: list[tuple[str, bool, str]], split: int
) -> None:
    lines = [docker(t if p else t + "\n", s) for s, p, t in pieces]
    f = Feeder(make_framer("docker"))
    out = f.push(*lines[:split]) + f.push(*lines[split:]) + f.framer.flush()
    assert not any(r.malformed for r in out)
    for stream in ("stdout", "stderr"):
        sent = "".join(t for s, _, t in pieces if s == stream)
        got = [ln.decode() for r in out if r.stream == stream for ln in r.lines]
        assert "".join(got) == sent
        # One record per newline-terminated piece, plus a trailing fragment flushed at the end.
        ends = sum(1 for s, p, _ in pieces if s == stream and not p)
        tail = next((p for s, p, _ in reversed(pieces) if s == stream), False)
        assert len(got) == ends + (1 if tail else 0)


def test_open_records_larger_than_the_memory_limit_do_not_stop_reading(tmp_path: Path) -> None:
    """Held bytes count in the budget; when they alone fill it, they are emitted."""
    import asyncio
    import os

    from logship.parsing.batch import Batch, SourceInfo
    from logship.pipeline.acks import AckTracker, FileAcks
    from logship.pipeline.budget import MemoryBudget
    from logship.sources.tailer import Tailer
    from logship.telemetry import Telemetry

    log = tmp_path / "app.log"
    trace = ["ERROR boom", *(f"\tat com.example.Frame{i}.run(Frame.java:{i})" for i in range(200))]
    log.write_bytes("".join(x + "\n" for x in [*trace, "INFO next"]).encode())

    async def scenario() -> list[bytes]:
        budget = MemoryBudget(4096)
        tracker = AckTracker(budget.release)
        acks = tracker.file("k", str(log), "0:", 0)
        got: list[bytes] = []

        def submit(b: Batch, a: FileAcks, cost: int, partial: bool) -> None:
            a.ticket(b.end_offset, cost, 1, partial).done()  # delivered at once
            got.extend(b.lines)

        t = Tailer(
            path=str(log),
            fd=os.open(log, os.O_RDONLY),
            info=SourceInfo("app", str(log), "raw"),
            acks=acks,
            offset=0,
            partial=False,
            submit=submit,
            budget=budget,
            tailing=TailingConfig.model_validate({"read_chunk_size": 1024}),
            telemetry=Telemetry(),
            once=False,
            framer=make_framer("raw", preset("java", timeout=300)),
        )
        await asyncio.wait_for(t._read_available(), 10)
        assert t.read_offset == log.stat().st_size  # read to the end, not stuck
        t._flush_framer()
        t._close()
        assert budget.used == 0
        return got

    got = asyncio.run(scenario())
    # The trace was emitted in pieces under memory pressure, and nothing was lost.
    assert len(got) > 2
    assert b"\n".join(got) == "\n".join([*trace, "INFO next"]).encode()
