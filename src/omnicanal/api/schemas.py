"""What the API accepts, as pydantic models: validated at the door, so the engine never sees bad input."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    field_validator,
    model_validator,
)

from omnicanal.channels import CHANNELS
from omnicanal.codec import encode, unstorable
from omnicanal.errors import InputError, InputTooLarge
from omnicanal.journey.state import PROFILE_FIELDS
from omnicanal.policy.choice import INBOX
from omnicanal.store.keys import CUSTOMER_ID_PATTERN
from omnicanal.suggest import did_you_mean
from omnicanal.timestamps import in_utc

EventName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$")]
CustomerId = Annotated[str, StringConstraints(pattern=CUSTOMER_ID_PATTERN)]
BATCH_LIMIT = 1000
MAX_DEPTH = 64
"""How deep containers may nest in an event or profile body, the body itself counting as one: far more than any
payload needs, far from where encoding would exhaust the stack (and checked before a body reaches the store)."""


def storable(body: Any, field: str = "") -> Any:
    """`body`, unless some of it cannot be stored (a lone surrogate, nesting beyond MAX_DEPTH): then InputError
    naming where, under `field` (`events.3` for an event of a batch)."""
    if (problem := unstorable(body, MAX_DEPTH)) is None:
        return body
    where, message = problem
    raise InputError([{"field": ".".join(part for part in (field, where) if part) or "body", "message": message}])


def within_limits(data: dict[str, Any], field: str, max_bytes: int, max_items: int) -> None:
    """Refuse data (an event's properties, a profile's attributes) larger than the daemon takes: over `max_bytes`
    of JSON (InputTooLarge, a 413) or with a list of more than `max_items` (InputError naming the list). Every
    expression and template reads this data, so its size bounds their work too."""
    size = len(text := encode(data))
    if size > max_bytes:
        raise InputTooLarge([{"field": field, "message": f"{size:,} bytes of JSON, more than {max_bytes:,} "
                                                          "(OMNICANAL_MAX_PROPERTIES_BYTES)"}])
    if text.count(b",") < max_items:  # a list of n items has n - 1 commas: none can be too long
        return
    if (found := _long_list(data, max_items)) is not None:
        path, items = found
        raise InputError([{"field": ".".join([field, *path]), "message": f"a list of {items:,} items, more than "
                                                                        f"{max_items:,} (OMNICANAL_MAX_LIST_ITEMS)"}])


def _long_list(value: Any, max_items: int) -> tuple[list[str], int] | None:
    """The path to the first list of more than `max_items` in `value`, and its length."""
    if isinstance(value, list) and len(value) > max_items:
        return [], len(value)
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        if isinstance(child, dict | list) and (found := _long_list(child, max_items)) is not None:
            found[0].insert(0, str(key))
            return found
    return None


_A_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def _written_as_a_date(value: Any) -> Any:
    """A timestamp is ISO 8601 text: a number (or a text of digits) would be read as seconds or milliseconds since
    1970, guessed from its size, and `0` would silently date an event 1970."""
    if isinstance(value, int | float) or (isinstance(value, str) and _A_NUMBER.fullmatch(value)):
        raise ValueError(f"{value!r}: write the date and time as ISO 8601 text, e.g. 2026-11-23T10:00:00Z")
    return value


Timestamp = Annotated[datetime, BeforeValidator(_written_as_a_date), AfterValidator(in_utc)]
"""A client's date and time, kept in UTC: the timeline writes it as the engine writes its own (`...Z`), so
entries sort as text whatever offset a client sent."""


class EventIn(BaseModel):
    """`POST /v1/events` body."""

    model_config = ConfigDict(extra="forbid")

    name: EventName
    customer_id: Annotated[CustomerId, Field(description=(
        "the customer's id, or an address they are looked up by: email:…, phone:…, push:…, anon:…, a bare e-mail "
        "or +E.164 number (422 when nobody has it)"))]
    properties: dict[str, Any] = Field(default_factory=dict)
    timestamp: Timestamp | None = None
    idempotency_key: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None


IdempotencyKey = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class CancelIn(BaseModel):
    """`POST /v1/events/cancel` body: the event is named as it was sent (its customer and idempotency key)."""

    model_config = ConfigDict(extra="forbid")

    customer_id: CustomerId
    idempotency_key: IdempotencyKey


class BatchIn(BaseModel):
    """`POST /v1/events/batch` body: events are validated one by one, so one bad event rejects only itself."""

    model_config = ConfigDict(extra="forbid")

    events: list[Any] = Field(min_length=1, max_length=BATCH_LIMIT)


def _a_channel(name: str) -> str:
    """A channel journeys may send on: a consent, a preference or an address for another name (`SMS`, `e-mail`)
    would be kept and never read, the customer's choice silently ignored."""
    if name not in CHANNELS:
        raise ValueError(f"unknown channel {name!r}{did_you_mean(name.lower(), CHANNELS, listing=True)}")
    return name


