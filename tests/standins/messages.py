"""What a connector test hands a connector: a context like the engine's, and messages."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import aiohttp

from omnicanal.channels import ConnectorContext, OutboundMessage
from omnicanal.outbound import OutboundPolicy
from omnicanal.store.connection import open_redis
from omnicanal.store.keys import Keyspace

_serial = itertools.count(1)


LOOPBACK = OutboundPolicy.of(["127.0.0.1"])
"""The stand-ins listen on loopback, which a URL taken from data may only reach when allowed so, as here."""


def connector_context(http: aiohttp.ClientSession | None = None, public_url: str | None = None,
                      outbound: OutboundPolicy = LOOPBACK) -> ConnectorContext:
    """A context on the embedded store (connectors that send never touch it)."""
    return ConnectorContext(redis=open_redis(None), keys=Keyspace("test", 1), http=http, public_url=public_url,
                            outbound=outbound)


def outbound(channel: str, to: str, content: Mapping[str, Any], **fields: str) -> OutboundMessage:
    """A rendered message for `channel`, addressed to `to`; other fields get plausible values."""
    values = {"id": f"msg-{next(_serial)}", "customer_id": "c42", "template": "cart_discount", "locale": "fr",
              "journey": "abandoned_cart", "step": "nudge", **fields}
    return OutboundMessage(channel=channel, to=to, content=content, **values)
