"""Identifiers a customer can be found by: e-mail, phone (E.164), WhatsApp number, push token, anonymous id.

Phones are normalised with `phonenumbers` so that "06 12 34 56 78" (in France), "+33612345678" and
"whatsapp:+33612345678" are one customer. The index itself lives in Redis (store/identity.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import phonenumbers

PHONE_CHANNELS = ("sms", "whatsapp")
KINDS = ("email", "phone", "push", "anon")
"""Identifier kinds, as written in `GET /v1/customers/email:lea@example.com`."""


def normalise_phone(text: str, region: str) -> str:
    """E.164 (`+33612345678`); ValueError saying what is wrong otherwise."""
    raw = text.removeprefix("whatsapp:").strip()
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"{text!r} is not a phone number: {exc}") from exc
    if not phonenumbers.is_valid_number(number):
        raise ValueError(f"{text!r} is not a valid phone number (write it with its country code, e.g. +33...)")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise(kind: str, value: str, region: str) -> str:
    if kind == "phone":
        return normalise_phone(value, region)
    return value.strip().lower() if kind == "email" else value.strip()


def lookup_of(given: str, region: str) -> tuple[str, str] | None:
    """The (kind, normalised value) that `given` looks a customer up by, or None when it is a customer id, used as
    is. Looked up: an id with a kind prefix (`email:`, `phone:`, `push:`, `anon:`), a bare e-mail (it has an `@`)
    and a bare phone number in E.164 (it starts with `+`). Anything else is an id without a Redis read, so that the
    ingest path stays free. ValueError when it is shaped like a phone number and is not one."""
    if ":" in given:
        kind, _, value = given.partition(":")
        if kind in KINDS:
            return kind, normalise(kind, value, region)
    if "@" in given:
        return "email", normalise("email", given, region)
    if given.startswith("+"):
        return "phone", normalise_phone(given, region)
    return None


def looks_like_address(given: str) -> bool:
    """Whether `lookup_of` would look `given` up (a kind prefix, an `@`, a leading `+`) rather than take it as an
    id: such a text is never made a customer's id, nor merged as an anonymous id."""
    prefixed = ":" in given and given.partition(":")[0] in KINDS
    return prefixed or "@" in given or given.startswith("+")


def identifiers(addresses: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(kind, value) of every identifier in a profile's addresses (already normalised)."""
    found: list[tuple[str, str]] = []
    for channel, value in addresses.items():
        if channel in PHONE_CHANNELS and value:
            found.append(("phone", str(value)))
        elif channel == "email" and value:
            found.append(("email", str(value).lower()))
        elif channel == "push" and isinstance(value, list):
            found.extend(("push", str(token)) for token in value)
    return list(dict.fromkeys(found))
