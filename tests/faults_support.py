"""What the fault tests (test_faults.py) share: a private redis-server with an append-only file, `omnicanal api`
and `omnicanal worker` processes to SIGKILL and restart, a recording webhook provider, an HTTP client, and the
check that every customer got the messages of the reference journey exactly once and in order. The tests that
kill the process walking a broadcast or a segment backfill (test_schedules.py, test_segment_backfill.py) take
their cluster of customers, and the kill, from `populated_cluster`.

Every process is started through `Processes`, which kills them all (SIGKILL, by pid) when the test ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import aiohttp
import redis.asyncio as redis
from aiohttp import web
from omnicanal_connectors.webhook import MESSAGE_ID_HEADER
from redis import exceptions as redis_errors

from omnicanal.store.keys import Keyspace
from standins import WebhookReceiver
from standins.http import Received

OMNICANAL = str(Path(sys.executable).with_name("omnicanal"))
JOURNEY = "abandoned_cart"
DISCOUNT, THANKS, REMINDER = "cart_discount", "order_thanks", "cart_reminder"
CLOCK_SPEED = 36000.0
"""Journey seconds per real second: the journey's 1 h wait lasts 0.1 s, its 48 h wait 4.8 s."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- processes ---------------------------------------------------------------------------------------------------


class Processes:
    """Every process a test starts, each logging to its own file in `log_dir` (made here); `kill_all` (the
    fixture's teardown) SIGKILLs the live ones by pid."""

    def __init__(self, log_dir: Path) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir = log_dir
        self._started: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = []

    def spawn(self, command: list[str], env: Mapping[str, str], log_name: str) -> subprocess.Popen[bytes]:
        log = (self.log_dir / log_name).open("ab")
        process = subprocess.Popen(command, env=dict(env), stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT)
        self._started.append((process, log))
        return process

    def kill_all(self) -> None:
        for process, log in reversed(self._started):
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
            process.wait()
            log.close()


def sigkill(process: subprocess.Popen[bytes]) -> None:
    """Kill like a crash (no handler runs, nothing is flushed or given back) and reap."""
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.wait()


class RedisServer:
    """A redis-server of the test's own on a fixed port, with an append-only file in `directory`: killed and
    started again on the same port and files, it comes back with what it had acknowledged (fsync allowing)."""

    def __init__(self, processes: Processes, directory: Path, appendfsync: str) -> None:
        self.processes = processes
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        directory.mkdir(parents=True, exist_ok=True)
        self.command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                        "--appendonly", "yes", "--appendfsync", appendfsync, "--dir", str(directory),
                        "--maxmemory-policy", "noeviction",
                        "--aof-timestamp-enabled", "yes"]  # when a test fails, the AOF tells who wrote what, when
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        self.process = self.processes.spawn(self.command, os.environ, "redis.log")
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        try:
            async with asyncio.timeout(20):
                while True:
                    assert self.process.poll() is None, "redis-server exited: see redis.log"
                    try:
                        if await client.ping():
                            return
                    except (redis_errors.ConnectionError, redis_errors.BusyLoadingError, OSError):
                        pass
                    await asyncio.sleep(0.05)
        finally:
            await client.aclose()

    def kill(self) -> None:
        assert self.process is not None
        sigkill(self.process)


