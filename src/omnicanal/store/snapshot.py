"""What a worker reads before applying a customer's work: one Lua script per customer (lua/snapshot.lua), the
customers of a batch in one round trip."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omnicanal.codec import loads
from omnicanal.store import schema
from omnicanal.store.connection import flat_map
from omnicanal.store.keys import CustomerKeys
from omnicanal.store.scripts import load

SNAPSHOT = load("snapshot")


def snapshot_keys(k: CustomerKeys) -> list[str]:
    return [k.profile, k.attrs, k.entries, k.seen, k.timeline, k.claims]


@dataclass(slots=True)
class Snapshot:
    """What the worker needs to apply an event to one customer."""

    customer_id: str
    profile: dict[str, Any]
    attributes: dict[str, Any]
    instances: dict[str, dict[str, Any]]
    """The running instances by id, as schema.decode_instance gives them (their event included)."""
    entries: dict[str, float]
    seen: set[str]
    applied: str | None = None
    """The last work entry applied (schema.APPLIED_ENTRY)."""
    timeline_end: int = 0
    """The position (counted from the first entry ever) the next timeline entry will have."""
    claimed: frozenset[str] = frozenset()
    """Messages claimed by work that was not committed (the worker died): its replay must find them."""

    @property
    def exists(self) -> bool:
        return bool(self.profile or self.attributes)


def decode_snapshot(customer_id: str, answer: list[Any]) -> Snapshot | Exception:
    """The snapshot script's answer as a Snapshot; a customer whose stored state cannot be read gets the error
    instead, so one corrupted record stops only its owner."""
    try:
        profile, attrs, instances, entries, seen, events, length, claimed = answer
        fields = flat_map(profile)
        applied = fields.pop(schema.APPLIED_ENTRY, None)
        trimmed = int(fields.pop(schema.TIMELINE_TRIMMED, 0))
        running = schema.decode_instances(customer_id, flat_map(instances))
        for iid, entry in flat_map(events).items():
            running[iid]["event"] = schema.event_of_entry(customer_id, iid, loads(entry) if entry else None)
        return Snapshot(
            customer_id=customer_id,
            profile=schema.decode_profile(fields),
            attributes={name: loads(v) for name, v in flat_map(attrs).items()},
            instances=running,
            entries={jid: float(v) for jid, v in flat_map(entries).items()},
            seen=set(seen),
            applied=applied,
            timeline_end=trimmed + int(length),
            claimed=frozenset(claimed),
        )
    except (ValueError, TypeError, KeyError) as exc:  # JSON that is not, a record of the wrong shape
        return exc
