"""Dashboard pages under a large store: p50/p99 of the customer page and the journey page with N customers.

Fills Redis database 8 (flushed first; `--db` to change) straight through pipelines with N customers as the
engine stores them — profile with a running abandoned-cart instance waiting for its order, attributes, a
timeline of a few entries (the cart event, the journey start, a push with its message record, page views), an
e-mail identifier, the journey's active set, one timer each — plus one customer whose timeline is full
(OMNICANAL_TIMELINE_LIMIT entries). Then serves the real app (API role: no workers) on 127.0.0.1 and asks each
page `--requests` times, one request at a time, printing one table in milliseconds.

Run: .venv/bin/python bench/ui.py                      # 10^5 customers (~1 minute to fill)
     .venv/bin/python bench/ui.py --customers 1000000  # 10^6 (~10 minutes, ~3 GB of Redis memory)
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web

from omnicanal.api.app import create_app
from omnicanal.codec import dumps
from omnicanal.config import Settings
from omnicanal.engine.runtime import Role, Runtime
from omnicanal.journey.model import Journey
from omnicanal.store.keys import Keyspace
from omnicanal.store.schema import encode_instance, message_fields, timer_member

REPO = Path(__file__).resolve().parent.parent
BATCH = 500
JOURNEY = "abandoned_cart"
HEAVY = "heavy-customer"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, round(q / 100 * len(ordered)))) - 1]


def customer_id(n: int) -> str:
    return f"c{n:07d}"


def _entries(cid: str, at: float, count: int) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """A timeline as the engine writes it (oldest first), and the push's message record."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(at))
    message_id = f"{cid}-m1"
    entries = [
        {"kind": "event", "at": stamp, "name": "cart_abandoned", "event_id": f"{cid}-e1", "occurred_at": stamp,
         "properties": {"items": [{"sku": "SKU-1", "name": "Sneakers", "price": 89.0}], "total": 89.0}},
        {"kind": "journey", "at": stamp, "journey": JOURNEY, "version": "v", "status": "started"},
        {"kind": "message", "at": stamp, "journey": JOURNEY, "step": "push_discount", "template": "cart_discount",
         "purpose": "marketing", "status": "sent", "channel": "push", "message_id": message_id,
         "to": "device-token-" + cid, "locale": "fr",
         "content": {"title": "Léa, votre panier vous attend", "body": "-10 % sur Sneakers, en ligne ou en boutique.",
                     "data": {"url": "https://shop.example/cart"}}},
    ]
    entries += [{"kind": "event", "at": stamp, "name": "page_viewed", "event_id": f"{cid}-p{n}", "occurred_at": stamp,
                 "properties": {"url": f"https://shop.example/p/{n}"}} for n in range(max(0, count - 3))]
    record = {"status": "sent", "journey": JOURNEY, "step": "push_discount", "channel": "push",
              "history": [{"status": "sending", "at": at}, {"status": "sent", "at": at + 1}]}
    return [dumps(entry) for entry in entries[:count]], {message_id: record}


async def fill(redis: aioredis.Redis, keys: Keyspace, journey: Journey, customers: int, entries: int,
               limit: int, now: float) -> None:
    wait_order = journey.step_index("wait_order")

    def queue(pipe: aioredis.client.Pipeline, cid: str, count: int) -> None:
        k = keys.customer(cid)
        timeline, messages = _entries(cid, now - 3600, count)
        instance = {"event_at": 0, "journey": JOURNEY, "version": journey.version, "started_at": now - 3600,
                    "position": wait_order, "seq": 5, "vars": {"skus": ["SKU-1"], "total": 89.0},
                    "waiting": {"kind": "wait_for", "token": f"{cid}-t", "until": now + 47 * 3600},
                    "messages": list(messages)}
        email = f"{cid}@example.com"
        pipe.hset(k.profile, mapping={
            "locale": "fr", "timezone": "Europe/Paris", "created_at": repr(now - 86400), "updated_at": repr(now),
            "addresses": dumps({"email": email, "sms": "+33612345678", "push": [f"device-token-{cid}"]}),
            "consents": dumps({"sms": {"marketing": {"granted": True, "source": "api", "at": "2026-11-01T10:00:00Z"}}}),
            f"i:{cid}-i1": encode_instance(instance),
        })
        pipe.hset(k.attrs, mapping={"first_name": dumps("Léa"), "tier": dumps("gold")})
        pipe.rpush(k.timeline, *timeline)
        pipe.hset(k.messages, mapping=message_fields(messages))
        pipe.set(keys.identity("email", email), cid)
        pipe.zadd(keys.partition(keys.partition_of(cid)).timers,
                  {timer_member(cid, f"{cid}-i1", f"{cid}-t"): now + 47 * 3600})

    for start in range(0, customers, BATCH):
        ids = [customer_id(n) for n in range(start, min(start + BATCH, customers))]
        async with redis.pipeline(transaction=False) as pipe:
            for cid in ids:
                queue(pipe, cid, entries)
            pipe.sadd(keys.customers, *ids)
            pipe.sadd(keys.journey_active(JOURNEY), *ids)
            await pipe.execute()
    async with redis.pipeline(transaction=False) as pipe:
        queue(pipe, HEAVY, limit)
        pipe.hset(keys.journey_stats(JOURNEY), mapping={
            "started": customers, "step:remember_cart:entered": customers, "step:push_discount:entered": customers,
            "step:push_discount:sent": customers, "channel:push:sent": customers,
            "step:wait_order:entered": customers, "step:wait_order:waiting": customers})
        await pipe.execute()


