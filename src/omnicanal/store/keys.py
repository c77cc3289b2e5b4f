"""Every Redis key omnicanal uses, and nowhere else (what is inside each key is named in schema.py).

Layout (workspace `ws`, customer `cid`, partition `p`):

    oc:{ws:c:cid}:profile       hash   locale, timezone, addresses, channel_preference, consents (JSON), created_at,
                                       applied_entry (the last work entry the customer's state holds),
                                       i:<instance id> -> JSON of a running journey instance
    oc:{ws:c:cid}:attrs         hash   attribute -> JSON value (field-level writes never clobber each other)
    oc:{ws:c:cid}:entries       hash   journey id -> when the customer's last finished instance began (re-entry)
    oc:{ws:c:cid}:timeline      list   JSON entries, oldest first (events, messages, journey milestones)
    oc:{ws:c:cid}:messages      hash   message id -> JSON message record, message id|h -> its status history
    oc:{ws:c:cid}:seen          zset   ids of applied events that may come again (idempotency key, provider
                                       callback, forwarded by a merge), scored by time
    oc:{ws:c:cid}:sends         zset   "message|channel|journey" of marketing sends, scored by time (caps)
    oc:{ws:c:cid}:claims        set    ids of messages claimed by work not yet committed (its replay sends them
                                       nowhere else, journey/sending.py)
    oc:{ws:c:cid}:inbox         hash   the in-app inbox: message id -> JSON message, id|r -> when read, id|a -> when
                                       archived (the newest INBOX_KEPT messages, store/inbox.py)
    oc:{ws:c:cid}:inbox_order   zset   the inbox's message ids scored by when they arrived (ms)
    oc:{ws:c:cid}:inbound       zset   provider ids of the inbound messages applied to the profile (the newest 1,000)
    oc:{ws:p:N}:work            stream events and due timers of the customers hashed onto partition N
    oc:{ws:p:N}:timers          zset   "cid|instance|token" scored by due journey time (with retention on, also
                                       "cid|retention|", when the customer will have been inactive too long)
    oc:{ws:p:N}:lease           string id of the worker that owns partition N (expires unless renewed)
    oc:{ws}:workers             zset   live worker ids scored by their last heartbeat
    oc:{ws}:dlq                 stream work items that kept failing, with the error (omnicanal dlq ...)
    oc:{ws}:journey:ID          hash   version -> journey source (instances finish on the version they began)
    oc:{ws}:listened            set    event names some stored journey version reacts to (profile changes say
                                       customer.updated while an instance of an older version may wait for it)
    oc:{ws}:stats:ID            hash   per-journey and per-step counters, since the start
    oc:{ws}:stats:ID:h:HOUR     hash   the same counters for one hour of journey time (kept OMNICANAL_STATS_RETENTION)
    oc:{ws}:active:ID           set    customers with a running instance of journey ID (drain, counts)
    oc:{ws}:customers           set    ids of known customers (listing, housekeeping)
    oc:{ws}:segment:ID          set    customers in segment ID (sizes; audiences walked with SSCAN)
    oc:{ws}:paused              set    ids of paused journeys
    oc:{ws}:outbox              list   messages recorded by the outbox connector
    {oc:ws:outbox}:count        string how many records the outbox was ever given (positions for pagination;
                                       its hash tag is the outbox key's own name: the two share a slot)
    oc:{ws}:rate:CONNECTOR:S    string sends through a connector in second S (provider rate limits)
    oc:{ws}:provider:ID         string "customer|message" of a provider's message id (delivery receipts)
    oc:{ws}:idem:EVENT_ID       string fingerprint of the body an idempotency key came with (kept the window)
    oc:{ws}:coupon:CODE         hash   a coupon's customer, message, journey, step, channel, expiry, use
    oc:{ws}:secret:coupons      string the key coupon codes are derived with (unless configured)
    oc:{ws}:ident:KIND:VALUE    string the customer an e-mail, phone, push token or anonymous id belongs to
    oc:{ws}:erased:ID           string the summary of erasure ID, for the API request waiting for it (a minute)
    oc:{ws}:clock               hash   anchor of the shared journey clock
    oc:{ws:b}:schedules         zset   journey id -> the journey time up to which its schedule's occurrences were
                                       handled (fired as broadcasts `s.<journey>.<epoch>`, or let go)
    oc:{ws:b}:backfill:ID       hash   segment ID's backfill: the fingerprint of the definition evaluated for every
                                       customer, the walk's state, cursor and counts (store/backfills.py)
    oc:{ws:b}:backfill_walker:ID string the lease of the process walking segment ID's backfill
    oc:{ws:b}:backfills         set    ids of the segments with a backfill record
    oc:{ws}:format              string the stored-format version of the workspace (version.py)
    oc:{ws}:apikeys             hash   key id -> JSON of an API key: its secret's SHA-256, name, scopes, workspace,
                                       created_at, revoked_at (revoked keys stay: `omnicanal keys list --all`)
    oc:{ws}:apikeys:used        hash   key id -> when an API process last saw the key used (at most once a second)
    oc:{ws}:hits:FP:S           string requests made with the API key of fingerprint FP in second S (rate limit)
    oc:{ws}:audit               stream admin actions: who, what, on what (the newest AUDIT_KEPT, schema.py)

All keys of one customer share the hash tag `{ws:c:cid}`, and a partition's stream and timers share `{ws:p:N}`,
so every multi-key script or transaction touches one slot and runs unchanged on Redis Cluster.
"""

