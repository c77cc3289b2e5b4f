"""What an API key may do: the scopes (api/permissions.py maps every route to one; access.py checks them)."""

from __future__ import annotations

from enum import StrEnum


class Scope(StrEnum):
    EVENTS_WRITE = "events:write"
    CUSTOMERS_READ = "customers:read"
    CUSTOMERS_WRITE = "customers:write"
    JOURNEYS_ADMIN = "journeys:admin"
    UI_READ = "ui:read"


SCOPE_NAMES = frozenset(scope.value for scope in Scope)