async def timed(session: aiohttp.ClientSession, urls: Callable[[], str], count: int) -> list[float]:
    """Milliseconds of `count` requests, one at a time, each asking urls() for its URL; every answer must be
    200."""
    times = []
    for _ in range(count):
        url = urls()
        began = time.perf_counter()
        async with session.get(url, allow_redirects=False) as response:
            await response.read()
            assert response.status == 200, (url, response.status)
        times.append((time.perf_counter() - began) * 1000)
    return times


async def main(args: argparse.Namespace) -> None:
    url = f"redis://127.0.0.1:6379/{args.db}"
    redis = aioredis.Redis.from_url(url, socket_timeout=120)  # redis-py waits 5 s by default: too short for a
    # pipeline of 500 customers while the shared machine is busy
    await redis.flushdb(asynchronous=True)
    settings = Settings(redis_url=url, journeys_dir=REPO / "journeys", templates_dir=REPO / "templates",
                        reload_interval=0, log_level="warning")
    runtime = await Runtime.start(settings, Role.API)
    journey = runtime.registry.current[JOURNEY]
    began = time.perf_counter()
    await fill(redis, runtime.keys, journey, args.customers, args.entries, settings.timeline_limit,
               runtime.clock.now())
    filled = time.perf_counter() - began
    memory = (await redis.info("memory"))["used_memory"]
    runner = web.AppRunner(create_app(runtime))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    base = f"http://127.0.0.1:{port}"
    pick = random.Random(7)
    pages: list[tuple[str, Callable[[], str]]] = [
        ("customer page (random customer)",
         lambda: f"{base}/ui/customers/{customer_id(pick.randrange(args.customers))}"),
        (f"customer page ({settings.timeline_limit}-entry timeline)", lambda: f"{base}/ui/customers/{HEAVY}"),
        ("journey page", lambda: f"{base}/ui/journeys/{JOURNEY}"),
        ("journey counts (polled)", lambda: f"{base}/ui/journeys/{JOURNEY}/counts.json"),
        ("journeys list", lambda: f"{base}/ui/journeys"),
        ("operations page", lambda: f"{base}/ui/operations"),
    ]
    rows = []
    try:
        async with aiohttp.ClientSession() as session:
            for name, urls in pages:
                await timed(session, urls, 20)  # warm-up: templates compiled, connections open
                times = await timed(session, urls, args.requests)
                rows.append((name, percentile(times, 50), percentile(times, 99), max(times)))
    finally:
        await runner.cleanup()
        await runtime.stop()
        if not args.keep:  # in the background: flushing gigabytes takes longer than a client waits
            await redis.flushdb(asynchronous=True)
        await redis.aclose()
    print(f"\n{args.customers:,} customers ({args.entries} timeline entries each), filled in {filled:.0f} s, "
          f"Redis used_memory {memory / 2**20:,.0f} MiB; {args.requests} requests per page, one at a time\n")
    print(f"{'page':<42} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, p50, p99, worst in rows:
        print(f"{name:<42} {p50:8.1f} {p99:8.1f} {worst:8.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--entries", type=int, default=8, help="timeline entries per customer (default 8)")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--db", type=int, default=8, help="Redis database, flushed before and after (default 8)")
    parser.add_argument("--keep", action="store_true", help="leave the data in Redis afterwards")
    asyncio.run(main(parser.parse_args()))
