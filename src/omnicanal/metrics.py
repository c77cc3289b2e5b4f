"""Prometheus metrics, served at `GET /metrics` (deploy/grafana/omnicanal.json draws them).

Names follow Prometheus' conventions: `omnicanal_` first, the unit last (`_seconds`), counters exposed with
`_total`. Labels take bounded values only — the workspace (bounded by the workspace folders), journey and step
ids (bounded by the journey files), channels, connectors, statuses and outcomes — never a customer or message id,
so the series count does not grow with traffic.

Every metric is labelled with its workspace: with OMNICANAL_WORKSPACES_DIR one process runs a runtime per
workspace, and a gauge without the label would show whichever workspace reported last. A runtime feeds its
workspace's series through its WorkspaceMetrics, looked up once when it starts.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from prometheus_client import Counter, Gauge, Histogram

M = TypeVar("M", Counter, Histogram)


class Children(Generic[M]):
    """A labelled metric's series by label values, looked up once: `labels()` checks the values and takes a lock
    on every call (~1 µs, several per message on the send path); the series it gives never change. `prefix`: the
    first label values, the same for every series asked for here (the workspace)."""

    __slots__ = ("_metric", "_prefix", "_series")

    def __init__(self, metric: M, *prefix: str) -> None:
        self._metric: M = metric
        self._prefix = prefix
        self._series: dict[tuple[str, ...], M] = {}

    def __call__(self, *values: str) -> M:
        series = self._series.get(values)
        if series is None:
            series = self._series[values] = self._metric.labels(*self._prefix, *values)
        return series


LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Seconds, from a fast provider answer to a provider's timeout."""
DELAY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)
"""Seconds of delay in the pipeline, from a healthy few milliseconds to a backlog of minutes."""

EVENTS_ACCEPTED = Counter("omnicanal_events_accepted", "Events durably stored by the API", ["workspace"])
WORK_ITEMS = Counter("omnicanal_work_items", "Work items applied by workers", ["workspace", "kind"])
MESSAGES = Counter(
    "omnicanal_messages", "Send step outcomes (sent, failed, suppressed, held, retrying...); channel empty when "
    "none was chosen", ["workspace", "journey", "step", "channel", "status"])
PROVIDER_SECONDS = Histogram(
    "omnicanal_provider_seconds", "Time a connector took to hand a message to its provider, by outcome (ok, "
    "transient, permanent, unknown)", ["workspace", "connector", "outcome"], buckets=LATENCY_BUCKETS)
EVENT_LAG = Histogram("omnicanal_event_lag_seconds", "Real time from an event's arrival at the API to its "
                      "application by a worker", ["workspace"], buckets=DELAY_BUCKETS)
TIMER_LATENESS = Histogram("omnicanal_timer_lateness_seconds", "Real time between a timer's due moment and the "
                           "timer loop moving it into the work stream", ["workspace"], buckets=DELAY_BUCKETS)
WORK_BACKLOG = Gauge("omnicanal_work_backlog", "Entries waiting in all work partitions of the workspace (scale "
                     "workers on it)", ["workspace"])
WORK_PENDING = Gauge("omnicanal_work_pending", "Entries handed to a worker and not yet acknowledged, all work "
                     "partitions of the workspace (XPENDING)", ["workspace"])
WAITING_TIMERS = Gauge("omnicanal_waiting_timers", "Durable timers not yet due, all partitions of the workspace",
                       ["workspace"])
OWNED_PARTITIONS = Gauge("omnicanal_owned_partitions", "Work partitions of the workspace this worker holds",
                         ["workspace"])
LOOP_ERRORS = Counter(
    "omnicanal_loop_errors", "Errors a background loop logged and survived (reload, ownership)", ["workspace", "loop"]
)


class WorkspaceMetrics:
    """One workspace's series of every metric above, for its runtime's worker, timers, deliveries, API and
    loops: made once when the runtime starts, so the hot path never looks a series up by its labels."""

    __slots__ = ("event_lag", "events_accepted", "loop_errors", "messages", "owned_partitions", "provider_seconds",
                 "timer_lateness", "waiting_timers", "work_backlog", "work_items", "work_pending")

    def __init__(self, workspace: str) -> None:
        self.events_accepted = EVENTS_ACCEPTED.labels(workspace)
        self.work_items = Children(WORK_ITEMS, workspace)
        self.messages = Children(MESSAGES, workspace)
        self.provider_seconds = Children(PROVIDER_SECONDS, workspace)
        self.event_lag = EVENT_LAG.labels(workspace)
        self.timer_lateness = TIMER_LATENESS.labels(workspace)
        self.work_backlog = WORK_BACKLOG.labels(workspace)
        self.work_pending = WORK_PENDING.labels(workspace)
        self.waiting_timers = WAITING_TIMERS.labels(workspace)
        self.owned_partitions = OWNED_PARTITIONS.labels(workspace)
        self.loop_errors = Children(LOOP_ERRORS, workspace)


def real_seconds(journey_seconds: float, clock_speed: float) -> float:
    """A delay measured on the journey clock in real seconds (an accelerated clock's hour is a real second at
    3600x), never negative: processes' clocks may differ by a little."""
    return max(0.0, journey_seconds / clock_speed)
