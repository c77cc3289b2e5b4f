"""The abandoned-cart journey with Celery: tasks with `countdown` for the waits, Redis broker, a hash per customer.

    python bench/peers/celery_journey.py worker --concurrency 2   # prefork, one process per core
    python bench/peers/celery_journey.py web --port 8721          # the shop's event endpoint
    python bench/peers/celery_journey.py profiles|steps|park|burst --prefix c --count 1000 [--at EPOCH]

The broker's visibility timeout is raised above the longest countdown, as Celery's documentation asks for
countdowns longer than an hour (otherwise a waiting task is delivered a second time).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import redis
import requests
import shop
from aiohttp import web
from celery import Celery

app = Celery("shop", broker=shop.REDIS_URL)
app.conf.update(
    task_ignore_result=True,
    broker_transport_options={"visibility_timeout": 4 * 86400},
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)
db = redis.Redis.from_url(shop.REDIS_URL, decode_responses=True)
http = requests.Session()
_templates: shop.Templates | None = None


def templates() -> shop.Templates:
    global _templates
    if _templates is None:
        _templates = shop.Templates()
    return _templates


def send(customer_id: str, template: str, channels: list[str], profile: dict[str, str],
         scope: dict[str, Any]) -> bool:
    chosen = shop.pick(templates(), template, channels, profile, scope)
    if chosen is None:
        return False
    channel, to, content = chosen
    response = http.post(shop.PROVIDER_URL, data=shop.message_body(customer_id, template, channel, to, content),
                         headers={"Content-Type": "application/json"}, timeout=10)
    response.raise_for_status()
    return True


def thank(customer_id: str, order: dict[str, Any]) -> None:
    if not db.hsetnx(shop.cart_key(customer_id), "thanked", "1"):
        return
    profile = db.hgetall(shop.customer_key(customer_id))
    db.hset(shop.cart_key(customer_id), "state", "done")
    scope = {"customer": shop.customer_scope(customer_id, profile), "event": {"properties": order}}
    send(customer_id, "order_thanks", ["whatsapp", "sms", "email"], profile, scope)


@app.task(name="cart_abandoned")
def cart_abandoned(customer_id: str, cart: dict[str, Any]) -> None:
    key = shop.cart_key(customer_id)
    if cart["total"] < 20 or db.hget(key, "state") in shop.WAITING:
        return
    token = shop.new_token()
    db.hset(key, mapping={"state": "waiting_first", "token": token, "cart": json.dumps(cart)})
    db.hset(shop.customer_key(customer_id), "last_cart_total", cart["total"])
    order = db.hget(key, "order")
    if order and shop.bought_from_cart(json.loads(order), cart):
        thank(customer_id, json.loads(order))
        return
    first_wait_over.apply_async((customer_id, token), countdown=shop.WAIT_FIRST)


@app.task(name="first_wait_over")
def first_wait_over(customer_id: str, token: str) -> None:
    state = db.hgetall(shop.cart_key(customer_id))
    if state.get("state") != "waiting_first" or state.get("token") != token:
        return
    cart = json.loads(state["cart"])
    profile = db.hgetall(shop.customer_key(customer_id))
    scope = {"customer": shop.customer_scope(customer_id, profile), "event": {"properties": cart},
             "data": shop.discount(cart)}
    send(customer_id, "cart_discount", ["push", "sms", "email"], profile, scope)
    token = shop.new_token()
    db.hset(shop.cart_key(customer_id), mapping={"state": "waiting_order", "token": token})
    order_wait_over.apply_async((customer_id, token), countdown=shop.WAIT_ORDER)


@app.task(name="order_wait_over")
def order_wait_over(customer_id: str, token: str) -> None:
    state = db.hgetall(shop.cart_key(customer_id))
    if state.get("state") != "waiting_order" or state.get("token") != token:
        return
    db.hset(shop.cart_key(customer_id), "state", "done")
    profile = db.hgetall(shop.customer_key(customer_id))
    scope = {"customer": shop.customer_scope(customer_id, profile), "event": {"properties": json.loads(state["cart"])}}
    send(customer_id, "cart_reminder", ["email"], profile, scope)


@app.task(name="order_placed")
def order_placed(customer_id: str, order: dict[str, Any]) -> None:
    key = shop.cart_key(customer_id)
    db.hset(key, "order", json.dumps(order))
    state = db.hgetall(key)
    if state.get("state") in shop.WAITING and shop.bought_from_cart(order, json.loads(state["cart"])):
        thank(customer_id, order)


TASKS = {"cart_abandoned": cart_abandoned, "order_placed": order_placed}


def web_app() -> web.Application:
    """The shop's event endpoint: each event becomes a task (`delay` is a quick blocking LPUSH)."""

    async def post_event(request: web.Request) -> web.Response:
        event = await request.json()
        result = TASKS[event["name"]].delay(event["customer_id"], event.get("properties", {}))
        return web.json_response({"id": result.id, "status": "accepted"}, status=202)

    async def post_batch(request: web.Request) -> web.Response:
        body = await request.json()
        ids = [TASKS[e["name"]].delay(e["customer_id"], e.get("properties", {})).id for e in body["events"]]
        return web.json_response({"accepted": len(ids), "ids": ids}, status=202)

    async def ready(request: web.Request) -> web.Response:
        return web.json_response({"status": "ready"})

    application = web.Application()
    application.router.add_post("/v1/events", post_event)
    application.router.add_post("/v1/events/batch", post_batch)
    application.router.add_get("/readyz", ready)
    return application


def profiles(prefix: str, count: int) -> None:
    for start in range(0, count, 1000):
        with db.pipeline(transaction=False) as pipe:
            for i in range(start, min(start + 1000, count)):
                pipe.hset(shop.customer_key(f"{prefix}{i}"), mapping=shop.profile_fields(i, f"{prefix}{i}"))
            pipe.execute()


def steps(prefix: str, count: int, orders_every: int) -> None:
    for i in range(count):
        cart_abandoned.delay(f"{prefix}{i}", shop.cart(f"{prefix}{i}"))
        if orders_every and i % orders_every == 0:
            order_placed.delay(f"{prefix}{i}", shop.order(f"{prefix}{i}"))


def burst(prefix: str, count: int, at: float) -> None:
    due = datetime.fromtimestamp(at, UTC)
    for start in range(0, count, 1000):
        batch = range(start, min(start + 1000, count))
        with db.pipeline(transaction=False) as pipe:
            for i in batch:
                pipe.hset(shop.cart_key(f"{prefix}{i}"), mapping={"state": "waiting_first", "token": f"t{i}",
                                                                     "cart": json.dumps(shop.cart(f"{prefix}{i}"))})
            pipe.execute()
        for i in batch:
            first_wait_over.apply_async((f"{prefix}{i}", f"t{i}"), eta=due)


def main() -> None:
    parser = shop.arguments(__doc__.splitlines()[0], default_port=8721)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    started = time.time()
    if args.command == "worker":
        app.worker_main(["worker", "--pool", "prefork", "--concurrency", str(args.concurrency), "--loglevel",
                         "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"])
    elif args.command == "web":
        web.run_app(web_app(), host="127.0.0.1", port=args.port, access_log=None, print=None)
    elif args.command == "profiles":
        profiles(args.prefix, args.count)
    elif args.command == "steps":
        steps(args.prefix, args.count, args.orders_every)
    elif args.command == "park":
        steps(args.prefix, args.count, 0)
    else:
        burst(args.prefix, args.count, args.at)
    print(json.dumps({"seconds": time.time() - started}))


if __name__ == "__main__":
    main()
