"""A customer's state in Redis: profile, attributes, journey instances, timeline, messages, applied events.

Reads come as one snapshot (one Lua script, pipelined with the rest of the batch's); the worker's changes go back
as one Lua script on the customer's slot, so a crash leaves either all of an event's effects or none of them
(sends excepted: those are guarded by their claim, see store/sends.py and engine/delivery.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import RedisCluster

from omnicanal.codec import dumps, encode, loads
from omnicanal.policy import consent
from omnicanal.store.connection import (
    FieldMap,
    Redis,
    call,
    decode_map,
    first_error,
    queue_script,
    run_script,
    send_commands,
    sends_directly,
    translated,
)
from omnicanal.store.keys import CustomerKeys, Keyspace

PROFILE_JSON_FIELDS = ("addresses", "channel_preference", "consents", "merged_from")
"""Profile fields stored as JSON documents; the others (locale, timezone, timestamps, whatsapp_last_inbound)
are plain strings."""

APPLIED_ENTRY = "applied_entry"
"""Profile field: the id of the last work entry whose effects this customer's state holds (written by the same
commit). An entry at or before it is a re-delivery (the worker stopped between commit and acknowledgement)."""

TIMELINE_TRIMMED = "timeline_trimmed"
"""Profile field: how many timeline entries were ever trimmed (absent: none), so that a position counted from
the first entry ever (an instance's `event_at`) finds its entry: index = position - trimmed."""

INSTANCE_NAMES = {"event_at": "e", "journey": "j", "version": "v", "started_at": "s", "position": "p", "seq": "n",
                  "vars": "x", "event": "ev", "waiting": "w", "converted": "c", "messages": "m", "digest": "g",
                  "retry": "r", "fallbacks": "f"}
"""Stored names of an instance's fields (and of its wait's: WAIT_NAMES). A waiting instance is Redis memory for as
long as it waits: the short names take ~57 B off the bench's (236 -> 179 B of JSON, an allocator size class
down). Instances stored with the full names, before, read the same."""
WAIT_NAMES = {"kind": "k", "token": "t", "until": "u"}
_FIELD_NAMES = {short: name for name, short in INSTANCE_NAMES.items()}
_WAIT_FIELD_NAMES = {short: name for name, short in WAIT_NAMES.items()}

EVENT_AT_PATTERNS = ('^{"e":(%d+)', '^{"event_at":(%d+)')
"""Lua patterns of an instance that keeps its event on the timeline (Instance.to_json puts `event_at` first), in
the stored form of now and of before."""

INSTANCE_FIELD = "i:"
"""Profile field prefix of a running instance (`i:<instance id>` -> its JSON). Instances live in the profile hash,
not in a hash of their own: a waiting customer is then one key less (~200 B of Redis memory each). Profile
fields are the engine's own names (locale, addresses, ...), so none starts with this. Instances stored before
that, in the `instances` hash (CustomerKeys.instances), are still read; the customer's next commit moves them."""

# KEYS: profile, attrs, instances of before (see INSTANCE_FIELD), entries, seen, timeline; ARGV: event ids.
# One round trip and one command for all a worker reads before applying a customer's work: the profile split
# into its fields and the running instances, with the timeline entries the instances that keep their event
# there point at, and the timeline's length.
_SNAPSHOT = """
local profile = redis.call('HGETALL', KEYS[1])
local fields = {}
local instances = redis.call('HGETALL', KEYS[3])
local legacy = #instances
local trimmed = 0
for j = 1, #profile, 2 do
  local name = profile[j]
  if string.sub(name, 1, """ + str(len(INSTANCE_FIELD)) + """) == '""" + INSTANCE_FIELD + """' then
    instances[#instances + 1] = string.sub(name, """ + str(len(INSTANCE_FIELD) + 1) + """)
    instances[#instances + 1] = profile[j + 1]
  else
    if name == '""" + TIMELINE_TRIMMED + """' then trimmed = tonumber(profile[j + 1]) end
    fields[#fields + 1] = name
    fields[#fields + 1] = profile[j + 1]
  end
end
local out = {fields, redis.call('HGETALL', KEYS[2]), instances, redis.call('HGETALL', KEYS[4])}
local seen = {}
for i, id in ipairs(ARGV) do
  if redis.call('ZSCORE', KEYS[5], id) then seen[#seen + 1] = id end
end
out[5] = seen
local events = {}
for j = 2, #instances, 2 do
  local at = string.match(instances[j], '""" + EVENT_AT_PATTERNS[0] + """')
    or string.match(instances[j], '""" + EVENT_AT_PATTERNS[1] + """')
  if at then
    events[#events + 1] = instances[j - 1]
    events[#events + 1] = redis.call('LINDEX', KEYS[6], tonumber(at) - trimmed) or ''
  end
end
out[6] = events
out[7] = redis.call('LLEN', KEYS[6])
out[8] = legacy
return out
"""

# KEYS: profile, attrs, instances of before, entries, timeline, seen, messages; ARGV: now, created (0/1: create
# the profile), oldest seen score kept, timeline limit, last applied entry ("": none), move (1: delete the
# instances of before: all running instances are among those set), then sections, each a count followed by its
# items: seen (id, score), timeline entries, instances to set (id, json), instances to delete (id),
# entries (journey, at), attributes to set (name, json), attributes to delete (name), messages (id, json).
# A script rather than MULTI: one command to encode and parse instead of eight, same atomicity.
_COMMIT = """
local i = 7
local function section(width, apply)
  local n = tonumber(ARGV[i]); i = i + 1
  if n > 0 then
    local items = {}
    for j = i, i + n * width - 1 do items[#items + 1] = ARGV[j] end
    apply(items)
  end
  i = i + n * width
end
if ARGV[2] == '1' then redis.call('HSETNX', KEYS[1], 'created_at', ARGV[1]) end
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], '""" + APPLIED_ENTRY + """', ARGV[5]) end
if ARGV[6] == '1' then redis.call('DEL', KEYS[3]) end
local function instance_fields(items, width)
  local named = {}
  for j = 1, #items, width do
    named[#named + 1] = '""" + INSTANCE_FIELD + """' .. items[j]
    if width == 2 then named[#named + 1] = items[j + 1] end
  end
  return named
end
section(2, function(items)
  local zargs = {}
  for j = 1, #items, 2 do zargs[#zargs + 1] = items[j + 1]; zargs[#zargs + 1] = items[j] end
  redis.call('ZADD', KEYS[6], unpack(zargs))
  redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', '(' .. ARGV[3])
end)
section(1, function(items)
  local over = redis.call('RPUSH', KEYS[5], unpack(items)) - tonumber(ARGV[4])
  if over > 0 then
    redis.call('LTRIM', KEYS[5], over, -1)
    redis.call('HINCRBY', KEYS[1], '""" + TIMELINE_TRIMMED + """', over)
  end
end)
section(2, function(items) redis.call('HSET', KEYS[1], unpack(instance_fields(items, 2))) end)
section(1, function(items) redis.call('HDEL', KEYS[1], unpack(instance_fields(items, 1))) end)
section(2, function(items) redis.call('HSET', KEYS[4], unpack(items)) end)
section(2, function(items) redis.call('HSET', KEYS[2], unpack(items)) end)
section(1, function(items) redis.call('HDEL', KEYS[2], unpack(items)) end)
section(2, function(items) redis.call('HSET', KEYS[7], unpack(items)) end)
return 1
"""


def _section(pairs: list[Any], width: int) -> list[Any]:
    return [len(pairs) // width, *pairs]


@dataclass(slots=True)
class Writes:
    """Where a batch's writes go: `before` the commits (new timers), the commits, `after` them (cancelled
    timers, the customer list). `scripts` is None when everything shares one pipeline."""

    before: Any
    after: Any
    scripts: list[Callable[[], Awaitable[Any]]] | None


@dataclass(slots=True)
class Snapshot:
    """What the worker needs to apply an event to one customer."""

    customer_id: str
    profile: dict[str, Any]
    attributes: dict[str, Any]
    instances: dict[str, dict[str, Any]]
    entries: dict[str, float]
    seen: set[str]
    applied: str | None = None
    """The last work entry applied (APPLIED_ENTRY)."""
    timeline_end: int = 0
    """The position (counted from the first entry ever) the next timeline entry will have."""
    legacy_instances: bool = False
    """Some instances are still in the instances hash of before (see INSTANCE_FIELD): the next commit moves them."""

    @property
    def exists(self) -> bool:
        return bool(self.profile or self.attributes)


@dataclass(slots=True)
class Commit:
    """Everything one batch of work changes for one customer, written atomically."""

    seen: dict[str, float] = field(default_factory=dict)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    instances: dict[str, dict[str, Any]] = field(default_factory=dict)
    ended: set[str] = field(default_factory=set)
    entries: dict[str, float] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Records of messages sent (their claim was written before the provider call)."""
    applied: str | None = None
    """The last work entry whose effects this commit holds (not a change by itself: see __bool__)."""
    move_instances: bool = False
    """`instances` holds every running instance, and the instances hash of before goes (see INSTANCE_FIELD)."""

    def __bool__(self) -> bool:
        return bool(self.seen or self.timeline or self.instances or self.ended or self.entries or self.attributes
                    or self.messages)


def _pairs(flat: list[Any]) -> dict[str, str]:
    """A flat HGETALL answer from a script (`[field, value, ...]`) as a dict (an odd length: ValueError)."""
    pairs = iter(flat)
    return dict(zip(pairs, pairs, strict=True))


def _renamed(instance: dict[str, Any], names: dict[str, str], waiting: str, wait_names: dict[str, str]
             ) -> dict[str, Any]:
    """An instance's fields, and its wait's (under `waiting`, as named after renaming), under other names; a
    name the mapping does not know stays as it is (instances stored under the names of before)."""
    fields = {names.get(name, name): value for name, value in instance.items()}
    wait = fields.get(waiting)
    if wait is not None:
        fields[waiting] = {wait_names.get(name, name): value for name, value in wait.items()}
    return fields


def encode_instance(instance: dict[str, Any]) -> bytes:
    """An instance as `decode_instances` gives it (full names, with its id and customer) in its stored form, the
    one Instance.to_json builds: JSON with the short names, in the same order, without the id and customer (the
    field and key it is stored under)."""
    stored = {name: value for name, value in instance.items() if name not in ("id", "customer_id")}
    return encode(_renamed(stored, INSTANCE_NAMES, INSTANCE_NAMES["waiting"], WAIT_NAMES))


def _instance_fields(stored: dict[str, Any]) -> dict[str, Any]:
    return _renamed(stored, _FIELD_NAMES, "waiting", _WAIT_FIELD_NAMES)


def decode_instances(customer_id: str, stored: Any) -> dict[str, dict[str, Any]]:
    """The running instances as stored (an HGETALL answer), each with its fields' full names, its id and its
    customer, which the stored form leaves to the field and key it is under (instances stored before that have
    them: the same values)."""
    return {iid: {**_instance_fields(loads(value)), "id": iid, "customer_id": customer_id}
            for iid, value in decode_map(_pairs(stored) if isinstance(stored, list) else stored).items()}


def event_of_entry(customer_id: str, instance_id: str, entry: dict[str, Any] | None) -> dict[str, Any]:
    """The event an instance keeps on the timeline, rebuilt from its entry (ValueError if the entry is gone:
    the instance's state can no longer be read, and its owner's work is dead-lettered, not run without it)."""
    if entry is None or entry.get("kind") != "event":
        raise ValueError(f"instance {instance_id} of {customer_id} points at a timeline entry that is not its event")
    return {"id": entry["event_id"], "name": entry["name"], "customer_id": customer_id,
            "properties": entry["properties"], "timestamp": entry["occurred_at"]}


def split_profile(raw: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """A profile hash as read with HGETALL: (its profile fields, its instances by id)."""
    fields: dict[str, str] = {}
    instances: dict[str, str] = {}
    for name, value in raw.items():
        if name.startswith(INSTANCE_FIELD):
            instances[name[len(INSTANCE_FIELD):]] = value
        else:
            fields[name] = value
    return fields, instances


def _decode_profile(raw: dict[str, str]) -> dict[str, Any]:
    return {k: loads(v) if k in PROFILE_JSON_FIELDS else v for k, v in raw.items()}


class CustomerStore:
    """Reads and writes the keys of one customer at a time."""

    def __init__(self, redis: Redis, keys: Keyspace, timeline_limit: int = 5_000) -> None:
        self._redis = redis
        self._keys = keys
        self.timeline_limit = timeline_limit
        """Entries kept per customer timeline (OMNICANAL_TIMELINE_LIMIT); older ones are trimmed as new ones come."""
        self._snapshot = redis.register_script(_SNAPSHOT)
        self._commit = redis.register_script(_COMMIT)

    def keys(self, customer_id: str) -> CustomerKeys:
        return self._keys.customer(customer_id)

    async def snapshot(self, customer_id: str, event_ids: list[str]) -> Snapshot:
        found = (await self.snapshots({customer_id: event_ids}))[customer_id]
        if isinstance(found, Exception):
            raise found
        return found

    async def snapshots(self, wanted: dict[str, list[str]]) -> dict[str, Snapshot | Exception]:
        """The snapshots of many customers (with which of their event ids were applied), in one round trip
        (on a Cluster, one concurrent script call each: its client cannot pipeline scripts). A customer whose
        stored state cannot be read gets the error instead, so one corrupted record stops only its owner."""
        def keys(customer_id: str) -> list[str]:
            k = self.keys(customer_id)
            return [k.profile, k.attrs, k.instances, k.entries, k.seen, k.timeline]

        answers = await run_script(self._redis, self._snapshot, [(keys(cid), ids) for cid, ids in wanted.items()])
        return {cid: self._decode_snapshot(cid, answer) for cid, answer in zip(wanted, answers, strict=True)}

    @staticmethod
    def _decode_snapshot(customer_id: str, answer: list[Any]) -> Snapshot | Exception:
        try:
            profile, attrs, instances, entries, seen, events, length, legacy = answer
            fields = _pairs(profile)
            applied = fields.pop(APPLIED_ENTRY, None)
            trimmed = int(fields.pop(TIMELINE_TRIMMED, 0))
            running = decode_instances(customer_id, instances)
            for iid, entry in _pairs(events).items():
                running[iid]["event"] = event_of_entry(customer_id, iid, loads(entry) if entry else None)
            return Snapshot(
                customer_id=customer_id,
                profile=_decode_profile(fields),
                attributes={name: loads(v) for name, v in _pairs(attrs).items()},
                instances=running,
                entries={jid: float(v) for jid, v in _pairs(entries).items()},
                seen=set(seen),
                applied=applied,
                timeline_end=trimmed + int(length),
                legacy_instances=bool(legacy),
            )
        except (ValueError, TypeError) as exc:  # JSON that is not, a record of the wrong shape
            return exc

    @asynccontextmanager
    async def writes(self) -> AsyncIterator[Writes]:
        """The writes of a whole batch, sent when the block ends: on one Redis in a single round trip, in the
        order queued; on a Cluster (whose client cannot pipeline scripts) in three steps, `before`, the
        scripts, `after` — either way every customer's timers land before its commit."""
        if isinstance(self._redis, RedisCluster):
            async with translated(), self._redis.pipeline() as before, self._redis.pipeline() as after:
                writes = Writes(before, after, [])
                yield writes
                if len(before):
                    await before.execute()
                await asyncio.gather(*(script() for script in writes.scripts or ()))
                if len(after):
                    await after.execute()
            return
        async with translated(), self._redis.pipeline(transaction=False) as pipe:
            yield Writes(pipe, pipe, None)
            if not len(pipe):
                return
            if sends_directly(self._redis):  # queued with redis-py's commands, sent without its per-reply cost
                first_error(await send_commands(self._redis, [args for args, _ in pipe.command_stack]))
            else:
                await pipe.execute()

    async def commit(self, writes: Writes, customer_id: str, commit: Commit, now: float, seen_since: float,
                     new: bool) -> None:
        """Queue a Commit: atomic (one script); a `new` customer gets its creation time and is listed; applied
        event ids older than `seen_since` (real time) are forgotten."""
        k = self.keys(customer_id)
        kept = {name: encode(value) for name, value in commit.attributes.items() if value is not None}
        args: list[Any] = [
            repr(now), "1" if new else "0", repr(seen_since), self.timeline_limit, commit.applied or "",
            "1" if commit.move_instances else "0",
            *_section([x for eid, at in commit.seen.items() for x in (eid, repr(at))], 2),
            *_section([encode(entry) for entry in commit.timeline], 1),
            *_section([x for iid, i in commit.instances.items() for x in (iid, encode_instance(i))], 2),
            *_section(list(commit.ended), 1),
            *_section([x for jid, at in commit.entries.items() for x in (jid, repr(at))], 2),
            *_section([x for pair in kept.items() for x in pair], 2),
            *_section([name for name, value in commit.attributes.items() if value is None], 1),
            *_section([x for mid, record in commit.messages.items() for x in (mid, encode(record))], 2),
        ]
        keys = [k.profile, k.attrs, k.instances, k.entries, k.timeline, k.seen, k.messages]
        if writes.scripts is not None:
            writes.scripts.append(lambda: self._commit(keys=keys, args=args))
        else:
            queue_script(writes.before, _COMMIT, keys, args)
        if new:
            writes.after.sadd(self._keys.customers, customer_id)

    @staticmethod
    def _write_attributes(pipe: Any, k: CustomerKeys, attributes: dict[str, Any]) -> None:
        """Attributes set to null are removed; the others are written field by field."""
        removed = [name for name, value in attributes.items() if value is None]
        kept = {name: dumps(value) for name, value in attributes.items() if value is not None}
        if kept:
            pipe.hset(k.attrs, mapping=kept)
        if removed:
            pipe.hdel(k.attrs, *removed)

    async def upsert_profile(
        self, customer_id: str, fields: dict[str, Any], attributes: dict[str, Any], now: float
    ) -> None:
        """Merge a profile update: given fields replace, addresses merge per channel (null removes one),
        consents merge per channel and purpose, null attributes go."""
        k = self.keys(customer_id)
        if "addresses" in fields or "consents" in fields:
            raw_addresses, raw_consents = await call(self._redis.hmget(k.profile, ["addresses", "consents"]))
            fields = dict(fields)
            if "addresses" in fields:
                merged = {**(loads(raw_addresses) if raw_addresses else {}), **fields["addresses"]}
                fields["addresses"] = {ch: a for ch, a in merged.items() if a not in (None, [], "")}
            if "consents" in fields:
                fields["consents"] = consent.merge(loads(raw_consents) if raw_consents else {},
                                                   fields["consents"])
        encoded: FieldMap = {name: dumps(v) if name in PROFILE_JSON_FIELDS else str(v) for name, v in fields.items()}
        async with translated(), self._redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(k.profile, "created_at", repr(now))
            pipe.hset(k.profile, mapping={**encoded, "updated_at": repr(now)})
            self._write_attributes(pipe, k, attributes)
            await pipe.execute()
        await call(self._redis.sadd(self._keys.customers, customer_id))

    async def profile(self, customer_id: str) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
        """(profile, attributes, running instances); empty profile and attributes: unknown customer."""
        snap = await self.snapshot(customer_id, [])
        return snap.profile, snap.attributes, list(snap.instances.values())

    async def timeline(self, customer_id: str) -> list[dict[str, Any]]:
        """Every entry, oldest first, messages carrying their latest status and status history."""
        k = self.keys(customer_id)
        async with translated(), self._redis.pipeline(transaction=False) as pipe:
            pipe.lrange(k.timeline, 0, -1)
            pipe.hgetall(k.messages)
            raw_entries, raw_messages = await pipe.execute()
        messages = {mid: loads(v) for mid, v in decode_map(raw_messages).items()}
        entries = [loads(raw) for raw in raw_entries]
        for entry in entries:
            record = messages.get(entry.get("message_id", ""))
            if entry.get("kind") == "message" and record:
                entry["status"] = record["status"]
                entry["status_history"] = record["history"]
        return entries

    async def remove_address(self, customer_id: str, channel: str, address: str) -> None:
        """Forget an address the provider says is dead (an unregistered push token, an unknown number)."""
        k = self.keys(customer_id)
        raw = await call(self._redis.hget(k.profile, "addresses"))
        addresses = loads(raw) if raw else {}
        value = addresses.get(channel)
        if isinstance(value, list) and address in value:
            value.remove(address)
        elif value == address:
            addresses.pop(channel)
        else:
            return
        await call(self._redis.hset(k.profile, "addresses", dumps({c: a for c, a in addresses.items() if a})))

    async def save_sent_message(self, customer_id: str, message_id: str, record: dict[str, Any],
                                provider_id: str) -> None:
        """Save a message's record and remember whose message its provider id is (kept 30 days), in one round
        trip, before the provider's receipts can ask."""
        async with translated(), self._redis.pipeline(transaction=False) as pipe:
            pipe.hset(self.keys(customer_id).messages, message_id, dumps(record))
            pipe.set(self._keys.provider_message(provider_id), f"{customer_id}|{message_id}", ex=30 * 86400)
            await pipe.execute()

    async def message_of_provider_id(self, provider_id: str) -> tuple[str, str] | None:
        raw = await call(self._redis.get(self._keys.provider_message(provider_id)))
        if not raw:
            return None
        customer_id, _, message_id = raw.partition("|")
        return customer_id, message_id

    async def message(self, customer_id: str, message_id: str) -> dict[str, Any] | None:
        raw = await call(self._redis.hget(self.keys(customer_id).messages, message_id))
        return loads(raw) if raw else None

    async def record_status(self, customer_id: str, message_id: str, status: str, at: float,
                            error_code: str | None = None) -> dict[str, Any] | None:
        """Append a provider's status to a message's history (statuses seen before are not repeated)."""
        record = await self.message(customer_id, message_id)
        if record is None:
            return None
        if all(entry["status"] != status for entry in record["history"]):
            record["history"].append({"status": status, "at": at, **({"error_code": error_code} if error_code else {})})
            record["status"] = status
            await self.save_message(customer_id, message_id, record)
        return record

    async def save_message(self, customer_id: str, message_id: str, record: dict[str, Any]) -> None:
        await call(self._redis.hset(self.keys(customer_id).messages, message_id, dumps(record)))
