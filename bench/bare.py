"""Bare baselines, the limits of the HTTP rows.

    ingest  a bare aiohttp app: `POST /v1/events` and `/v1/events/batch` parse the JSON body and answer 202 with
            an id per event, the API's answer shape, storing nothing: the rate aiohttp itself allows.
    relay   the same hops as an event's way to a message, with nothing else: `POST /v1/events` XADDs the event
            to a Redis stream and answers 202; a consumer in the same process reads the stream (XREADGROUP,
            blocking) and POSTs a message to the stand-in provider, then XACK/XDEL: the latency floor.
    send    no server: POSTs webhook-sized messages to the stand-in, 64 at a time, during `--seconds` from
            `--start-at` (several processes start together): the HTTP hop of a message alone, the limit of the
            messages/s rows.

Run: python bench/bare.py ingest --port 8710
     python bench/bare.py relay --port 8711 --db 15 --provider http://127.0.0.1:8700/msg
     python bench/bare.py send --provider http://127.0.0.1:8700/msg --start-at EPOCH --seconds 3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
import uuid

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web

from omnicanal.eventloop import loop_factory, run

STREAM = "bench:relay"
GROUP = "relay"


async def ingest_one(request: web.Request) -> web.Response:
    await request.json()
    return web.json_response({"id": f"evt_{uuid.uuid4().hex}", "status": "accepted"}, status=202)


async def ingest_batch(request: web.Request) -> web.Response:
    body = await request.json()
    results = [{"index": i, "status": "accepted", "id": f"evt_{uuid.uuid4().hex}"} for i, _ in
               enumerate(body["events"])]
    return web.json_response({"accepted": len(results), "rejected": 0, "results": results}, status=202)


async def ready(request: web.Request) -> web.Response:
    return web.json_response({"status": "ready"})


def ingest_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/v1/events", ingest_one)
    app.router.add_post("/v1/events/batch", ingest_batch)
    app.router.add_get("/readyz", ready)
    return app


async def relay_app(db: int, provider: str) -> web.Application:
    redis = aioredis.Redis(host="127.0.0.1", port=6379, db=db, decode_responses=True, max_connections=500)
    with contextlib.suppress(aioredis.ResponseError):
        await redis.xgroup_create(STREAM, GROUP, "0", mkstream=True)

    async def post_event(request: web.Request) -> web.Response:
        event = await request.json()
        event_id = f"evt_{uuid.uuid4().hex}"
        await redis.xadd(STREAM, {"c": event["customer_id"], "id": event_id})
        return web.json_response({"id": event_id, "status": "accepted"}, status=202)

    async def consume(app: web.Application) -> None:
        async with aiohttp.ClientSession() as session:
            async def send(entry_id: str, fields: dict[str, str]) -> None:
                body = {"message_id": fields["id"], "customer_id": fields["c"], "template": "order_thanks"}
                async with session.post(provider, data=json.dumps(body),
                                        headers={"Content-Type": "application/json"}) as response:
                    await response.read()

            while True:
                answer = await redis.xreadgroup(GROUP, "relay", {STREAM: ">"}, count=256, block=100)
                for _, entries in answer or []:
                    await asyncio.gather(*(send(entry_id, fields) for entry_id, fields in entries))
                    ids = [entry_id for entry_id, _ in entries]
                    await redis.xack(STREAM, GROUP, *ids)
                    await redis.xdel(STREAM, *ids)

    async def lifecycle(app: web.Application):  # type: ignore[no-untyped-def]
        task = asyncio.create_task(consume(app))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await redis.aclose()

    app = web.Application()
    app.router.add_post("/v1/events", post_event)
    app.router.add_get("/readyz", ready)
    app.cleanup_ctx.append(lifecycle)
    return app


SEND_CONCURRENCY = 64  # the engine's worker concurrency: as many requests in flight


async def send(provider: str, start_at: float, seconds: float) -> None:
    """POST messages shaped like the webhook connector's (same size, unique ids) until the window ends."""
    sender = uuid.uuid4().hex[:8]
    await asyncio.sleep(max(0.0, start_at - time.time()))
    deadline = start_at + seconds
    sent = 0
    async with aiohttp.ClientSession() as session:
        async def lane(lane_id: int) -> None:
            nonlocal sent
            n = 0
            while time.time() < deadline:
                n += 1
                body = json.dumps({
                    "message_id": f"{sender}.{lane_id}.{n}", "customer_id": f"bare-{sender}-{lane_id}-{n}",
                    "channel": "push", "to": "fcm-token-bare", "template": "cart_discount", "locale": "fr",
                    "journey": "abandoned_cart", "step": "push_discount",
                    "content": {"title": "Votre panier vous attend", "body": "-15 % sur Sneakers Lumière et "
                                "Chaussettes avec le code LUMIERE15, aujourd'hui seulement."}}).encode()
                async with session.post(provider, data=body, headers={"Content-Type": "application/json"}) as reply:
                    await reply.read()
                sent += 1

        await asyncio.gather(*(lane(i) for i in range(SEND_CONCURRENCY)))
    print(json.dumps({"sent": sent}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["ingest", "relay", "send"])
    parser.add_argument("--port", type=int)
    parser.add_argument("--db", type=int, default=15)
    parser.add_argument("--provider", default="http://127.0.0.1:8700/msg")
    parser.add_argument("--start-at", type=float, default=0.0)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    if args.mode == "send":
        run(send(args.provider, args.start_at, args.seconds))  # on the engine's own event loop, as the others
        return
    factory = loop_factory()  # the engine's own event loop (uvloop when installed): the same footing
    loop = factory() if factory else None
    if args.port is None:
        parser.error("--port is required for ingest and relay")
    app = ingest_app() if args.mode == "ingest" else relay_app(args.db, args.provider)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None, loop=loop)


if __name__ == "__main__":
    main()
