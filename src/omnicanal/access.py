"""Who a request comes from, and whether the API needs a key at all: shared by the API (api/app.py) and the
dashboard's gate (ui/session.py).

Two kinds of keys:
- static keys, OMNICANAL_API_KEYS: every scope, the process's workspace (actor `static` in the audit log);
- stored keys, `omnicanal keys create`: their scopes, their workspace, their id (store/apikeys.py), and for a key
  made with `--signing` its signing secret: each of its requests must then be signed too (api/signatures.py).

When keys are required: as soon as OMNICANAL_API_KEYS has one, or the workspace's key table holds one — revoked
keys included. So the API is open only while no key was ever created; revoking every key leaves it closed to all
but static keys (never open by surprise). Creating the first key closes an open API within CACHE_SECONDS.

A process serving several workspaces (OMNICANAL_WORKSPACES_DIR) has one ring per workspace (KeyRings): a stored
key's secret names its workspace and only that workspace's ring checks it; static keys belong to OMNICANAL_WORKSPACE;
and keys are always required, so that no request reaches a workspace without a key of it.

The key table is read at most once per CACHE_SECONDS per process, and only when a request needs it: a key created
or revoked takes effect on every process within that bound of being written, a slow Redis round trip included.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from aiohttp import web

from omnicanal.outbound import Network
from omnicanal.scopes import SCOPE_NAMES, Scope
from omnicanal.store.apikeys import ApiKeyStore, digest, key_id_of
from omnicanal.store.schema import StoredKey

CACHE_SECONDS = 1.0
"""How stale a process's copy of the key table may be: the bound on revocation (and creation) taking effect."""


STATIC = "static"
"""The actor of a request made with a key of OMNICANAL_API_KEYS."""
ANONYMOUS = "anonymous"
"""The actor of a request to an API that needs no key."""


@dataclass(frozen=True, slots=True)
class Caller:
    """Who made a request: `actor` is the stored key's id, STATIC or ANONYMOUS."""

    actor: str
    scopes: frozenset[Scope]
    workspace: str
    fingerprint: str | None
    """The SHA-256 of the key presented (None: no key): rate limits and dashboard sessions name keys by it."""
    signing_secret: str | None = field(default=None, repr=False)
    """The key's signing secret: set, each of its requests must be signed with it (signing.py)."""

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes


CALLER = web.RequestKey("caller", Caller)
WORKSPACE = web.RequestKey("workspace", str)
"""The workspace of the request's key (the process's own for static keys and an open API)."""


def presented_key(request: web.Request) -> str | None:
    """The key a request carries: `Authorization: Bearer <key>` (the scheme in any case, as RFC 9110 reads it:
    `bearer` is what some HTTP libraries send) or `X-API-Key: <key>`."""
    scheme, _, key = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer":
        return key.strip()
    return request.headers.get("X-API-Key")


def client_address(request: web.Request, proxies: Sequence[Network]) -> str:
    """The address a request counts by on an API without keys (the rate limit). The peer's own address, unless it
    is one of `proxies` (OMNICANAL_TRUSTED_PROXIES): then X-Forwarded-For is read from its right end — each proxy
    appends the address it got the request from — past every trusted proxy, to the first address that is not one.
    What lies left of it was written by the client and is never believed; without trusted proxies the header is
    ignored, since anyone can send it."""
    hops = [request.remote or "unknown"]
    if proxies:
        forwarded = ",".join(request.headers.getall("X-Forwarded-For", ()))
        hops += reversed([hop.strip() for hop in forwarded.split(",") if hop.strip()])
    for hop in hops:
        if not _trusted(hop, proxies):
            return hop
    return hops[-1]  # proxies all the way: the leftmost the last of them saw


def _trusted(hop: str, proxies: Sequence[Network]) -> bool:
    try:
        address = ipaddress.ip_address(hop)
    except ValueError:
        return False
    return any(address in network for network in proxies)