from __future__ import annotations

import functools
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass

CUSTOMER_ID_PATTERN = r"^[A-Za-z0-9+][A-Za-z0-9._:@+\-]{0,127}$"
"""Customer ids appear inside a hash tag: braces and spaces would break it, so they are refused at the door."""

_CUSTOMER_ID = re.compile(CUSTOMER_ID_PATTERN)
STREAM_GROUP = "omnicanal-workers"
CUSTOMER_KEYS_CACHED = 4096
"""Customers whose key names a process keeps (~600 B each): bounded, so memory does not grow with customers."""


def valid_customer_id(customer_id: str) -> bool:
    """Whether the id can be used in a key (checked by the API before anything is stored)."""
    return bool(_CUSTOMER_ID.match(customer_id))


@dataclass(frozen=True, slots=True)
class CustomerKeys:
    """The keys of one customer, all in one slot."""

    profile: str
    attrs: str
    entries: str
    timeline: str
    messages: str
    seen: str
    sends: str
    inbound: str
    """Provider ids of the inbound messages applied to the profile (a replayed webhook is applied once)."""
    claims: str
    """Ids of the messages claimed by work that was not committed yet."""
    inbox: str
    inbox_order: str

    def all(self) -> tuple[str, ...]:
        return (self.profile, self.attrs, self.entries, self.timeline, self.messages, self.seen,
                self.sends, self.inbound, self.claims, self.inbox, self.inbox_order)


@dataclass(frozen=True, slots=True)
class PartitionKeys:
    """The keys of one work partition, in one slot."""

    number: int
    work: str
    timers: str
    lease: str


