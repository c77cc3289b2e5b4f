"""Scheduled journeys on real Redis: a cron trigger read in a time zone, each occurrence fired once (as a
broadcast of a deterministic id) however many processes run, each customer started once per occurrence, and
schedule mistakes reported at their line."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis.asyncio as redis
from structlog.testing import capture_logs

from conftest import Api, StartApi, write_journey
from faults_support import populated_cluster
from omnicanal.engine.clock import ManualClock
from omnicanal.engine.schedules import occurrence_id
from omnicanal.errors import JourneyError
from omnicanal.journey.loader import load_journeys
from omnicanal.store.keys import Keyspace
from test_broadcasts import customers, finished, welcomed
from test_segments import write_segment

DAILY = """\
id: daily_tip
trigger: {schedule: "0 9 * * *", timezone: Europe/Paris, audience: everyone}
re_entry: always
steps:
  - send: {template: welcome, channels: [email]}
"""


def problems_of(project: Path, text: str) -> list[str]:
    write_journey(project, "daily_tip", text)
    with pytest.raises(JourneyError) as caught:
        load_journeys(project / "journeys")
    path = project / "journeys" / "daily_tip.yaml"
    return [str(p).removeprefix(f"{path}:") for p in caught.value.problems if p.path == str(path)]


def test_a_schedule_journey_loads_and_is_triggered_by_no_event(project: Path) -> None:
    write_journey(project, "daily_tip", DAILY)
    journey = load_journeys(project / "journeys")["daily_tip"]
    assert (journey.trigger.schedule, journey.trigger.timezone, journey.trigger.audience) == (
        "0 9 * * *", "Europe/Paris", "everyone")
    assert journey.trigger.event is None and journey.events() == frozenset()


@pytest.mark.parametrize(("change", "problem"), [
    (("0 9 * * *", "0 25 * * *"), "2: trigger.schedule: invalid cron expression '0 25 * * *'"),
    (("0 9 * * *", "0 9 * *"), "2: trigger.schedule: invalid cron expression '0 9 * *' (Wrong number of fields"),
    (("Europe/Paris", "Europe/Lutece"), "2: trigger.timezone: unknown time zone 'Europe/Lutece'"),
    (("0 9 * * *", "0 9 * * 0"), "2: trigger.schedule: invalid cron expression '0 9 * * 0': write the days of "
                                 "the week as names (MON, TUE-FRI, SAT,SUN), not numbers"),
    (("audience: everyone", "audience: Lapsed Gold"), "2: trigger.audience: invalid audience 'Lapsed Gold'"),
    ((", audience: everyone", ""), "2: trigger: a schedule needs `timezone`"),
    (("audience: everyone", "audience: everyone, event: order_placed"), "2: trigger: a trigger is an event"),
    (("audience: everyone", "audience: everyone, where: \"true\""),
     "2: trigger: a scheduled journey has no event to test or key"),
])
def test_schedule_mistakes_are_reported_at_their_line(project: Path, change: tuple[str, str], problem: str) -> None:
    found = problems_of(project, DAILY.replace(*change))
    assert len(found) == 1 and found[0].startswith(problem), found


def test_an_event_trigger_takes_no_schedule_options(project: Path) -> None:
    found = problems_of(project, DAILY.replace('schedule: "0 9 * * *"', "event: order_placed"))
    assert found == ["2: trigger: timezone, audience and rate go with `schedule`: add a schedule instead of the "
                     "event, or remove them"]


PARIS = ZoneInfo("Europe/Paris")
START = datetime(2027, 1, 10, 18, 0, tzinfo=PARIS)
"""Journey time when the test starts: 15 journey hours before the first 9:00 in Paris; yesterday's 9:00 is older
than the grace and must not fire."""
OCCURRENCES = [datetime(2027, 1, day, 9, 0, tzinfo=PARIS).timestamp() for day in (10, 11, 12)]
GRACE = 8.5 * 3600.0
"""Below the 9 h since yesterday's 9:00, which must not fire."""


async def anchor_clock(redis_url: str, speed: float, journey_time: float) -> None:
    """Make the shared journey clock read `journey_time` now (processes read the anchor when they start)."""
    client = redis.Redis.from_url(redis_url)
    await client.hset(Keyspace("default", 4).clock, mapping={
        "speed": repr(speed), "anchor_real": repr(time.time()), "anchor_journey": repr(journey_time)})
    await client.aclose()


async def fired(api: Api, journey: str = "daily_tip") -> list[str]:
    body = await api.request("GET", "/v1/broadcasts", 200)
    return sorted(b["id"] for b in body["broadcasts"] if b["origin"] == "schedule" and b["journey"] == journey)


async def looked(api: Api, journey: str) -> None:
    """Wait until the schedule loop has looked at `journey`: its occurrences count from the clock's time then."""
    async with asyncio.timeout(10):
        while await api.runtime.redis.zscore(api.runtime.keys.schedules, journey) is None:
            await asyncio.sleep(0.02)


