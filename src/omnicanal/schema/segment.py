"""The JSON Schema of a segment file (`segments/*.yaml`), from the model (journey/segments.py): `id`, `where` and
`aggregates: {name: {event, count|sum|last, within?}}`. Added here: exactly one of count, sum and last, and no
aggregate name out of the pattern; an aggregate `where` does not define remains `validate`'s to find."""

from __future__ import annotations

from pydantic.json_schema import JsonSchemaValue

from omnicanal.journey.segments import Segment
from omnicanal.schema.forms import document, model_schemas

TITLE = "omnicanal segment"
DESCRIPTION = ("An audience: the customers for whom `where` is true, over their profile and the aggregates kept "
               "per customer from their events.")


def schema() -> JsonSchemaValue:
    """The segment file's schema, from the model."""
    defs = model_schemas(Segment)
    aggregate = defs["Aggregate"]
    defs["Aggregate"] = {**aggregate, "oneOf": [{"required": [kind]} for kind in ("count", "sum", "last")]}
    root = defs.pop("Segment")
    names = {**root["properties"]["aggregates"], "additionalProperties": False}  # a name out of the pattern
    return document(TITLE, DESCRIPTION, {**root, "properties": {**root["properties"], "aggregates": names}}, defs)
