"""Signed requests: a server-to-server event source proves each request's body and time with HMAC-SHA256, as
Stripe and Svix sign their webhooks. For keys made with `omnicanal keys create --signing` (README, Signed requests).

    X-Omnicanal-Timestamp: 1764840000                    Unix seconds when the request was signed
    X-Omnicanal-Signature: v1=<hex HMAC-SHA256 of "<timestamp>.<body>" under the key's signing secret>

Why, on top of the bearer key: the signing secret never travels, so a key read from a proxy's log, a trace or a
captured request cannot forge one more request; a signed body cannot be altered on the way; and a request is good
for WINDOW seconds around its timestamp, once (the API remembers each signature that long: store/replays.py).

The signed text is the timestamp, a dot and the body's bytes exactly as sent: no JSON normalisation, which two
languages would do differently. This module is pure (no clock, no I/O): what the API checks and what a client signs
with (`signed_headers`, used by `omnicanal send-event`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from omnicanal.errors import BadSignature

TIMESTAMP_HEADER = "X-Omnicanal-Timestamp"
SIGNATURE_HEADER = "X-Omnicanal-Signature"
SCHEME = "v1"
"""The signature's version: a later scheme gets a new name, so both can be accepted while clients move."""
WINDOW = 300
"""Seconds a signed request is accepted before or after its timestamp: room for clocks a little apart and a slow
network, and the time each signature is remembered to refuse it a second time."""
SECRET_PREFIX = "ocs"
REASONS = ("unsigned", "malformed", "stale", "future", "mismatch", "replayed")
"""What BadSignature.reason may say (the OpenAPI document lists them)."""

_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(rf"{SCHEME}=([0-9a-fA-F]{{64}})")
_HOW = (f"sign `<timestamp>.<body>` with HMAC-SHA256 under the key's signing secret and send "
        f"{TIMESTAMP_HEADER}: <Unix seconds> and {SIGNATURE_HEADER}: {SCHEME}=<hex>")


def new_secret() -> str:
    """A signing secret: 256 random bits, with a prefix that says what it is (and lets scanners find it)."""
    return f"{SECRET_PREFIX}.{secrets.token_urlsafe(32)}"


def same_text(given: str, expected: str) -> bool:
    """Whether a token, cookie or signature a client sent is the expected one, in constant time. As bytes:
    `hmac.compare_digest` raises TypeError on text that is not ASCII, which a forger chooses freely."""
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode("utf-8", "surrogateescape"))


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of `<timestamp>.<body>` under `secret`."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signed_headers(secret: str, body: bytes, now: float) -> dict[str, str]:
    """The headers that sign `body` at `now` (a client's side)."""
    timestamp = int(now)
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: f"{SCHEME}={signature(secret, timestamp, body)}"}


@dataclass(frozen=True, slots=True)
class Signed:
    """A request whose signature holds."""

    signature: str
    """Its signature, as computed here (lower-case hex): what the replay memory keeps."""
    fresh_for: float
    """Seconds until its timestamp leaves the window: how long the signature must be remembered."""


def verify(secret: str, timestamp: str | None, signed: str | None, body: bytes, now: float) -> Signed:
    """Check a request's signing headers against its body at `now`; BadSignature names the reason: `unsigned`,
    `malformed`, `stale`, `future` or `mismatch` (`replayed` is the API's to say, once the signature holds)."""
    if timestamp is None and signed is None:
        raise BadSignature("unsigned", f"this API key signs its requests: {_HOW}")
    if timestamp is None or not _TIMESTAMP.fullmatch(timestamp):
        raise BadSignature("malformed", f"{TIMESTAMP_HEADER} must be the Unix time in whole seconds: {_HOW}")
    given = _SIGNATURE.fullmatch((signed or "").strip())
    if given is None:
        raise BadSignature("malformed", f"{SIGNATURE_HEADER} must be {SCHEME}=<64 hex digits>: {_HOW}")
    at = int(timestamp)
    if now - at > WINDOW:
        raise BadSignature("stale", f"{TIMESTAMP_HEADER} is {now - at:.0f} s old; a signed request is accepted for "
                                    f"{WINDOW} s: sign each request as it is sent, on a clock kept right (NTP)")
    if at - now > WINDOW:
        raise BadSignature("future", f"{TIMESTAMP_HEADER} is {at - now:.0f} s ahead of this server's clock (at most "
                                     f"{WINDOW} s): set the sender's clock right (NTP)")
    expected = signature(secret, at, body)
    if not same_text(given.group(1).lower(), expected):
        raise BadSignature("mismatch", f"{SIGNATURE_HEADER} does not match this body and timestamp: sign the body's "
                                       f"bytes exactly as sent, with this key's signing secret ({_HOW})")
    return Signed(expected, at + WINDOW - now)
