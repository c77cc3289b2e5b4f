"""Signed links in messages: tracked redirects (`/r/{token}`) and unsubscribe pages (`/u/{token}`).

A token is self-contained: what its request needs (the customer, the message, its journey, step and channel,
and the URL to send the browser to, or the channel and purpose to unsubscribe from) is inside it, so a link
keeps working after its message's record is gone, and the API reads no state to answer it. It is
`base64url(payload ‖ mac)`, mac = HMAC-SHA256(OMNICANAL_LINK_SECRET, workspace ‖ payload) truncated to 128 bits:
changing a byte of the payload (another URL, another customer) fails the check, and without the secret no valid
token can be made or guessed — tokens cannot be forged, enumerated, or turned into an open redirect. The first
byte of the payload says what the token is for, so a click token is never an unsubscribe token; only http and
https URLs are ever signed.

Without OMNICANAL_PUBLIC_URL and OMNICANAL_LINK_SECRET there are no tokens: links stay as written and
`unsubscribe_url` is empty.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html
import re
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import structlog

if TYPE_CHECKING:
    from omnicanal.config import Settings

log = structlog.get_logger("omnicanal.links")

MAC_BYTES = 16
MAX_TOKEN = 2048
"""Characters; a longer token is refused before any work is done on it."""
_SEPARATOR = "\x1f"
_CLICK, _UNSUBSCRIBE = b"c", b"u"
_DEFLATED = 0x80
"""Set on the kind byte when the rest of the payload is deflated (against `_DICTIONARY`)."""
_DICTIONARY = (b"transactionalmarketing.webhook.messenger.whatsapp.push.email.sms~fallback.https://www."
               b"http://index.html.com/.fr/?utm_source=&utm_medium=&utm_campaign=&id=")
"""Strings common in tokens, which deflate then refers to instead of spelling them out (links in an SMS are
counted in characters). Tokens already sent are read with it: never change it, add another kind byte instead."""
_UNSAFE = re.compile(r"[\x00-\x20\x7f\\]")
"""Characters a browser reads differently from urlsplit (it drops or converts them): never in a signed URL."""
_OPEN_TAG = re.compile(r"""<(?:a|area)\b(?:[^>"']|"[^"]*"|'[^']*')*>""", re.IGNORECASE)
_ATTRIBUTE = re.compile(r"""(\s+)([^\s"'>/=]+)(?:(\s*=\s*)("[^"]*"|'[^']*'|[^\s"'=<>`]+))?""")
"""One attribute of a tag, whole: a quoted value is consumed with it, so an `href=` inside another attribute's
value is never taken for the tag's own."""


def checked_url(url: object) -> str:
    """The URL, stripped, if it is an absolute http(s) URL with a host; ValueError otherwise. No other scheme
    (`javascript:`, `data:`), no scheme-relative (`//host`) and nothing a browser would read differently from
    this parser (spaces, control characters, backslashes) is ever signed."""
    text = url.strip() if isinstance(url, str) else ""
    try:
        parts = urlsplit(text)
    except ValueError:
        parts = None
    if (parts is None or parts.scheme.lower() not in ("http", "https") or not parts.hostname
            or _UNSAFE.search(text)):
        raise ValueError(f"{url!r} cannot be tracked: only absolute http:// or https:// URLs can")
    return text


@dataclass(frozen=True, slots=True)
class Click:
    """What a tracked link says: whose click on which message, and where it goes."""

    customer_id: str
    message_id: str
    journey: str
    step: str
    channel: str
    url: str


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """What an unsubscribe link says: who, from which channel and purpose, from which message."""

    customer_id: str
    channel: str
    purpose: str
    message_id: str


class Links:
    """Mints and reads the tokens of one deployment (its public URL, secret and workspace)."""

    def __init__(self, public_url: str, secret: str, workspace: str) -> None:
        self.public_url = public_url.rstrip("/")
        self._secret = secret.encode()
        self._scope = workspace.encode() + b"\x00"

    def click_url(self, click: Click) -> str:
        url = checked_url(click.url)
        fields = (click.customer_id, click.message_id, click.journey, click.step, click.channel, url)
        return f"{self.public_url}/r/{self._sign(_CLICK, fields)}"

    def unsubscribe_url(self, unsubscribe: Unsubscribe) -> str:
        fields = (unsubscribe.customer_id, unsubscribe.channel, unsubscribe.purpose, unsubscribe.message_id)
        return f"{self.public_url}/u/{self._sign(_UNSUBSCRIBE, fields)}"

    def ours(self, url: str) -> bool:
        """Whether the URL is already one of our links (not to be wrapped again)."""
        return url.startswith((f"{self.public_url}/r/", f"{self.public_url}/u/"))

    def read_click(self, token: str) -> Click | None:
        """The click a genuine token says; None for anything else (forged, altered, truncated, another kind)."""
        fields = self._verify(_CLICK, token, 6)
        if fields is None:
            return None
        click = Click(*fields)
        try:
            checked_url(click.url)
        except ValueError:
            return None
        return click

    def read_unsubscribe(self, token: str) -> Unsubscribe | None:
        fields = self._verify(_UNSUBSCRIBE, token, 4)
        return None if fields is None else Unsubscribe(*fields)

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, self._scope + payload, hashlib.sha256).digest()[:MAC_BYTES]

    def _sign(self, kind: bytes, fields: tuple[str, ...]) -> str:
        if any(_SEPARATOR in field for field in fields):
            raise ValueError(f"a link cannot carry the control character U+001F: {fields!r}")
        plain = _SEPARATOR.join(fields).encode()
        packer = zlib.compressobj(9, zlib.DEFLATED, -15, zdict=_DICTIONARY)
        deflated = packer.compress(plain) + packer.flush()
        payload = bytes([kind[0] | _DEFLATED]) + deflated if len(deflated) < len(plain) else kind + plain
        return base64.urlsafe_b64encode(payload + self._mac(payload)).rstrip(b"=").decode()

    def _verify(self, kind: bytes, token: str, count: int) -> list[str] | None:
        if len(token) > MAX_TOKEN:
            return None
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            return None
        payload, mac = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
        if len(payload) < 1 or not hmac.compare_digest(mac, self._mac(payload)):
            return None
        if payload[0] & ~_DEFLATED != kind[0]:
            return None
        body = payload[1:]
        if payload[0] & _DEFLATED:  # signed by us, so not a decompression bomb; still bounded
            unpacker = zlib.decompressobj(-15, zdict=_DICTIONARY)
            try:
                body = unpacker.decompress(body, MAX_TOKEN * 4)
            except zlib.error:
                return None
        try:
            fields = body.decode().split(_SEPARATOR)
        except UnicodeDecodeError:
            return None
        return fields if len(fields) == count else None


class PlainLinks:
    """What templates see when tracking is off: `track(url)` checks the URL and gives it back as written,
    `unsubscribe_url` is empty, HTML is left alone."""

    unsubscribe_url: str = ""

    def track(self, url: object) -> str:
        return checked_url(url)

    def rewrite_html(self, text: str) -> str:
        return text


class MessageLinks(PlainLinks):
    """The links of one message: `track(url)` in templates, every http(s) `href` of its HTML, its
    `unsubscribe_url` (also handed to the connector for `List-Unsubscribe`)."""

    def __init__(self, links: Links, customer_id: str, message_id: str, journey: str, step: str, channel: str,
                 purpose: str) -> None:
        self._links = links
        self._click = Click(customer_id, message_id, journey, step, channel, "")
        self.unsubscribe_url = links.unsubscribe_url(Unsubscribe(customer_id, channel, purpose, message_id))

    def track(self, url: object) -> str:
        click = self._click
        return self._links.click_url(Click(click.customer_id, click.message_id, click.journey, click.step,
                                           click.channel, checked_url(url)))

    def rewrite_html(self, text: str) -> str:
        """Every http(s) `href` of an `<a>` or `<area>` becomes a tracked link; others (`mailto:`, `#top`,
        relative ones, ours) stay as written."""
        return _OPEN_TAG.sub(lambda tag: _ATTRIBUTE.sub(self._tracked_href, tag.group(0)), text)

    def _tracked_href(self, match: re.Match[str]) -> str:
        space, name, equals, value = match.groups()
        if name.lower() != "href" or value is None:
            return match.group(0)
        url = html.unescape(value[1:-1] if value[0] in "\"'" else value).strip()
        if self._links.ours(url):
            return match.group(0)
        try:
            tracked = self.track(url)
        except ValueError:
            return match.group(0)
        return f'{space}{name}{equals}"{html.escape(tracked)}"'


def message_links(links: Links | None, customer_id: str, message_id: str, journey: str, step: str, channel: str,
                  purpose: str) -> PlainLinks:
    """The link helpers for one message: tracked when the deployment has links, plain otherwise."""
    if links is None:
        return PlainLinks()
    return MessageLinks(links, customer_id, message_id, journey, step, channel, purpose)


def links_off(settings: Settings) -> str | None:
    """Why links are off (which settings to set), or None when they are on."""
    missing = [name for name, value in (("OMNICANAL_PUBLIC_URL", settings.public_url),
                                        ("OMNICANAL_LINK_SECRET", settings.link_secret)) if not value]
    if not missing:
        return None
    return (f"link tracking and unsubscribe links are off (set {' and '.join(missing)}): links in messages stay "
            "as written and unsubscribe_url is empty")


def links_of(settings: Settings) -> Links | None:
    """The deployment's links, from its settings; when they are off, the start says so (a warning when only
    one of the two settings is given: a mistake, most likely)."""
    public_url, secret = settings.public_url, settings.link_secret
    if public_url and secret is not None:
        return Links(public_url, secret.get_secret_value(), settings.workspace)
    (log.warning if bool(public_url) != (secret is not None) else log.info)("links_off", detail=links_off(settings))
    return None
