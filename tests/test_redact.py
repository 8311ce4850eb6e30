"""Redaction: each built-in rule, its negative cases, and property tests with generated secrets."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from logship.config.transforms import REDACT_RULES, CustomRedaction, RedactTransform
from logship.parsing.batch import Batch, SourceInfo
from logship.telemetry import Telemetry
from logship.transforms.redact import BUILTIN, Redactor, luhn_ok


def redactor(*rules: str, marker: str = "[REDACTED]", **kw: object) -> Redactor:
    cfg = RedactTransform.model_validate(
        {"type": "redact", "rules": list(rules), "marker": marker, **kw}
    )
    return Redactor(cfg, "app", Telemetry())


def redact(text: str, *rules: str, marker: str = "[REDACTED]") -> str:
    changed, _ = redactor(*(rules or REDACT_RULES), marker=marker).redact_lines([text.encode()])
    return changed.get(0, text.encode()).decode()


@pytest.mark.parametrize(
    ("line", "want"),
    [
        ("Authorization: Bearer eyJhbGciOi.J9.x-y_z", "Authorization: Bearer [REDACTED]"),
        ("authorization: bearer abc123==", "authorization: bearer [REDACTED]"),
        ("bearer_token=s3cr3t&x=1", "bearer_token=[REDACTED]&x=1"),
        ('{"bearer_token": "s3cr3t"}', '{"bearer_token": "[REDACTED]"}'),
        ("dsn postgres://app:hunter2@db:5432/x", "dsn postgres://app:[REDACTED]@db:5432/x"),
        ("redis://:pw@cache", "redis://:[REDACTED]@cache"),
        ("key AKIAIOSFODNN7EXAMPLE used", "key [REDACTED] used"),
        (
            "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "aws_secret_access_key=[REDACTED]",
        ),
        (
            '{"AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}',
            '{"AWS_SECRET_ACCESS_KEY": "[REDACTED]"}',
        ),
        ("paid with 4111 1111 1111 1111.", "paid with [REDACTED]."),
        ("card=5500-0000-0000-0004 ok", "card=[REDACTED] ok"),
        ("amex 378282246310005", "amex [REDACTED]"),
        ("mail to jane.doe+x@mail.example.co.uk now", "mail to [REDACTED] now"),
    ],
)
def test_builtin_rules_replace_the_secret(line: str, want: str) -> None:
    assert redact(line) == want


@pytest.mark.parametrize(
    "line",
    [
        "card 4111 1111 1111 1112 fails Luhn",  # 16 digits, bad checksum
        "order 4111111111111112",
        '{"ts":1764331200123,"n":1764331200123456789}',  # epoch ms/ns start with 1
        "id 41111111111111110000",  # 20 digits: longer than any card
        "GET http://example.com:8080/path?a=b",  # a URL without user info
        "user@host is not an address without a domain suffix",
        "XAKIAIOSFODNN7EXAMPLE inside a longer word",
        "aws_secret_access_key=short",
        "nothing to see here",
    ],
)
def test_lines_without_secrets_are_untouched(line: str) -> None:
    assert redact(line) == line


def test_luhn() -> None:
    assert luhn_ok(b"4111111111111111")
    assert luhn_ok(b"79927398713")
    assert not luhn_ok(b"4111111111111112")


def test_card_number_as_a_bare_json_number_stays_valid_json() -> None:
    out = redact('{"card":4111111111111111,"note":"x 5500 0000 0000 0004"}')
    assert json.loads(out) == {"card": "[REDACTED]", "note": "x [REDACTED]"}


def test_marker_is_configurable() -> None:
    assert redact("https://u:p4ss@h/", "url_password", marker="***") == "https://u:***@h/"


def test_custom_rules_with_group_references() -> None:
    r = redactor(
        custom=[
            {"name": "session", "regex": r"(session=)[0-9a-f]+", "replacement": r"\1<gone>"},
            {"name": "ssn", "regex": r"\b\d{3}-\d{2}-\d{4}\b"},
        ],
    )
    changed, counts = r.redact_lines([b"session=deadbeef ssn 123-45-6789", b"clean"])
    assert changed == {0: b"session=<gone> ssn [REDACTED]"}
    assert counts == {"session": 1, "ssn": 1}


def test_custom_rule_names_must_be_unique() -> None:
    with pytest.raises(ValueError, match="unique"):
        RedactTransform.model_validate(
            {"type": "redact", "custom": [{"name": "email", "regex": "x"}]}
        )


def make_batch(lines: list[str]) -> Batch:
    raw = [ln.encode() for ln in lines]
    end = sum(len(r) + 1 for r in raw)
    return Batch(SourceInfo("app", "/x.log", "auto", {}), raw, 0, end, 10**18, Telemetry())


def test_the_line_text_and_the_records_both_carry_the_redaction() -> None:
    lines = [
        json.dumps({"ts": "2026-11-28T12:00:00Z", "msg": "login bob@example.com", "ip": "1.2.3.4"}),
        "plain Authorization: Bearer abcdef",
        json.dumps({"ts": "2026-11-28T12:00:01Z", "msg": "fine"}),
    ]
    b = make_batch(lines)
    t = Telemetry()
    out = Redactor(RedactTransform(type="redact"), "app", t).apply(b)
    assert b"bob@example.com" not in b"".join(out.lines)
    assert b"abcdef" not in b"".join(out.lines)
    recs = out.records()
    assert recs[0]["message"] == "login [REDACTED]"
    assert recs[0]["fields"]["ip"] == "1.2.3.4"
    assert recs[1]["message"] == "plain Authorization: Bearer [REDACTED]"
    assert out.line_offsets() == b.line_offsets()
    assert out.end_offset == b.end_offset
    assert out.timestamps().ns() == make_batch(lines).timestamps().ns()
    assert t.sources["app"].redactions == {"email": 1, "bearer": 1}


def test_a_batch_without_secrets_is_passed_on_as_is() -> None:
    b = make_batch([json.dumps({"msg": f"line {i}"}) for i in range(100)])
    assert Redactor(RedactTransform(type="redact"), "app", Telemetry()).apply(b) is b


def test_an_epoch_millisecond_timestamp_is_not_lost_to_the_card_rule() -> None:
    # 4-prefixed 13-digit numbers that pass Luhn are redacted, but the event time was read
    # before: redaction never changes a record's timestamp.
    line = json.dumps({"time": 4000000000006, "msg": "far future"})
    assert luhn_ok(b"4000000000006")
    b = make_batch([line])
    want = make_batch([line]).timestamps().ns()
    out = Redactor(RedactTransform(type="redact"), "app", Telemetry()).apply(b)
    assert b"4000000000006" not in out.lines[0]
    assert out.timestamps().ns() == want


# -- properties ----------------------------------------------------------------------------
def _luhn_complete(body: str) -> str:
    for d in "0123456789":
        if luhn_ok((body + d).encode()):
            return body + d
    raise AssertionError("unreachable")


_alnum = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", min_size=1
)
_token = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/",
    min_size=8,
    max_size=60,
)


@st.composite
def card_numbers(draw: st.DrawFn) -> tuple[str, str]:
    n = draw(st.integers(13, 19))
    first = draw(st.sampled_from("23456789"))
    rest = draw(st.text(alphabet="0123456789", min_size=n - 2, max_size=n - 2))
    digits = _luhn_complete(first + rest)
    sep = draw(st.sampled_from(["", " ", "-"]))
    groups = [digits[i : i + 4] for i in range(0, len(digits), 4)]
    text = sep.join(groups)
    return text, text


@st.composite
def secrets(draw: st.DrawFn) -> tuple[str, str, str]:
    """(rule, the text around the secret, the secret itself)."""
    rule = draw(st.sampled_from(REDACT_RULES))
    if rule == "bearer":
        s = draw(_token)
        pre = draw(
            st.sampled_from(
                [
                    "Authorization: Bearer ",
                    "bearer ",
                    "BEARER\t",
                    "bearer_token=",
                    '"bearer_token":"',
                ]
            )
        )
        return rule, pre + s, s
    if rule == "url_password":
        s = draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789!$%&*", min_size=6))
        user = draw(st.text(alphabet="abcdefghijklmnop", max_size=8))
        return rule, f"https://{user}:{s}@db.example:5432/x", s
    if rule == "aws_access_key":
        body = draw(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", min_size=16, max_size=16))
        s = draw(st.sampled_from(["AKIA", "ASIA"])) + body
        return rule, s, s
    if rule == "aws_secret_key":
        s = draw(
            st.text(
                alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/+=",
                min_size=40,
                max_size=40,
            )
        )
        key = draw(
            st.sampled_from(
                ["aws_secret_access_key=", "AWS_SECRET_ACCESS_KEY: ", "aws_secret_access_key='"]
            )
        )
        return rule, key + s, s
    if rule == "card_number":
        text, s = draw(card_numbers())
        return rule, text, s
    local = draw(_alnum)
    domain = draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=12))
    s = f"{local}@{domain}.{draw(st.sampled_from(['com', 'org', 'co.uk', 'io']))}"
    return rule, s, s


_around = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\n"), max_size=40
)


@settings(max_examples=400, deadline=None)
@given(secret=secrets(), before=_around, after=_around, rules_all=st.booleans())
def test_generated_secrets_never_survive(
    secret: tuple[str, str, str], before: str, after: str, rules_all: bool
) -> None:
    rule, text, value = secret
    assume(value not in before and value not in after and text.count(value) == 1)
    line = f"{before} ; {text} ; {after}"
    rules = REDACT_RULES if rules_all else (rule,)
    out = redact(line, *rules)
    assert value not in out
    assert "[REDACTED]" in out
    # Nothing this rule would still take for a secret is left but the marker.
    pattern = re.compile(BUILTIN[rule][0])
    for m in pattern.finditer(out.encode()):
        assert b"[REDACTED]" in m.group(0) or (
            rule == "card_number" and not luhn_ok(m.group(0).replace(b" ", b"").replace(b"-", b""))
        )


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(st.binary(max_size=200), max_size=20))
def test_redaction_never_raises_on_arbitrary_bytes(lines: list[bytes]) -> None:
    r = redactor(
        *REDACT_RULES,
        custom=[CustomRedaction(name="c", regex=r"(x+)y", replacement=r"\1-").model_dump()],
    )
    changed, _ = r.redact_lines(lines)
    assert set(changed) <= set(range(len(lines)))


@settings(max_examples=200, deadline=None)
@given(
    secret=secrets(),
    # A newline inside a line (a multiline record) takes the slower way to find lines.
    others=st.lists(st.text(alphabet='abc {}:,"01 \n', max_size=30), max_size=30),
    where=st.integers(0, 30),
)
def test_a_secret_is_found_wherever_it_is_in_the_batch(
    secret: tuple[str, str, str], others: list[str], where: int
) -> None:
    _, text, value = secret
    lines = [*others]
    lines.insert(min(where, len(lines)), f"x ; {text} ; y")
    assume(all(value not in o for o in others) and text.count(value) == 1)
    changed, _ = redactor(*REDACT_RULES).redact_lines([ln.encode() for ln in lines])
    out = [changed.get(i, ln.encode()) for i, ln in enumerate(lines)]
    assert not any(value.encode() in o for o in out)
