"""Config models of a source's transforms and enrichment: every default of ``logship.transforms``.

Kept beside ``model.py`` (which imports them into :class:`SourceConfig`) so that the transform
options live in one file. Regular expressions are compiled here, at load time, so that a bad
pattern is a config error naming its field, never a failure while shipping.
"""

import re
from typing import Annotated, Any, Literal, Self, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from logship.config.ondemand import Nested, TaggedUnion

RedactRule = Literal[
    "bearer",
    "url_password",
    "aws_access_key",
    "aws_secret_key",
    "card_number",
    "email",
]
REDACT_RULES: tuple[RedactRule, ...] = get_args(RedactRule)
TRANSFORM_TYPES = ("drop", "keep", "rename", "remove", "redact", "sample", "rate_limit")


def _duration(value: Any) -> Any:
    from logship.config.model import _parse_duration  # model.py imports this module

    return _parse_duration(value)


Seconds = Annotated[float, BeforeValidator(_duration), Field(gt=0)]


class _Strict(BaseModel):
    # Built when a config first uses the model (see logship/config/ondemand.py): every start
    # imports these models, configured or not.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


def _check_regex(pattern: str) -> str:
    try:
        compiled = re.compile(pattern.encode())
    except re.error as e:
        raise ValueError(f"invalid regular expression {pattern!r}: {e}") from None
    if compiled.search(b"") is not None:
        raise ValueError(f"regular expression {pattern!r} matches the empty string")
    return pattern


def _check_marker(value: str) -> str:
    # Redaction works on the line bytes: a quote, backslash or newline in the marker would
    # break the JSON line it lands in, or split the line in two.
    if any(c in value for c in '"\\\n\r'):
        raise ValueError("must not contain quotes, backslashes or newlines")
    return value


class _Filter(_Strict):
    """Conditions of a drop/keep step; a line matches when every condition given matches."""

    level: list[str] | None = Field(
        None, description="Normalized levels (trace, debug, info, notice, warn, error, fatal)."
    )
    field: str | None = Field(
        None, description="A field of the parsed record (dotted path into nested objects)."
    )
    values: list[str] | None = Field(
        None, description="With `field`: the field's value (as text) is one of these."
    )
    regex: str | None = Field(
        None, description="Searched in the field's value with `field`, else in the whole line."
    )

    _check = field_validator("regex")(lambda v: v if v is None else _check_regex(v))

    @field_validator("level")
    @classmethod
    def _levels(cls, v: list[str] | None) -> list[str] | None:
        from logship.parsing.levels import normalize_level

        if v is None:
            return v
        out = [normalize_level(x) for x in v]
        return [x for x in out if x is not None] or None

    @model_validator(mode="after")
    def _some_condition(self) -> Self:
        if self.values is not None and self.field is None:
            raise ValueError("values needs field")
        if self.level is None and self.field is None and self.regex is None:
            raise ValueError("give at least one of level, field (with values or regex), regex")
        if self.field is not None and self.values is None and self.regex is None:
            raise ValueError("field needs values or regex")
        return self


class DropTransform(_Filter):
    """Drop the lines that match; dropped lines are counted and their offsets acknowledged."""

    type: Literal["drop"]


class KeepTransform(_Filter):
    """Keep only the lines that match; the others are dropped like `drop` does."""

    type: Literal["keep"]


class RenameTransform(_Strict):
    """Rename fields of JSON lines (the line is re-serialized; other lines are untouched)."""

    type: Literal["rename"]
    fields: dict[str, str] = Field(
        min_length=1, description="Old name -> new name; dotted paths reach into nested objects."
    )


class RemoveTransform(_Strict):
    """Remove fields from JSON lines (the line is re-serialized; other lines are untouched)."""

    type: Literal["remove"]
    fields: list[str] = Field(min_length=1, description="Field names or dotted paths.")


