"""The stored form: every hash field, member and stream field omnicanal writes, the records it stores, and their
encoders and decoders. Key names are in keys.py; everything inside a key is named here, once. Lua scripts get
the names they use from LUA_NAMES (prepended by scripts.py), so no script spells one either.

What crosses the store's boundary is plain data under full names (an instance as `decode_instance` gives it, a
message record with its `status` and `history`); the short stored names stay on this side.

FORMAT is the version of this stored form, written per workspace at start (see version.py): change it whenever
data stored the old way would read differently, since a process refuses a store of another format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omnicanal.codec import encode, loads

FORMAT = 1
"""The version of the stored form this code reads and writes."""

# -- profile hash (CustomerKeys.profile) ---------------------------------------------------------------------------

CREATED_AT = "created_at"
UPDATED_AT = "updated_at"
ADDRESSES = "addresses"
"""JSON `{channel: address}` (`push`: a list of tokens); merged per channel, a null or empty address removes one."""
CONSENTS = "consents"
"""JSON `{channel: {purpose: {"granted", "source", "at"}}}` (policy/consent.py)."""
INBOUND_KEPT = 1000
"""Provider message ids remembered per customer (CustomerKeys.inbound): a replay of an older one is not caught."""
CHANNEL_PREFERENCE = "channel_preference"
MERGED_FROM = "merged_from"
"""JSON list of the anonymous ids merged into this customer (a merge applied twice changes nothing)."""
MERGED_INTO = "merged_into"
"""A tombstone: the customer this anonymous id became; their work is forwarded there."""
MERGED_AT = "merged_at"
KNOWN_AT = "known_at"
"""When the customer became known: their profile was written from outside their own events (PUT /v1/customers, a
reply on SMS or WhatsApp: lua/upsert_profile.lua). A known customer is never merged into another by `identify`."""
TOUCHPOINTS = "touchpoints"
"""JSON list of the messages the customer received lately, for attribution (journey/attribution.py)."""
GOAL_WATCHES = "goal_watches"
"""JSON list of ended instances whose goal window is still open (journey/state.goal_watch)."""
AUDIENCE = "audience"
"""JSON of what the core keeps for segments: aggregates' data, the segments the customer is in, when their expiry
timer is due (journey/audience.py)."""
PROFILE_JSON_FIELDS = frozenset({ADDRESSES, CHANNEL_PREFERENCE, CONSENTS, MERGED_FROM, TOUCHPOINTS, GOAL_WATCHES,
                                 AUDIENCE})
"""Profile fields stored as JSON; the others (locale, timezone, timestamps, whatsapp_last_inbound) are text."""

APPLIED_ENTRY = "applied_entry"
"""The id of the last work entry whose effects this customer's state holds (written by the same commit). An
entry at or before it is a re-delivery (the worker stopped between commit and acknowledgement)."""

STALE_COMMIT = "STALE"
"""The error a customer's commit answers when another worker committed their work since it was read (lua/commit.lua):
this process stalled past its partition's lease and the new owner went on."""

TIMELINE_TRIMMED = "timeline_trimmed"
"""How many timeline entries were ever trimmed (absent: none), so that a position counted from the first entry
ever (an instance's `event_at`) finds its entry: index = position - trimmed."""

INSTANCE_FIELD = "i:"
"""Prefix of a running instance's field (`i:<instance id>` -> its JSON). Instances live in the profile hash, not
in a hash of their own: a waiting customer is then one key less. No other profile field starts with it."""


def encode_profile_field(name: str, value: Any) -> str:
    """A profile field's stored text."""
    return encode(value).decode() if name in PROFILE_JSON_FIELDS else str(value)


def decode_profile(fields: dict[str, str]) -> dict[str, Any]:
    """Profile fields as stored (instances and bookkeeping fields already set apart) as plain data."""
    return {name: loads(value) if name in PROFILE_JSON_FIELDS else value for name, value in fields.items()}


