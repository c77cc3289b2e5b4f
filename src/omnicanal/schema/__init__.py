"""JSON Schemas of the files people write (journeys, segments, templates, scenarios), for editors.

`omnicanal schema KIND` prints one; the repository keeps them in schemas/ (a test checks they match the models),
`omnicanal init` writes them into a new project, and every shipped YAML file names its schema on its first line
(`# yaml-language-server: $schema=../schemas/journey.schema.json`), so an editor completes and checks keys as
they are typed. Each kind's module builds its schema on demand: the scenario's imports the engine.
"""

from __future__ import annotations

import json
from importlib import import_module
from typing import Any, Literal, get_args

Kind = Literal["journey", "segment", "template", "scenario"]
KINDS: tuple[Kind, ...] = get_args(Kind)
"""Every kind of file with a schema; each is built by the module omnicanal.schema.<kind>."""


def schema(kind: Kind) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one kind of file."""
    document: dict[str, Any] = import_module(f"omnicanal.schema.{kind}").schema()
    return document


def schema_text(kind: Kind) -> str:
    """The schema as committed in schemas/ and printed by `omnicanal schema`."""
    return json.dumps(schema(kind), indent=2, ensure_ascii=False) + "\n"


def file_name(kind: Kind) -> str:
    """The schema's file name in a project's schemas/ folder."""
    return f"{kind}.schema.json"
