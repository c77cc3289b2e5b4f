"""What every dashboard view reaches: the runtime of the viewer's workspace, the gate, the page templates and the
read-only stores of that workspace."""

from __future__ import annotations

from dataclasses import dataclass

import jinja2
from aiohttp import web

from omnicanal.access import WORKSPACE
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


DASHBOARDS = web.AppKey("dashboards", dict[str, Dashboard])
"""One per workspace; the gate and the templates are shared."""


def dashboard_of(request: web.Request) -> Dashboard:
    """The dashboard of the viewer's workspace (set once the gate let them in). Before that — the login form, the
    logout — only the shared gate and templates are used, so any workspace's serves."""
    dashboards = request.app[DASHBOARDS]
    workspace = request.get(WORKSPACE)
    return dashboards[workspace] if workspace is not None else next(iter(dashboards.values()))
