"""The Lua scripts of store/lua/, loaded once per process.

A script file starts by naming its KEYS and ARGV (`local profile_key = KEYS[1]`); the stored names it uses
(schema.LUA_NAMES: `INSTANCE_FIELD`, `HISTORY_SUFFIX`...) and the functions of the library files it calls
(`_<function>.lua`) are defined ahead of it here, so that no name is spelt in two places. Scripts run as EVAL with
their source (see transport.py), so comments and indentation are dropped from what is sent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from omnicanal.store.schema import LUA_NAMES

Command = tuple[Any, ...]
"""A Redis command as its arguments: `("EVAL", source, 1, key, arg)`."""


@dataclass(frozen=True, slots=True)
class Script:
    """A Lua script, ready to send."""

    name: str
    source: str

    def command(self, keys: Sequence[Any], args: Sequence[Any]) -> Command:
        """The EVAL running this script on `keys` with `args`: no SCRIPT LOAD beforehand (Redis caches a script by
        its digest either way), so a Redis that restarted and lost its script cache needs nothing done."""
        return ("EVAL", self.source, len(keys), *keys, *args)


def _text(name: str) -> str:
    return (resources.files("omnicanal.store") / "lua" / f"{name}.lua").read_text(encoding="utf-8")


def _compact(source: str) -> str:
    """Without comments, blank lines and indentation. A comment after code starts with two spaces (`x = 1  --
    why`); no script has a multi-line string, nor a string holding `  --`."""
    lines = (line.split("  --", 1)[0].strip() for line in source.splitlines())
    return "\n".join(line for line in lines if line and not line.startswith("--"))


def _mentions(source: str, name: str) -> bool:
    return re.search(rf"\b{re.escape(name)}\b", source) is not None


def library() -> list[str]:
    """The functions scripts may call, each defined by `lua/_<function>.lua`."""
    return sorted(entry.name[1:-4] for entry in (resources.files("omnicanal.store") / "lua").iterdir()
                  if entry.name.startswith("_") and entry.name.endswith(".lua"))


def script_names() -> list[str]:
    """Every script of store/lua/ (the library files aside)."""
    return sorted(entry.name[:-4] for entry in (resources.files("omnicanal.store") / "lua").iterdir()
                  if entry.name.endswith(".lua") and not entry.name.startswith("_"))


@cache
def load(name: str) -> Script:
    """The script `lua/<name>.lua`, with the library functions and stored names it uses defined ahead of it."""
    body = _compact(_text(name))
    functions = [_compact(_text(f"_{function}")) for function in library() if _mentions(body, function)]
    code = "\n".join([*functions, body])
    names = [f"local {constant} = {json.dumps(value)}" for constant, value in LUA_NAMES.items()
             if _mentions(code, constant)]
    return Script(name, "\n".join([*names, code]))


def section(items: list[Any], width: int) -> list[Any]:
    """A section of a script's arguments, as lua/_argument_reader.lua reads it: a count of `width`-long items,
    then the items."""
    return [len(items) // width, *items]
