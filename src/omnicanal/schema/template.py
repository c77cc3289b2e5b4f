"""The JSON Schema of a template file: locales, then channels, then each channel's fields (channels.CHANNELS).

Every field is a Jinja2 template string; the fields whose value is a mapping (push `data`, webhook `payload`)
map names to template strings. The default locale's variant being there, and the Jinja2 syntax, remain
`omnicanal validate`'s to check.
"""

from __future__ import annotations

from pydantic.json_schema import JsonSchemaValue

from omnicanal.channels import CHANNELS, ChannelSpec
from omnicanal.schema.forms import document, ref

TITLE = "omnicanal template"
DESCRIPTION = ("A message in every language and on every channel: locales (en, fr, fr-CA), then channels, then the "
               "channel's fields, each a Jinja2 template over customer, event, vars, data and locale.")

_TEXT = {"type": "string", "description": "A Jinja2 template: text with {{ customer.first_name }} and {% if %}."}


def _variant_name(channel: str) -> str:
    return f"{channel.capitalize()}Variant"


def _field(spec: ChannelSpec, name: str) -> JsonSchemaValue:
    if name in spec.mappings:
        return {"type": "object", "additionalProperties": _TEXT,
                "description": "Names to template strings (an empty result is sent as an empty value)."}
    if name in spec.html:
        return {**_TEXT, "description": "A Jinja2 template of HTML; customer data in it is escaped."}
    return _TEXT


def _variant(channel: str, spec: ChannelSpec) -> JsonSchemaValue:
    optional = f"; optional: {', '.join(sorted(spec.optional))}" if spec.optional else ""
    return {
        "description": f"The {channel} message. Required fields: {', '.join(sorted(spec.required))}{optional}.",
        "type": "object",
        "properties": {name: _field(spec, name) for name in sorted(spec.fields)},
        "required": sorted(spec.required),
        "additionalProperties": False,
    }


def schema() -> JsonSchemaValue:
    """The template file's schema, from the channel catalogue."""
    defs = {_variant_name(channel): _variant(channel, spec) for channel, spec in CHANNELS.items()}
    defs["Channels"] = {
        "description": "This locale's variant on each channel the template may be sent on.",
        "type": "object",
        "properties": {channel: ref(_variant_name(channel)) for channel in CHANNELS},
        "additionalProperties": False,
    }
    root = {"type": "object", "propertyNames": ref("Locale"), "additionalProperties": ref("Channels")}
    return document(TITLE, DESCRIPTION, root, defs)
