"""Running omnicanal for the bench: `omnicanal api` and `omnicanal worker` processes on the real Redis.

Every channel of the reference journey is routed to the webhook connector, whose URL is the stand-in provider,
so every message the engine sends is counted there. Settings that would hold or throttle messages for reasons
unrelated to speed are lifted: quiet hours (the bench runs at any hour) and the webhook connector's default
20 sends/s (OMNICANAL_RATE_LIMITS). The journey file is a fresh copy of journeys/abandoned_cart.yaml, unchanged.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from common import REPO, Proc, ProcessGroup, free_port, get_json, redis_client, wait_http

from omnicanal.store.keys import Keyspace

JOURNEY = "abandoned_cart"
OMNICANAL = str(REPO / ".venv" / "bin" / "omnicanal")
PARTITIONS = 16
ITEMS = [{"sku": "SKU-1", "name": "Sneakers Lumière", "price": 89.0},
         {"sku": "SKU-7", "name": "Chaussettes", "price": 12.5}]
TOTAL = 101.5
SMALL_TOTAL = 15.0
"""Below the reference journey's trigger (`total >= 20`): a cart of this total starts no journey."""


def cart_event(customer_id: str, total: float = TOTAL) -> dict[str, Any]:
    return {"name": "cart_abandoned", "customer_id": customer_id,
            "properties": {"cart_id": f"cart-{customer_id}", "items": ITEMS, "total": total}}


def order_event(customer_id: str) -> dict[str, Any]:
    return {"name": "order_placed", "customer_id": customer_id,
            "properties": {"order_id": f"T-{customer_id}", "channel": "store", "store": "Lyon Part-Dieu",
                           "items": ITEMS[:1], "total": 89.0}}


def journeys_dir(run_dir: Path) -> Path:
    """A directory holding only the reference journey (a copy made now, so it is the current one)."""
    target = run_dir / "journeys"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "journeys" / f"{JOURNEY}.yaml", target / f"{JOURNEY}.yaml")
    return target


