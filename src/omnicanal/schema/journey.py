"""The JSON Schema of a journey file, as authors write it.

The top level is the loader's `_JourneyFile`; each step payload is its model's schema (journey/model.py), except
where authors write a shorter form that journey/steps.py reshapes before validating: `wait: 1h`, `goto: x`,
`- exit`, `channel: push`, a branch as a list of cases ending with `{else: x}`, a split as a list of arms. Those
forms are described here as written, so a schema-aware editor accepts exactly what `omnicanal validate` accepts
key by key (rules across keys, jump targets and templates remain `validate`'s).
"""

from __future__ import annotations

from pydantic.json_schema import JsonSchemaValue

from omnicanal.channels import CHANNELS
from omnicanal.journey.loader import _JourneyFile
from omnicanal.journey.model import KIND_MODELS, BranchCase, SplitArm
from omnicanal.schema.forms import DURATION, document, model_schemas, ref

TITLE = "omnicanal journey"
DESCRIPTION = ("A journey: what starts it (trigger), who may enter again (re_entry), what ends it (exit_on, goal) "
               "and its steps, run in order.")

_JUMP = {"type": "string", "description": "The id of the step to go to."}

_ELSE = {
    "description": "Where customers go when no case is true: the last item of a branch.",
    "type": "object",
    "properties": {"else": _JUMP},
    "required": ["else"],
    "additionalProperties": False,
}


_CHANNEL = {"description": "A channel: " + ", ".join(CHANNELS) + ".", "enum": list(CHANNELS)}


def _named_channels(model: JsonSchemaValue) -> JsonSchemaValue:
    """A sending model whose `channels` are names from the channel catalogue, so editors offer them."""
    channels = {**model["properties"]["channels"], "items": ref("Channel")}
    return {**model, "properties": {**model["properties"], "channels": channels}}


def _send(model: JsonSchemaValue) -> JsonSchemaValue:
    """`channel: push` is short for `channels: [push]`; `delivered_on: push.opened` for a list of one."""
    properties = dict(model["properties"])
    properties["channel"] = {**ref("Channel"), "description": "One channel: short for `channels: [push]`."}
    event = {"type": "string", "minLength": 1}
    properties["delivered_on"] = {"anyOf": [event, {"type": "array", "minItems": 1, "items": event}, {"type": "null"}],
                                  "description": "The event, or events, that count as delivery."}
    required = [name for name in model["required"] if name != "channels"]
    return {**model, "properties": properties, "required": required,
            "oneOf": [{"required": ["channels"]}, {"required": ["channel"]}]}


def _payloads(defs: dict[str, JsonSchemaValue]) -> dict[str, JsonSchemaValue]:
    """What follows each step kind's key: the payload model's schema where authors write that shape, else the
    short form journey/steps.py reads."""
    payloads = {kind: ref(model.__name__) for kind, model in KIND_MODELS.items()}
    payloads.update({
        "wait": {"anyOf": [ref("Duration"), ref("WaitStep")]},
        "goto": _JUMP,
        "exit": {"anyOf": [{"type": "null"}, ref("ExitStep")], "description": "End the journey here."},
        "branch": {
            "description": defs["BranchStep"]["description"].replace("`otherwise` (written `else`)", "`else`"),
            "type": "array",
            "minItems": 1,
            "items": {"anyOf": [ref("BranchCase"), ref("BranchElse")]},
            "contains": ref("BranchElse"),
            "minContains": 1,
            "maxContains": 1,
        },
        "split": {"description": defs["SplitStep"]["description"], "type": "array", "minItems": 2,
                  "items": ref("SplitArm")},
    })
    return payloads


def _step(payloads: dict[str, JsonSchemaValue]) -> JsonSchemaValue:
    """One step: the word `exit`, or a mapping with one step kind and an optional id."""
    kinds = [{"title": f"{kind} step", "type": "object", "properties": {"id": ref("Id"), kind: payload},
              "required": [kind], "additionalProperties": False} for kind, payload in payloads.items()]
    return {"description": f"One step: a mapping with one of {', '.join(payloads)} (and an optional id), or the "
                           "word exit.",
            "oneOf": [{"const": "exit", "description": "End the journey here."}, *kinds]}


def schema() -> JsonSchemaValue:
    """The journey file's schema, from the models."""
    defs = model_schemas(_JourneyFile, *KIND_MODELS.values(), BranchCase, SplitArm)
    defs["SendStep"] = _send(_named_channels(defs["SendStep"]))
    defs["DigestStep"] = _named_channels(defs["DigestStep"])
    defs["Channel"] = _CHANNEL
    defs["BranchElse"] = _ELSE
    defs["Step"] = _step(_payloads(defs))
    root = defs.pop("_JourneyFile")
    properties = {
        **root["properties"],
        "re_entry": {"description": "Whether a customer who went through the journey may enter it again: never, "
                                    "always, or after a delay (after 7d).",
                     "type": "string", "pattern": rf"^\s*(?:never|always|after +{DURATION})\s*$",
                     "default": "never"},
        "caps": {"description": "Frequency caps on this journey's marketing sends: COUNT/PERIOD (1/1d), or per "
                                "channel (channel:1/4h).",
                 "type": "array", "items": {"type": "string", "pattern": rf"^\s*(?:channel:)?\s*0*[1-9]\d*\s*/\s*"
                                                                          rf"{DURATION}\s*$"}},
        "steps": {**root["properties"]["steps"], "items": ref("Step")},
    }
    return document(TITLE, DESCRIPTION, {**root, "properties": properties}, defs)
