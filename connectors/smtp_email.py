"""E-mail over SMTP (aiosmtplib): a multipart text + HTML message, one connection per message.

Settings (environment):

    OMNICANAL_SMTP_HOST             required
    OMNICANAL_SMTP_PORT             default 587
    OMNICANAL_SMTP_USERNAME         optional; with PASSWORD, log in after connecting
    OMNICANAL_SMTP_PASSWORD         optional, secret
    OMNICANAL_SMTP_STARTTLS         upgrade with STARTTLS (port 587), default true; ignored with USE_TLS
    OMNICANAL_SMTP_USE_TLS          TLS from the first byte (port 465), default false
    OMNICANAL_SMTP_FROM_ADDRESS     required, e.g. `Shop <news@shop.example>`
    OMNICANAL_SMTP_UNSUBSCRIBE_URL  optional template, e.g. `https://shop.example/unsubscribe?c={customer_id}`
                                    ({customer_id} and {message_id} are filled in, URL-quoted); unset: the
                                    message's own unsubscribe link (/u/..., see links.py), when links are on
    OMNICANAL_SMTP_TIMEOUT          seconds per SMTP command, default 10

With an unsubscribe URL (either) every message carries `List-Unsubscribe` and `List-Unsubscribe-Post:
List-Unsubscribe=One-Click` (RFC 8058), which the large mailbox providers require of bulk senders.

A connection per message keeps no state between sends (no stale connection to detect, no lock): at the default
rate the handshake is cheap. Whether the relay may hold the message is decided by the SMTP stage a failure
happens in: before DATA the relay has nothing (TransientDelivery), after DATA began it may (UnknownDelivery).
"""

from __future__ import annotations

import contextlib
import re
from email.errors import MessageError
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate, parseaddr
from typing import ClassVar
from urllib.parse import quote

import aiosmtplib
from pydantic import PositiveFloat, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from omnicanal.channels import Connector, ConnectorContext, ConnectorSettings, OutboundMessage, Receipt
from omnicanal.errors import DeliveryError, PermanentDelivery, TransientDelivery, UnknownDelivery

from ._settings import configured

_NOT_IN_MSG_ID = re.compile(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]")  # RFC 5322 dot-atom-text
_WIRE = SMTP_POLICY.clone(refold_source="none")
"""How a message is written out: headers set raw (List-Unsubscribe) stay as they are. The default refolds a
header line over 78 characters, and a URL longer than that has no space to fold at, so it would go out as an
RFC 2047 encoded word, which no mailbox reads as a URL."""


