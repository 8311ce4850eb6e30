"""The transforms' fast paths give what the exact path gives, line for line.

* the scan shared by redaction and the level column (logship/transforms/scan.py): a scan
  spliced after redaction is the scan of the new lines, and its number checks miss nothing;
* the level codes (one byte per line) equal the level column of the full orjson parse;
* a chain of ``redact`` (card numbers) and a ``level`` field label, the benchmark's, against
  an oracle that redacts each line on its own and parses each redacted line with orjson:
  every line is in the part of its level, with its timestamp, and no card number survives.
"""

from __future__ import annotations

import json
import re

from hypothesis import given, settings
from hypothesis import strategies as st
from test_jsonlevels import batch_of, exact, objects
from test_jsonlevels import lines as json_lines

from logship.config.model import SourceConfig
from logship.parsing.batch import Batch, SourceInfo
from logship.telemetry import Telemetry
from logship.transforms.filter import level_codes
from logship.transforms.jsonlevels import _BIG_EXPONENT, LevelWords, decoded_keys
from logship.transforms.pipeline import SourceChain
from logship.transforms.redact import CardRule, luhn_ok
from logship.transforms.scan import CLASSES, BatchScan

# -- the shared scan -------------------------------------------------------------------------
_SHAPES = [_BIG_EXPONENT, re.compile(b"0{13}"), re.compile(b"0{210}")]
_line_bytes = st.one_of(
    st.binary(max_size=40),
    st.text(alphabet='0123456789eE+- ,}]x"\n\t', max_size=40).map(str.encode),
)


def _check_starts(scan: BatchScan) -> None:
    # Line by line first (a bisection over the batch's offsets for the first hits), then
    # from the list of starts.
    n = len(scan.lines)
    for pos in range(1, len(scan.text) - 1):  # a line and the ",\n" after it
        i = scan.line_of(pos)
        start = scan.start(i)
        end = scan.start(i + 1) if i + 1 < n else len(scan.text) - 1
        assert start <= pos < max(end, start + 1)
    starts = scan.starts()
    assert len(starts) == len(scan.lines)
    for i, (start, line) in enumerate(zip(starts, scan.lines, strict=True)):
        assert scan.text[start : start + len(line)] == line
        assert scan.start(i) == start


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(_line_bytes, min_size=1, max_size=8), data=st.data(), lend=st.booleans())
def test_a_spliced_scan_is_the_scan_of_the_new_lines(
    lines: list[bytes], data: st.DataObject, lend: bool
) -> None:
    batch = Batch(SourceInfo("app", "/x.log", "json"), lines, 7, 7 + 100, 0) if lend else None
    scan = BatchScan(lines, batch)
    _check_starts(scan)
    which = data.draw(st.sets(st.integers(0, len(lines) - 1)))
    changed = {i: data.draw(_line_bytes) for i in sorted(which)}
    new = [changed.get(i, line) for i, line in enumerate(lines)]
    out = scan.replaced(new, changed)
    fresh = BatchScan(new)
    assert out.lines is new
    assert out.text == fresh.text == b"[" + b",\n".join(new) + b"]"
    _check_starts(out)
    for shape in _SHAPES:  # every shape of the new lines is seen by the checks
        if shape.search(fresh.classes()) is not None:
            assert any(shape.search(c) is not None for c in out.class_texts())
    assert out.classes() == fresh.classes()


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(st.text(alphabet="01 x,\n", max_size=12).map(str.encode), min_size=1),
    lend=st.booleans(),
)
def test_lines_with_finds_the_lines_holding_the_needle(lines: list[bytes], lend: bool) -> None:
    # Few symbols: equal lines and hits in consecutive lines are common.
    if lend:  # a tailer's batch: its lines were split at each newline
        lines = [line.replace(b"\n", b"") for line in lines]
    batch = Batch(SourceInfo("app", "/x.log", "json"), lines, 3, 3 + 100, 0) if lend else None
    for needle in (b"0", b"00", b"0000"):
        found: set[int] = set()
        BatchScan(lines, batch).lines_with(needle, found)
        assert found == {i for i, line in enumerate(lines) if needle in line.translate(CLASSES)}


