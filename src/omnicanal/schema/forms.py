"""The written forms of omnicanal's value types in JSON Schema, and the generator that puts them in models' schemas.

A model holds what a file means (`Duration` is seconds, `Condition` a compiled expression); an editor checks what a
person types (`1h30m`, `"vars.total >= 20"`). `WrittenForms` is pydantic's schema generator taught the written form
of each type whose validator parses text: those types are recognised by their validating function, so every model
using them gets the written form, and a new parsing type that is not taught here fails the generation instead of
leaving an unchecked `{}` in the schema. The forms are shared definitions (`$defs`), each with a description, so an
editor's hover says what to type.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, get_args

from pydantic import AfterValidator, BaseModel, BeforeValidator, PlainValidator
from pydantic.json_schema import GenerateJsonSchema, JsonRef, JsonSchemaValue, models_json_schema
from pydantic_core import core_schema

from omnicanal.journey.durations import _COMPOUND, _NUMBER, parse_offset
from omnicanal.journey.model import JOURNEY_ID_PATTERN, Condition, Duration, Text, Value, check_id
from omnicanal.template_files import _LOCALE

DRAFT = "https://json-schema.org/draft/2020-12/schema"

DURATION = rf"(?:{_NUMBER.pattern}|{_COMPOUND.pattern})"
"""A duration as written, unanchored, for patterns of texts that hold one (`after 7d`, `1/1d`)."""

FORMS: dict[str, JsonSchemaValue] = {
    "Id": {
        "description": "An id: 1 to 64 lowercase letters, digits, '_' or '-', starting with a letter or digit.",
        "type": "string",
        "pattern": JOURNEY_ID_PATTERN,
    },
    "Expression": {
        "description": 'A Jinja2 expression over customer, event, vars and now, in quotes: "vars.total >= 20".',
        "type": "string",
        "minLength": 1,
    },
    "Value": {
        "description": 'A computed value: an expression in quotes ("event.properties.total"), or a number or '
                       "boolean taken as it is.",
        "anyOf": [{"$ref": "#/$defs/Expression"}, {"type": ["number", "boolean"]}],
    },
    "Text": {
        "description": 'A text with {{ expressions }}: "https://shop.example/stock/{{ vars.sku }}".',
        "type": "string",
    },
    "Duration": {
        "description": "A duration: a number followed by s, m, h, d or w (30s, 15m, 1h30m, 2d, 1w), or seconds.",
        "anyOf": [
            {"type": "string", "pattern": rf"^\s*{DURATION}\s*$"},
            {"type": "number", "exclusiveMinimum": 0},
        ],
    },
    "Offset": {
        "description": "How far before (-1d) or after (+2h, 30m) the moment: a signed duration.",
        "anyOf": [{"type": "string", "pattern": rf"^\s*[-+]?{DURATION}\s*$"}, {"type": "number"}],
    },
    "Locale": {
        "description": "A language code, optionally with a region: en, fr, fr-CA.",
        "type": "string",
        "pattern": _LOCALE.pattern,
    },
}
"""Every written form by name; a schema refers to one as `{"$ref": "#/$defs/<name>"}` (see `ref`)."""


def ref(form: str) -> JsonSchemaValue:
    """A reference to a model's definition or to a written form, both in the document's `$defs`."""
    return {"$ref": f"#/$defs/{form}"}


def _validator(annotated: Any) -> Callable[..., Any]:
    """The function validating an `Annotated` type (`Condition`: its PlainValidator's)."""
    for meta in get_args(annotated)[1:]:
        if isinstance(meta, PlainValidator | BeforeValidator | AfterValidator):
            return meta.func
    raise TypeError(f"{annotated} has no validator")


_BY_VALIDATOR: dict[Callable[..., Any], str] = {
    _validator(Condition): "Expression",
    _validator(Value): "Value",
    _validator(Text): "Text",
    _validator(Duration): "Duration",
    parse_offset: "Offset",
    check_id: "Id",
}
"""The parsing types, by their validating function, and their written forms."""


class UntaughtForm(TypeError):
    """A model field parses text with a function `WrittenForms` does not know: teach it in `_BY_VALIDATOR`."""


class WrittenForms(GenerateJsonSchema):
    """Pydantic's generator with the written form of each parsing type, and without the titles it makes up from
    field names (`"Fallback After"` says nothing the key does not)."""

    def _written(self, schema: Any) -> JsonSchemaValue | None:
        form = _BY_VALIDATOR.get(schema["function"]["function"])
        return ref(form) if form is not None else None

    def function_plain_schema(self, schema: core_schema.PlainValidatorFunctionSchema) -> JsonSchemaValue:
        written = self._written(schema)
        if written is None:
            raise UntaughtForm(f"no written form for the values {schema['function']['function']} validates: add "
                               "it to omnicanal.schema.forms")
        return written

    def function_before_schema(self, schema: core_schema.BeforeValidatorFunctionSchema) -> JsonSchemaValue:
        return self._written(schema) or super().function_before_schema(schema)

    def function_after_schema(self, schema: core_schema.AfterValidatorFunctionSchema) -> JsonSchemaValue:
        return self._written(schema) or super().function_after_schema(schema)

    def get_schema_from_definitions(self, json_ref: JsonRef) -> JsonSchemaValue | None:
        form = FORMS.get(json_ref.removeprefix("#/$defs/"))
        return form if form is not None else super().get_schema_from_definitions(json_ref)

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def model_schemas(*models: type[BaseModel]) -> dict[str, JsonSchemaValue]:
    """The written-form schemas of `models` and of every model they use, by model name (as in `$defs`)."""
    _, generated = models_json_schema([(model, "validation") for model in models], schema_generator=WrittenForms,
                                      ref_template="#/$defs/{model}")
    defs: dict[str, JsonSchemaValue] = generated.get("$defs", {})
    return defs


def document(title: str, description: str, root: JsonSchemaValue, defs: dict[str, JsonSchemaValue]) -> JsonSchemaValue:
    """A complete JSON Schema document: the root schema with the definitions it reaches, forms included."""
    available = {**FORMS, **defs}
    used: dict[str, JsonSchemaValue] = {}
    pending = [root]
    while pending:
        for name in _refs(pending.pop()):
            if name not in used:
                used[name] = available[name]
                pending.append(used[name])
    own = {key: value for key, value in root.items() if key not in ("title", "description")}
    return {"$schema": DRAFT, "title": title, "description": description, **own, "$defs": dict(sorted(used.items()))}


def _refs(schema: Any) -> list[str]:
    """The names of the definitions `schema` refers to, at any depth."""
    if isinstance(schema, dict):
        own = [schema["$ref"].removeprefix("#/$defs/")] if isinstance(schema.get("$ref"), str) else []
        return own + [name for value in schema.values() for name in _refs(value)]
    if isinstance(schema, list):
        return [name for value in schema for name in _refs(value)]
    return []
