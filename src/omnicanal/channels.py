"""The channels: which exist and what each is made of, the connector protocol, and the registry that maps
channels to connectors.

The catalogue (`CHANNELS`) is what journeys and templates are checked against when they load: a channel not in
it, a template field it does not have, or a fallback waiting for a receipt it never sends is refused there, not
discovered at send time.

A connector hands one rendered message to one provider. It implements a single coroutine, `send`, declares the
channels it can serve, and translates its provider's failures into the DeliveryError tree (errors.py). Built-in
and third-party connectors register the same way, through the `omnicanal.connectors` entry-point group:

    [project.entry-points."omnicanal.connectors"]
    my_sms = "my_package.sms:MySmsConnector"

Every channel without a configured provider is served by the built-in `outbox` connector, which records the
message instead of sending it, so a journey runs end to end on a laptop with no credentials — except the in-app
`inbox`, whose provider is the engine itself (its built-in `inbox` connector).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from types import MappingProxyType
from typing import Any, ClassVar

import aiohttp
from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from omnicanal.errors import ConfigError
from omnicanal.outbound import OutboundPolicy
from omnicanal.store.connection import Redis
from omnicanal.store.keys import Keyspace
from omnicanal.suggest import did_you_mean

ENTRY_POINT_GROUP = "omnicanal.connectors"
FALLBACK_CONNECTOR = "outbox"
BUILT_IN_ROUTES: Mapping[str, str] = MappingProxyType({"inbox": "inbox"})
"""Channels whose provider is the engine itself, served without a route in OMNICANAL_CHANNELS."""


@dataclass(frozen=True)
class ChannelSpec:
    """One channel as journeys and templates see it.

    The fields its messages are made of, so that a typo in a template fails at load, not at send; and whether
    its providers report delivery (`delivery_receipts`), since a `fallback_after` waiting for a receipt that
    never comes would always send the next channel too.
    """

    required: frozenset[str]
    optional: frozenset[str] = frozenset()
    mappings: frozenset[str] = frozenset()  # fields whose value is a mapping of key -> template string
    html: frozenset[str] = frozenset()  # fields rendered with HTML autoescape: customer data is not markup
    delivery_receipts: bool = False

    @property
    def fields(self) -> frozenset[str]:
        return self.required | self.optional


def _spec(required: str, optional: str = "", mappings: str = "", html: str = "", *,
          receipts: bool = False) -> ChannelSpec:
    def names(text: str) -> frozenset[str]:
        return frozenset(text.split())

    return ChannelSpec(names(required), names(optional), names(mappings), names(html), delivery_receipts=receipts)


CHANNELS: Mapping[str, ChannelSpec] = MappingProxyType(
    {
        # Twilio reports delivered/undelivered through /webhooks/twilio/status.
        "sms": _spec("body", receipts=True),
        "whatsapp": _spec("body", optional="content_sid content_variables", mappings="content_variables",
                          receipts=True),
        # The provider accepts the message (FCM, SMTP, a webhook, Messenger); no delivery callback reaches us.
        "push": _spec("title body", optional="data", mappings="data"),
        "email": _spec("subject text", optional="html", html="html"),
        "webhook": _spec("payload", mappings="payload"),
        "messenger": _spec("body"),
        # The in-app inbox (connectors/inbox.py): stored for the customer's app, which reports reads itself.
        "inbox": _spec("title body", optional="url image"),
    }
)
"""Every channel journeys may name, by name."""


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """A rendered message, addressed, ready for a provider."""

    id: str
    customer_id: str
    channel: str
    to: str
    content: Mapping[str, Any]
    template: str
    locale: str
    journey: str
    step: str
    unsubscribe_url: str | None = None
    """Where the customer unsubscribes from messages like this one (a signed link, OMNICANAL_PUBLIC_URL/u/...):
    e-mail connectors put it in `List-Unsubscribe`. None when links are off."""


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the provider said when it took the message."""

    status: str = "sent"
    provider_id: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ConnectorContext:
    """What the engine lends a connector.

    `http` is the engine's shared aiohttp session (connectors never open their own for plain HTTP APIs);
    `public_url` is the daemon's externally reachable base URL (OMNICANAL_PUBLIC_URL), for status callbacks;
    `outbound` where a URL taken from data (a customer's address) may lead (OMNICANAL_OUTBOUND_ALLOW).
    """

    redis: Redis
    keys: Keyspace
    http: aiohttp.ClientSession | None = None
    public_url: str | None = None
    outbound: OutboundPolicy = field(default_factory=OutboundPolicy)


