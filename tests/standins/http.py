"""The base of the HTTP stand-ins: a real aiohttp server on 127.0.0.1, recording and failing on demand.

    async with TwilioStandIn() as twilio:
        twilio.fail_next(status=429, retry_after=7)     # the next request gets 429 + Retry-After: 7
        ...                                            # point the connector at twilio.url (or twilio.env())
        assert twilio.received[-1].form["To"] == "+33612345678"

A queued failure answers in the provider's own error shape (`error_body`), or with `body` as given; `hang=True`
holds the request unanswered until the stand-in stops, so the client's timeout fires.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import parse_qsl

from aiohttp import web


@dataclass(frozen=True)
class Received:
    """One request as the stand-in got it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.time)
    """When it arrived (wall clock), for tests of pacing."""

    @property
    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Failure:
    """How to answer one request instead of succeeding."""

    status: int = 500
    code: int | str | None = None  # the provider's error code (21610, "UNREGISTERED", 551...)
    message: str | None = None
    retry_after: float | None = None
    hang: bool = False
    body: Any = None  # answered as JSON exactly, instead of the provider's error shape
    headers: dict[str, str] = field(default_factory=dict)


def unused_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class HttpStandIn:
    """Subclasses add their routes in `setup` and write errors in their provider's shape in `error_body`."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.url = ""
        self._failures: deque[Failure] = deque()
        self._runner: web.AppRunner | None = None
        self._released: asyncio.Event | None = None

    def setup(self, app: web.Application) -> None:
        raise NotImplementedError

    def error_body(self, failure: Failure) -> Any:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        """The OMNICANAL_* variables that route the matching connector here."""
        raise NotImplementedError

    def fail_next(self, count: int = 1, *, status: int = 500, code: int | str | None = None,
                  message: str | None = None, retry_after: float | None = None, hang: bool = False,
                  body: Any = None) -> None:
        failure = Failure(status, code, message, retry_after, hang, body)
        self._failures.extend([failure] * count)

    async def __aenter__(self) -> Self:
        self._released = asyncio.Event()
        app = web.Application()
        self.setup(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._released is not None and self._runner is not None
        self._released.set()
        await self._runner.cleanup()

    async def record(self, request: web.Request) -> Received:
        received = Received(request.method, request.path, dict(request.query), dict(request.headers),
                            await request.read())
        self.received.append(received)
        return received

    async def failure(self) -> web.Response | None:
        """The answer of the next queued failure, or None to go on and succeed."""
        if not self._failures:
            return None
        failure = self._failures.popleft()
        if failure.hang:
            assert self._released is not None
            await self._released.wait()
            return web.Response(status=503)
        headers = dict(failure.headers)
        if failure.retry_after is not None:
            headers["Retry-After"] = f"{failure.retry_after:g}"
        body = failure.body if failure.body is not None else self.error_body(failure)
        return web.json_response(body, status=failure.status, headers=headers)
