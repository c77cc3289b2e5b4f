"""The workspaces one process serves, and the settings of each.

Without OMNICANAL_WORKSPACES_DIR a process serves one workspace, OMNICANAL_WORKSPACE, from OMNICANAL_JOURNEYS_DIR,
OMNICANAL_TEMPLATES_DIR and OMNICANAL_SEGMENTS_DIR. With it, every folder `<dir>/<workspace>` is a workspace: its
files are `<dir>/<workspace>/journeys`, `templates` and `segments`, its data the Redis keys `oc:<workspace>:...`;
every other setting is the process's own. A folder whose name cannot be a workspace stops the start (naming it):
skipping it would leave a brand's journeys silently unserved.
"""

from __future__ import annotations

import re

from omnicanal.config import Settings
from omnicanal.errors import ConfigError

WORKSPACE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
"""What OMNICANAL_WORKSPACE accepts (config.py): a Redis key prefix."""


def workspaces_of(settings: Settings) -> list[str]:
    """The workspaces `settings` serves, sorted; ConfigError when OMNICANAL_WORKSPACES_DIR holds none, or a
    folder that cannot be one. Hidden folders (`.git`) are not workspaces."""
    folder = settings.workspaces_dir
    if folder is None:
        return [settings.workspace]
    try:
        names = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError as exc:
        raise ConfigError(f"OMNICANAL_WORKSPACES_DIR: cannot read {folder}: {exc.strerror}") from exc
    if bad := [name for name in names if not WORKSPACE_NAME.match(name)]:
        raise ConfigError(f"OMNICANAL_WORKSPACES_DIR: {', '.join(map(repr, bad))} in {folder} cannot be a workspace "
                          "name (lower-case letters, digits, - and _, up to 32): rename or move it")
    if not names:
        raise ConfigError(f"OMNICANAL_WORKSPACES_DIR: {folder} holds no workspace: add a folder per workspace, "
                          "e.g. shop-fr/journeys and shop-fr/templates")
    if settings.api_keys and settings.workspace not in names:
        raise ConfigError(f"OMNICANAL_API_KEYS: static keys reach OMNICANAL_WORKSPACE ({settings.workspace!r}), which "
                          f"is not a workspace of {folder} ({', '.join(names)}): set OMNICANAL_WORKSPACE to one of "
                          "them, or use keys of each workspace (omnicanal keys create --workspace WS)")
    return names


def workspace_settings(settings: Settings, workspace: str) -> Settings:
    """The settings of one workspace: its name and, under OMNICANAL_WORKSPACES_DIR, its own folders."""
    if settings.workspaces_dir is None:
        return settings.model_copy(update={"workspace": workspace})
    folder = settings.workspaces_dir / workspace
    return settings.model_copy(update={"workspace": workspace, "journeys_dir": folder / "journeys",
                                       "templates_dir": folder / "templates", "segments_dir": folder / "segments"})
