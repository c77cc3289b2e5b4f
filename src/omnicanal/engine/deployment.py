"""The runtimes one process runs: one per workspace it serves (workspaces.py), side by side on its event loop.

Each workspace's Runtime is the one a single-workspace process starts — its own settings (name and folders),
keyspace, Redis connections, journeys, templates, segments, worker, timers and file watch — so nothing of one
workspace reaches another's; the API chooses one per request by the request's key (api/state.py). Without
OMNICANAL_WORKSPACES_DIR a deployment is the one runtime of OMNICANAL_WORKSPACE.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import structlog

from omnicanal.config import Settings
from omnicanal.engine.runtime import Role, Runtime
from omnicanal.workspaces import workspace_settings, workspaces_of


def _logged_as(workspace: str, several: bool) -> contextlib.AbstractContextManager[object]:
    """With several workspaces, every log line of a runtime's start and loops names its workspace: the loops'
    tasks are created inside, and a task keeps the context it was created in."""
    return structlog.contextvars.bound_contextvars(workspace=workspace) if several else contextlib.nullcontext()


@dataclass
class Deployment:
    """The runtimes by workspace, and the settings they were derived from (what the HTTP server itself uses:
    host, port, body limits and timeouts, static keys, the dashboard's secret)."""

    settings: Settings
    runtimes: dict[str, Runtime]

    @classmethod
    def of(cls, runtime: Runtime) -> Deployment:
        """A deployment of one runtime already started."""
        return cls(runtime.settings, {runtime.settings.workspace: runtime})

    @classmethod
    async def start(cls, settings: Settings, role: Role = Role.ALL) -> Deployment:
        """Start every workspace's runtime, one after the other; if one cannot start (a broken file, the store
        down), those already started stop and the error goes up: a process never serves some workspaces only."""
        runtimes: dict[str, Runtime] = {}
        workspaces = workspaces_of(settings)
        try:
            for workspace in workspaces:
                with _logged_as(workspace, len(workspaces) > 1):
                    runtimes[workspace] = await Runtime.start(workspace_settings(settings, workspace), role)
        except BaseException:
            await asyncio.gather(*(runtime.stop() for runtime in runtimes.values()))
            raise
        return cls(settings, runtimes)

    @property
    def role(self) -> Role:
        return next(iter(self.runtimes.values())).role

    @property
    def home(self) -> Runtime | None:
        """The runtime of OMNICANAL_WORKSPACE, if served: the one static keys reach."""
        return self.runtimes.get(self.settings.workspace)

    def runtime(self, workspace: str) -> Runtime | None:
        return self.runtimes.get(workspace)

    def stopping(self) -> None:
        """Readiness turns false everywhere at once (SIGTERM), before anything stops."""
        for runtime in self.runtimes.values():
            runtime.stopping.set()

    async def reload(self) -> bool:
        """Reload every workspace's files (SIGHUP); True when all of them run their files' versions."""
        return all(await asyncio.gather(*(runtime.reload() for runtime in self.runtimes.values())))

    async def stop(self) -> None:
        """Every workspace finishes its work in hand (within the same grace period) and closes."""
        await asyncio.gather(*(runtime.stop() for runtime in self.runtimes.values()))
