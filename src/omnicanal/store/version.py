"""The stored-format version of a workspace: written by the first process to start on it, checked by every
process after, so that none reads or writes a store laid out by an incompatible version of omnicanal."""

from __future__ import annotations

from omnicanal.errors import StoreFormatError
from omnicanal.store.connection import Redis, call, translated
from omnicanal.store.keys import Keyspace
from omnicanal.store.schema import FORMAT


async def check_format(client: Redis, keys: Keyspace) -> None:
    """Stamp an empty workspace with this version's stored format, or check the one it has; StoreFormatError
    names the format found. A workspace with customers or workers but no format was written before formats
    were recorded."""
    found = await call(client.get(keys.format))
    if found is None:
        async with translated(), client.pipeline(transaction=False) as pipe:
            pipe.exists(keys.customers)
            pipe.exists(keys.workers)
            if any(await pipe.execute()):
                raise StoreFormatError(None, FORMAT, keys.workspace)
        if await call(client.set(keys.format, FORMAT, nx=True)):
            return
        found = await call(client.get(keys.format))  # another process stamped it first
    if str(found) != str(FORMAT):
        raise StoreFormatError(str(found), FORMAT, keys.workspace)
