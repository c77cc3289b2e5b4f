"""Segments through the daemon, on real Redis: events and profile changes move customers in and out, a 90-day
window expiring with no event moves a customer in on the right day, journeys start on segment.entered, the
index answers sizes, and `omnicanal validate` reports a bad segment file at its line."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from conftest import Api, StartApi, has_message, settings_for, write_journey
from omnicanal.api.app import create_app
from omnicanal.engine.clock import ManualClock
from omnicanal.engine.runtime import Runtime
from test_cli import run

LAPSED_GOLD = """\
# yaml-language-server: $schema=../schemas/segment.schema.json
id: lapsed_gold
where: "customer.tier == 'gold' and aggregates.orders_90d == 0"
aggregates:
  orders_90d: {event: order_placed, count: true, within: 90d}
"""
BIG_SPENDER = """\
id: big_spender
where: "aggregates.spend_365d >= 100"
aggregates:
  spend_365d: {event: order_placed, sum: "event.properties.total", within: 365d}
"""
WIN_BACK = """\
id: win_back
trigger: {event: segment.entered, where: "event.properties.segment == 'lapsed_gold'"}
re_entry: always
steps:
  - send: {template: welcome, channels: [email]}
"""
START = datetime(2027, 1, 15, 8, tzinfo=UTC).timestamp()
DAY = 86400.0


def write_segment(project: Path, name: str, text: str) -> None:
    (project / "segments").mkdir(exist_ok=True)
    (project / "segments" / f"{name}.yaml").write_text(text, encoding="utf-8")


async def customer(api: Api, customer_id: str) -> dict[str, Any]:
    body: dict[str, Any] = await api.request("GET", f"/v1/customers/{customer_id}", 200)
    return body


async def test_events_move_a_customer_into_a_segment_and_the_index_counts_them(
        project: Path, start_api: StartApi) -> None:
    write_segment(project, "big_spender", BIG_SPENDER)
    write_segment(project, "lapsed_gold", LAPSED_GOLD)
    api = await start_api()
    await api.put_customer("c1", {"attributes": {"tier": "silver"}})
    await api.put_customer("c2", {"attributes": {"tier": "silver"}})
    for customer_id, total in (("c1", 60), ("c1", 50), ("c2", 30)):
        await api.event("order_placed", customer_id, properties={"total": total})
    await api.settled()
    assert (await customer(api, "c1"))["segments"] == ["big_spender"]
    assert (await customer(api, "c2"))["segments"] == []
    listed = await api.request("GET", "/v1/segments", 200)
    assert [(s["id"], s["size"]) for s in listed["segments"]] == [("big_spender", 1), ("lapsed_gold", 0)]
    one = await api.request("GET", "/v1/segments/big_spender", 200)
    assert (one["id"], one["where"], one["size"]) == ("big_spender", "aggregates.spend_365d >= 100", 1)
    await api.request("GET", "/v1/segments/nope", 404)


async def test_a_profile_change_through_put_moves_a_customer_in_and_out(project: Path, start_api: StartApi) -> None:
    write_segment(project, "lapsed_gold", LAPSED_GOLD)
    api = await start_api()
    await api.put_customer("c1", {"attributes": {"tier": "gold"}})
    await api.settled()
    assert (await customer(api, "c1"))["segments"] == ["lapsed_gold"]
    await api.put_customer("c1", {"attributes": {"tier": "silver"}})
    await api.settled()
    assert (await customer(api, "c1"))["segments"] == []
    assert (await api.request("GET", "/v1/segments/lapsed_gold", 200))["size"] == 0


StartManual = Callable[[], Awaitable[tuple[Api, ManualClock]]]


@pytest.fixture
async def start_manual(project: Path, redis_url: str) -> AsyncIterator[StartManual]:
    """Engine + API on a clock the test moves (a simulated 90 days take no time)."""
    started: list[tuple[TestClient[Any, Any], Runtime]] = []

    async def start() -> tuple[Api, ManualClock]:
        clock = ManualClock(START)
        runtime = await Runtime.start(settings_for(project, redis_url=redis_url), clock=clock)
        client: TestClient[Any, Any] = TestClient(TestServer(create_app(runtime)))
        await client.start_server()
        started.append((client, runtime))
        return Api(client, runtime), clock

    yield start
    for client, runtime in reversed(started):
        await client.close()
        await runtime.stop()


async def test_a_90_day_window_expiring_moves_a_customer_into_lapsed_gold_on_the_90th_day_once(
        project: Path, start_manual: StartManual) -> None:
    write_segment(project, "lapsed_gold", LAPSED_GOLD)
    write_journey(project, "win_back", WIN_BACK)
    api, clock = await start_manual()
    await api.event("order_placed", "c1", properties={"total": 80})  # 2027-01-15
    await api.settled()
    await api.put_customer("c1", {"attributes": {"tier": "gold"}, "addresses": {"email": "lea@example.com"}})
    await api.settled()
    assert (await customer(api, "c1"))["segments"] == []  # gold, but ordered within 90 days
    clock.advance_to(START + 89 * DAY + 15 * 3600)  # 2027-04-14 23:00: the order is 89 days old
    await asyncio.sleep(0.3)  # timer polls
    await api.settled()
    assert (await customer(api, "c1"))["segments"] == []
    clock.advance_to(START + 90 * DAY - 7 * 3600)  # 2027-04-15 01:00
    entries = await api.wait_until("c1", has_message("welcome"))
    [entered] = [e for e in entries if e["kind"] == "event" and e["name"] == "segment.entered"]
    assert entered["properties"] == {"segment": "lapsed_gold"}
    assert entered["at"].startswith("2027-04-15")
    assert (await customer(api, "c1"))["segments"] == ["lapsed_gold"]
    assert (await api.request("GET", "/v1/segments/lapsed_gold", 200))["size"] == 1
    clock.advance_to(START + 120 * DAY)
    await asyncio.sleep(0.3)
    await api.settled()
    entries = await api.timeline("c1")
    assert sum(e["kind"] == "event" and e["name"] == "segment.entered" for e in entries) == 1
    assert sum(e["kind"] == "journey" and e["status"] == "started" for e in entries) == 1


async def test_segments_reload_with_journeys(project: Path, start_api: StartApi) -> None:
    api = await start_api()
    assert await api.request("GET", "/v1/segments", 200) == {"segments": []}
    write_segment(project, "big_spender", BIG_SPENDER)
    assert await api.runtime.reload()
    listed = await api.request("GET", "/v1/segments", 200)
    assert [s["id"] for s in listed["segments"]] == ["big_spender"]
    write_segment(project, "big_spender", BIG_SPENDER.replace("where:", "wher:"))
    assert not await api.runtime.reload()  # a broken file: the previous segments stay
    assert [s["id"] for s in (await api.request("GET", "/v1/segments", 200))["segments"]] == ["big_spender"]


@pytest.mark.slow  # starts the command as its own process
def test_validate_reports_a_bad_segment_at_its_line(project: Path) -> None:
    write_segment(project, "lapsed_gold", LAPSED_GOLD.replace("orders_90d == 0", "orders_30d == 0")
                  .replace("within: 90d", "within: 90 days"))
    result = run("validate", str(project))
    assert result.returncode == 1
    path = project / "segments" / "lapsed_gold.yaml"
    assert result.stdout.splitlines() == [
        f"{path}:3: where: unknown aggregate 'orders_30d' (this segment's aggregates: orders_90d)",
        f"{path}:5: aggregates.orders_90d.within: bad duration '90 days': use a number followed by s, m, h, d or "
        "w, e.g. 30s, 15m, 2d"]
