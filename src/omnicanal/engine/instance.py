"""A journey instance: one customer's progress through one journey version, as stored in Redis."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omnicanal.store.schema import INSTANCE_NAMES, WAIT_NAMES


@dataclass(slots=True)
class Wait:
    """Why an instance is parked: a `wait` (until a timer) or a `wait_for` (an event, maybe a timeout)."""

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
    digest: dict[str, Any] | None = None
    """A digest step collecting: `items` so far, `total` seen, `ready` once its window closed."""
    retry: dict[str, Any] | None = None
    """The send step being retried: since when, how many attempts, which channels are exhausted."""
    event_at: int | None = None
    """Where `event` is on the customer's timeline (its position since the first entry ever): stored instead of
    a copy of the event, which the snapshot reads back from there. None: the event is stored with the instance
    (its timeline entry is about to be trimmed)."""

    def to_json(self) -> dict[str, Any]:
        """The stored form, without the fields still at their defaults (`from_json` restores them): a waiting
        instance is Redis memory for as long as it waits, so the fields go under their short stored names
        (store/schema.INSTANCE_NAMES; the snapshot gives them back under their full names). Built by hand, not
        with `asdict`: that deep-copies vars and the event, and this runs for every step of every customer, only
        to be serialised at once. `event_at` comes first: the snapshot script finds it at the start of the JSON
        (schema.EVENT_AT_PATTERN). The id and the customer are not stored: they are the field and the key it is
        stored under (see store/schema.decode_instance)."""
        names = INSTANCE_NAMES
        stored: dict[str, Any] = {} if self.event_at is None else {names["event_at"]: self.event_at}
        stored.update({
            names["journey"]: self.journey, names["version"]: self.version, names["started_at"]: self.started_at,
            names["position"]: self.position, names["seq"]: self.seq, names["vars"]: self.vars,
        })
        if self.event_at is None:
            stored[names["event"]] = self.event
        if self.waiting is not None:
            stored[names["waiting"]] = {WAIT_NAMES["kind"]: self.waiting.kind, WAIT_NAMES["token"]: self.waiting.token,
                                        WAIT_NAMES["until"]: self.waiting.until}
        if self.converted:
            stored[names["converted"]] = True
        if self.messages:
            stored[names["messages"]] = self.messages
        if self.digest is not None:
            stored[names["digest"]] = self.digest
        if self.retry is not None:
            stored[names["retry"]] = self.retry
        return stored

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Instance:
        wait = data.get("waiting")
        return cls(**{**data, "waiting": Wait(**wait) if wait else None})
