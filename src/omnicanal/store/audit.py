"""The audit log: admin actions, append-only, newest kept (a Redis stream trimmed to about schema.AUDIT_KEPT).

Each entry says who (an API key's id, `static`, `anonymous` or `cli:<user>`), what (an action such as `journey.pause`
or `keys.revoke`), on what (a journey, a key, a customer) and when (the entry id: Redis' own clock, in ms). Nothing
edits or deletes an entry; the oldest go when the stream is over its length.

Actions recorded: `keys.create`, `keys.revoke`, `journey.pause|resume|stop|drain`, `dlq.retry`, `dlq.drop`,
`customer.consent` (consents written through the API), and what other modules add with `record`.
"""

from __future__ import annotations

from typing import Any

from omnicanal.codec import encode, loads
from omnicanal.store.connection import FieldMap, Redis, call
from omnicanal.store.keys import Keyspace
from omnicanal.store.schema import AUDIT_ACTION, AUDIT_ACTOR, AUDIT_DETAILS, AUDIT_KEPT, AUDIT_TARGET


class AuditLog:
    def __init__(self, redis: Redis, keys: Keyspace) -> None:
        self._redis = redis
        self._key = keys.audit

    async def record(self, actor: str, action: str, target: str, details: dict[str, Any] | None = None) -> str:
        """Append one entry; returns its id. Call it after the action is done: an entry says it happened."""
        fields: FieldMap = {AUDIT_ACTOR: actor, AUDIT_ACTION: action, AUDIT_TARGET: target,
                  AUDIT_DETAILS: encode(details or {})}
        return str(await call(self._redis.xadd(self._key, fields, maxlen=AUDIT_KEPT, approximate=True)))

    async def read(self, limit: int, since: float | None = None, before: str | None = None) -> list[dict[str, Any]]:
        """Up to `limit` entries, newest first: from `since` (epoch seconds, included) on, older than the entry
        `before` (the last id of the previous page)."""
        newest = f"({before}" if before else "+"
        oldest = str(int(since * 1000)) if since is not None and since > 0 else "-"  # before 1970: all of it
        raw = await call(self._redis.xrevrange(self._key, newest, oldest, count=limit))
        return [{"id": entry_id, "at": int(entry_id.split("-")[0]) / 1000, "actor": fields[AUDIT_ACTOR],
                 "action": fields[AUDIT_ACTION], "target": fields[AUDIT_TARGET],
                 "details": loads(fields[AUDIT_DETAILS])} for entry_id, fields in raw]
