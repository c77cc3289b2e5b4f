"""The pure journey core alone (journey/core.py) over the steps scenario's customers: what one customer's work
costs the core, with and without segments, in one process and in alternation (no Redis, no provider, no worker).

    .venv/bin/python bench/core.py                       # 1,500 customers, bench/segments against none, 5 rounds
    .venv/bin/python bench/core.py --customers 3000 --rounds 7 --segments bench/segments
    .venv/bin/python bench/core.py --profile /tmp/core.prof   # the segments side under cProfile, top functions
    PYTHONPATH=bench/.runs/ab/<commit>/src .venv/bin/python bench/core.py   # another version's core (ab.py's)

Each customer gets what a worker applies for them in the `steps` scenario (scenarios.engine_steps): their cart
(and every 4th customer's order) in one apply, then the journey's timers as they fall due (the 1 h wait, and for
those who did not order the 48 h one), every send answered `sent`; and, with segments, the customer's segment
expiry timer at its due moment if it falls within `--days` (3 by default: the journey's waits, none of the
segments' windows; the full `steps` run's clock, 172,800x, passes ~40 days in its ~20 s: `--days 40` adds the
30-day window's expiry for every customer, which the full run meets for its first customers only).
Only the core's own time is counted (states, events and timers are made outside the clock).
The rounds alternate the two sides; each side's best round (the least disturbed by other processes) gives its CPU
µs per customer, and the two their difference.
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import pstats
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from common import REPO
from engine import JOURNEY, cart_event, order_event
from scenarios import ORDERS_EVERY

from omnicanal.journey import core
from omnicanal.journey.effects import Attempt, Changes, EventArrived, Handed, TimerFired, Work
from omnicanal.journey.loader import parse_journey
from omnicanal.journey.model import Journey
from omnicanal.journey.segments import NO_SEGMENTS, Segments, load_segments
from omnicanal.journey.session import Context
from omnicanal.journey.state import CustomerState, customer_view
from omnicanal.policy.choice import Rules
from omnicanal.render import TemplateCatalog

START = 1_800_000_000.0
DAY = 86400.0


class Journeys:
    """The core's view of the one journey loaded (session.Journeys)."""

    def __init__(self, journey: Journey) -> None:
        self.journey = journey
        self._listened = journey.events()

    def triggered_by(self, event_name: str) -> Sequence[Journey]:
        return [self.journey] if self.journey.trigger.event == event_name else []

    def loaded(self, journey_id: str, version: str) -> Journey:
        return self.journey

    def current_of(self, journey_id: str) -> Journey | None:
        return self.journey if journey_id == self.journey.id else None

    def listens(self, event_name: str) -> bool:
        return event_name in self._listened


def context(segments: Segments) -> Context:
    templates = TemplateCatalog.load(REPO / "templates", "en")
    source = (REPO / "journeys" / f"{JOURNEY}.yaml").read_text(encoding="utf-8")
    journey = parse_journey(source, f"{JOURNEY}.yaml", templates)
    return Context(Journeys(journey), templates, Rules(), segments=segments, coupon_secret=b"bench")


def event(raw: dict[str, Any], n: int, at: float) -> EventArrived:
    return EventArrived({**raw, "id": f"evt-{n}", "timestamp": "2027-01-15T08:00:00Z", "received_at": at,
                         "properties": copy.deepcopy(raw["properties"])}, unique=True)


def run(context: Context, customers: int, horizon: float = 3 * DAY) -> float:
    """CPU seconds the core took for every customer's work (their states made fresh, outside the clock): CPU
    time, which other processes on the machine move less than elapsed time."""
    spent = 0.0
    for index in range(customers):
        customer_id = f"s-{index}"
        profile = {"locale": "en", "addresses": {"push": [f"device-{customer_id}"], "whatsapp": "+33610000000",
                                                 "sms": "+33610000000", "email": f"{customer_id}@example.com"}}
        state = CustomerState(customer_id, customer_view(customer_id, profile, {"first_name": "Lea"}))
        work: list[Work] = [event(cart_event(customer_id), 2 * index, START)]
        if index % ORDERS_EVERY == 0:
            work.append(event(order_event(customer_id), 2 * index + 1, START))
        timers: dict[tuple[str, str], float] = {}
        now = START
        while True:
            began = time.process_time()
            changes = apply(context, state, work, now)
            spent += time.process_time() - began
            for timer in changes.old_timers:
                timers.pop((timer.instance_id, timer.token), None)
            timers.update({(timer.instance_id, timer.token): timer.due for timer in changes.new_timers})
            due = min(((when, key) for key, when in timers.items() if when <= START + horizon), default=None)
            if due is None:
                break
            now = due[0]
            del timers[due[1]]
            work = [TimerFired(*due[1])]
    return spent


def apply(context: Context, state: CustomerState, work: Iterable[Work], now: float) -> Changes:
    steps = core.apply(context, state, work, now)
    try:
        request = next(steps)
        while True:
            assert isinstance(request, Attempt)
            request = steps.send(Handed("sent"))
    except StopIteration as finished:
        changes: Changes = finished.value
    state.timeline_end += len(changes.timeline)
    return changes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--segments", type=Path, default=REPO / "bench" / "segments")
    parser.add_argument("--days", type=float, default=3.0, help="journey days each customer's timers may fire")
    parser.add_argument("--profile", type=Path, help="profile the segments side once into this file")
    args = parser.parse_args()
    sides = {"without segments": context(NO_SEGMENTS), f"segments of {args.segments}": context(
        load_segments(args.segments))}
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(run, list(sides.values())[1], args.customers, args.days * DAY)
        profiler.dump_stats(args.profile)
        pstats.Stats(str(args.profile)).sort_stats("cumulative").print_stats(40)
        return
    times: dict[str, list[float]] = {name: [] for name in sides}
    run(next(iter(sides.values())), min(args.customers, 300))  # warm: templates compiled, caches filled
    for _ in range(args.rounds):
        for name, side in sides.items():
            times[name].append(run(side, args.customers, args.days * DAY) / args.customers * 1e6)
    best = {name: min(values) for name, values in times.items()}
    for name, values in times.items():
        print(f"{name:>40}: {best[name]:7.1f} µs per customer (rounds: {', '.join(f'{v:.1f}' for v in values)})")
    plain, segmented = best.values()
    print(f"{'segments add':>40}: {segmented - plain:7.1f} µs per customer ({segmented / plain - 1:+.1%})")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
