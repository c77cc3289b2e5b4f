"""Journey files → validated Journey models, with every mistake of every file reported at once, by file and line.

Journeys are written by marketers and product people, not by the engine's authors, and a journey that loads
is one the engine will run on real customers. So everything that can be checked statically is checked when it
loads: the file's shape and top level here, each step in steps.py, what needs all the steps (jumps,
reachability, templates, channels, fallbacks) in validate.py, and every problem of every file is reported
together, each worded by report.py at the line the author wrote.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from omnicanal.errors import ConfigError, JourneyError, Problem, SegmentError, TemplateError
from omnicanal.journey.durations import parse_duration
from omnicanal.journey.model import Goal, InstanceRule, Journey, ReEntry, Trigger, check_id
from omnicanal.journey.report import FileReport
from omnicanal.journey.schedules import EVERYONE
from omnicanal.journey.segments import load_segments
from omnicanal.journey.steps import StepReader
from omnicanal.journey.validate import TemplateLookup, check_steps
from omnicanal.policy.caps import Cap
from omnicanal.render import TemplateCatalog
from omnicanal.suggest import did_you_mean
from omnicanal.yaml_lines import Document, YamlSyntaxError, load_with_lines, yaml_sources


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
    trigger: Trigger
    re_entry: Annotated[ReEntry, BeforeValidator(_re_entry)] = ReEntry(mode="never")
    exit_on: tuple[InstanceRule, ...] = ()
    goal: Goal | None = None
    caps: list[Annotated[Cap, BeforeValidator(_journey_cap)]] = []
    steps: list[Any] = Field(min_length=1)


@dataclass(frozen=True)
class _Checked:
    """What checking one file gives: the journey if it has no problem, and the report of its problems."""

    journey: Journey | None
    report: FileReport


def _check_audience(report: FileReport, trigger: Trigger, segments: Collection[str] | None) -> None:
    """A scheduled journey's audience must be a defined segment (or everyone), when the segments are known."""
    audience = trigger.audience
    if trigger.schedule is None or audience is None or audience == EVERYONE or segments is None:
        return
    if audience not in segments:
        report.add(("trigger", "audience"), f"trigger.audience: no segment {audience!r}"
                                            f"{did_you_mean(audience, segments)}; defined: "
                                            f"{', '.join(sorted(segments)) or 'none'} (segments/*.yaml), or everyone")


def _check(source: str, path: str, templates: TemplateLookup | None, segments: Collection[str] | None) -> _Checked:
    """Read, reshape and validate one journey file, collecting problems instead of stopping at the first."""
    try:
        doc = load_with_lines(source)
    except YamlSyntaxError as exc:
        return _Checked(None, FileReport(path, Document(None, {(): 1}), [Problem(path, exc.line, exc.message)]))
    report = FileReport(path, doc, [Problem(path, line, message) for line, message in doc.problems])
    if not isinstance(doc.data, dict):
        report.add((), "a journey file is a mapping with at least id, trigger and steps; "
                       f"this one holds {type(doc.data).__name__}")
        return _Checked(None, report)
    header = report.validate(_JourneyFile, doc.data, ())
    raw_steps = doc.data.get("steps")
    reader = StepReader(report)
    steps = [reader.read(i, raw) for i, raw in enumerate(raw_steps)] if isinstance(raw_steps, list) else []
    built = [step for step in steps if step is not None]
    check_steps(report, built, reader.step_lines, complete=len(built) == len(steps), templates=templates)
    if header is not None:
        _check_audience(report, header.trigger, segments)
    if header is None or report.problems:
        return _Checked(None, report)
    journey = Journey(
        id=header.id, name=header.name or header.id, trigger=header.trigger, re_entry=header.re_entry,
        exit_on=header.exit_on, goal=header.goal, caps=tuple(header.caps), steps=tuple(built),
        version=hashlib.sha256(source.encode()).hexdigest()[:12], path=path, source=source,
    )
    return _Checked(journey, report)


def parse_journey(source: str, path: str, templates: TemplateLookup | None = None,
                  segments: Collection[str] | None = None) -> Journey:
    """The journey in `source` (read from `path`, named in messages); JourneyError lists every problem.
    `segments`: the ids a scheduled journey's audience may name (None: not checked)."""
    checked = _check(source, path, templates, segments)
    if checked.journey is None:
        raise JourneyError(checked.report.problems)
    return checked.journey


def load_journeys(directory: Path, templates: TemplateLookup | None = None,
                  segments: Collection[str] | None = None) -> dict[str, Journey]:
    """Every `*.yaml`/`*.yml` journey of `directory` by id; one JourneyError with all files' problems.
    `segments`: the ids a scheduled journey's audience may name (None: not checked)."""
    if not directory.is_dir():
        raise ConfigError(f"OMNICANAL_JOURNEYS_DIR: {str(directory)!r} is not a directory; set "
                          "OMNICANAL_JOURNEYS_DIR to the folder of journey .yaml files")
    journeys: dict[str, Journey] = {}
    problems: list[Problem] = []
    for file, source in yaml_sources(directory, problems):
        checked = _check(source, str(file), templates, segments)
        problems += checked.report.problems
        journey = checked.journey
        if journey is None:
            continue
        if journey.id in journeys:
            message = f"journey id {journey.id!r} is also in {journeys[journey.id].path}: ids must be unique"
            problems.append(Problem(journey.path, checked.report.doc.line_of(("id",)), message))
            continue
        journeys[journey.id] = journey
    if problems:
        raise JourneyError(problems)
    return journeys


def validate_project(journeys_dir: Path, templates_dir: Path, default_locale: str,
                     segments_dir: Path | None = None) -> list[Problem]:
    """Every problem of the templates, journeys and segments (None: no segments); journeys are still checked
    when templates do not load."""
    problems: list[Problem] = []
    catalog: TemplateCatalog | None = None
    try:
        catalog = TemplateCatalog.load(templates_dir, default_locale)
    except TemplateError as exc:
        problems += exc.problems
    segments: frozenset[str] | None = frozenset()
    try:
        if segments_dir is not None:
            segments = frozenset(load_segments(segments_dir).by_id)
    except SegmentError as exc:
        problems += exc.problems
        segments = None  # unknown: audiences are not checked against segments that do not load
    try:
        load_journeys(journeys_dir, catalog, segments)
    except JourneyError as exc:
        problems += exc.problems
    return sorted(problems)