class Keyspace:
    """Names keys for one workspace."""

    def __init__(self, workspace: str, partitions: int) -> None:
        self.workspace = workspace
        self.partitions = partitions
        self._partitions = {number: self._partition_keys(number) for number in range(partitions)}
        self.customer: Callable[[str], CustomerKeys] = functools.lru_cache(maxsize=CUSTOMER_KEYS_CACHED)(
            self._customer_keys)
        """The keys of a customer: asked for several times per work item (snapshot, claim, commit), named once
        while the customer is among the last few thousand seen."""

    def _customer_keys(self, customer_id: str) -> CustomerKeys:
        tag = f"oc:{{{self.workspace}:c:{customer_id}}}"
        return CustomerKeys(
            profile=f"{tag}:profile",
            attrs=f"{tag}:attrs",
            entries=f"{tag}:entries",
            timeline=f"{tag}:timeline",
            messages=f"{tag}:messages",
            seen=f"{tag}:seen",
            sends=f"{tag}:sends",
            inbound=f"{tag}:inbound",
            claims=f"{tag}:claims",
            inbox=f"{tag}:inbox",
            inbox_order=f"{tag}:inbox_order",
        )

    def partition_of(self, customer_id: str) -> int:
        """Stable across processes and restarts (crc32, not Python's salted hash)."""
        return zlib.crc32(customer_id.encode()) % self.partitions

    def partition(self, number: int) -> PartitionKeys:
        """Named once per partition (every event and timer asks); KeyError for a number out of range."""
        return self._partitions[number]

    def _partition_keys(self, number: int) -> PartitionKeys:
        tag = f"oc:{{{self.workspace}:p:{number}}}"
        return PartitionKeys(number=number, work=f"{tag}:work", timers=f"{tag}:timers", lease=f"{tag}:lease")

    def journey_sources(self, journey_id: str) -> str:
        return f"oc:{self.workspace}:journey:{journey_id}"

    @property
    def listened(self) -> str:
        return f"oc:{self.workspace}:listened"

    def journey_active(self, journey_id: str) -> str:
        return f"oc:{self.workspace}:active:{journey_id}"

    @property
    def paused(self) -> str:
        """The ids of the journeys paused (`omnicanal journeys pause|stop`)."""
        return f"oc:{self.workspace}:paused"

    def journey_stats(self, journey_id: str) -> str:
        return f"oc:{self.workspace}:stats:{journey_id}"

    def journey_stats_hour(self, journey_id: str, hour: int) -> str:
        """The journey's counters of one hour of journey time (`hour`: epoch seconds // 3600)."""
        return f"oc:{self.workspace}:stats:{journey_id}:h:{hour}"

    def segment_members(self, segment_id: str) -> str:
        """The customers in a segment: kept in line by the workers' batches (store/segments.py)."""
        return f"oc:{self.workspace}:segment:{segment_id}"

    @property
    def customers(self) -> str:
        return f"oc:{self.workspace}:customers"

    @property
    def workers(self) -> str:
        return f"oc:{self.workspace}:workers"

    @property
    def dlq(self) -> str:
        return f"oc:{self.workspace}:dlq"

    def rate(self, connector: str, second: int) -> str:
        return f"oc:{self.workspace}:rate:{connector}:{second}"

    def coupon(self, code: str) -> str:
        """A coupon issued with a message: whose, which message, until when, and who used it."""
        return f"oc:{self.workspace}:coupon:{code}"

    @property
    def coupon_secret(self) -> str:
        """The key coupon codes are derived with, when OMNICANAL_COUPON_SECRET does not give one."""
        return f"oc:{self.workspace}:secret:coupons"

    def idempotency(self, event_id: str) -> str:
        """The fingerprint of the body an idempotency key was first sent with (a reuse with another body: 409)."""
        return f"oc:{self.workspace}:idem:{event_id}"

    def provider_message(self, provider_id: str) -> str:
        return f"oc:{self.workspace}:provider:{provider_id}"

    def identity(self, kind: str, value: str) -> str:
        return f"oc:{self.workspace}:ident:{kind}:{value}"

    @property
    def outbox(self) -> str:
        return f"oc:{self.workspace}:outbox"

    @property
    def outbox_count(self) -> str:
        return f"{{{self.outbox}}}:count"

    def broadcast(self, broadcast_id: str) -> str:
        """A broadcast's record: journey, audience, status, walk cursor and progress counters. Broadcasts, their
        index and their walkers' leases share one hash tag (few keys: one slot is plenty)."""
        return f"oc:{{{self.workspace}:b}}:broadcast:{broadcast_id}"

    def broadcast_walker(self, broadcast_id: str) -> str:
        """The lease of the process walking a broadcast's audience."""
        return f"oc:{{{self.workspace}:b}}:walker:{broadcast_id}"

    @property
    def broadcasts(self) -> str:
        """Every broadcast id by creation time (journey time)."""
        return f"oc:{{{self.workspace}:b}}:broadcasts"

    @property
    def broadcasts_active(self) -> str:
        """The broadcasts whose audience is still to walk (scheduled or running)."""
        return f"oc:{{{self.workspace}:b}}:active"

    def segment_backfill(self, segment_id: str) -> str:
        """A segment's backfill: which definition was (or is being) evaluated for every customer, and how far.
        With the broadcasts' hash tag: the walks' records and leases live together."""
        return f"oc:{{{self.workspace}:b}}:backfill:{segment_id}"

    def segment_backfill_walker(self, segment_id: str) -> str:
        """The lease of the process walking a segment's backfill."""
        return f"oc:{{{self.workspace}:b}}:backfill_walker:{segment_id}"

    @property
    def segment_backfills(self) -> str:
        """The segments that have a backfill record (so that those no longer defined are dropped)."""
        return f"oc:{{{self.workspace}:b}}:backfills"

    @property
    def schedules(self) -> str:
        """Per scheduled journey, the journey time up to which its occurrences were handled."""
        return f"oc:{{{self.workspace}:b}}:schedules"

    def erasure_reply(self, erasure_id: str) -> str:
        """Where the worker leaves the summary of an erasure for the API request that asked for it."""
        return f"oc:{self.workspace}:erased:{erasure_id}"

    @property
    def clock(self) -> str:
        return f"oc:{self.workspace}:clock"

    @property
    def format(self) -> str:
        return f"oc:{self.workspace}:format"

    @property
    def api_keys(self) -> str:
        """The workspace's API keys (store/apikeys.py), one key: one slot, on a Cluster too."""
        return f"oc:{self.workspace}:apikeys"

    @property
    def api_keys_used(self) -> str:
        return f"oc:{self.workspace}:apikeys:used"

    def key_hits(self, subject: str, second: int) -> str:
        """Requests made with one API key (its fingerprint), or from one client address on an API without keys
        (`address:<address>`), in one second (OMNICANAL_RATE_LIMIT_PER_KEY)."""
        return f"oc:{self.workspace}:hits:{subject}:{second}"

    def seen_signature(self, key_id: str, signature: str) -> str:
        """A signed request of one API key, remembered while its timestamp is in the window (store/replays.py)."""
        return f"oc:{self.workspace}:signed:{key_id}:{signature}"

    @property
    def audit(self) -> str:
        return f"oc:{self.workspace}:audit"
