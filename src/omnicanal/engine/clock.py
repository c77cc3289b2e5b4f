"""The journey clock: real time, or real time running `OMNICANAL_CLOCK_SPEED` times faster.

Every worker must agree on journey time, and a restarted daemon must carry on where time stood, so with a speed
other than 1 the clock's anchor (a real instant and the journey time it maps to) lives in Redis. The first
process to start at a given speed writes it; a later change of speed re-anchors at the current journey time so
time never jumps backwards.
"""

from __future__ import annotations

import time

from omnicanal.store.connection import FieldMap, Redis, call
from omnicanal.store.keys import Keyspace


class Clock:
    """Journey time = anchor_journey + (real now - anchor_real) x speed, in epoch seconds."""

    def __init__(self, speed: float = 1.0, anchor_real: float = 0.0, anchor_journey: float = 0.0) -> None:
        self.speed = speed
        self._anchor_real = anchor_real
        self._anchor_journey = anchor_journey

    def now(self) -> float:
        if self.speed == 1.0:
            return time.time()
        return self._anchor_journey + (time.time() - self._anchor_real) * self.speed

    @classmethod
    async def current(cls, redis: Redis, keys: Keyspace) -> Clock:
        """The clock the workspace's processes agree on, read without changing it (real time if none is
        stored): for commands that only look."""
        stored = await call(redis.hgetall(keys.clock))
        if not stored:
            return cls()
        return cls(float(stored["speed"]), float(stored["anchor_real"]), float(stored["anchor_journey"]))

    @classmethod
    async def shared(cls, redis: Redis, keys: Keyspace, speed: float) -> Clock:
        """The clock every process of this workspace agrees on."""
        if speed == 1.0:
            return cls()
        real = time.time()
        stored = await call(redis.hgetall(keys.clock))
        previous = cls(float(stored["speed"]), float(stored["anchor_real"]), float(stored["anchor_journey"])) \
            if stored else None
        if previous is not None and previous.speed == speed:
            return previous
        journey_now = previous.now() if previous is not None else real
        anchor: FieldMap = {"speed": repr(speed), "anchor_real": repr(real), "anchor_journey": repr(journey_now)}
        await call(redis.hset(keys.clock, mapping=anchor))
        return cls(speed, real, journey_now)


class ManualClock(Clock):
    """A clock that only moves when told: `omnicanal simulate` jumps it from one due moment to the next, so a
    dry run of days of journey time is exact to the second and takes as long as the work, not the waits."""

    def __init__(self, start: float) -> None:
        super().__init__(speed=float("inf"))
        self._now = start

    def now(self) -> float:
        return self._now

    def advance_to(self, moment: float) -> None:
        self._now = max(self._now, moment)
