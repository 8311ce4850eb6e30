"""Turn a YAML file into an :class:`AgentConfig`, or into errors a human can act on.

Every error names the file, the field path (``sinks.loki.url``) and what is wrong,
because a sidecar that refuses to start is only as good as its error message.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args

from pydantic import SecretStr, ValidationError

from logship.config.environment import with_environment
from logship.config.model import AgentConfig, SinkConfig
from logship.config.transforms import TRANSFORM_TYPES

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(Exception):
    """A config that cannot be used; ``str()`` is the full, multi-line explanation."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {p}" for p in problems))


def interpolate(value: Any, env: Mapping[str, str], path: str = "") -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in every string; ``$$`` is a literal ``$``."""
    if isinstance(value, str):
        missing: list[str] = []

        def repl(m: re.Match[str]) -> str:
            if m.group(0) == "$$":
                return "$"
            name, default = m.group(1), m.group(2)
            if name in env and env[name] != "":
                return env[name]
            if default is not None:
                return default
            missing.append(name)
            return ""

        out = _VAR.sub(repl, value)
        if missing:
            raise ConfigError(
                "", [f"{path or '<root>'}: environment variable {missing[0]} is not set"]
            )
        return out
    if isinstance(value, dict):
        return {k: interpolate(v, env, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def _field_path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in SINK_TYPES and parts and parts[-1] not in ("sinks",):
            # pydantic names the tagged-union member; the user never wrote it.
            continue
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "<root>"


def _sink_types() -> tuple[str, ...]:
    """The ``type`` tags of the sink models, read from the models themselves."""
    (union, *_) = get_args(SinkConfig)
    return tuple(sorted(get_args(m.model_fields["type"].annotation)[0] for m in get_args(union)))


SINK_TYPES = _sink_types()


def format_validation_error(err: ValidationError) -> list[str]:
    problems = []
    for e in err.errors():
        loc = tuple(e["loc"])
        # Drop the discriminator tag pydantic inserts after a sink's name.
        if len(loc) >= 3 and loc[0] == "sinks" and loc[2] in SINK_TYPES:
            loc = loc[:2] + loc[3:]
        kind, kinds = "sink", ", ".join(SINK_TYPES)
        if len(loc) >= 4 and loc[0] == "sources" and loc[2] == "transforms":
            kind, kinds = "transform", ", ".join(TRANSFORM_TYPES)
            if len(loc) >= 5 and loc[4] in TRANSFORM_TYPES:  # the tag, as for sinks
                loc = loc[:4] + loc[5:]
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "union_tag_invalid":
            given = e["input"].get("type") if isinstance(e["input"], dict) else e["input"]
            msg = f"unknown {kind} type {given!r}; expected one of: {kinds}"
        elif e["type"] == "union_tag_not_found":
            msg = f"missing 'type' (one of: {kinds})"
        elif e["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling)"
        problems.append(f"{_field_path(loc)}: {msg}")
    return problems


def build_config(data: Any, source: str, env: Mapping[str, str] | None = None) -> AgentConfig:
    """Validate already-loaded data; ``source`` names where it came from in errors."""
    env = os.environ if env is None else env
    if not isinstance(data, dict):
        raise ConfigError(source, ["<root>: expected a mapping with 'sources' and 'sinks'"])
    try:
        data = interpolate(data, env)
    except ConfigError as e:
        raise ConfigError(source, e.problems) from None
    try:
        return with_environment(data)
    except ValidationError as e:
        raise ConfigError(source, format_validation_error(e)) from None


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> AgentConfig:
    import yaml  # only config files need it; `logship tail` starts without it

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(str(path), [f"cannot read: {e.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        where = ""
        mark = getattr(e, "problem_mark", None)
        if mark is not None:
            where = f"line {mark.line + 1}, column {mark.column + 1}: "
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(str(path), [f"{where}invalid YAML: {problem}"]) from None
    return build_config(data, str(path), env)


def _mask(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return "******" if value.get_secret_value() else ""
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def effective_config(cfg: AgentConfig) -> dict[str, Any]:
    """The config with every default filled in and every secret masked, for humans."""
    return _mask(cfg.model_dump(mode="python"))  # type: ignore[no-any-return]
