"""The `schedule` scenario: one occurrence of a scheduled journey starting it for a whole segment.

10^6 customers' profiles in Redis (BENCH_SCHEDULE_CUSTOMERS), a segment of 10^5 of them (BENCH_SCHEDULE_MEMBERS),
an API and two workers; a journey scheduled at the next whole minute of journey time a few real seconds ahead
(clock at 60x, the file written once the workers run: they load it within 0.2 s). Measured from the
occurrence's moment to the last start applied (the broadcast's counters: every member `started`, none pending):
the issue's target is all of them within 30 s with 2 workers, engine RSS flat. The journey's only step is a
7-day wait, so what is measured is starting (the walk of the segment, each start applied by the customer's
worker, its instance and timer written), not sending.

Set-up is not measured: profiles are written by bench/profiles.py, and the segment's index is written directly
(SADD, what the workers' batches write when they evaluate members), so that 10^5 members need not each send an
event first.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from typing import Any

import limits as redis_limits
from common import ENGINE_DB, redis_client, rss_mb
from engine import Engine, create_profiles
from report import Row
from scenarios import Context, commandstats, flush, wait_until

from omnicanal.engine.clock import Clock
from omnicanal.engine.schedules import occurrence_id
from omnicanal.store.keys import Keyspace

SPEED = 60.0
"""Journey seconds per real second: a whole minute of journey time comes every real second."""
WARM_UP = "id: warm_up\ntrigger: {event: never_sent}\nre_entry: always\nsteps:\n  - wait: 7d\n"
WARM_UP_MEMBERS = 10_000
"""Started by a broadcast before the occurrence: a worker's first few thousand starts grow its RSS once (pools,
allocator arenas, the bounded cache of customers' key names) whatever number follows; the baseline is taken after."""
TARGET_SECONDS = 30.0


def journey(minute: int, hour: int) -> str:
    return (f'id: weekly_lapsed\ntrigger: {{schedule: "{minute} {hour} * * *", timezone: UTC, audience: lapsed}}\n'
            "re_entry: always\nsteps:\n  - wait: 7d\n")


