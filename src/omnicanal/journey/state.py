"""What the journey core reads and changes: one customer's state, and their running journey instances.

Plain data, no I/O: the engine builds a CustomerState from what the store read, the core (journey/core.py)
changes it, and the engine writes the changes back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Wait:
    """Why an instance is parked: a `wait`, `wait_for`, `digest`, `hold` (quiet hours, a provider to retry) or
    `local_time` (a scheduled start waiting for the customer's clock), and the token its timer carries (a fired
    timer whose token is not the current one is stale)."""

    kind: str
    token: str
    until: float | None = None


@dataclass(slots=True)
class Instance:
    """Everything needed to continue the journey on any worker after any restart.

    `position` is the index of the step to run next, or of the step the instance waits in. `seq` counts the
    steps run so far: it makes message ids and timer tokens unique per visit of a step, which is what lets a
    replayed event recognise the send it already made and a stale timer be ignored.
    """

    id: str
    journey: str
    version: str
    customer_id: str
    started_at: float
    event: dict[str, Any]
    position: int = 0
    seq: int = 0
    vars: dict[str, Any] = field(default_factory=dict)
    waiting: Wait | None = None
    converted: bool = False
    messages: list[str] = field(default_factory=list)
    """Ids of the messages sent so far: the touchpoints a goal is attributed to."""
    digest: dict[str, Any] | None = None
    """A digest step collecting: `items` so far, `total` seen, `ready` once its window closed."""
    retry: dict[str, Any] | None = None
    """The send step being retried: since when, how many attempts, which channels are exhausted."""
    fallbacks: dict[str, dict[str, Any]] | None = None
    """Messages that may still fall back to a later channel, by message id: the `step` that sent them and the
    `channels` left. They belong to the running instance: when it ends, no fallback is sent."""
    deferred: list[dict[str, Any]] | None = None
    """Work that came while the journey was paused (`{"event": ...}` or `{"timer": token}`), applied in order when
    it is resumed."""
    key: str | None = None
    """In a keyed journey (`trigger.key`), the value this instance is for (an order id)."""
    arms: dict[str, str] | None = None
    """The experiment arm taken at each split step (step id -> arm), for the conversions per arm."""
    event_at: int | None = None
    """Where `event` is on the customer's timeline (its position since the first entry ever): the store keeps
    that instead of a copy of the event. None: the event is stored with the instance."""

    def to_dict(self) -> dict[str, Any]:
        """The fields to store, without those still at their defaults (`from_dict` restores them), nor the id and
        the customer (the store keeps an instance under them), nor the event when its timeline position is
        known. `event_at` comes first: the store finds it at the start of the stored JSON."""
        stored: dict[str, Any] = {} if self.event_at is None else {"event_at": self.event_at}
        stored.update(journey=self.journey, version=self.version, started_at=self.started_at,
                      position=self.position, seq=self.seq, vars=self.vars)
        if self.event_at is None:
            stored["event"] = self.event
        if self.waiting is not None:
            stored["waiting"] = {"kind": self.waiting.kind, "token": self.waiting.token, "until": self.waiting.until}
        if self.converted:
            stored["converted"] = True
        if self.messages:
            stored["messages"] = self.messages
        if self.digest is not None:
            stored["digest"] = self.digest
        if self.retry is not None:
            stored["retry"] = self.retry
        if self.fallbacks:
            stored["fallbacks"] = self.fallbacks
        if self.deferred:
            stored["deferred"] = self.deferred
        if self.key is not None:
            stored["key"] = self.key
        if self.arms:
            stored["arms"] = self.arms
        return stored

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Instance:
        """An instance as the store gives it back: `to_dict`'s fields, with `id`, `customer_id` and `event`."""
        wait = data.get("waiting")
        return cls(**{**data, "waiting": Wait(**wait) if wait else None})


def goal_watch(instance: Instance, until: float) -> dict[str, Any]:
    """What an ended instance leaves so that its goal may still be met until `until`: what the goal's
    condition and the conversion read (its vars, key, messages, arms)."""
    return {"journey": instance.journey, "version": instance.version, "id": instance.id, "until": until,
            "started_at": instance.started_at, "vars": instance.vars, "messages": instance.messages,
            **({"key": instance.key} if instance.key is not None else {}),
            **({"arms": instance.arms} if instance.arms else {})}


def watched_instance(customer_id: str, watch: dict[str, Any]) -> Instance:
    """The ended instance a goal watch stands for (its event is not kept: the goal reads the goal's own)."""
    return Instance(id=watch["id"], journey=watch["journey"], version=watch["version"], customer_id=customer_id,
                    started_at=watch["started_at"], event={}, vars=watch["vars"], messages=watch["messages"],
                    key=watch.get("key"), arms=watch.get("arms"))


PROFILE_FIELDS = frozenset({"id", "attributes", "locale", "timezone", "addresses", "channel_preference", "consents",
                            "whatsapp_last_inbound"})
"""Names `customer` gives the profile's own fields: an attribute cannot take them (it would shadow them)."""


def customer_view(customer_id: str, profile: dict[str, Any], attributes: dict[str, Any]) -> dict[str, Any]:
    """`customer` in expressions and templates: attributes at the top, reserved profile fields over them."""
    return {
        **attributes,
        "id": customer_id,
        "attributes": attributes,
        "locale": profile.get("locale"),
        "timezone": profile.get("timezone"),
        "addresses": profile.get("addresses", {}),
        "channel_preference": profile.get("channel_preference", []),
        "consents": profile.get("consents", {}),
        "whatsapp_last_inbound": profile.get("whatsapp_last_inbound"),
    }


@dataclass(slots=True)
class CustomerState:
    """One customer as the core sees them while their work applies."""

    customer_id: str
    customer: dict[str, Any]
    """The `customer` of expressions (see customer_view)."""
    instances: dict[str, Instance] = field(default_factory=dict)
    entries: dict[str, float] = field(default_factory=dict)
    """Journey id -> when the customer's last finished instance of it began (re-entry rules)."""
    seen: set[str] = field(default_factory=set)
    """Ids of events already applied, among those that may come again (an idempotency key, a callback)."""
    timeline_end: int = 0
    """The position (counted from the first entry ever) the next timeline entry will have."""
    watches: list[dict[str, Any]] = field(default_factory=list)
    """Instances that ended before their goal window closed (see goal_watch): a goal met within it still
    converts them."""
    redemptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Event id of a `coupon.redeemed` -> the store's verdict on its code (`status`: redeemed, unknown, expired,
    used; and the coupon's message, journey, step, channel when known): checked before the work is applied."""
    touchpoints: list[dict[str, Any]] = field(default_factory=list)
    """The messages the customer received lately, oldest first, on every channel and from every journey: what
    a conversion is attributed to (journey/attribution.py; fields `m` message id, `j` journey, `s` step,
    `c` channel, `t` when)."""
    audience: dict[str, Any] = field(default_factory=dict)
    """What journey/audience.py keeps for segments: aggregates' data, the segments the customer is in, and when
    their expiry timer is due."""
    claimed: frozenset[str] = frozenset()
    """Ids of messages claimed by work that was never committed (a worker died between a provider call and the
    customer's commit): a send that finds its own among them replays it rather than choosing a channel again."""
