"""Batch helpers of the transforms: grouping a column and finding the lines of hits."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from logship.parsing.batch import Batch, SourceInfo
from logship.transforms.batchops import (
    LineStarts,
    group_indices,
    lines_containing,
    select,
    split_by_code,
)

VALUES = st.one_of(
    st.none(), st.sampled_from(["info", "warn", "error", "debug", ""]), st.integers(0, 12)
)


def naive_groups(column: list[Any]) -> dict[Any, list[int]]:
    groups: dict[Any, list[int]] = {}
    for i, v in enumerate(column):
        groups.setdefault(v, []).append(i)
    return groups


@given(st.lists(VALUES, min_size=1, max_size=60))
def test_group_indices_equals_a_plain_loop_in_first_seen_order(column: list[Any]) -> None:
    got = group_indices(column)
    want = naive_groups(column)
    assert got == want
    assert list(got) == list(want)


@given(
    st.lists(st.sampled_from([b"ab", b"xNEEDLEx", b"", b"NEEDLE", b"n\ne"]), max_size=12),
    st.integers(0, 10_000),
    st.booleans(),
)
def test_lines_containing_finds_every_line_with_the_needle(
    lines: list[bytes], start: int, own_offsets: bool
) -> None:
    """With the batch's own offsets (shifted by its start) or computed starts alike."""
    batch = Batch(SourceInfo("a", "/x", "json"), lines, start, start + 1, 0)
    if not own_offsets:
        batch.offsets = [start + 7 * i for i in range(len(lines))]  # framing's offsets
    found: set[int] = set()
    lines_containing(b"\n".join(lines), b"NEEDLE", lines, found, LineStarts(lines, batch))
    assert found == {i for i, line in enumerate(lines) if b"NEEDLE" in line}


@given(st.lists(st.integers(0, 9), min_size=1, max_size=40), st.booleans())
def test_split_by_code_equals_selecting_each_codes_lines(raw: list[int], records: bool) -> None:
    """Every column is cut alike, records included."""
    order = list(dict.fromkeys(raw))  # codes numbered in first-seen order, every code used
    codes = bytes(order.index(c) for c in raw)
    lines = [b"line %d" % i for i in range(len(raw))]
    end = 100 + sum(len(line) + 1 for line in lines)
    batch = Batch(SourceInfo("a", "/x", "json"), lines, 100, end, 0)
    batch.timestamps()
    if records:
        batch._records = [{"i": i} for i in range(len(raw))]
    parts = split_by_code(batch, codes, len(order))
    assert sum(p.nbytes for p in parts) == batch.nbytes  # the largest part's is the rest
    groups = list(naive_groups(list(codes)).values())
    assert len(parts) == len(groups)
    for part, idx in zip(parts, groups, strict=True):
        want = select(batch, idx)
        assert part.lines == want.lines
        assert part.line_offsets() == want.line_offsets()
        assert part.timestamps().seconds == want.timestamps().seconds
        assert part.timestamps().fractions == want.timestamps().fractions
        assert part._records == want._records
        assert part.nbytes == want.nbytes
        assert part.end_offset == batch.end_offset
