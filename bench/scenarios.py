"""The scenarios: each starts what it needs, measures within a time limit, stops what it started, returns rows.

steps, ingest: on their own. waiting, latency, timers: on one population of customers parked in the
reference journey's first wait (`give_them_time`, 1 h) by two workers at real speed: `waiting` measures what
they cost, `latency` sends the purchase of some of them at a steady rate, `timers` makes the rest fall due in
the same second (by restarting the workers on a faster journey clock) and watches them fire.
"""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import limits as redis_limits
from common import (
    BENCH,
    ENGINE_DB,
    ProcessGroup,
    cores_busy_since,
    cpu_seconds,
    cpu_times,
    free_port,
    get_json,
    percentile,
    python_argv,
    redis_client,
    rss_mb,
    settle_memory,
    wait_http,
)
from engine import (
    PARTITIONS,
    SMALL_TOTAL,
    Engine,
    cart_event,
    create_profiles,
    order_event,
    steps_entered,
    waiting_in,
)
from peer import PEER_DB, Peer, all_pids
from report import Row

from omnicanal.journey.segments import load_segments
from omnicanal.store.keys import Keyspace

STEPS_SPEED = 172_800.0  # journey seconds per real second in `steps`: 1 h -> 0.02 s, 48 h -> 1 s
FIRST_WAIT = 3600.0  # the reference journey's give_them_time timeout
LIGHT_RATE = 100  # events/s of the unloaded latency measure
HISTORY_CUSTOMERS = 10_000  # the control group of `waiting`: the same event, no journey started
WARM_UP_CUSTOMERS = 3_000
"""Parked before the RSS baseline when nothing else was: a worker's first few thousand customers grow its RSS
(~17 MiB here: connection pools filling, allocator arenas) whatever number waits afterwards."""
ORDERS_EVERY = 4  # in `steps`, every 4th customer orders at once (thank-you path); the others never do


@dataclass(frozen=True)
class Sizes:
    steps_customers: int
    steps_limit: float
    peer_steps_customers: int
    latency_rate: int
    latency_seconds: float
    relay_seconds: float
    peer_latency_seconds: float
    ingest_seconds: float
    waiting: int
    park_limit: float
    peer_waiting: int
    burst_limit: float
    peer_burst: int
    peer_scenarios: frozenset[str] = frozenset({"steps", "ingest", "waiting", "latency", "timers"})
    bare_send_seconds: float = 3.0  # the bare senders' window (the messages/s limit)
    peer_budget: float = 420.0  # seconds into the run after which no more peers start (the run stays < 10 min)
    latency_drain: float = 20.0  # seconds the loaded latency run waits for the last messages
    backlog_limit: float = 60.0  # seconds to let the engine drain its backlog before the next scenario

    @classmethod
    def for_run(cls, quick: bool) -> Sizes:
        if quick:  # a smoke run: every engine row, the peers only where the ≥ 5x target is
            return cls(steps_customers=1_500, steps_limit=15, peer_steps_customers=1_000, latency_rate=1000,
                       latency_seconds=3, relay_seconds=2, peer_latency_seconds=2, ingest_seconds=2, waiting=3_000,
                       park_limit=15, peer_waiting=1_000, burst_limit=10, peer_burst=1_000,
                       peer_scenarios=frozenset({"steps"}), bare_send_seconds=1.5, peer_budget=90.0,
                       latency_drain=5.0, backlog_limit=10.0)
        return cls(steps_customers=10_000, steps_limit=60, peer_steps_customers=4_000, latency_rate=1000,
                   latency_seconds=30, relay_seconds=5, peer_latency_seconds=5, ingest_seconds=5,
                   waiting=100_000, park_limit=120, peer_waiting=5_000, burst_limit=30, peer_burst=10_000)


@dataclass
class Context:
    quick: bool
    sizes: Sizes
    run_dir: Path
    group: ProcessGroup
    standin_url: str
    standin_pid: int
    """The stand-in provider's process: its CPU is part of what each message costs the machine."""
    limits: redis_limits.Limits
    peers: list[Peer]
    session: aiohttp.ClientSession
    log: Callable[[str], None]
    mixes: dict[str, dict[str, float]] = field(default_factory=dict)
    send_limits: dict[int, float] = field(default_factory=dict)
    """Bare senders' messages/s by number of processes, measured once per run (`bare_send_rate`)."""
    started: float = field(default_factory=time.monotonic)
    skipped_peers: list[str] = field(default_factory=list)
    """Scenarios whose peers were left out to keep the run within its bound (said under the table)."""
    segments: Path | None = None
    """The segments the engine keeps in the steps scenario (`--segments`; None: none)."""

    def peers_for(self, scenario: str) -> list[Peer]:
        """The peers to run in `scenario` — none once the run is past its peer budget: the whole run stays
        under 10 minutes on a machine slower than usual, the engine's rows complete, the gap is said."""
        if scenario not in self.sizes.peer_scenarios or not self.peers:
            return []
        if time.monotonic() - self.started > self.sizes.peer_budget:
            self.log(f"{scenario}: peers skipped, the run is past {self.sizes.peer_budget:.0f} s")
            self.skipped_peers.append(scenario)
            return []
        return self.peers


# -- helpers ------------------------------------------------------------------------------------------------------

async def flush(*dbs: int) -> None:
    for db in dbs:
        redis = redis_client(db)
        try:
            await redis.flushdb()
        finally:
            await redis.aclose()


async def standin_reset(ctx: Context) -> None:
    async with ctx.session.post(f"{ctx.standin_url}/reset") as response:
        response.raise_for_status()


async def standin_stats(ctx: Context) -> dict[str, Any]:
    stats: dict[str, Any] = await get_json(ctx.session, f"{ctx.standin_url}/stats")
    return stats


async def standin_received(ctx: Context) -> dict[str, Any]:
    received: dict[str, Any] = await get_json(ctx.session, f"{ctx.standin_url}/received")
    return received


def first_receipts(received: dict[str, Any], template: str) -> dict[str, float]:
    """Customer -> when the stand-in first received `template` for them."""
    times: dict[str, float] = {}
    for customer, name, at in zip(received["customer"], received["template"], received["t"], strict=True):
        if name == template and customer not in times:
            times[customer] = at
    return times


async def redis_cpu(db: int = ENGINE_DB) -> float:
    redis = redis_client(db)
    try:
        info = await redis.info("cpu")
        return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])
    finally:
        await redis.aclose()


