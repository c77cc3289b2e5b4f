"""Background loops (file reload, lease renewal) survive an error and say so: a log line with the error, and a
count in `omnicanal_loop_errors_total{loop=...,workspace=...}` on /metrics."""

from __future__ import annotations

import asyncio
import re
import socket
from pathlib import Path

import redis.asyncio as redis
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from conftest import StartApi
from omnicanal.engine.ownership import PartitionOwnership
from omnicanal.metrics import WorkspaceMetrics
from omnicanal.store.keys import Keyspace
from omnicanal.store.leases import LeaseStore
from omnicanal.store.transport import open_transport
from omnicanal.store.work import WorkQueue


def loop_errors(exposition: str, loop: str) -> float:
    """The counter's value in a /metrics exposition (0 before its first increment)."""
    match = re.search(rf'^omnicanal_loop_errors_total\{{loop="{loop}",workspace="default"\}} (\S+)$', exposition,
                      flags=re.M)
    return float(match.group(1)) if match else 0.0


async def test_a_reload_the_store_refuses_is_logged_counted_and_keeps_the_running_version(
    project: Path, start_api: StartApi, redis_url: str
) -> None:
    api = await start_api(reload_interval=0.05)
    before = await api.request("GET", "/v1/journeys/welcome_series", 200)
    failures = loop_errors(await (await api.client.get("/metrics")).text(), "reload")
    async with redis.Redis.from_url(redis_url) as client:  # every write of a journey's source now fails
        sources = api.runtime.keys.journey_sources("welcome_series")
        await client.delete(sources)
        await client.set(sources, "not a hash")

    journey_file = project / "journeys" / "welcome_series.yaml"
    with capture_logs() as logs:
        journey_file.write_text(journey_file.read_text().replace("  - wait: 2d\n", "  - wait: 1d\n"))
        async with asyncio.timeout(5):
            while not any(entry["event"] == "reload_failed" for entry in logs):
                await asyncio.sleep(0.02)
    [failure] = [entry for entry in logs if entry["event"] == "reload_failed"]
    assert "WRONGTYPE" in failure["error"] and failure["log_level"] == "error"
    assert not any(entry["event"] == "reloaded" for entry in logs)
    assert loop_errors(await (await api.client.get("/metrics")).text(), "reload") == failures + 1
    assert (await api.request("GET", "/v1/journeys/welcome_series", 200))["version"] == before["version"]


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_lease_renewal_the_store_cannot_answer_is_logged_and_counted() -> None:
    labels = {"workspace": "default", "loop": "ownership"}
    down = open_transport(f"redis://127.0.0.1:{unused_port()}/0")  # nothing listens there
    keys = Keyspace("default", 4)
    ownership = PartitionOwnership(LeaseStore(down, keys), WorkQueue(down, keys), "w-down", 4, lease_seconds=1,
                                   metrics=WorkspaceMetrics("default"))
    ownership.owned = {0, 2}
    counted = REGISTRY.get_sample_value("omnicanal_loop_errors_total", labels) or 0.0
    stopping = asyncio.Event()
    with capture_logs() as logs:
        renewing = asyncio.create_task(ownership.keep_alive(stopping))
        try:
            async with asyncio.timeout(5):
                while not any(entry["event"] == "lease_renewal_failed" for entry in logs):
                    await asyncio.sleep(0.02)
        finally:
            stopping.set()
            await renewing
            await down.aclose()
    failure = next(entry for entry in logs if entry["event"] == "lease_renewal_failed")
    assert failure["partitions"] == [0, 2] and "unavailable" in failure["error"]
    assert (REGISTRY.get_sample_value("omnicanal_loop_errors_total", labels) or 0.0) > counted
    assert ownership.owned == {0, 2}, "a lease is only given up when the store says it is lost"


async def test_a_redis_emptied_under_the_engine_is_logged_and_the_next_events_run(
    start_api: StartApi, redis_url: str
) -> None:
    """Redis restarted without its data (no persistence, a failover to an empty replica): the worker's blocking
    read fails once (its consumer groups are gone), is logged, and the worker makes them again; what was stored
    is lost, but the events that come after run their journeys."""
    api = await start_api()
    cart = {"items": [{"sku": "S", "name": "Sneakers", "price": 50.0}], "total": 50.0}
    await api.put_customer("e1", {"addresses": {"push": ["tok-e1"], "email": "e1@example.com"}})
    await api.event("cart_abandoned", "e1", properties=cart)
    await api.wait_until("e1", lambda entries: any(e["kind"] == "message" for e in entries))
    with capture_logs() as logs:
        async with redis.Redis.from_url(redis_url) as client:
            await client.flushdb()
        await api.put_customer("e2", {"addresses": {"push": ["tok-e2"], "email": "e2@example.com"}})
        await api.event("cart_abandoned", "e2", properties=cart)
        entries = await api.wait_until("e2", lambda entries: any(e["kind"] == "message" for e in entries),
                                       timeout=15)
    assert [(e["template"], e["status"]) for e in entries if e["kind"] == "message"] == [("cart_discount", "sent")]
    assert any(entry["event"] == "worker_loop_failed" for entry in logs)
    await api.request("GET", "/v1/customers/e1", 404)  # lost with the data
