"""The abandoned-cart journey with arq: async tasks, `_defer_by` for the waits, a Redis hash per customer.

    python bench/peers/arq_journey.py worker                  # one worker process (run two for two)
    python bench/peers/arq_journey.py web --port 8720         # the shop's event endpoint: POST /v1/events[/batch]
    python bench/peers/arq_journey.py profiles --prefix c --count 1000
    python bench/peers/arq_journey.py steps --prefix c --count 1000 --orders-every 4
    python bench/peers/arq_journey.py park --prefix c --count 1000
    python bench/peers/arq_journey.py burst --prefix c --count 1000 --at 1795000000.0
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any

import aiohttp
import shop
from aiohttp import web
from arq import create_pool
from arq.connections import RedisSettings
from arq.worker import run_worker
from redis.asyncio import Redis

MAX_JOBS = 100  # arq's default is 10; the tasks wait on Redis and HTTP, so a team raises it


async def send(ctx: dict[str, Any], customer_id: str, template: str, channels: list[str],
               profile: dict[str, str], scope: dict[str, Any]) -> bool:
    chosen = shop.pick(ctx["templates"], template, channels, profile, scope)
    if chosen is None:
        return False
    channel, to, content = chosen
    session: aiohttp.ClientSession = ctx["http"]
    async with session.post(shop.PROVIDER_URL, data=shop.message_body(customer_id, template, channel, to, content),
                            headers={"Content-Type": "application/json"}) as response:
        response.raise_for_status()
    return True


async def thank(ctx: dict[str, Any], customer_id: str, order: dict[str, Any]) -> None:
    redis: Redis = ctx["db"]
    if not await redis.hsetnx(shop.cart_key(customer_id), "thanked", "1"):
        return  # the other task got there first
    profile = await redis.hgetall(shop.customer_key(customer_id))
    await redis.hset(shop.cart_key(customer_id), "state", "done")
    scope = {"customer": shop.customer_scope(customer_id, profile), "event": {"properties": order}}
    await send(ctx, customer_id, "order_thanks", ["whatsapp", "sms", "email"], profile, scope)


async def cart_abandoned(ctx: dict[str, Any], customer_id: str, cart: dict[str, Any]) -> None:
    redis: Redis = ctx["db"]
    key = shop.cart_key(customer_id)
    if cart["total"] < 20 or await redis.hget(key, "state") in shop.WAITING:
        return
    token = shop.new_token()
    await redis.hset(key, mapping={"state": "waiting_first", "token": token, "cart": json.dumps(cart)})
    await redis.hset(shop.customer_key(customer_id), "last_cart_total", cart["total"])
    order = await redis.hget(key, "order")  # the order may have been handled before the cart
    if order and shop.bought_from_cart(json.loads(order), cart):
        await thank(ctx, customer_id, json.loads(order))
        return
    await ctx["redis"].enqueue_job("first_wait_over", customer_id, token, _defer_by=shop.WAIT_FIRST)


async def first_wait_over(ctx: dict[str, Any], customer_id: str, token: str) -> None:
    redis: Redis = ctx["db"]
    state = await redis.hgetall(shop.cart_key(customer_id))
    if state.get("state") != "waiting_first" or state.get("token") != token:
        return
    cart = json.loads(state["cart"])
    profile = await redis.hgetall(shop.customer_key(customer_id))
    scope = {"customer": shop.customer_scope(customer_id, profile), "event": {"properties": cart},
             "data": shop.discount(cart)}
    await send(ctx, customer_id, "cart_discount", ["push", "sms", "email"], profile, scope)
    token = shop.new_token()
    await redis.hset(shop.cart_key(customer_id), mapping={"state": "waiting_order", "token": token})
    await ctx["redis"].enqueue_job("order_wait_over", customer_id, token, _defer_by=shop.WAIT_ORDER)


async def order_wait_over(ctx: dict[str, Any], customer_id: str, token: str) -> None:
    redis: Redis = ctx["db"]
    state = await redis.hgetall(shop.cart_key(customer_id))
    if state.get("state") != "waiting_order" or state.get("token") != token:
        return
    await redis.hset(shop.cart_key(customer_id), "state", "done")
    profile = await redis.hgetall(shop.customer_key(customer_id))
    scope = {"customer": shop.customer_scope(customer_id, profile), "event": {"properties": json.loads(state["cart"])}}
    await send(ctx, customer_id, "cart_reminder", ["email"], profile, scope)


async def order_placed(ctx: dict[str, Any], customer_id: str, order: dict[str, Any]) -> None:
    redis: Redis = ctx["db"]
    key = shop.cart_key(customer_id)
    await redis.hset(key, "order", json.dumps(order))
    state = await redis.hgetall(key)
    if state.get("state") in shop.WAITING and shop.bought_from_cart(order, json.loads(state["cart"])):
        await thank(ctx, customer_id, order)


async def startup(ctx: dict[str, Any]) -> None:
    ctx["db"] = Redis.from_url(shop.REDIS_URL, decode_responses=True)  # arq's own connection speaks bytes
    ctx["http"] = aiohttp.ClientSession()
    ctx["templates"] = shop.Templates()


async def shutdown(ctx: dict[str, Any]) -> None:
    await ctx["http"].close()
    await ctx["db"].aclose()


def redis_settings() -> RedisSettings:
    return RedisSettings.from_dsn(shop.REDIS_URL)


class WorkerSettings:
    functions = (cart_abandoned, first_wait_over, order_wait_over, order_placed)
    on_startup = startup
    on_shutdown = shutdown
    redis_settings = redis_settings()
    max_jobs = MAX_JOBS
    keep_result = 0
    handle_signals = True


TASKS = {"cart_abandoned": "cart_abandoned", "order_placed": "order_placed"}


def web_app() -> web.Application:
    """The shop's event endpoint: each event becomes a task."""

    async def on_startup(app: web.Application) -> None:
        app["arq"] = await create_pool(redis_settings())

    async def on_cleanup(app: web.Application) -> None:
        await app["arq"].aclose()

    async def enqueue(app: web.Application, event: dict[str, Any]) -> str:
        job = await app["arq"].enqueue_job(TASKS[event["name"]], event["customer_id"], event.get("properties", {}))
        return job.job_id if job else ""

    async def post_event(request: web.Request) -> web.Response:
        event = await request.json()
        return web.json_response({"id": await enqueue(request.app, event), "status": "accepted"}, status=202)

    async def post_batch(request: web.Request) -> web.Response:
        body = await request.json()
        job_ids = await asyncio.gather(*(enqueue(request.app, event) for event in body["events"]))
        return web.json_response({"accepted": len(job_ids), "ids": job_ids}, status=202)

    async def ready(request: web.Request) -> web.Response:
        return web.json_response({"status": "ready"})

    app = web.Application()
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    app.router.add_post("/v1/events", post_event)
    app.router.add_post("/v1/events/batch", post_batch)
    app.router.add_get("/readyz", ready)
    return app


