"""Broadcasts through the HTTP API on real Redis: one journey started for a whole audience, each customer once,
with exact progress, re-entry rules applied per customer, a condition choosing the audience, cancellation
midway, and clear 4xx for what cannot be done."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from conftest import Api, StartApi, write_journey
from omnicanal.engine.broadcasts import start_item
from test_cli import run
from test_segments import write_segment

WINTER_SALE = """\
id: winter_sale
trigger: {event: winter_sale_requested}
re_entry: never
steps:
  - send: {template: welcome, channels: [email]}
"""


def customer(n: int, tier: str = "silver") -> dict[str, Any]:
    return {"attributes": {"first_name": f"C{n}", "tier": tier}, "locale": "fr",
            "addresses": {"email": f"c{n}@example.com"}, "consents": {"email": {"marketing": True}}}


async def customers(api: Api, count: int, gold_every: int = 0) -> None:
    for n in range(count):
        tier = "gold" if gold_every and n % gold_every == 0 else "silver"
        await api.put_customer(f"c{n}", customer(n, tier))


async def finished(api: Api, broadcast_id: str, timeout: float = 20.0) -> dict[str, Any]:
    body: dict[str, Any] = {}
    async with asyncio.timeout(timeout):
        while not (body := await api.request("GET", f"/v1/broadcasts/{broadcast_id}", 200))["finished"]:
            await asyncio.sleep(0.05)
    return body


def welcomed(entries: list[dict[str, Any]]) -> int:
    return sum(1 for e in entries if e["kind"] == "message" and e.get("template") == "welcome"
               and e["status"] == "sent")


async def test_a_broadcast_starts_the_journey_once_for_everyone(project: Path, start_api: StartApi) -> None:
    write_journey(project, "winter_sale", WINTER_SALE)
    api = await start_api()
    await customers(api, 30)
    created = await api.request("POST", "/v1/broadcasts", 201, json={
        "journey": "winter_sale", "audience": {"everyone": True}, "data": {"season": "hiver"}})
    assert created["status"] == "scheduled" and created["id"].startswith("b_")
    done = await finished(api, created["id"])
    assert done["status"] == "done"
    assert (done["planned"], done["queued"], done["started"], done["skipped"], done["pending"]) == (30, 30, 30, {}, 0)
    for n in range(30):
        entries = await api.timeline(f"c{n}")
        assert welcomed(entries) == 1
        event = next(e for e in entries if e["kind"] == "event" and e["name"] == "broadcast")
        assert event["properties"] == {"season": "hiver", "broadcast": created["id"]}

    again = await api.request("POST", "/v1/broadcasts", 201, json={
        "journey": "winter_sale", "audience": {"everyone": True}})
    second = await finished(api, again["id"])
    assert second["started"] == 0 and second["skipped"] == {"re_entry": 30}  # re_entry: never, per customer
    assert [welcomed(await api.timeline(f"c{n}")) for n in range(30)] == [1] * 30
    listed = await api.request("GET", "/v1/broadcasts", 200)
    assert [b["id"] for b in listed["broadcasts"]][:2] == [again["id"], created["id"]]


async def test_a_condition_chooses_the_audience(project: Path, start_api: StartApi) -> None:
    write_journey(project, "winter_sale", WINTER_SALE)
    api = await start_api()
    await customers(api, 20, gold_every=4)
    created = await api.request("POST", "/v1/broadcasts", 201, json={
        "journey": "winter_sale", "audience": {"where": "customer.tier == 'gold'"}})
    done = await finished(api, created["id"])
    assert (done["planned"], done["considered"], done["queued"], done["started"]) == (20, 20, 5, 5)
    for n in range(20):
        assert welcomed(await api.timeline(f"c{n}")) == (1 if n % 4 == 0 else 0)


async def test_a_segment_is_an_audience(project: Path, start_api: StartApi) -> None:
    write_journey(project, "winter_sale", WINTER_SALE)
    write_segment(project, "gold", "id: gold\nwhere: \"customer.tier == 'gold'\"\n")
    api = await start_api()
    await customers(api, 12, gold_every=3)
    await api.settled()  # each PUT's customer.updated placed its customer in the segment or not
    assert (await api.request("GET", "/v1/segments/gold", 200))["size"] == 4
    created = await api.request("POST", "/v1/broadcasts", 201, json={
        "journey": "winter_sale", "audience": {"segment": "gold"}})
    done = await finished(api, created["id"])
    assert (done["planned"], done["queued"], done["started"]) == (4, 4, 4)
    assert [welcomed(await api.timeline(f"c{n}")) for n in range(12)] == [1, 0, 0] * 4


async def test_a_broadcast_waits_for_its_moment(project: Path, start_api: StartApi) -> None:
    write_journey(project, "winter_sale", WINTER_SALE)
    api = await start_api(clock_speed=1.0)
    await customers(api, 3)
    created = await api.request("POST", "/v1/broadcasts", 201, json={
        "journey": "winter_sale", "audience": {"everyone": True}, "at": "2099-01-01T09:00:00Z"})
    await asyncio.sleep(0.6)  # a few walker polls
    waiting = await api.request("GET", f"/v1/broadcasts/{created['id']}", 200)
    assert (waiting["status"], waiting["queued"]) == ("scheduled", 0)
    assert [welcomed(await api.timeline(f"c{n}")) for n in range(3)] == [0] * 3


@pytest.mark.slow  # 4,000 customers at 1,000 per second: cancelled after about one second
async def test_a_broadcast_to_thousands_reports_progress_and_stops_when_cancelled(
        project: Path, start_api: StartApi) -> None:
    write_journey(project, "winter_sale", WINTER_SALE)
    api = await start_api()
    total = 4000
    batch = [{"name": "signed_up", "customer_id": f"c{n}", "properties": {}} for n in range(total)]
    for first in range(0, total, 1000):
        await api.request("POST", "/v1/events/batch", 202, json={"events": batch[first:first + 1000]})
    await api.settled()
    created = await api.request("POST", "/v1/broadcasts", 201, json={
        "journey": "winter_sale", "audience": {"everyone": True}, "rate": 1000})
    seen: list[int] = []
    async with asyncio.timeout(20):
        while (progress := await api.request("GET", f"/v1/broadcasts/{created['id']}", 200))["queued"] < 1000:
            seen.append(progress["queued"])
            await asyncio.sleep(0.05)
    cancelled = await api.request("DELETE", f"/v1/broadcasts/{created['id']}", 202)
    assert cancelled["status"] == "cancelled"
    final = await finished(api, created["id"])
    assert final["planned"] == total and 1000 <= final["queued"] < total, final
    assert final["started"] + sum(final["skipped"].values()) == final["queued"]  # exact: every queued start applied
    assert seen == sorted(seen)  # progress only grows
    await asyncio.sleep(0.5)
    assert (await api.request("GET", f"/v1/broadcasts/{created['id']}", 200))["queued"] == final["queued"]


async def test_what_cannot_be_broadcast_is_refused_naming_the_field(project: Path, start_api: StartApi) -> None:
    write_journey(project, "winter_sale", WINTER_SALE)
    api = await start_api()
    for body, field in (
        ({"journey": "nope", "audience": {"everyone": True}}, "journey"),
        ({"journey": "winter_sale", "audience": {"everyone": True, "where": "customer.vip"}}, "audience"),
        ({"journey": "winter_sale", "audience": {}}, "audience"),
        ({"journey": "winter_sale", "audience": {"where": "customer.tier =="}}, "audience.where"),
        ({"journey": "winter_sale", "audience": {"segment": "lapsed_gold"}}, "audience.segment"),
        ({"journey": "winter_sale", "audience": {"everyone": True}, "at": "tomorrow"}, "at"),
        ({"journey": "winter_sale", "audience": {"everyone": True}, "rate": -1}, "rate"),
    ):
        answer = await api.request("POST", "/v1/broadcasts", 422, json=body)
        assert answer["errors"][0]["field"] == field, (body, answer)
    too_big = await api.request("POST", "/v1/broadcasts", 413, json={
        "journey": "winter_sale", "audience": {"everyone": True}, "data": {"big": "x" * 70_000}})
    assert too_big["errors"][0]["field"] == "data"  # it goes into every customer's event: the events' limit
    await api.request("GET", "/v1/broadcasts/b_nope", 404)
    await api.request("DELETE", "/v1/broadcasts/b_nope", 404)


@pytest.mark.slow  # runs the omnicanal command
async def test_omnicanal_broadcast_follows_the_progress_to_the_end(project: Path, start_api: StartApi,
                                                                   redis_url: str) -> None:
    write_journey(project, "winter_sale", WINTER_SALE)
    api = await start_api()
    await customers(api, 25)
    env = {"OMNICANAL_REDIS_URL": redis_url, "OMNICANAL_PARTITIONS": "4", "OMNICANAL_CLOCK_SPEED": "36000",
           "OMNICANAL_JOURNEYS_DIR": str(project / "journeys"), "OMNICANAL_TEMPLATES_DIR": str(project / "templates"),
           "OMNICANAL_SEGMENTS_DIR": str(project / "segments")}
    result = await asyncio.to_thread(run, "broadcast", "winter_sale", "--everyone", "--data", '{"season": "hiver"}',
                                     **env)
    assert result.returncode == 0, result.stdout + result.stderr
    broadcast_id = result.stdout.strip()
    assert "25 started, skipped: none, 0 pending" in result.stderr, result.stderr
    assert [welcomed(await api.timeline(f"c{n}")) for n in range(25)] == [1] * 25
    listed = await asyncio.to_thread(run, "broadcasts", "list", **env)
    assert broadcast_id in listed.stdout and "(cli)" in listed.stdout
    refused = await asyncio.to_thread(run, "broadcast", "winter_sale", **env)
    assert refused.returncode == 2 and "name the audience one way" in refused.stderr
    unknown = await asyncio.to_thread(run, "broadcast", "nope", "--everyone", "--no-follow", **env)
    assert unknown.returncode == 1 and "no journey 'nope'" in unknown.stderr
    audit = await asyncio.to_thread(run, "audit", **env)
    assert "broadcast.create" in audit.stdout


async def test_a_process_that_has_not_reloaded_yet_starts_a_journey_deployed_meanwhile(
        project: Path, start_api: StartApi) -> None:
    """A journey file is added while two processes run; the one that has it loaded first (here, started after
    the file was written) walks the broadcast; the other, which never looked at its files again (no file watch),
    applies its customers' starts: it reloads its files before, instead of skipping them as an unknown journey."""
    behind = await start_api(reload_interval=0)
    await customers(behind, 30)
    write_journey(project, "winter_sale", WINTER_SALE)
    ahead = await start_api()
    created = await ahead.request("POST", "/v1/broadcasts", 201, json={
        "journey": "winter_sale", "audience": {"everyone": True}})
    done = await finished(ahead, created["id"])
    assert (done["planned"], done["started"], done["skipped"]) == (30, 30, {})  # before: {"unknown_journey": n}
    assert [welcomed(await ahead.timeline(f"c{n}")) for n in range(30)] == [1] * 30
    assert behind.runtime.registry.current_of("winter_sale") is not None