@dataclass
class Node:
    """One `omnicanal api` or `omnicanal worker` process; both serve /readyz on their own port."""

    role: str
    worker_id: str
    port: int
    process: subprocess.Popen[bytes]
    log_name: str

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    async def ready_status(self, http: aiohttp.ClientSession) -> int | None:
        try:
            async with http.get(self.base + "/readyz", timeout=aiohttp.ClientTimeout(total=5)) as response:
                return response.status
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def wait_ready(self, http: aiohttp.ClientSession, log_dir: Path, timeout: float = 30.0) -> None:
        try:
            async with asyncio.timeout(timeout):
                while await self.ready_status(http) != 200:
                    assert self.alive, f"{self.role} {self.worker_id} exited:\n{tail(log_dir / self.log_name)}"
                    await asyncio.sleep(0.1)
        except TimeoutError:
            log = tail(log_dir / self.log_name)
            raise AssertionError(f"{self.role} {self.worker_id} never ready:\n{log}") from None


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Cluster:
    """One `omnicanal api` and several `omnicanal worker` processes on one Redis, every channel routed to the
    webhook connector pointed at `provider`."""

    def __init__(self, processes: Processes, project: Path, redis_url: str, provider: WebhookReceiver,
                 http: aiohttp.ClientSession) -> None:
        self.processes = processes
        self.http = http
        self.env = {
            **os.environ,
            "OMNICANAL_REDIS_URL": redis_url,
            "OMNICANAL_JOURNEYS_DIR": str(project / "journeys"),
            "OMNICANAL_TEMPLATES_DIR": str(project / "templates"),
            "OMNICANAL_CLOCK_SPEED": repr(CLOCK_SPEED),
            "OMNICANAL_PARTITIONS": "8",
            "OMNICANAL_LEASE_SECONDS": "2",
            "OMNICANAL_QUIET_HOURS": "off",
            "OMNICANAL_LOG_LEVEL": "warning",
            "OMNICANAL_RELOAD_INTERVAL": "0",
            "OMNICANAL_CHANNELS": "push=webhook,sms=webhook,email=webhook,whatsapp=webhook",
            "OMNICANAL_OUTBOUND_ALLOW": "127.0.0.1",  # the stand-in provider, on loopback
            "OMNICANAL_RATE_LIMITS": "webhook=1000000",  # the connector's default (20/s) would pace, not test
            **provider.env(),
        }
        self.api: Node | None = None
        self.workers: list[Node] = []
        self._count = 0

    def _spawn(self, role: str, worker_id: str) -> Node:
        self._count += 1
        port = free_port()
        log_name = f"{self._count:02d}-{role}-{worker_id}.log"
        env = {**self.env, "OMNICANAL_PORT": str(port), "OMNICANAL_WORKER_ID": worker_id}
        return Node(role, worker_id, port, self.processes.spawn([OMNICANAL, role], env, log_name), log_name)

    async def start(self, workers: int) -> None:
        self.api = self._spawn("api", "api")
        self.workers = [self._spawn("worker", f"w{n}") for n in range(workers)]
        await self.wait_ready()

    async def wait_ready(self) -> None:
        await asyncio.gather(*(node.wait_ready(self.http, self.processes.log_dir) for node in self.nodes))

    @property
    def nodes(self) -> list[Node]:
        return ([self.api] if self.api else []) + self.workers

    def restart_worker(self, slot: int, worker_id: str) -> Node:
        """SIGKILL the worker in `slot` and start `worker_id` there at once (the same id, or a new one)."""
        sigkill(self.workers[slot].process)
        self.workers[slot] = node = self._spawn("worker", worker_id)
        return node

    def log_events(self) -> Counter[str]:
        """How many times each event (partition_lost, store_unavailable...) was logged by the engine processes."""
        found: Counter[str] = Counter()
        for path in self.processes.log_dir.glob("*-*.log"):
            for line in path.read_text(errors="replace").splitlines():
                with contextlib.suppress(ValueError, AttributeError):
                    found[str(json.loads(line).get("event"))] += 1
        return found

    def logs(self) -> str:
        return "\n".join(f"--- {path.name}\n{tail(path, 15)}" for path in sorted(self.processes.log_dir.glob("*.log")))


# -- a death at the commit, in-process -------------------------------------------------------------------------


def die_at_next_commit(monkeypatch: Any, api: Any, sent: bool) -> list[str]:
    """The worker of `api` (conftest.Api) dies at its next batch's writes: after they are `sent` (the commits made,
    the entries not yet acknowledged), or before (its sends made, nothing committed). The worker then takes its
    pending entries again, as the next owner does after a SIGKILL. Returns the list where the death is noted."""
    customers = api.runtime.customers
    real = customers.writes
    killed: list[str] = []

    @contextlib.asynccontextmanager
    async def writes_and_death() -> AsyncIterator[Any]:
        if not sent and not killed:
            killed.append("before the commit")
            raise RuntimeError("worker killed between its sends and its commit")
        async with real() as writes:
            yield writes
        if not killed:
            killed.append("after the commit")
            raise RuntimeError("worker killed right after its batch was committed")

    monkeypatch.setattr(customers, "writes", writes_and_death)
    return killed


# -- the provider ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """One POST the provider got, in arrival order."""

    message_id: str
    customer_id: str
    template: str
    channel: str
    at: float


