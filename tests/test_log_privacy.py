"""The daemon's log lines, all of them JSON, hold no customer's e-mail address or phone number (nor push token or
message body) unless OMNICANAL_LOG_PII says so."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import HANDED_OVER, write_journey
from standins import TwilioStandIn
from test_daemon import Daemon, StartDaemon, start_daemon

pytestmark = pytest.mark.slow  # `omnicanal serve` as a real process, its log read from its stderr

__all__ = ["start_daemon"]  # the fixture, used here

TOM = {"attributes": {"first_name": "Tom"}, "locale": "fr",
       "addresses": {"sms": "06 12 34 56 78", "email": "tom.martin@example.com"}}
LEA = {"attributes": {"first_name": "Léa"}, "locale": "fr",
       "addresses": {"push": ["device-token-lea"], "whatsapp": "+33698765432", "email": "lea.dupont@example.com"}}
SECRETS = ("+33612345678", "06 12 34 56 78", "612345678", "tom.martin@example.com", "+33698765432", "698765432",
           "lea.dupont@example.com", "device-token-lea", "jane.doe@example.com")
CART = {"items": [{"sku": "SKU-1", "name": "Sneakers Lumière", "price": 89.0}], "total": 89.0}
RECEIPT = """
id: receipt
trigger: {event: receipt_printed}
steps:
  - update: {vars: {total: "event.properties.total | money"}}
"""
"""A journey beside the reference one: a till that sends the customer's e-mail as the total makes its `money` fail
with `could not convert string to float: 'jane.doe@example.com'`."""


async def wait_until(daemon: Daemon, customer_id: str, predicate: Callable[[dict[str, Any]], bool]) -> None:
    """Until an entry of the customer's timeline matches."""
    async with asyncio.timeout(30):
        while not any(map(predicate, (await daemon.call("GET", f"/v1/customers/{customer_id}/timeline"))[1]
                          .get("entries", []))):
            await asyncio.sleep(0.1)


async def wait_for(daemon: Daemon, customer_id: str, template: str) -> None:
    await wait_until(daemon, customer_id, lambda e: e.get("template") == template and e["status"] in HANDED_OVER)


def lines_of(log: str) -> list[dict[str, Any]]:
    """Every line of the log as JSON (a line that is not fails the test)."""
    return [json.loads(line) for line in log.splitlines() if line.strip()]


async def malformed_request(port: int) -> None:
    """A request aiohttp cannot parse (a header line without a colon): aiohttp logs it with its traceback."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                 b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Contact jane.doe@example.com\r\n\r\n")
    await writer.drain()
    await reader.read()
    writer.close()


async def test_the_reference_journey_logs_no_customer_address(
        project: Path, start_daemon: StartDaemon, twilio: TwilioStandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    write_journey(project, "receipt", RECEIPT)
    monkeypatch.setenv("OMNICANAL_CHANNELS", "sms=twilio_sms,whatsapp=twilio_whatsapp")
    twilio.fail_next(status=400, code=21211, message="The 'To' number +33612345678 is not a valid phone number.")
    daemon = await start_daemon(72000.0)  # Tom's 48 h last 2.4 s: time enough for Léa's order to beat hers
    for customer_id, profile in (("tom", TOM), ("lea", LEA)):
        assert (await daemon.call("PUT", f"/v1/customers/{customer_id}", profile))[0] == 200
        assert (await daemon.call("POST", "/v1/events", {"name": "cart_abandoned", "customer_id": customer_id,
                                                         "properties": CART}))[0] == 202
    await wait_for(daemon, "lea", "cart_discount")
    order = {**CART, "order_id": "T-5521", "channel": "store", "store": "Lyon Part-Dieu"}
    for name, properties in (("order_placed", order), ("receipt_printed", {"total": "jane.doe@example.com"})):
        assert (await daemon.call("POST", "/v1/events", {"name": name, "customer_id": "lea",
                                                         "properties": properties}))[0] == 202
    await wait_for(daemon, "lea", "order_thanks")
    await wait_until(daemon, "lea", lambda e: e["kind"] == "error")
    await wait_for(daemon, "tom", "cart_reminder")  # tom's SMS was refused: e-mail, then the reminder
    assert (await daemon.call("GET", "/v1/customers/email:lea.dupont@example.com"))[0] == 200
    assert (await daemon.call("GET", "/v1/customers/lea/export"))[0] == 200
    assert (await daemon.call("DELETE", "/v1/customers/email:tom.martin@example.com"))[0] == 200
    await malformed_request(daemon.port)
    code, log = daemon.stop()
    assert code == 0

    lines = lines_of(log)  # JSON, tracebacks included
    leaked = [line for line in log.splitlines() if any(secret in line for secret in SECRETS)]
    assert leaked == []
    failed = [line for line in lines if line["event"] == "send_failed"]
    assert failed and "[phone]" in failed[0]["error"], failed  # the provider's error was logged, masked
    errors = [line for line in lines if line["event"] == "journey_error"]
    assert any("could not convert string to float: '[email]'" in line["error"] for line in errors), errors
    [erased] = [line for line in lines if line["event"] == "customer_erased"]
    assert erased["customer_id"] == "tom" and erased["identities"] == 1  # his e-mail: Twilio refused the number
    [aiohttp] = [line for line in lines if line["event"].startswith("Error handling request")]
    assert aiohttp["exception"][0]["exc_type"] and aiohttp["level"] == "error"


async def test_log_pii_shows_them_for_debugging(
        project: Path, start_daemon: StartDaemon, twilio: TwilioStandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNICANAL_CHANNELS", "sms=twilio_sms")
    monkeypatch.setenv("OMNICANAL_LOG_PII", "true")
    twilio.fail_next(status=400, code=21211, message="The 'To' number +33612345678 is not a valid phone number.")
    daemon = await start_daemon(36000.0)
    assert (await daemon.call("PUT", "/v1/customers/tom", TOM))[0] == 200
    assert (await daemon.call("POST", "/v1/events", {"name": "cart_abandoned", "customer_id": "tom",
                                                     "properties": CART}))[0] == 202
    await wait_for(daemon, "tom", "cart_discount")
    code, log = daemon.stop()
    assert code == 0
    [failed] = [line for line in lines_of(log) if line["event"] == "send_failed"]
    assert "+33612345678" in failed["error"]
