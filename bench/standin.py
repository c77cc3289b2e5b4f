"""The stand-in provider: an aiohttp server (low-level, no router) that counts what it receives.

Every message the engine's webhook connector or a peer POSTs (JSON with `customer_id`, `template` and
`message_id`) is counted per template, checked for duplicates (the same message id, or the same template twice
for one customer) and stamped with its receive time (for latency and timer lateness).

    GET  /stats     {"total", "by_template", "customers", "duplicates", "duplicate_ids", "first", "last"}
    GET  /received  {"customer": [...], "template": [...], "t": [...]}   every message, in arrival order
    POST /reset     forget everything
    POST anything else: one message

Run: python bench/standin.py --port 8700
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from collections import Counter

from aiohttp import web

from omnicanal.eventloop import run

OK = b'{"id":"standin"}'


class Recorder:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.customers: list[str] = []
        self.templates: list[str] = []
        self.times: list[float] = []
        self.by_template: Counter[str] = Counter()
        self.pairs: set[tuple[str, str]] = set()
        self.message_ids: set[str] = set()
        self.duplicates = 0
        self.duplicate_ids = 0
        self.rejected = 0

    def record(self, body: bytes, now: float) -> bool:
        try:
            message = json.loads(body)
            customer, template = str(message["customer_id"]), str(message["template"])
            message_id = str(message.get("message_id", ""))
        except (ValueError, KeyError, TypeError):
            self.rejected += 1
            return False
        self.customers.append(customer)
        self.templates.append(template)
        self.times.append(now)
        self.by_template[template] += 1
        pair = (customer, template)
        if pair in self.pairs:
            self.duplicates += 1
        else:
            self.pairs.add(pair)
        if message_id:
            if message_id in self.message_ids:
                self.duplicate_ids += 1
            else:
                self.message_ids.add(message_id)
        return True

    def stats(self) -> dict[str, object]:
        return {
            "total": len(self.times),
            "by_template": dict(self.by_template),
            "customers": len({c for c, _ in self.pairs}),
            "duplicates": self.duplicates,
            "duplicate_ids": self.duplicate_ids,
            "rejected": self.rejected,
            "first": self.times[0] if self.times else None,
            "last": self.times[-1] if self.times else None,
        }

    def received(self) -> dict[str, object]:
        return {"customer": self.customers, "template": self.templates, "t": self.times}


def make_handler(recorder: Recorder):  # type: ignore[no-untyped-def]
    async def handler(request: web.BaseRequest) -> web.Response:
        if request.method == "GET":
            if request.path == "/stats":
                return web.json_response(recorder.stats())
            if request.path == "/received":
                return web.Response(body=json.dumps(recorder.received()).encode(), content_type="application/json")
            return web.Response(status=404)
        body = await request.read()
        now = time.time()
        if request.path == "/reset":
            recorder.reset()
            return web.Response(body=b"{}", content_type="application/json")
        if not recorder.record(body, now):
            return web.Response(status=400, body=b'{"error":"bad message"}', content_type="application/json")
        return web.Response(body=OK, content_type="application/json")

    return handler


async def serve(host: str, port: int) -> None:
    recorder = Recorder()
    server = web.Server(make_handler(recorder), access_log=None)
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(server, host, port, backlog=1024)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"standin listening on http://{host}:{port}", flush=True)
    await stop.wait()
    listener.close()
    await server.shutdown(1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8700)
    args = parser.parse_args()
    run(serve(args.host, args.port))  # uvloop when installed: the stand-in takes less of the 2 cores


if __name__ == "__main__":
    main()
