"""Golden tests: each file in tests/golden/ through its format, against the checked-in records.

``<format>.log`` is the input (well-formed lines first, then malformed ones);
``<format>.expected.jsonl`` is one normalized record per input line. The read time
is fixed at 2026-01-05T12:00:00Z, so RFC 3164 lines from October and December land
in 2025 (year inference across New Year) and lines without a time get that time.
After a deliberate change, rewrite the expected files with
``LOGSHIP_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_formats_golden.py`` and review the diff.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from logship.parsing.batch import Batch, SourceInfo
from logship.parsing.options import ParseOptions, TimestampRule, zone
from logship.telemetry import Telemetry

GOLDEN = Path(__file__).parent / "golden"
READ_NS = 1_767_614_400 * 1_000_000_000  # 2026-01-05T12:00:00Z

OPTIONS: dict[str, ParseOptions] = {
    "regex": ParseOptions(
        regex=re.compile(
            r"^(?P<time>\S+ \S+) \[(?P<level>\w+)\] (?P<component>[\w.]+): (?P<msg>.*)$"
        ),
        timestamp=TimestampRule(None, "%Y-%m-%d %H:%M:%S,%f", zone("Europe/Berlin")),
    ),
}
# Lines of each file that are malformed in its format (0-based).
MALFORMED = {
    "json": [4, 5, 6, 7],
    "logfmt": [3, 4, 5],
    "syslog": [9, 10],
    "nginx": [4, 5],
    "apache": [4],
    "regex": [2, 3],
    "raw": [],
    "auto": [2],
}


def records_of(fmt: str) -> tuple[list[dict[str, Any]], int]:
    lines = (GOLDEN / f"{fmt}.log").read_bytes().split(b"\n")[:-1]
    opts = OPTIONS.get(fmt, ParseOptions())
    info = SourceInfo("app", f"/logs/{fmt}.log", fmt, {"team": "a"}, options=opts)
    telemetry = Telemetry()
    end = sum(len(x) + 1 for x in lines)
    recs = Batch(info, lines, 0, end, READ_NS, telemetry).records()
    return recs, telemetry.sources["app"].malformed


@pytest.mark.parametrize("fmt", sorted(MALFORMED))
def test_golden(fmt: str) -> None:
    recs, counted = records_of(fmt)
    expected_path = GOLDEN / f"{fmt}.expected.jsonl"
    got = b"".join(orjson.dumps(r, option=orjson.OPT_SORT_KEYS) + b"\n" for r in recs)
    if os.environ.get("LOGSHIP_UPDATE_GOLDEN"):
        expected_path.write_bytes(got)
    assert got.decode().splitlines() == expected_path.read_text().splitlines()
    assert [i for i, r in enumerate(recs) if r.get("malformed")] == MALFORMED[fmt]
    assert counted == len(MALFORMED[fmt])


@pytest.mark.parametrize("fmt", sorted(MALFORMED))
def test_malformed_lines_are_kept_whole(fmt: str) -> None:
    lines = (GOLDEN / f"{fmt}.log").read_text().split("\n")[:-1]
    recs, _ = records_of(fmt)
    for i in MALFORMED[fmt]:
        assert recs[i]["message"] == lines[i]
        assert recs[i]["fields"] == {}
        if not lines[i].startswith("{"):
            # (A broken JSON line may still yield its time: the fast JSON timestamp path reads
            # the time key without parsing the object.)
            assert recs[i]["timestamp"] == "2026-01-05T12:00:00.000000000Z"