class Provider(WebhookReceiver):
    """The webhook stand-in, also keeping each message's id, customer and template in arrival order (a message
    counts as arrived once its body is read), and telling `listeners` at once (the test answers a customer's push
    with their in-store order)."""

    def __init__(self, latency: float = 0.0) -> None:
        super().__init__()
        self.latency = latency
        self.deliveries: list[Delivery] = []
        self.listeners: list[Callable[[Delivery], None]] = []

    async def failure(self) -> web.Response | None:
        """Answer after `latency` seconds, as a real provider would: a worker killed meanwhile never learns that
        its message arrived (the engine records it `unknown`)."""
        await asyncio.sleep(self.latency)
        return await super().failure()

    async def record(self, request: web.Request) -> Received:
        received = await super().record(request)
        body = received.json
        delivery = Delivery(received.headers.get(MESSAGE_ID_HEADER, ""), str(body["customer_id"]),
                            str(body["template"]), str(body["channel"]), time.monotonic())
        self.deliveries.append(delivery)
        for listener in self.listeners:
            listener(delivery)
        return received

    def by_customer(self) -> dict[str, list[Delivery]]:
        found: dict[str, list[Delivery]] = defaultdict(list)
        for delivery in self.deliveries:
            found[delivery.customer_id].append(delivery)
        return found


# -- the API -----------------------------------------------------------------------------------------------------


class ApiClient:
    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.http.request(method, self.base + path, json=body) as response:
            return response.status, await response.json(content_type=None)

    async def each(self, method: str, paths: Iterable[str], bodies: Iterable[Any] | None = None,
                   concurrency: int = 24) -> list[tuple[int, Any]]:
        """Many calls, `concurrency` at a time, answers in the order asked."""
        limit = asyncio.Semaphore(concurrency)

        async def one(path: str, body: Any) -> tuple[int, Any]:
            async with limit:
                return await self.call(method, path, body)

        paths = list(paths)
        given = list(bodies) if bodies is not None else [None] * len(paths)
        return await asyncio.gather(*(one(path, body) for path, body in zip(paths, given, strict=True)))


async def visitors(api: ApiClient, known: Callable[[], Any], count: int) -> None:
    """`c0`..`c<count - 1>`, each known by one `visited` event sent through the batch API; returns once the engine
    knows them all (`known()`: how many customers it knows, e.g. the SCARD of Keyspace.customers)."""
    for first in range(0, count, 1000):
        status, _ = await api.call("POST", "/v1/events/batch", {"events": [
            {"name": "visited", "customer_id": f"c{n}"} for n in range(first, min(count, first + 1000))]})
        assert status == 202
    async with asyncio.timeout(60):
        while await known() < count:
            await asyncio.sleep(0.05)



@dataclass
class Populated:
    """A Cluster whose engine knows its customers, with the clients a test watches it through: the HTTP API and
    the Redis it runs on (answers decoded), whose key names `keys` gives."""

    cluster: Cluster
    api: ApiClient
    redis: redis.Redis
    keys: Keyspace

    async def kill_walker(self, walker: str, progress: str, field: str, total: int) -> None:
        """SIGKILL, like a crash, the worker walking the customers once the walk is under way: the key `walker`
        names it and `field` of the hash `progress` is between 0 and `total` (started, not finished)."""
        async with asyncio.timeout(30):
            while not ((walking := await self.redis.get(walker))
                       and 0 < int(await self.redis.hget(progress, field) or 0) < total):
                await asyncio.sleep(0.005)
        victim = next(node for node in self.cluster.workers if node.worker_id == walking)
        sigkill(victim.process)


@contextlib.asynccontextmanager
async def populated_cluster(project: Path, redis_url: str, log_dir: Path, env: Mapping[str, str], customers: int,
                            workers: int = 3) -> AsyncIterator[Populated]:
    """One API and `workers` worker processes on `redis_url` (Cluster's settings, then `env`), a webhook provider
    they send to, once the engine knows the customers c0..c<customers - 1> (`visitors`); every process is
    SIGKILLed on the way out, whatever happened."""
    keys = Keyspace("default", 8)  # Cluster's OMNICANAL_PARTITIONS
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    processes = Processes(log_dir)
    try:
        async with Provider() as provider, aiohttp.ClientSession() as http:
            cluster = Cluster(processes, project, redis_url, provider, http)
            cluster.env.update(env)
            await cluster.start(workers=workers)
            assert cluster.api is not None
            api = ApiClient(http, cluster.api.base)
            await visitors(api, lambda: client.scard(keys.customers), customers)
            yield Populated(cluster, api, client, keys)
    finally:
        processes.kill_all()
        await client.aclose()


