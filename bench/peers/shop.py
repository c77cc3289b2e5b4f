"""What both peers share: settings, the customer and cart hashes, the templates, the provider call.

The abandoned-cart journey as a Python team would write it without omnicanal: a Redis hash per customer
(`peer:customer:ID`: name, locale, addresses) and one per cart journey (`peer:cart:ID`: state, token, cart,
order), the copywriting's Jinja2 templates (the same files as the engine's), and tasks with countdowns:

    cart_abandoned  -> state waiting_first, task first_wait_over in WAIT_FIRST seconds
    first_wait_over -> push cart_discount (push, sms or email), state waiting_order, task order_wait_over later
    order_placed    -> an order of an item of the cart while waiting: whatsapp order_thanks, state done
    order_wait_over -> still waiting: e-mail cart_reminder, state done
"""

from __future__ import annotations

import argparse
import json
import os
import uuid
from pathlib import Path
from typing import Any

import yaml
from jinja2 import Environment, StrictUndefined

REDIS_URL = os.environ.get("PEER_REDIS_URL", "redis://127.0.0.1:6379/15")
PROVIDER_URL = os.environ.get("PEER_PROVIDER_URL", "http://127.0.0.1:8700/msg")
WAIT_FIRST = float(os.environ.get("PEER_WAIT_FIRST", "3600"))
WAIT_ORDER = float(os.environ.get("PEER_WAIT_ORDER", "172800"))
TEMPLATES_DIR = Path(os.environ.get("PEER_TEMPLATES_DIR", Path(__file__).resolve().parents[2] / "templates"))

WAITING = ("waiting_first", "waiting_order")


def customer_key(customer_id: str) -> str:
    return f"peer:customer:{customer_id}"


def cart_key(customer_id: str) -> str:
    return f"peer:cart:{customer_id}"


def new_token() -> str:
    return uuid.uuid4().hex[:12]


def profile_fields(index: int, customer_id: str) -> dict[str, str]:
    phone = f"+3361{index % 100_000_000:08d}"
    return {"first_name": "Lea", "locale": "en", "push": f"device-{customer_id}", "whatsapp": phone, "sms": phone,
            "email": f"{customer_id}@example.com"}


def _money(value: float, locale: str = "en") -> str:
    return f"{value:.2f} €".replace(".", ",") if locale.startswith("fr") else f"€{value:.2f}"


class _Environment(Environment):
    """`event.properties.items` means the key, not dict.items: look keys up first."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, dict) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)


class Templates:
    """The template files, compiled once: {template: {locale: {channel: {field: compiled}}}}."""

    def __init__(self, directory: Path = TEMPLATES_DIR) -> None:
        env = _Environment(undefined=StrictUndefined, autoescape=False)
        env.filters["money"] = _money
        self.compiled: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
        for path in directory.glob("*.yaml"):
            document = yaml.safe_load(path.read_text(encoding="utf-8"))
            self.compiled[path.stem] = {
                locale: {channel: {name: env.from_string(value) for name, value in fields.items()
                                   if isinstance(value, str)}
                         for channel, fields in channels.items()}
                for locale, channels in document.items()
            }

    def render(self, template: str, channel: str, locale: str, scope: dict[str, Any]) -> dict[str, str] | None:
        variants = self.compiled[template].get(locale) or self.compiled[template]["en"]
        fields = variants.get(channel)
        if fields is None:
            return None
        return {name: compiled.render(**scope, locale=locale) for name, compiled in fields.items()}


def pick(templates: Templates, template: str, channels: list[str], profile: dict[str, str],
         scope: dict[str, Any]) -> tuple[str, str, dict[str, str]] | None:
    """The first channel the customer has an address on and the template a variant for, rendered."""
    locale = profile.get("locale", "en")
    for channel in channels:
        to = profile.get(channel)
        if not to:
            continue
        content = templates.render(template, channel, locale, scope)
        if content is not None:
            return channel, to, content
    return None


def message_body(customer_id: str, template: str, channel: str, to: str, content: dict[str, str]) -> bytes:
    return json.dumps({"message_id": f"{customer_id}.{template}", "customer_id": customer_id, "channel": channel,
                       "to": to, "template": template, "content": content}, ensure_ascii=False).encode()


def customer_scope(customer_id: str, profile: dict[str, str]) -> dict[str, Any]:
    return {**profile, "id": customer_id}


def bought_from_cart(order: dict[str, Any], cart: dict[str, Any]) -> bool:
    skus = {item["sku"] for item in cart["items"]}
    return any(item["sku"] in skus for item in order["items"])


def discount(cart: dict[str, Any]) -> dict[str, Any]:
    percent = 15 if cart["total"] >= 100 else 10
    return {"percent": percent, "code": f"LUMIERE{percent}"}


def cart(customer_id: str) -> dict[str, Any]:
    """The bench's abandoned cart, the same for both peers (and the engine's run)."""
    return {"cart_id": f"cart-{customer_id}", "items": [{"sku": "SKU-1", "name": "Sneakers Lumière", "price": 89.0},
            {"sku": "SKU-7", "name": "Chaussettes", "price": 12.5}], "total": 101.5}


def order(customer_id: str) -> dict[str, Any]:
    """The in-store order of the cart's first item."""
    return {"order_id": f"T-{customer_id}", "channel": "store", "store": "Lyon Part-Dieu",
            "items": [{"sku": "SKU-1", "name": "Sneakers Lumière", "price": 89.0}], "total": 89.0}


def arguments(description: str, default_port: int) -> argparse.ArgumentParser:
    """The command line both peers share (the bench drives them the same way); each adds its own options."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("command", choices=["worker", "web", "profiles", "steps", "park", "burst"])
    parser.add_argument("--port", type=int, default=default_port)
    parser.add_argument("--prefix", default="c")
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--orders-every", type=int, default=4)
    parser.add_argument("--at", type=float, default=0.0)
    return parser
