"""README.md stays true: the two set-up commands, every setting, every CLI command."""

from __future__ import annotations

import re

from conftest import ROOT
from omnicanal.cli import app
from omnicanal.config import Settings

README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_starts_with_the_two_commands_ci_runs() -> None:
    commands = re.findall(r"^python3\.11 -m venv .*$", README, flags=re.M)
    assert len(commands) == 2
    assert commands[0].endswith("omnicanal demo")
    assert commands[1].endswith(".venv/bin/pytest -n 2")
    assert commands[1] in (ROOT / ".ci" / "run").read_text(encoding="utf-8").replace('"$PYTHON"', "python3.11")


def test_every_setting_is_documented() -> None:
    missing = [name for name in Settings.model_fields if f"`OMNICANAL_{name.upper()}`" not in README]
    assert missing == []


def test_every_command_is_documented() -> None:
    names = [c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands]
    names += [g.name or "" for g in app.registered_groups]
    assert [name for name in names if f"omnicanal {name}" not in README] == []
