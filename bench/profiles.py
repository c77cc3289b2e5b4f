"""Bench set-up: customer profiles written through the engine's own store (omnicanal.store.customers).

`PUT /v1/customers/{id}` answers with the whole profile view and runs at ~1,200/s here: too slow to set up 10^5
customers inside the time budget, so set-up writes profiles with `CustomerStore.upsert_profile`, the same call
the API handler makes. Two of these run side by side (one per core). Set-up is never measured.

    python bench/profiles.py --db 14 --workspace bench --prefix lat- --start 0 --count 30000
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from omnicanal.store.customers import CustomerStore
from omnicanal.store.keys import Keyspace
from omnicanal.store.transport import open_transport

CONCURRENCY = 64  # below redis-py's 100-connection pool


def profile(index: int, customer_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fields and attributes of bench customer `index`: reachable on every channel of the reference journey."""
    phone = f"+3361{index % 100_000_000:08d}"
    fields = {"locale": "en", "addresses": {"push": [f"device-{customer_id}"], "whatsapp": phone, "sms": phone,
                                             "email": f"{customer_id}@example.com"}}
    return fields, {"first_name": "Lea"}


async def create(db: int, workspace: str, partitions: int, prefix: str, start: int, count: int) -> None:
    transport = open_transport(f"redis://127.0.0.1:6379/{db}")
    store = CustomerStore(transport, Keyspace(workspace, partitions))
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(index: int) -> None:
        customer_id = f"{prefix}{index}"
        fields, attributes = profile(index, customer_id)
        async with limit:
            await store.upsert_profile(customer_id, fields, attributes, time.time())

    try:
        for chunk in range(start, start + count, 5000):
            await asyncio.gather(*(one(i) for i in range(chunk, min(chunk + 5000, start + count))))
    finally:
        await transport.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=int, required=True)
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--count", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(create(args.db, args.workspace, args.partitions, args.prefix, args.start, args.count))


if __name__ == "__main__":
    main()
