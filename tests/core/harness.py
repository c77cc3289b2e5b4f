"""Drive the pure journey core (journey/core.py) without Redis, a provider or a clock: a journey written in YAML,
a customer, work items and the outcome each send attempt gets; the state and changes come back to be checked.

The templates are the small ones in tests/core/templates (not the shipped ones, whose copy may change): `offer`
has a variant on every channel and shows `data.code`; `echo` shows the event, vars and customer it rendered with;
`approved` has an approved WhatsApp template; `fragile` fails without `data.code`; `email_only`; `listing` (a
digest's items).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from textwrap import dedent, indent
from typing import Any

from omnicanal.channels import CHANNELS
from omnicanal.journey import core
from omnicanal.journey.effects import (
    Attempt,
    Changes,
    Counts,
    DrainJourney,
    EventArrived,
    Fetch,
    Handed,
    Outcome,
    Refused,
    TimerFired,
    Work,
    add_counts,
    new_counts,
)
from omnicanal.journey.loader import parse_journey
from omnicanal.journey.model import Journey
from omnicanal.journey.segments import NO_SEGMENTS, Segments
from omnicanal.journey.session import Context
from omnicanal.journey.state import CustomerState, Instance, customer_view
from omnicanal.policy.caps import Cap
from omnicanal.policy.choice import Rules
from omnicanal.render import TemplateCatalog

TEMPLATES = TemplateCatalog.load(Path(__file__).resolve().parent / "templates", "en")
START = 1_800_000_000.0  # 2027-01-15 08:00 UTC, a Friday
HOUR = 3600.0
DAY = 24 * HOUR
REACHABLE = {"sms": "+33600000001", "whatsapp": "+33600000001", "email": "alex@example.com",
             "push": ["device-token"], "webhook": "https://crm.example/hook", "messenger": "psid-1"}

RECEIPTS = frozenset(name for name, spec in CHANNELS.items() if spec.delivery_receipts)

Answer = Callable[[Attempt], Outcome]
FetchAnswer = Callable[[Fetch], Outcome]


def sent(_: Attempt) -> Outcome:
    return Handed("sent")


def profile(**fields: Any) -> dict[str, Any]:
    """A profile reachable on every channel, in English, with `fields` over it (timezone, consents, ...)."""
    return {"addresses": dict(REACHABLE), "locale": "en", **fields}


class Journeys:
    """The core's view of the loaded journeys: every version at hand; the last one given per id is current."""

    def __init__(self, journeys: Iterable[Journey]) -> None:
        self._by_version: dict[tuple[str, str], Journey] = {}
        self._current: dict[str, Journey] = {}
        for j in journeys:
            self._by_version[(j.id, j.version)] = self._current[j.id] = j

    def triggered_by(self, event_name: str) -> Sequence[Journey]:
        return [j for j in self._current.values() if j.trigger.event == event_name]

    def loaded(self, journey_id: str, version: str) -> Journey:
        return self._by_version[(journey_id, version)]

    def current_of(self, journey_id: str) -> Journey | None:
        return self._current.get(journey_id)

    def listens(self, event_name: str) -> bool:
        return any(event_name in journey.events() for journey in self._by_version.values())


def journey(text: str, templates: TemplateCatalog | None = TEMPLATES) -> Journey:
    """A journey from its YAML, checked against the test templates (None: not checked, as if they changed)."""
    return parse_journey(text.strip() + "\n", "<test>", templates)


def flow(steps: str, head: str = "") -> Journey:
    """Journey `j`, triggered by `go`, with these steps (the YAML list) and top-level keys (`head`, YAML)."""
    body = indent(dedent(steps).strip(), "  ")
    return journey(f"id: j\ntrigger: {{event: go}}\n{dedent(head).strip()}\nsteps:\n{body}")


