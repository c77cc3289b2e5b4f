"""Segments: audiences defined in `segments/*.yaml`, read and checked like journeys (`file:line` problems).

```yaml
id: lapsed_gold
where: "customer.tier == 'gold' and aggregates.orders_90d == 0"
aggregates:
  orders_90d: {event: order_placed, count: true, within: 90d}
```

A segment is a condition over the customer's profile and aggregates, values kept per customer as their events
apply (journey/aggregates.py); journey/audience.py keeps each customer's memberships. Aggregates share one name
space across segments, so a name means one thing for a customer: two segments may both define `orders_90d`,
the same way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from omnicanal.errors import ConfigError, ExpressionError, Problem, SegmentError
from omnicanal.expressions import keys_read, reads
from omnicanal.journey.model import Condition, Duration, Name, check_id
from omnicanal.journey.report import FileReport
from omnicanal.journey.state import PROFILE_FIELDS
from omnicanal.yaml_lines import Document, YamlSyntaxError, load_with_lines, yaml_sources

AGGREGATE_NAME_PATTERN = r"^[a-z_][a-z0-9_]{0,63}$"


class Aggregate(BaseModel):
    """A value kept per customer from the events named `event`: how many (`count: true`), the total of an
    expression (`sum`), or the value of an expression on the latest one (`last`); with `within`, only the
    events of that last period count."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event: Name
    count: Literal[True] | None = None
    sum: Condition | None = None
    last: Condition | None = None
    within: Duration | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Aggregate:
        if sum(kind is not None for kind in (self.count, self.sum, self.last)) != 1:
            raise ValueError("an aggregate is exactly one of `count: true`, `sum: <expression>` or "
                             "`last: <expression>`")
        return self

    @property
    def kind(self) -> Literal["count", "sum", "last"]:
        return "count" if self.count else "sum" if self.sum is not None else "last"

    @cached_property
    def signature(self) -> str:
        """What the kept data means: data kept under another signature (the file changed) starts afresh."""
        expression = self.sum or self.last
        return f"{self.event}|{self.kind}|{expression.source if expression else ''}|{self.within or ''}"


