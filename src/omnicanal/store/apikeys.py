"""Stored API keys of a workspace (`omnicanal keys create|list|revoke`): their secrets' hashes, scopes and names.

A secret is `ock.<workspace>.<key id>.<random>`: 256 random bits, made here and shown once. It is stored as its
SHA-256 only. A fast hash is enough because the secret is random, not a password someone chose: there is no
dictionary to try, and 2^256 guesses stay out of reach however fast each one is — a slow KDF (bcrypt, scrypt)
would only cost every request its time. The key id and workspace in the secret let a request find its key with one
look-up, and a scanner of leaked secrets recognise it by its prefix.

A key made with `--signing` also holds a signing secret (signing.py), stored as it is: an HMAC is checked with the
secret itself. Whoever reads Redis can then sign for that key — as they could write events into Redis directly.

Revoked keys stay in the table, marked: the audit log names keys by id, `keys list --all` shows what an id was,
and a table that once had a key never reads as empty (access.py: the API stays closed).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import replace

from omnicanal.signing import new_secret
from omnicanal.store.connection import Redis, call, decode_map, translated
from omnicanal.store.keys import Keyspace
from omnicanal.store.schema import StoredKey, decode_key, encode_key

SECRET_PREFIX = "ock"


def digest(secret: str | bytes) -> str:
    """The SHA-256 of a key as a request presents it (hex): what is stored, and what a session cookie names."""
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape") if isinstance(secret, str) else secret
                          ).hexdigest()


def key_id_of(secret: str) -> tuple[str, str] | None:
    """(workspace, key id) a secret names, or None when it is not shaped like one of ours."""
    parts = secret.split(".")
    if len(parts) != 4 or parts[0] != SECRET_PREFIX:
        return None
    return parts[1], parts[2]


class ApiKeyStore:
    """The API keys of one workspace (Keyspace.api_keys: one hash, one slot)."""

    def __init__(self, redis: Redis, keys: Keyspace) -> None:
        self._redis = redis
        self._keys = keys

    async def create(self, name: str, scopes: Iterable[str], now: float, signing: bool = False
                     ) -> tuple[StoredKey, str]:
        """A new key and its secret (the only time the secret exists outside the caller's hands); `signing`: its
        requests must be signed, with the key's new `signing_secret` (signing.py)."""
        key_id = secrets.token_hex(8)
        secret = f"{SECRET_PREFIX}.{self._keys.workspace}.{key_id}.{secrets.token_urlsafe(32)}"
        key = StoredKey(key_id, digest(secret), name, tuple(sorted(set(scopes))), self._keys.workspace, now,
                        signing_secret=new_secret() if signing else None)
        await call(self._redis.hset(self._keys.api_keys, key_id, encode_key(key)))
        return key, secret

    async def all(self) -> list[StoredKey]:
        """Every key, revoked ones included, with when each was last used, oldest first."""
        async with translated(), self._redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self._keys.api_keys)
            pipe.hgetall(self._keys.api_keys_used)
            stored, used = await pipe.execute()
        used = decode_map(used)
        keys = [decode_key(key_id, text, used.get(key_id)) for key_id, text in decode_map(stored).items()]
        return sorted(keys, key=lambda key: key.created_at)

    async def revoke(self, key_id: str, now: float) -> StoredKey | None:
        """The key, revoked now (or when it was, if it already was); None when there is no such key."""
        stored = await call(self._redis.hget(self._keys.api_keys, key_id))
        if stored is None:
            return None
        key = decode_key(key_id, stored)
        if key.revoked_at is None:
            key = replace(key, revoked_at=now)
            await call(self._redis.hset(self._keys.api_keys, key_id, encode_key(key)))
        return key

    async def table(self, used: Mapping[str, float]) -> dict[str, StoredKey]:
        """Every key by id (what a process caches), writing in the same round trip when the keys in `used` were
        last used."""
        async with translated(), self._redis.pipeline(transaction=False) as pipe:
            if used:
                pipe.hset(self._keys.api_keys_used, mapping={key_id: repr(at) for key_id, at in used.items()})
            pipe.hgetall(self._keys.api_keys)
            stored = (await pipe.execute())[-1]
        return {key_id: decode_key(key_id, text) for key_id, text in decode_map(stored).items()}
