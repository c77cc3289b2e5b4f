"""Drive the pure journey core (journey/core.py) without Redis, a provider or a clock: a journey written in YAML,
a customer, work items and the outcome each send attempt gets; the state and changes come back to be checked."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omnicanal.channels import CHANNELS
from omnicanal.journey import core
from omnicanal.journey.effects import (
    Attempt,
    Changes,
    DrainJourney,
    EventArrived,
    Handed,
    Outcome,
    TimerFired,
    Work,
)
from omnicanal.journey.loader import parse_journey
from omnicanal.journey.model import Journey
from omnicanal.journey.session import Context
from omnicanal.journey.state import CustomerState, Instance, customer_view
from omnicanal.policy.caps import Cap
from omnicanal.policy.choice import Rules
from omnicanal.render import TemplateCatalog

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = TemplateCatalog.load(ROOT / "templates", "en")
START = 1_800_000_000.0  # 2027-01-15 08:00 UTC
REACHABLE = {"sms": "+33600000001", "whatsapp": "+33600000001", "email": "alex@example.com",
             "push": ["device-token"], "webhook": "https://crm.example/hook"}

RECEIPTS = frozenset(name for name, spec in CHANNELS.items() if spec.delivery_receipts)

Answer = Callable[[Attempt], Outcome]


def sent(_: Attempt) -> Outcome:
    return Handed("sent")


class Journeys:
    """The core's view of the loaded journeys: a dict, every version at hand."""

    def __init__(self, journeys: Iterable[Journey]) -> None:
        self._by_version = {(j.id, j.version): j for j in journeys}

    def triggered_by(self, event_name: str) -> Sequence[Journey]:
        return [j for j in self._by_version.values() if j.trigger.event == event_name]

    def loaded(self, journey_id: str, version: str) -> Journey:
        return self._by_version[(journey_id, version)]


def journey(text: str) -> Journey:
    return parse_journey(text.strip() + "\n", "<test>", TEMPLATES)


@dataclass
class Customer:
    """One customer and the journeys they may enter, with the core applied to them step by step."""

    journeys: list[Journey]
    profile: dict[str, Any] = field(default_factory=lambda: {"addresses": dict(REACHABLE), "locale": "en"})
    attributes: dict[str, Any] = field(default_factory=dict)
    rules: Rules = field(default_factory=Rules)
    caps: tuple[Cap, ...] = ()
    retry_budget: float = 3600.0
    answer: Answer = sent
    now: float = START
    customer_id: str = "c1"
    attempts: list[Attempt] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    timers: dict[tuple[str, str], float] = field(default_factory=dict)
    """(instance, token) -> due: the timers the changes left, as the store would keep them."""
    state: CustomerState = field(init=False)
    last: Changes = field(init=False)

    def __post_init__(self) -> None:
        self.state = CustomerState(self.customer_id, customer_view(self.customer_id, self.profile, self.attributes))
        self.context = Context(Journeys(self.journeys), TEMPLATES, self.rules, self.caps, "en", self.retry_budget,
                               receipts=RECEIPTS)
        self._events = 0

    def apply(self, *work: Work) -> Changes:
        steps = core.apply(self.context, self.state, work, self.now)
        try:
            attempt = next(steps)
            while True:
                self.attempts.append(attempt)
                attempt = steps.send(self.answer(attempt))
        except StopIteration as finished:
            changes: Changes = finished.value
        self.timeline += changes.timeline
        self.state.timeline_end += len(changes.timeline)
        for timer in changes.old_timers:
            self.timers.pop((timer.instance_id, timer.token), None)
        for timer in changes.new_timers:
            self.timers[(timer.instance_id, timer.token)] = timer.due
        self.last = changes
        return changes

    def event(self, name: str, unique: bool = True, event_id: str | None = None, **properties: Any) -> Changes:
        self._events += 1
        event = {"id": event_id or f"evt_{self._events}", "name": name, "customer_id": self.customer_id,
                 "properties": properties, "timestamp": "2027-01-15T08:00:00.000Z"}
        return self.apply(EventArrived(event, unique))

    def drain(self, journey_id: str) -> Changes:
        return self.apply(DrainJourney(journey_id))

    def pass_time(self, seconds: float) -> None:
        """Let journey time pass, firing every timer that falls due, in due order."""
        until = self.now + seconds
        while self.timers:
            (instance_id, token), due = min(self.timers.items(), key=lambda item: item[1])
            if due > until:
                break
            del self.timers[(instance_id, token)]
            self.now = max(self.now, due)
            self.apply(TimerFired(instance_id, token))
        self.now = until

    # -- reading the outcome -------------------------------------------------------------------------------

    def instance(self, journey_id: str) -> Instance | None:
        return next((i for i in self.state.instances.values() if i.journey == journey_id), None)

    def messages(self, status: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.timeline if e["kind"] == "message" and (status is None or e["status"] == status)]

    def sent(self) -> list[tuple[str, str]]:
        """(template, channel) of every message handed over, in order."""
        return [(e["template"], e["channel"]) for e in self.messages() if e["status"] in ("sent", "queued")]

    def milestones(self) -> list[str]:
        """The journey statuses on the timeline: started, completed, exited (reason), failed."""
        return [e["status"] + (f" ({e['reason']})" if e.get("reason") else "") for e in self.timeline
                if e["kind"] == "journey"]