class CustomRedaction(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="Names the rule's counter.")
    regex: str = Field(description="Python regular expression, applied to each line.")
    replacement: str | None = Field(
        None, description="Replacement (\\1 refers to a group); null uses the marker."
    )

    _check = field_validator("regex")(lambda v: _check_regex(v))

    @model_validator(mode="after")
    def _template(self) -> Self:
        """Only group references (``\\1``, ``\\g<name>``) and ``\\\\`` may follow a backslash."""
        if self.replacement is None:
            return self
        if any(c in self.replacement for c in '"\n\r'):
            raise ValueError("replacement must not contain quotes or newlines")
        compiled = re.compile(self.regex.encode())
        for m in re.finditer(r"\\(g<([^>]*)>|\d+|\\|.?)", self.replacement):
            ref = m.group(2) if m.group(2) is not None else m.group(1)
            if ref == "\\":
                continue
            ok = (ref.isdigit() and 0 < int(ref) <= compiled.groups) or ref in compiled.groupindex
            if not ok:
                raise ValueError(f"replacement: \\{m.group(1)} is not a group of the regex")
        return self


class RedactTransform(_Strict):
    """Replace secrets in the line text before anything leaves the process."""

    type: Literal["redact"]
    rules: list[RedactRule] = Field(
        default_factory=lambda: list(REDACT_RULES),
        description="Built-in rules; the default is all of them.",
    )
    custom: list[Nested[CustomRedaction]] = Field(default=[], description="Extra rules.")
    marker: str = Field("[REDACTED]", description="What a secret is replaced with.")

    _mark = field_validator("marker")(lambda v: _check_marker(v))

    @model_validator(mode="after")
    def _some_rule(self) -> Self:
        if not self.rules and not self.custom:
            raise ValueError("no rules: give rules or custom")
        names = [c.name for c in self.custom]
        dup = {n for n in names if names.count(n) > 1 or n in self.rules}
        if dup:
            raise ValueError(f"rule names must be unique: {', '.join(sorted(dup))}")
        return self


class SampleTransform(_Strict):
    """Keep 1 line in `rate`, chosen by a hash of the line (the same line, the same choice)."""

    type: Literal["sample"]
    rate: int = Field(ge=1, description="Keep one line in this many.")
    level: list[str] | None = Field(
        None, description="Sample only lines of these levels; other lines are all kept."
    )

    @field_validator("level")
    @classmethod
    def _levels(cls, v: list[str] | None) -> list[str] | None:
        return _Filter._levels(v)


class RateLimitTransform(_Strict):
    """A token bucket per source: `lines_per_second` on average, `burst` at once."""

    type: Literal["rate_limit"]
    lines_per_second: float = Field(gt=0, description="Average lines per second let through.")
    burst: int | None = Field(None, ge=1, description="Bucket size; null = one second's worth.")
    mode: Literal["drop", "block"] = Field(
        "drop",
        description="drop: lines over the limit are dropped and counted; "
        "block: reading the source's files slows down (nothing dropped).",
    )


TransformConfig = Annotated[
    DropTransform
    | KeepTransform
    | RenameTransform
    | RemoveTransform
    | RedactTransform
    | SampleTransform
    | RateLimitTransform,
    TaggedUnion("type"),
]

DEFAULT_POD_ENV = {
    "pod": "POD_NAME",
    "namespace": "POD_NAMESPACE",
    "node": "NODE_NAME",
    "pod_uid": "POD_UID",
    "pod_ip": "POD_IP",
}


class KubernetesEnrich(_Strict):
    """Pod identity from the downward API (environment variables and mounted files)."""

    env: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_POD_ENV),
        description="Label -> environment variable; unset or empty variables add nothing.",
    )
    labels_file: str | None = Field(
        "/etc/podinfo/labels", description="Downward API file of pod labels; missing is fine."
    )
    annotations_file: str | None = Field(
        None, description="Downward API file of pod annotations (only keys named in pod_labels)."
    )
    pod_labels: list[str] | None = Field(
        None, description="Which pod labels/annotations to use; null takes every pod label."
    )
    prefix: str = Field("", description="Put before the names of pod labels and annotations.")


class EnrichConfig(_Strict):
    host: str | None = Field(None, description="Label name for the host name; null adds none.")
    kubernetes: Nested[KubernetesEnrich] | None = Field(
        None, description="Pod identity labels; null reads nothing."
    )
    field_labels: list[str] = Field(
        default=[], description="Record fields (dotted paths) that become labels."
    )
    max_values: int = Field(
        100, ge=1, description="A field label with more distinct values per window is dropped."
    )
    window: Seconds = Field(
        3600.0, description="Seconds over which distinct field-label values are counted."
    )
