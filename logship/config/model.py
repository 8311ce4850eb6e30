"""The configuration models: the one place where every default lives.

The YAML file, ``LOGSHIP_...`` environment variables and the ``tail`` command's
flags all end up as an :class:`AgentConfig`; nothing else in the agent invents a
default. Every model forbids unknown keys so that a typo is an error that names
the field instead of a setting that silently does nothing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ByteSize,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from logship.config.transforms import EnrichConfig, TransformConfig

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def _parse_duration(value: Any) -> Any:
    """Accept ``1.5``, ``"500ms"``, ``"30s"``, ``"5m"``: configs read better with units."""
    if isinstance(value, str):
        m = _DURATION.match(value)
        if not m:
            raise ValueError(
                f"not a duration: {value!r} (use a number of seconds or 500ms/30s/5m/1h)"
            )
        return float(m.group(1)) * _UNITS[m.group(2)]
    return value


Duration = Annotated[float, BeforeValidator(_parse_duration), Field(ge=0)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BatchConfig(StrictModel):
    """How a sink groups records into one request."""

    max_bytes: ByteSize = Field(
        ByteSize(1024 * 1024), description="Flush when the lines in a request reach this size."
    )
    max_entries: int = Field(50_000, ge=1, description="Flush when a request holds this many.")
    linger: Duration = Field(1.0, description="Flush a non-empty batch after this long.")


class RetryConfig(StrictModel):
    """Exponential backoff with full jitter; ``Retry-After`` from the server wins."""

    initial_backoff: Duration = Field(0.5, description="First backoff ceiling.")
    max_backoff: Duration = Field(30.0, description="Largest backoff ceiling.")
    max_attempts: int | None = Field(
        None, ge=1, description="Give up after this many attempts; null keeps trying."
    )
    max_elapsed: Duration | None = Field(
        None, description="Give up after this long; null keeps trying."
    )
    max_retry_after: Duration = Field(300.0, description="Cap on a server's Retry-After.")


class TlsConfig(StrictModel):
    ca_file: Path | None = Field(None, description="PEM bundle to verify the server with.")
    cert_file: Path | None = Field(None, description="Client certificate (PEM).")
    key_file: Path | None = Field(None, description="Client key (PEM).")
    insecure_skip_verify: bool = Field(
        False, description="Turn certificate verification off. Never the default."
    )

    @model_validator(mode="after")
    def _key_needs_cert(self) -> TlsConfig:
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("key_file is set but cert_file is not")
        return self


class BasicAuthConfig(StrictModel):
    username: str
    password: SecretStr | None = None
    password_file: Path | None = Field(None, description="Read the password from this file.")

    @model_validator(mode="after")
    def _one_password(self) -> BasicAuthConfig:
        if (self.password is None) == (self.password_file is None):
            raise ValueError("set exactly one of password or password_file")
        return self


def _check_http_url(value: str) -> str:
    if not re.match(r"^https?://[^/\s:]+(:\d+)?(/\S*)?$", value):
        raise ValueError(f"not an http(s) URL: {value!r}")
    return value.rstrip("/")


HttpUrlStr = Annotated[
    str, BeforeValidator(lambda v: _check_http_url(v) if isinstance(v, str) else v)
]


class HttpSinkBase(StrictModel):
    url: HttpUrlStr
    tls: TlsConfig = Field(default_factory=TlsConfig)
    basic_auth: BasicAuthConfig | None = None
    bearer_token: SecretStr | None = None
    bearer_token_file: Path | None = None
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers.")
    timeout: Duration = Field(10.0, description="Per-request timeout.")
    max_in_flight: int = Field(4, ge=1, le=64, description="Requests sent concurrently.")
    batch: BatchConfig = Field(default_factory=BatchConfig)
    retry: RetryConfig = Field(default_factory=RetryConfig)

    @model_validator(mode="after")
    def _one_auth(self) -> HttpSinkBase:
        given = [
            n
            for n in ("basic_auth", "bearer_token", "bearer_token_file")
            if getattr(self, n) is not None
        ]
        if len(given) > 1:
            raise ValueError(f"choose one authentication method, not {' and '.join(given)}")
        return self


class LokiSinkConfig(HttpSinkBase):
    """Grafana Loki push API (``/loki/api/v1/push``)."""

    type: Literal["loki"]
    encoding: Literal["protobuf", "json"] = Field(
        "protobuf", description="protobuf+snappy (what promtail sends) or JSON."
    )
    compression: Literal["none", "gzip"] = Field("none", description="Only with encoding: json.")
    tenant_id: str | None = Field(None, description="Sent as X-Scope-OrgID.")
    labels: dict[str, str] = Field(default_factory=dict, description="Static stream labels.")
    label_fields: list[str] = Field(
        default_factory=list, description="Record fields promoted to stream labels."
    )
    filename_label: bool = Field(True, description="Add the source path as label `filename`.")

    @field_validator("tenant_id")
    @classmethod
    def _tenant(cls, v: str | None) -> str | None:
        if v == "":  # `${LOKI_TENANT:-}` left empty: no tenant header
            return None
        if v is not None and (
            not re.fullmatch(r"[A-Za-z0-9!_.*'()-]{1,150}", v) or v in {".", ".."}
        ):
            raise ValueError("Loki tenant ids are 1-150 characters of [A-Za-z0-9!_.*'()-]")
        return v

    @model_validator(mode="after")
    def _gzip_json_only(self) -> LokiSinkConfig:
        if self.compression == "gzip" and self.encoding != "json":
            raise ValueError("compression: gzip applies to encoding: json (protobuf uses snappy)")
        return self


class StdoutSinkConfig(StrictModel):
    """One compact JSON record per line on standard output."""

    type: Literal["stdout"]


SinkConfig = Annotated[LokiSinkConfig | StdoutSinkConfig, Field(discriminator="type")]


class SourceConfig(StrictModel):
    include: list[str] = Field(min_length=1, description="Glob patterns; `**` spans folders.")
    exclude: list[str] = Field(default_factory=list, description="Glob patterns to skip.")
    format: Literal["auto", "json", "raw"] = Field(
        "auto", description="auto: JSON objects are parsed, anything else is kept raw."
    )
    labels: dict[str, str] = Field(default_factory=dict, description="Static labels.")
    start_at: Literal["beginning", "end"] = Field(
        "end", description="Where to start in files present at startup without a checkpoint."
    )
    sinks: list[str] | None = Field(None, description="Sink names; null sends to every sink.")
    ignore_older: Duration | None = Field(
        None,
        description="Skip files not modified for this long (until they change); null reads all.",
    )
    transforms: list[TransformConfig] = Field(
        default_factory=list,
        description="Steps applied in order to every batch (logship/config/transforms.py).",
    )
    enrich: EnrichConfig | None = Field(
        None, description="Labels added to every line: host, pod identity, record fields."
    )


class TailingConfig(StrictModel):
    read_chunk_size: ByteSize = Field(
        ByteSize(512 * 1024), description="Bytes per read (fewer, larger batches cost less CPU)."
    )
    max_line_size: ByteSize = Field(
        ByteSize(256 * 1024), description="Longer lines are cut (Loki's default limit)."
    )
    partial_line_timeout: Duration = Field(
        1.0, description="Emit a last line without newline after the file is idle this long."
    )
    poll_interval: Duration = Field(
        0.25, description="How often an idle file is checked when no event arrives."
    )
    rescan_interval: Duration = Field(
        2.0, description="Glob rescan period; file events only make it sooner."
    )
    close_idle_after: Duration = Field(
        30.0, description="Close a file idle this long; it is reopened at its offset when it grows."
    )
    max_open_files: int = Field(
        1024, ge=1, description="At most this many files open; the idlest are closed first."
    )


class AgentConfig(BaseModel):
    """Everything ``logship run`` needs. Environment: ``LOGSHIP_<FIELD>``, nested with ``__``.

    A plain model: the environment is applied by :func:`logship.config.environment.with_environment`
    through pydantic-settings, imported only when a ``LOGSHIP_`` variable is set, because
    importing it costs about as much CPU as shipping 40,000 lines.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    sources: dict[str, SourceConfig] = Field(min_length=1)
    sinks: dict[str, SinkConfig] = Field(min_length=1)
    checkpoint_dir: Path | None = Field(
        None, description="Where checkpoints live; null keeps none (restart from start_at)."
    )
    memory_limit: ByteSize = Field(
        ByteSize(64 * 1024 * 1024),
        description="Bytes of lines held between tailers and sinks; reading stops at the bound.",
    )
    drain_timeout: Duration = Field(
        30.0, description="On SIGTERM, how long to keep delivering what was read."
    )
    checkpoint_interval: Duration = Field(1.0, description="How often checkpoints are saved.")
    tailing: TailingConfig = Field(default_factory=TailingConfig)

    @model_validator(mode="after")
    def _routes_exist(self) -> AgentConfig:
        for name, src in self.sources.items():
            for sink in src.sinks or []:
                if sink not in self.sinks:
                    known = ", ".join(sorted(self.sinks))
                    raise ValueError(
                        f"sources.{name}.sinks names unknown sink {sink!r} (known: {known})"
                    )
        return self

    def sinks_for(self, source: str) -> list[str]:
        names = self.sources[source].sinks
        return list(self.sinks) if names is None else names