@dataclass
class Engine:
    """An API process and `workers` worker processes sharing one workspace."""

    group: ProcessGroup
    db: int
    run_dir: Path
    standin_url: str
    workers: int = 1
    clock_speed: float = 1.0
    workspace: str = "bench"
    segments_dir: Path | None = None
    """Segments the engine keeps (None: an empty directory, so none from the working directory either)."""
    settings: dict[str, str] = field(default_factory=dict)
    """More OMNICANAL_* settings, over the bench's own (OMNICANAL_STATS=false for the cost of counting)."""
    api_port: int = field(default_factory=free_port)
    api: Proc | None = None
    worker_procs: list[Proc] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def env(self) -> dict[str, str]:
        return {
            "OMNICANAL_REDIS_URL": f"redis://127.0.0.1:6379/{self.db}",
            "OMNICANAL_WORKSPACE": self.workspace,
            "OMNICANAL_JOURNEYS_DIR": str(journeys_dir(self.run_dir)),
            "OMNICANAL_TEMPLATES_DIR": str(REPO / "templates"),
            "OMNICANAL_SEGMENTS_DIR": str(self.segments_dir or self.run_dir / "no-segments"),
            "OMNICANAL_CHANNELS": "push=webhook,sms=webhook,email=webhook,whatsapp=webhook",
            "OMNICANAL_WEBHOOK_URL": f"{self.standin_url}/msg",
            "OMNICANAL_WEBHOOK_SECRET": "bench",
            "OMNICANAL_OUTBOUND_ALLOW": "127.0.0.1",  # the stand-in provider, on loopback
            "OMNICANAL_RATE_LIMITS": "webhook=1000000",
            "OMNICANAL_QUIET_HOURS": "off",
            "OMNICANAL_CLOCK_SPEED": repr(self.clock_speed),
            "OMNICANAL_PARTITIONS": str(PARTITIONS),
            "OMNICANAL_LOG_LEVEL": "warning",
            "OMNICANAL_RELOAD_INTERVAL": "0",
            "OMNICANAL_SHUTDOWN_GRACE": "3",
            **self.settings,
        }

    async def start(self, api: bool = True) -> Engine:
        if api:
            await self.start_api()
        await self.start_workers(self.workers)
        return self

    async def start_api(self) -> None:
        self.api = self.group.start("engine-api", [OMNICANAL, "api", "--port", str(self.api_port)], self.env())
        await wait_http(f"{self.url}/readyz", self.api)

    async def start_workers(self, count: int, clock_speed: float | None = None) -> None:
        if clock_speed is not None:
            self.clock_speed = clock_speed
        self.workers = count
        for index in range(count):
            port = free_port()
            proc = self.group.start(f"engine-worker-{index + 1}", [OMNICANAL, "worker", "--port", str(port)],
                                    {**self.env(), "OMNICANAL_WORKER_ID": f"bench-worker-{index + 1}"})
            self.worker_procs.append(proc)
            await wait_http(f"http://127.0.0.1:{port}/readyz", proc)
        await self.wait_balanced()

    async def stop_workers(self) -> None:
        for proc in self.worker_procs:
            await self.group.stop(proc)
        self.worker_procs.clear()

    async def stop(self) -> None:
        await self.stop_workers()
        if self.api is not None:
            await self.group.stop(self.api)
            self.api = None

    async def wait_balanced(self, timeout: float = 20.0) -> None:
        """Until every partition has a lease and the workers hold an even share."""
        keys = Keyspace(self.workspace, PARTITIONS)
        redis = redis_client(self.db)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                owners = await redis.mget([keys.partition(n).lease for n in range(PARTITIONS)])
                counts: dict[str, int] = {}
                for owner in owners:
                    if owner:
                        counts[owner] = counts.get(owner, 0) + 1
                share = -(-PARTITIONS // self.workers)
                if len(counts) == self.workers and all(c <= share for c in counts.values()) and all(owners):
                    return
                await asyncio.sleep(0.2)
        finally:
            await redis.aclose()
        print(f"  warning: partitions not balanced after {timeout:.0f}s", file=sys.stderr)

    def pids(self) -> list[int]:
        return [proc.pid for proc in self.worker_procs]

    async def journey(self, session: aiohttp.ClientSession) -> dict[str, Any]:
        answer: dict[str, Any] = await get_json(session, f"{self.url}/v1/journeys/{JOURNEY}")
        return answer


def steps_entered(journey: dict[str, Any]) -> int:
    """Journey steps run so far: the sum of the engine's per-step `entered` counters."""
    return sum(int(step["counts"].get("entered", 0)) for step in journey["steps"])


def waiting_in(journey: dict[str, Any], step_id: str) -> int:
    for step in journey["steps"]:
        if step["id"] == step_id:
            return int(step["counts"].get("waiting", 0))
    return 0


async def create_profiles(group: ProcessGroup, db: int, workspace: str, prefix: str, count: int,
                          processes: int = 2) -> float:
    """Profiles for `{prefix}0..count-1`, written by `processes` set-up processes; returns seconds taken."""
    started = time.monotonic()
    share = -(-count // processes)
    procs = []
    for index, start in enumerate(range(0, count, share)):
        procs.append(group.start(f"profiles-{prefix}{index}", [
            sys.executable, str(Path(__file__).parent / "profiles.py"), "--db", str(db), "--workspace", workspace,
            "--prefix", prefix, "--start", str(start), "--count", str(min(share, count - start))]))
    for proc in procs:
        while proc.alive():
            await asyncio.sleep(0.1)
        if proc.popen is not None and proc.popen.returncode != 0:
            raise RuntimeError(f"profile set-up failed:\n{proc.tail()}")
        group.procs.remove(proc)
    return time.monotonic() - started
