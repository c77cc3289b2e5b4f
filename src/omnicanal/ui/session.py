"""Who may see the dashboard: the holder of an API key, sent as `Authorization: Bearer` (scripts, probes) or
remembered after the login form in a signed session cookie. Without OMNICANAL_API_KEYS the dashboard is open, as
the API is.

The cookie holds no key: it holds the key's fingerprint (SHA-256) and an expiry, signed with HMAC-SHA256 under
OMNICANAL_UI_SECRET. A stolen cookie does not open the API, and a key taken out of OMNICANAL_API_KEYS ends its
sessions at once. HttpOnly (page scripts cannot read it), SameSite=Strict (no other site's page sends it).

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

from omnicanal.config import Settings

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
    """A key was given and is not one of OMNICANAL_API_KEYS: 401."""


def _fingerprint(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()


def presented_key(request: web.Request) -> str | None:
    """The key a request carries in its headers, as the API reads it (Bearer token or X-API-Key)."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[7:]
    return request.headers.get("X-API-Key")


@dataclass(frozen=True, slots=True)
class Gate:
    keys: tuple[bytes, ...]
    secret: bytes

    @classmethod
    def from_settings(cls, settings: Settings) -> Gate:
        """The gate of this process; without OMNICANAL_UI_SECRET sessions are signed with a random secret of
        this process (said once, as a warning: they end when it restarts and other API processes refuse them)."""
        keys = tuple(key.encode() for key in settings.api_keys)
        if settings.ui_secret:
            return cls(keys, settings.ui_secret.encode())
        if keys:
            log.warning("ui_secret_random", detail="no OMNICANAL_UI_SECRET: dashboard sessions are signed with a "
                        "secret made for this process; they end when it restarts and other processes refuse them")
        return cls(keys, secrets.token_bytes(32))

    @property
    def open(self) -> bool:
        """No API key is configured: the dashboard, like the API, needs none."""
        return not self.keys

    def _sign(self, purpose: str, value: str) -> str:
        return hmac.new(self.secret, f"{purpose}|{value}".encode(), hashlib.sha256).hexdigest()

    def valid_key(self, given: str) -> bytes | None:
        """The configured key `given` is (compared in constant time), or None."""
        encoded = given.encode()
        matches = [key for key in self.keys if hmac.compare_digest(encoded, key)]
        return matches[0] if matches else None

    def session_for(self, key: bytes, now: float | None = None) -> str:
        """The session cookie's value for a key that was just checked."""
        payload = f"{int((now or time.time()) + SESSION_SECONDS)}.{_fingerprint(key)}"
        return f"{payload}.{self._sign('session', payload)}"

    def _session_valid(self, value: str, now: float) -> bool:
        expiry, _, rest = value.partition(".")
        fingerprint, _, signature = rest.partition(".")
        if not hmac.compare_digest(signature, self._sign("session", f"{expiry}.{fingerprint}")):
            return False
        if not expiry.isdigit() or int(expiry) < now:
            return False
        return any(hmac.compare_digest(fingerprint, _fingerprint(key)) for key in self.keys)

    def access(self, request: web.Request) -> Access:
        """A key in the headers decides alone (a wrong one is WRONG even with a valid cookie: a script must
        learn its key is wrong); otherwise the session cookie."""
        if self.open:
            return Access.GRANTED
        given = presented_key(request)
        if given is not None:
            return Access.GRANTED if self.valid_key(given) else Access.WRONG
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie and self._session_valid(cookie, time.time()):
            return Access.GRANTED
        return Access.MISSING

    # -- CSRF ---------------------------------------------------------------------------------------------------

    def csrf_token(self, nonce: str) -> str:
        """The token a form carries for the browser whose CSRF cookie holds `nonce`."""
        return self._sign("csrf", nonce)

    def csrf_valid(self, request: web.Request, token: str) -> bool:
        """The form's token matches this browser's CSRF cookie, and the request comes from this site."""
        nonce = request.cookies.get(CSRF_COOKIE, "")
        if not nonce or not hmac.compare_digest(token, self.csrf_token(nonce)):
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