async def profiles(prefix: str, count: int) -> None:
    pool = await create_pool(redis_settings())
    for start in range(0, count, 1000):
        async with pool.pipeline(transaction=False) as pipe:
            for i in range(start, min(start + 1000, count)):
                pipe.hset(shop.customer_key(f"{prefix}{i}"), mapping=shop.profile_fields(i, f"{prefix}{i}"))
            await pipe.execute()
    await pool.aclose()


async def steps(prefix: str, count: int, orders_every: int) -> None:
    """N carts; every `orders_every`-th customer also orders at once (before the first wait is over)."""
    pool = await create_pool(redis_settings())
    for start in range(0, count, 500):
        jobs = []
        for i in range(start, min(start + 500, count)):
            jobs.append(pool.enqueue_job("cart_abandoned", f"{prefix}{i}", shop.cart(f"{prefix}{i}")))
            if orders_every and i % orders_every == 0:
                jobs.append(pool.enqueue_job("order_placed", f"{prefix}{i}", shop.order(f"{prefix}{i}")))
        await asyncio.gather(*jobs)
    await pool.aclose()


async def park(prefix: str, count: int) -> None:
    await steps(prefix, count, 0)


async def burst(prefix: str, count: int, at: float) -> None:
    """N customers in their first wait, all due at `at` (epoch seconds)."""
    pool = await create_pool(redis_settings())
    due = datetime.fromtimestamp(at, UTC)
    for start in range(0, count, 1000):
        batch = range(start, min(start + 1000, count))
        async with pool.pipeline(transaction=False) as pipe:
            for i in batch:
                pipe.hset(shop.cart_key(f"{prefix}{i}"), mapping={"state": "waiting_first", "token": f"t{i}",
                                                                     "cart": json.dumps(shop.cart(f"{prefix}{i}"))})
            await pipe.execute()
        await asyncio.gather(*(pool.enqueue_job("first_wait_over", f"{prefix}{i}", f"t{i}", _defer_until=due)
                               for i in batch))
    await pool.aclose()


def main() -> None:
    parser = shop.arguments(__doc__.splitlines()[0], default_port=8720)
    args = parser.parse_args()
    started = time.time()
    if args.command == "worker":
        run_worker(WorkerSettings)  # type: ignore[arg-type]
    elif args.command == "web":
        web.run_app(web_app(), host="127.0.0.1", port=args.port, access_log=None, print=None)
    elif args.command == "profiles":
        asyncio.run(profiles(args.prefix, args.count))
    elif args.command == "steps":
        asyncio.run(steps(args.prefix, args.count, args.orders_every))
    elif args.command == "park":
        asyncio.run(park(args.prefix, args.count))
    else:
        asyncio.run(burst(args.prefix, args.count, args.at))
    print(json.dumps({"seconds": time.time() - started}))


if __name__ == "__main__":
    main()
