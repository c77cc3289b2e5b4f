"""Segment backfills on real Redis, through the HTTP API and the segment files: a segment added (or changed) while
the daemon runs is evaluated for the customers who already exist — each one who matches enters once, with one
`segment.entered` — with its progress in `GET /v1/segments/{id}`; a customer's own event during the walk is
evaluated consistently with it; a walk whose process is killed resumes elsewhere without a second event."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from conftest import Api, StartApi, write_journey
from faults_support import populated_cluster
from test_broadcasts import customers
from test_segments import write_segment

GOLD = "id: gold\nwhere: \"customer.tier == 'gold'\"\n"
SILVER = "id: gold\nwhere: \"customer.tier == 'silver'\"\n"
ENTERED_GOLD = """\
id: gold_welcome
trigger: {event: segment.entered, where: "event.properties.segment == 'gold'"}
re_entry: always
steps:
  - exit
"""
"""Started by every `segment.entered` of `gold`, again each time (`always`): its count is the events' count."""


def said(entries: list[dict[str, Any]], name: str) -> int:
    """How many `name` events of segment gold the customer's timeline holds (emitted only when a journey listens:
    `segment.entered` here)."""
    return sum(1 for e in entries if e["kind"] == "event" and e["name"] == name
               and e["properties"].get("segment") == "gold")


async def backfill(api: Api, segment_id: str) -> dict[str, Any]:
    """The segment's backfill, once the file watch loaded the segment ({} until then)."""
    body = await api.request("GET", f"/v1/segments/{segment_id}")
    return dict(body.get("backfill") or {})


async def backfilled(api: Api, segment_id: str, timeout: float = 20.0) -> dict[str, Any]:
    """The segment once its backfill walked every customer and the workers applied every evaluation."""
    async with asyncio.timeout(timeout):
        while (await backfill(api, segment_id)).get("state") != "done":
            await asyncio.sleep(0.05)
    await api.settled()
    return await api.request("GET", f"/v1/segments/{segment_id}", 200)


async def test_a_segment_added_later_takes_in_the_customers_who_already_match_once(
        project: Path, start_api: StartApi) -> None:
    write_journey(project, "gold_welcome", ENTERED_GOLD)
    api = await start_api(reload_interval=0.05)
    await customers(api, 15, gold_every=3)  # c0, c3 ... c12: 5 gold customers, before the segment exists
    await api.settled()

    write_segment(project, "gold", GOLD)
    body = await backfilled(api, "gold")
    assert (body["size"], body["backfill"]["considered"], body["backfill"]["total"]) == (5, 15, 15)
    for n in range(15):
        entries = await api.timeline(f"c{n}")
        assert said(entries, "segment.entered") == (1 if n % 3 == 0 else 0), (n, entries)
        assert (await api.request("GET", f"/v1/customers/c{n}", 200))["segments"] == (["gold"] if n % 3 == 0 else [])
    journey = await api.request("GET", "/v1/journeys/gold_welcome", 200)
    assert journey["counts"]["started"] == 5

    write_segment(project, "gold", SILVER)  # changed: evaluated again for everyone
    async with asyncio.timeout(10):
        while (await backfill(api, "gold"))["armed_at"] == body["backfill"]["armed_at"]:
            await asyncio.sleep(0.02)  # the new definition was loaded
    body = await backfilled(api, "gold")
    assert body["size"] == 10
    for n in range(15):  # the gold ones left it; the silver ones entered it, once
        assert said(await api.timeline(f"c{n}"), "segment.entered") == 1, n
        assert (await api.request("GET", f"/v1/customers/c{n}", 200))["segments"] == ([] if n % 3 == 0 else ["gold"])


async def test_a_customers_event_during_the_walk_is_evaluated_with_it(project: Path, start_api: StartApi) -> None:
    write_journey(project, "gold_welcome", ENTERED_GOLD)
    api = await start_api(reload_interval=0.05, segment_backfill_rate=80)  # 20 customers, 8 every 0.1 s
    await customers(api, 20, gold_every=2)
    await api.settled()
    write_segment(project, "gold", GOLD)
    async with asyncio.timeout(10):
        while not (await backfill(api, "gold")).get("considered", 0):
            await asyncio.sleep(0.01)
    for n in range(20):  # mid-walk: every silver customer becomes gold, every gold one silver
        await api.put_customer(f"c{n}", {"attributes": {"tier": "silver" if n % 2 == 0 else "gold"}})
    body = await backfilled(api, "gold")
    assert body["size"] == 10
    for n in range(20):
        entries = await api.timeline(f"c{n}")
        segments = (await api.request("GET", f"/v1/customers/c{n}", 200))["segments"]
        if n % 2:  # gold since its update: in, having entered once, whichever of the two evaluations came first
            assert (said(entries, "segment.entered"), segments) == (1, ["gold"]), (n, entries)
        else:  # gold, then silver: out, having entered (once) only if the walk reached them before their update
            assert said(entries, "segment.entered") <= 1 and segments == [], (n, entries)


WALK_RATE = 500
"""Customers the backfill queues per second in the test below: 3,000 take 6 seconds, time for a kill to land."""


@pytest.mark.slow  # four processes, a walk paced in real time, a walker's lease running out
@pytest.mark.timeout(180)
async def test_a_backfill_whose_walker_is_killed_resumes_elsewhere_without_a_second_event(
        project: Path, redis_url: str, tmp_path: Path) -> None:
    count = 3000
    write_journey(project, "gold_welcome", ENTERED_GOLD)
    env = {"OMNICANAL_SEGMENTS_DIR": str(project / "segments"), "OMNICANAL_LOG_LEVEL": "info",
           "OMNICANAL_RELOAD_INTERVAL": "0.2", "OMNICANAL_SEGMENT_BACKFILL_RATE": str(WALK_RATE)}
    async with populated_cluster(project, redis_url, tmp_path / "logs", env, count) as populated:
        api, keys = populated.api, populated.keys
        write_segment(project, "gold", "id: gold\nwhere: \"customer.id is defined\"\n")  # every customer
        await populated.kill_walker(keys.segment_backfill_walker("gold"), keys.segment_backfill("gold"), "considered",
                                    count)

        async with asyncio.timeout(90):  # another process takes the walk over when its lease runs out
            while True:
                status, body = await api.call("GET", "/v1/segments/gold")
                assert status in (200, 404), (status, body)  # 404: the API process has not reloaded yet
                if status == 200 and body["size"] == count and body["backfill"]["state"] == "done":
                    break
                await asyncio.sleep(0.2)
        assert body["backfill"]["considered"] >= count == body["backfill"]["total"], body
        async with asyncio.timeout(30):  # every evaluation applied, each segment.entered too
            while (await api.call("GET", "/v1/journeys/gold_welcome"))[1]["counts"].get("started", 0) < count:
                await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # anything queued twice would have been applied by now
        _, journey = await api.call("GET", "/v1/journeys/gold_welcome")
        assert journey["counts"]["started"] == count  # each customer entered once: none twice, none forgotten
        events = populated.cluster.log_events()
        assert events["segment_backfill_started"] == 1 and events["segment_backfill_done"] == 1, \
            populated.cluster.logs()