async def commandstats() -> dict[str, int]:
    redis = redis_client(ENGINE_DB)
    try:
        return await redis_limits.commandstats(redis)
    finally:
        await redis.aclose()


def customer_batches(customers: Sequence[str], with_order: Callable[[int], bool],
                     per_batch: int = 400) -> list[list[dict[str, Any]]]:
    """Batches of whole customers (a customer's cart and order always travel in the same batch, in order)."""
    batches: list[list[dict[str, Any]]] = []
    for start in range(0, len(customers), per_batch):
        batch: list[dict[str, Any]] = []
        for index in range(start, min(start + per_batch, len(customers))):
            batch.append(cart_event(customers[index]))
            if with_order(index):
                batch.append(order_event(customers[index]))
        batches.append(batch)
    return batches


async def post_batches(session: aiohttp.ClientSession, url: str, batches: list[list[dict[str, Any]]],
                       lanes: int = 2) -> None:
    async def lane(items: list[list[dict[str, Any]]]) -> None:
        for batch in items:
            async with session.post(f"{url}/v1/events/batch", json={"events": batch}) as response:
                if response.status != 202:
                    raise RuntimeError(f"batch refused: {response.status} {(await response.text())[:300]}")

    await asyncio.gather(*(lane(batches[i::lanes]) for i in range(lanes)))


async def open_loop(url: str, bodies: Sequence[dict[str, Any]],
                    rate: float) -> tuple[dict[str, float], dict[str, int], float]:
    """POST each body to `url` at a steady `rate` (open loop: a slow answer does not slow the sending).

    Returns (customer -> time its 202 arrived, answers other than 202 by status, seconds the sending took)."""
    accepted: dict[str, float] = {}
    errors: Counter[str] = Counter()
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def one(body: dict[str, Any]) -> None:
            try:
                async with session.post(url, json=body) as response:
                    await response.read()
                    if response.status == 202:
                        accepted[body["customer_id"]] = time.time()
                    else:
                        errors[str(response.status)] += 1
            except aiohttp.ClientError as exc:
                errors[type(exc).__name__] += 1

        tasks: set[asyncio.Task[None]] = set()
        started = time.monotonic()
        sent = 0
        while sent < len(bodies):
            due = min(len(bodies), int((time.monotonic() - started) * rate) + 1)
            for body in bodies[sent:due]:
                task = asyncio.create_task(one(body))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            sent = due
            await asyncio.sleep(0.002)
        took = time.monotonic() - started
        if tasks:
            await asyncio.wait(tasks, timeout=30)
    return accepted, dict(errors), took


def latencies_ms(accepted: dict[str, float], received: dict[str, float]) -> list[float]:
    """Per accepted event, ms from its 202 to the provider's receipt; inf when never received."""
    return [(received[c] - at) * 1000 if c in received else math.inf for c, at in accepted.items()]


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": percentile(values, 50), "p95": percentile(values, 95), "p99": percentile(values, 99),
            "count": len(values), "missing": sum(1 for v in values if math.isinf(v))}


async def wait_until(predicate: Callable[[], Any], limit: float, every: float = 0.25) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(every)
    return False


# -- steps ----------------------------------------------------------------------------------------------------------

async def engine_steps(ctx: Context, workers: int, settings: dict[str, str] | None = None,
                       segments: Path | None = None) -> dict[str, Any]:
    n = ctx.sizes.steps_customers
    await flush(ENGINE_DB)
    await standin_reset(ctx)
    engine = await Engine(ctx.group, ENGINE_DB, ctx.run_dir, ctx.standin_url, workers=workers,
                          clock_speed=STEPS_SPEED, segments_dir=segments or ctx.segments,
                          settings=settings or {}).start()
    try:
        customers = [f"s-{i}" for i in range(n)]
        await create_profiles(ctx.group, ENGINE_DB, engine.workspace, "s-", n)
        expected = sum(1 if i % ORDERS_EVERY == 0 else 2 for i in range(n))
        batches = customer_batches(customers, lambda i: i % ORDERS_EVERY == 0)
        stats_before, redis_cpu_before = await commandstats(), await redis_cpu()
        cpu_before = {pid: cpu_seconds(pid) for pid in engine.pids()}
        standin_before = cpu_seconds(ctx.standin_pid)
        machine_before = cpu_times()
        started = time.time()
        await post_batches(ctx.session, engine.url, batches)
        ingested = time.time()

        async def done() -> bool:
            return int((await standin_stats(ctx))["total"]) >= expected

        finished = await wait_until(done, max(1.0, ctx.sizes.steps_limit - (ingested - started)))
        machine_busy = cores_busy_since(machine_before)
        wall = time.time() - started
        stats = await standin_stats(ctx)
        end = stats["last"] or time.time()
        elapsed = end - started
        journey = await engine.journey(ctx.session)
        steps = steps_entered(journey)
        calls = redis_limits.delta(stats_before, await commandstats())
        redis_busy = (await redis_cpu() - redis_cpu_before) / wall
        worker_busy = sum(cpu_seconds(pid) - cpu_before[pid] for pid in engine.pids()) / wall
        standin_busy = (cpu_seconds(ctx.standin_pid) - standin_before) / wall
        limit, mix = await ctx.limits.per_unit(calls, steps)
        setting = "".join(f", {name}={value}" for name, value in (settings or {}).items()) + (
            f", segments of {segments.name}/" if segments else "")
        ctx.mixes[f"steps, {workers} worker(s){setting}: Redis calls per journey step"] = mix
        return {"customers": n, "finished": finished, "elapsed": elapsed, "wall": wall,
                "ingest_seconds": ingested - started,
                "steps": steps, "messages": stats["total"], "expected_messages": expected,
                "duplicates": stats["duplicates"] + stats["duplicate_ids"], "steps_per_s": steps / elapsed,
                "messages_per_s": stats["total"] / elapsed, "limit_steps_per_s": limit,
                "redis_commands_per_step": sum(mix.values()), "redis_commands": sum(calls.values()),
                "worker_cores_busy": worker_busy,
                "redis_core_busy": redis_busy, "standin_core_busy": standin_busy, "machine_cores_busy": machine_busy,
                "counts": journey["counts"]}
    finally:
        await engine.stop()
        await flush(ENGINE_DB)


