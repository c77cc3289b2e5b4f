"""Coupon codes issued with messages, and what a redemption leads to.

A code is derived from the send (its step visit) with a secret: the same on a replay of the same work (so a
message re-rendered after a crash carries the code it was issued with), impossible to guess without the secret,
and the same whichever channel (or fallback) carries the message. The store keeps each issued code with its
message; when a `coupon.redeemed` event comes, the engine checks and marks the code in one script before the
core applies the event (store/coupons.py), and the core records what the verdict says (journey/core.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from omnicanal.journey.model import CouponSpec

REDEEMED = "coupon.redeemed"
"""The event a till, a site or an app sends with `properties.code` when a coupon is used."""
REFUSALS = ("unknown", "expired", "used")
"""Why a redemption is not credited (recorded on the timeline and counted, never silently dropped)."""


def coupon_code(secret: bytes, customer_id: str, visit: str, spec: CouponSpec) -> str:
    """`prefix` + `length` characters of base32 (A-Z, 2-7) of an HMAC of the customer and the send's visit."""
    digest = hmac.new(secret, f"{customer_id}\x00{visit}".encode(), hashlib.sha256).digest()
    return spec.prefix + base64.b32encode(digest).decode()[:spec.length]
