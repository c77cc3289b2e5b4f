"""Shared fixtures: a real Redis database per test, and an engine + HTTP API started on it.

Tests use the Redis at OMNICANAL_TEST_REDIS_URL (default: database 11 of 127.0.0.1:6379), flushed before and
after each test so no test sees another's keys; with pytest-xdist, each worker its own database (_test_redis_url).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import pytest
import redis.asyncio as redis
from aiohttp.test_utils import TestClient, TestServer

from faults_support import Processes
from omnicanal.api.app import create_app
from omnicanal.config import Settings
from omnicanal.engine.clock import Clock
from omnicanal.engine.runtime import Runtime
from standins import TwilioStandIn

ROOT = Path(__file__).resolve().parent.parent


def _test_redis_url() -> str:
    """OMNICANAL_TEST_REDIS_URL; under pytest-xdist (`-n N`), worker K takes the database K after its database
    on the same server (11, 12... by default), since every test flushes the database it uses."""
    url = os.environ.get("OMNICANAL_TEST_REDIS_URL", "redis://127.0.0.1:6379/11")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return url
    parts = urlsplit(url)
    database = int(parts.path.strip("/") or 0) + int(worker[2:])
    return urlunsplit(parts._replace(path=f"/{database}"))


REDIS_URL = _test_redis_url()


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    client = redis.Redis.from_url(REDIS_URL)
    await client.flushdb()
    yield REDIS_URL
    await client.flushdb()
    await client.aclose()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    """Daemon processes a test starts (faults_support.Processes), killed when it ends, their logs in tmp_path."""
    started = Processes(tmp_path / "logs")
    yield started
    started.kill_all()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client for the API of processes a test started."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
        yield session


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the shipped journeys and templates that a test may edit."""
    shutil.copytree(ROOT / "journeys", tmp_path / "journeys")
    shutil.copytree(ROOT / "templates", tmp_path / "templates")
    return tmp_path


def settings_for(project: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "journeys_dir": project / "journeys",
        "templates_dir": project / "templates",
        "segments_dir": project / "segments",  # none unless a test writes some
        "clock_speed": 36000.0,
        "timer_poll_interval": 0.01,
        "partitions": 4,
        "quiet_hours": "off",  # tests run at any hour: a test of quiet hours turns them on itself
        **overrides,
    }
    return Settings(**values)


class Api:
    """A test client for the daemon API, with the waits a journey test needs."""

    def __init__(self, client: TestClient[Any, Any], runtime: Runtime) -> None:
        self.client = client
        self.runtime = runtime

    async def request(self, method: str, path: str, expect: int | None = None, **kwargs: Any) -> Any:
        response = await self.client.request(method, path, **kwargs)
        body = await response.json(content_type=None)
        if expect is not None:
            assert response.status == expect, (response.status, body)
        return body

    async def put_customer(self, customer_id: str, profile: dict[str, Any]) -> Any:
        return await self.request("PUT", f"/v1/customers/{customer_id}", 200, json=profile)

    async def event(self, name: str, customer_id: str, **fields: Any) -> str:
        body = await self.request("POST", "/v1/events", 202, json={"name": name, "customer_id": customer_id,
                                                                   **fields})
        return str(body["id"])

    async def timeline(self, customer_id: str) -> list[dict[str, Any]]:
        body = await self.request("GET", f"/v1/customers/{customer_id}/timeline")
        return list(body.get("entries", []))

    async def messages(self, customer_id: str) -> list[dict[str, Any]]:
        return [e for e in await self.timeline(customer_id) if e["kind"] == "message"]

    async def wait_until(self, customer_id: str, predicate: Callable[[list[dict[str, Any]]], bool],
                         timeout: float = 10.0) -> list[dict[str, Any]]:
        """Poll the timeline until `predicate(entries)` holds; fail with the timeline shown."""
        entries: list[dict[str, Any]] = []
        try:
            async with asyncio.timeout(timeout):
                while not predicate(entries := await self.timeline(customer_id)):
                    await asyncio.sleep(0.02)
        except TimeoutError:
            pytest.fail(f"timeline of {customer_id} never matched:\n" + "\n".join(map(str, entries)))
        return entries

    async def settled(self) -> None:
        """Wait until the worker has nothing left in the streams."""
        async with asyncio.timeout(10):
            while await self.runtime.queue.backlog():
                await asyncio.sleep(0.02)


StartApi = Callable[..., Awaitable[Api]]


@pytest.fixture
async def start_api(project: Path, redis_url: str) -> AsyncIterator[StartApi]:
    """Start engine + API on the test Redis; settings can be overridden per call, the shared journey clock
    replaced (`clock=ManualClock(...)`: time moves when the test says). Stopped at teardown."""
    started: list[tuple[TestClient[Any, Any], Runtime]] = []

    async def start(clock: Clock | None = None, **overrides: Any) -> Api:
        runtime = await Runtime.start(settings_for(project, **{"redis_url": redis_url, **overrides}), clock=clock)
        client: TestClient[Any, Any] = TestClient(TestServer(create_app(runtime)))
        await client.start_server()
        started.append((client, runtime))
        return Api(client, runtime)

    yield start
    for client, _ in reversed(started):
        await client.close()
    # together: each waits for its worker's blocking read to return, which takes up to 0.2 s
    await asyncio.gather(*(runtime.stop() for _, runtime in started))


@pytest.fixture
async def twilio(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[TwilioStandIn]:
    """A Twilio stand-in, with the settings that point the twilio connectors at it."""
    async with TwilioStandIn() as standin:
        for name, value in standin.env().items():
            monkeypatch.setenv(name, value)
        yield standin


def write_journey(project: Path, name: str, text: str) -> None:
    """Add (or replace) a journey file in the test's project copy."""
    (project / "journeys" / f"{name}.yaml").write_text(text, encoding="utf-8")


async def fresh_second() -> None:
    """Wait for the start of a wall-clock second: the rate windows (API keys, providers) are those seconds."""
    await asyncio.sleep(1.02 - time.time() % 1)


HANDED_OVER = ("sent", "queued", "delivered", "read")
"""Statuses of a message the provider took."""


def sent(entries: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(template, channel) of every message handed over to a provider, in timeline order."""
    return [(e["template"], e["channel"]) for e in entries if e["kind"] == "message" and e["status"] in HANDED_OVER]


def has_message(template: str, status: str = "sent") -> Callable[[list[dict[str, Any]]], bool]:
    return lambda entries: any(
        e["kind"] == "message" and e.get("template") == template and e["status"] == status for e in entries
    )


def journey_ended(journey: str) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda entries: any(
        e["kind"] == "journey" and e["journey"] == journey and e["status"] != "started" for e in entries
    )