async def peer_steps(ctx: Context, peer: Peer) -> dict[str, Any]:
    n = ctx.sizes.peer_steps_customers
    await flush(PEER_DB)
    await standin_reset(ctx)
    env = peer.env(ctx.standin_url, FIRST_WAIT / STEPS_SPEED, 48 * 3600 / STEPS_SPEED)
    procs = await peer.start_workers(ctx.group, env)
    try:
        await peer.run(env, "profiles", "--prefix", "p-", "--count", str(n))
        expected = sum(1 if i % ORDERS_EVERY == 0 else 2 for i in range(n))
        started = time.time()
        await peer.run(env, "steps", "--prefix", "p-", "--count", str(n), "--orders-every", str(ORDERS_EVERY))

        async def done() -> bool:
            return int((await standin_stats(ctx))["total"]) >= expected

        finished = await wait_until(done, max(1.0, ctx.sizes.steps_limit - (time.time() - started)))
        stats = await standin_stats(ctx)
        elapsed = (stats["last"] or time.time()) - started
        return {"customers": n, "finished": finished, "elapsed": elapsed, "messages": stats["total"],
                "expected_messages": expected, "duplicates": stats["duplicates"],
                "messages_per_s": stats["total"] / elapsed}
    finally:
        for proc in procs:
            await ctx.group.stop(proc)
        await flush(PEER_DB)


async def bare_send_rate(ctx: Context, processes: int) -> float:
    """Messages/s that `processes` bare aiohttp senders get into the stand-in with nothing else running: the
    HTTP hop of a message alone (by the stand-in's own receive times). Measured once per run."""
    if processes not in ctx.send_limits:
        ctx.send_limits[processes] = await _measure_bare_send(ctx, processes)
    return ctx.send_limits[processes]


async def _measure_bare_send(ctx: Context, processes: int) -> float:
    ctx.log(f"bare senders to the stand-in, {processes} process(es) (the limit of the messages/s and timer rows)")
    await standin_reset(ctx)
    seconds = ctx.sizes.bare_send_seconds
    start_at = time.time() + 2.0  # past the senders' start-up
    procs = [ctx.group.start(f"bare-send-{i}", python_argv(
        BENCH / "bare.py", "send", "--provider", f"{ctx.standin_url}/msg", "--start-at", repr(start_at),
        "--seconds", repr(seconds))) for i in range(processes)]

    async def finished() -> bool:
        return not any(proc.alive() for proc in procs)

    await wait_until(finished, seconds + 15.0, every=0.1)
    for proc in procs:
        await ctx.group.stop(proc)
    stats = await standin_stats(ctx)
    await standin_reset(ctx)
    span = (stats["last"] or 0.0) - (stats["first"] or 0.0)
    return float(stats["total"]) / span if span > 0 else 0.0


BENCH_SEGMENTS = Path(__file__).resolve().parent / "segments"
"""Two segments over the scenario's events, for the cost-of-segments row."""


def window_note(elapsed: float) -> str:
    """Whether the segments' shortest window expired within a run: at this clock it lasts seconds, and each
    expiry is one more work item for the customer (their timer firing), which a longer run pays and a shorter one
    never meets."""
    shortest = min(aggregate.within for aggregate in load_segments(BENCH_SEGMENTS).aggregates.values()
                   if aggregate.within is not None)
    expires = shortest / STEPS_SPEED
    head = f"the run took {elapsed:.1f} s, a cart leaves its {shortest / 86400:.0f}-day window ~{expires:.0f} s later"
    if elapsed < expires:
        return f"{head}: none did within the run"
    return f"{head}: those applied in the run's first ~{elapsed - expires:.0f} s did, one more work item each"


def commands_per_message(result: dict[str, Any]) -> float:
    return float(result["redis_commands"]) / max(1, result["messages"])


async def scenario_steps(ctx: Context) -> list[Row]:
    results = {}
    for workers in (1, 2):
        ctx.log(f"steps: engine, {workers} worker(s), {ctx.sizes.steps_customers:,} customers")
        results[workers] = await engine_steps(ctx, workers)
    ctx.log("steps: engine, 2 workers, counting off (OMNICANAL_STATS=false)")
    uncounted = await engine_steps(ctx, 2, {"OMNICANAL_STATS": "false"})
    ctx.log("steps: engine, 2 workers, two segments kept (bench/segments)")
    segmented = await engine_steps(ctx, 2, segments=BENCH_SEGMENTS)
    send_limits = {workers: await bare_send_rate(ctx, workers) for workers in results}
    peers = {}
    for peer in ctx.peers_for("steps"):
        ctx.log(f"steps: peer {peer.name}, {ctx.sizes.peer_steps_customers:,} customers")
        peers[peer.name] = await peer_steps(ctx, peer)
    best = max(peers.items(), key=lambda kv: kv[1]["messages_per_s"], default=None)
    steps_per_message = results[2]["steps"] / max(1, results[2]["messages"])
    how = ("redis-benchmark rates of the engine's Redis command mix per step "
           f"({results[2]['redis_commands_per_step']:.1f} commands/step with 2 workers)")
    rows: list[Row] = []
    for workers, result in results.items():
        peer_msgs = best[1]["messages_per_s"] if best else None
        partial = "" if result["finished"] else \
            f"time limit hit: {result['messages']:,}/{result['expected_messages']:,} messages"
        # CPU per step moves less than rates on a shared machine: the figure to compare optimisations by
        worker_us = result["worker_cores_busy"] * 1e6 / max(1.0, result["steps_per_s"])
        cores = (f"cores busy: workers {result['worker_cores_busy']:.2f}, Redis {result['redis_core_busy']:.2f}, "
                 f"whole machine {result['machine_cores_busy']:.2f} of 2; worker CPU {worker_us:.0f} µs per step")
        steps_note = "; ".join(filter(None, [partial, cores]))
        rows.append(Row("steps", f"journey steps/s, {workers} worker(s)", result["steps_per_s"], "/s",
                        limit=result["limit_steps_per_s"], limit_how=how,
                        peer=peer_msgs * steps_per_message if peer_msgs else None,
                        peer_how=f"{best[0]}, same steps" if best else "",
                        target="≥ 10,000/s" if workers == 2 else "",
                        met=result["steps_per_s"] >= 10_000 if workers == 2 else None, note=steps_note,
                        details=result))
        redis_msg_limit = result["limit_steps_per_s"] * result["messages"] / max(1, result["steps"])
        # What one message costs the whole machine, by process (the stand-in is the provider's side of it)
        per_message = {name: result[key] * result["wall"] * 1e6 / max(1, result["messages"]) for name, key in (
            ("workers", "worker_cores_busy"), ("Redis", "redis_core_busy"), ("the stand-in", "standin_core_busy"))}
        costs = "CPU per message: " + ", ".join(f"{name} {us:,.0f} µs" for name, us in per_message.items())
        rows.append(Row("steps", f"messages/s end to end, {workers} worker(s)", result["messages_per_s"], "/s",
                        limit=send_limits[workers],
                        limit_how=f"{workers} bare aiohttp sender process(es), 64 requests in flight each, POSTing "
                                  "webhook-sized messages to the stand-in with nothing else running: the HTTP hop "
                                  "alone",
                        peer=peer_msgs, peer_how=best[0] if best else "",
                        target="≥ 4,500/s" if workers == 2 else "",
                        met=result["messages_per_s"] >= 4_500 if workers == 2 else None,
                        note="; ".join(filter(None, [partial, costs, f"the Redis command mix alone would allow "
                                                                     f"{redis_msg_limit:,.0f} messages/s"]))))
    counted = results[2]["messages_per_s"] / uncounted["messages_per_s"]
    rows.append(Row("steps", "cost of counting: messages/s with stats on ÷ off, 2 workers", counted, "x",
                    target="≥ 0.90x", met=counted >= 0.90,
                    note=f"off (OMNICANAL_STATS=false): {uncounted['messages_per_s']:,.0f} messages/s, "
                         f"{commands_per_message(uncounted):.1f} Redis commands per message (on: "
                         f"{commands_per_message(results[2]):.1f}); one run each, so noise moves it a few per cent "
                         "either way",
                    details=uncounted))
    kept = segmented["steps_per_s"] / results[2]["steps_per_s"]
    rows.append(Row("steps", "cost of two segments: steps/s with their aggregates and membership ÷ without, 2 workers",
                    kept, "x", target="≥ 0.85x", met=kept >= 0.85,
                    note=f"with bench/segments (three windowed aggregates over every cart and order): "
                         f"{segmented['steps_per_s']:,.0f} steps/s, {commands_per_message(segmented):.1f} Redis "
                         f"commands per message (without: {commands_per_message(results[2]):.1f}); one run each; "
                         + window_note(segmented["elapsed"])
                         + ("" if ctx.segments is None else "; --segments was given, so the other rows keep them too"),
                    details=segmented))
    if best:
        times = results[2]["messages_per_s"] / best[1]["messages_per_s"]
        rows.append(Row("steps", f"messages/s, 2 workers ÷ best peer's ({best[0]}: {best[1]['messages_per_s']:,.0f}/s)",
                        times, "x", target="≥ 5x", met=times >= 5,
                        details={name: result for name, result in peers.items()}))
    duplicates = sum(r["duplicates"] for r in results.values())
    rows.append(Row("steps", "duplicate messages", float(duplicates), "", target="0", met=duplicates == 0))
    return rows


