"""`omnicanal demo`: the reference scenario, end to end, on the embedded store, in seconds.

It starts the real engine and HTTP API in this process (time compressed by the clock speed), plays two
shoppers through the HTTP API exactly as a shop's systems would, and prints each one's conversation:

- Léa abandons her cart, gets a discount push, checks the stock online and buys in a store: the till's event
  brings a WhatsApp thank-you with the details of her purchase.
- Tom abandons his cart and does not come back: after 48 hours of journey time he gets one e-mail reminder.

It plays the configured journeys and templates when both directories exist (a checkout, a project made by
`omnicanal init`), and otherwise the reference project shipped inside the package, so it runs in any folder.
"""

from __future__ import annotations

import asyncio
from typing import Any, TextIO

import aiohttp
from aiohttp import web

from omnicanal.api.app import create_app
from omnicanal.client import request_json
from omnicanal.config import Settings
from omnicanal.engine.runtime import Runtime
from omnicanal.errors import ConfigError
from omnicanal.starter import reference_project
from omnicanal.timeline_text import format_timeline

CART: dict[str, Any] = {
    "cart_id": "cart-981",
    "items": [
        {"sku": "SKU-1", "name": "Sneakers Lumière", "price": 89.0},
        {"sku": "SKU-7", "name": "Chaussettes en lin", "price": 12.0},
    ],
    "total": 101.0,
}
SHOPPERS: list[dict[str, Any]] = [
    {
        "id": "lea",
        "profile": {
            "attributes": {"first_name": "Léa", "tier": "gold"},
            "addresses": {"sms": "+33612345678", "whatsapp": "+33612345678", "email": "lea@example.com",
                          "push": ["device-token-1"]},
            "locale": "fr", "timezone": "Europe/Paris", "channel_preference": ["push", "whatsapp"],
        },
    },
    {
        "id": "tom",
        "profile": {
            "attributes": {"first_name": "Tom"},
            "addresses": {"email": "tom@example.com"},
            "locale": "en", "timezone": "Europe/London",
        },
    },
]


DEMO_JOURNEY = "abandoned_cart"


def demo_project(settings: Settings) -> tuple[Settings, str]:
    """The configured journeys and templates when both directories exist, else the reference project shipped
    with omnicanal; with a line saying which."""
    if settings.journeys_dir.is_dir() and settings.templates_dir.is_dir():
        return settings, f"project: {settings.journeys_dir} and {settings.templates_dir}"
    root = reference_project()
    shipped = settings.model_copy(update={"journeys_dir": root / "journeys", "templates_dir": root / "templates"})
    return shipped, (f"project: the reference project shipped with omnicanal, in {root} "
                     f"({settings.journeys_dir} and {settings.templates_dir} are not here)")


class _Api:
    """The demo speaks to the daemon's API like any client would."""

    def __init__(self, base: str, http: aiohttp.ClientSession) -> None:
        self._base = base
        self._http = http

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = await request_json(method, self._base + path, body, session=self._http)
        if status >= 400:
            raise RuntimeError(f"{method} {path} → {status}: {answer}")
        return answer

    async def until_message(self, customer_id: str, template: str, timeout: float = 30.0) -> None:
        """Poll the timeline until a message of that template shows up."""
        async with asyncio.timeout(timeout):
            while True:
                timeline = await self.call("GET", f"/v1/customers/{customer_id}/timeline")
                if any(e.get("template") == template and e["status"] == "sent" for e in timeline["entries"]):
                    return
                await asyncio.sleep(0.05)


async def run_demo(settings: Settings, out: TextIO) -> None:
    settings, project = demo_project(settings)
    runtime = await Runtime.start(settings)
    if DEMO_JOURNEY not in runtime.registry.current:
        await runtime.stop()
        raise ConfigError(f"the demo plays the {DEMO_JOURNEY} journey, which {settings.journeys_dir} does not "
                          f"have: run it from another folder, or set OMNICANAL_JOURNEYS_DIR")
    runner = web.AppRunner(create_app(runtime), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port, *_ = runner.addresses[0]
    out.write(f"omnicanal demo — embedded store, API on http://{host}:{port}, "
              f"1 real second = {settings.clock_speed / 3600:g} journey hours\n{project}\n\n")
    try:
        async with aiohttp.ClientSession() as http:
            api = _Api(f"http://{host}:{port}", http)
            for shopper in SHOPPERS:
                await api.call("PUT", f"/v1/customers/{shopper['id']}", shopper["profile"])
                await api.call("POST", "/v1/events", {
                    "name": "cart_abandoned", "customer_id": shopper["id"],
                    "idempotency_key": f"{CART['cart_id']}-{shopper['id']}", "properties": CART,
                })
            await api.until_message("lea", "cart_discount")
            await api.call("POST", "/v1/events", {
                "name": "order_placed", "customer_id": "lea",
                "properties": {"order_id": "T-5521", "channel": "store", "store": "Lyon Part-Dieu",
                               "items": CART["items"][:1], "total": 89.0},
            })
            await api.until_message("lea", "order_thanks")
            await api.until_message("tom", "cart_reminder")
            for shopper in SHOPPERS:
                timeline = await api.call("GET", f"/v1/customers/{shopper['id']}/timeline")
                out.write(format_timeline(timeline) + "\n")
            journey = await api.call("GET", "/v1/journeys/abandoned_cart")
            counts = ", ".join(f"{k} {v}" for k, v in journey["counts"].items())
            out.write(f"abandoned_cart: {counts}\n")
    finally:
        await runner.cleanup()
        await runtime.stop()
