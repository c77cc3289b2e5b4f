"""The JSON Schema of a segment file (`segments/*.yaml`), written by hand.

Segments have no model yet (issue #17 builds them): this schema is the shape the design fixes (shared
DESIGN.md §7), `id`, `where` and `aggregates: {name: {event, count|sum|last, within?}}`. When the segment model
lands, generate this from it as the other kinds are.
"""

from __future__ import annotations

from pydantic.json_schema import JsonSchemaValue

from omnicanal.schema.forms import document, ref

TITLE = "omnicanal segment"
DESCRIPTION = ("An audience: the customers for whom `where` is true, over their profile and the aggregates kept "
               "per customer from their events.")

_AGGREGATE = {
    "description": "A value kept per customer as events apply: how many (count), a total (sum) or the last value "
                   "(last) of the matching events, optionally only those within a window.",
    "type": "object",
    "properties": {
        "event": {"type": "string", "minLength": 1, "description": "The events it is kept from."},
        "count": {"const": True, "description": "How many matching events."},
        "sum": {**ref("Expression"), "description": 'The total of an expression: "event.properties.total".'},
        "last": {**ref("Expression"), "description": 'The last value of an expression: "event.timestamp".'},
        "within": {**ref("Duration"), "description": "Only the events of this last period (90d)."},
    },
    "required": ["event"],
    "oneOf": [{"required": ["count"]}, {"required": ["sum"]}, {"required": ["last"]}],
    "additionalProperties": False,
}


def schema() -> JsonSchemaValue:
    """The segment file's schema, as the design fixes it."""
    root = {
        "type": "object",
        "properties": {
            "id": ref("Id"),
            "where": {**ref("Expression"), "description": 'Who is in: "customer.tier == \'gold\' and '
                                                          'aggregates.orders_90d == 0".'},
            "aggregates": {"type": "object", "description": "The aggregates `where` reads, by name.",
                           "propertyNames": {"pattern": "^[a-z_][a-z0-9_]{0,63}$"},
                           "additionalProperties": ref("Aggregate")},
        },
        "required": ["id", "where"],
        "additionalProperties": False,
    }
    return document(TITLE, DESCRIPTION, root, {"Aggregate": _AGGREGATE})