@dataclass
class Customer:
    """One customer and the journeys they may enter, with the core applied to them step by step."""

    journeys: list[Journey]
    profile: dict[str, Any] = field(default_factory=profile)
    attributes: dict[str, Any] = field(default_factory=dict)
    rules: Rules = field(default_factory=Rules)
    caps: tuple[Cap, ...] = ()
    retry_budget: float = 3600.0
    global_control: float = 0.0
    timeline_limit: int = 5_000
    segments: Segments = NO_SEGMENTS
    answer: Answer = sent
    fetch: FetchAnswer = lambda request: Refused("no fetch answer in this test")
    now: float = START
    customer_id: str = "c1"
    attempts: list[Attempt] = field(default_factory=list)
    fetches: list[Fetch] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    timers: dict[tuple[str, str], float] = field(default_factory=dict)
    """(instance, token) -> due: the timers the changes left, as the store would keep them."""
    stats: Counts = field(default_factory=new_counts)
    """Journey id -> counter -> total of every change so far, as the store would keep them."""
    state: CustomerState = field(init=False)
    last: Changes = field(init=False)

    def __post_init__(self) -> None:
        self.state = CustomerState(self.customer_id, customer_view(self.customer_id, self.profile, self.attributes))
        self.context = Context(Journeys(self.journeys), TEMPLATES, self.rules, self.caps, "en", self.retry_budget,
                               self.timeline_limit, global_control=self.global_control, coupon_secret=b"unit-tests",
                               receipts=RECEIPTS, segments=self.segments)
        self._events = 0

    def apply(self, *work: Work) -> Changes:
        steps = core.apply(self.context, self.state, work, self.now)
        try:
            request = next(steps)
            while True:
                if isinstance(request, Attempt):
                    self.attempts.append(request)
                    request = steps.send(self.answer(request))
                else:
                    self.fetches.append(request)
                    request = steps.send(self.fetch(request))
        except StopIteration as finished:
            changes: Changes = finished.value
        self.timeline += changes.timeline
        self.state.timeline_end += len(changes.timeline)
        for timer in changes.old_timers:
            self.timers.pop((timer.instance_id, timer.token), None)
        for timer in changes.new_timers:
            self.timers[(timer.instance_id, timer.token)] = timer.due
        add_counts(self.stats, changes.stats)
        self.last = changes
        return changes

    def make_event(self, name: str, event_id: str | None = None, **properties: Any) -> dict[str, Any]:
        """An event as the API stores it (ids `evt_1`, `evt_2`, ... unless given)."""
        self._events += 1
        return {"id": event_id or f"evt_{self._events}", "name": name, "customer_id": self.customer_id,
                "properties": properties, "timestamp": "2027-01-15T08:00:00.000Z"}

    def event(self, name: str, unique: bool = True, event_id: str | None = None, **properties: Any) -> Changes:
        return self.apply(EventArrived(self.make_event(name, event_id, **properties), unique))

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

    def fork(self) -> Customer:
        """The same customer at this moment, as a second worker would read them: the same state and timers, an
        empty record of what happened (to apply the same work again and compare)."""
        other = dataclasses.replace(self, attempts=[], timeline=[], timers=dict(self.timers),
                                    stats=copy.deepcopy(self.stats))
        other.state = copy.deepcopy(self.state)
        other._events = self._events
        return other

    def reload(self, *journeys: Journey) -> None:
        """New versions of journeys become current; the versions running instances began with stay at hand."""
        self.journeys = [*self.journeys, *journeys]
        self.context = dataclasses.replace(self.context, journeys=Journeys(self.journeys))

    # -- reading the outcome -------------------------------------------------------------------------------

    def instance(self, journey_id: str) -> Instance | None:
        return next((i for i in self.state.instances.values() if i.journey == journey_id), None)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        """The timeline entries of one kind: event, journey, message, conversion, fallback, error."""
        return [e for e in self.timeline if e["kind"] == kind]

    def messages(self, status: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.of_kind("message") if status is None or e["status"] == status]

    def sent(self) -> list[tuple[str, str]]:
        """(template, channel) of every message handed over, in order."""
        return [(e["template"], e["channel"]) for e in self.messages() if e["status"] in ("sent", "queued")]

    def channels(self) -> list[str]:
        """The channel of every message handed over, in order."""
        return [channel for _, channel in self.sent()]

    def milestones(self) -> list[str]:
        """The journey statuses on the timeline: started, completed, exited (reason), failed (reason)."""
        return [e["status"] + (f" ({e['reason']})" if e.get("reason") else "") for e in self.of_kind("journey")]

    def errors(self) -> list[str]:
        """`where: message` of every error on the timeline."""
        return [f"{e['where']}: {e['message']}" for e in self.of_kind("error")]