class ConnectorSettings(BaseSettings):
    """Base of a connector's settings: a subclass sets its own `env_prefix`, e.g. OMNICANAL_TWILIO_."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)


def load_connector_settings(cls: type[Connector]) -> ConnectorSettings | None:
    """Read and check a connector's settings from the environment; a ConfigError names each bad variable."""
    model = cls.settings_model
    if model is None:
        return None
    try:
        return model()
    except ValidationError as exc:
        prefix = str(model.model_config.get("env_prefix", ""))
        problems = [f"{prefix}{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in exc.errors()]
        raise ConfigError(f"connector {cls.name!r} is not configured:\n  " + "\n  ".join(problems)) from exc


class Connector(ABC):
    """Base of every connector: one `send`, an optional `aclose`, async-context-manager support."""

    name: ClassVar[str]
    channels: ClassVar[frozenset[str]]
    """Channels this connector can serve; the empty set means any channel."""
    settings_model: ClassVar[type[ConnectorSettings] | None] = None
    """Its settings, read from the environment when the connector is routed to; None: it needs none."""
    rate_limit: ClassVar[float | None] = None
    """Default sends per second the provider allows (None: unlimited); OMNICANAL_RATE_LIMITS overrides it."""

    def __init__(self, context: ConnectorContext, settings: ConnectorSettings | None = None) -> None:
        self.context = context
        self.settings = settings

    @abstractmethod
    async def send(self, message: OutboundMessage) -> Receipt:
        """Hand the message over; raise TransientDelivery, PermanentDelivery or UnknownDelivery on failure."""

    provider: ClassVar[str | None] = None
    """The provider whose callbacks this connector's `callback_secret` verifies (e.g. "twilio")."""

    def callback_secret(self) -> str | None:
        """The secret the provider signs its callbacks with (delivery receipts, replies); None: no callbacks."""
        return None

    async def aclose(self) -> None:  # noqa: B027 - optional hook: most connectors hold nothing
        """Release what the connector holds (sessions, sockets)."""

    async def __aenter__(self) -> Connector:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def discover_connectors() -> dict[str, type[Connector]]:
    """Every connector class registered under the entry-point group; a duplicate name stops start-up."""
    found: dict[str, type[Connector]] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name in found:
            raise ConfigError(
                f"two connectors are registered as {entry.name!r} ({entry.value} and another package): "
                "uninstall one of them"
            )
        cls = entry.load()
        if not (isinstance(cls, type) and issubclass(cls, Connector)):
            raise ConfigError(f"entry point {entry.name!r} ({entry.value}) is not a Connector subclass")
        found[entry.name] = cls
    return found


class ConnectorRegistry:
    """Channel -> connector instance, built once at start."""

    def __init__(self, context: ConnectorContext, routes: Mapping[str, str] | None = None,
                 rate_limits: Mapping[str, float] | None = None) -> None:
        classes = discover_connectors()
        if FALLBACK_CONNECTOR not in classes:
            raise ConfigError("the built-in 'outbox' connector is not registered: reinstall omnicanal")
        for name in rate_limits or {}:  # a misspelt name would leave the real connector at its own rate, unsaid
            if name not in classes:
                raise ConfigError(f"OMNICANAL_RATE_LIMITS: no connector {name!r}{did_you_mean(name, classes)}; the "
                                  f"connectors are {', '.join(sorted(classes))}")
        self._instances: dict[str, Connector] = {}
        self._routes: dict[str, Connector] = {}
        for channel, name in {**BUILT_IN_ROUTES, **(routes or {})}.items():
            if name not in classes:
                raise ConfigError(f"channel {channel!r} routes to unknown connector {name!r}; known: {sorted(classes)}")
            self._routes[channel] = self._instance(classes[name], context)
        self._fallback = self._instance(classes[FALLBACK_CONNECTOR], context)

    def _instance(self, cls: type[Connector], context: ConnectorContext) -> Connector:
        if cls.name not in self._instances:
            self._instances[cls.name] = cls(context, load_connector_settings(cls))
        return self._instances[cls.name]

    def for_channel(self, channel: str) -> Connector:
        return self._routes.get(channel, self._fallback)

    def callback_secret(self, provider: str) -> str | None:
        """The secret to verify a provider's callbacks with, from a configured connector of that provider."""
        for connector in self._instances.values():
            if connector.provider == provider and (secret := connector.callback_secret()):
                return secret
        return None

    async def aclose(self) -> None:
        for connector in self._instances.values():
            await connector.aclose()
