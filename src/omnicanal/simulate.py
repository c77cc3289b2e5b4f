"""`omnicanal simulate JOURNEY`: a dry run — which message, on which channel, when — before a journey ships.

It runs the real engine on the embedded store, with only that journey loaded and every channel on the
outbox. Time is a manual clock: when the engine is idle, the clock jumps to the next due timer or scenario
event, so days of journey time play in well under a second and every moment is exact. A scenario file:

    customer:                     # the profile (PUT /v1/customers body); default: reachable on every channel
      attributes: {first_name: Léa}
      addresses: {push: [tok-1], email: lea@example.com}
      locale: fr
    events:                       # offsets from the start of the simulation
      - {at: 0s, name: cart_abandoned, properties: {total: 89.0, items: [{sku: SKU-1, name: Sneakers, price: 89}]}}
      - {at: 2h, name: order_placed, properties: {channel: store, items: [{sku: SKU-1}]}}
    fetches:                      # canned answers of `fetch` steps, by URL (a trailing * matches a prefix)
      "https://shop.example/stock/*": {json: {in_stock: 3}}
    until: 3d                     # how much journey time to play (default: the journey's longest run)
    start: 2027-03-27T18:00:00Z   # when the simulation starts (default 2027-01-15 08:00 UTC): time-of-day
                                  # rules (quiet hours, `wait: {until}`, DST) depend on it

`--json` prints the customer's timeline entries (as `GET /v1/customers/{id}/timeline` has them) instead of the
report, for scripts and CI checks of journeys.
"""

from __future__ import annotations

import asyncio
import json
import math
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TextIO

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from omnicanal.api.customers import update_profile
from omnicanal.api.schemas import CustomerIn
from omnicanal.config import Settings
from omnicanal.engine.clock import ManualClock
from omnicanal.engine.runtime import Runtime, load_project
from omnicanal.engine.schedules import ScheduleRunner, occurrence_id
from omnicanal.engine.timers import FIRE_LIMIT
from omnicanal.errors import InputError, NotFound
from omnicanal.journey.durations import format_duration, parse_duration
from omnicanal.journey.model import Journey
from omnicanal.journey.schedules import CUSTOMER, cron_of, next_after
from omnicanal.store.broadcasts import CANCELLED, DONE
from omnicanal.store.schedules import ScheduleMarks
from omnicanal.suggest import did_you_mean
from omnicanal.timestamps import iso
from omnicanal.yaml_lines import YamlSyntaxError, load_with_lines, read_source

DEFAULT_CUSTOMER: dict[str, Any] = {
    "attributes": {"first_name": "Alex"},
    "addresses": {"sms": "+33600000001", "whatsapp": "+33600000001", "email": "alex@example.com",
                  "push": ["device-token"], "webhook": "https://crm.example/hook"},
    "locale": "en",
}


SIMULATED = "simulated"
"""The id of the scenario's customer when it has one (`customer`), not several (`customers`)."""


def _scenario_offset(value: Any) -> Any:
    """Seconds from the start; a number too goes through parse_duration, so that NaN (a clock that never
    reaches it: the simulation hung), infinity and negative offsets are refused as in a journey."""
    if (isinstance(value, str) and value.strip() in ("0", "0s")) or (type(value) in (int, float) and value == 0):
        return 0.0  # "right away": a duration elsewhere must be positive, an offset may be zero
    return parse_duration(value)


Offset = Annotated[float, BeforeValidator(_scenario_offset)]
"""When, from the start of the simulation: 0s, 2h, 1d12h."""


class ScenarioEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: Offset = 0.0
    name: str
    properties: dict[str, Any] = Field(default_factory=dict)
    customer: str | None = None
    """Whose event: an id of `customers` (needed when there are several)."""


