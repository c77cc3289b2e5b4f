"""The same engine on a real 3-primary Redis Cluster started on loopback ports: the reference journey runs
across it, every multi-key operation staying inside one slot."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis.asyncio as redis

from conftest import StartApi, has_message, journey_ended
from omnicanal.scopes import Scope
from test_access import bearer, new_key, until_known
from test_erasure import LEAS, dump, holding, lea_goes_through_everything, with_coupons
from test_reference_journey import CART, LEA, in_store_order

pytestmark = [
    pytest.mark.slow,  # starts a Redis Cluster of its own
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed"),
]


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _cluster_ports(count: int) -> list[int]:
    """Ports whose cluster-bus twins (+10000) are free too."""
    ports: list[int] = []
    while len(ports) < count:
        port = random.randint(20000, 29999)
        if port not in ports and _free(port) and _free(port + 10000):
            ports.append(port)
    return ports


@pytest.fixture(scope="module")
def cluster_ports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[int]]:
    """The cluster, started once for the module's tests (each gets it emptied: see `cluster`)."""
    ports = _cluster_ports(3)
    base = tmp_path_factory.mktemp("cluster")
    servers = []
    for port in ports:
        node_dir = base / str(port)
        node_dir.mkdir()
        servers.append(subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
             "--cluster-config-file", "nodes.conf", "--save", "", "--appendonly", "no", "--dir", str(node_dir)],
            stdout=subprocess.DEVNULL))
    try:
        for port in ports:
            _until(lambda port=port: not _free(port), 10)
        created = subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports), "--cluster-replicas", "0",
             "--cluster-yes"], capture_output=True, text=True, timeout=30)
        assert created.returncode == 0, created.stdout + created.stderr
        _until(lambda: "cluster_state:ok" in subprocess.run(
            ["redis-cli", "-p", str(ports[0]), "cluster", "info"], capture_output=True, text=True).stdout, 20)
        yield ports
    finally:
        for server in servers:
            server.kill()
            server.wait()


def _until(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s"
        time.sleep(0.05)


@pytest.fixture
def cluster(cluster_ports: list[int]) -> str:
    """The module's cluster, every primary emptied: a test sees no key of another."""
    for port in cluster_ports:
        flushed = subprocess.run(["redis-cli", "-p", str(port), "flushall"], capture_output=True, text=True)
        assert flushed.stdout.strip() == "OK", flushed.stdout + flushed.stderr
    return f"redis+cluster://127.0.0.1:{cluster_ports[0]}"


async def test_the_reference_journey_runs_on_a_redis_cluster(start_api: StartApi, cluster: str) -> None:
    api = await start_api(redis_url=cluster, partitions=8)
    customers = [f"c{n}" for n in range(12)]  # spread over the three primaries
    for customer_id in customers:
        await api.put_customer(customer_id, LEA)
        await api.event("cart_abandoned", customer_id, idempotency_key="cart-1", properties=CART)
    for customer_id in customers:
        await api.wait_until(customer_id, has_message("cart_discount"))
        await api.event("order_placed", customer_id, properties=in_store_order())
    for customer_id in customers:
        entries = await api.wait_until(customer_id, journey_ended("abandoned_cart"))
        assert [(m["template"], m["channel"]) for m in entries if m["kind"] == "message"] == [
            ("cart_discount", "push"), ("order_thanks", "whatsapp")]
    journey = await api.request("GET", "/v1/journeys/abandoned_cart", 200)
    assert journey["counts"]["started"] == journey["counts"]["exited"] == len(customers)
    assert (await api.request("GET", "/readyz", 200))["checks"]["store"] == "ok"


async def test_scoped_keys_rate_limits_and_the_audit_log_work_on_a_redis_cluster(start_api: StartApi,
                                                                                 cluster: str) -> None:
    api = await start_api(redis_url=cluster, partitions=8, rate_limit_per_key=1000)
    _, admin = await new_key(api, Scope.JOURNEYS_ADMIN)
    await until_known(api, admin)
    await api.request("POST", "/v1/journeys/abandoned_cart/pause", 202, headers=bearer(admin))
    await api.request("GET", "/v1/journeys", 401, headers=bearer(admin.replace("ock.", "ock-")))
    await api.request("GET", "/v1/journeys", 403, headers=bearer(admin))
    entries = (await api.request("GET", "/v1/audit", 200, headers=bearer(admin)))["entries"]
    assert [e["action"] for e in entries] == ["journey.pause", "keys.create"]


async def test_an_erasure_leaves_nothing_of_the_customer_on_any_node(project: Path, start_api: StartApi,
                                                                     cluster: str) -> None:
    with_coupons(project)
    api = await start_api(redis_url=cluster, partitions=8)
    await lea_goes_through_everything(api)
    client = redis.RedisCluster.from_url(cluster.replace("redis+cluster://", "redis://"), decode_responses=True)
    try:
        assert holding(await dump(client), LEAS)
        erased = await api.request("DELETE", "/v1/customers/lea.dupont", 200)
        assert erased["erased"]["identities"] == 4 and erased["erased"]["merged_ids"] == 1
        contents = await dump(client)
    finally:
        await client.aclose()
    assert holding(contents, LEAS) == {}
    assert holding(contents, ("tom.martin",))
