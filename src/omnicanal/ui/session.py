"""Who may see the dashboard: the holder of an API key with the scope `ui:read` (static keys have every scope),
sent as `Authorization: Bearer` (scripts, probes) or remembered after the login form in a signed session cookie.
When the API needs no key (access.py), neither does the dashboard.

The cookie holds no key: it holds the key's fingerprint (SHA-256) and an expiry, signed with HMAC-SHA256 under
OMNICANAL_UI_SECRET. A stolen cookie does not open the API, and every request checks the key behind it again: a
key taken out of OMNICANAL_API_KEYS ends its sessions at once, a revoked one within access.CACHE_SECONDS.
HttpOnly (page scripts cannot read it), SameSite=Strict (no other site's page sends it).

The only requests that change anything are the login and the logout, both POST. Each carries a CSRF token, the
HMAC of a random value kept in its own SameSite=Strict cookie (signed double submit: a page of another site can
neither read that cookie nor compute the token), and a request whose Origin is another site's is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from enum import Enum
from urllib.parse import urlsplit

import structlog
from aiohttp import web

from omnicanal.access import Caller, KeyRings, presented_key
from omnicanal.config import Settings
from omnicanal.scopes import Scope
from omnicanal.signing import same_text

log = structlog.get_logger("omnicanal.ui")

SESSION_COOKIE = "omnicanal_ui"
CSRF_COOKIE = "omnicanal_ui_csrf"
COOKIE_PATH = "/ui"
SESSION_SECONDS = 12 * 3600
"""A session lasts a working day; the cookie itself ends with the browser session."""


class Access(Enum):
    GRANTED = "granted"
    MISSING = "missing"
    """No key, no session (or an expired one): the login form."""
    WRONG = "wrong"
    """A key was given and is not valid here: 401."""
    FORBIDDEN = "forbidden"
    """A valid key (or the session of one) without the scope `ui:read`: 403."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the gate decided, and for whom (None unless GRANTED or FORBIDDEN)."""

    access: Access
    caller: Caller | None = None


def _verdict(caller: Caller | None, wrong: Access) -> Verdict:
    if caller is None:
        return Verdict(wrong)
    return Verdict(Access.GRANTED if caller.allows(Scope.UI_READ) else Access.FORBIDDEN, caller)


class Gate:
    """Decides who may see the dashboard, and signs its session and CSRF cookies."""

    def __init__(self, keys: KeyRings, settings: Settings) -> None:
        """Without OMNICANAL_UI_SECRET sessions are signed with a random secret of this process: said once, as a
        warning, at the first login (they end when it restarts and other API processes refuse them)."""
        self.keys = keys
        self.secret = settings.ui_secret.encode() if settings.ui_secret else secrets.token_bytes(32)
        self._warn = not settings.ui_secret

    async def open(self) -> bool:
        """No API key is required: the dashboard, like the API, needs none."""
        return not await self.keys.required()

    def _sign(self, purpose: str, value: str) -> str:
        message = f"{purpose}|{value}".encode("utf-8", "surrogateescape")  # a cookie may hold any character
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    async def check_key(self, given: str) -> Verdict:
        """What a key typed in the login form (or sent in a header) opens."""
        return _verdict(await self.keys.caller(given), Access.WRONG)

    def session_for(self, caller: Caller, now: float | None = None) -> str:
        """The session cookie's value for a caller whose key was just checked."""
        if self._warn:
            self._warn = False
            log.warning("ui_secret_random", detail="no OMNICANAL_UI_SECRET: dashboard sessions are signed with a "
                        "secret made for this process; they end when it restarts and other processes refuse them")
        payload = f"{int((now or time.time()) + SESSION_SECONDS)}.{caller.fingerprint}"
        return f"{payload}.{self._sign('session', payload)}"

    async def _session(self, value: str, now: float) -> Verdict:
        expiry, _, rest = value.partition(".")
        fingerprint, _, signature = rest.partition(".")
        if not same_text(signature, self._sign("session", f"{expiry}.{fingerprint}")):
            return Verdict(Access.MISSING)
        if not expiry.isdigit() or int(expiry) < now:
            return Verdict(Access.MISSING)
        return _verdict(await self.keys.holder(fingerprint), Access.MISSING)

    async def access(self, request: web.Request) -> Verdict:
        """A key in the headers decides alone (a wrong one is WRONG even with a valid cookie: a script must
        learn its key is wrong); otherwise the session cookie, whose key is checked again."""
        given = presented_key(request)
        if given is not None:
            return await self.check_key(given)
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie and await self.keys.required():
            return await self._session(cookie, time.time())
        return _verdict(await self.keys.caller(None), Access.MISSING)  # open: anonymous, with every scope

    # -- CSRF ---------------------------------------------------------------------------------------------------

    def csrf_token(self, nonce: str) -> str:
        """The token a form carries for the browser whose CSRF cookie holds `nonce`."""
        return self._sign("csrf", nonce)

    def csrf_valid(self, request: web.Request, token: str) -> bool:
        """The form's token matches this browser's CSRF cookie, and the request comes from this site."""
        nonce = request.cookies.get(CSRF_COOKIE, "")
        if not nonce or not same_text(token, self.csrf_token(nonce)):
            return False
        return same_origin(request)


def same_origin(request: web.Request) -> bool:
    """False when the browser says the request comes from a page of another site (Origin, else Referer);
    requests that say nothing (scripts, old browsers) rely on the token alone."""
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if not source or source == "null":
        return source is None
    return urlsplit(source).netloc == request.host


def new_nonce() -> str:
    return secrets.token_urlsafe(24)
