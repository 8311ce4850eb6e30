"""The configuration models: the one place where every default lives.

The YAML file, ``LOGSHIP_...`` environment variables and the ``tail`` command's
flags all end up as an :class:`AgentConfig`; nothing else in the agent invents a
default. Every model forbids unknown keys so that a typo is an error that names
the field instead of a setting that silently does nothing.
"""

import re
from pathlib import Path
from typing import Annotated, Any, Literal, Self

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

from logship.config.ondemand import Nested, TaggedUnion, defaults
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
    # Each model builds its validator when a config first uses it, and a parent refers to its
    # children through `Nested` (logship/config/ondemand.py): a start validates only the
    # models its config holds. Empty dict and list defaults are `default={}` / `default=[]`
    # (pydantic copies them for each instance), not `default_factory=dict`: pydantic reads a
    # factory's signature, and a builtin's is parsed with tokenize (~0.014 G per start). This
    # module (like transforms.py) has no `from __future__ import annotations`: pydantic would
    # compile each annotation string at class creation (~0.01 G per start).
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


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
    def _key_needs_cert(self) -> Self:
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("key_file is set but cert_file is not")
        return self


class BasicAuthConfig(StrictModel):
    username: str
    password: SecretStr | None = None
    password_file: Path | None = Field(None, description="Read the password from this file.")

    @model_validator(mode="after")
    def _one_password(self) -> Self:
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
    tls: Nested[TlsConfig] = Field(default_factory=defaults(TlsConfig))
    basic_auth: Nested[BasicAuthConfig] | None = None
    bearer_token: SecretStr | None = None
    bearer_token_file: Path | None = None
    headers: dict[str, str] = Field(default={}, description="Extra request headers.")
    timeout: Duration = Field(10.0, description="Per-request timeout.")
    max_in_flight: int = Field(4, ge=1, le=64, description="Requests sent concurrently.")
    batch: Nested[BatchConfig] = Field(default_factory=defaults(BatchConfig))
    retry: Nested[RetryConfig] = Field(default_factory=defaults(RetryConfig))

    @model_validator(mode="after")
    def _one_auth(self) -> Self:
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
    labels: dict[str, str] = Field(default={}, description="Static stream labels.")
    label_fields: list[str] = Field(
        default=[], description="Record fields promoted to stream labels."
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
    def _gzip_json_only(self) -> Self:
        if self.compression == "gzip" and self.encoding != "json":
            raise ValueError("compression: gzip applies to encoding: json (protobuf uses snappy)")
        return self


class OtlpSinkConfig(HttpSinkBase):
    """OTLP/HTTP logs (``<url>/v1/logs``): an OpenTelemetry Collector, Loki's ``/otlp``, ..."""

    type: Literal["otlp"]
    encoding: Literal["protobuf", "json"] = Field(
        "protobuf", description="http/protobuf (the OTLP default) or http/json."
    )
    compression: Literal["none", "gzip"] = Field(
        "none",
        description="gzip request bodies (about 5x smaller, costs CPU per byte): worth it "
        "when the collector is across a slow or metered network.",
    )
    gzip_level: int = Field(1, ge=1, le=9, description="gzip level when compression is gzip.")
    service_name: str | None = Field(
        None,
        description="Resource service.name; null: a source label, OTEL_SERVICE_NAME, or "
        "unknown_service.",
    )
    resource_attributes: dict[str, str] = Field(
        default={},
        description="Static resource attributes; they override detected ones and source labels.",
    )

    @field_validator("service_name")
    @classmethod
    def _empty_is_unset(cls, v: str | None) -> str | None:
        return v or None  # `${APP_NAME:-}` left empty: fall back as if unset


class ElasticsearchSinkConfig(HttpSinkBase):
    """Elasticsearch 8 / OpenSearch 2 ``_bulk`` API (``create`` actions, deterministic ids)."""

    type: Literal["elasticsearch"]
    index: str = Field(
        "logs-%Y.%m.%d",
        min_length=1,
        description="Target index: a strftime template applied to each record's UTC timestamp, "
        "or a fixed index, alias or data stream name.",
    )
    api_key: SecretStr | None = Field(
        None, description="Elasticsearch API key, the base64 `encoded` value (ApiKey auth)."
    )
    api_key_file: Path | None = Field(None, description="Read the API key from this file.")
    compression: Literal["none", "gzip"] = Field(
        "none", description="gzip the request body (worth it across a network, costs CPU)."
    )
    pipeline: str | None = Field(None, description="Ingest pipeline to run on each document.")

    @field_validator("index")
    @classmethod
    def _index_name(cls, v: str) -> str:
        name = re.sub(r"%.", "", v)  # strftime directives such as %Y are fine
        if name != name.lower() or any(c in name for c in ' "*\\<>|,/?#'):
            raise ValueError(
                'index names are lower-case without spaces or any of " * \\ < > | , / ? #'
            )
        return v

    @model_validator(mode="after")
    def _one_key(self) -> Self:
        given = [
            n
            for n in ("basic_auth", "bearer_token", "bearer_token_file", "api_key", "api_key_file")
            if getattr(self, n) is not None
        ]
        if len(given) > 1:
            raise ValueError(f"choose one authentication method, not {' and '.join(given)}")
        return self


class StdoutSinkConfig(StrictModel):
    """One compact JSON record per line on standard output."""

    type: Literal["stdout"]


SinkConfig = Annotated[
    LokiSinkConfig | ElasticsearchSinkConfig | OtlpSinkConfig | StdoutSinkConfig,
    TaggedUnion("type"),
]


class MultilineConfig(StrictModel):
    """Lines grouped into one record (stack traces), per file and per container stream."""

    preset: Literal["java", "python", "go"] | None = Field(
        None, description="A ready rule for Java, Python or Go stack traces (sets mode/pattern)."
    )
    mode: Literal["start", "continue", "end"] | None = Field(
        None,
        description="What `pattern` marks: the first line of a record (start), a line that "
        "belongs to the record before it (continue), or the last line of a record (end).",
    )
    pattern: str | None = Field(None, description="Regular expression (Python `re`) for `mode`.")
    timeout: Duration = Field(
        1.0, description="Emit an open record when its file or stream is idle this long."
    )
    max_lines: int = Field(500, ge=1, description="A record is closed at this many lines.")
    max_bytes: ByteSize = Field(
        ByteSize(256 * 1024),
        description="A record is closed before it grows past this size (Loki's line limit).",
    )

    @field_validator("pattern")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v.encode())
            except re.error as e:
                raise ValueError(f"invalid regular expression: {e}") from None
        return v

    @model_validator(mode="after")
    def _preset_or_pattern(self) -> Self:
        if self.preset is not None:
            if self.mode is not None or self.pattern is not None:
                raise ValueError("set either preset, or mode and pattern, not both")
        elif self.mode is None or self.pattern is None:
            raise ValueError("set a preset (java, python, go), or both mode and pattern")
        return self


