"""Prometheus metrics, served at `GET /metrics`."""

from __future__ import annotations

from prometheus_client import Counter

EVENTS_ACCEPTED = Counter("omnicanal_events_accepted", "Events durably stored by the API")
WORK_ITEMS = Counter("omnicanal_work_items", "Work items applied by workers", ["kind"])
MESSAGES = Counter("omnicanal_messages", "Send step outcomes", ["channel", "status"])
