"""Unit tests of each transform and of the chain: pure functions over batches."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from logship.config import ConfigError, build_config
from logship.config.model import SourceConfig
from logship.config.transforms import (
    DropTransform,
    EnrichConfig,
    KeepTransform,
    KubernetesEnrich,
    RateLimitTransform,
    RemoveTransform,
    RenameTransform,
    SampleTransform,
)
from logship.parsing.batch import Batch, SourceInfo
from logship.pipeline.acks import AckTracker
from logship.telemetry import Telemetry
from logship.transforms.enrich import Enricher, parse_downward_file, static_labels
from logship.transforms.fields import FieldEditor
from logship.transforms.filter import LineFilter
from logship.transforms.pipeline import SourceChain
from logship.transforms.ratelimit import RateLimiter
from logship.transforms.sample import Sampler


def make_batch(lines: list[str], fmt: str = "auto", start: int = 1000) -> Batch:
    raw = [ln.encode() for ln in lines]
    end = start + sum(len(r) + 1 for r in raw)
    info = SourceInfo("app", "/var/log/app.log", fmt, {"team": "a"})
    return Batch(info, raw, start, end, 1_764_000_000 * 10**9, Telemetry())


def jl(**fields: Any) -> str:
    return json.dumps(fields, separators=(",", ":"))


def texts(batch: Batch) -> list[str]:
    return [ln.decode() for ln in batch.lines]


LINES = [
    jl(ts="2026-11-28T12:00:00.000Z", level="debug", msg="cache hit", path="/a"),
    jl(ts="2026-11-28T12:00:01.000Z", level="INFO", msg="GET /healthz", path="/healthz"),
    "plain text line mentioning healthz",
    jl(ts="2026-11-28T12:00:02.000Z", lvl="warning", msg="slow", http={"status": 503}),
    jl(ts="2026-11-28T12:00:03.000Z", severity="ERROR", msg="boom", ok=False),
]


# -- drop / keep ---------------------------------------------------------------------------
def test_drop_by_level_keeps_offsets_and_end_offset() -> None:
    b = make_batch(LINES)
    offsets = b.line_offsets()
    t = Telemetry()
    out = LineFilter(DropTransform(type="drop", level=["debug", "info"]), "app", t).apply(b)
    assert texts(out) == [LINES[2], LINES[3], LINES[4]]
    assert out.line_offsets() == [offsets[2], offsets[3], offsets[4]]
    assert out.end_offset == b.end_offset
    assert t.sources["app"].dropped_lines == 2
    assert t.sources["app"].dropped_by == {"drop": 2}


def test_level_words_are_normalized_in_config_and_lines() -> None:
    cfg = KeepTransform(type="keep", level=["warning", "err"])
    assert cfg.level == ["warn", "error"]
    out = LineFilter(cfg, "app", Telemetry()).apply(make_batch(LINES))
    assert texts(out) == [LINES[3], LINES[4]]  # lvl=warning, severity=ERROR


def test_keep_by_field_value_with_dotted_path_and_json_spelling() -> None:
    keep = KeepTransform(type="keep", field="http.status", values=["503"])
    assert texts(LineFilter(keep, "app", Telemetry()).apply(make_batch(LINES))) == [LINES[3]]
    false = KeepTransform(type="keep", field="ok", values=["false"])
    assert texts(LineFilter(false, "app", Telemetry()).apply(make_batch(LINES))) == [LINES[4]]


def test_drop_by_regex_on_the_line_and_on_a_field() -> None:
    line_rx = DropTransform(type="drop", regex="healthz")
    out = LineFilter(line_rx, "app", Telemetry()).apply(make_batch(LINES))
    assert texts(out) == [LINES[0], LINES[3], LINES[4]]
    field_rx = DropTransform(type="drop", field="path", regex="^/health")
    out = LineFilter(field_rx, "app", Telemetry()).apply(make_batch(LINES))
    assert texts(out) == [LINES[0], LINES[2], LINES[3], LINES[4]]  # the plain line has no path


def test_regex_anchors_apply_per_line() -> None:
    out = LineFilter(KeepTransform(type="keep", regex="^plain"), "app", Telemetry()).apply(
        make_batch(LINES)
    )
    assert texts(out) == [LINES[2]]


def test_conditions_are_combined_with_and() -> None:
    cfg = DropTransform(type="drop", level=["info"], regex="healthz")
    extra = jl(level="info", msg="GET /orders")
    out = LineFilter(cfg, "app", Telemetry()).apply(make_batch([*LINES, extra]))
    assert texts(out) == [LINES[0], LINES[2], LINES[3], LINES[4], extra]


def test_malformed_json_lines_survive_a_level_filter() -> None:
    bad = '{"level":"debug", broken'
    out = LineFilter(DropTransform(type="drop", level=["debug"]), "app", Telemetry()).apply(
        make_batch([LINES[0], bad, LINES[1]])
    )
    assert texts(out) == [bad, LINES[1]]


def test_filter_reads_levels_from_records_when_they_exist() -> None:
    b = make_batch(LINES)
    b.records()
    out = LineFilter(DropTransform(type="drop", level=["debug"]), "app", Telemetry()).apply(b)
    assert [r["message"] for r in out.records()] == [
        "GET /healthz",
        LINES[2],
        "slow",
        "boom",
    ]


@pytest.mark.parametrize(
    ("transform", "problem"),
    [
        ({"type": "drop"}, "sources.app.transforms[0]: give at least one of level"),
        ({"type": "drop", "values": ["x"]}, "values needs field"),
        ({"type": "keep", "field": "x"}, "field needs values or regex"),
        ({"type": "drop", "regex": "(x"}, "transforms[0].regex: invalid regular expression"),
        ({"type": "drop", "regex": "x*"}, "matches the empty string"),
        ({"type": "dorp"}, "unknown transform type 'dorp'; expected one of: drop, keep"),
        ({"type": "sample", "rate": 0}, "transforms[0].rate: Input should be greater than"),
        ({"type": "redact", "marker": 'a"b'}, "transforms[0].marker: must not contain quotes"),
        (
            {"type": "redact", "custom": [{"name": "x", "regex": "a", "replacement": "\\1"}]},
            "custom[0]: replacement: \\1 is not a group",
        ),
        ({"type": "rate_limit", "lines_per_second": 10, "mode": "wait"}, "transforms[0].mode"),
    ],
)
def test_config_errors_name_the_field(transform: dict[str, Any], problem: str) -> None:
    data = {
        "sources": {"app": {"include": ["x.log"], "transforms": [transform]}},
        "sinks": {"out": {"type": "stdout"}},
    }
    with pytest.raises(ConfigError) as err:
        build_config(data, "c.yaml", env={})
    assert problem in str(err.value)


# -- rename / remove -----------------------------------------------------------------------
def test_rename_and_remove_rewrite_only_json_lines_that_have_the_fields() -> None:
    b = make_batch(LINES)
    ts_before = b.timestamps().ns()
    ren = FieldEditor(
        RenameTransform(type="rename", fields={"msg": "message", "http.status": "code"})
    )
    out = FieldEditor(RemoveTransform(type="remove", fields=["path", "ok"])).apply(ren.apply(b))
    objs = [json.loads(x) if x.startswith("{") else x for x in texts(out)]
    assert objs[0] == {"ts": "2026-11-28T12:00:00.000Z", "level": "debug", "message": "cache hit"}
    assert objs[2] == LINES[2]
    assert objs[3] == {
        "ts": "2026-11-28T12:00:02.000Z",
        "lvl": "warning",
        "http": {},
        "message": "slow",
        "code": 503,
    }
    assert "ok" not in objs[4]
    assert out.line_offsets() == b.line_offsets()
    assert out.timestamps().ns() == ts_before
    assert [r["message"] for r in out.records()][:2] == ["cache hit", "GET /healthz"]


def test_field_edit_without_those_fields_returns_the_same_batch() -> None:
    b = make_batch(LINES)
    assert FieldEditor(RemoveTransform(type="remove", fields=["nothere"])).apply(b) is b


def test_a_removed_timestamp_field_keeps_the_event_time() -> None:
    b = make_batch([LINES[0]])
    want = b.timestamps().ns()
    fresh = make_batch([LINES[0]])
    out = FieldEditor(RemoveTransform(type="remove", fields=["ts"])).apply(fresh)
    assert out.timestamps().ns() == want
    assert "ts" not in json.loads(out.lines[0])


# -- sample --------------------------------------------------------------------------------
def test_sampling_keeps_about_one_in_n_and_is_deterministic() -> None:
    lines = [jl(i=i, level="debug" if i % 2 else "info") for i in range(20_000)]
    t = Telemetry()
    s = Sampler(SampleTransform(type="sample", rate=10), "app", t)
    first = texts(s.apply(make_batch(lines)))
    again = texts(s.apply(make_batch(list(reversed(lines)))))
    assert 1_600 < len(first) < 2_400
    assert sorted(first) == sorted(again)  # same lines chosen, whatever the batch
    assert t.sources["app"].dropped_by["sample"] == 2 * (20_000 - len(first))


def test_sampling_only_some_levels_keeps_the_others() -> None:
    lines = [jl(i=i, level="debug" if i % 2 else "info") for i in range(2_000)]
    s = Sampler(SampleTransform(type="sample", rate=1000, level=["debug"]), "app", Telemetry())
    out = [json.loads(x) for x in texts(s.apply(make_batch(lines)))]
    assert sum(1 for o in out if o["level"] == "info") == 1_000
    assert sum(1 for o in out if o["level"] == "debug") < 20


# -- rate limit ----------------------------------------------------------------------------
class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rate_limit_drop_mode_keeps_burst_then_rate() -> None:
    clock = FakeClock()
    t = Telemetry()
    cfg = RateLimitTransform(type="rate_limit", lines_per_second=100, burst=50)
    rl = RateLimiter(cfg, "app", t, clock)
    lines = [f"line {i}" for i in range(80)]
    assert texts(rl.apply(make_batch(lines))) == lines[:50]
    assert len(rl.apply(make_batch(lines))) == 0
    clock.now += 0.25  # 25 tokens
    assert len(rl.apply(make_batch(lines))) == 25
    clock.now += 60  # refills up to the burst only
    assert len(rl.apply(make_batch(lines))) == 50
    assert t.sources["app"].dropped_by["rate_limit"] == 30 + 80 + 55 + 30


def test_rate_limit_block_mode_passes_everything_and_asks_for_a_delay() -> None:
    clock = FakeClock()
    t = Telemetry()
    cfg = RateLimitTransform(type="rate_limit", lines_per_second=100, burst=10, mode="block")
    rl = RateLimiter(cfg, "app", t, clock)
    out = rl.apply(make_batch([f"l{i}" for i in range(210)]))
    assert len(out) == 210
    assert rl.delay() == pytest.approx(2.0)  # 200 lines of debt at 100/s
    clock.now += 1.5
    assert rl.delay() == pytest.approx(0.5)
    clock.now += 0.5
    assert rl.delay() == 0.0
    assert t.sources["app"].dropped_lines == 0


def test_block_mode_chain_exposes_the_delay_to_tailers() -> None:
    cfg = SourceConfig.model_validate(
        {
            "include": ["x"],
            "transforms": [{"type": "rate_limit", "lines_per_second": 10, "mode": "block"}],
        }
    )
    chain = SourceChain("app", cfg, Telemetry(), env={})
    assert chain.pace is not None and chain.pace() == 0.0
    chain.apply(make_batch(["x"] * 40))  # burst 10, then 30 lines of debt at 10/s
    assert chain.pace() == pytest.approx(3.0, abs=0.1)
    drop = SourceConfig.model_validate(
        {"include": ["x"], "transforms": [{"type": "rate_limit", "lines_per_second": 10}]}
    )
    assert SourceChain("app", drop, Telemetry(), env={}).pace is None


# -- enrichment ----------------------------------------------------------------------------
def test_downward_api_file_is_parsed_with_go_escapes() -> None:
    text = (
        'app="shop"\n'
        'app.kubernetes.io/name="shop-api"\n'
        'note="say \\"hi\\"\\n\\u00e9\\\\"\n'
        "garbage line\n"
    )
    assert parse_downward_file(text) == {
        "app": "shop",
        "app.kubernetes.io/name": "shop-api",
        "note": 'say "hi"\né\\',
    }


def test_static_labels_from_env_files_and_host(tmp_path: Path) -> None:
    (tmp_path / "labels").write_text('app="shop"\npod-template-hash="abc"\n')
    (tmp_path / "annotations").write_text('team="payments"\nhuge="x"\n')
    cfg = EnrichConfig(
        host="host",
        kubernetes=KubernetesEnrich(
            labels_file=str(tmp_path / "labels"),
            annotations_file=str(tmp_path / "annotations"),
            pod_labels=["app", "team"],
        ),
    )
    env = {"POD_NAME": "shop-7d9", "POD_NAMESPACE": "prod", "NODE_NAME": "", "POD_IP": "10.0.0.7"}
    labels = static_labels(cfg, env, hostname=lambda: "node-1")
    assert labels == {
        "app": "shop",
        "team": "payments",
        "pod": "shop-7d9",
        "namespace": "prod",
        "pod_ip": "10.0.0.7",
        "host": "node-1",
    }


def test_missing_downward_files_add_nothing(tmp_path: Path) -> None:
    cfg = EnrichConfig(kubernetes=KubernetesEnrich(labels_file=str(tmp_path / "none")))
    assert static_labels(cfg, {"POD_NAME": "p"}) == {"pod": "p"}


def test_enrichment_labels_join_the_source_labels_which_win() -> None:
    e = Enricher(EnrichConfig(), "app", {"team": "enriched", "pod": "p1"})
    (out,) = e.apply(make_batch(LINES))
    assert out.info.labels == {"team": "a", "pod": "p1"}
    (again,) = e.apply(make_batch(LINES[:1]))
    assert again.info.labels == out.info.labels


def test_field_labels_split_a_batch_by_value() -> None:
    e = Enricher(EnrichConfig(field_labels=["level", "http.status"]), "app", {})
    parts = e.apply(make_batch(LINES))
    by_labels = {tuple(sorted(p.info.labels.items())): texts(p) for p in parts}
    assert by_labels[(("level", "debug"), ("team", "a"))] == [LINES[0]]
    assert by_labels[(("http.status", "503"), ("level", "warn"), ("team", "a"))] == [LINES[3]]
    assert by_labels[(("team", "a"),)] == [LINES[2]]  # no level, no status: no field labels
    assert sum(len(p) for p in parts) == len(LINES)
    assert all(p.end_offset == parts[0].end_offset for p in parts)


def test_cardinality_guard_refuses_a_field_label_once(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    e = Enricher(EnrichConfig(field_labels=["user", "level"], max_values=5), "app", {}, clock)
    few = [jl(user=f"u{i % 3}", level="info") for i in range(30)]
    assert {p.info.labels.get("user") for p in e.apply(make_batch(few))} == {"u0", "u1", "u2"}
    many = [jl(user=f"u{i}", level="info") for i in range(30)]
    with caplog.at_level(logging.WARNING, logger="logship.transforms"):
        parts = e.apply(make_batch(many))
        e.apply(make_batch(many))
    assert len(parts) == 1 and parts[0].info.labels == {"team": "a", "level": "info"}
    assert "user" in json.loads(parts[0].lines[7])  # the record keeps the field
    assert [r.getMessage() for r in caplog.records].count(
        "field label refused: too many distinct values; the field stays in records"
    ) == 1


def test_cardinality_window_forgets_old_values() -> None:
    clock = FakeClock()
    e = Enricher(EnrichConfig(field_labels=["user"], max_values=3, window=60), "app", {}, clock)
    for start in range(0, 12, 3):
        e.apply(make_batch([jl(user=f"u{start + i}") for i in range(3)]))
        clock.now += 61
    assert not e.refused


# -- the chain -----------------------------------------------------------------------------
def test_chain_applies_steps_in_order_and_one_ticket_covers_all_parts() -> None:
    cfg = SourceConfig.model_validate(
        {
            "include": ["x"],
            "transforms": [
                {"type": "redact", "rules": ["email"]},
                {"type": "drop", "regex": "REDACTED"},
                {"type": "keep", "level": ["debug", "warn", "error"]},
            ],
            "enrich": {"field_labels": ["level"]},
        }
    )
    t = Telemetry()
    chain = SourceChain("app", cfg, t, env={})
    lines = [*LINES, jl(level="error", msg="mail bob@example.com")]
    b = make_batch(lines)
    parts = chain.apply(b)
    assert sorted(x for p in parts for x in texts(p)) == sorted([LINES[0], LINES[3], LINES[4]])
    assert t.sources["app"].dropped_by == {"drop": 1, "keep": 2}
    assert t.sources["app"].redactions == {"email": 1}
    # As the agent does: one ticket for sinks x parts; the offset moves to the batch's end.
    tracker = AckTracker(lambda n: None)
    f = tracker.file("k", "/x", "0:", b.start_offset)
    ticket = f.ticket(b.end_offset, 1, 2 * len(parts))
    for _ in range(2 * len(parts) - 1):
        ticket.done()
    assert f.committed == b.start_offset
    ticket.done()
    assert f.committed == b.end_offset


def test_a_failing_redact_step_drops_the_batch_and_counts_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from logship.transforms import redact

    cfg = SourceConfig.model_validate(
        {"include": ["x"], "transforms": [{"type": "redact"}, {"type": "sample", "rate": 1}]}
    )
    t = Telemetry()
    chain = SourceChain("app", cfg, t, env={})

    def boom(self: object, lines: list[bytes]) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(redact.Redactor, "redact_lines", boom)
    (out,) = chain.apply(make_batch(LINES))
    assert len(out) == 0 and out.end_offset == make_batch(LINES).end_offset
    assert t.sources["app"].transform_errors == 1
    assert t.sources["app"].dropped_by == {"redact_error": len(LINES)}


def test_the_readme_example_is_a_valid_config() -> None:
    import yaml

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("## Transforms and enrichment", 1)[1]
    example = section.split("```yaml", 1)[1].split("```", 1)[0]
    data = yaml.safe_load(example)
    data["sinks"] = {"out": {"type": "stdout"}}
    cfg = build_config(data, "README.md", env={})
    kinds = [t.type for t in cfg.sources["app"].transforms]
    assert kinds == ["redact", "drop", "drop", "rename", "remove", "sample", "rate_limit"]
    assert cfg.sources["app"].enrich is not None


def test_a_failing_enrichment_lets_the_lines_through(monkeypatch: pytest.MonkeyPatch) -> None:
    from logship.transforms import enrich

    cfg = SourceConfig.model_validate({"include": ["x"], "enrich": {"field_labels": ["level"]}})
    t = Telemetry()
    chain = SourceChain("app", cfg, t, env={})

    def boom(self: object, batch: Batch) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(enrich.Enricher, "apply", boom)
    (out,) = chain.apply(make_batch(LINES))
    assert texts(out) == LINES
    assert t.sources["app"].transform_errors == 1
