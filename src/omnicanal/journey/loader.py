"""Journey files → validated Journey models, with every mistake reported at once, by file and line.

Journeys are written by marketers and product people, not by the engine's authors, and a journey that loads
is one the engine will run on real customers. So everything that can be checked statically is checked here
(shape, durations, expressions, jump targets, unreachable steps, templates and channels), and all problems of
all files are reported together: fixing one mistake per run of `omnicanal validate` wastes an afternoon.

The author's YAML shapes (`wait: 1h`, `goto: x`, a branch written as a list ending with `else`) are reshaped
into the model's fields before pydantic validates them; `Document.alias` keeps their line numbers pointing at
what the author wrote.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Protocol, TypeVar, get_args

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from omnicanal.errors import ConfigError, JourneyError, Problem, TemplateError
from omnicanal.journey.durations import parse_duration
from omnicanal.journey.graph import reachable, step_edges
from omnicanal.journey.model import (
    KIND_MODELS,
    DigestStep,
    EventMatch,
    Goal,
    Journey,
    ReEntry,
    SendStep,
    Step,
    check_id,
)
from omnicanal.journey.yaml_lines import Document, YamlSyntaxError, load_with_lines
from omnicanal.policy.caps import Cap
from omnicanal.render import CHANNEL_FIELDS, TemplateCatalog

_M = TypeVar("_M", bound=BaseModel)

KNOWN_CHANNELS: frozenset[str] = frozenset(CHANNEL_FIELDS)
STEP_KEYS: tuple[str, ...] = ("id", *KIND_MODELS)

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
    "too_short": "expected at least one item",
    "invalid_key": "a key must be a name; YAML reads this one as a number, date or true/false (quote it)",
}


class TemplateLookup(Protocol):
    def channels(self, name: str) -> frozenset[str] | None:
        """Channels the template has a variant for; None if there is no such template."""


def _re_entry(value: object) -> object:
    """`never`, `always` or `after <duration>`, as written, into a ReEntry."""
    if isinstance(value, ReEntry):
        return value
    text = value.strip() if isinstance(value, str) else None
    if text in ("never", "always"):
        return ReEntry.model_validate({"mode": text})
    if text is not None and text.startswith("after "):
        return ReEntry(mode="after", after=parse_duration(text.removeprefix("after ").strip()))
    raise ValueError(f"use never, always or 'after <duration>' (e.g. after 7d), not {value!r}")


def _journey_cap(value: object) -> object:
    """`1/1d` in a journey's `caps` counts that journey's marketing sends (`channel:1/4h` per channel)."""
    if not isinstance(value, str):
        raise ValueError(f"a cap is written COUNT/PERIOD, e.g. 1/1d or channel:1/4h, not {value!r}")
    cap = Cap.parse(value)
    return cap if cap.scope == "channel" else Cap(cap.limit, cap.seconds, "journey")


class _JourneyFile(BaseModel):
    """The top level of a journey file; steps are validated one by one, to report each on its own line."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Annotated[str, AfterValidator(check_id)]
    name: str | None = None
    trigger: EventMatch
    re_entry: Annotated[ReEntry, BeforeValidator(_re_entry)] = ReEntry(mode="never")
    exit_on: tuple[EventMatch, ...] = ()
    goal: Goal | None = None
    caps: list[Annotated[Cap, BeforeValidator(_journey_cap)]] = []
    steps: list[Any] = Field(min_length=1)


def _closest(word: object, candidates: Iterable[str]) -> str | None:
    return next(iter(difflib.get_close_matches(str(word), list(candidates), n=1)), None)


def _did_you_mean(word: object, candidates: Iterable[str]) -> str:
    close = _closest(word, candidates)
    return f" (did you mean {close!r}?)" if close else ""


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