class DeadLetterConfig(StrictModel):
    """Where records a sink refused for good (or gave up on) are kept, instead of lost."""

    path: Path | None = Field(
        None, description="JSON-lines file; null keeps none (such records are counted and logged)."
    )
    max_bytes: ByteSize = Field(
        ByteSize(64 * 1024 * 1024), description="Rotate the file when it reaches this size."
    )
    max_files: int = Field(
        3, ge=1, description="Rotated files kept (`path.1` is the newest); older ones are deleted."
    )


LineFormat = Literal[
    "auto", "json", "logfmt", "regex", "syslog", "nginx", "apache", "raw", "cri", "docker"
]
_TIME_FORMATS = ("auto", "rfc3339", "epoch_s", "epoch_ms", "epoch_us", "epoch_ns")


class TimestampConfig(StrictModel):
    """Where a record's time comes from; lines without a readable one get the read time."""

    field: str | None = Field(
        None,
        description="Field holding the time (dots reach into JSON objects); null: the format's "
        "own (syslog, access logs) or the first of ts, time, timestamp, @timestamp.",
    )
    format: str = Field(
        "auto",
        description="auto (epoch numbers by size, else RFC 3339), rfc3339, epoch_s, epoch_ms, "
        "epoch_us, epoch_ns, or a strptime pattern such as '%d/%m/%Y %H:%M:%S'.",
    )
    timezone: str = Field(
        "UTC",
        description="IANA zone (Europe/Berlin) for times written without an offset, "
        "such as RFC 3164 syslog.",
    )

    @field_validator("format")
    @classmethod
    def _known_format(cls, v: str) -> str:
        if v in _TIME_FORMATS:
            return v
        if "%" not in v:
            raise ValueError(
                f"unknown timestamp format {v!r}; expected one of {', '.join(_TIME_FORMATS)} "
                "or a strptime pattern containing %"
            )
        from datetime import datetime

        try:  # a pattern that cannot read what it writes is a typo
            datetime.strptime(datetime(2026, 1, 2, 3, 4, 5).strftime(v), v)
        except ValueError as e:
            raise ValueError(f"strptime pattern {v!r} does not work: {e}") from None
        return v

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        from logship.parsing.options import zone

        zone(v)
        return v


