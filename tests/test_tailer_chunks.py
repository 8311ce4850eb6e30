"""The tailer's chunk handling: wherever reads cut the file, the lines are the file's lines.

Reads are split as they come (the carried partial line joined to the first line), and the
fixes (invalid UTF-8, CR before LF, over-long lines) are decided from checks of the whole
chunk; these tests compare against the lines of the whole file fixed in one go.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logship.config.model import TailingConfig
from logship.parsing.batch import Batch, SourceInfo
from logship.pipeline.acks import AckTracker, FileAcks
from logship.pipeline.budget import MemoryBudget
from logship.sources.framing import TRUNCATION_MARKER
from logship.sources.tailer import Tailer, fix_lines
from logship.telemetry import Telemetry

MAX_LINE = 1024

line_bytes = st.one_of(
    st.text(alphabet='abc xyz{}":,0123456789', max_size=60).map(str.encode),
    st.text(max_size=30).map(lambda t: t.replace("\n", " ").replace("\r", " ").encode()),
    st.binary(max_size=20).map(lambda b: b.replace(b"\n", b" ")),  # invalid UTF-8 too
    st.sampled_from([b"crlf line\r", b"\r", b"\xc3", b"\xe2\x82", "é€𝄞".encode()]),
    st.integers(MAX_LINE - 40, 3 * MAX_LINE).map(lambda n: b"L" * n),  # over the limit
)


def read_all(path: Path, chunk: int) -> tuple[list[bytes], list[Batch]]:
    async def scenario() -> tuple[list[bytes], list[Batch]]:
        budget = MemoryBudget(1 << 24)
        tracker = AckTracker(budget.release)
        acks = tracker.file("k", str(path), "0:", 0)
        got: list[Batch] = []

        def submit(b: Batch, a: FileAcks, cost: int, partial: bool) -> None:
            a.ticket(b.end_offset, cost, 1, partial).done()
            got.append(b)

        t = Tailer(
            path=str(path),
            fd=os.open(path, os.O_RDONLY),
            info=SourceInfo("app", str(path), "raw"),
            acks=acks,
            offset=0,
            partial=False,
            submit=submit,
            budget=budget,
            tailing=TailingConfig.model_validate(
                {"read_chunk_size": chunk, "max_line_size": MAX_LINE}
            ),
            telemetry=Telemetry(),
            once=True,
        )
        await asyncio.wait_for(t._read_available(), 30)
        t._close()
        return [ln for b in got for ln in b.lines], got

    return asyncio.run(scenario())


@settings(max_examples=150, deadline=None)
@given(lines=st.lists(line_bytes, max_size=40), chunk=st.integers(1, 700))
def test_lines_do_not_depend_on_where_reads_cut_the_file(
    tmp_path_factory: pytest.TempPathFactory, lines: list[bytes], chunk: int
) -> None:
    path = tmp_path_factory.mktemp("chunks") / "app.log"
    content = b"".join(ln + b"\n" for ln in lines)
    path.write_bytes(content)
    got, batches = read_all(path, chunk)
    # Over-long lines (ASCII here) are cut to the same head wherever they are read.
    whole = content[:-1]
    want = fix_lines(whole, whole.split(b"\n"), MAX_LINE)[0] if lines else []
    assert got == want
    assert any(len(ln) > MAX_LINE for ln in lines) <= any(TRUNCATION_MARKER in g for g in got)
    # Offsets cover the file exactly once, in order.
    ends = [b.end_offset for b in batches]
    assert ends == sorted(ends)
    assert (ends[-1] if ends else 0) == len(content)