def test_a_big_exponent_is_seen_however_the_number_ends() -> None:
    for tail in (b"}", b" }", b"\t}", b",", b"]}", b"  ,"):
        for number in (b"1e400", b"-2.5E+308", b"1e0400"):
            scan = BatchScan([b'{"a":' + number + tail])
            assert _BIG_EXPONENT.search(scan.classes()) is not None, (number, tail)
    # A hex id with "e123" inside a string is not taken for a number.
    assert _BIG_EXPONENT.search(BatchScan([b'{"req":"ae1234f","n":1}']).classes()) is None


# -- the benchmark's chain: redact card numbers, then the level as a label ---------------------
def _luhn_complete(body: str) -> str:
    return next(body + d for d in "0123456789" if luhn_ok((body + d).encode()))


@st.composite
def cards(draw: st.DrawFn) -> str:
    n = draw(st.integers(13, 19))
    digits = draw(st.sampled_from("23456789")) + draw(
        st.text(alphabet="0123456789", min_size=n - 2, max_size=n - 2)
    )
    digits = _luhn_complete(digits)
    sep = draw(st.sampled_from(["", " ", "-"]))
    return sep.join(digits[i : i + 4] for i in range(0, len(digits), 4))


_LEVEL_VALUES = ['"info"', '"WARN"', '"Error"', '"debug"', '""', "30", "null", "true", '"é"']


