"""What the connectors that POST to an HTTP API share: the session, timeouts, and what a failure means.

A send must end in exactly one of four outcomes (a receipt, or a Transient, Permanent or Unknown delivery
error), and the line between Transient and Unknown is whether the request may have reached the provider:

    nothing sent (refused, DNS, connect timeout, bad URL) ......... TransientDelivery (or Permanent: bad URL)
    sent, no complete answer (read timeout, connection dropped) ... UnknownDelivery: a retry could duplicate
    answered 429, 408 or 5xx ...................................... TransientDelivery, with Retry-After
    answered another 4xx .......................................... PermanentDelivery

Each connector first reads its provider's own error codes (an unregistered push token, a blocked user) and
falls back on `status_error` for the rest.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp

from omnicanal.channels import Connector, ConnectorContext, ConnectorSettings
from omnicanal.codec import encode, loads
from omnicanal.errors import DeliveryError, PermanentDelivery, TransientDelivery, UnknownDelivery


@dataclass(frozen=True, slots=True)
class HttpReply:
    """A provider's complete answer; `body` is the parsed JSON, or None when the body is not JSON."""

    status: int
    headers: Mapping[str, str]
    body: Any
    raw: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def text(self) -> str:
        """The answer as text, for error messages (decoded only when one is written)."""
        return self.raw.decode("utf-8", errors="replace")


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the provider asks us to wait (Retry-After as seconds or as an HTTP date), if it said."""
    value = headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


ANSWER_LIMIT = 65_536
"""Bytes of an answer read at most: a provider's id or error fits in far less, and a receiver (a customer's
`webhook` URL) must not make a worker hold a body of any size. The rest is not read (the connection is closed)."""
WHOLE_EXCHANGE = 3
"""An exchange takes at most this many `timeout`s in all — connecting, waiting for the answer, reading it — so a
receiver that trickles its answer a byte at a time cannot hold a send for ever."""


def status_error(provider: str, reply: HttpReply, detail: str = "") -> DeliveryError:
    """The error an HTTP status means when the provider's own error code said nothing more specific."""
    message = f"{provider} answered HTTP {reply.status}" + (f": {detail}" if detail else "")
    if reply.status in (408, 429) or reply.status >= 500:
        return TransientDelivery(message, retry_after=retry_after(reply.headers))
    return PermanentDelivery(message)


def transport_error(provider: str, exc: Exception) -> DeliveryError:
    """The error a failed exchange means, by whether the request can have left this process."""
    reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, aiohttp.InvalidURL):
        return PermanentDelivery(f"{provider}: invalid URL ({reason})")
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
        return TransientDelivery(f"{provider}: cannot connect ({reason})")
    return UnknownDelivery(f"{provider}: no complete answer after the request was sent ({reason})")


async def post(session: aiohttp.ClientSession, provider: str, url: str, *, timeout: float, json_body: Any = None,
               form: Mapping[str, str] | None = None, body: bytes | None = None,
               headers: Mapping[str, str] | None = None, server_hostname: str | None = None) -> HttpReply:
    """POST and read the whole answer, or raise the DeliveryError the failure means.

    `timeout` bounds the connection and each wait for the answer separately, so a timeout tells whether the
    request had left (UnknownDelivery) or not (TransientDelivery); the whole exchange takes at most
    WHOLE_EXCHANGE of them, and at most ANSWER_LIMIT bytes of the answer are read (beyond: the body is not parsed).
    `server_hostname`: the TLS name to check when `url` names the address a host was resolved to
    (outbound.pinned_url).
    """
    data: Any = form if form is not None else body
    if json_body is not None:
        data = encode(json_body)
        headers = {"Content-Type": "application/json", **(headers or {})}
    try:
        async with session.post(
            url, data=data, headers=headers, allow_redirects=False,
            raise_for_status=False,  # statuses are read here, whatever the shared session is set to do
            timeout=aiohttp.ClientTimeout(total=timeout * WHOLE_EXCHANGE, connect=timeout, sock_read=timeout),
            server_hostname=server_hostname,
        ) as response:
            if (length := response.content_length) is not None and length <= ANSWER_LIMIT:
                raw, whole = await response.read(), True
            else:  # no length said, or too long: read up to the limit
                raw, whole = await _first_bytes(response)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise transport_error(provider, exc) from exc
    try:
        parsed = loads(raw) if raw and whole else None
    except ValueError:
        parsed = None
    return HttpReply(response.status, response.headers, parsed, raw)


async def _first_bytes(response: aiohttp.ClientResponse) -> tuple[bytes, bool]:
    """The answer's first ANSWER_LIMIT bytes, and whether that is all of it."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(ANSWER_LIMIT):
        chunks.append(chunk)
        size += len(chunk)
        if size > ANSWER_LIMIT:
            return b"".join(chunks)[:ANSWER_LIMIT], False
    return b"".join(chunks), True


class HttpConnector(Connector):
    """Base of connectors that POST to an HTTP API, on the engine's shared session or, without one, their own."""

    def __init__(self, context: ConnectorContext, settings: ConnectorSettings | None = None) -> None:
        super().__init__(context, settings)
        self._own_session: aiohttp.ClientSession | None = None

    def _session(self) -> aiohttp.ClientSession:
        if self.context.http is not None:
            return self.context.http
        if self._own_session is None:
            self._own_session = aiohttp.ClientSession()  # built on first send: a session needs a running loop
        return self._own_session

    async def aclose(self) -> None:
        if self._own_session is not None:
            await self._own_session.close()
            self._own_session = None
