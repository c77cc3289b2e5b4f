"""`GET /u/{token}` and `POST /u/{token}`: unsubscribing from a link in a message.

GET asks, and never unsubscribes (mail scanners fetch links). The page offers three choices: the kind of message
the link came with (the token's purpose) on its channel — the default —, offers and news on every channel, or
every message on that channel. POST records the choice of the form; a POST whose body is
`List-Unsubscribe=One-Click` (RFC 8058: the mailbox's own unsubscribe button, no page in between) records the
default at once.

The choice becomes consent denials with their source (`unsubscribe_link`) and time, through the store's atomic
profile merge, so that no worker sends there again; and an `unsubscribed` event in the customer's ordered work,
which journeys can `exit_on`. Both happen once: a denial already recorded is kept as it was (with its first
time), and the event's id derives from the token and the choice, so a replayed POST changes nothing more.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from omnicanal.api.errors import read_form
from omnicanal.api.events import derived_event
from omnicanal.api.links import read_token
from omnicanal.api.pages import TEXTS, invalid_link, language, page, scope_label
from omnicanal.api.state import runtime_of
from omnicanal.channels import CHANNELS
from omnicanal.engine.runtime import Runtime
from omnicanal.links import Links, Unsubscribe
from omnicanal.policy import consent
from omnicanal.timestamps import iso

UNSUBSCRIBED = "unsubscribed"
SOURCE = "unsubscribe_link"
SCOPES = ("message", "marketing", "channel")
"""The choices, the default first: the token's purpose on its channel; marketing everywhere; the channel."""


def _unsubscribe(request: web.Request) -> Unsubscribe | None:
    unsubscribe = read_token(request, Links.read_unsubscribe)
    if unsubscribe is None or unsubscribe.channel not in CHANNELS or unsubscribe.purpose not in consent.PURPOSES:
        return None
    return unsubscribe


def _label(lang: str, unsubscribe: Unsubscribe, scope: str) -> str:
    return scope_label(lang, f"{unsubscribe.purpose}_message" if scope == "message" else scope, unsubscribe.channel)


def _form(lang: str, unsubscribe: Unsubscribe, *, error: bool = False) -> web.Response:
    texts = TEXTS[lang]
    return page(lang, texts["unsubscribe_title"], [], choices=[(s, _label(lang, unsubscribe, s)) for s in SCOPES],
                error=texts["choose"] if error else None, status=422 if error else 200)


def denials(unsubscribe: Unsubscribe, scope: str) -> dict[str, dict[str, bool]]:
    """The consents a choice withdraws: channel → purpose → False."""
    if scope == "message":
        return {unsubscribe.channel: {unsubscribe.purpose: False}}
    if scope == "marketing":
        return {channel: {"marketing": False} for channel in CHANNELS}
    return {unsubscribe.channel: {purpose: False for purpose in consent.PURPOSES}}


async def _customer_locale(runtime: Runtime, customer_id: str) -> tuple[dict[str, Any], str | None]:
    profile, _, _ = await runtime.customers.profile(customer_id)
    locale = profile.get("locale")
    return profile, locale if isinstance(locale, str) else None


async def ask(request: web.Request) -> web.Response:
    unsubscribe = _unsubscribe(request)
    if unsubscribe is None:
        return invalid_link(request)
    _, locale = await _customer_locale(runtime_of(request), unsubscribe.customer_id)
    return _form(language(request, locale), unsubscribe)


async def confirm(request: web.Request) -> web.Response:
    unsubscribe = _unsubscribe(request)
    if unsubscribe is None:
        return invalid_link(request)
    runtime = runtime_of(request)
    profile, locale = await _customer_locale(runtime, unsubscribe.customer_id)
    lang = language(request, locale)
    form = await read_form(request)
    if form.get("List-Unsubscribe") == "One-Click":
        scope, method = SCOPES[0], "one_click"
    elif (chosen := form.get("scope")) in SCOPES:
        scope, method = str(chosen), "page"
    else:
        return _form(lang, unsubscribe, error=True)
    await _record(runtime, unsubscribe, scope, method, profile.get("consents") or {}, request.match_info["token"])
    texts = TEXTS[lang]
    return page(lang, texts["done_title"], [texts["done"].format(what=_label(lang, unsubscribe, scope)),
                                            texts["done_more"]])


async def _record(runtime: Runtime, unsubscribe: Unsubscribe, scope: str, method: str, current: dict[str, Any],
                  token: str) -> None:
    """The denials not recorded yet, then the event (its id from the token and the choice: once)."""
    withdrawn = denials(unsubscribe, scope)
    new = {channel: {purpose: False for purpose in purposes
                     if current.get(channel, {}).get(purpose, {}).get("granted") is not False}
           for channel, purposes in withdrawn.items()}
    new = {channel: purposes for channel, purposes in new.items() if purposes}
    now = runtime.clock.now()
    if new:
        await runtime.customers.upsert_profile(unsubscribe.customer_id,
                                               {"consents": consent.normalise(new, SOURCE, iso(now))}, {}, now)
    properties = {"channel": unsubscribe.channel, "purpose": unsubscribe.purpose, "scope": scope,
                  "channels": sorted(withdrawn), "purposes": sorted({p for ps in withdrawn.values() for p in ps}),
                  "message_id": unsubscribe.message_id, "method": method, "source": SOURCE}
    event = derived_event(runtime, unsubscribe.customer_id, UNSUBSCRIBED, f"unsubscribe\x00{token}\x00{scope}",
                          properties)
    await runtime.queue.append_events([event])
