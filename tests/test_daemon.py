"""`omnicanal serve` as a real process: restart during a wait, clean stop, and Redis going away."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from conftest import StartApi, has_message

pytestmark = pytest.mark.slow  # `omnicanal serve` as real processes

OMNICANAL = str(Path(sys.executable).with_name("omnicanal"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Daemon:
    """One `omnicanal serve` process and a JSON client for it."""

    def __init__(self, project: Path, redis_url: str, clock_speed: float) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "OMNICANAL_REDIS_URL": redis_url, "OMNICANAL_PORT": str(self.port),
                    "OMNICANAL_JOURNEYS_DIR": str(project / "journeys"),
                    "OMNICANAL_TEMPLATES_DIR": str(project / "templates"),
                    "OMNICANAL_CLOCK_SPEED": str(clock_speed), "OMNICANAL_TIMER_POLL_INTERVAL": "0.02",
                    "OMNICANAL_WORKER_ID": "test-worker",
                    "OMNICANAL_QUIET_HOURS": "off"}
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        self.process = subprocess.Popen([OMNICANAL, "serve"], env=self.env, stderr=subprocess.PIPE)
        async with asyncio.timeout(15):
            while True:
                assert self.process.poll() is None, self.process.stderr.read() if self.process.stderr else ""
                try:
                    if (await self.call("GET", "/readyz"))[0] == 200:
                        return
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.05)

    def stop(self) -> tuple[int, str]:
        """SIGTERM, then the exit code and what it logged."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        _, err = self.process.communicate(timeout=15)
        return self.process.returncode, err.decode()

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with aiohttp.ClientSession() as http, http.request(method, self.base + path, json=body) as response:
            return response.status, await response.json(content_type=None)

    async def messages(self, customer_id: str) -> list[str]:
        _, body = await self.call("GET", f"/v1/customers/{customer_id}/timeline")
        return [e["template"] for e in body.get("entries", []) if e["kind"] == "message" and e["status"] == "sent"]


StartDaemon = Callable[[float], Awaitable[Daemon]]


@pytest.fixture
def start_daemon(project: Path, redis_url: str) -> Iterator[StartDaemon]:
    """Start an `omnicanal serve` on the test Redis at a clock speed; whatever is still running is killed after."""
    started: list[Daemon] = []

    async def start(clock_speed: float) -> Daemon:
        daemon = Daemon(project, redis_url, clock_speed)
        started.append(daemon)
        await daemon.start()
        return daemon

    yield start
    for daemon in started:
        if daemon.process and daemon.process.returncode is None:
            daemon.process.kill()
            daemon.process.communicate()


async def test_restart_during_a_wait_continues_the_journey(start_daemon: StartDaemon) -> None:
    # welcome_series: welcome, wait 2d, welcome_tips, wait 5d, welcome_offer; 2 journey days = 1 real second
    first = await start_daemon(172800.0)
    await first.call("PUT", "/v1/customers/w1", {"attributes": {"first_name": "Inès"}, "locale": "fr",
                                                  "addresses": {"email": "ines@example.com"}})
    assert (await first.call("POST", "/v1/events", {"name": "signed_up", "customer_id": "w1"}))[0] == 202
    async with asyncio.timeout(10):
        while "welcome" not in await first.messages("w1"):  # (on a busy machine, the tips may have gone too)
            await asyncio.sleep(0.05)
    welcomed = time.monotonic()  # the welcome went before this: the 2-day wait ends within 1 s of it
    code, log = first.stop()
    assert code == 0, log
    assert '"event": "stopped"' in log

    await asyncio.sleep(max(0.0, welcomed + 1.0 - time.monotonic()))  # the wait falls due while no daemon runs
    second = await start_daemon(172800.0)
    async with asyncio.timeout(15):
        while await second.messages("w1") != ["welcome", "welcome_tips", "welcome_offer"]:
            await asyncio.sleep(0.05)
    assert second.stop()[0] == 0


