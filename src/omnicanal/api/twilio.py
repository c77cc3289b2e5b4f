"""Twilio's callbacks: delivery receipts (`/webhooks/twilio/status`) and replies (`/webhooks/twilio/inbound`).

Every request must carry a valid `X-Twilio-Signature`, checked with the official validator against the URL
Twilio called (OMNICANAL_PUBLIC_URL + path when set, since a proxy may change what the daemon sees); anything
else gets 403 and changes nothing.

A receipt updates the message's status history and becomes an event of its customer (`message.delivered`,
`message.read`, `message.failed`) that journeys can wait for; `message.failed` also makes the worker try the
step's next channel while the journey runs. A reply becomes a `message.received` event of the customer the
number belongs to, so a `wait_for` continues the conversation on whatever channel it came from. STOP-type keywords
record an opt-out for that channel (START-type ones an opt-in) before anything else, so no worker sends there
again. A reply changes the profile once per MessageSid: Twilio's signature has no time in it, so a captured START
sent again after a later STOP would otherwise opt the customer back in.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from aiohttp import web
from twilio.request_validator import RequestValidator

from omnicanal.access import WORKSPACE
from omnicanal.api.errors import read_form
from omnicanal.api.events import derived_event
from omnicanal.api.state import deployment_of, runtime_of
from omnicanal.identity import normalise_phone
from omnicanal.policy import consent
from omnicanal.store.keys import valid_customer_id
from omnicanal.timestamps import iso

OPT_OUT = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "END", "QUIT", "REVOKE", "OPTOUT", "CANCEL", "ARRET", "ARRÊT"})
OPT_IN = frozenset({"START", "YES", "UNSTOP"})
STATUS_EVENTS = {"delivered": "message.delivered", "read": "message.read", "undelivered": "message.failed",
                 "failed": "message.failed"}
TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


def _keyword(body: str) -> str | None:
    """The opt-out or opt-in keyword a reply is, in any case and with punctuation or spaces around it ("Stop.",
    "arrêt !", "«STOP»"), as people write it; None for anything else (a keyword inside a sentence is not one)."""
    start, end = 0, len(body)
    while start < end and _around(body[start]):
        start += 1
    while end > start and _around(body[end - 1]):
        end -= 1
    word = body[start:end].upper()
    return word if word in OPT_OUT | OPT_IN else None


def _around(char: str) -> bool:
    return char.isspace() or unicodedata.category(char)[0] in "PZ"


async def _verified_form(request: web.Request) -> dict[str, str]:
    """The form Twilio posted, once its signature is checked; 403 otherwise. The connectors (and so Twilio's
    token) are every workspace's: they come from the process's settings."""
    form = {key: str(value) for key, value in (await read_form(request)).items()}
    deployment = deployment_of(request)
    base = deployment.settings.public_url
    url = f"{base.rstrip('/')}{request.path_qs}" if base else str(request.url)
    token = next(iter(deployment.runtimes.values())).connectors.callback_secret("twilio")
    if token is None:
        raise web.HTTPForbidden(text="no Twilio connector is configured (OMNICANAL_CHANNELS): callbacks refused")
    if not RequestValidator(token).validate(url, form, request.headers.get("X-Twilio-Signature", "")):
        raise web.HTTPForbidden(text="invalid X-Twilio-Signature: request refused, nothing changed")
    return form


def _workspaces_named(request: web.Request) -> list[str]:
    """The workspaces a callback may be for: the one its URL names (`?workspace=`: the number's webhook URL as
    set in Twilio's console; the signature covers it), else every one this process serves."""
    served = list(deployment_of(request).runtimes)
    named = request.query.get("workspace")
    if named is None:
        return served
    if named not in served:
        raise web.HTTPNotFound(text=f"no workspace {named!r} here")
    return [named]


async def status_callback(request: web.Request) -> web.Response:
    """A receipt is for the workspace that sent the message (provider message ids are Twilio's, unique)."""
    form = await _verified_form(request)
    sid, status = form.get("MessageSid", ""), form.get("MessageStatus", "")
    found = None
    for workspace in _workspaces_named(request):
        request[WORKSPACE] = workspace
        if (found := await runtime_of(request).customers.message_of_provider_id(sid)) is not None:
            break
    if found is None:
        return web.Response(status=204)  # not ours (or older than the index): nothing to update
    runtime = runtime_of(request)
    customer_id, message_id = found
    record = await runtime.customers.record_status(customer_id, message_id, status, runtime.clock.now(),
                                                   form.get("ErrorCode"))
    if record is None or status not in STATUS_EVENTS:
        return web.Response(status=204)
    properties = {"message_id": message_id, "journey": record.get("journey"), "step": record.get("step"),
                  "channel": record.get("channel"), "status": status}
    if form.get("ErrorCode"):
        properties["error_code"] = form["ErrorCode"]
    events = [derived_event(runtime, customer_id, STATUS_EVENTS[status], f"{sid}:{status}", properties)]
    await runtime.queue.append_events(events)
    return web.Response(status=204)


async def inbound(request: web.Request) -> web.Response:
    """A reply is for the workspace the URL names; without a name, for the process's workspace (with several,
    OMNICANAL_WORKSPACE's; none served: 404 asking for the name)."""
    form = await _verified_form(request)
    candidates = _workspaces_named(request)
    home = deployment_of(request).settings.workspace
    if len(candidates) > 1:
        if home not in candidates:
            raise web.HTTPNotFound(text="this process serves several workspaces: name the one of this number in "
                                        "its webhook URL, /webhooks/twilio/inbound?workspace=WS")
        candidates = [home]
    request[WORKSPACE] = candidates[0]
    runtime = runtime_of(request)
    sender = form.get("From", "")
    channel = "whatsapp" if sender.startswith("whatsapp:") else "sms"
    try:
        phone = normalise_phone(sender, runtime.settings.default_region)
    except ValueError:
        return web.Response(text=TWIML_EMPTY, content_type="text/xml")  # a short code or garbage: ignore
    customer_id = await runtime.identity.resolve("phone", phone) or phone
    if not valid_customer_id(customer_id):
        return web.Response(text=TWIML_EMPTY, content_type="text/xml")
    now = runtime.clock.now()
    body = form.get("Body", "").strip()
    keyword = _keyword(body)
    fields: dict[str, Any] = {"addresses": {channel: phone}}
    if channel == "whatsapp":
        fields["whatsapp_last_inbound"] = repr(now)
    if keyword:
        fields["consents"] = consent.normalise({channel: keyword in OPT_IN}, f"{channel}_keyword", iso(now))
    update = await runtime.customers.upsert_profile(customer_id, fields, {}, now, once=form.get("MessageSid") or None)
    if update.applied:
        await runtime.identity.follow(customer_id, update.before, update.after)
    else:  # applied before: the index may still miss it, if the process stopped in between
        await runtime.identity.claim(customer_id, [("phone", phone)])
    properties = {"channel": channel, "from": phone, "body": body, "message_sid": form.get("MessageSid", "")}
    if keyword:
        properties["keyword"] = keyword
    if form.get("ProfileName"):
        properties["profile_name"] = form["ProfileName"]
    event = derived_event(runtime, customer_id, "message.received", form.get("MessageSid", "") or f"{phone}:{now}",
                          properties)
    await runtime.queue.append_events([event])
    return web.Response(text=TWIML_EMPTY, content_type="text/xml")
