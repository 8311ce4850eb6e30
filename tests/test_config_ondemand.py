"""Config models build their validators only when a config uses them, and validate the same."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from pydantic import BaseModel

from logship.config import ConfigError, build_config, effective_config, model
from logship.config.model import AgentConfig, LokiSinkConfig
from logship.config.ondemand import defaults

TAIL = {
    "sources": {"tail": {"include": ["/var/log/app.log"]}},
    "sinks": {"loki": {"type": "loki", "url": "http://loki:3100", "batch": {"linger": 0.05}}},
}


def test_a_loki_config_builds_no_other_sink_transform_or_enrich_model() -> None:
    """A fresh interpreter: these tests' other configs must not have built the models yet."""
    probe = (
        "import json; from logship.config import build_config; "
        "from logship.config import model, transforms; "
        f"build_config(json.loads({json.dumps(TAIL)!r}), 'probe', env={{}}); "
        "mods = [model.ElasticsearchSinkConfig, model.OtlpSinkConfig, model.StdoutSinkConfig, "
        "model.MultilineConfig, model.BasicAuthConfig, model.OtlpMetricsConfig, "
        "transforms.DropTransform, transforms.RedactTransform, transforms.EnrichConfig, "
        "model.TlsConfig, model.TimestampConfig, model.TailingConfig, model.HttpConfig, "
        "model.ReloadConfig, model.DeadLetterConfig, "
        "model.LokiSinkConfig, model.BatchConfig, model.SourceConfig]; "
        "print(' '.join(str(m.__pydantic_complete__) for m in mods))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    built = out.stdout.split()
    # Models left at their defaults are made without their validators, too.
    assert built[:15] == ["False"] * 15, out.stdout
    assert built[15:] == ["True"] * 3, out.stdout


@pytest.mark.parametrize(
    "cls",
    [
        model.TlsConfig,
        model.BatchConfig,
        model.RetryConfig,
        model.TimestampConfig,
        model.TailingConfig,
        model.HttpConfig,
        model.ReloadConfig,
        model.DeadLetterConfig,
    ],
)
def test_a_default_nested_model_is_the_one_validation_makes(cls: type[BaseModel]) -> None:
    made = defaults(cls)()
    validated = cls.model_validate({})
    assert made == validated
    assert made.model_dump() == validated.model_dump()
    assert made.model_fields_set == validated.model_fields_set == set()


def test_nested_errors_keep_their_full_field_path() -> None:
    data = {
        "sources": {
            "a": {
                "include": ["x"],
                "transforms": [{"type": "redact", "custom": [{"name": "n", "regex": ""}]}],
                "enrich": {"kubernetes": {"envv": {}}},
            }
        },
        "sinks": {"l": {"type": "loki", "url": "http://l", "retry": {"max_attempts": 0}}},
    }
    with pytest.raises(ConfigError) as e:
        build_config(data, "inline", env={})
    assert e.value.problems == [
        "sources.a.transforms[0].custom[0].regex: regular expression '' matches the empty string",
        "sources.a.enrich.kubernetes.envv: unknown field (check the spelling)",
        "sinks.l.retry.max_attempts: Input should be greater than or equal to 1",
    ]


@pytest.mark.parametrize(
    ("sink", "problem"),
    [
        ({"type": "lokki"}, "unknown sink type 'lokki'; expected one of: elasticsearch, loki"),
        ({"type": ["loki"]}, "unknown sink type ['loki']; expected one of"),
        ({"url": "http://l"}, "missing 'type' (one of: elasticsearch, loki, otlp, stdout)"),
        ("loki", "Input should be a valid dictionary or object to extract fields from"),
    ],
)
def test_the_sink_tag_picks_the_model_or_says_what_is_wrong(sink: object, problem: str) -> None:
    data = {"sources": {"a": {"include": ["x"]}}, "sinks": {"s": sink}}
    with pytest.raises(ConfigError) as e:
        build_config(data, "inline", env={})
    assert len(e.value.problems) == 1
    assert e.value.problems[0].startswith(f"sinks.s: {problem}")


def test_models_given_as_instances_are_kept_and_dumped_like_mappings() -> None:
    cfg = build_config(TAIL, "inline", env={})
    sink = LokiSinkConfig(type="loki", url="http://other:3100")
    again = AgentConfig(sources=cfg.sources, sinks={"loki": sink})
    assert again.sinks["loki"] is sink
    dumped = effective_config(cfg)
    assert dumped["sinks"]["loki"]["batch"]["linger"] == 0.05
    assert dumped["sources"]["tail"]["timestamp"] == {
        "field": None,
        "format": "auto",
        "timezone": "UTC",
    }


def test_json_schema_still_lists_every_sink_type() -> None:
    schema = AgentConfig.model_json_schema()
    members = schema["properties"]["sinks"]["additionalProperties"]["oneOf"]
    assert sorted(m["title"] for m in members) == [
        "ElasticsearchSinkConfig",
        "LokiSinkConfig",
        "OtlpSinkConfig",
        "StdoutSinkConfig",
    ]