ChannelName = Annotated[str, AfterValidator(_a_channel), Field(json_schema_extra={"enum": sorted(CHANNELS)})]
_UNPRINTABLE = re.compile(r"[\s\x00-\x1f\x7f]")
_EMAIL = re.compile(r"[^@]+@[^@]+\.[^@]+")
_URL = re.compile(r"https?://[^/?#]+.*", re.IGNORECASE)


def _an_email(value: str) -> str:
    if _UNPRINTABLE.search(value) or not _EMAIL.fullmatch(value):
        raise ValueError(f"{value!r} is not an e-mail address: write it as name@example.com, without spaces")
    return value


def _a_token(value: str) -> str:
    if not 0 < len(value) <= 4096 or _UNPRINTABLE.search(value):
        raise ValueError("a token or account id is 1-4096 characters without spaces or control characters")
    return value


def _a_url(value: str) -> str:
    if len(value) > 2048 or _UNPRINTABLE.search(value) or not _URL.fullmatch(value):
        raise ValueError("a webhook address is an http:// or https:// URL (up to 2,048 characters, no spaces)")
    return value


class Addresses(BaseModel):
    """Where a customer can be reached, per channel (the channels journeys send on, channels.CHANNELS)."""

    model_config = ConfigDict(extra="forbid")

    sms: str | None = None
    whatsapp: str | None = None
    email: Annotated[str, AfterValidator(_an_email)] | None = None
    push: list[Annotated[str, AfterValidator(_a_token)]] | None = None
    webhook: Annotated[str, AfterValidator(_a_url)] | None = None
    messenger: Annotated[str, AfterValidator(_a_token)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _channels_only(cls, value: Any) -> Any:
        """An address for a name that is not a channel is refused, naming it and the channels there are."""
        for name in value if isinstance(value, dict) else ():
            if name == INBOX:
                raise ValueError("addresses.inbox: the in-app inbox needs no address (every customer has one, "
                                 "under their id): remove it")
            try:
                _a_channel(str(name))
            except ValueError as exc:
                raise ValueError(f"addresses.{name}: {exc}") from None
        return value


class CustomerIn(BaseModel):
    """`PUT /v1/customers/{id}` body: every part optional; what is given replaces, addresses merge per channel."""

    model_config = ConfigDict(extra="forbid")

    attributes: dict[str, Any] | None = None
    addresses: Addresses | None = None
    locale: Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-[A-Z]{2})?$")] | None = None
    timezone: str | None = None
    channel_preference: list[ChannelName] | None = None
    consents: dict[ChannelName, StrictBool | dict[Literal["marketing", "transactional"], StrictBool]] | None = None
    """Per channel: true/false for every purpose, or `{"marketing": bool, "transactional": bool}`."""

    @field_validator("consents", mode="before")
    @classmethod
    def _given_or_refused(cls, value: Any) -> Any:
        """A consent is true or false, never a `0` or `"yes"` read as one; one message per channel rather than
        pydantic's one per member of the union."""
        for channel, given in value.items() if isinstance(value, dict) else ():
            purposes = given if isinstance(given, dict) else {"marketing": given}
            if not all(p in ("marketing", "transactional") and isinstance(v, bool) for p, v in purposes.items()):
                raise ValueError(f"consents.{channel}: use true or false, or "
                                 '{"marketing": true|false, "transactional": true|false}')
        return value

    @field_validator("attributes")
    @classmethod
    def _not_a_profile_field(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        """An attribute named like a profile field (`locale`, `addresses`, `id`...) was stored and never read:
        `customer.locale` in a journey is the profile's, so the value sent was silently lost."""
        for name in sorted(PROFILE_FIELDS.intersection(value or {})):
            where = (f'send it at the top level of the body ("{name}": ...)' if name in CustomerIn.model_fields
                     else "use another name")
            raise ValueError(f"attributes.{name}: {name} is a profile field, not an attribute: {where}")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"unknown time zone {value!r}: use an IANA name such as Europe/Paris") from exc
        return value
