"""Merging an anonymous visitor into the customer they turn out to be, one slot at a time.

Only an anonymous visitor is merged: a customer known by a profile written from outside their events (KNOWN_AT:
PUT /v1/customers, a reply), or by an address, never is — otherwise `identify` naming a victim's id would take
over their profile, consents and timeline. Neither is an id that looks like an address lookup, nor one with no
activity at all (merging it would reserve an id someone may be given later). `refusal` says why not.

An anonymous id and a customer id hash onto different slots (and usually different workers), so the merge is
two atomic steps, each applied in its customer's order by the worker that owns it:

1. `hand_over` (anonymous side): everything the visitor has is read, sent to the known customer as an
   `absorb` work item, and the visitor is replaced by a tombstone `merged_into`. From then on, work for the
   visitor (late events, timers of the moved journeys) is forwarded to the known customer, behind the absorb.
2. `absorb` (known side): the visitor's timeline is woven into the customer's in time order, attributes and
   addresses they did not have are added (the known customer's own win), running journeys they were not already
   in (in a keyed journey: for that key) move over with their timers, consents merge with opt-outs winning — all
   in one transaction. An absorb applied twice (a re-delivery) changes nothing the second time.
"""

from __future__ import annotations

from typing import Any

from omnicanal.codec import dumps, loads
from omnicanal.identity import looks_like_address
from omnicanal.journey.attribution import kept
from omnicanal.journey.session import entry_name
from omnicanal.store.connection import Redis, decode_map, translated
from omnicanal.store.keys import CustomerKeys, Keyspace
from omnicanal.store.schema import (
    ADDRESSES,
    APPLIED_ENTRY,
    CONSENTS,
    CREATED_AT,
    GOAL_WATCHES,
    INBOX_ARCHIVED_SUFFIX,
    INBOX_KEPT,
    INBOX_READ_SUFFIX,
    INBOX_VERSION,
    INSTANCE_FIELD,
    KNOWN_AT,
    MERGED_AT,
    MERGED_FROM,
    MERGED_INTO,
    TIMELINE_TRIMMED,
    TOUCHPOINTS,
    UPDATED_AT,
    decode_instances,
    decode_messages,
    decode_profile,
    encode_instance,
    encode_profile_field,
    event_of_entry,
    message_fields,
    split_profile,
)

__all__ = ["MERGED_INTO", "CustomerMerge"]
"""MERGED_INTO (schema.py) is the tombstone callers look for."""


def refusal(visitor: str, state: dict[str, Any]) -> str | None:
    """Why the customer `visitor` (as `CustomerMerge.export` gives them) may not be merged, or None."""
    if looks_like_address(visitor):
        return (f"{visitor!r} looks like an address, not an anonymous id: identify names the visitor by the id its "
                "events were sent with")
    profile = state["profile"]
    if profile.get(KNOWN_AT) or profile.get(ADDRESSES):
        return (f"{visitor!r} is a known customer (a profile written with PUT /v1/customers or by a reply, or an "
                "address), not an anonymous visitor: nothing merged")
    if not (profile or state["attributes"] or state["timeline"]):
        return f"{visitor!r} has no activity: nothing to merge"
    return None


def _json_map(raw: Any) -> dict[str, Any]:
    return {name: loads(value) for name, value in decode_map(raw).items()}


