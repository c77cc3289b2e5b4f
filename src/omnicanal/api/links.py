"""`GET /r/{token}`: a tracked link, followed. The browser is sent on (302) to the URL inside the token, and the
click becomes a `message.clicked` event of the customer — with the message's id, journey, step and channel, so
it is counted on that step and channel, can resume a `wait_for` and can meet a goal.

No API key: the signed token is the authority (links.py). One that is not genuine gets a 404 page and records
nothing: the daemon never redirects anywhere a token it signed does not say. Clicks on one link within the same
minute are one event (a double click, a mail scanner fetching the link just before the customer); each later
click is another. `HEAD` is answered without recording. A store that cannot take the event does not stop the
customer: they are sent on, and the lost click is logged.
"""

from __future__ import annotations

import string
import time
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import quote

import structlog
from aiohttp import web

from omnicanal.access import WORKSPACE
from omnicanal.api.events import derived_event
from omnicanal.api.pages import invalid_link
from omnicanal.api.state import deployment_of, runtime_of
from omnicanal.errors import StoreUnavailable
from omnicanal.links import Links

log = structlog.get_logger("omnicanal.api")

T = TypeVar("T")

CLICKED = "message.clicked"
DEDUPE_SECONDS = 60


def read_token(request: web.Request, read: Callable[[Links, str], T | None]) -> T | None:
    """What the request's token says, read with the links of the workspace that signed it — the workspace is in
    the token's MAC (links.py), so no other workspace's reads it — which becomes the request's workspace. None:
    links are off, or no workspace here signed it."""
    token = request.match_info["token"]
    for workspace, runtime in deployment_of(request).runtimes.items():
        links = runtime.engine.context.links
        if links is not None and (found := read(links, token)) is not None:
            request[WORKSPACE] = workspace
            return found
    return None


async def follow(request: web.Request) -> web.Response:
    token = request.match_info["token"]
    click = read_token(request, Links.read_click)
    if click is None:
        return invalid_link(request)
    if request.method == "GET":
        runtime = runtime_of(request)
        properties = {"message_id": click.message_id, "journey": click.journey, "step": click.step,
                      "channel": click.channel, "url": click.url}
        key = f"click\x00{token}\x00{int(time.time() // DEDUPE_SECONDS)}"
        try:
            await runtime.queue.append_events([derived_event(runtime, click.customer_id, CLICKED, key, properties)])
        except StoreUnavailable as exc:
            log.error("click_not_recorded", customer_id=click.customer_id, message_id=click.message_id,
                      error=str(exc))
    location = quote(click.url, safe=string.punctuation)  # non-ASCII as UTF-8 escapes: a header is ASCII
    return web.Response(status=302, headers={"Location": location, "Cache-Control": "no-store",
                                             "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex"})