class KeyRing:
    """The keys one API process accepts for its workspace: the static ones, and the stored ones as last read."""

    def __init__(self, static_keys: list[str], workspace: str, store: ApiKeyStore,
                 clock: Callable[[], float] = time.monotonic, always_required: bool = False) -> None:
        """`always_required`: a key is needed even while the workspace has none (a process of several
        workspaces: an open one would be open to every other workspace's callers)."""
        self._always_required = always_required
        self._static = {digest(key): key.encode() for key in static_keys}
        self._workspace = workspace
        self._store = store
        self._clock = clock
        self._table: dict[str, StoredKey] = {}
        self._read_at = -CACHE_SECONDS
        self._reading = asyncio.Lock()
        self._used: dict[str, float] = {}
        """Keys used since the table was last read, and when: written with the next read (`keys list`)."""

    async def _keys(self) -> dict[str, StoredKey]:
        if self._clock() - self._read_at < CACHE_SECONDS:
            return self._table
        async with self._reading:  # one read for all the requests that find the copy stale
            if self._clock() - self._read_at >= CACHE_SECONDS:
                used, self._used = self._used, {}
                # The copy is as old as the moment the read was asked for, not the moment it came back: a revocation
                # written while the read was on its way may be missing from it, and must still be read again within
                # CACHE_SECONDS of being written, however long the round trip took.
                asked = self._clock()
                try:
                    self._table = await self._store.table(used)
                except BaseException:
                    self._used = {**used, **self._used}
                    raise
                self._read_at = asked
        return self._table

    async def required(self) -> bool:
        """Whether requests need a key (see the module's docstring)."""
        return self._always_required or bool(self._static) or bool(await self._keys())

    async def caller(self, given: str | None) -> Caller | None:
        """Who a request presenting `given` is; None when a key is required and `given` is missing or not valid
        here. An API that needs no key takes every request as ANONYMOUS."""
        if not await self.required():
            return Caller(ANONYMOUS, frozenset(Scope), self._workspace, None)
        if given is None:
            return None
        # Header bytes that are not UTF-8 arrive as surrogates: encoded back as they came, they match no key.
        fingerprint = digest(given)
        static = self._static.get(fingerprint)
        if static is not None and hmac.compare_digest(static, given.encode("utf-8", "surrogateescape")):
            return Caller(STATIC, frozenset(Scope), self._workspace, fingerprint)
        named = key_id_of(given)
        if named is None or named[0] != self._workspace:
            return None
        key = (await self._keys()).get(named[1])
        if key is None or key.revoked_at is not None or not hmac.compare_digest(key.digest, fingerprint):
            return None
        self._used[key.id] = time.time()
        return _caller_of(key)

    async def holder(self, fingerprint: str) -> Caller | None:
        """The caller whose key has this fingerprint (a dashboard session names its key so), if still valid."""
        if any(hmac.compare_digest(fingerprint, known) for known in self._static):
            return Caller(STATIC, frozenset(Scope), self._workspace, fingerprint)
        for key in (await self._keys()).values():
            if key.revoked_at is None and hmac.compare_digest(key.digest, fingerprint):
                return _caller_of(key)
        return None


def _caller_of(key: StoredKey) -> Caller:
    return Caller(key.id, frozenset(Scope(scope) for scope in key.scopes if scope in SCOPE_NAMES), key.workspace,
                  key.digest, key.signing_secret)


class KeyRings:
    """The keys of every workspace a process serves, with KeyRing's questions: a key is checked by the ring of the
    workspace it belongs to — static keys (and requests without a key) by the home workspace's (OMNICANAL_WORKSPACE),
    a stored key by the one its secret names — so a caller is always of the workspace that knows its key."""

    def __init__(self, rings: Mapping[str, KeyRing], home: str) -> None:
        self._rings = dict(rings)
        self._home = self._rings.get(home)

    async def required(self) -> bool:
        return self._home is None or await self._home.required()

    async def caller(self, given: str | None) -> Caller | None:
        """As KeyRing.caller; None for a key of a workspace this process does not serve."""
        found = await self._home.caller(given) if self._home is not None else None
        named = key_id_of(given) if found is None and given is not None else None
        ring = self._rings.get(named[0]) if named is not None else None
        if ring is None or ring is self._home:
            return found
        return await ring.caller(given)

    async def holder(self, fingerprint: str) -> Caller | None:
        for ring in self._rings.values():
            if (caller := await ring.holder(fingerprint)) is not None:
                return caller
        return None
