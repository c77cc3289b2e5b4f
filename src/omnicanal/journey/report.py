"""One journey file's problems, each located at the line the author wrote and worded in the author's terms.

Validation errors come from pydantic, in the model's terms (`seconds`, `cases`, `otherwise`, `dict_type`). The
people reading them wrote YAML (`wait: 1h`, `- {else: x}`): `FileReport.validate` turns each error into a
message with their key names, the keys they could have meant, and the fix, at the line of what they typed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, get_args

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from omnicanal.errors import Problem
from omnicanal.journey.model import SendStep
from omnicanal.suggest import closest, did_you_mean
from omnicanal.yaml_lines import Document

_M = TypeVar("_M", bound=BaseModel)

_SHORTHANDS: dict[type[BaseModel], tuple[str, ...]] = {SendStep: ("channel",)}
"""Keys authors may write that are reshaped away before validation, yet must be listed as accepted."""
_WRITTEN = {"otherwise": "else"}
"""Model field names that authors write differently."""
_MISSING_HINTS = {
    "id": "e.g. `id: abandoned_cart`",
    "trigger": "e.g. `trigger: {event: cart_abandoned}`",
    "steps": "the list of steps the journey runs",
    "event": "the event name, e.g. `event: order_placed`",
    "template": "the template name, e.g. `template: cart_discount`",
    "channels": "e.g. `channels: [push, sms]`, or `channel: push` for a single one",
    "else": "a branch ends with `- {else: <step id>}`, where to go when no case matches",
}
_TYPE_MESSAGES = {
    "dict_type": "expected a mapping (key: value pairs)",
    "model_type": "expected a mapping (key: value pairs)",
    "list_type": "expected a list",
    "tuple_type": "expected a list",
    "string_type": "expected a text value",
    "invalid_key": "a key must be a name; YAML reads this one as a number, date or true/false (quote it)",
}


@dataclass
class FileReport:
    """Collects the problems of one file instead of stopping at the first: fixing one mistake per run of
    `omnicanal validate` wastes an afternoon."""

    path: str
    doc: Document
    problems: list[Problem] = field(default_factory=list)
    noun: str = "journey"
    """What the file holds, as messages name its top level (`missing required key 'id' in the segment`)."""

    def add(self, loc: Sequence[Any], message: str) -> None:
        self.problems.append(Problem(self.path, self.doc.line_of(loc), message))

    def where(self, loc: Sequence[Any]) -> str:
        """How a message names the value at `loc`, as written: `send.channels[1]`, `goto`."""
        return _dotted(self.doc.resolve(loc))

    def validate(self, model: type[_M], data: object, base: tuple[Any, ...]) -> _M | None:
        """`model` validated from `data`, or None after recording one problem per validation error."""
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            errors = exc.errors()
        # a misspelt key is also a missing one: say it once, as the unknown key with its correction
        misspelt = {
            (*error["loc"][:-1], closest(error["loc"][-1], _accepted_keys(model, error["loc"][:-1])))
            for error in errors
            if error["type"] == "extra_forbidden"
        }
        for error in errors:
            if _consequence(error):
                continue
            if error["type"] != "missing" or error["loc"] not in misspelt:
                loc = (*base, *error["loc"])
                self.add(loc, self._message(error, model, loc))
        return None

    def _message(self, error: ErrorDetails, model: type[BaseModel], loc: tuple[Any, ...]) -> str:
        """One validation error in the author's terms: their key names, the fix, no pydantic jargon."""
        kind, key = error["type"], loc[-1] if loc else ""
        if kind == "extra_forbidden":
            accepted = _accepted_keys(model, error["loc"][:-1])
            return (f"unknown key {key!r} in {_owner(self.doc.resolve(loc[:-1]), self.noun)}; expected one of: "
                    f"{', '.join(accepted)}{did_you_mean(key, accepted)}")
        if kind == "missing":
            written = _WRITTEN.get(key, key)
            hint = f": {_MISSING_HINTS[written]}" if written in _MISSING_HINTS else ""
            return f"missing required key {written!r} in {_owner(self.doc.resolve(loc[:-1]), self.noun)}{hint}"
        if kind == "too_short":
            least = error.get("ctx", {}).get("min_length", 1)
            items = "one item" if least == 1 else f"{least} items"
            return f"{self.where(loc) or 'the list'}: expected at least {items}"
        text = str(error["ctx"]["error"]) if kind == "value_error" else _TYPE_MESSAGES.get(kind, error["msg"])
        where = self.where(loc)
        return f"{where}: {text}" if where else text


def _consequence(error: ErrorDetails) -> bool:
    """A list too short only because some of its items failed (each said on its own line): written long
    enough, the list itself is not the mistake."""
    written = error.get("input")
    return error["type"] == "too_short" and isinstance(written, list | tuple) and len(written) >= error.get(
        "ctx", {}).get("min_length", 1)


def _accepted_keys(model: type[BaseModel], loc: Sequence[str | int]) -> list[str]:
    """The keys an author may write in the mapping at `loc` inside `model`."""
    owner = _owner_model(model, loc)
    return sorted(_WRITTEN.get(name, name) for name in [*owner.model_fields, *_SHORTHANDS.get(owner, ())])


def _owner_model(model: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel]:
    """The model whose fields are at `loc` inside `model`, following field annotations."""
    for part in loc:
        if isinstance(part, str) and part in model.model_fields:
            nested = _find_model(model.model_fields[part].annotation)
            if nested is None:
                break
            model = nested
    return model


def _find_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next(filter(None, map(_find_model, get_args(annotation))), None)


def _dotted(path: Sequence[Any]) -> str:
    """`("steps", 2, "send", "data", "x")` → `send.data.x`: the step itself is located by the line."""
    if path[:1] == ("steps",) and len(path) > 1:
        path = path[2:]
    text = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)
    return text.removeprefix(".")


def _owner(path: Sequence[Any], noun: str) -> str:
    """How to name the mapping at `path` of a `noun` file in a message: `send step`, `exit_on item`, `trigger`."""
    if not path:
        return f"the {noun}"
    if path[0] == "steps" and len(path) == 2:
        return "step"
    if path[0] == "steps" and len(path) == 3:
        return f"{path[2]} step"
    if isinstance(path[-1], int):
        return f"{path[-2]} item"
    return _dotted(path)
