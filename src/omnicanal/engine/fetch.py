"""Carrying out a `fetch` step's call (journey/fetching.py decides it): only to allowed hosts, never to a private
address by accident, with a size cap, and every failure turned into data the core decides on.

No SSRF: the host must match OMNICANAL_FETCH_ALLOWED_HOSTS (`shop.example`, `*.shop.example`, or `*` for any
public host); it is resolved here and every address it resolves to must be public — a loopback, private,
link-local or reserved address is allowed only for a host listed by its exact name. The call then goes to the
address that was checked (the Host header and TLS name stay the host's), so a DNS answer that changes between
the check and the call cannot send it elsewhere. Redirects are not followed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from omnicanal.codec import dumps, loads
from omnicanal.journey.effects import Fetch, Fetched, Refused


def host_allowed(host: str, allowed: Sequence[str]) -> tuple[bool, bool]:
    """(allowed at all, listed by its exact name): `*.shop.example` covers sub-domains, `*` any host."""
    exact = host in allowed
    wildcard = "*" in allowed or any(entry.startswith("*.") and host.endswith(entry[1:]) for entry in allowed)
    return exact or wildcard, exact


class Fetcher:
    """Calls what `fetch` steps ask for. `canned`: answers by URL instead of calls (`omnicanal simulate`)."""

    def __init__(self, http: aiohttp.ClientSession, allowed_hosts: Sequence[str], max_bytes: int,
                 canned: Mapping[str, Any] | None = None) -> None:
        self._http = http
        self._allowed = tuple(allowed_hosts)
        self._max_bytes = max_bytes
        self._canned = canned

    async def fetch(self, request: Fetch) -> Fetched | Refused:
        if self._canned is not None:
            return self._answer_canned(request.url)
        parts = urlsplit(request.url)
        host = parts.hostname or ""
        if parts.scheme not in ("http", "https") or not host:
            return Refused(f"{request.url!r} is not an http(s) URL")
        allowed, exact = host_allowed(host, self._allowed)
        if not allowed:
            return Refused(f"host {host!r} is not in OMNICANAL_FETCH_ALLOWED_HOSTS")
        try:
            address = await self._checked_address(host, parts.port or (443 if parts.scheme == "https" else 80), exact)
        except OSError as exc:
            return Refused(f"cannot resolve {host!r}: {exc}", transient=True)
        if isinstance(address, Refused):
            return address
        netloc = f"[{address}]" if ":" in address else address
        target = urlunsplit((parts.scheme, f"{netloc}:{parts.port}" if parts.port else netloc, parts.path or "/",
                             parts.query, ""))
        headers = {"Host": parts.netloc.rsplit("@", 1)[-1], "Accept": "application/json"}
        try:
            async with self._http.request(
                request.method, target, headers=headers, allow_redirects=False,
                data=dumps(request.body) if request.body is not None else None,
                timeout=aiohttp.ClientTimeout(total=request.timeout),
                server_hostname=host if parts.scheme == "https" else None,
            ) as response:
                return await self._read(response)
        except TimeoutError:
            return Refused(f"no answer within {request.timeout:g}s", transient=True)
        except aiohttp.ClientError as exc:
            return Refused(f"{type(exc).__name__}: {exc}", transient=True)

    async def _checked_address(self, host: str, port: int, exact: bool) -> str | Refused:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = [str(info[4][0]) for info in infos]
        for address in addresses:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
            if not ip.is_global and not exact:
                return Refused(f"host {host!r} resolves to a non-public address ({address}): list it by its exact "
                               "name in OMNICANAL_FETCH_ALLOWED_HOSTS if that is meant")
        if not addresses:
            return Refused(f"cannot resolve {host!r}")
        return addresses[0]

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
