"""The customer behind an identifier, the same for every endpoint that names one (events, batches, profile
updates and reads).

A customer id is used as is, without a Redis read: the ingest path stays free. An identifier shaped like an
address (`email:…`, `phone:…`, `push:…`, `anon:…`, a bare e-mail or `+` phone number; see
`omnicanal.identity.lookup_of`) names whoever has that address, and is never taken for a new customer's id: an
event for an address nobody has would otherwise start a customer no profile update or journey could reach.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from omnicanal.engine.runtime import Runtime
from omnicanal.identity import lookup_of

_NAMES = {"email": "e-mail", "phone": "phone", "push": "push token", "anon": "anonymous id"}


@dataclass(frozen=True, slots=True)
class Unresolved:
    """An identifier that names nobody (or is malformed): `message` says why and what to send instead."""

    message: str

    @classmethod
    def nobody_has(cls, kind: str, value: str) -> Unresolved:
        if kind == "anon":
            fix = f"send a visitor's events with its anonymous id as customer_id ({value!r}, without `anon:`)"
        else:
            fix = "PUT the customer with that address first, or send their id"
        return cls(f"no customer has {_NAMES[kind]} {value}: {fix}")


async def customers_behind(runtime: Runtime, given: Sequence[str]) -> list[str | Unresolved]:
    """The customer id behind each identifier, in order: one Redis round trip for all that need a lookup, none
    when every one is an id."""
    found: list[str | Unresolved] = list(given)
    lookups: dict[int, tuple[str, str]] = {}
    for index, identifier in enumerate(given):
        try:
            lookup = lookup_of(identifier, runtime.settings.default_region)
        except ValueError as exc:  # shaped like a phone number, and not one
            found[index] = Unresolved(str(exc))
            continue
        if lookup is not None:
            lookups[index] = lookup
    if lookups:
        owners = await runtime.identity.resolve_many(list(lookups.values()))
        for (index, (kind, value)), owner in zip(lookups.items(), owners, strict=True):
            found[index] = owner if owner is not None else Unresolved.nobody_has(kind, value)
    return found


async def customer_behind(runtime: Runtime, given: str) -> str | Unresolved:
    """`customers_behind` for one identifier."""
    [found] = await customers_behind(runtime, [given])
    return found