class CustomerMerge:
    def __init__(self, redis: Redis, keys: Keyspace) -> None:
        self._redis = redis
        self._keys = keys

    async def export(self, customer_id: str) -> dict[str, Any]:
        """All a customer has, as plain data."""
        k = self._keys.customer(customer_id)
        async with translated(), self._redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(k.profile)
            pipe.hgetall(k.attrs)
            pipe.hgetall(k.entries)
            pipe.lrange(k.timeline, 0, -1)
            pipe.hgetall(k.messages)
            pipe.zrange(k.seen, 0, -1, withscores=True)
            pipe.zrange(k.sends, 0, -1, withscores=True)
            pipe.hgetall(k.inbox)
            pipe.zrange(k.inbox_order, 0, -1, withscores=True)
            profile, attrs, entries, timeline, messages, seen, sends, inbox, inbox_order = await pipe.execute()
        fields, instances = split_profile(decode_map(profile))
        return {
            "profile": decode_profile(fields),
            "attributes": _json_map(attrs),
            "instances": decode_instances(customer_id, instances),
            "entries": {journey: float(at) for journey, at in decode_map(entries).items()},
            "timeline": [loads(entry) for entry in timeline],
            "messages": decode_messages(decode_map(messages)),
            "seen": dict(seen),
            "sends": dict(sends),
            "inbox": decode_map(inbox),
            "inbox_order": dict(inbox_order),
        }

    async def note(self, customer_id: str, entry: dict[str, Any]) -> None:
        """Add an entry to the customer's timeline, in their order (a refused merge, said to who asked for it)."""
        async with translated(), self._redis.pipeline(transaction=False) as pipe:
            pipe.rpush(self._keys.customer(customer_id).timeline, dumps(entry))
            await pipe.execute()

    async def tombstone(self, customer_id: str, into: str, now: float) -> None:
        """Replace a merged customer by a pointer to the one it became."""
        k = self._keys.customer(customer_id)
        async with translated(), self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(*k.all())
            pipe.hset(k.profile, mapping={MERGED_INTO: into, MERGED_AT: repr(now)})
            await pipe.execute()

    async def absorb(self, customer_id: str, source: str, state: dict[str, Any], now: float) -> list[str]:
        """Merge `state` (exported from `source`) into the customer; returns the ids of the instances moved."""
        mine = await self.export(customer_id)
        if source in mine["profile"].get(MERGED_FROM, []):
            return []  # applied before (the item was delivered again)
        k = self._keys.customer(customer_id)
        # The timeline is rebuilt (both woven in time order): instances that keep their event on a timeline
        # store it themselves again, the customer's own ones included.
        own = _with_events(customer_id, mine)
        running = {_run_of(instance) for instance in own.values()}
        moved = {iid: inst for iid, inst in _with_events(source, state).items() if _run_of(inst) not in running}
        timeline = sorted([*mine["timeline"], *state["timeline"]], key=lambda entry: entry["at"])
        timeline.append({"kind": "identity", "at": timeline[-1]["at"] if timeline else "", "merged": source,
                         "moved_journeys": sorted(i["journey"] for i in moved.values())})
        profile = _merged_profile(mine["profile"], state["profile"], source, now)
        attributes = {n: v for n, v in state["attributes"].items() if n not in mine["attributes"]}
        theirs = dict(state["entries"])
        for instance in state["instances"].values():  # not moved: it ends here, and its entry is kept as it would be
            if _run_of(instance) in running:
                entry = entry_name(*_run_of(instance))
                theirs[entry] = max(instance["started_at"], theirs.get(entry, 0.0))
        entries = {j: max(at, mine["entries"].get(j, at)) for j, at in theirs.items()}
        async with translated(), self._redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(k.profile, CREATED_AT, repr(now))
            pipe.hset(k.profile, mapping={n: encode_profile_field(n, v) for n, v in profile.items()})
            if attributes:
                pipe.hset(k.attrs, mapping={n: dumps(v) for n, v in attributes.items()})
            if moved or own:
                pipe.hset(k.profile, mapping={INSTANCE_FIELD + iid: encode_instance(instance)
                                              for iid, instance in {**own, **moved}.items()})
            pipe.hdel(k.profile, TIMELINE_TRIMMED)  # positions start again at the rebuilt timeline's first entry
            if entries:
                pipe.hset(k.entries, mapping={j: repr(at) for j, at in entries.items()})
            pipe.delete(k.timeline)
            if timeline:
                pipe.rpush(k.timeline, *(dumps(entry) for entry in timeline))
            if state["messages"]:
                pipe.hset(k.messages, mapping=message_fields(state["messages"]))
            if state["seen"]:
                pipe.zadd(k.seen, state["seen"])
            if state["sends"]:
                pipe.zadd(k.sends, state["sends"])
            _merge_inboxes(pipe, k, mine, state)
            await pipe.execute()
        return list(moved)