async def test_a_customer_erased_after_the_walk_met_them_is_not_made_again_by_their_start(
        project: Path, start_api: StartApi) -> None:
    """The walk reads a batch of the audience, then queues their starts: a customer erased in between (their
    erasure applied before their start) gets no new profile, timeline or message from the start — which is
    counted as skipped, so the broadcast still finishes."""
    write_journey(project, "winter_sale", WINTER_SALE)
    api = await start_api()
    await customers(api, 2)
    created = await api.request("POST", "/v1/broadcasts", 201, json={
        "journey": "winter_sale", "audience": {"everyone": True}, "at": "2100-01-01T00:00:00Z"})
    await api.request("DELETE", "/v1/customers/c1", 200)
    broadcast = await api.runtime.broadcasts.get(created["id"])
    assert broadcast is not None
    await api.runtime.queue.append([start_item(broadcast, "c1", api.runtime.clock.now())])  # met before the erasure
    await api.runtime.broadcasts.advance(created["id"], "0", 1, 1)
    await api.settled()
    await api.request("GET", "/v1/customers/c1", 404)
    assert await api.runtime.redis.keys("*c:c1*") == []
    progress = await api.request("GET", f"/v1/broadcasts/{created['id']}", 200)
    assert (progress["queued"], progress["started"], progress["skipped"], progress["pending"]) == (
        1, 0, {"erased": 1}, 0)