async def test_sigterm_loses_no_accepted_event(start_daemon: StartDaemon) -> None:
    daemon = await start_daemon(1.0)
    events = [{"name": "page_viewed", "customer_id": f"v{n % 20}", "properties": {"n": n}} for n in range(600)]
    ids: list[str] = []
    for chunk in range(0, 600, 100):
        status, body = await daemon.call("POST", "/v1/events/batch", {"events": events[chunk:chunk + 100]})
        assert status == 202
        ids += [r["id"] for r in body["results"]]
    assert daemon.stop()[0] == 0

    again = await start_daemon(1.0)
    async with asyncio.timeout(15):
        while True:
            seen = []
            for n in range(20):
                _, body = await again.call("GET", f"/v1/customers/v{n}/timeline")
                seen += [e["event_id"] for e in body.get("entries", [])]
            if len(seen) == 600:
                break
            await asyncio.sleep(0.1)
    assert sorted(seen) == sorted(ids)


async def test_sigterm_leaves_no_entry_read_and_unacknowledged(start_daemon: StartDaemon, redis_url: str) -> None:
    # A batch is acknowledged in the round trip that reads the next one, so the batch in hand when SIGTERM
    # arrives is acknowledged as the worker stops: what it applied is not re-applied by the next start, and
    # what it had not read yet stays in the streams.
    daemon = await start_daemon(1.0)
    events = [{"name": "page_viewed", "customer_id": f"p{n % 50}", "properties": {"n": n}} for n in range(1000)]
    assert (await daemon.call("POST", "/v1/events/batch", {"events": events}))[0] == 202
    assert daemon.stop()[0] == 0
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        streams = [key async for key in client.scan_iter(match="oc:*:work", _type="stream")]
        assert streams
        for stream in streams:
            assert (await client.xpending(stream, "omnicanal-workers"))["pending"] == 0, stream
        applied = 0
        for n in range(50):
            timeline = await client.lrange(f"oc:{{default:c:p{n}}}:timeline", 0, -1)
            applied += sum('"kind":"event"' in entry for entry in timeline)
        left = sum([await client.xlen(stream) for stream in streams])
        assert applied + left == 1000
    finally:
        await client.aclose()


RestartRedis = Callable[[], Awaitable[None]]


@pytest.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[tuple[str, RestartRedis]]:
    """A redis-server of this test's own, to stop under a running engine and start again (empty) with the
    function given. Every server started is killed at teardown: ask for this fixture before `start_api`, so that
    the engine stops first (a worker that loses its Redis while stopping waits out its 1 s retry pause)."""
    port = free_port()
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--dir", str(tmp_path)]
    servers: list[subprocess.Popen[bytes]] = []

    async def start() -> None:
        servers.append(subprocess.Popen(command, stdout=subprocess.DEVNULL))
        async with asyncio.timeout(10):
            while True:
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.close()
                    return
                except OSError:
                    await asyncio.sleep(0.05)

    await start()
    yield f"redis://127.0.0.1:{port}/0", start
    for server in servers:
        server.kill()
        server.wait()


async def test_store_down_means_503_never_202(
    private_redis: tuple[str, RestartRedis], start_api: StartApi
) -> None:
    url, restart = private_redis
    api = await start_api(redis_url=url)
    await api.event("page_viewed", "d1")
    subprocess.run(["redis-cli", "-u", url, "shutdown", "nosave"], check=False, capture_output=True)
    await asyncio.sleep(0.2)
    body = await api.request("POST", "/v1/events", 503, json={"name": "page_viewed", "customer_id": "d1"})
    assert body["error"] == "store_unavailable" and "nothing was stored" in body["message"]
    await api.request("POST", "/v1/events/batch", 503, json={"events": [{"name": "x", "customer_id": "d1"}]})
    await api.request("PUT", "/v1/customers/d1", 503, json={"locale": "fr"})
    assert (await api.request("GET", "/readyz", 503))["status"] == "not_ready"

    await restart()
    async with asyncio.timeout(10):
        while (await api.client.get("/readyz")).status != 200:
            await asyncio.sleep(0.1)
    await api.event("signed_up", "d1")  # the engine reconnected by itself
    await api.put_customer("d1", {"addresses": {"email": "d1@example.com"}})
    await api.wait_until("d1", has_message("welcome"))
