"""A real SMTP server (aiosmtpd) in the test's own loop, on 127.0.0.1 and a free port.

    async with SmtpStandIn() as smtp:
        smtp.fail_next(at="rcpt", reply="550 5.1.1 No such user")
        ...
        message = smtp.received[-1].message     # the parsed e-mail (email.message.EmailMessage)
"""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections import deque
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Literal, Self

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

Stage = Literal["mail", "rcpt", "data"]


@dataclass(frozen=True)
class Delivered:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    authenticated_as: str | None

    @property
    def message(self) -> EmailMessage:
        """The e-mail as parsed by the standard library, with line ends as Python writes them (\n)."""
        parsed = email.message_from_bytes(self.data.replace(b"\r\n", b"\n"), policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass(frozen=True)
class _Failure:
    at: Stage
    reply: str
    hang: bool


class SmtpStandIn:
    """Accepts every message unless told to fail; with `username`, offers AUTH LOGIN/PLAIN (without TLS)."""

    def __init__(self, username: str | None = None, password: str | None = None,
                 from_address: str = "Shop <news@shop.example>") -> None:
        self.username, self.password, self.from_address = username, password, from_address
        self.received: list[Delivered] = []
        self.host, self.port = "127.0.0.1", 0
        self._failures: deque[_Failure] = deque()
        self._server: asyncio.Server | None = None
        self._released = asyncio.Event()

    def env(self) -> dict[str, str]:
        values = {"OMNICANAL_SMTP_HOST": self.host, "OMNICANAL_SMTP_PORT": str(self.port),
                  "OMNICANAL_SMTP_STARTTLS": "false", "OMNICANAL_SMTP_FROM_ADDRESS": self.from_address}
        if self.username is not None:
            values |= {"OMNICANAL_SMTP_USERNAME": self.username, "OMNICANAL_SMTP_PASSWORD": self.password or ""}
        return values

    def fail_next(self, count: int = 1, *, at: Stage = "rcpt", reply: str = "451 4.3.0 Try again later",
                  hang: bool = False) -> None:
        """Answer the next `count` transactions with `reply` at the given stage, or never answer there."""
        self._failures.extend([_Failure(at, reply, hang)] * count)

    async def __aenter__(self) -> Self:
        loop = asyncio.get_running_loop()
        options: dict[str, Any] = {"hostname": "standin.smtp", "loop": loop}
        if self.username is not None:
            options |= {"authenticator": self._authenticate, "auth_require_tls": False}
        self._server = await loop.create_server(lambda: SMTP(self, **options), "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._released.set()
        self._server.close()
        await self._server.wait_closed()

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                      auth_data: Any) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == self.username
              and auth_data.password.decode() == self.password)
        return AuthResult(success=ok, handled=False, auth_data=auth_data.login.decode() if ok else None)

    async def _failure(self, stage: Stage) -> str | None:
        if not self._failures or self._failures[0].at != stage:
            return None
        failure = self._failures.popleft()
        if failure.hang:
            await self._released.wait()
            return "421 4.3.2 Shutting down"
        return failure.reply

    # aiosmtpd handler hooks

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          mail_options: list[str]) -> str:
        if (reply := await self._failure("mail")) is not None:
            return reply
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if (reply := await self._failure("rcpt")) is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if (reply := await self._failure("data")) is not None:
            return reply
        data = envelope.original_content or b""
        user = session.auth_data if isinstance(session.auth_data, str) else None
        self.received.append(Delivered(str(envelope.mail_from), list(envelope.rcpt_tos), data, user))
        return "250 OK queued"