def sizes(ctx: Context) -> tuple[int, int, float]:
    """(customers, members, time limit in seconds) of this run."""
    customers = int(os.environ.get("BENCH_SCHEDULE_CUSTOMERS", 20_000 if ctx.quick else 1_000_000))
    members = int(os.environ.get("BENCH_SCHEDULE_MEMBERS", max(1, customers // 10)))
    return customers, min(members, customers), 30.0 if ctx.quick else 180.0


async def scenario_schedule(ctx: Context) -> list[Row]:
    n, members, limit = sizes(ctx)
    await flush(ENGINE_DB)
    journeys, segments = ctx.run_dir / "schedule-journeys", ctx.run_dir / "schedule-segments"
    journeys.mkdir(parents=True, exist_ok=True)
    segments.mkdir(parents=True, exist_ok=True)
    (journeys / "warm_up.yaml").write_text(WARM_UP)
    for segment in ("lapsed", "warm_up"):
        (segments / f"{segment}.yaml").write_text(f"id: {segment}\nwhere: \"customer.first_name == 'Lea'\"\n")
    redis = redis_client(ENGINE_DB)
    engine = Engine(ctx.group, ENGINE_DB, ctx.run_dir, ctx.standin_url, workers=2, clock_speed=SPEED,
                    segments_dir=segments, settings={"OMNICANAL_JOURNEYS_DIR": str(journeys),
                                                     "OMNICANAL_RELOAD_INTERVAL": "0.2"})
    keys = Keyspace(engine.workspace, 16)
    try:
        await engine.start()
        ctx.log(f"schedule: profiles for {n:,} customers, {members:,} of them in the segment")
        took = await create_profiles(ctx.group, ENGINE_DB, engine.workspace, "s-", n)
        every = n // members
        for first in range(0, members, 10_000):
            await redis.sadd(keys.segment_members("lapsed"),
                             *(f"s-{i * every}" for i in range(first, min(first + 10_000, members))))
        warm_up = min(WARM_UP_MEMBERS, n - members)  # customers out of the segment
        await redis.sadd(keys.segment_members("warm_up"), *(f"s-{i * every + 1}" for i in range(warm_up)))
        ctx.log(f"schedule: warming the workers up with a broadcast to {warm_up:,} others")
        async with ctx.session.post(f"{engine.url}/v1/broadcasts", json={
                "journey": "warm_up", "audience": {"segment": "warm_up"}}) as response:
            warm_up_record = keys.broadcast((await response.json())["id"])
        await wait_until(lambda: _walked(redis, warm_up_record), limit)
        rss_before = {pid: rss_mb(pid) for pid in engine.pids()}
        clock = await Clock.current(redis, keys)
        occurrence = math.ceil((clock.now() + 4 * SPEED) / 60) * 60  # a whole minute, 4 to 5 real seconds ahead
        hour, minute = divmod(int(occurrence % 86400) // 60, 60)
        (journeys / "weekly_lapsed.yaml").write_text(journey(minute, hour))
        moment = time.time() + (occurrence - clock.now()) / SPEED  # the occurrence, in real time
        await asyncio.sleep(max(0.0, moment - time.time() - 0.5))
        stats_before = await commandstats()
        record = keys.broadcast(occurrence_id("weekly_lapsed", occurrence))
        progress: dict[str, str] = {}
        rss_peak = dict(rss_before)
        deadline = moment + limit
        while time.time() < deadline:
            progress = await redis.hgetall(record)
            rss_peak = {pid: max(peak, rss_mb(pid)) for pid, peak in rss_peak.items()}
            if _finished(progress):
                break
            await asyncio.sleep(0.1)
        finished = time.time()
        seconds = finished - moment
        started = int(progress.get("n:started", 0))
        duplicates = int(progress.get("n:duplicate", 0))
        calls = redis_limits.delta(stats_before, await commandstats())
        limit_rate, mix = await ctx.limits.per_unit(calls, max(1, started))
        ctx.mixes["schedule: Redis calls per member started"] = mix
        rss_after = {pid: rss_mb(pid) for pid in engine.pids()}
        grown = max(rss_before, key=lambda pid: rss_peak[pid] - rss_before[pid])  # each worker against itself
        size = f"{members:,} members of {n:,} customers"
        hit = "" if started >= members else f"time limit hit: {started:,}/{members:,} started"
        return [
            Row("schedule", f"occurrence → all started ({size}, 2 workers)", seconds, "s",
                limit=members / limit_rate if limit_rate else None, limit_how="members / the Redis-bound rate of "
                "the command mix per start", target=f"≤ {TARGET_SECONDS:.0f} s (10^5 of 10^6)",
                met=started >= members and seconds <= TARGET_SECONDS, note=hit,
                details={"customers": n, "members": members, "profiles_seconds": took, "progress": progress}),
            Row("schedule", "starts/s", started / seconds if seconds > 0 else math.nan, "/s", limit=limit_rate,
                limit_how="the redis-benchmark rates of the command mix per start"),
            Row("schedule", "engine worker RSS, peak during the occurrence", rss_peak[grown], "MiB",
                limit=rss_before[grown], limit_how=f"the same worker's RSS before it, after {warm_up:,} starts (the "
                "worker that grew most)", target="independent of N",
                met=rss_peak[grown] - rss_before[grown] <= max(5.0, 0.1 * rss_before[grown]),
                details={"rss_before_mb": list(rss_before.values()), "rss_peak_mb": list(rss_peak.values()),
                         "rss_after_mb": list(rss_after.values())}),
            Row("schedule", "members not started exactly once", float(abs(members - started)), "", target="0",
                met=started == members, note=f"{duplicates} start(s) met twice by the walk, applied once"
                if duplicates else ""),
        ]
    finally:
        await redis.aclose()
        await engine.stop()
        await flush(ENGINE_DB)


def _finished(progress: dict[str, str]) -> bool:
    """A broadcast walked to the end, every start queued applied."""
    applied = sum(int(value) for name, value in progress.items() if name.startswith("n:"))
    return progress.get("status") == "done" and applied >= int(progress.get("queued", 0))


async def _walked(redis: Any, record: str) -> bool:
    return _finished(await redis.hgetall(record))