def profile(n: int) -> dict[str, Any]:
    """A shopper reachable on push, WhatsApp and e-mail (no `webhook` address: the connector's URL is used)."""
    return {"attributes": {"first_name": f"Client{n}"}, "locale": "fr" if n % 2 else "en",
            "addresses": {"push": [f"device-{n}"], "whatsapp": f"+3361{n:07d}", "email": f"client{n}@example.com"}}


ITEMS = [{"sku": "SKU-1", "name": "Sneakers Lumière", "price": 89.0}, {"sku": "SKU-7", "name": "Socks", "price": 12.0}]


def cart(customer_id: str) -> dict[str, Any]:
    return {"name": "cart_abandoned", "customer_id": customer_id, "idempotency_key": f"cart-{customer_id}",
            "properties": {"cart_id": f"cart-{customer_id}", "items": ITEMS, "total": 101.0}}


def order(customer_id: str) -> dict[str, Any]:
    return {"name": "order_placed", "customer_id": customer_id, "idempotency_key": f"order-{customer_id}",
            "properties": {"order_id": f"T-{customer_id}", "channel": "store", "store": "Lyon Part-Dieu",
                           "items": ITEMS[:1], "total": 89.0}}


# -- the verdict -------------------------------------------------------------------------------------------------


@dataclass
class Verdict:
    """What the provider and the engine's timelines say, customer by customer; `problems` must stay empty."""

    problems: list[str] = field(default_factory=list)
    evidence: dict[str, str] = field(default_factory=dict)
    unknown: int = 0
    unknown_received: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    endings: Counter[str] = field(default_factory=Counter)

    def fail(self, customer_id: str, what: str) -> None:
        self.problems.append(f"{customer_id}: {what}")

    def summary(self, limit: int = 25) -> str:
        shown = list(self.evidence.items())[:5]
        return (f"{len(self.problems)} problem(s):\n" + "\n".join(self.problems[:limit])
                + "".join(f"\n--- {customer_id}\n{text}" for customer_id, text in shown))


def evidence(timeline: list[dict[str, Any]], received: list[Delivery], running: list[dict[str, Any]]) -> str:
    """A customer's story, compact: the timeline, what the provider got, what still runs."""
    lines = []
    for e in timeline:
        what = {"event": lambda e: f"{e['name']} {e['event_id']}",
                "message": lambda e: f"{e['template']} {e['status']} {e.get('message_id')} {e.get('step')}",
                "journey": lambda e: f"{e['journey']} {e['status']} {e.get('reason') or e.get('instance_id') or ''}",
                }.get(e["kind"], lambda e: str({k: v for k, v in e.items() if k not in ("kind", "at")})[:160])(e)
        lines.append(f"  {e['at']} {e['kind']:<10} {what}")
    lines += [f"  provider {d.at:.3f} {d.template} {d.message_id}" for d in received]
    lines += [f"  running {r}" for r in running]
    return "\n".join(lines)


