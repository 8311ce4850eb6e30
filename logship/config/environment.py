"""``LOGSHIP_...`` environment overrides, through pydantic-settings, loaded only when needed.

Importing pydantic-settings costs ~0.45 G instructions (as much CPU as shipping ~40,000
lines), and most runs (``logship tail``, a sidecar configured by its file) set no
``LOGSHIP_`` variable. So the settings class is built on first use, as a subclass of the
plain :class:`AgentConfig`: same fields, same validators, plus the environment source.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import Any

from logship.config.model import AgentConfig

PREFIX = "LOGSHIP_"


def has_overrides(env: Mapping[str, str] | None = None) -> bool:
    """True if any variable could override a setting (names are case-insensitive)."""
    env = os.environ if env is None else env
    return any(k.upper().startswith(PREFIX) for k in env)


@functools.cache
def settings_class() -> type[AgentConfig]:
    from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

    class AgentSettings(BaseSettings, AgentConfig):
        model_config = SettingsConfigDict(
            env_prefix=PREFIX,
            env_nested_delimiter="__",
            extra="forbid",
            frozen=True,
        )

        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            # The environment overrides the file (init kwargs), as operators expect.
            return (env_settings, init_settings)

    return AgentSettings


def with_environment(data: dict[str, Any]) -> AgentConfig:
    """Validate ``data`` with the process environment's ``LOGSHIP_`` overrides applied."""
    cls = settings_class() if has_overrides() else AgentConfig
    return cls(**data)