def _owner(path: Sequence[Any]) -> str:
    """How to name the mapping at `path` in a message: `send step`, `exit_on item`, `trigger`."""
    if not path:
        return "the journey"
    if path[0] == "steps" and len(path) == 2:
        return "step"
    if path[0] == "steps" and len(path) == 3:
        return f"{path[2]} step"
    if isinstance(path[-1], int):
        return f"{path[-2]} item"
    return _dotted(path)


@dataclass
class _FileCheck:
    """Checks one journey file, collecting problems instead of stopping at the first."""

    source: str
    path: str
    templates: TemplateLookup | None
    doc: Document = field(init=False)
    problems: list[Problem] = field(default_factory=list)
    step_lines: dict[str, int] = field(default_factory=dict)  # every step id declared, even of broken steps

    def add(self, loc: Sequence[Any], message: str) -> None:
        self.problems.append(Problem(self.path, self.doc.line_of(loc), message))

    def run(self) -> Journey | None:
        try:
            self.doc = load_with_lines(self.source)
        except YamlSyntaxError as exc:
            self.problems.append(Problem(self.path, exc.line, exc.message))
            return None
        self.problems += [Problem(self.path, line, message) for line, message in self.doc.problems]
        if not isinstance(self.doc.data, dict):
            self.add((), "a journey file is a mapping with at least id, trigger and steps; "
                         f"this one holds {type(self.doc.data).__name__}")
            return None
        header = self.validate(_JourneyFile, self.doc.data, ())
        raw_steps = self.doc.data.get("steps")
        steps = [self.step(i, raw) for i, raw in enumerate(raw_steps)] if isinstance(raw_steps, list) else []
        built = [step for step in steps if step is not None]
        self.check_flow(built, complete=len(built) == len(steps))
        if header is None or self.problems:
            return None
        return Journey(
            id=header.id, name=header.name or header.id, trigger=header.trigger, re_entry=header.re_entry,
            exit_on=header.exit_on, goal=header.goal, caps=tuple(header.caps), steps=tuple(built),
            version=hashlib.sha256(self.source.encode()).hexdigest()[:12], path=self.path, source=self.source,
        )

    def validate(self, model: type[_M], data: object, base: tuple[Any, ...]) -> _M | None:
        """`model` validated from `data`, or None after recording one problem per validation error."""
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            errors = exc.errors()
        # a misspelt key is also a missing one: say it once, as the unknown key with its correction
        misspelt = {
            (*error["loc"][:-1], _closest(error["loc"][-1], _accepted_keys(model, error["loc"][:-1])))
            for error in errors
            if error["type"] == "extra_forbidden"
        }
        for error in errors:
            if error["type"] != "missing" or error["loc"] not in misspelt:
                loc = (*base, *error["loc"])
                self.add(loc, self.message(error, model, loc))
        return None

    def message(self, error: ErrorDetails, model: type[BaseModel], loc: tuple[Any, ...]) -> str:
        """One validation error in the author's terms: their key names, the fix, no pydantic jargon."""
        kind, key = error["type"], loc[-1] if loc else ""
        if kind == "extra_forbidden":
            accepted = _accepted_keys(model, error["loc"][:-1])
            return (f"unknown key {key!r} in {_owner(self.doc.resolve(loc[:-1]))}; expected one of: "
                    f"{', '.join(accepted)}{_did_you_mean(key, accepted)}")
        if kind == "missing":
            written = _WRITTEN.get(key, key)
            hint = f": {_MISSING_HINTS[written]}" if written in _MISSING_HINTS else ""
            return f"missing required key {written!r} in {_owner(self.doc.resolve(loc[:-1]))}{hint}"
        text = str(error["ctx"]["error"]) if kind == "value_error" else _TYPE_MESSAGES.get(kind, error["msg"])
        where = _dotted(self.doc.resolve(loc))
        return f"{where}: {text}" if where else text

    def step(self, index: int, raw: object) -> Step | None:
        """One step, or None if it is too broken to build (its problems are recorded)."""
        base = ("steps", index)
        if raw == "exit":
            raw = {"exit": None}
        if not isinstance(raw, dict):
            self.add(base, f"a step is a mapping such as `- wait: 1h`, or the word `exit`; got {raw!r}")
            return None
        unknown = [key for key in raw if key not in STEP_KEYS]
        expected = ", ".join(sorted(STEP_KEYS))
        for key in unknown:
            self.add((*base, key), f"unknown key {key!r} in step; expected one of: {expected}"
                                   f"{_did_you_mean(key, STEP_KEYS)}")
        kinds = [key for key in raw if key in KIND_MODELS]
        step_id = self.step_id(raw, index, kinds[0] if len(kinds) == 1 else None)
        if len(kinds) != 1 or step_id is None:
            if kinds or not unknown:
                found = f"has {' and '.join(map(repr, kinds))}" if kinds else "has none"
                self.add(base, f"a step needs exactly one of {', '.join(KIND_MODELS)}; this one {found}"
                               + (": split it into one step per action" if kinds else ""))
            return None
        kind = kinds[0]
        payload = self.reshape(kind, raw[kind], (*base, kind))
        action = self.validate(KIND_MODELS[kind], payload, (*base, kind)) if payload is not None else None
        if action is None:
            return None
        return Step.model_validate(
            {"id": step_id, "index": index, "line": self.doc.line_of(base), "kind": kind, "action": action}
        )

    def step_id(self, raw: dict[Any, Any], index: int, kind: str | None) -> str | None:
        """The step's id, written or automatic, recorded so that jumps to it and duplicates can be checked."""
        where = ("steps", index, "id")
        if "id" in raw:
            step_id = str(raw["id"])
            try:
                check_id(step_id)
            except ValueError as exc:
                self.add(where, f"id: {exc}")
        elif kind is not None:
            step_id = f"{index + 1}_{kind}"
        else:
            return None
        if step_id in self.step_lines:
            self.add(where, f"duplicate step id {step_id!r} (also used at line {self.step_lines[step_id]}): "
                            "step ids must be unique")
        self.step_lines.setdefault(step_id, self.doc.line_of(where[:2]))
        return step_id

    def reshape(self, kind: str, value: Any, where: tuple[Any, ...]) -> object:
        """The author's shape of a step payload → the model's; None if it is too wrong to validate."""
        if kind == "wait" and isinstance(value, dict):
            return value
        if kind in ("wait", "goto"):
            return {"seconds" if kind == "wait" else "target": value}
        if kind == "exit":
            return {} if value is None else value
        if kind == "send" and isinstance(value, dict) and "channel" in value:
            if "channels" in value:
                self.add((*where, "channel"), "use either 'channel' (one) or 'channels' (a list), not both")
                return None
            self.doc.alias((*where, "channel"), (*where, "channels"))
            return {**{k: v for k, v in value.items() if k != "channel"}, "channels": [value["channel"]]}
        if kind == "branch":
            return self.reshape_branch(value, where)
        return value

    def reshape_branch(self, items: Any, where: tuple[Any, ...]) -> object:
        """A branch as written, a list of cases ending with `else`, → `cases` and `otherwise`."""
        if not isinstance(items, list) or not items:
            self.add(where, "a branch is a list of `- {when: <condition>, goto: <step id>}` cases "
                            "ending with `- {else: <step id>}`")
            return None
        payload: dict[str, Any] = {"cases": []}
        for number, item in enumerate(items):
            if not (isinstance(item, dict) and "else" in item):
                self.doc.alias((*where, number), (*where, "cases", len(payload["cases"])))
                payload["cases"].append(item)
                continue
            if number != len(items) - 1:
                self.add((*where, number, "else"), "'else' must be the last item of a branch; move it down")
            if len(item) > 1:
                self.add((*where, number), "an else item has only the 'else' key: `- {else: <step id>}`")
            self.doc.alias((*where, number, "else"), (*where, "otherwise"))
            payload["otherwise"] = item["else"]
        return payload

    def check_flow(self, steps: list[Step], *, complete: bool) -> None:
        """Jump targets must exist; then, on a sound graph, every step must be reachable.

        Sound means every step built, ids unique and targets right: otherwise reachability would report steps
        that fixing the other problems makes reachable again.
        """
        sound = complete and len(self.step_lines) == len(steps)
        for step in steps:
            for edge in step_edges(step, None):
                if edge.loc is not None and edge.target not in self.step_lines:
                    sound = False
                    loc = ("steps", step.index, step.kind, *edge.loc)
                    self.add(loc, f"{_dotted(self.doc.resolve(loc))}: no step has the id {edge.target!r}"
                                  f"{_did_you_mean(edge.target, self.step_lines)}")
        if sound:
            for index in sorted(set(range(len(steps))) - reachable(steps)):
                self.add(("steps", index), f"step {steps[index].id!r} can never run: the step before it "
                                           "does not continue to it and no goto, branch or on_timeout leads "
                                           "to it; jump to it or remove it")
        for step in steps:
            self.check_send(step)

    def check_send(self, step: Step) -> None:
        """Channels must be the engine's, and (with a template lookup) the template must exist for each."""
        if not isinstance(step.action, SendStep | DigestStep):
            return
        where, name = ("steps", step.index, step.kind), step.action.template
        available = self.templates.channels(name) if self.templates is not None else None
        if self.templates is not None and available is None:
            self.add((*where, "template"), f"template {name!r} does not exist: add {name}.yaml to the "
                                           "templates directory or fix the name")
        for number, channel in enumerate(step.action.channels):
            if channel not in KNOWN_CHANNELS:
                self.add((*where, "channels", number), f"unknown channel {channel!r}; expected one of: "
                         f"{', '.join(sorted(KNOWN_CHANNELS))}{_did_you_mean(channel, KNOWN_CHANNELS)}")
            elif available is not None and channel not in available:
                self.add((*where, "channels", number), f"template {name!r} has no {channel!r} variant: "
                                                       f"add one to {name}.yaml or drop {channel!r} here")


