"""A small JSON client for the daemon's API, used by `send-event` and the demo."""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp

from omnicanal.errors import DaemonUnreachable
from omnicanal.signing import signed_headers

TIMEOUT = aiohttp.ClientTimeout(total=10)


async def request_json(method: str, url: str, body: Any = None, api_key: str | None = None,
                       session: aiohttp.ClientSession | None = None,
                       signing_secret: str | None = None) -> tuple[int, Any]:
    """(status, JSON body); an unreachable daemon raises DaemonUnreachable naming the URL. With `signing_secret`
    (a key made with `keys create --signing`) the request is signed: the body is encoded here, so that the bytes
    signed are the bytes sent."""
    data = None if body is None else json.dumps(body, ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json"} if data is not None else {}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    if signing_secret:
        headers.update(signed_headers(signing_secret, data or b"", time.time()))
    own = session is None
    http = session or aiohttp.ClientSession(timeout=TIMEOUT)
    try:
        async with http.request(method, url, data=data, headers=headers) as response:
            try:
                return response.status, await response.json(content_type=None)
            except ValueError as exc:  # an HTML page, or a body cut short: not this API's answer
                raise DaemonUnreachable(f"{url} answered HTTP {response.status} with a body that is not JSON: is "
                                        "it omnicanal's API? (check --url)") from exc
    except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError) as exc:
        raise DaemonUnreachable(f"{url} is not an http:// or https:// URL with a host: check --url (e.g. "
                                "http://127.0.0.1:8080)") from exc
    except aiohttp.ClientConnectionError as exc:
        raise DaemonUnreachable(f"cannot reach {url}: is `omnicanal serve` running? ({exc})") from exc
    except TimeoutError as exc:
        raise DaemonUnreachable(f"{url} did not answer within {http.timeout.total:g} s: is `omnicanal serve` "
                                "running there, and not overloaded?") from exc
    finally:
        if own:
            await http.close()


async def post_json(url: str, body: Any, api_key: str | None = None, signing_secret: str | None = None
                    ) -> tuple[int, Any]:
    return await request_json("POST", url, body, api_key, signing_secret=signing_secret)