class SourceConfig(StrictModel):
    include: list[str] = Field(min_length=1, description="Glob patterns; `**` spans folders.")
    exclude: list[str] = Field(default=[], description="Glob patterns to skip.")
    format: LineFormat = Field(
        "auto",
        description="auto (JSON objects and logfmt lines parsed, other lines raw), json, "
        "logfmt, regex (needs `regex`), syslog (RFC 5424 and 3164), nginx or apache "
        "(access logs, common and combined), raw, cri / docker (container runtime log files; "
        "their message is read like auto).",
    )
    regex: str | None = Field(
        None, description="For format regex: a Python pattern whose named groups become fields."
    )
    timestamp: Nested[TimestampConfig] = Field(default_factory=defaults(TimestampConfig))
    level_field: str | None = Field(
        None, description="Field holding the level; null: level, lvl or severity."
    )
    message_field: str | None = Field(
        None, description="Field holding the message; null: msg or message, else the whole line."
    )
    multiline: Nested[MultilineConfig] | None = Field(
        None, description="Group lines into records (stack traces); null: one line, one record."
    )
    labels: dict[str, str] = Field(default={}, description="Static labels.")
    start_at: Literal["beginning", "end"] = Field(
        "end", description="Where to start in files present at startup without a checkpoint."
    )
    sinks: list[str] | None = Field(None, description="Sink names; null sends to every sink.")
    ignore_older: Duration | None = Field(
        None,
        description="Skip files not modified for this long (until they change); null reads all.",
    )
    transforms: list[TransformConfig] = Field(
        default=[],
        description="Steps applied in order to every batch (logship/config/transforms.py).",
    )
    enrich: Nested[EnrichConfig] | None = Field(
        None, description="Labels added to every line: host, pod identity, record fields."
    )

    @field_validator("regex")
    @classmethod
    def _regex_compiles(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            pattern = re.compile(v)
        except re.error as e:
            raise ValueError(f"does not compile: {e}") from None
        if not pattern.groupindex:
            raise ValueError("has no named groups, so it would yield no fields; use (?P<name>...)")
        return v

    @model_validator(mode="after")
    def _regex_with_format(self) -> Self:
        if self.format == "regex" and self.regex is None:
            raise ValueError("format is regex but no `regex` pattern is set")
        if self.format != "regex" and self.regex is not None:
            raise ValueError(f"`regex` is set but format is {self.format!r}; use format: regex")
        return self


class TailingConfig(StrictModel):
    read_chunk_size: ByteSize = Field(
        ByteSize(1024 * 1024), description="Bytes per read (fewer, larger batches cost less CPU)."
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


_LISTEN = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[^\s:\[\]]*):(\d{1,5})$")


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8686`` for IPv6; an empty host means every interface)."""
    m = _LISTEN.match(value)
    if not m or int(m.group(2)) > 65535:
        raise ValueError(f"expected HOST:PORT, e.g. 0.0.0.0:8686 or 127.0.0.1:8686, not {value!r}")
    host = m.group(1).strip("[]") or "0.0.0.0"
    return host, int(m.group(2))


def _check_listen(value: Any) -> Any:
    if isinstance(value, str):
        parse_listen(value)
    return value


class ReloadConfig(StrictModel):
    """How ``logship run`` picks up a changed config (SIGHUP always does)."""

    watch_file: bool = Field(
        False,
        description="Reload when the config file's content changes (also catches Kubernetes "
        "ConfigMap updates, which swap a symlink), checked every poll_interval.",
    )
    poll_interval: Duration = Field(
        5.0, gt=0, description="How often the config file is checked when watch_file is on."
    )


class HttpConfig(StrictModel):
    """The agent's own HTTP endpoints: ``/metrics``, ``/healthz`` and ``/ready``, on one port."""

    listen: Annotated[str | None, BeforeValidator(_check_listen)] = Field(
        None,
        description="HOST:PORT to serve /metrics, /healthz and /ready on; null serves nothing "
        "(a sidecar shares the application's ports, so none is opened unless asked for).",
    )
    ready_max_failing: Duration = Field(
        120.0,
        description="/ready answers 503 once a sink has been failing (no success) this long.",
    )
    healthz_max_stall: Duration = Field(
        30.0,
        gt=1.0,
        description="/healthz answers 503 when the agent's event loop has not run for this long "
        "(stuck): a liveness probe then restarts it.",
    )