class Segment(BaseModel):
    """A segment file, validated. `where` sees `customer`, `aggregates` (this segment's) and `now`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Annotated[str, AfterValidator(check_id)]
    where: Condition
    aggregates: dict[Annotated[str, Field(pattern=AGGREGATE_NAME_PATTERN)], Aggregate] = {}

    @property
    def fingerprint(self) -> str:
        """What the definition means — its condition and its aggregates — hashed: a segment whose fingerprint is
        not the one backfilled is new or changed, and is evaluated again for every customer (a backfill)."""
        aggregates = self.aggregates
        meaning = [self.where.source, *(f"{name}={aggregates[name].signature}" for name in sorted(aggregates))]
        return hashlib.sha256("\x00".join(meaning).encode()).hexdigest()[:16]


UNANNOUNCED = PROFILE_FIELDS - {"id", "attributes"}
"""Customer fields that change with no `customer.updated` naming them (a PUT announces attributes only)."""


@dataclass(frozen=True, slots=True)
class Reads:
    """What a segment's `where` reads, found in its text when loaded: its membership can change only when one of
    these does, so it is evaluated only then (journey/audience.py)."""

    aggregates: frozenset[str]
    """The aggregates it reads (all the segment's when it reads `aggregates` other than by name)."""
    fields: frozenset[str] | None
    """The customer's attributes it reads (`customer.tier`); None: any change of the profile may matter — it
    reads `customer` whole or by a computed key, or a profile field (`customer.timezone`: those change with no
    event naming them). A `where` reading `now` counts as reading every field and aggregate: its truth changes
    with time alone, so it is evaluated whenever anything of the customer's changes, never less often."""

    @classmethod
    def of(cls, segment: Segment) -> Reads:
        where = segment.where.source
        defined = frozenset(segment.aggregates)
        if reads(where, "now") != frozenset():
            return cls(defined, None)
        aggregates, fields = reads(where, "aggregates"), reads(where, "customer")
        return cls(defined if aggregates is None else aggregates,
                   None if fields is None or not fields.isdisjoint(UNANNOUNCED) else fields)

    def moved_by(self, aggregates: Set[str], profile: bool, fields: Set[str] | None) -> bool:
        """Whether the membership may have changed: one of these aggregates changed, or the profile did
        (`fields`: the attributes that changed; None: unknown)."""
        if not self.aggregates.isdisjoint(aggregates):
            return True
        return profile and (self.fields is None or fields is None or not self.fields.isdisjoint(fields))


@dataclass(frozen=True)
class Segments:
    """The segments in force, with what the core looks up on every event: the aggregates kept from it, what
    each segment reads."""

    by_id: Mapping[str, Segment] = field(default_factory=dict)
    aggregates: Mapping[str, Aggregate] = field(default_factory=dict)
    """Every aggregate of every segment, by name."""
    by_event: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Event name -> the names of the aggregates kept from it."""
    reads: Mapping[str, Reads] = field(default_factory=dict)
    """Segment id -> what its `where` reads."""
    signature: str = ""
    """What the definitions are (a digest): a customer last evaluated under another has every segment evaluated
    again at their next change (a segment added, a `where` rewritten)."""

    @classmethod
    def of(cls, segments: Mapping[str, Segment]) -> Segments:
        aggregates = {name: aggregate for segment in segments.values()
                      for name, aggregate in segment.aggregates.items()}
        by_event: dict[str, tuple[str, ...]] = {}
        for name, aggregate in aggregates.items():
            by_event[aggregate.event] = (*by_event.get(aggregate.event, ()), name)
        definitions = repr(sorted((id_, segment.fingerprint) for id_, segment in segments.items()))
        return cls(dict(segments), aggregates, by_event, {id_: Reads.of(segment) for id_, segment in segments.items()},
                   hashlib.sha256(definitions.encode()).hexdigest()[:16])

    def __bool__(self) -> bool:
        return bool(self.by_id)

    @property
    def fingerprints(self) -> dict[str, str]:
        """Segment id -> the fingerprint of its definition (what a backfill is armed with)."""
        return {segment_id: segment.fingerprint for segment_id, segment in self.by_id.items()}


NO_SEGMENTS = Segments()


def _check(source: str, path: str, known: dict[str, tuple[Aggregate, str]]) -> tuple[Segment | None, FileReport]:
    """One segment file read and validated; `known` (aggregate name -> definition, file) spans the files read so
    far, so that a name defined twice differently is reported where the second one is."""
    try:
        doc = load_with_lines(source)
    except YamlSyntaxError as exc:
        return None, FileReport(path, Document(None, {(): 1}), [Problem(path, exc.line, exc.message)], "segment")
    report = FileReport(path, doc, [Problem(path, line, message) for line, message in doc.problems], "segment")
    if not isinstance(doc.data, dict):
        report.add((), "a segment file is a mapping with id and where (and aggregates)")
        return None, report
    segment = report.validate(Segment, doc.data, ())
    _check_where(report, doc.data)
    if segment is None:
        return None, report
    for name, aggregate in segment.aggregates.items():
        other = known.setdefault(name, (aggregate, path))
        if other[0] != aggregate:
            report.add(("aggregates", name), f"aggregate {name!r} is defined differently in {other[1]}: an "
                                             "aggregate name means one thing for every segment")
    return (None if report.problems else segment), report


def _check_where(report: FileReport, data: dict[object, object]) -> None:
    """Every aggregate `where` reads is one the segment defines (checked on the file as written, so that it is
    reported with the file's other problems)."""
    where, aggregates = data.get("where"), data.get("aggregates")
    if not isinstance(where, str):
        return
    defined = {name for name in aggregates if isinstance(name, str)} if isinstance(aggregates, dict) else set()
    try:
        read = keys_read(where, "aggregates")
    except ExpressionError:
        return  # said by the model's validation
    for name in sorted(read - defined):
        report.add(("where",), f"where: unknown aggregate {name!r} (this segment's aggregates: "
                               f"{', '.join(sorted(defined)) or 'none'})")


def load_segments(directory: Path) -> Segments:
    """Every `*.yaml`/`*.yml` segment of `directory` (none when it does not exist); one SegmentError with every
    problem of every file."""
    if directory.exists() and not directory.is_dir():  # named, but not a folder: not "no segments"
        raise ConfigError(f"OMNICANAL_SEGMENTS_DIR: {str(directory)!r} is not a directory; set "
                          "OMNICANAL_SEGMENTS_DIR to the folder of segment .yaml files")
    if not directory.is_dir():
        return NO_SEGMENTS
    segments: dict[str, Segment] = {}
    known: dict[str, tuple[Aggregate, str]] = {}
    paths: dict[str, str] = {}
    problems: list[Problem] = []
    for file, source in yaml_sources(directory, problems):
        segment, report = _check(source, str(file), known)
        problems += report.problems
        if segment is None:
            continue
        if segment.id in segments:
            report.add(("id",), f"segment id {segment.id!r} is also in {paths[segment.id]}: ids must be unique")
            problems += report.problems
            continue
        segments[segment.id], paths[segment.id] = segment, str(file)
    if problems:
        raise SegmentError(problems)
    return Segments.of(segments)
