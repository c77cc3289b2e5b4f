"""`PUT /v1/customers/{id}`, `GET /v1/customers/{id}` and its timeline."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from omnicanal.api.audit import audit
from omnicanal.api.errors import read_json
from omnicanal.api.events import event_id
from omnicanal.api.identifiers import Unresolved, customer_behind
from omnicanal.api.schemas import CustomerIn, storable, within_limits
from omnicanal.api.state import runtime_of
from omnicanal.engine.runtime import Runtime
from omnicanal.errors import InputError, InputTooLarge, NotFound
from omnicanal.identity import PHONE_CHANNELS, normalise, normalise_phone
from omnicanal.journey.advance import CUSTOMER_UPDATED
from omnicanal.journey.state import Instance
from omnicanal.policy import consent
from omnicanal.store.keys import valid_customer_id
from omnicanal.store.merge import MERGED_INTO
from omnicanal.store.schema import AUDIENCE
from omnicanal.store.work import WorkItem
from omnicanal.timestamps import iso


def profile_fields(body: CustomerIn, source: str, now: float, region: str) -> dict[str, Any]:
    """The profile fields of an upsert body as the store keeps them: phones in E.164, e-mails in lower case,
    consents stamped with their source and time. InputError names a phone that is not one."""
    fields = body.model_dump(exclude_unset=True, exclude={"attributes"})
    if body.addresses is not None:
        addresses = body.addresses.model_dump(exclude_unset=True)
        for channel in PHONE_CHANNELS:
            if addresses.get(channel):
                try:
                    addresses[channel] = normalise_phone(addresses[channel], region)
                except ValueError as exc:
                    raise InputError([{"field": f"addresses.{channel}", "message": str(exc)}]) from exc
        if addresses.get("email"):
            addresses["email"] = addresses["email"].lower()
        fields["addresses"] = addresses
    if body.consents is not None:
        fields["consents"] = consent.normalise(body.consents, source, iso(now))
    return fields


def customer_id_in(request: web.Request) -> str:
    """The customer id of the path, checked (InputError names what it may hold)."""
    customer_id = request.match_info["customer_id"]
    if not valid_customer_id(customer_id):
        raise InputError([{"field": "customer_id", "message": "use 1-128 letters, digits or . _ : @ + -"}])
    return customer_id


async def _customer_to_update(runtime: Runtime, given: str) -> str:
    """The customer a profile update is for: an address that names nobody is refused, never taken for an id."""
    found = await customer_behind(runtime, given)
    if isinstance(found, Unresolved):
        raise InputError([{"field": "customer_id", "message": found.message}])
    return found


async def resolve_customer(runtime: Runtime, given: str) -> str:
    """The customer a read is for: an address resolves as for writes; an id is followed to the customer an
    anonymous visitor became, and an id nobody has is tried as a bare push token, anonymous id or national phone
    number (reads are not the ingest path). NotFound when nobody has it."""
    found = await customer_behind(runtime, given)
    if isinstance(found, Unresolved):
        raise NotFound(found.message)
    if found != given:  # an address, resolved (or the id of a customer whose id is that address)
        return found
    profile, attributes, _ = await runtime.customers.profile(given)
    if profile.get(MERGED_INTO):
        return str(profile[MERGED_INTO])  # an anonymous visitor who identified: now that customer
    if profile or attributes:
        return given
    region = runtime.settings.default_region
    for kind in ("phone", "push", "anon"):
        try:
            owner = await runtime.identity.resolve(kind, normalise(kind, given, region))
        except ValueError:
            continue  # not a phone number: not this kind
        if owner:
            return owner
    raise NotFound(f"no customer {given!r} (looked up as a customer id, phone, push token and anonymous id)")


async def _instance_view(runtime: Runtime, raw: dict[str, Any]) -> dict[str, Any]:
    instance = Instance.from_dict(raw)
    journey = await runtime.registry.version(instance.journey, instance.version)
    step = journey.steps[instance.position] if instance.position < len(journey.steps) else None
    view: dict[str, Any] = {
        "instance_id": instance.id,
        "journey": instance.journey,
        "version": instance.version,
        "started_at": iso(instance.started_at),
        "step": step.id if step else None,
        "status": "waiting" if instance.waiting else "running",
        "vars": instance.vars,
        "converted": instance.converted,
    }
    if instance.waiting and instance.waiting.until is not None:
        view["until"] = iso(instance.waiting.until)
    return view


async def _profile_view(runtime: Runtime, customer_id: str) -> dict[str, Any]:
    profile, attributes, instances = await runtime.customers.profile(customer_id)
    if not profile and not attributes:
        raise NotFound(f"no customer {customer_id!r}")
    created, updated = profile.pop("created_at", None), profile.pop("updated_at", None)
    return {
        "customer_id": customer_id,
        "attributes": attributes,
        "addresses": profile.get("addresses", {}),
        "locale": profile.get("locale"),
        "timezone": profile.get("timezone"),
        "channel_preference": profile.get("channel_preference", []),
        "consents": profile.get("consents", {}),
        "created_at": iso(float(created)) if created else None,
        "updated_at": iso(float(updated)) if updated else None,
        "journeys": [await _instance_view(runtime, raw) for raw in instances],
        "segments": (profile.get(AUDIENCE) or {}).get("s", []),
    }


def _changes_heard(runtime: Runtime) -> bool:
    """Whether a change of attributes matters to the engine: a journey reacts to customer.updated, or segments
    are defined (the engine evaluates memberships again as it applies the event). Otherwise the upsert neither
    reads the old values nor appends an event."""
    return runtime.registry.listens(CUSTOMER_UPDATED) or bool(runtime.engine.context.segments)


async def _announce(runtime: Runtime, customer_id: str, changes: dict[str, dict[str, Any]], now: float,
                    source: str) -> None:
    """Append `customer.updated` to the customer's ordered work, before the PUT is answered.

    Not in the upsert's script: the work stream lives in its partition's slot, the profile in the customer's,
    and a script touches one slot (Redis Cluster). A crash between the two loses the event, and the PUT is then
    answered with no 2xx: the change is written, but no journey hears of it."""
    event = {"id": event_id(runtime.settings.workspace, customer_id, None), "name": CUSTOMER_UPDATED,
             "customer_id": customer_id, "timestamp": iso(now), "received_at": now,
             "properties": {"changes": changes, "source": source}}
    await runtime.queue.append([WorkItem.of_event(event, unique=True)])


async def update_profile(runtime: Runtime, customer_id: str, body: CustomerIn, source: str) -> dict[str, Any]:
    """What `PUT /v1/customers/{id}` does to a customer (and `omnicanal simulate` to its scenario's): the profile
    upserted, `customer.updated` appended when attributes changed and someone listens, the identity index
    following the addresses. Returns the profile fields written."""
    now = runtime.clock.now()
    fields = profile_fields(body, source, now, runtime.settings.default_region)
    update = await runtime.customers.upsert_profile(customer_id, fields, body.attributes or {}, now,
                                                    changes=_changes_heard(runtime))
    if update.changes:
        await _announce(runtime, customer_id, update.changes, now, source)
    if "addresses" in fields:
        await runtime.identity.follow(customer_id, update.before, update.after)
    return fields


async def _merged_within_limits(runtime: Runtime, customer_id: str, attributes: dict[str, Any]) -> None:
    """The profile's attributes as this update leaves them are held to the same limits as one body's: PUTs of 60 KB
    each under another name grew a profile without end, and every expression of that customer reads all of it.
    (Two PUTs racing may each pass and land together: the bound is then twice the limit, not none.)"""
    _, stored, _ = await runtime.customers.profile(customer_id)
    merged = {name: value for name, value in {**stored, **attributes}.items() if value is not None}
    settings = runtime.settings
    try:
        within_limits(merged, "attributes", settings.max_properties_bytes, settings.max_list_items)
    except InputTooLarge as exc:
        raise InputTooLarge([{"field": "attributes", "message": f"the profile's attributes with these merged: "
                              f"{error['message']}; remove some (null removes one)"} for error in exc.errors]) from None


async def put_customer(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    given = customer_id_in(request)
    body = CustomerIn.model_validate(storable(await read_json(request)))
    within_limits(body.attributes or {}, "attributes", runtime.settings.max_properties_bytes,
                  runtime.settings.max_list_items)
    customer_id = await _customer_to_update(runtime, given)
    if body.attributes:
        await _merged_within_limits(runtime, customer_id, body.attributes)
    fields = await update_profile(runtime, customer_id, body, "api")
    if fields.get("consents"):  # null or {} changes no consent
        granted = {channel: {purpose: decision["granted"] for purpose, decision in purposes.items()}
                   for channel, purposes in fields["consents"].items()}
        await audit(request, "customer.consent", customer_id, consents=granted)
    return web.json_response(await _profile_view(runtime, customer_id))


async def get_customer(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    return web.json_response(await _profile_view(runtime, await resolve_customer(runtime, customer_id_in(request))))


async def get_timeline(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    customer_id = await resolve_customer(runtime, customer_id_in(request))
    entries = await runtime.customers.timeline(customer_id)
    if not entries:
        profile, attributes, _ = await runtime.customers.profile(customer_id)
        if not profile and not attributes:
            raise NotFound(f"no customer {customer_id!r}")
    return web.json_response({"customer_id": customer_id, "entries": entries})
