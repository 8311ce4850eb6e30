"""Config loading: defaults, environment, interpolation, and errors that name file and field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from logship.config import ConfigError, build_config, effective_config, load_config

GOOD = """
sources:
  app:
    include: ["/var/log/app/**/*.log"]
    exclude: ["*.gz"]
    labels: {team: payments}
sinks:
  loki:
    type: loki
    url: ${LOKI_URL:-http://loki:3100}
    tenant_id: team-a
    bearer_token: ${LOKI_TOKEN}
    batch: {max_bytes: 512KiB, linger: 250ms}
checkpoint_dir: /var/lib/logship
memory_limit: 32MiB
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "logship.yaml"
    p.write_text(text)
    return p


def test_good_config_fills_defaults_and_interpolates(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD), env={"LOKI_TOKEN": "s3cret"})
    loki = cfg.sinks["loki"]
    assert loki.type == "loki"
    assert loki.url == "http://loki:3100"
    assert loki.batch.max_bytes == 512 * 1024
    assert loki.batch.linger == pytest.approx(0.25)
    assert loki.retry.max_attempts is None  # default: keep trying, the file is the buffer
    assert cfg.memory_limit == 32 * 1024 * 1024
    assert cfg.sources["app"].start_at == "end"
    assert loki.bearer_token is not None and loki.bearer_token.get_secret_value() == "s3cret"


def test_effective_config_masks_secrets(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD), env={"LOKI_TOKEN": "s3cret"})
    shown = effective_config(cfg)
    assert shown["sinks"]["loki"]["bearer_token"] == "******"
    assert "s3cret" not in repr(shown)


def test_missing_variable_names_field_and_file(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    with pytest.raises(ConfigError) as e:
        load_config(path, env={})
    assert str(path) in str(e.value)
    assert "sinks.loki.bearer_token" in str(e.value) and "LOKI_TOKEN" in str(e.value)


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (("type: loki", "type: lokki"), "sinks.loki", "unknown sink type 'lokki'"),
        (("url: ${LOKI_URL:-http://loki:3100}", "url: loki:3100"), "sinks.loki.url", "URL"),
        (("tenant_id: team-a", "tennant_id: team-a"), "sinks.loki.tennant_id", "unknown field"),
        (("linger: 250ms", "linger: soon"), "sinks.loki.batch.linger", "duration"),
        (("exclude:", "exclud:"), "sources.app.exclud", "unknown field"),
    ],
)
def test_errors_name_the_field(
    tmp_path: Path, change: tuple[str, str], field: str, words: str
) -> None:
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(ConfigError) as e:
        load_config(path, env={"LOKI_TOKEN": "x"})
    text = str(e.value)
    assert f"{path}: {field}:" in text
    assert words in text


def test_unknown_sink_route_is_an_error() -> None:
    with pytest.raises(ConfigError) as e:
        build_config(
            {
                "sources": {"a": {"include": ["x"], "sinks": ["nope"]}},
                "sinks": {"out": {"type": "stdout"}},
            },
            "inline",
        )
    assert "unknown sink 'nope'" in str(e.value)


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_config(write(tmp_path, GOOD), env={"LOKI_TOKEN": "x"}).drain_timeout == 30.0
    monkeypatch.setenv("LOGSHIP_DRAIN_TIMEOUT", "7")
    assert load_config(write(tmp_path, GOOD), env={"LOKI_TOKEN": "x"}).drain_timeout == 7.0


def test_invalid_yaml_points_at_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "sources:\n  app: [unclosed\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(path) in str(e.value) and "line" in str(e.value)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "logship", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_check_config_cli_ok_masks_secret(tmp_path: Path) -> None:
    r = run_cli("check-config", str(write(tmp_path, GOOD)), env={"LOKI_TOKEN": "s3cret"})
    assert r.returncode == 0, r.stderr
    assert "bearer_token: '******'" in r.stdout
    assert "s3cret" not in r.stdout + r.stderr


def test_check_config_cli_refuses_typo_with_exit_2(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("type: loki", "type: lokki"))
    r = run_cli("check-config", str(path), env={"LOKI_TOKEN": "x"})
    assert r.returncode == 2
    assert f"{path}: sinks.loki: unknown sink type 'lokki'" in r.stderr


def test_run_refuses_broken_config_with_exit_2(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("batch:", "bacth:"))
    r = run_cli("run", "--config", str(path), env={"LOKI_TOKEN": "x"})
    assert r.returncode == 2
    assert "sinks.loki.bacth: unknown field" in r.stderr


def test_tail_refuses_unknown_sink_with_exit_2() -> None:
    r = run_cli("tail", "--to", "kafka:http://x", "some.log")
    assert r.returncode == 2
    assert "unknown sink type 'kafka'" in r.stderr


def test_nested_environment_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGSHIP_SINKS__LOKI__URL", "http://other:3100")
    monkeypatch.setenv("LOGSHIP_MEMORY_LIMIT", "8MiB")
    cfg = load_config(write(tmp_path, GOOD), env={"LOKI_TOKEN": "x"})
    assert cfg.sinks["loki"].url == "http://other:3100"
    assert cfg.sinks["loki"].tenant_id == "team-a"  # the rest of the sink still comes from the file
    assert cfg.memory_limit == 8 * 1024 * 1024


def test_pydantic_settings_loads_only_when_the_environment_overrides(tmp_path: Path) -> None:
    """Its import costs as much CPU as ~40,000 lines, so runs without overrides skip it."""
    import os

    probe = (
        "import sys; from logship.config import load_config; "
        f"c = load_config({str(write(tmp_path, GOOD))!r}); "
        "print(c.drain_timeout, 'pydantic_settings' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("LOGSHIP_")}
    env["LOKI_TOKEN"] = "x"
    plain = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    assert plain.stdout.split() == ["30.0", "False"], plain.stderr
    env["logship_drain_timeout"] = (
        "9"  # names are case-insensitive, as pydantic-settings reads them
    )
    over = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    assert over.stdout.split() == ["9.0", "True"], over.stderr