def _run_of(instance: dict[str, Any]) -> tuple[str, str | None]:
    """What one running instance stands for: its journey, and in a keyed journey its key (one instance per key
    value runs, so the visitor's order B moves over beside the customer's order A)."""
    return instance["journey"], instance.get("key")


def _merge_inboxes(pipe: Any, k: CustomerKeys, mine: dict[str, Any], theirs: dict[str, Any]) -> None:
    """The visitor's in-app messages join the customer's, in order of arrival; the newest INBOX_KEPT stay."""
    if not theirs["inbox_order"]:
        return
    order = {**theirs["inbox_order"], **mine["inbox_order"]}
    dropped = sorted(order, key=lambda mid: (order[mid], mid))[:max(0, len(order) - INBOX_KEPT)]
    pipe.hset(k.inbox, mapping={name: value for name, value in theirs["inbox"].items() if name != INBOX_VERSION})
    pipe.zadd(k.inbox_order, theirs["inbox_order"])
    pipe.hincrby(k.inbox, INBOX_VERSION, 1)  # a live stream of the customer's inbox reads it again
    if dropped:
        marks = ("", INBOX_READ_SUFFIX, INBOX_ARCHIVED_SUFFIX)
        pipe.hdel(k.inbox, *(f"{mid}{suffix}" for mid in dropped for suffix in marks))
        pipe.zrem(k.inbox_order, *dropped)


def _with_events(customer_id: str, state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """An exported state's running instances, each with its event stored in it (read from the exported
    timeline for those that keep it there)."""
    trimmed = int(state["profile"].get(TIMELINE_TRIMMED, 0))
    timeline = state["timeline"]
    instances: dict[str, dict[str, Any]] = {}
    for iid, instance in state["instances"].items():
        if "event_at" in instance:
            index = instance["event_at"] - trimmed
            entry = timeline[index] if 0 <= index < len(timeline) else None
            instance = {name: value for name, value in instance.items() if name != "event_at"}
            instance["event"] = event_of_entry(customer_id, iid, entry)
        instances[iid] = instance
    return instances


def _merged_profile(mine: dict[str, Any], theirs: dict[str, Any], source: str, now: float) -> dict[str, Any]:
    """The known customer's profile wins field by field; addresses and consents are combined, and so are the
    messages that may earn a conversion credit and the goal windows still open: a purchase made once logged in
    converts the visitor's ended journeys too, crediting what the visitor was sent."""
    addresses = dict(theirs.get(ADDRESSES, {}))
    for channel, value in mine.get(ADDRESSES, {}).items():
        if channel == "push" and isinstance(value, list):
            addresses["push"] = list(dict.fromkeys([*addresses.get("push", []), *value]))
        else:
            addresses[channel] = value
    consents: dict[str, Any] = {ch: dict(purposes) for ch, purposes in theirs.get(CONSENTS, {}).items()}
    for channel, purposes in mine.get(CONSENTS, {}).items():
        for purpose, decision in purposes.items():
            other = consents.setdefault(channel, {}).get(purpose)
            if other is None or other.get("granted") or not decision.get("granted"):
                consents[channel][purpose] = decision  # an opt-out, on either side, is kept
    profile = {n: v for n, v in theirs.items()  # the last applied entry is of the visitor's own work stream
               if n not in (MERGED_INTO, MERGED_AT, CREATED_AT, UPDATED_AT, APPLIED_ENTRY, TIMELINE_TRIMMED)}
    profile.update({n: v for n, v in mine.items() if n not in (CREATED_AT, TIMELINE_TRIMMED)})
    profile.update({ADDRESSES: addresses, CONSENTS: consents, MERGED_FROM: [*mine.get(MERGED_FROM, []), source]})
    touches = {t["m"]: t for t in [*theirs.get(TOUCHPOINTS, []), *mine.get(TOUCHPOINTS, [])]}
    if touches:
        profile[TOUCHPOINTS] = kept(sorted(touches.values(), key=lambda t: float(t["t"])), now)
    watches = {w["id"]: w for w in [*theirs.get(GOAL_WATCHES, []), *mine.get(GOAL_WATCHES, [])]}
    if watches:
        profile[GOAL_WATCHES] = list(watches.values())
    return profile