class ScenarioUpdate(BaseModel):
    """A change of a customer's profile, as `PUT /v1/customers/{id}` makes it: attributes that change append
    `customer.updated`, and segment memberships are evaluated again."""

    model_config = ConfigDict(extra="forbid")

    at: Offset = 0.0
    customer: str | None = None
    profile: CustomerIn


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer: CustomerIn = Field(default_factory=lambda: CustomerIn.model_validate(DEFAULT_CUSTOMER))
    customers: dict[str, CustomerIn] = Field(default_factory=dict)
    """Several customers by id, instead of `customer`."""
    events: list[ScenarioEvent] = Field(default_factory=list)
    updates: list[ScenarioUpdate] = Field(default_factory=list)
    fetches: dict[str, dict[str, Any]] = Field(default_factory=dict)
    until: float | None = None
    start: datetime = datetime(2027, 1, 15, 8, 0, tzinfo=UTC)

    @field_validator("until", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return None if value is None else parse_duration(value)

    @model_validator(mode="after")
    def _whose(self) -> Scenario:
        """Each event and update names one of the customers (or there is only one)."""
        if self.customers and "customer" in self.model_fields_set:
            raise ValueError("give `customer` (one) or `customers` (several, by id), not both")
        ids = list(self.people)
        items: list[tuple[str, Sequence[ScenarioEvent | ScenarioUpdate]]] = [("events", self.events),
                                                                             ("updates", self.updates)]
        for kind, listed in items:
            for index, item in enumerate(listed):
                if item.customer is None and len(ids) > 1:
                    raise ValueError(f"{kind}[{index}]: say whose it is with `customer:` (one of {', '.join(ids)})")
                if item.customer is not None and item.customer not in ids:
                    raise ValueError(f"{kind}[{index}].customer: no customer {item.customer!r} in the scenario"
                                     f"{did_you_mean(item.customer, ids, listing=True)}")
        return self

    @property
    def people(self) -> dict[str, CustomerIn]:
        """The customers by id."""
        return dict(self.customers) or {SIMULATED: self.customer}

    def whose(self, item: ScenarioEvent | ScenarioUpdate) -> str:
        return item.customer or next(iter(self.people))

    @classmethod
    def read(cls, path: Path | None, journey: Journey) -> Scenario:
        """The scenario file, or the journey's trigger event alone."""
        if path is None and journey.trigger.event is not None:
            return cls(events=[ScenarioEvent(name=journey.trigger.event)])
        if path is None:
            raise InputError([{"field": "--scenario", "message": f"journey {journey.id!r} is scheduled "
                                                                 f"({journey.trigger.label}): give a scenario whose "
                                                                 "customers are in that segment, and its `until`"}])
        try:  # the reader of journey files: no alias bomb, no file of gigabytes
            document = load_with_lines(read_source(path))
        except (OSError, UnicodeDecodeError, YamlSyntaxError) as exc:
            raise InputError([{"field": "--scenario", "message": f"cannot read {path}: {exc}"}]) from exc
        if document.problems:
            raise InputError([{"field": "--scenario", "message": f"{path}:{line}: {message}"}
                              for line, message in document.problems])
        try:
            return cls.model_validate({} if document.data is None else document.data)  # an empty file: {}
        except ValidationError as exc:
            raise InputError([{"field": ".".join(map(str, e["loc"])) or "--scenario",
                               "message": e["msg"].removeprefix("Value error, ")} for e in exc.errors()]) from exc


def _longest_run(journey: Journey) -> float:
    """An upper bound of how long one run of the journey can last: every wait and timeout added up."""
    total = 0.0
    for step in journey.steps:
        action = step.action
        total += getattr(action, "seconds", 0.0) or getattr(action, "timeout", 0.0) or 0.0
    return total


TIMERS_FIRED_HERE = 86_400.0
"""The runtime's own timer loop looks once a day (real time), that is never during a simulation: the simulation
fires the due timers itself (`_fire_due`), once the scenario's items of the moment are in the stream."""

LATEST_ZONE_LAG = 26 * 3600.0
"""How long after the first zone (UTC+14) the last one (UTC-12) reaches a wall-clock time."""


def _horizon(scenario: Scenario, journey: Journey, start: float) -> float:
    """When the simulation ends: `until`, else once the last scenario item and a whole run after it are over
    (for a scheduled journey: after its first occurrence, whose customers may each start up to 26 hours
    later on their own clocks)."""
    if scenario.until is not None:
        return start + scenario.until
    last = max([0.0, *(event.at for event in scenario.events), *(update.at for update in scenario.updates)])
    end = start + last + _longest_run(journey) + 3600
    first = _next_occurrence(journey, start, math.inf)
    if first is not None:
        lag = LATEST_ZONE_LAG if journey.trigger.timezone == CUSTOMER else 0.0
        end = max(end, first + lag + _longest_run(journey) + 3600)
    return end


def _next_occurrence(journey: Journey, after: float, until: float) -> float | None:
    """A scheduled journey's first occurrence after `after`, if it comes by `until`."""
    trigger = journey.trigger
    if trigger.schedule is None:
        return None
    found = next_after(cron_of(trigger.schedule, trigger.timezone or "UTC"), after)
    return found if found is not None and found <= until else None


async def simulate(settings: Settings, journey_id: str, scenario_path: Path | None, out: TextIO,
                   as_json: bool = False) -> None:
    journeys = {journey.id: journey for journey in load_project(settings)[1]}
    if journey_id not in journeys:
        raise NotFound(f"no journey {journey_id!r} in {settings.journeys_dir}; known: {', '.join(sorted(journeys))}")
    journey = journeys[journey_id]
    scenario = Scenario.read(scenario_path, journey)
    items: list[ScenarioEvent | ScenarioUpdate] = [*scenario.updates, *scenario.events]
    pending = sorted(items, key=lambda item: item.at)  # at one moment, profile updates before events
    start = scenario.start.timestamp()  # fixed by default: reports are the same on every run
    horizon = _horizon(scenario, journey, start)
    clock = ManualClock(start)
    runtime = await Runtime.start(settings.model_copy(update={"reload_interval": 0, "partitions": 1,
                                                              "timer_poll_interval": TIMERS_FIRED_HERE}),
                                  clock=clock, canned_fetches=scenario.fetches)
    runner = ScheduleRunner(runtime.registry, lambda: runtime.engine.context.segments.by_id, runtime.broadcasts,
                            ScheduleMarks(runtime.redis, runtime.keys), clock, settings.schedule_grace)
    try:
        await runtime.registry.replace([journey])
        for customer_id, body in scenario.people.items():
            await update_profile(runtime, customer_id, body, "scenario")
        await runner.look()  # a schedule's occurrences count from the start
        while True:
            await _until_idle(runtime)
            due = await runtime.queue.next_due()
            occurrence = _next_occurrence(journey, clock.now(), horizon)
            moment = min(x for x in (due, start + pending[0].at if pending else None, occurrence, horizon)
                         if x is not None)
            if moment >= horizon and (due is None or due >= horizon) and not pending:
                break
            clock.advance_to(moment)
            while pending and start + pending[0].at <= clock.now():
                await _play(runtime, scenario, pending.pop(0))
            if occurrence is not None and occurrence <= clock.now():
                await runner.look()
                await _walked(runtime, occurrence_id(journey.id, occurrence))
            if due is not None and due <= clock.now():
                await _fire_due(runtime)
        timelines = {customer_id: await runtime.customers.timeline(customer_id) for customer_id in scenario.people}
    finally:
        await runtime.stop()
    if as_json:
        shown: Any = timelines[SIMULATED] if list(timelines) == [SIMULATED] else timelines
        out.write(json.dumps(shown, ensure_ascii=False, indent=2) + "\n")
    else:
        out.write(_report(journey, timelines, start))


async def _play(runtime: Runtime, scenario: Scenario, item: ScenarioEvent | ScenarioUpdate) -> None:
    """A scenario item whose moment came: an event into the customer's work, or a profile update as a PUT."""
    customer_id = scenario.whose(item)
    if isinstance(item, ScenarioUpdate):
        await update_profile(runtime, customer_id, item.profile, "scenario")
        return
    now = runtime.clock.now()
    await runtime.queue.append_events([{
        "id": f"evt_{uuid.uuid4().hex}", "name": item.name, "customer_id": customer_id,
        "properties": item.properties, "timestamp": iso(now), "received_at": now,
    }])


async def _fire_due(runtime: Runtime) -> None:
    """Move the timers due now into the work stream, after the scenario's items of the same moment: an event and
    a timer at one instant (an exit at exactly the end of a wait) are applied in that order on every run."""
    partitions = sorted(runtime.ownership.owned)
    while len(await runtime.queue.fire_due(partitions, runtime.clock.now(), FIRE_LIMIT)) >= FIRE_LIMIT:
        pass


async def _walked(runtime: Runtime, broadcast_id: str) -> None:
    """Wait until an occurrence's broadcast has walked its audience and every start it queued is applied."""
    async with asyncio.timeout(30):
        while True:
            broadcast = await runtime.broadcasts.get(broadcast_id)
            if broadcast is not None and broadcast.status in (DONE, CANCELLED) and broadcast.pending == 0:
                return
            await asyncio.sleep(0.01)


async def _until_idle(runtime: Runtime) -> None:
    """Wait until the worker owns the partition and has applied everything in the stream."""
    async with asyncio.timeout(30):
        while not runtime.ownership.owned or await runtime.queue.backlog():
            await asyncio.sleep(0.002)


def _offset(entry: dict[str, Any], start: float) -> str:
    at = datetime.fromisoformat(entry["at"].replace("Z", "+00:00")).timestamp()
    return "+" + format_duration(at - start) if at - start >= 1 else "+0s"


def _report(journey: Journey, timelines: dict[str, list[dict[str, Any]]], start: float) -> str:
    lines = [f"simulation of {journey.id} (version {journey.version}), journey time from start:"]
    for customer_id, entries in timelines.items():
        if list(timelines) != [SIMULATED]:
            lines.append(f"customer {customer_id}:")
        lines += _entry_lines(entries, start)
        if not any(entry["kind"] == "journey" for entry in entries):
            lines.append(_not_started(journey))
    return "\n".join(lines) + "\n"


def _not_started(journey: Journey) -> str:
    trigger = journey.trigger
    if trigger.schedule is not None:
        return (f"the journey did not start: it starts on its schedule ({trigger.schedule}, {trigger.timezone}) "
                f"for the members of segment {trigger.audience!r}; give the customer what the segment asks "
                "(`customers`, `updates`) and an `until` past an occurrence")
    where = f" where {trigger.where.source!r}" if trigger.where else ""
    return (f"the journey did not start: its trigger is {trigger.event!r}{where}; "
            "give the event the properties it needs with --scenario (see `omnicanal simulate --help`)")


def _entry_lines(entries: list[dict[str, Any]], start: float) -> list[str]:
    lines = []
    for entry in entries:
        when = f"{_offset(entry, start):>8}"
        if entry["kind"] == "event":
            lines.append(f"{when}  event    {entry['name']}")
        elif entry["kind"] == "message":
            channel = entry.get("channel", "-")
            lines.append(f"{when}  {entry['status']:<8} {channel:<9} {entry['template']:<22} step {entry['step']}")
            if entry.get("error"):  # why it failed: a template that did not render, a provider's refusal
                lines.append(f"{'':10}error: {entry['error']}")
            for skipped in entry.get("skipped", []):
                lines.append(f"{'':10}skipped {skipped['channel']}: {skipped['reason']}")
        elif entry["kind"] == "journey":
            reason = f" ({entry['reason']})" if entry.get("reason") else ""
            lines.append(f"{when}  journey  {entry['status']}{reason}")
        elif entry["kind"] == "conversion":
            lines.append(f"{when}  goal     reached by {entry['event']}")
        elif entry["kind"] == "fetch":
            lines.append(f"{when}  fetch    {entry['status']:<8} {entry.get('url') or '-'}"
                         + (f": {entry['error']}" if entry.get("error") else ""))
        elif entry["kind"] == "fallback":
            lines.append(f"{when}  fallback {entry['message_id']} ({entry['reason']}): next channel of step "
                         f"{entry['step']}")
        elif entry["kind"] == "error":
            lines.append(f"{when}  error    {entry['where']}: {entry['message']}")
        else:
            lines.append(f"{when}  {entry['kind']:<8} " + json.dumps(
                {k: v for k, v in entry.items() if k not in ("kind", "at")}, ensure_ascii=False))
    return lines