class OtlpMetricsConfig(StrictModel):
    """Push the same metrics to an OpenTelemetry collector (needs ``logship[otlp-metrics]``)."""

    endpoint: HttpUrlStr = Field(
        description="OTLP/HTTP metrics URL, e.g. http://otel-collector:4318/v1/metrics."
    )
    interval: Duration = Field(60.0, gt=0, description="How often the metrics are pushed.")
    timeout: Duration = Field(5.0, description="Per-push timeout.")
    headers: dict[str, SecretStr] = Field(
        default={},
        description="Extra request headers, e.g. Authorization (masked by check-config).",
    )


class AgentConfig(BaseModel):
    """Everything ``logship run`` needs. Environment: ``LOGSHIP_<FIELD>``, nested with ``__``.

    A plain model: the environment is applied by :func:`logship.config.environment.with_environment`
    through pydantic-settings, imported only when a ``LOGSHIP_`` variable is set, because
    importing it costs about as much CPU as shipping 40,000 lines.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    sources: dict[str, Nested[SourceConfig]] = Field(min_length=1)
    sinks: dict[str, SinkConfig] = Field(min_length=1)
    checkpoint_dir: Path | None = Field(
        None, description="Where checkpoints live; null keeps none (restart from start_at)."
    )
    memory_limit: ByteSize = Field(
        ByteSize(16 * 1024 * 1024),
        description="Bytes of lines held between tailers and sinks (with ~64 bytes per line of "
        "object overhead), and of Elasticsearch request bodies in flight; reading stops at the "
        "bound. The process adds ~45 MiB (interpreter, "
        "libraries, requests in flight).",
    )
    drain_timeout: Duration = Field(
        30.0, description="On SIGTERM, how long to keep delivering what was read."
    )
    checkpoint_interval: Duration = Field(1.0, description="How often checkpoints are saved.")
    tailing: Nested[TailingConfig] = Field(default_factory=defaults(TailingConfig))
    http: Nested[HttpConfig] = Field(default_factory=defaults(HttpConfig))
    reload: Nested[ReloadConfig] = Field(default_factory=defaults(ReloadConfig))
    otlp_metrics: Nested[OtlpMetricsConfig] | None = Field(
        None, description="Also push the agent's metrics over OTLP/HTTP; null pushes nothing."
    )
    dead_letter: Nested[DeadLetterConfig] = Field(default_factory=defaults(DeadLetterConfig))

    @model_validator(mode="after")
    def _routes_exist(self) -> Self:
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