class SmtpSettings(ConnectorSettings):
    model_config = SettingsConfigDict(env_prefix="OMNICANAL_SMTP_")

    host: str
    port: int = 587
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool = True
    use_tls: bool = False
    from_address: str
    unsubscribe_url: str | None = None
    timeout: PositiveFloat = 10.0

    @field_validator("from_address")
    @classmethod
    def _an_address(cls, value: str) -> str:
        if "@" not in parseaddr(value)[1]:
            raise ValueError(f"{value!r} is not an e-mail address (e.g. 'Shop <news@shop.example>')")
        return value

    @field_validator("unsubscribe_url")
    @classmethod
    def _a_template(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                value.format(customer_id="c", message_id="m")
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(f"only {{customer_id}} and {{message_id}} can be filled in ({exc!r})") from exc
        return value


_ENHANCED = re.compile(r"\s*([245])\.(\d{1,3})\.(\d{1,3})\b")
_BAD_DESTINATION = frozenset({(1, 1), (1, 2), (1, 3), (1, 6), (1, 10)})
"""Enhanced status codes (RFC 3463) that say the recipient's address is what is wrong: no such mailbox, no such
domain, bad syntax, moved, null MX. Any other refusal (5.7.x relaying denied or authentication required, 5.2.2
mailbox full, a blocked client) is about us or the moment, and the address stays on the profile."""


def _dead_address(code: int, text: str) -> bool:
    """Whether a permanent refusal of RCPT means the address itself is dead (RFC 3463 X.1.x), or, from a relay
    that gives no enhanced code, 550/551/553 (mailbox unavailable, not local, name not allowed)."""
    if match := _ENHANCED.match(text):
        return (int(match[2]), int(match[3])) in _BAD_DESTINATION
    return code in (550, 551, 553)


def _code_error(code: int, text: str, *, recipient: bool = False) -> DeliveryError:
    """4xx replies are 'try again later', 5xx replies are final (RFC 5321, 4.2.1)."""
    detail = f"SMTP {code} {text}".strip()
    if 400 <= code < 500:
        return TransientDelivery(detail)
    return PermanentDelivery(detail, invalid_address=recipient and _dead_address(code, text))


def _translate(exc: Exception, *, data_started: bool) -> DeliveryError:
    if isinstance(exc, aiosmtplib.SMTPRecipientRefused):
        return _code_error(exc.code, exc.message, recipient=True)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return _code_error(exc.code, exc.message)
    reason = f"{type(exc).__name__}: {exc}"
    if data_started:
        return UnknownDelivery(f"SMTP: no answer to the message data ({reason})")
    return TransientDelivery(f"SMTP: the message could not be handed over ({reason})")


def _recipient(address: str) -> str:
    """The bare address for RCPT TO, or PermanentDelivery if no relay could take it (we do not speak SMTPUTF8)."""
    try:
        recipient = Address(addr_spec=address).addr_spec
        recipient.encode("ascii")
    except (ValueError, IndexError, MessageError) as exc:  # the parser's defects and UnicodeEncodeError: ValueError
        raise PermanentDelivery(f"not a deliverable e-mail address: {address!r}", invalid_address=True) from exc
    return recipient


class SmtpEmailConnector(Connector):
    name: ClassVar[str] = "smtp_email"
    channels: ClassVar[frozenset[str]] = frozenset({"email"})
    settings_model: ClassVar[type[ConnectorSettings] | None] = SmtpSettings
    # Relays set their own rate (Amazon SES starts a new account at 1/s, raises it per use case): a cautious
    # default that a dedicated relay raises with OMNICANAL_RATE_LIMITS.
    rate_limit: ClassVar[float | None] = 10.0

    def __init__(self, context: ConnectorContext, settings: ConnectorSettings | None = None) -> None:
        super().__init__(context, settings)
        self.config = configured(type(self), settings, SmtpSettings)
        self._domain = parseaddr(self.config.from_address)[1].rpartition("@")[2]

    def _compose(self, message: OutboundMessage, recipient: str) -> EmailMessage:
        """The MIME message for `message`: text part, HTML alternative when the template has one."""
        content = message.content
        email = EmailMessage(policy=SMTP_POLICY)
        email["From"] = self.config.from_address
        email["To"] = recipient
        email["Subject"] = " ".join(str(content.get("subject", "")).split())  # a header is one line
        email["Date"] = formatdate(localtime=False, usegmt=True)
        # Our message id, so a retried send carries the same Message-ID and receivers can drop the duplicate.
        email["Message-ID"] = f"<{_NOT_IN_MSG_ID.sub('-', message.id)}@{self._domain}>"
        if url := self._unsubscribe_url(message):
            email.set_raw("List-Unsubscribe", f"<{url}>")  # kept on one line as written: see _WIRE
            email["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        email.set_content(str(content.get("text", "")))
        if content.get("html"):
            email.add_alternative(str(content["html"]), subtype="html")
        return email

    def _unsubscribe_url(self, message: OutboundMessage) -> str | None:
        """OMNICANAL_SMTP_UNSUBSCRIBE_URL when set (the brand's own preference centre), else the message's own
        signed link (`/u/...`, when OMNICANAL_PUBLIC_URL and OMNICANAL_LINK_SECRET are set), else none."""
        if self.config.unsubscribe_url:
            return self.config.unsubscribe_url.format(customer_id=quote(message.customer_id, safe=""),
                                                      message_id=quote(message.id, safe=""))
        return message.unsubscribe_url

    async def send(self, message: OutboundMessage) -> Receipt:
        recipient = _recipient(message.to)
        email = self._compose(message, recipient)
        config = self.config
        client = aiosmtplib.SMTP(
            hostname=config.host, port=config.port, username=config.username,
            password=config.password.get_secret_value() if config.password else None,
            use_tls=config.use_tls, start_tls=config.starttls and not config.use_tls, timeout=config.timeout,
        )
        data_started = False
        try:
            await client.connect()
            await client.mail(parseaddr(config.from_address)[1])
            await client.rcpt(recipient)
            data_started = True
            await client.data(email.as_bytes(policy=_WIRE))
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await client.quit()  # the relay has taken the message: a failed goodbye changes nothing
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise _translate(exc, data_started=data_started) from exc
        finally:
            client.close()
        return Receipt(status="sent", provider_id=email["Message-ID"])