async def both_occurrences_walked(apis: list[Api], clock: ManualClock) -> list[dict[str, Any]]:
    """Move the clock to today's then tomorrow's 9:00, each once the previous occurrence started every customer;
    their broadcasts."""
    await looked(apis[0], "daily_tip")  # at 18:00: yesterday's 9:00 is older than the grace
    done = []
    for moment in OCCURRENCES[1:]:
        clock.advance_to(moment + 1)
        [broadcast_id] = await wait_for_ids(apis[0], [occurrence_id("daily_tip", moment)])
        done.append(await finished(apis[0], broadcast_id))
        for api in apis:
            await api.settled()
    return [await apis[0].request("GET", f"/v1/broadcasts/{b['id']}", 200) for b in done]


async def wait_for_ids(api: Api, wanted: list[str], journey: str = "daily_tip") -> list[str]:
    async with asyncio.timeout(15):
        while not set(wanted) <= set(await fired(api, journey)):
            await asyncio.sleep(0.05)
    return wanted


async def test_each_occurrence_fires_once_and_starts_each_customer_once(project: Path, start_api: StartApi) -> None:
    write_journey(project, "daily_tip", DAILY)
    clock = ManualClock(START.timestamp())
    api = await start_api(clock=clock, schedule_grace=GRACE)
    await customers(api, 5)
    walked = await both_occurrences_walked([api], clock)
    for broadcast in walked:
        assert broadcast["origin"] == "schedule" and broadcast["journey"] == "daily_tip"
        assert broadcast["audience"] == {"everyone": True}
        assert (broadcast["planned"], broadcast["queued"], broadcast["started"], broadcast["skipped"]) == (
            5, 5, 5, {})
    assert [b["at"] for b in walked] == OCCURRENCES[1:]
    ids = await fired(api)
    assert occurrence_id("daily_tip", OCCURRENCES[0]) not in ids  # before the start, older than the grace
    for n in range(5):
        assert welcomed(await api.timeline(f"c{n}")) == 2


async def test_two_processes_fire_each_occurrence_once(project: Path, start_api: StartApi) -> None:
    write_journey(project, "daily_tip", DAILY)
    clock = ManualClock(START.timestamp())  # the one journey time both read, as the shared clock in Redis is
    first = await start_api(clock=clock, schedule_grace=GRACE, worker_id="one")
    second = await start_api(clock=clock, schedule_grace=GRACE, worker_id="two")
    await customers(first, 5)
    walked = await both_occurrences_walked([first, second], clock)
    assert [(b["queued"], b["started"], b["skipped"]) for b in walked] == [(5, 5, {}), (5, 5, {})]
    for n in range(5):
        assert welcomed(await second.timeline(f"c{n}")) == 2


async def test_occurrences_missed_longer_ago_than_the_grace_are_skipped_and_said(
        project: Path, start_api: StartApi, redis_url: str) -> None:
    write_journey(project, "daily_tip", DAILY)
    client = redis.Redis.from_url(redis_url)  # every process was down for three days
    await client.zadd(Keyspace("default", 4).schedules, {"daily_tip": START.timestamp() - 3 * 86400})
    await client.aclose()
    clock = ManualClock(START.timestamp())
    with capture_logs() as logs:
        api = await start_api(clock=clock, schedule_grace=GRACE)
        await customers(api, 2)
        clock.advance_to(OCCURRENCES[1] + 1)
        await wait_for_ids(api, [occurrence_id("daily_tip", OCCURRENCES[1])])
    assert [b for b in await fired(api) if b < occurrence_id("daily_tip", OCCURRENCES[1])] == []
    skipped = [e for e in logs if e["event"] == "schedule_occurrences_skipped"]
    assert len(skipped) == 1 and skipped[0]["journey"] == "daily_tip"


async def test_a_scheduled_segment_that_is_not_defined_is_refused_at_load(
        project: Path, start_api: StartApi) -> None:
    write_journey(project, "daily_tip", DAILY.replace("audience: everyone", "audience: lapsed_glod"))
    write_segment(project, "lapsed_gold", "id: lapsed_gold\nwhere: \"customer.tier == 'gold'\"\n")
    with pytest.raises(JourneyError) as refused:
        await start_api()
    assert "trigger.audience: no segment 'lapsed_glod' (did you mean 'lapsed_gold'?); defined: lapsed_gold " \
           "(segments/*.yaml), or everyone" in str(refused.value)


WALKED_SLOWLY = DAILY.replace("audience: everyone", "audience: everyone, rate: 500").replace(
    "  - send: {template: welcome, channels: [email]}\n", "  - exit: {}\n")
"""1,500 customers walked at 500 a second, 500 at a time: 3 seconds, time for a kill to land mid-walk."""