def check_customer(verdict: Verdict, customer_id: str, paths: Sequence[list[str]], received: list[Delivery],
                   timeline: list[dict[str, Any]], running: list[dict[str, Any]], event_ids: list[str]) -> None:
    """One customer: the journey ended (nothing running), the engine sent the templates of one of `paths` (the
    journey's possible routes for what the customer did; usually one) in that order, the provider got each `sent`
    one exactly once and each `unknown` one at most once, in the journey's order, nothing else."""
    if running:
        verdict.fail(customer_id, f"still running: {running}")
    journeys = [(e["status"], e.get("reason")) for e in timeline if e["kind"] == "journey" and e["journey"] == JOURNEY]
    if len(journeys) != 2 or journeys[0][0] != "started" or journeys[1][0] not in ("completed", "exited"):
        verdict.fail(customer_id, f"journey entries {journeys}")
    else:
        verdict.endings[f"{journeys[1][0]}{' (' + journeys[1][1] + ')' if journeys[1][1] else ''}"] += 1
    seen = [e["event_id"] for e in timeline if e["kind"] == "event"]
    if sorted(seen) != sorted(event_ids):  # each accepted event applied exactly once
        verdict.fail(customer_id, f"events applied {seen}, accepted {event_ids}")
    messages = [e for e in timeline if e["kind"] == "message" and e.get("journey") == JOURNEY]
    sent = [m["template"] for m in messages]
    expected = sent if sent in paths else paths[0]
    if sent != expected:
        verdict.fail(customer_id, f"engine sent {[(m['template'], m['status']) for m in messages]}, "
                                  f"journey order says {expected}")
    ids = Counter(d.message_id for d in received)
    if any(count > 1 for count in ids.values()):
        verdict.fail(customer_id, f"duplicate message ids at the provider: {ids}")
    got = [d.template for d in received]
    for message in messages:
        status, count = message["status"], got.count(message["template"])
        verdict.statuses[status] += 1
        if status == "unknown":
            verdict.unknown += 1
            verdict.unknown_received += count
            if count > 1:
                verdict.fail(customer_id, f"{message['template']} (unknown) received {count} times")
        elif status == "sent":
            if count != 1:
                verdict.fail(customer_id, f"{message['template']} (sent) received {count} times")
        else:
            verdict.fail(customer_id, f"{message['template']} ended {status}")
        if count and message["message_id"] not in ids:
            verdict.fail(customer_id, f"{message['template']} received under another id than {message['message_id']}")
    if got != [t for t in expected if t in got]:
        verdict.fail(customer_id, f"provider got {got}, journey order says {expected}")


async def check_all(api: ApiClient, provider: Provider, expected: Mapping[str, Sequence[list[str]]],
                    event_ids: Mapping[str, list[str]]) -> Verdict:
    """Read every customer's profile and timeline through the API and check them against the provider."""
    customers = sorted(expected)
    profiles = await api.each("GET", (f"/v1/customers/{c}" for c in customers))
    timelines = await api.each("GET", (f"/v1/customers/{c}/timeline" for c in customers))
    received = provider.by_customer()
    verdict = Verdict()
    for customer_id, (p_status, body), (t_status, tl) in zip(customers, profiles, timelines, strict=True):
        if p_status != 200 or t_status != 200:
            verdict.fail(customer_id, f"GET answered {p_status}/{t_status}")
            continue
        found = len(verdict.problems)
        entries, got = tl.get("entries", []), received.get(customer_id, [])
        running = [j for j in body["journeys"] if j["journey"] == JOURNEY]
        check_customer(verdict, customer_id, expected[customer_id], got, entries, running,
                       event_ids.get(customer_id, []))
        if len(verdict.problems) > found:
            verdict.evidence[customer_id] = evidence(entries, got, running)
    strangers = set(received) - set(expected)
    if strangers:
        verdict.problems.append(f"messages for customers never sent through the journey: {sorted(strangers)[:10]}")
    return verdict


def journey_ended(entries: list[dict[str, Any]]) -> bool:
    return any(e["kind"] == "journey" and e["journey"] == JOURNEY and e["status"] != "started" for e in entries)


async def wait_for_endings(api: ApiClient, provider: Provider, terminal: Callable[[str], str],
                           customers: Iterable[str], timeout: float) -> float:
    """Wait until every customer's journey has ended: their last message is at the provider, or (a message lost
    as `unknown`) the engine shows nothing running. Returns the seconds waited; fails after `timeout`."""
    started = time.monotonic()
    open_ = set(customers)
    try:
        async with asyncio.timeout(timeout):
            await _until_ended(api, provider, terminal, open_)
    except TimeoutError:
        raise AssertionError(f"{len(open_)} journey(s) never ended within {timeout} s: {sorted(open_)[:20]}") from None
    return time.monotonic() - started


async def _until_ended(api: ApiClient, provider: Provider, terminal: Callable[[str], str], open_: set[str]) -> None:
    while open_:
        arrived = {d.customer_id for d in provider.deliveries if d.template == terminal(d.customer_id)}
        open_ -= arrived
        if 0 < len(open_) <= 300:  # few left: ask the engine whether theirs ended without that message
            waiting = sorted(open_)
            answers = await api.each("GET", (f"/v1/customers/{c}/timeline" for c in waiting))
            open_ -= {c for c, (status, body) in zip(waiting, answers, strict=True)
                      if status == 200 and journey_ended(body.get("entries", []))}
        await asyncio.sleep(0.5)