# -- ingest ---------------------------------------------------------------------------------------------------------

WRK_SINGLE = """
counter = 0
request = function()
  counter = counter + 1
  local body = '{"name":"cart_abandoned","customer_id":"i-' .. counter .. '","properties":{"cart_id":"c' .. counter ..
    '","items":[{"sku":"SKU-1","name":"Sneakers","price":89.0},{"sku":"SKU-7","name":"Socks","price":12.5}],' ..
    '"total":101.5}}'
  return wrk.format("POST", "/v1/events", {["Content-Type"]="application/json"}, body)
end
"""


def wrk_batch_script(run_dir: Path, size: int = 1000) -> Path:
    events = [cart_event(f"b-{i}") for i in range(size)]
    body = json.dumps({"events": events}, separators=(",", ":"))
    path = run_dir / "wrk_batch.lua"
    path.write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                    f"wrk.body = [==[{body}]==]\n")
    return path


async def wrk(url: str, script: Path, seconds: float, connections: int) -> tuple[float, int]:
    """(requests/s, non-2xx answers) that wrk gets, one thread."""
    process = await asyncio.create_subprocess_exec(
        "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "-s", str(script), url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    text = out.decode()
    rate = next((float(line.split()[1]) for line in text.splitlines() if line.startswith("Requests/sec")), math.nan)
    bad = sum(int(line.split()[-1]) for line in text.splitlines() if "Non-2xx" in line)
    bad += sum(int(part.split()[1].rstrip(",")) for line in text.splitlines() if "Socket errors" in line
               for part in line.split(":")[1].split(",") if part.split()[1].rstrip(",").isdigit())
    if math.isnan(rate):
        raise RuntimeError(f"wrk failed: {err.decode()[-300:]} {text[-300:]}")
    return rate, bad


async def aiohttp_load(url: str, body: dict[str, Any], seconds: float, connections: int) -> tuple[float, int]:
    """(requests/s, errors) of a closed-loop aiohttp client, when wrk is not installed."""
    count = errors = 0
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as session:
        async def loop() -> None:
            nonlocal count, errors
            while time.monotonic() < deadline:
                async with session.post(url, json=body) as response:
                    await response.read()
                    count += 1
                    errors += response.status != 202
        await asyncio.gather(*(loop() for _ in range(connections)))
    return count / seconds, errors


async def measure_ingest(ctx: Context, base: str) -> dict[str, Any]:
    seconds = ctx.sizes.ingest_seconds
    if shutil.which("wrk"):
        single_script = ctx.run_dir / "wrk_single.lua"
        single_script.write_text(WRK_SINGLE)
        single, single_bad = await wrk(f"{base}/v1/events", single_script, seconds, 64)
        batch, batch_bad = await wrk(f"{base}/v1/events/batch", wrk_batch_script(ctx.run_dir), seconds, 4)
    else:
        single, single_bad = await aiohttp_load(f"{base}/v1/events", cart_event("i-1"), seconds, 64)
        batch_body = {"events": [cart_event(f"b-{i}") for i in range(1000)]}
        batch, batch_bad = await aiohttp_load(f"{base}/v1/events/batch", batch_body, seconds, 4)
    return {"single": single, "single_errors": single_bad, "batch": batch * 1000, "batch_errors": batch_bad}


async def scenario_ingest(ctx: Context) -> list[Row]:
    tool = "wrk" if shutil.which("wrk") else "aiohttp client"
    await flush(ENGINE_DB)
    ctx.log(f"ingest: engine API ({tool}, {ctx.sizes.ingest_seconds:.0f}s per measure)")
    engine = Engine(ctx.group, ENGINE_DB, ctx.run_dir, ctx.standin_url, workers=0)
    await engine.start_api()
    try:
        ours = await measure_ingest(ctx, engine.url)
    finally:
        await engine.stop()
        await flush(ENGINE_DB)
    ctx.log("ingest: bare aiohttp handler")
    port = free_port()
    bare = ctx.group.start("bare-ingest", python_argv(BENCH / "bare.py", "ingest", "--port", str(port)))
    try:
        await wait_http(f"http://127.0.0.1:{port}/readyz", bare)
        floor = await measure_ingest(ctx, f"http://127.0.0.1:{port}")
    finally:
        await ctx.group.stop(bare)
    peers: dict[str, dict[str, Any]] = {}
    for peer in ctx.peers_for("ingest"):
        ctx.log(f"ingest: peer {peer.name} (its web endpoint enqueueing tasks)")
        await flush(PEER_DB)
        env = peer.env(ctx.standin_url, FIRST_WAIT, 48 * 3600)
        proc, url = await peer.start_web(ctx.group, env)
        try:
            peers[peer.name] = await measure_ingest(ctx, url)
        finally:
            await ctx.group.stop(proc)
            await flush(PEER_DB)
    best_single = max(peers.items(), key=lambda kv: kv[1]["single"], default=None)
    best_batch = max(peers.items(), key=lambda kv: kv[1]["batch"], default=None)
    errors = ours["single_errors"] + ours["batch_errors"]
    note = f"{errors} non-2xx answers or socket errors during the engine's runs" if errors else ""
    return [
        Row("ingest", "POST /v1/events, events/s", ours["single"], "/s", limit=floor["single"],
            limit_how=f"a bare aiohttp handler (parse JSON, answer 202), same {tool} load",
            peer=best_single[1]["single"] if best_single else None, peer_how=best_single[0] if best_single else "",
            target="≥ 0.70 of bare", met=ours["single"] >= 0.7 * floor["single"], note=note,
            details={"engine": ours, "bare": floor, "peers": peers}),
        Row("ingest", "POST /v1/events/batch, events/s", ours["batch"], "/s", limit=floor["batch"],
            limit_how="a bare aiohttp handler for the batch (1,000 events per request)",
            peer=best_batch[1]["batch"] if best_batch else None, peer_how=best_batch[0] if best_batch else "",
            target="≥ 30,000/s", met=ours["batch"] >= 30_000),
    ]


# -- the parked population: waiting, latency, timers -----------------------------------------------------------

async def park(ctx: Context, engine: Engine, customers: Sequence[str], expected_waiting: int) -> tuple[int, float]:
    """Send the cart of each customer; wait until `expected_waiting` instances wait in give_them_time.

    Returns (instances waiting, seconds)."""
    started = time.monotonic()
    await post_batches(ctx.session, engine.url, customer_batches(customers, lambda i: False, per_batch=1000))
    waiting = 0

    async def parked() -> bool:
        nonlocal waiting
        waiting = waiting_in(await engine.journey(ctx.session), "give_them_time")
        return waiting >= expected_waiting

    await wait_until(parked, max(1.0, ctx.sizes.park_limit - (time.monotonic() - started)), every=0.5)
    return waiting, time.monotonic() - started


async def history_bytes(ctx: Context, engine: Engine, redis: Any, customers: Sequence[str]) -> float:
    """Redis bytes per customer of the same cart event applied without starting the journey (its total is below
    the trigger's): what any event costs a customer — its timeline record and the last-applied mark. Parked
    customers cost this plus their waiting instance."""
    before = await settle_memory(redis)
    batches = [[cart_event(cid, SMALL_TOTAL) for cid in customers[start:start + 1000]]
               for start in range(0, len(customers), 1000)]
    await post_batches(ctx.session, engine.url, batches)
    if not await wait_until(lambda: backlog_empty(engine.workspace), ctx.sizes.park_limit, every=0.5):
        ctx.log("waiting: warning, the history control group was not applied in time")
    return (await settle_memory(redis) - before) / len(customers)


async def minimal_waiting_bytes(n: int) -> float:
    """Redis bytes per waiting instance when it is only what a wait needs: one small hash (journey, step, token,
    the cart's skus and total) and one timer member in a sorted set."""
    redis = redis_client(PEER_DB)
    try:
        await redis.flushdb()
        before = await settle_memory(redis, 0.5)
        for start in range(0, n, 2000):
            async with redis.pipeline(transaction=False) as pipe:
                for i in range(start, min(start + 2000, n)):
                    pipe.hset(f"min:{{c-{i}}}", mapping={"j": "abandoned_cart", "p": "1", "t": "2",
                                                          "v": '{"skus":["SKU-1","SKU-7"],"total":101.5}'})
                    pipe.zadd(f"min:timers:{i % 16}", {f"c-{i}|{i:020x}|2": 1795000000.0 + i})
                await pipe.execute()
        after = await settle_memory(redis, 0.5)
        return (after - before) / n
    finally:
        await redis.flushdb()
        await redis.aclose()


async def peer_waiting(ctx: Context, peer: Peer) -> dict[str, Any]:
    n = ctx.sizes.peer_waiting
    await flush(PEER_DB)
    await standin_reset(ctx)
    env = peer.env(ctx.standin_url, FIRST_WAIT, 48 * 3600)
    redis = redis_client(PEER_DB)
    procs = await peer.start_workers(ctx.group, env)
    try:
        await peer.run(env, "profiles", "--prefix", "w-", "--count", str(n))
        rss_before = sum(rss_mb(pid) for pid in all_pids(procs))
        before = await settle_memory(redis)
        await peer.run(env, "park", "--prefix", "w-", "--count", str(n))

        async def parked() -> bool:
            if peer.name == "arq":  # every cart task done: only the deferred first_wait_over jobs are queued
                later = int((time.time() + 60) * 1000)
                return int(await redis.zcount("arq:queue", later, "+inf")) >= n
            return int(await redis.llen("celery")) == 0 and int(await redis.hlen("unacked")) >= n

        finished = await wait_until(parked, ctx.sizes.park_limit, every=0.5)
        after = await settle_memory(redis)
        rss_after = sum(rss_mb(pid) for pid in all_pids(procs))
        return {"n": n, "finished": finished, "bytes_per_waiting": (after - before) / n,
                "rss_before_mb": rss_before, "rss_after_mb": rss_after}
    finally:
        await redis.aclose()
        for proc in procs:
            await ctx.group.stop(proc)
        await flush(PEER_DB)


async def latency_run(ctx: Context, url: str, customers: Sequence[str], rate: float | None = None,
                      drain: float = 10.0) -> dict[str, Any]:
    """Orders for parked customers at a steady rate; ms from each 202 to the thank-you at the stand-in."""
    await standin_reset(ctx)
    bodies = [order_event(c) for c in customers]
    accepted, errors, took = await open_loop(url, bodies, rate or ctx.sizes.latency_rate)

    async def drained() -> bool:
        return int((await standin_stats(ctx))["by_template"].get("order_thanks", 0)) >= len(accepted)

    await wait_until(drained, drain)
    received = first_receipts(await standin_received(ctx), "order_thanks")
    result = summary(latencies_ms(accepted, received))
    result.update({"rate": len(bodies) / took, "refused": errors, "accepted": len(accepted)})
    return result


async def relay_latency(ctx: Context, customers: Sequence[str]) -> dict[str, Any]:
    port = free_port()
    await flush(PEER_DB)
    proc = ctx.group.start("bare-relay", python_argv(BENCH / "bare.py", "relay", "--port", str(port), "--db",
                                                     str(PEER_DB), "--provider", f"{ctx.standin_url}/msg"))
    try:
        await wait_http(f"http://127.0.0.1:{port}/readyz", proc)
        return await latency_run(ctx, f"http://127.0.0.1:{port}/v1/events", customers)
    finally:
        await ctx.group.stop(proc)
        await flush(PEER_DB)


async def peer_latency(ctx: Context, peer: Peer) -> dict[str, Any]:
    n = int(ctx.sizes.latency_rate * ctx.sizes.peer_latency_seconds)
    await flush(PEER_DB)
    env = peer.env(ctx.standin_url, FIRST_WAIT, 48 * 3600)
    redis = redis_client(PEER_DB)
    procs = await peer.start_workers(ctx.group, env)
    web, url = await peer.start_web(ctx.group, env)
    try:
        await peer.run(env, "profiles", "--prefix", "l-", "--count", str(n))
        await peer.run(env, "park", "--prefix", "l-", "--count", str(n))

        async def parked() -> bool:
            if peer.name == "arq":
                return int(await redis.zcount("arq:queue", int((time.time() + 60) * 1000), "+inf")) >= n
            return int(await redis.llen("celery")) == 0 and int(await redis.hlen("unacked")) >= n

        await wait_until(parked, ctx.sizes.park_limit, every=0.5)
        return await latency_run(ctx, f"{url}/v1/events", [f"l-{i}" for i in range(n)])
    finally:
        await redis.aclose()
        await ctx.group.stop(web)
        for proc in procs:
            await ctx.group.stop(proc)
        await flush(PEER_DB)


async def timer_due_times(workspace: str) -> dict[str, float]:
    """Customer -> due journey time of their waiting timer, read from the engine's timer sets."""
    keys = Keyspace(workspace, PARTITIONS)
    redis = redis_client(ENGINE_DB)
    try:
        due: dict[str, float] = {}
        for n in range(PARTITIONS):
            for member, score in await redis.zrange(keys.partition(n).timers, 0, -1, withscores=True):
                due[member.split("|", 1)[0]] = float(score)
        return due
    finally:
        await redis.aclose()


async def timers_left(workspace: str, until: float) -> int:
    """Timers due at or before `until` (journey time) still waiting to be moved into the work streams."""
    keys = Keyspace(workspace, PARTITIONS)
    redis = redis_client(ENGINE_DB)
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for n in range(PARTITIONS):
                pipe.zcount(keys.partition(n).timers, "-inf", until)
            return sum(await pipe.execute())
    finally:
        await redis.aclose()


async def backlog_empty(workspace: str) -> bool:
    """No entry left in the engine's work streams (entries are deleted once applied)."""
    keys = Keyspace(workspace, PARTITIONS)
    redis = redis_client(ENGINE_DB)
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for n in range(PARTITIONS):
                pipe.xlen(keys.partition(n).work)
            return sum(await pipe.execute()) == 0
    finally:
        await redis.aclose()


async def engine_burst(ctx: Context, engine: Engine) -> dict[str, Any]:
    """Restart the workers on a faster journey clock so that every parked first wait falls due ~6 s later,
    within well under a second of each other; watch them fire (the push each one sends)."""
    due = await timer_due_times(engine.workspace)
    n = len(due)
    await engine.stop()
    await standin_reset(ctx)
    now = time.time()
    lead = 6.0
    speed = (min(due.values()) - now) / lead  # the earliest one falls due `lead` seconds after the restart
    spread = (max(due.values()) - min(due.values())) / speed
    stats_before, redis_cpu_before = await commandstats(), await redis_cpu()
    await engine.start_workers(2, clock_speed=speed)
    redis = redis_client(ENGINE_DB)
    try:
        clock = await redis.hgetall(Keyspace(engine.workspace, PARTITIONS).clock)
    finally:
        await redis.aclose()
    anchor_real, anchor_journey = float(clock["anchor_real"]), float(clock["anchor_journey"])
    due_real = {c: anchor_real + (d - anchor_journey) / speed for c, d in due.items()}
    first_due = min(due_real.values())
    all_moved_at: float | None = None

    async def fired() -> bool:
        nonlocal all_moved_at
        if all_moved_at is None and await timers_left(engine.workspace, max(due.values())) == 0:
            all_moved_at = time.time()
        return int((await standin_stats(ctx))["by_template"].get("cart_discount", 0)) >= n

    limit = max(1.0, first_due - time.time()) + ctx.sizes.burst_limit
    finished = await wait_until(fired, limit, every=0.1)
    stats = await standin_stats(ctx)
    received = first_receipts(await standin_received(ctx), "cart_discount")
    lateness = [received[c] - due_real[c] if c in received else math.inf for c in due_real]
    fired_lateness = [value for value in lateness if math.isfinite(value)]
    last = max(received.values(), default=math.nan)
    calls = redis_limits.delta(stats_before, await commandstats())
    redis_busy = (await redis_cpu() - redis_cpu_before) / max(1e-9, (last if received else time.time()) - first_due)
    limit_rate, mix = await ctx.limits.per_unit(calls, max(1, len(received)))
    ctx.mixes["timer burst: Redis calls per fired timer (incl. its push)"] = mix
    return {"n": n, "finished": finished, "fired": len(received), "speed": speed, "due_spread_s": spread,
            "all_fired_s": (last - first_due) if finished else math.inf,
            "moved_s": (all_moved_at - first_due) if all_moved_at else math.inf,
            "fire_rate": len(received) / max(1e-9, last - first_due) if received else 0.0,
            "lateness_p50": percentile(lateness, 50), "lateness_p99": percentile(lateness, 99),
            "fired_lateness_p50": percentile(fired_lateness, 50), "fired_lateness_p99": percentile(fired_lateness, 99),
            "duplicates": stats["duplicates"] + stats["duplicate_ids"], "limit_rate": limit_rate,
            "redis_core_busy": redis_busy}


async def peer_burst(ctx: Context, peer: Peer) -> dict[str, Any]:
    n = ctx.sizes.peer_burst
    await flush(PEER_DB)
    await standin_reset(ctx)
    env = peer.env(ctx.standin_url, FIRST_WAIT, 48 * 3600)
    procs = await peer.start_workers(ctx.group, env)
    try:
        await peer.run(env, "profiles", "--prefix", "t-", "--count", str(n))
        due = time.time() + 4 + n / 2000  # after the tasks are all queued
        await peer.run(env, "burst", "--prefix", "t-", "--count", str(n), "--at", repr(due))

        async def fired() -> bool:
            return int((await standin_stats(ctx))["by_template"].get("cart_discount", 0)) >= n

        finished = await wait_until(fired, max(1.0, due - time.time()) + ctx.sizes.burst_limit, every=0.1)
        stats = await standin_stats(ctx)
        received = first_receipts(await standin_received(ctx), "cart_discount")
        lateness = [received.get(f"t-{i}", math.inf) - due for i in range(n)]
        last = max(received.values(), default=math.nan)
        return {"n": n, "finished": finished, "fired": len(received),
                "all_fired_s": (last - due) if finished else math.inf,
                "fire_rate": len(received) / max(1e-9, last - due) if received else 0.0,
                "lateness_p99": percentile(lateness, 99), "duplicates": stats["duplicates"]}
    finally:
        for proc in procs:
            await ctx.group.stop(proc)
        await flush(PEER_DB)


async def scenario_population(ctx: Context, selected: set[str]) -> list[Row]:
    """waiting, latency and timers, in that order, on one engine (API + 2 workers, real-time clock)."""
    rows: list[Row] = []
    sizes = ctx.sizes
    n_wait = sizes.waiting if selected & {"waiting", "timers"} else 0
    n_history = min(n_wait, HISTORY_CUSTOMERS) if "waiting" in selected else 0
    n_lat = int(sizes.latency_rate * sizes.latency_seconds) if "latency" in selected else 0
    n_warm = min(n_wait, WARM_UP_CUSTOMERS) if "waiting" in selected and not n_lat else 0
    n_light = int(LIGHT_RATE * sizes.relay_seconds) if n_lat else 0  # the same path, unloaded
    await flush(ENGINE_DB)
    await standin_reset(ctx)
    engine = await Engine(ctx.group, ENGINE_DB, ctx.run_dir, ctx.standin_url, workers=2, clock_speed=1.0).start()
    redis = redis_client(ENGINE_DB)
    try:
        ctx.log(f"population: profiles for {n_wait + n_history + n_lat + n_warm:,} customers")
        if n_wait:
            await create_profiles(ctx.group, ENGINE_DB, engine.workspace, "w-", n_wait)
        if n_history:
            await create_profiles(ctx.group, ENGINE_DB, engine.workspace, "h-", n_history)
        if n_lat:
            await create_profiles(ctx.group, ENGINE_DB, engine.workspace, "l-", n_lat + n_light)
        if n_warm:
            await create_profiles(ctx.group, ENGINE_DB, engine.workspace, "u-", n_warm)
        lat_parked = 0
        if n_lat:
            ctx.log(f"latency: parking {n_lat + n_light:,} customers in give_them_time")
            lat_parked, _ = await park(ctx, engine, [f"l-{i}" for i in range(n_lat + n_light)], n_lat + n_light)
        if n_warm:  # the latency customers warm the workers up when there are any; else these do
            ctx.log(f"waiting: warming the workers up with {n_warm:,} parked customers (before the baselines)")
            lat_parked, _ = await park(ctx, engine, [f"u-{i}" for i in range(n_warm)], n_warm)
        if n_wait:
            memory0, rss0 = await settle_memory(redis), max(rss_mb(pid) for pid in engine.pids())
            tenth = n_wait // 10
            ctx.log(f"waiting: parking {tenth:,} then {n_wait - tenth:,} more customers")
            parked1, _ = await park(ctx, engine, [f"w-{i}" for i in range(tenth)], lat_parked + tenth)
            rss1 = max(rss_mb(pid) for pid in engine.pids())
            parked2, took = await park(ctx, engine, [f"w-{i}" for i in range(tenth, n_wait)], lat_parked + n_wait)
            memory2, rss2 = await settle_memory(redis), max(rss_mb(pid) for pid in engine.pids())
            parked = parked2 - lat_parked
            if "waiting" in selected:
                per_instance = (memory2 - memory0) / max(1, parked)
                ctx.log(f"waiting: the same cart for {n_history:,} customers it starts no journey for")
                history = await history_bytes(ctx, engine, redis, [f"h-{i}" for i in range(n_history)])
                ctx.log("waiting: the minimal representation, and the peers")
                floor = await minimal_waiting_bytes(min(n_wait, 20_000))
                peer_results = {p.name: await peer_waiting(ctx, p) for p in ctx.peers_for("waiting")}
                arq = peer_results.get("arq")
                celery = peer_results.get("celery")
                note = "" if parked >= n_wait else f"park time limit hit: {parked:,}/{n_wait:,} parked"
                rows.append(Row("waiting", f"Redis bytes per waiting instance ({parked:,} waiting)", per_instance,
                                "B", limit=floor, limit_how="INFO used_memory delta of a minimal state hash + a "
                                "timer member per instance", peer=arq["bytes_per_waiting"] if arq else None,
                                peer_how=f"arq, {arq['n']:,} waiting" if arq else "", target="≤ 500 B",
                                met=per_instance <= 500, note=note,
                                details={"used_memory_before": memory0, "used_memory_after": memory2,
                                         "parked": parked, "peers": peer_results}))
                rows.append(Row("waiting", "of which the waiting instance's own", per_instance - history, "B",
                                limit=floor, limit_how="the minimal state above",
                                peer=arq["bytes_per_waiting"] if arq else None,
                                peer_how=f"arq, {arq['n']:,} waiting: all its state (it keeps no history)"
                                if arq else "",
                                note=f"the rest, {history:,.0f} B, is what the cart event costs a customer it "
                                     f"starts no journey for (its timeline record, the last-applied mark; "
                                     f"{n_history:,} customers)",
                                details={"history_bytes_per_customer": history, "history_customers": n_history}))
                growth = rss2 - rss1
                rows.append(Row("waiting", f"engine worker RSS, {parked:,} waiting", rss2, "MiB", limit=rss1,
                                limit_how=f"the same worker's RSS with {parked1 - lat_parked:,} waiting",
                                peer=celery["rss_after_mb"] if celery else None,
                                peer_how=(f"celery worker, {celery['n']:,} waiting (idle "
                                          f"{celery['rss_before_mb']:.0f} MiB)") if celery else "",
                                target="independent of N", met=growth <= max(5.0, 0.1 * rss1),
                                details={"rss_idle_mb": rss0, "rss_tenth_mb": rss1, "rss_all_mb": rss2,
                                         "park_seconds": took}))
        if n_lat:
            # Everything else first, while the engine is idle; its loaded run last, then let it drain.
            ctx.log(f"latency: engine at {LIGHT_RATE} orders/s for {sizes.relay_seconds:.0f}s, the bare relay and "
                    "the peers at the full rate")
            light = await latency_run(ctx, f"{engine.url}/v1/events", [f"l-{n_lat + i}" for i in range(n_light)],
                                      rate=LIGHT_RATE)
            floor_result = await relay_latency(ctx, [f"r-{i}" for i in
                                                     range(int(sizes.latency_rate * sizes.relay_seconds))])
            peer_results = {p.name: await peer_latency(ctx, p) for p in ctx.peers_for("latency")}
            ctx.log(f"latency: engine at {sizes.latency_rate:,} orders/s for {sizes.latency_seconds:.0f}s")
            ours = await latency_run(ctx, f"{engine.url}/v1/events", [f"l-{i}" for i in range(n_lat)],
                                     drain=sizes.latency_drain)
            if not await wait_until(lambda: backlog_empty(engine.workspace), sizes.backlog_limit, every=0.5):
                ctx.log(f"latency: warning, the engine's backlog did not drain within {sizes.backlog_limit:.0f}s")
            best = min(peer_results.items(), key=lambda kv: kv[1]["p99"], default=None)
            refused = ", ".join(f"{n} answered {status}" for status, n in ours["refused"].items())
            for q in ("p50", "p95", "p99"):
                rows.append(Row("latency", f"event → provider {q} at {ours['rate']:,.0f}/s", ours[q], "ms",
                                limit=floor_result[q], limit_how="a bare relay: aiohttp handler XADD, consumer "
                                "XREADGROUP, POST to the stand-in, same rate",
                                peer=best[1][q] if best else None, peer_how=best[0] if best else "",
                                target="≤ 20 ms" if q == "p99" else "", met=ours[q] <= 20 if q == "p99" else None,
                                note="; ".join(filter(None, [
                                    f"{ours['missing']} of {ours['count']} never arrived" if ours["missing"] else "",
                                    f"of {n_lat:,} events sent, {refused}" if refused else ""])) if q == "p99" else "",
                                details={"engine": ours, "relay": floor_result, "peers": peer_results,
                                         "engine_unloaded": light} if q == "p99" else {}))
            rows.append(Row("latency", f"event → provider p99 at {light['rate']:,.0f}/s (unloaded)", light["p99"],
                            "ms", limit=floor_result["p99"], target="", details={"engine": light},
                            note=f"p50 {light['p50']:.1f} ms" + (f", {light['missing']} never arrived"
                                                                 if light["missing"] else "")))
        if "timers" in selected and n_wait:
            ctx.log("timers: restarting the workers on a fast clock, every first wait falls due at once")
            ours = await engine_burst(ctx, engine)
            await engine.stop()  # its remaining timers must not fire into the peers' measurements
            peer_results = {}
            for peer in ctx.peers_for("timers"):
                ctx.log(f"timers: peer {peer.name}, {sizes.peer_burst:,} tasks due at once")
                peer_results[peer.name] = await peer_burst(ctx, peer)
            best = max(peer_results.items(), key=lambda kv: kv[1]["fire_rate"], default=None)
            http_rate = await bare_send_rate(ctx, 2)
            limit_rate = min(ours["limit_rate"], http_rate) if ours["limit_rate"] else http_rate
            limit_how = (f"the lower of the redis-benchmark rates of the Redis command mix per fired timer "
                         f"({ours['limit_rate']:,.0f}/s) and 2 bare senders' pushes to the stand-in "
                         f"({http_rate:,.0f}/s): each fired timer sends one push")
            floor_seconds = ours["n"] / limit_rate if limit_rate else math.nan
            # Fired = its push at the provider; the timers themselves leave their sets far sooner: what takes
            # the rest is each one's work (a journey step, a message) queued behind the others
            moved = (f"all {ours['n']:,} taken from the timer sets into their customers' work streams within "
                     f"{ours['moved_s']:.2f} s of falling due; the rest is their work, a push each"
                     if math.isfinite(ours["moved_s"]) else "")
            hit = "" if ours["finished"] else (
                f"time limit hit: {ours['fired']:,}/{ours['n']:,} fired; at {ours['fire_rate']:,.0f}/s all would take "
                f"~{ours['n'] / max(1.0, ours['fire_rate']):,.0f}s"
                + (f"; lateness of those fired: p50 {ours['fired_lateness_p50']:.1f}s, p99 "
                   f"{ours['fired_lateness_p99']:.1f}s" if ours["fired"] else ""))
            note = "; ".join(filter(None, [hit, moved]))
            rows += [
                Row("timers", f"{ours['n']:,} timers due at once: all fired within", ours["all_fired_s"], "s",
                    limit=floor_seconds, limit_how="N / the fire-rate limit",
                    peer=best[1]["all_fired_s"] if best else None,
                    peer_how=f"{best[0]}, {best[1]['n']:,} due" if best else "", target="≤ 10 s",
                    met=ours["all_fired_s"] <= 10, note=note, details={"engine": ours, "peers": peer_results}),
                Row("timers", "fire rate (timer → its push at the provider)", ours["fire_rate"], "/s",
                    limit=limit_rate, limit_how=limit_how, peer=best[1]["fire_rate"] if best else None,
                    peer_how=best[0] if best else ""),
                Row("timers", "lateness p99", ours["lateness_p99"], "s", limit=0.99 * floor_seconds,
                    limit_how="0.99 N / the fire-rate limit",
                    peer=best[1]["lateness_p99"] if best else None, peer_how=best[0] if best else ""),
                Row("timers", "duplicates", float(ours["duplicates"]), "", target="0", met=ours["duplicates"] == 0,
                    peer=float(best[1]["duplicates"]) if best else None, peer_how=best[0] if best else ""),
            ]
    finally:
        await redis.aclose()
        await engine.stop()
        await flush(ENGINE_DB)
    return rows