@st.composite
def log_lines(draw: st.DrawFn, valid: bool = False) -> tuple[bytes, list[str]]:
    """A JSON log line as loggers and attackers write them, and the card numbers in it
    (``valid``: without numbers past a double and truncated lines)."""
    secrets: list[str] = []
    members = [
        f'"ts":"2026-11-28T12:00:{draw(st.integers(0, 59)):02d}.{draw(st.integers(0, 999)):03d}Z"'
    ]
    for _ in range(draw(st.integers(0, 4))):
        kinds = ["level", "card", "bare", "noise", "nested", "escape"] + (
            [] if valid else ["big", "long"]
        )
        kind = draw(st.sampled_from(kinds))
        if kind == "level":
            key = draw(st.sampled_from(['"level"', '"lvl"', '"severity"', '"lev\\u0065l"']))
            members.append(f"{key}:{draw(st.sampled_from(_LEVEL_VALUES))}")
        elif kind == "card":
            card = draw(cards())
            secrets.append(card)
            members.append(f'"msg":"paid {card} ok"')
        elif kind == "bare":
            card = draw(cards()).replace(" ", "").replace("-", "")
            secrets.append(card)
            members.append(f'"card":{card}')
        elif kind == "noise":  # digit runs that fail Luhn, epoch milliseconds, hex ids
            members.append(
                draw(
                    st.sampled_from(
                        [
                            '"n":4111111111111112',
                            '"at":1732800000000',
                            '"req":"e1234567890123ab"',
                            '"id":"4111 1111 1111 1112"',
                        ]
                    )
                )
            )
        elif kind == "nested":
            members.append(f'"ctx":{{"level":{draw(st.sampled_from(_LEVEL_VALUES))}}}')
        elif kind == "escape":
            members.append('"msg":"has \\"level\\":\\"error\\" and \\u00e9"')
        elif kind == "long":  # 301 digits fit a double, 401 do not (orjson refuses them)
            members.append(f'"x":1{"0" * draw(st.sampled_from([300, 400]))}')
        else:
            members.append(f'"x":{draw(st.sampled_from(["1e400", "2.5e30", "-1E+999"]))}')
    line = ("{" + ",".join(members) + "}").encode()
    if not valid and draw(st.integers(0, 9)) == 0:
        line = line[: len(line) // 2]  # malformed: kept raw, no level
    return line, secrets


def _chain() -> SourceChain:
    cfg = SourceConfig.model_validate(
        {
            "include": ["x"],
            "format": "json",
            "transforms": [{"type": "redact", "rules": ["card_number"]}],
            "enrich": {"field_labels": ["level"]},
        }
    )
    return SourceChain("app", cfg, Telemetry())


@settings(max_examples=300, deadline=None)
@given(st.lists(log_lines(), min_size=1, max_size=12))
def test_redact_then_level_label_equals_the_exact_path(
    generated: list[tuple[bytes, list[str]]],
) -> None:
    lines = [line for line, _ in generated]
    end = sum(map(len, lines)) + len(lines)
    batch = Batch(SourceInfo("app", "/x.log", "json"), lines, 0, end, 5)
    want_ts = Batch(batch.info, lines, 0, end, 5).timestamps().ns()
    parts = _chain().apply(batch)

    rule = CardRule(b"[REDACTED]")
    redacted = [rule.sub(line)[0] for line in lines]  # each line on its own
    levels = exact(batch_of(redacted))
    start = {o: i for i, o in enumerate(Batch(batch.info, lines, 0, 0, 0).line_offsets())}
    seen: list[int] = []
    for part in parts:
        label = part.info.labels.get("level")
        for line, offset, ns in zip(
            part.lines, part.line_offsets(), part.timestamps().ns(), strict=True
        ):
            i = start[offset]
            seen.append(i)
            assert line == redacted[i]
            assert (levels[i] or None) == label
            assert ns == want_ts[i]
    assert sorted(seen) == list(range(len(lines)))
    assert len({p.info.labels.get("level") for p in parts}) == len(parts)
    out = b"\n".join(line for p in parts for line in p.lines)
    for _, secrets in generated:
        for card in secrets:
            assert card.encode() not in out


def test_the_chain_redacts_and_labels_a_corpus_like_batch() -> None:
    lines = [
        json.dumps(
            {
                "ts": f"2026-11-28T12:00:00.{i:03d}Z",
                "level": ["info", "debug", "warn", "error"][i % 4],
                "msg": f"served path=/api/v1/items/{i}",
                "req": "4111111111111111" if i == 5 else f"{i:016x}",
            },
            separators=(",", ":"),
        ).encode()
        for i in range(40)
    ]
    batch = Batch(SourceInfo("app", "/x.log", "json"), lines, 0, 1, 0)
    parts = _chain().apply(batch)
    assert [p.info.labels["level"] for p in parts] == ["info", "debug", "warn", "error"]
    assert [len(p.lines) for p in parts] == [10, 10, 10, 10]
    assert b'"req":"[REDACTED]"' in parts[1].lines[1]
    assert all(b"4111111111111111" not in line for p in parts for line in p.lines)
    # The fast path answered (not the full parse): the redacted lines have level codes.
    redacted = [line for p in parts for line in p.lines]
    assert level_codes(batch_of(redacted)) is not None


# -- level codes ------------------------------------------------------------------------------
# Batches of lines that are all well-formed take the fast path; a few lines of the generator
# shared with test_jsonlevels.py (malformed, huge numbers, invalid UTF-8...) send batches to the
# full parse, which must then answer alike.
_mostly_valid = st.integers(0, 15).flatmap(
    lambda k: (
        json_lines()
        if k == 0
        else objects().map(str.encode)
        if k == 1
        else log_lines(valid=True).map(lambda g: g[0])
    )
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_mostly_valid, min_size=1, max_size=6), st.sampled_from(["json", "auto"]))
def test_level_codes_equal_the_full_parse(ls: list[bytes], fmt: str) -> None:
    batch = batch_of(ls, fmt)
    for level_only in (False, True):
        found = level_codes(batch, None, level_only)
        if found is not None:  # whenever the fast path answers, it answers what orjson would
            values, codes, _ = found
            want = exact(batch)
            assert [values[c] for c in codes] == want
            assert values == list(dict.fromkeys(want))