@pytest.mark.slow  # four processes, a walk paced in real time, a broadcast lease running out
@pytest.mark.timeout(180)
async def test_three_workers_fire_once_and_a_walker_killed_midway_forgets_no_one(
        project: Path, redis_url: str, tmp_path: Path) -> None:
    count = 1500
    start = datetime(2027, 1, 11, 8, 45, tzinfo=PARIS)  # 9:00 comes 1.5 real seconds later, at 600 x
    await anchor_clock(redis_url, speed=600.0, journey_time=start.timestamp())
    occurrence = occurrence_id("daily_tip", datetime(2027, 1, 11, 9, 0, tzinfo=PARIS).timestamp())
    env = {"OMNICANAL_CLOCK_SPEED": "600.0", "OMNICANAL_LOG_LEVEL": "info", "OMNICANAL_RELOAD_INTERVAL": "0.2",
           "OMNICANAL_SCHEDULE_GRACE": "72000"}  # 20 h: not yesterday's 9:00
    async with populated_cluster(project, redis_url, tmp_path / "logs", env, count) as populated:
        api, keys = populated.api, populated.keys
        # deployed now, before or after 9:00 has passed: today's 9:00 fires once (within the grace)
        write_journey(project, "daily_tip", WALKED_SLOWLY)
        await populated.kill_walker(keys.broadcast_walker(occurrence), keys.broadcast(occurrence), "queued", count)

        async with asyncio.timeout(60):  # another process takes the walk over when its lease runs out
            while not (body := (await api.call("GET", f"/v1/broadcasts/{occurrence}"))[1]).get("finished"):
                await asyncio.sleep(0.2)
        assert (body["status"], body["planned"], body["queued"], body["started"], body["skipped"]) == (
            "done", count, count, count, {}), body
        _, journey = await api.call("GET", "/v1/journeys/daily_tip")
        assert journey["counts"]["started"] == count  # each customer once: no one twice, no one forgotten
        _, listed = await api.call("GET", "/v1/broadcasts")
        assert [b["id"] for b in listed["broadcasts"] if b["origin"] == "schedule"] == [occurrence]
        assert populated.cluster.log_events()["schedule_fired"] == 1, populated.cluster.logs()


GOLD_MORNINGS = """\
id: gold_mornings
trigger: {schedule: "0 9 * * MON", timezone: customer, audience: gold}
re_entry: always
steps:
  - send: {template: welcome, channels: [email]}
"""


async def test_timezone_customer_starts_each_customer_at_nine_on_their_own_clock_if_still_in_the_audience(
        project: Path, start_api: StartApi) -> None:
    write_segment(project, "gold", "id: gold\nwhere: \"customer.tier == 'gold'\"\n")
    write_journey(project, "gold_mornings", GOLD_MORNINGS)
    clock = ManualClock(datetime.fromisoformat("2027-01-17T18:00:00+00:00").timestamp())  # Sunday evening, UTC
    api = await start_api(clock=clock)
    for customer_id, zone in (("paris", "Europe/Paris"), ("new_york", "America/New_York"),
                              ("los_angeles", "America/Los_Angeles")):
        await api.put_customer(customer_id, {"attributes": {"tier": "gold"}, "timezone": zone,
                                             "addresses": {"email": f"{customer_id}@example.com"},
                                             "consents": {"email": {"marketing": True}}})
    await api.settled()
    await looked(api, "gold_mornings")

    first_nine = datetime.fromisoformat("2027-01-18T09:00:00+14:00").timestamp()  # the first zone's Monday 09:00
    clock.advance_to(first_nine + 1)
    broadcast_id = (await wait_for_ids(api, [occurrence_id("gold_mornings", first_nine)], journey="gold_mornings"))[0]
    done = await finished(api, broadcast_id)
    assert done["started"] == 3 and done["data"]["occurrence"] == "2027-01-18T09:00:00"
    await api.put_customer("los_angeles", {"attributes": {"tier": "silver"}})  # leaves the audience before 09:00
    await api.settled()
    assert [welcomed(await api.timeline(c)) for c in ("paris", "new_york", "los_angeles")] == [0, 0, 0]  # all hold

    clock.advance_to(datetime.fromisoformat("2027-01-18T09:00:01+01:00").timestamp())
    await api.wait_until("paris", lambda entries: welcomed(entries) == 1)
    assert welcomed(await api.timeline("new_york")) == 0
    clock.advance_to(datetime.fromisoformat("2027-01-18T09:00:01-05:00").timestamp())
    entries = await api.wait_until("new_york", lambda entries: welcomed(entries) == 1)
    assert next(e for e in entries if e["kind"] == "message")["at"].startswith("2027-01-18T14:00:01")
    clock.advance_to(datetime.fromisoformat("2027-01-18T09:00:01-08:00").timestamp())  # no longer gold: exits
    entries = await api.wait_until("los_angeles", lambda entries: any(
        e["kind"] == "journey" and e["status"] == "exited" for e in entries))
    assert welcomed(entries) == 0 and [e.get("reason") for e in entries if e["kind"] == "journey"] == [
        None, "left_audience"]
    stats = await api.request("GET", "/v1/journeys/gold_mornings/stats", 200)
    assert (stats["counts"]["exited"], stats["reasons"]["exited"]) == (1, {"left_audience": 1})
