"""Addresses as the dashboard shows them: enough to recognise one (`+336•••••678`, `l••@example.com`), not
enough to copy it. Whoever needs the full address has the API.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from omnicanal.identity import PHONE_CHANNELS

HIDDEN = "•"


def mask_phone(number: str) -> str:
    """`+33612345678` → `+336•••••678`: the country and first digit, and the last three."""
    if len(number) <= 7:
        return number[:1] + HIDDEN * (len(number) - 1)
    return number[:4] + HIDDEN * (len(number) - 7) + number[-3:]


def mask_email(address: str) -> str:
    """`lea@example.com` → `l••@example.com`: the first letter and the domain."""
    local, at, domain = address.rpartition("@")
    if not at:
        return mask_token(address)
    return local[:1] + HIDDEN * max(1, len(local) - 1) + "@" + domain


def mask_url(url: str) -> str:
    """`https://crm.example/hook/secret` → `https://crm.example/•••`: the host, never the path (it often holds
    a token)."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return mask_token(url)
    host = parts.netloc.rpartition("@")[2]  # credentials in the URL are never shown
    return f"{parts.scheme}://{host}/{HIDDEN * 3}"


def mask_token(token: str) -> str:
    """A push token or page-scoped id: its first four and last four characters, at a fixed width."""
    if len(token) <= 10:
        return token[:1] + HIDDEN * (len(token) - 1)
    return token[:4] + HIDDEN * 5 + token[-4:]


def mask_address(channel: str, address: Any) -> Any:
    """An address of `channel` masked (a list of addresses, each masked); other values as they are."""
    if isinstance(address, list):
        return [mask_address(channel, item) for item in address]
    if not isinstance(address, str):
        return address
    if channel in PHONE_CHANNELS:
        return mask_phone(address)
    if channel == "email":
        return mask_email(address)
    if channel == "webhook":
        return mask_url(address)
    return mask_token(address)
