"""What every dashboard view reaches: the runtime, the gate, the page templates and the read-only stores."""

from __future__ import annotations

from dataclasses import dataclass

import jinja2
from aiohttp import web

from omnicanal.engine.runtime import Runtime
from omnicanal.store.overview import OverviewStore
from omnicanal.store.timeline_pages import TimelinePages
from omnicanal.ui.session import Gate


@dataclass(frozen=True, slots=True)
class Dashboard:
    runtime: Runtime
    gate: Gate
    templates: jinja2.Environment
    timelines: TimelinePages
    overview: OverviewStore


DASHBOARD = web.AppKey("dashboard", Dashboard)


def dashboard_of(request: web.Request) -> Dashboard:
    return request.app[DASHBOARD]
