"""Configuration: models (the defaults) and the loader (YAML, environment, errors)."""

from logship.config.loader import ConfigError, build_config, effective_config, load_config
from logship.config.model import AgentConfig

__all__ = ["AgentConfig", "ConfigError", "build_config", "effective_config", "load_config"]
