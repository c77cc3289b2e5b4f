"""The journeys a worker runs: the current version of each file, and older versions still in flight."""

from __future__ import annotations

from collections.abc import Iterable

from omnicanal.errors import JourneyError, Problem
from omnicanal.journey.loader import parse_journey
from omnicanal.journey.model import Journey
from omnicanal.policy.caps import longest
from omnicanal.store.journeys import JourneyStore


class JourneyRegistry:
    """Current journeys by id and by trigger event; any version on demand from the store."""

    def __init__(self, store: JourneyStore) -> None:
        self._store = store
        self.current: dict[str, Journey] = {}
        self._versions: dict[tuple[str, str], Journey] = {}
        self._by_trigger: dict[str, list[Journey]] = {}
        self._listened: frozenset[str] = frozenset()
        self.longest_cap = 0.0
        """The longest period a frequency cap of a journey at hand counts (policy/caps.longest): how long a
        customer's record of sends is kept, since every journey's caps read the same record."""

    async def replace(self, journeys: Iterable[Journey]) -> None:
        """Make these the current journeys. Their sources are stored first, so an instance started on any of
        them can finish on it later (with the events they react to: see `listens`); versions already known stay
        available to the instances running them."""
        loaded = list(journeys)
        for journey in loaded:
            await self._store.remember(journey.id, journey.version, journey.source, journey.events())
        stored = await self._store.listened()
        by_trigger: dict[str, list[Journey]] = {}
        for journey in loaded:
            if journey.trigger.event is not None:  # a scheduled journey is triggered by no event
                by_trigger.setdefault(journey.trigger.event, []).append(journey)
            self._versions[(journey.id, journey.version)] = journey
        self.current = {j.id: j for j in loaded}
        self._by_trigger = by_trigger
        self._listened = frozenset(stored.union(*(journey.events() for journey in self._versions.values())))
        self.longest_cap = longest(cap for journey in self._versions.values() for cap in journey.caps)

    def triggered_by(self, event_name: str) -> list[Journey]:
        return self._by_trigger.get(event_name, [])

    def listens(self, event_name: str) -> bool:
        """Whether a journey reacts to events of this name — any version ever remembered in the workspace, not
        only the current ones: an instance finishes on the version it began with, so a `wait_for: customer.updated`
        of a version replaced (or a journey deleted) since must still be given the event a profile change makes."""
        return event_name in self._listened

    def current_of(self, journey_id: str) -> Journey | None:
        return self.current.get(journey_id)

    def loaded(self, journey_id: str, version: str) -> Journey:
        """A version already at hand (current, or loaded by `version`/`preload`); KeyError otherwise."""
        return self._versions[(journey_id, version)]

    async def preload(self, versions: Iterable[tuple[str, str]]) -> None:
        """Make these versions available to `loaded` (the journey core reads journeys without awaiting)."""
        for journey_id, version in versions:
            if (journey_id, version) not in self._versions:
                await self.version(journey_id, version)

    async def version(self, journey_id: str, version: str) -> Journey:
        """The exact version an instance started on; parsed from the stored source when not current."""
        found = self._versions.get((journey_id, version))
        if found is not None:
            return found
        source = await self._store.source(journey_id, version)
        if source is None:
            where = f"<journey {journey_id}>"
            raise JourneyError([Problem(where, 0, f"version {version} is not stored in this workspace")])
        journey = parse_journey(source, f"<{journey_id}@{version}>")
        self._versions[(journey_id, version)] = journey
        self._listened |= journey.events()
        self.longest_cap = max(self.longest_cap, longest(journey.caps))
        return journey
