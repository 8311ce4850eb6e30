"""Nested config models validated by their own validators, each built the first time it is used.

pydantic builds one validator per model class, and a parent's validator normally contains the
validators of every model it could hold. The config tree has about thirty models, of which a
``logship tail --to loki:URL`` run uses about ten (one sink type, no transforms, no enrichment,
no multiline): building the whole tree cost ~0.3 G instructions at every start, as much CPU as
shipping ~30,000 lines. With these markers a parent's validator only calls the child's
``model_validate``, and every model (``defer_build=True``) builds its validator when a config
first uses it.

What a config means, its defaults, and its errors do not change: a child's errors keep their
locations under the parent's (``sinks.loki.batch.linger``), and a tagged union reports an
unknown or missing tag with pydantic's own error types (``union_tag_invalid``,
``union_tag_not_found``), which the loader turns into "unknown sink type ..." messages.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar, get_args

from pydantic import BaseModel, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticKnownError, core_schema

_M = TypeVar("_M", bound=BaseModel)
_MODELS = "logship_models"  # core-schema metadata key: the models a field validates with


class OnDemand:
    """``Annotated[Model, OnDemand()]``: validate with ``Model.model_validate``, built on use."""

    def __get_pydantic_core_schema__(
        self, source: type[BaseModel], handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_plain_validator_function(
            source.model_validate, metadata={_MODELS: (source,)}
        )

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return _json_schema(schema, handler)


class TaggedUnion:
    """``Annotated[A | B, TaggedUnion("type")]``: the member named by the tag validates alone.

    The same behaviour as ``Field(discriminator=...)``, without building every member.
    """

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        members: tuple[type[BaseModel], ...] = get_args(source)
        by_tag = {get_args(m.model_fields[self.tag].annotation)[0]: m for m in members}
        tag = self.tag
        expected = ", ".join(repr(t) for t in by_tag)

        def validate(value: Any) -> BaseModel:
            if isinstance(value, members):
                return value
            if not isinstance(value, dict):
                raise PydanticKnownError("model_attributes_type")
            if tag not in value:
                raise PydanticKnownError("union_tag_not_found", {"discriminator": repr(tag)})
            given = value[tag]
            model = by_tag.get(given) if isinstance(given, str) else None
            if model is None:
                raise PydanticKnownError(
                    "union_tag_invalid",
                    {"discriminator": repr(tag), "tag": str(given), "expected_tags": expected},
                )
            return model.model_validate(value)

        return core_schema.no_info_plain_validator_function(validate, metadata={_MODELS: members})

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return _json_schema(schema, handler)


def _json_schema(schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
    """Only for tools that ask for a JSON schema: this builds the models' validators."""
    models: tuple[type[BaseModel], ...] = schema.get("metadata", {})[_MODELS]
    parts = [handler(m.__pydantic_core_schema__) for m in models]
    return parts[0] if len(parts) == 1 else {"oneOf": parts}


def defaults(model: type[_M]) -> Callable[[], _M]:
    """A ``default_factory`` for a nested model: the instance ``model()`` would make.

    pydantic does not validate defaults, so ``model_construct()`` fills in the same values
    without building the model's validator, which is then built only if a config sets one of
    its fields (a lambda: pydantic would pass a one-argument factory the validated data).
    """
    return lambda: model.model_construct()


Nested = Annotated[_M, OnDemand()]
"""A field holding a config model (or a list or dict of them), built only if a config has one."""
