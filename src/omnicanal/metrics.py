"""Prometheus metrics, served at `GET /metrics`."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

EVENTS_ACCEPTED = Counter("omnicanal_events_accepted", "Events durably stored by the API")
WORK_ITEMS = Counter("omnicanal_work_items", "Work items applied by workers", ["kind"])
MESSAGES = Counter("omnicanal_messages", "Send step outcomes", ["channel", "status"])
WORK_BACKLOG = Gauge("omnicanal_work_backlog", "Entries waiting in all work partitions (scale workers on it)")
WAITING_TIMERS = Gauge("omnicanal_waiting_timers", "Durable timers not yet due, all partitions")
OWNED_PARTITIONS = Gauge("omnicanal_owned_partitions", "Work partitions this worker holds")
LOOP_ERRORS = Counter(
    "omnicanal_loop_errors", "Errors a background loop logged and survived (reload, ownership)", ["loop"]
)
