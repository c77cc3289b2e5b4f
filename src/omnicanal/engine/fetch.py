"""Carrying out a `fetch` step's call (journey/fetching.py decides it): only to allowed hosts, never to a private
address by accident, with a size cap, and every failure turned into data the core decides on.

No SSRF: the host must match OMNICANAL_FETCH_ALLOWED_HOSTS (`shop.example`, `*.shop.example`, or `*` for any
public host), and its addresses must pass the outbound policy (outbound.py): public, or a loopback, private,
link-local or reserved address only for a host listed by its exact name or allowed by OMNICANAL_OUTBOUND_ALLOW.
The call goes to the address that was checked. Redirects are not followed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp

from omnicanal.codec import dumps, loads
from omnicanal.journey.effects import Fetch, Fetched, Refused
from omnicanal.outbound import Blocked, OutboundPolicy, host_allowed, pinned_url, target_of


class Fetcher:
    """Calls what `fetch` steps ask for. `canned`: answers by URL instead of calls (`omnicanal simulate`)."""

    def __init__(self, http: aiohttp.ClientSession, allowed_hosts: Sequence[str], max_bytes: int,
                 canned: Mapping[str, Any] | None = None, outbound: OutboundPolicy | None = None) -> None:
        self._http = http
        self._allowed = tuple(allowed_hosts)
        self._outbound = outbound or OutboundPolicy()
        self._max_bytes = max_bytes
        self._canned = canned

    async def fetch(self, request: Fetch) -> Fetched | Refused:
        if self._canned is not None:
            return self._answer_canned(request.url)
        target = target_of(request.url)
        if target is None or target.parts.scheme not in ("http", "https"):
            return Refused(f"{request.url!r} is not an http(s) URL")
        allowed, exact = host_allowed(target.host, self._allowed)
        if not allowed:
            return Refused(f"host {target.host!r} is not in OMNICANAL_FETCH_ALLOWED_HOSTS")
        address = await self._outbound.address_of(target.host, target.port, exact)
        if isinstance(address, Blocked):
            return Refused(address.reason, transient=address.transient)
        headers = {"Host": target.host_header, "Accept": "application/json"}
        try:
            async with self._http.request(
                request.method, pinned_url(target.parts, address), headers=headers, allow_redirects=False,
                data=dumps(request.body) if request.body is not None else None,
                timeout=aiohttp.ClientTimeout(total=request.timeout),
                server_hostname=target.host if target.tls else None,
            ) as response:
                return await self._read(response)
        except TimeoutError:
            return Refused(f"no answer within {request.timeout:g}s", transient=True)
        except aiohttp.ClientError as exc:
            return Refused(f"{type(exc).__name__}: {exc}", transient=True)

    async def _read(self, response: aiohttp.ClientResponse) -> Fetched | Refused:
        status = response.status
        if status == 429 or status >= 500:
            retry_after = response.headers.get("Retry-After", "")
            return Refused(f"HTTP {status}", transient=True,
                           retry_after=float(retry_after) if retry_after.isdigit() else None)
        if status >= 300:
            return Refused(f"HTTP {status}" + (" (redirects are not followed)" if status < 400 else ""))
        too_big = Refused(f"the answer is larger than {self._max_bytes} bytes (OMNICANAL_FETCH_MAX_BYTES)")
        if (response.content_length or 0) > self._max_bytes:
            return too_big
        body = bytearray()
        async for chunk in response.content.iter_chunked(65_536):
            body += chunk
            if len(body) > self._max_bytes:
                return too_big
        try:
            return Fetched(loads(bytes(body)))
        except ValueError:
            return Refused("the answer is not JSON")

    def _answer_canned(self, url: str) -> Fetched | Refused:
        canned = self._canned or {}
        answer = canned.get(url)
        if answer is None:
            answer = next((value for key, value in canned.items() if key.endswith("*") and url.startswith(key[:-1])),
                          None)
        if answer is None:
            return Refused(f"the scenario has no answer for {url}")
        status = int(answer.get("status", 200))
        if status >= 300:
            return Refused(f"HTTP {status}", transient=status == 429 or status >= 500)
        return Fetched(answer.get("json"))
