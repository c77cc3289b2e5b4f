"""The journey core's inputs and outputs, as data: the work it applies, the sends it asks for and their
outcomes, and the changes it leaves for the engine to write.

A send is the one effect whose outcome the core must know before it goes on (a refused channel means trying the
next one; a provider to retry holds the instance), so the core asks for each channel attempt (`Attempt`) and is
given its `Outcome` back; everything else it only describes (`Changes`), and the engine writes it afterwards.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from omnicanal.policy.caps import Cap

# -- work ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventArrived:
    """An event about the customer. `unique`: no other work item carries its id (the API's, sent without an
    idempotency key), so it need not be remembered as applied."""

    event: dict[str, Any]
    unique: bool = False


@dataclass(frozen=True, slots=True)
class TimerFired:
    """A timer of one of the customer's instances fell due; `token` says which wait (or fallback) it was for."""

    instance_id: str
    token: str


@dataclass(frozen=True, slots=True)
class DrainJourney:
    """The customer's instance of this journey ends now: `omnicanal journeys drain` (reason `drained`), a journey
    stopped (`stopped`), one customer's instance cancelled through the API (`cancelled`)."""

    journey: str
    reason: str = "drained"


@dataclass(frozen=True, slots=True)
class ResumeJourney:
    """The journey was resumed: what its instance deferred while it was paused applies now, in order."""

    journey: str


@dataclass(frozen=True, slots=True)
class CancelEvent:
    """Everything this event started ends, with no further sends (`POST /v1/events/cancel`)."""

    event_id: str


@dataclass(frozen=True, slots=True)
class StartJourney:
    """A broadcast starts this journey for the customer, whatever its trigger (its audience chose them):
    `event` is the broadcast's own (`name` "broadcast", `properties.broadcast` its id, and its data), the one
    the instance keeps. Re-entry rules and a paused journey apply as for a triggered start; consent, caps and
    quiet hours apply to each message as usual. Applied once per customer (the event's id).

    `local_time` (a scheduled journey with `timezone: customer`): the wall-clock time, ISO 8601 without offset,
    at which the customer starts on their own clock; until then the instance holds before its first step."""

    journey: str
    event: dict[str, Any]
    local_time: str | None = None


@dataclass(frozen=True, slots=True)
class EvaluateSegments:
    """The customer's membership of every segment evaluated again, with what is kept of them now: how a segment
    added or changed reaches the customers who already match it (a backfill queues one for each customer)."""


Work = EventArrived | TimerFired | DrainJourney | ResumeJourney | CancelEvent | StartJourney | EvaluateSegments

FALLBACK_TOKEN_PREFIX = "fallback:"
"""A timer token that is this prefix and a message id: the message's `fallback_after` passed."""


# -- sends --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Attempt:
    """One channel of a send, rendered and ready: the engine claims `message_id` (at most once, with the frequency
    caps when there are any) and hands the message to the channel's connector."""

    message_id: str
    customer_id: str
    channel: str
    to: str
    content: dict[str, Any]
    locale: str
    template: str
    journey: str
    step: str
    caps: tuple[Cap, ...] = ()
    unsubscribe_url: str | None = None
    """The message's unsubscribe link (links.py), for the connector's `List-Unsubscribe`; None: none."""


@dataclass(frozen=True, slots=True)
class Handed:
    """The provider took the message (`sent`, `queued`), or may have (`unknown`: never send it again)."""

    status: str
    provider_id: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Refused:
    """The provider refused: for good, or for now (`transient`: the same channel may be tried again later)."""

    error: str
    transient: bool = False
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class Capped:
    """A frequency cap forbids the message on this channel: nothing was sent or counted."""

    cap: str


@dataclass(frozen=True, slots=True)
class Replayed:
    """The message was claimed before (the work is applied again after a crash): never sent twice. `status` is
    what its record says (`unknown` if the process died while the provider had it)."""

    status: str


@dataclass(frozen=True, slots=True)
class Fetch:
    """A `fetch` step's call, ready: the engine checks the host against the allowed ones and calls it."""

    url: str
    method: str
    body: dict[str, Any] | None
    timeout: float
    customer_id: str
    journey: str
    step: str


@dataclass(frozen=True, slots=True)
class Fetched:
    """The endpoint answered with JSON (`value`)."""

    value: Any


Request = Attempt | Fetch
Outcome = Handed | Refused | Capped | Replayed | Fetched
"""What a request led to (a fetch fails with Refused, for now or for good, as a send does)."""

T = TypeVar("T")
Sends = Generator[Request, Outcome, T]
"""A computation of the core that may ask for I/O: it yields Attempts (sends) and Fetches and is sent their
Outcomes."""


# -- what the engine writes afterwards --------------------------------------------------------------------------

Counts = defaultdict[str, defaultdict[str, float]]
"""Journey id -> counter name -> amount."""


def new_counts() -> Counts:
    return defaultdict(lambda: defaultdict(float))


def add_counts(total: Counts, more: Counts) -> None:
    for journey_id, counters in more.items():
        into = total[journey_id]
        for name, amount in counters.items():
            into[name] += amount


@dataclass(frozen=True, slots=True)
class TimerChange:
    """A timer of one of the customer's instances, to add or to remove."""

    instance_id: str
    token: str
    due: float


@dataclass(slots=True)
class Changes:
    """Everything applying a customer's work changed besides their instances (the state has those)."""

    timeline: list[dict[str, Any]] = field(default_factory=list)
    saved: set[str] = field(default_factory=set)
    """Ids of running instances that changed (written from the state)."""
    ended: set[str] = field(default_factory=set)
    """Ids of instances that ended (removed)."""
    entries: dict[str, float] = field(default_factory=dict)
    """Journey id -> start of the instance that just ended (re-entry rules)."""
    attributes: dict[str, Any] = field(default_factory=dict)
    """Profile attributes set by `update` steps."""
    seen: list[str] = field(default_factory=list)
    """Ids of applied events that may come again: remembered for the idempotency window."""
    new_timers: list[TimerChange] = field(default_factory=list)
    old_timers: list[TimerChange] = field(default_factory=list)
    watches: bool = False
    """The customer's goal watches changed: the state's list is written."""
    touchpoints: bool = False
    """The customer's touchpoints changed (a message was sent): the state's list is written."""
    emitted: list[dict[str, Any]] = field(default_factory=list)
    """Events the work produced for the customer's own ordered work (`customer.updated` after an `update` step
    changed attributes), with ids derived from the step visit: a replay emits the same ids, applied once."""
    coupons: list[dict[str, Any]] = field(default_factory=list)
    """Coupons issued with messages sent (`code`, `message_id`, `journey`, `step`, `channel`, `expires`)."""
    identified: list[str] = field(default_factory=list)
    """Anonymous ids an `identify` event said are this customer: merged after the commit."""
    stats: Counts = field(default_factory=lambda: new_counts())
    """Journey id -> counter name -> increment (attribution shares and revenue are fractional)."""
    audience: bool = False
    """The customer's segment data changed (journey/audience.py): the state's is written."""
    memberships: dict[str, bool] = field(default_factory=dict)
    """Segment id -> whether the customer is in it, for every segment evaluated: the segment index follows."""
    broadcasts: dict[str, str] = field(default_factory=dict)
    """Broadcast id -> what it did for this customer: `started`, `skipped:<reason>` (paused, running, re_entry,
    no_key, unknown_journey), or `duplicate` (a start they already had): the broadcast's progress counters."""