def parse_journey(source: str, path: str, templates: TemplateLookup | None = None) -> Journey:
    """The journey in `source` (read from `path`, named in messages); JourneyError lists every problem."""
    check = _FileCheck(source, path, templates)
    journey = check.run()
    if journey is None:
        raise JourneyError(check.problems)
    return journey


def load_journeys(directory: Path, templates: TemplateLookup | None = None) -> dict[str, Journey]:
    """Every `*.yaml`/`*.yml` journey of `directory` by id; one JourneyError with all files' problems."""
    if not directory.is_dir():
        raise ConfigError(f"OMNICANAL_JOURNEYS_DIR: {str(directory)!r} is not a directory; set "
                          "OMNICANAL_JOURNEYS_DIR to the folder of journey .yaml files")
    journeys: dict[str, Journey] = {}
    problems: list[Problem] = []
    for file in sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()):
        try:
            source = file.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(str(file), 1, f"cannot read the file: {exc}"))
            continue
        check = _FileCheck(source, str(file), templates)
        journey = check.run()
        problems += check.problems
        if journey is None:
            continue
        if journey.id in journeys:
            message = f"journey id {journey.id!r} is also in {journeys[journey.id].path}: ids must be unique"
            problems.append(Problem(journey.path, check.doc.line_of(("id",)), message))
            continue
        journeys[journey.id] = journey
    if problems:
        raise JourneyError(problems)
    return journeys


def validate_project(journeys_dir: Path, templates_dir: Path, default_locale: str) -> list[Problem]:
    """Every problem of the templates and journeys; journeys are still checked when templates do not load."""
    problems: list[Problem] = []
    catalog: TemplateCatalog | None = None
    try:
        catalog = TemplateCatalog.load(templates_dir, default_locale)
    except TemplateError as exc:
        problems += exc.problems
    try:
        load_journeys(journeys_dir, catalog)
    except JourneyError as exc:
        problems += exc.problems
    return sorted(problems)