@settings(max_examples=300, deadline=None)
@given(old=st.lists(_mostly_valid, min_size=1, max_size=6), data=st.data())
def test_level_codes_of_a_replaced_scan_equal_the_full_parse_of_the_new_lines(
    old: list[bytes], data: st.DataObject
) -> None:
    """Redaction hands on the old text and the changed lines (valid or not, either way)."""
    which = data.draw(st.sets(st.integers(0, len(old) - 1)))
    changed = {i: data.draw(_mostly_valid) for i in sorted(which)}
    new = [changed.get(i, line) for i, line in enumerate(old)]
    batch = batch_of(new)
    found = level_codes(batch, BatchScan(old).replaced(new, changed), level_only=True)
    if found is not None:
        values, codes, _ = found
        assert [values[c] for c in codes] == exact(batch)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(_mostly_valid, min_size=1, max_size=6), min_size=1, max_size=4))
def test_level_codes_with_a_sources_learnt_words_equal_the_full_parse(
    batches: list[list[bytes]],
) -> None:
    words = LevelWords()  # one source's batches, one after the other
    for ls in batches:
        batch = batch_of(ls)
        found = level_codes(batch, None, True, words)
        if found is not None:
            values, codes, _ = found
            assert [values[c] for c in codes] == exact(batch)


def test_level_words_are_learnt_then_decoded_as_cached_strings() -> None:
    words = LevelWords()
    first = [b'{"level":"info","m":1}', b'{"level":"warn"}', b'{"level":null}']
    assert level_codes(batch_of(first), None, True, words) == (
        ["info", "warn", None],
        bytes([0, 1, 2]),
        False,
    )
    assert words.missed and words.words == {"info", "warn"}
    again = [b'{"level":"warn"}', b'{"level":"inf\\u006f"}']
    assert level_codes(batch_of(again), None, True, words) == (
        ["warn", "info"],
        bytes([0, 1]),
        False,
    )
    assert not words.missed  # the word decoder knew every value
    keys, more = decoded_keys(again, None, words=words), decoded_keys(first, None, words=words)
    assert keys is not None and more is not None
    assert keys[1].level == "info" and keys[1].level is more[0].level  # one string per word
    new = [b'{"level":"error"}', b'{"level":30}', b'{"level":"info"}']
    assert level_codes(batch_of(new), None, True, words) == (
        ["error", "30", "info"],
        bytes([0, 1, 2]),
        False,
    )
    assert words.missed and words.words == {"info", "warn", "error"}
    many = [f'{{"level":"w{i}"}}'.encode() for i in range(70)]
    assert level_codes(batch_of(many), None, True, words) is not None
    assert not words.learning and words.decoder is None  # not a level vocabulary: given up


def test_level_codes_are_taken_for_ordinary_logs() -> None:
    ls = [
        b'{"ts":"2026-11-28T12:00:00.002Z","level":"info","msg":"a","req":"b2609a0bdd2b7550"}',
        b'{"ts":"2026-11-28T12:00:00.003Z","level":"WARN","msg":"b","d":0.5}',
        b'{"ts":"2026-11-28T12:00:00.004Z","level":"info","msg":"c \\"level\\":\\"x\\""}',
        b'{"ts":"2026-11-28T12:00:00.005Z","lvl":"warning","msg":"d"}',
        b'{"ts":"2026-11-28T12:00:00.006Z","msg":"no level"}',
    ]
    want = (["info", "warn", None], bytes([0, 1, 0, 1, 2]), True)
    assert level_codes(batch_of(ls)) == level_codes(batch_of(ls), None, True) == want
    pino = [b'{"level":30,"msg":"a"}', b'{"level":50,"msg":"b"}']
    assert level_codes(batch_of(pino), None, True) == (["30", "50"], bytes([0, 1]), False)


def test_level_codes_leave_mixed_booleans_and_integers_to_the_column() -> None:
    # True == 1 as dict keys: codes per distinct value could merge them.
    assert level_codes(batch_of([b'{"level":true}', b'{"level":1}'])) is None
    assert level_codes(batch_of([b'{"level":1}', b'{"level":1.0}'])) is None