def split_profile(raw: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """A profile hash as read with HGETALL: (its profile fields, its instances' JSON by instance id)."""
    fields: dict[str, str] = {}
    instances: dict[str, str] = {}
    for name, value in raw.items():
        if name.startswith(INSTANCE_FIELD):
            instances[name[len(INSTANCE_FIELD):]] = value
        else:
            fields[name] = value
    return fields, instances


# -- journey instances (profile fields INSTANCE_FIELD + id) --------------------------------------------------------

INSTANCE_NAMES = {"event_at": "e", "journey": "j", "version": "v", "started_at": "s", "position": "p", "seq": "n",
                  "vars": "x", "event": "ev", "waiting": "w", "converted": "c", "messages": "m", "digest": "g",
                  "retry": "r", "fallbacks": "f", "key": "y", "arms": "a", "deferred": "d"}
"""Stored names of an instance's fields (its wait's: WAIT_NAMES). A waiting instance is Redis memory for as long
as it waits: short names keep it small. The id and the customer are not stored: they are the field and the key
the instance is stored under."""
WAIT_NAMES = {"kind": "k", "token": "t", "until": "u"}
_INSTANCE_FULL = {short: name for name, short in INSTANCE_NAMES.items()}
_WAIT_FULL = {short: name for name, short in WAIT_NAMES.items()}

EVENT_AT_PATTERN = '^{"' + INSTANCE_NAMES["event_at"] + '":(%d+)'
"""Lua pattern of an instance that keeps its event on the timeline: `event_at` is its first stored field
(journey/state.Instance.to_dict puts it there), so the snapshot script finds it without decoding the JSON."""


def _renamed(instance: dict[str, Any], names: dict[str, str], waiting: str, wait_names: dict[str, str]
             ) -> dict[str, Any]:
    """An instance's fields, and its wait's (under `waiting`, as named after renaming), under other names;
    ValueError for a name the mapping does not know (a record of another stored form)."""
    try:
        fields = {names[name]: value for name, value in instance.items()}
        wait = fields.get(waiting)
        if wait is not None:
            fields[waiting] = {wait_names[name]: value for name, value in wait.items()}
    except KeyError as exc:
        raise ValueError(f"unknown stored instance field {exc}") from None
    return fields


def encode_instance(instance: dict[str, Any]) -> bytes:
    """An instance under its fields' full names (journey/state.Instance.to_dict, or as `decode_instance` gives it)
    in its stored form: JSON with the short names, in the same order (`event_at` first: EVENT_AT_PATTERN),
    without the id and customer."""
    stored = {name: value for name, value in instance.items() if name not in ("id", "customer_id")}
    return encode(_renamed(stored, INSTANCE_NAMES, INSTANCE_NAMES["waiting"], WAIT_NAMES))


def decode_instance(customer_id: str, instance_id: str, stored: str | bytes) -> dict[str, Any]:
    """A stored instance under its fields' full names, with its id and customer."""
    fields = _renamed(loads(stored), _INSTANCE_FULL, "waiting", _WAIT_FULL)
    fields["id"], fields["customer_id"] = instance_id, customer_id
    return fields


def decode_instances(customer_id: str, stored: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Stored instances by id (see split_profile) as `decode_instance` gives them."""
    return {iid: decode_instance(customer_id, iid, value) for iid, value in stored.items()}


# -- timeline (CustomerKeys.timeline: JSON entries, as GET /v1/customers/{id}/timeline shows them) -----------------

def event_of_entry(customer_id: str, instance_id: str, entry: dict[str, Any] | None) -> dict[str, Any]:
    """The event an instance keeps on the timeline, rebuilt from its entry (ValueError if the entry is gone:
    the instance's state can no longer be read, and its owner's work is dead-lettered, not run without it)."""
    if entry is None or entry.get("kind") != "event":
        raise ValueError(f"instance {instance_id} of {customer_id} points at a timeline entry that is not its event")
    return {"id": entry["event_id"], "name": entry["name"], "customer_id": customer_id,
            "properties": entry["properties"], "timestamp": entry["occurred_at"]}


# -- message records (CustomerKeys.messages) -------------------------------------------------------------------------

HISTORY_SUFFIX = "|h"
"""A message is two fields of the messages hash: `<message id>` -> its record (journey, step, channel, provider
id, fallback...) as JSON, and `<message id>|h` -> its status history, a JSON array of `{"status", "at", ...}`;
its status is the last entry's. The history is apart so that a receipt appends to it without rewriting the
record (which holds customer data a Lua script must not re-encode: cjson turns `[]` into `{}` and rounds
numbers), and a status is appended only if the history does not hold it yet: receipts and the worker's writes
merge, in any order. Message ids never contain `|`."""


@dataclass(slots=True)
class StoredMessage:
    """A message record in its stored form: the record without its status, and its history, encoded as the
    write needs it (whole for a fresh one, entry by entry for one that merges)."""

    record: bytes
    history: list[dict[str, Any]]

    def history_json(self) -> bytes:
        return encode(self.history)

    def flat_history(self) -> list[Any]:
        """The entries as a merging script takes them: status, entry JSON, status, entry JSON..."""
        return [x for entry in self.history for x in (entry["status"], encode(entry))]


def encode_message(record: dict[str, Any]) -> StoredMessage:
    """A message record (`status`, `history` and the rest) in its stored form; its status is its history's."""
    rest = record.copy()
    del rest["status"]
    history = rest.pop("history")
    return StoredMessage(encode(rest), history)


def decode_message(message_id: str, record: str | bytes, history: str | bytes | None) -> dict[str, Any]:
    """A stored message record as plain data, with its `status` (its last history entry's) and `history`."""
    entries = loads(history) if history else []
    if not entries:
        raise ValueError(f"message {message_id} has no status history")
    return {"status": current_status(entries), "history": entries, **loads(record)}


PROVIDER_PROGRESS = {"accepted": 1, "scheduled": 1, "queued": 1, "sending": 1, "sent": 2, "delivered": 3,
                     "undelivered": 3, "failed": 3, "read": 4}
"""How far along a provider's statuses are. Twilio says its callbacks may arrive in any order: a `sent` that
comes after `delivered` is old news."""


def current_status(entries: list[dict[str, Any]]) -> str:
    """A message's status from its history: the latest entry, except that a provider status behind one already
    recorded (a late `sent` after `delivered`) does not move the status back. The engine's own statuses
    (`unknown`, `retrying`, ...) are not ranked: they always count."""
    status, reached = str(entries[-1]["status"]), 0
    for entry in entries:
        progress = PROVIDER_PROGRESS.get(str(entry["status"]))
        if progress is None or progress >= reached:
            status, reached = str(entry["status"]), max(reached, progress or 0)
    return status


def decode_messages(raw: dict[str, str]) -> dict[str, dict[str, Any]]:
    """A messages hash as read with HGETALL, by message id."""
    return {mid: decode_message(mid, value, raw.get(mid + HISTORY_SUFFIX))
            for mid, value in raw.items() if not mid.endswith(HISTORY_SUFFIX)}


def message_fields(messages: dict[str, dict[str, Any]]) -> dict[Any, Any]:
    """Message records as the fields of a messages hash (for a write that replaces them)."""
    fields: dict[Any, Any] = {}
    for mid, record in messages.items():
        stored = encode_message(record)
        fields[mid], fields[mid + HISTORY_SUFFIX] = stored.record, stored.history_json()
    return fields


def send_member(message_id: str, channel: str, journey: str) -> str:
    """A marketing send in the customer's sends set (frequency caps): `message|channel|journey`."""
    return f"{message_id}|{channel}|{journey}"


SEND_MEMBER_PATTERN = "^[^|]*|([^|]*)|(.*)$"
"""Lua pattern of a send member, capturing its channel and journey."""


def provider_entry(customer_id: str, message_id: str) -> str:
    """Whose message a provider's message id is (Keyspace.provider_message): `customer|message`."""
    return f"{customer_id}|{message_id}"


def parse_provider_entry(raw: str) -> tuple[str, str]:
    customer_id, _, message_id = raw.partition("|")
    return customer_id, message_id


# -- work streams (PartitionKeys.work, the dead-letter stream) and timers (PartitionKeys.timers) ---------------------

STREAM_KIND = "k"
"""Stream field: the item's kind (`event`, `timer`, `drain`, `merge`, `absorb`)."""
STREAM_CUSTOMER = "c"
STREAM_DATA = "d"
"""Stream field: the event, or an operation's payload, as JSON."""
STREAM_MEMBER = "m"
"""Stream field of a timer: its timer member (`timer_member`), which names its customer."""
STREAM_UNIQUE = "u"
"""Stream field of an event no other entry carries (`1`; see WorkItem.unique)."""
DEAD_ERROR = "error"
DEAD_FAILED_AT = "failed_at"
"""Dead-letter stream fields added to the item's own: why it failed, when."""
TIMER_KIND = "timer"


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One stream entry for a customer: an `event`, a `timer` of one of their journey instances, or an
    operation — `drain` (payload: journey), `merge` (payload: into, the known customer this anonymous one
    becomes) or `absorb` (payload: from, state: what the anonymous customer had)."""

    partition: int
    entry_id: str
    kind: str
    customer_id: str
    event: dict[str, Any] | None = None
    instance_id: str | None = None
    token: str | None = None
    payload: dict[str, Any] | None = None
    unique: bool = False
    """An event whose id no other entry carries (the API's, sent without an idempotency key): only a re-delivery
    of this very entry could apply it twice, and the customer's last applied entry recognises that, so its id is
    not kept in the applied-events index. Events that may come again under the same id (an idempotency key, a
    provider's retried callback, a forwarded event) are not unique."""

    @classmethod
    def of_event(cls, event: dict[str, Any], unique: bool = False) -> WorkItem:
        """A stored event (see api/events.py) about to be added to its customer's stream."""
        return cls(-1, "", "event", event["customer_id"], event=event, unique=unique)

    def for_customer(self, customer_id: str) -> WorkItem:
        """The same work, addressed to another customer (forwarding after a merge: it may be forwarded twice,
        so it is no longer `unique`)."""
        event = {**self.event, "customer_id": customer_id} if self.event is not None else None
        return WorkItem(-1, "", self.kind, customer_id, event, self.instance_id, self.token, self.payload)


def timer_member(customer_id: str, instance_id: str, token: str) -> str:
    """A timer in its partition's timers set: `customer|instance|token`."""
    return f"{customer_id}|{instance_id}|{token}"


RETENTION_TIMER = "retention"
"""The instance id of a customer's retention timer (OMNICANAL_RETENTION_DAYS): one member per customer in their
partition's timers set, `customer|retention|`, due when they will have been inactive for the retention period.
Every commit of their work moves it later (a ZADD that replaces the score); when it fires, the customer is erased.
Real instance ids are hex digests, so none is named like it."""


def retention_member(customer_id: str) -> str:
    return timer_member(customer_id, RETENTION_TIMER, "")


def timers_of(customer_id: str) -> str:
    """The SCAN pattern of every timer of a customer in their partition's set (ids hold no glob character)."""
    return f"{customer_id}|*"


ERASE = "erase"
"""Stream kind of an erasure (payload: `reply`, where the summary is awaited), applied in the customer's order."""
EVALUATE = "segments"
"""Stream kind of a segment backfill's item (payload: `segment`, `fingerprint`, the definition it was queued for):
the customer's memberships evaluated again, in their order."""


def encode_work(item: WorkItem) -> dict[Any, Any]:
    """The stream fields of an item (the inverse of decode_work)."""
    if item.kind == "event":
        fields: dict[Any, Any] = {STREAM_KIND: "event", STREAM_CUSTOMER: item.customer_id,
                                          STREAM_DATA: encode(item.event)}
        if item.unique:
            fields[STREAM_UNIQUE] = "1"
        return fields
    if item.kind != TIMER_KIND:
        return {STREAM_KIND: item.kind, STREAM_CUSTOMER: item.customer_id, STREAM_DATA: encode(item.payload)}
    return {STREAM_KIND: TIMER_KIND, STREAM_MEMBER: timer_member(item.customer_id, item.instance_id or "",
                                                                 item.token or "")}


def decode_work(partition: int, entry_id: str, fields: dict[str, str]) -> WorkItem:
    """A stream entry's item."""
    kind = fields[STREAM_KIND]
    if kind == "event":
        return WorkItem(partition, entry_id, "event", fields[STREAM_CUSTOMER], event=loads(fields[STREAM_DATA]),
                        unique=fields.get(STREAM_UNIQUE) == "1")
    if kind != TIMER_KIND:
        return WorkItem(partition, entry_id, kind, fields[STREAM_CUSTOMER], payload=loads(fields[STREAM_DATA]))
    customer_id, instance_id, token = fields[STREAM_MEMBER].split("|", 2)
    return WorkItem(partition, entry_id, TIMER_KIND, customer_id, instance_id=instance_id, token=token)


# -- what Lua scripts are told -------------------------------------------------------------------------------------

# -- coupons (Keyspace.coupon) ---------------------------------------------------------------------------------

COUPON_FIELDS = ("customer", "message_id", "journey", "step", "channel", "expires")
"""What an issued coupon keeps (a hash), besides who used it."""
COUPON_EXPIRES = "expires"
COUPON_USED_BY = "used_by"
"""The id of the `coupon.redeemed` event that used the coupon (the same event again, a replay, passes)."""
COUPON_USED_AT = "used_at"


# -- the in-app inbox (CustomerKeys.inbox, CustomerKeys.inbox_order) ----------------------------------------------

INBOX_KEPT = 100
"""Messages an inbox keeps: the newest; an older one goes with its marks when a new one comes."""
INBOX_VERSION = "~version"
"""A field of the inbox hash counting its changes (a message in, a mark): what a live stream watches. No message
id starts with `~`."""
INBOX_READ_SUFFIX = "|r"
INBOX_ARCHIVED_SUFFIX = "|a"
"""A message id with one of these suffixes is the field of when it was read, or archived (ISO 8601)."""


# -- API keys (Keyspace.api_keys: key id -> JSON) and the audit stream (Keyspace.audit) -------------------------------

@dataclass(frozen=True, slots=True)
class StoredKey:
    """An API key as stored: never its secret, only the secret's SHA-256 (`digest`) — and, for a key whose requests
    are signed, the signing secret."""

    id: str
    digest: str
    name: str
    scopes: tuple[str, ...]
    workspace: str
    created_at: float
    revoked_at: float | None = None
    last_used: float | None = None
    """When an API process last saw it used (kept apart: Keyspace.api_keys_used); None: never, or not read."""
    signing_secret: str | None = field(default=None, repr=False)
    """The secret its requests are signed with (signing.py), kept as it is: checking an HMAC needs the secret
    itself, not a hash. None: the key's requests are not signed."""


def encode_key(key: StoredKey) -> bytes:
    return encode({"digest": key.digest, "name": key.name, "scopes": list(key.scopes), "workspace": key.workspace,
                   "created_at": key.created_at, "revoked_at": key.revoked_at, "signing_secret": key.signing_secret})


def decode_key(key_id: str, stored: str | bytes, last_used: str | None = None) -> StoredKey:
    fields = loads(stored)
    return StoredKey(key_id, fields["digest"], fields["name"], tuple(fields["scopes"]), fields["workspace"],
                     fields["created_at"], fields["revoked_at"], float(last_used) if last_used else None,
                     fields.get("signing_secret"))


AUDIT_KEPT = 100_000
"""Audit entries kept (XADD MAXLEN ~: Redis trims whole nodes, so a few more may stay): at ~200 B each, ~20 MB."""
AUDIT_ACTOR = "actor"
"""Who: an API key's id, `static` (a key of OMNICANAL_API_KEYS), `anonymous` (an API without keys) or `cli:<user>`
(a command, admin.cli_actor)."""
AUDIT_ACTION = "action"
AUDIT_TARGET = "target"
AUDIT_DETAILS = "details"
"""JSON object: what else the action says (counts, the consents written...); when: the entry id's time."""

# -- segment backfills (Keyspace.segment_backfill) --------------------------------------------------------------

BACKFILL_FINGERPRINT = "fingerprint"
"""The fingerprint of the segment definition the backfill evaluates (journey/segments.py)."""
BACKFILL_STATE = "state"
BACKFILL_WALKING, BACKFILL_DONE = "walking", "done"
"""A backfill's state: its walk of the customers under way (or waiting for a process), or walked to the end."""
BACKFILL_CURSOR = "cursor"
BACKFILL_CONSIDERED = "considered"
"""Customers whose evaluation the walk queued so far (one met twice counts twice)."""
BACKFILL_TOTAL = "total"
"""How many customers there were when the walk began."""
BACKFILL_ARMED_AT = "armed_at"
BACKFILL_WALKED_AT = "walked_at"
"""Journey times: when the definition was loaded and the backfill began; when its walk ended."""

LUA_NAMES: dict[str, str | int] = {
    "CREATED_AT": CREATED_AT, "UPDATED_AT": UPDATED_AT, "ADDRESSES": ADDRESSES, "CONSENTS": CONSENTS,
    "APPLIED_ENTRY": APPLIED_ENTRY, "STALE_COMMIT": STALE_COMMIT, "TIMELINE_TRIMMED": TIMELINE_TRIMMED,
    "INSTANCE_FIELD": INSTANCE_FIELD,
    "EVENT_AT_PATTERN": EVENT_AT_PATTERN, "HISTORY_SUFFIX": HISTORY_SUFFIX, "SEND_MEMBER_PATTERN": SEND_MEMBER_PATTERN,
    "STREAM_KIND": STREAM_KIND, "STREAM_MEMBER": STREAM_MEMBER, "TIMER_KIND": TIMER_KIND,
    "COUPON_EXPIRES": COUPON_EXPIRES, "COUPON_USED_BY": COUPON_USED_BY, "COUPON_USED_AT": COUPON_USED_AT,
    "INBOUND_KEPT": INBOUND_KEPT, "KNOWN_AT": KNOWN_AT, "MERGED_INTO": MERGED_INTO,
    "BACKFILL_FINGERPRINT": BACKFILL_FINGERPRINT, "BACKFILL_STATE": BACKFILL_STATE,
    "BACKFILL_WALKING": BACKFILL_WALKING, "BACKFILL_DONE": BACKFILL_DONE, "BACKFILL_CURSOR": BACKFILL_CURSOR,
    "BACKFILL_CONSIDERED": BACKFILL_CONSIDERED, "BACKFILL_TOTAL": BACKFILL_TOTAL,
    "BACKFILL_ARMED_AT": BACKFILL_ARMED_AT, "BACKFILL_WALKED_AT": BACKFILL_WALKED_AT,
    "INBOX_VERSION": INBOX_VERSION, "INBOX_READ_SUFFIX": INBOX_READ_SUFFIX,
    "INBOX_ARCHIVED_SUFFIX": INBOX_ARCHIVED_SUFFIX,
}
"""Stored names a Lua script may use: scripts.py defines, ahead of a script, each one its source mentions."""
