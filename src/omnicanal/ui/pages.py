"""HTML pages: the Jinja2 environment of the dashboard's templates, with autoescape on for every one of them.

Customer data (names, event properties, message content) reaches the pages only through `{{ }}`, which escapes
it: a `<script>` in a first name is shown as text. No template marks anything safe; the SVG graph is written by
a template too. The Content-Security-Policy sent with every page allows scripts from the dashboard's own static
files only, so even markup that slipped through would not run.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import jinja2
from aiohttp import web

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-src 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
"""Sent with every dashboard answer: pages show customer data (no caching), are never framed, run only the
dashboard's own scripts."""

_Response = TypeVar("_Response", bound=web.StreamResponse)


@dataclass(slots=True)
class Page:
    """What a view answers: a template and what it shows."""

    template: str
    context: dict[str, Any] = field(default_factory=dict)
    status: int = 200


def moment(value: Any) -> str:
    """A timeline time (ISO text) or a journey time (seconds) as `2026-11-23 13:31:12` UTC."""
    if value is None or value == "":
        return ""
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S")
    return str(value)[:19].replace("T", " ")


def span(seconds: float) -> str:
    """`2d 3h`, `1h 05m`, `4m 10s`, `12s`: the two largest units."""
    seconds = abs(seconds)
    days, rest = divmod(int(seconds), 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{math.ceil(seconds) if seconds < 1 else secs}s"


def due(at: float | None, now: float) -> str:
    """When something falls due, said from `now`: `in 1h 05m`, or `4m 10s late`."""
    if at is None:
        return ""
    return f"in {span(at - now)}" if at >= now else f"{span(now - at)} late"


COMPACT_JSON = 100
"""JSON up to this many characters is shown on one line; longer, indented."""


def pretty(value: Any) -> str:
    """A JSON value as text (escaped like any other text when shown): one line when short, indented when not."""
    line = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    if len(line) <= COMPACT_JSON:
        return line
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("omnicanal.ui", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(moment=moment, span=span, pretty=pretty)
    env.globals["due"] = due
    return env


def respond(env: jinja2.Environment, page: Page, common: dict[str, Any]) -> web.Response:
    text = env.get_template(page.template).render({**common, **page.context})
    return secured(web.Response(text=text, status=page.status, content_type="text/html", charset="utf-8"))


def secured(response: _Response) -> _Response:
    response.headers.update(SECURITY_HEADERS)
    return response
