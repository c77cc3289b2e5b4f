"""Every command's `--help` shows an example, as the README promises (in this process: no command runs)."""

from __future__ import annotations

from typing import Any

import typer
from typer.testing import CliRunner

from omnicanal.cli import app


def _commands(group: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command under `group` (a click group, as typer builds it), by its words."""
    found = []
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            found += _commands(command, (*path, name))
        else:
            found.append((*path, name))
    return found


def test_every_command_has_help_with_an_example() -> None:
    commands = _commands(typer.main.get_command(app))
    assert len(commands) > 25
    runner = CliRunner()
    missing = [" ".join(path) for path in commands
               if "Example" not in runner.invoke(app, [*path, "--help"], terminal_width=200).output]
    assert missing == []
