"""The JSON Schema of a scenario file for `omnicanal simulate --scenario` (simulate.Scenario)."""

from __future__ import annotations

from pydantic.json_schema import JsonSchemaValue

from omnicanal.schema.forms import document, model_schemas, ref
from omnicanal.simulate import Scenario

TITLE = "omnicanal scenario"
DESCRIPTION = ("A dry run for `omnicanal simulate JOURNEY --scenario FILE`: the customer's profile (or several "
               "customers'), the events and profile updates with their offsets from the start, canned answers of "
               "fetch steps, how long to play and from when.")


def schema() -> JsonSchemaValue:
    """The scenario file's schema, from the model; offsets and `until` are written as durations."""
    defs = model_schemas(Scenario)
    root = defs.pop("Scenario")
    at = {"anyOf": [ref("Duration"), {"type": "number"}], "default": 0,
          "description": "When, from the start of the simulation: 0s, 2h, 1d12h."}
    for name in ("ScenarioEvent", "ScenarioUpdate"):
        defs[name] = {**defs[name], "properties": {**defs[name]["properties"], "at": at}}
    until = {"anyOf": [ref("Duration"), {"type": "null"}], "default": None,
             "description": "How much journey time to play (default: the journey's longest run)."}
    return document(TITLE, DESCRIPTION, {**root, "properties": {**root["properties"], "until": until}}, defs)
