"""The level column's msgspec fast path agrees with the full orjson parse, line for line.

Lines are written by hand (not by a JSON library) so that they can hold what a serializer
never writes: duplicate keys, escaped key names, ``"level":`` inside strings and nested
objects, numbers too large for a double, invalid UTF-8, deep nesting and malformed text.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from logship.parsing.batch import Batch, SourceInfo
from logship.transforms.batchops import parse_objects
from logship.transforms.filter import _LEVELS, _level_of, level_column
from logship.transforms.jsonlevels import raw_levels

KEYS = ["level", "lvl", "severity", "msg", "ts", "Level", "data"]
LEVEL_WORDS = ["info", "WARN", "Error", "debug", "trace", "", "verbose", "é", "lev\u00e9l"]


def _key(name: str, escape: bool) -> str:
    """A JSON key, optionally with every character written as a \\u escape."""
    if escape:
        return '"' + "".join(f"\\u{ord(c):04x}" for c in name) + '"'
    return json.dumps(name)


scalars = st.one_of(
    st.sampled_from(LEVEL_WORDS).map(json.dumps),
    st.text(max_size=12).map(json.dumps),
    st.text(max_size=12).map(lambda s: json.dumps(s, ensure_ascii=False)),
    st.sampled_from(['"level":"error"', '{\\"level\\":1}', "x\\u0041y"]).map(
        lambda s: '"' + s + '"'
    ),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=False, allow_infinity=False)
    .map(repr)
    .map(lambda r: r if "e" in r or "." in r else r + ".0"),
    st.sampled_from(
        ["true", "false", "null", "1e400", "-1E+999", "1e-400", "2.5e308", "1" + "0" * 320]
    ),
)


def values(depth: int = 2) -> st.SearchStrategy[str]:
    if depth == 0:
        return scalars
    inner = values(depth - 1)
    return st.one_of(
        scalars,
        st.lists(inner, max_size=3).map(lambda xs: "[" + ",".join(xs) + "]"),
        objects(depth - 1),
    )


def objects(depth: int = 2) -> st.SearchStrategy[str]:
    member = st.tuples(
        st.sampled_from(KEYS), st.booleans(), values(depth), st.sampled_from(["", " "])
    )
    return st.lists(member, max_size=5).map(
        lambda ms: "{" + ",".join(f"{_key(k, e)}:{sp}{v}" for k, e, v, sp in ms) + "}"
    )


def lines() -> st.SearchStrategy[bytes]:
    text = objects().map(lambda s: s.encode())
    return st.one_of(
        text,
        text,
        text.map(lambda b: b[: len(b) // 2]),  # truncated: malformed
        st.just(b'{"level":"info","msg":"\xff\xfe"}'),  # invalid UTF-8
        st.just(b"[" * 1100 + b"]" * 1100),
        st.just(b'{"a":' + b"[" * 1100 + b"]" * 1100 + b',"level":"warn"}'),
        st.just(b'"level"'),
        st.just(b"level=info msg=hi"),
        st.just(b""),
    )


def exact(batch: Batch) -> list[str | None]:
    """The level column through the full parse (what the records say)."""
    return list(map(_level_of, parse_objects(batch)))


def batch_of(ls: list[bytes], fmt: str = "json") -> Batch:
    return Batch(SourceInfo("app", "/x.log", fmt), ls, 0, 1, 0)


@settings(max_examples=400, deadline=None)
@given(st.lists(lines(), min_size=1, max_size=6), st.sampled_from(["json", "auto"]))
def test_fast_level_column_equals_the_full_parse(ls: list[bytes], fmt: str) -> None:
    batch = batch_of(ls, fmt)
    assert level_column(batch) == exact(batch)
    raw = raw_levels(ls)
    if raw is not None:  # whenever the fast path answers, it answers what orjson would
        assert list(map(_LEVELS.__getitem__, raw)) == exact(batch)


@settings(max_examples=200, deadline=None)
@given(st.lists(objects().map(lambda s: s.encode()), min_size=1, max_size=8))
def test_fast_path_agrees_on_valid_objects(ls: list[bytes]) -> None:
    raw = raw_levels(ls)
    if raw is not None:
        assert list(map(_LEVELS.__getitem__, raw)) == exact(batch_of(ls))


def test_fast_path_is_taken_for_ordinary_json_logs() -> None:
    ls = [
        b'{"ts":"2026-11-28T12:00:00.002Z","level":"info","msg":"ok","status":200,"d":0.5}',
        b'{"lvl":"WARN","msg":"has \\"level\\":\\"error\\" inside","n":{"level":"debug"}}',
        b'{"severity":"error","level":"debug","level":"trace"}',
        b'{"lev\\u0065l":"crit","msg":"escaped key"}',
        b'{"msg":"no level","x":[1,2,{"level":"fatal"}]}',
        b'{"level":null,"lvl":"info"}',
        b'{"level":30}',
    ]
    raw = raw_levels(ls)
    assert raw == ["info", "WARN", "trace", "crit", None, None, 30]
    assert level_column(batch_of(ls)) == ["info", "warn", "trace", "error", None, None, "30"]


def test_cases_where_the_parsers_differ_take_the_full_parse() -> None:
    for line in (
        b'{"level":"info","big":1e400}',  # orjson refuses infinity; msgspec skips the number
        b'{"level":"info","big":1' + b"0" * 320 + b"}",
        b'{"level":"info","msg":"\xc3\x28"}',  # invalid UTF-8
        b'{"level":"info","deep":' + b"[" * 1100 + b"]" * 1100 + b"}",
        b'{"level":18446744073709551616}',  # an integer orjson turns into a float
        b'{"level":1.5}',
    ):
        assert raw_levels([b'{"level":"warn"}', line]) is None
        batch = batch_of([b'{"level":"warn"}', line])
        assert level_column(batch) == exact(batch)
    # The full parse marks the line malformed: no level, unlike what msgspec alone would say.
    assert level_column(batch_of([b'{"level":"info","big":1e400}'])) == [None]


def test_lines_that_are_not_objects_take_the_full_parse() -> None:
    for ls in ([b'{"level":"info"}', b"[1]"], [b'{"level":"info"},{"level":"warn"}'], [b""]):
        assert raw_levels(ls) is None
    batch = batch_of([b'{"level":"info"}', b"plain text ERROR", b'{"level":"warn"'])
    assert level_column(batch) == ["info", None, None]


def _obj(level: Any) -> bytes:
    return json.dumps({"level": level}).encode()


def test_integer_levels_within_64_bits_are_read_alike() -> None:
    ls = [_obj(2**64 - 1), _obj(-(2**63)), _obj(True), _obj(None)]
    assert raw_levels(ls) == [2**64 - 1, -(2**63), True, None]
    assert level_column(batch_of(ls)) == exact(batch_of(ls))


def test_a_deep_line_in_a_deep_call_stack_takes_the_full_parse() -> None:
    """msgspec raises RecursionError there (its limit is the interpreter's), orjson does not."""
    line = b'{"level":"info","a":' + b"[" * 990 + b"]" * 990 + b"}"

    def nested(n: int) -> list[str | None]:
        return level_column(batch_of([line])) if n == 0 else nested(n - 1)

    assert nested(100) == ["info"] == exact(batch_of([line]))


def test_a_line_deeper_than_orjson_allows_takes_the_full_parse_under_any_recursion_limit() -> None:
    """With a raised limit msgspec would read a line orjson refuses: the brackets are counted."""
    line = b'{"level":"info","deep":' + b"[" * 1100 + b"]" * 1100 + b"}"
    limit = sys.getrecursionlimit()
    try:
        sys.setrecursionlimit(5000)
        assert raw_levels([b'{"level":"warn"}', line]) is None
        batch = batch_of([b'{"level":"warn"}', line])
        assert level_column(batch) == exact(batch) == ["warn", None]
    finally:
        sys.setrecursionlimit(limit)


def test_equal_level_values_of_other_types_are_normalized_apart() -> None:
    """``True == 1 == 1.0`` as dict keys: each is still its own level word, whatever came first."""
    ls = [b'{"level":1.0}', b'{"level":true}', b'{"level":1}', b'{"level":"1"}']
    for order in (ls, ls[::-1], ls[1:] + ls[:1]):
        for one in order:  # batch by batch: the cache is filled by the first one seen
            assert level_column(batch_of([one])) == exact(batch_of([one]))
    assert [level_column(batch_of([x]))[0] for x in ls] == ["1.0", "true", "1", "1"]
