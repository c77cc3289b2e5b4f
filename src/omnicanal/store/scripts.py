"""The Lua scripts of store/lua/, loaded once per process.

A script file starts by naming its KEYS and ARGV (`local profile_key = KEYS[1]`); the stored names it uses
(schema.LUA_NAMES: `INSTANCE_FIELD`, `HISTORY_SUFFIX`...) and the functions of the library files it calls
(`_<function>.lua`) are defined ahead of it here, so that no name is spelt in two places. Scripts run as EVALSHA:
Redis would otherwise read and hash a script's whole source on every call (2.5 µs of its CPU per kilobyte,
~20 µs per message sent). A Redis that does not know a script (restarted, SCRIPT FLUSH) answers NOSCRIPT and
runs nothing; the transport then loads it and sends that call again (transport.py).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from omnicanal.store.schema import LUA_NAMES

Command = tuple[Any, ...]
"""A Redis command as its arguments: `("EVALSHA", digest, 1, key, arg)`."""


@dataclass(frozen=True, slots=True)
class Script:
    """A Lua script, ready to send."""

    name: str
    source: str
    sha: str = field(init=False)
    """The SHA1 digest Redis knows the script by once loaded."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())
        _BY_SHA[self.sha] = self

    def command(self, keys: Sequence[Any], args: Sequence[Any]) -> Command:
        """The EVALSHA running this script on `keys` with `args`."""
        return ("EVALSHA", self.sha, len(keys), *keys, *args)


_BY_SHA: dict[str, Script] = {}
"""Every script made in this process, by digest: the source to load when Redis answers NOSCRIPT."""


def script_of(command: Command) -> Script | None:
    """The script an EVALSHA command runs (None for any other command)."""
    return _BY_SHA.get(command[1]) if command[0] == "EVALSHA" else None


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
