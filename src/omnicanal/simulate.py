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
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from omnicanal.api.customers import profile_fields
from omnicanal.api.schemas import CustomerIn
from omnicanal.config import Settings
from omnicanal.engine.clock import ManualClock
from omnicanal.engine.runtime import Runtime, load_project
from omnicanal.errors import InputError, NotFound
from omnicanal.journey.durations import format_duration, parse_duration
from omnicanal.journey.model import Journey
from omnicanal.timestamps import iso

DEFAULT_CUSTOMER: dict[str, Any] = {
    "attributes": {"first_name": "Alex"},
    "addresses": {"sms": "+33600000001", "whatsapp": "+33600000001", "email": "alex@example.com",
                  "push": ["device-token"], "webhook": "https://crm.example/hook"},
    "locale": "en",
}


class ScenarioEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: float = 0.0
    name: str
    properties: dict[str, Any] = Field(default_factory=dict)

    @field_validator("at", mode="before")
    @classmethod
    def _offset(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip() in ("0", "0s"):
            return 0.0  # "right away": a duration elsewhere must be positive, an offset may be zero
        return parse_duration(value) if isinstance(value, str) else value


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer: CustomerIn = Field(default_factory=lambda: CustomerIn.model_validate(DEFAULT_CUSTOMER))
    events: list[ScenarioEvent] = Field(default_factory=list)
    fetches: dict[str, dict[str, Any]] = Field(default_factory=dict)
    until: float | None = None
    start: datetime = datetime(2027, 1, 15, 8, 0, tzinfo=UTC)

    @field_validator("until", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value

    @classmethod
    def read(cls, path: Path | None, journey: Journey) -> Scenario:
        """The scenario file, or the journey's trigger event alone."""
        if path is None:
            if journey.trigger.event is None:
                raise InputError([{"field": "--scenario", "message": f"{journey.id} is started by a schedule, "
                                   "not an event: simulating a schedule is not supported yet; give a scenario "
                                   "whose events the journey reacts to, or start it with `omnicanal broadcast`"}])
            return cls(events=[ScenarioEvent(name=journey.trigger.event)])
        try:
            return cls.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
        except (OSError, yaml.YAMLError) as exc:
            raise InputError([{"field": "--scenario", "message": f"cannot read {path}: {exc}"}]) from exc
        except ValidationError as exc:
            raise InputError([{"field": ".".join(map(str, e["loc"])), "message": e["msg"]} for e in exc.errors()]
                             ) from exc


def _longest_run(journey: Journey) -> float:
    """An upper bound of how long one run of the journey can last: every wait and timeout added up."""
    total = 0.0
    for step in journey.steps:
        action = step.action
        total += getattr(action, "seconds", 0.0) or getattr(action, "timeout", 0.0) or 0.0
    return total


async def simulate(settings: Settings, journey_id: str, scenario_path: Path | None, out: TextIO,
                   as_json: bool = False) -> None:
    journeys = {journey.id: journey for journey in load_project(settings)[1]}
    if journey_id not in journeys:
        raise NotFound(f"no journey {journey_id!r} in {settings.journeys_dir}; known: {', '.join(sorted(journeys))}")
    journey = journeys[journey_id]
    scenario = Scenario.read(scenario_path, journey)
    pending = sorted(scenario.events, key=lambda e: e.at)
    start = scenario.start.timestamp()  # fixed by default: reports are the same on every run
    horizon = start + (scenario.until or max((e.at for e in pending), default=0.0) + _longest_run(journey) + 3600)
    clock = ManualClock(start)
    runtime = await Runtime.start(settings.model_copy(update={"reload_interval": 0, "timer_poll_interval": 0.002,
                                                              "partitions": 1}), clock=clock,
                                  canned_fetches=scenario.fetches)
    customer_id = "simulated"
    try:
        await runtime.registry.replace([journey])
        body = scenario.customer
        fields = profile_fields(body, "scenario", start, settings.default_region)
        await runtime.customers.upsert_profile(customer_id, fields, body.attributes or {}, start)
        while True:
            await _until_idle(runtime)
            due = await runtime.queue.next_due()
            moment = min(x for x in (due, start + pending[0].at if pending else None, horizon) if x is not None)
            if moment >= horizon and (due is None or due >= horizon) and not pending:
                break
            clock.advance_to(moment)
            while pending and start + pending[0].at <= clock.now():
                event = pending.pop(0)
                await runtime.queue.append_events([{
                    "id": f"evt_{uuid.uuid4().hex}", "name": event.name, "customer_id": customer_id,
                    "properties": event.properties, "timestamp": iso(clock.now()), "received_at": clock.now(),
                }])
            if due is not None and due <= clock.now():
                await asyncio.sleep(0.01)  # let the timer loop move it into the stream
        entries = await runtime.customers.timeline(customer_id)
    finally:
        await runtime.stop()
    out.write(json.dumps(entries, ensure_ascii=False, indent=2) + "\n" if as_json else _report(journey, entries, start))


async def _until_idle(runtime: Runtime) -> None:
    """Wait until the worker owns the partition and has applied everything in the stream."""
    async with asyncio.timeout(30):
        while not runtime.ownership.owned or await runtime.queue.backlog():
            await asyncio.sleep(0.002)


def _offset(entry: dict[str, Any], start: float) -> str:
    at = datetime.fromisoformat(entry["at"].replace("Z", "+00:00")).timestamp()
    return "+" + format_duration(at - start) if at - start >= 1 else "+0s"


def _report(journey: Journey, entries: list[dict[str, Any]], start: float) -> str:
    lines = [f"simulation of {journey.id} (version {journey.version}), journey time from start:"]
    for entry in entries:
        when = f"{_offset(entry, start):>8}"
        if entry["kind"] == "event":
            lines.append(f"{when}  event    {entry['name']}")
        elif entry["kind"] == "message":
            channel = entry.get("channel", "-")
            lines.append(f"{when}  {entry['status']:<8} {channel:<9} {entry['template']:<22} step {entry['step']}")
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
    if not any(entry["kind"] == "journey" for entry in entries):
        where = f" where {journey.trigger.where.source!r}" if journey.trigger.where else ""
        trigger = journey.trigger.event or journey.trigger.label
        lines.append(f"the journey did not start: its trigger is {trigger!r}{where}; "
                     "give the event the properties it needs with --scenario (see `omnicanal simulate --help`)")
    return "\n".join(lines) + "\n"
