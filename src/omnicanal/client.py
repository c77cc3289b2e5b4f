"""A small JSON client for the daemon's API, used by `send-event` and the demo."""

from __future__ import annotations

from typing import Any

import aiohttp

from omnicanal.errors import DaemonUnreachable

TIMEOUT = aiohttp.ClientTimeout(total=10)


async def request_json(method: str, url: str, body: Any = None, api_key: str | None = None,
                       session: aiohttp.ClientSession | None = None) -> tuple[int, Any]:
    """(status, JSON body); an unreachable daemon raises DaemonUnreachable naming the URL."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    own = session is None
    http = session or aiohttp.ClientSession(timeout=TIMEOUT)
    try:
        async with http.request(method, url, json=body, headers=headers) as response:
            return response.status, await response.json(content_type=None)
    except aiohttp.ClientConnectionError as exc:
        raise DaemonUnreachable(f"cannot reach {url}: is `omnicanal serve` running? ({exc})") from exc
    finally:
        if own:
            await http.close()


async def post_json(url: str, body: Any, api_key: str | None = None) -> tuple[int, Any]:
    return await request_json("POST", url, body, api_key)
