"""Writing back what a batch of work changed for one customer: one Lua script (lua/commit.lua) on the
customer's slot, so a crash leaves either all of an event's effects or none of them (sends excepted: those are
guarded by their claim, see sends.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omnicanal.codec import encode
from omnicanal.store import schema
from omnicanal.store.keys import CustomerKeys
from omnicanal.store.scripts import load, section
from omnicanal.store.transport import Writes

COMMIT = load("commit")


@dataclass(slots=True)
class Commit:
    """Everything one batch of work changes for one customer, written atomically."""

    seen: dict[str, float] = field(default_factory=dict)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    instances: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Instances to write, under their fields' full names (journey/state.Instance.to_dict)."""
    ended: set[str] = field(default_factory=set)
    entries: dict[str, float] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)
    profile: dict[str, Any] = field(default_factory=dict)
    """Profile fields the work set (the customer's touchpoints)."""
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Records of messages sent (their claim was written before the provider call); each one's status history
    merges with the stored one, so a receipt recorded meanwhile is kept."""
    settled: set[str] = field(default_factory=set)
    """Claims of uncommitted work no replay will ask for any more (journey/sending.py settled_claims)."""
    applied: str | None = None
    """The last work entry whose effects this commit holds (not a change by itself: see __bool__)."""
    read: str | None = None
    """The last applied entry the snapshot this commit was computed from read: the commit is refused (StaleWork)
    if the stored one is another by then — another worker applied the customer's work meanwhile."""

    def __bool__(self) -> bool:
        return bool(self.seen or self.timeline or self.instances or self.ended or self.entries or self.attributes
                    or self.profile or self.messages or self.settled)


def commit_keys(k: CustomerKeys) -> list[str]:
    return [k.profile, k.attrs, k.entries, k.timeline, k.seen, k.messages, k.claims]


def commit_args(commit: Commit, now: float, seen_since: float, new: bool, timeline_limit: int) -> list[Any]:
    """The script's arguments (see lua/commit.lua)."""
    kept = {name: encode(value) for name, value in commit.attributes.items() if value is not None}
    messages: list[Any] = [len(commit.messages)]
    for mid, record in commit.messages.items():
        stored = schema.encode_message(record)
        messages += [mid, stored.record, len(stored.history), *stored.flat_history()]
    return [
        repr(now), "1" if new else "0", repr(seen_since), timeline_limit, commit.applied or "", commit.read or "",
        *section([x for eid, at in commit.seen.items() for x in (eid, repr(at))], 2),
        *section([encode(entry) for entry in commit.timeline], 1),
        *section([x for iid, i in commit.instances.items() for x in (iid, schema.encode_instance(i))], 2),
        *section(list(commit.ended), 1),
        *section([x for jid, at in commit.entries.items() for x in (jid, repr(at))], 2),
        *section([x for pair in kept.items() for x in pair], 2),
        *section([name for name, value in commit.attributes.items() if value is None], 1),
        *section([x for name, value in commit.profile.items()
                  for x in (name, schema.encode_profile_field(name, value))], 2),
        *messages,
        *section(list(commit.settled), 1),
    ]


def queue_commit(writes: Writes, k: CustomerKeys, commit: Commit, now: float, seen_since: float, new: bool,
                 timeline_limit: int) -> None:
    """Queue a Commit among a batch's writes: a `new` customer gets its creation time; applied event ids older
    than `seen_since` (real time) are forgotten."""
    writes.script(COMMIT, commit_keys(k), commit_args(commit, now, seen_since, new, timeline_limit))
