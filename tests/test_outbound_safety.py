"""No SSRF through a customer's profile: a `webhook` address taken from data reaches public addresses only, or the
hosts and networks OMNICANAL_OUTBOUND_ALLOW lists — through the HTTP API, real Redis and the engine running."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from conftest import StartApi, journey_ended, write_journey
from omnicanal.config import load_settings
from omnicanal.errors import ConfigError
from omnicanal.outbound import OutboundPolicy, parse_allowed
from standins import WebhookReceiver

JOURNEY = """
id: call_back
trigger: {event: call_requested}
re_entry: always
steps:
  - send: {template: call_back, channel: webhook}
"""
TEMPLATE = """
en:
  webhook:
    payload: {kind: call_back, customer: "{{ customer.first_name }}"}
"""


@pytest.fixture
async def receiver(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver() as standin:
        monkeypatch.setenv("OMNICANAL_WEBHOOK_SECRET", standin.secret)
        yield standin


async def _webhook_to(project: Path, start_api: StartApi, address: str, **settings: object) -> dict[str, object]:
    """The message the journey sends to a customer whose `webhook` address is `address`."""
    write_journey(project, "call_back", JOURNEY)
    (project / "templates" / "call_back.yaml").write_text(TEMPLATE, encoding="utf-8")
    api = await start_api(channels={"webhook": "webhook"}, **settings)
    await api.put_customer("c1", {"attributes": {"first_name": "Léa"}, "addresses": {"webhook": address}})
    await api.event("call_requested", "c1")
    entries = await api.wait_until("c1", journey_ended("call_back"))
    [message] = [entry for entry in entries if entry["kind"] == "message"]
    return message


@pytest.mark.parametrize("address", ["http://169.254.169.254/latest/meta-data/", "http://10.20.30.40:8080/hook",
                                     "http://[::1]/hook", "http://[64:ff9b::7f00:1]:8080/hook"])
async def test_a_webhook_to_a_private_or_metadata_address_fails_before_any_connection(
        project: Path, start_api: StartApi, receiver: WebhookReceiver, address: str) -> None:
    message = await _webhook_to(project, start_api, address)
    assert message["status"] == "failed"
    [skipped] = message["skipped"]
    assert "non-public address" in skipped["reason"] and "OMNICANAL_OUTBOUND_ALLOW" in skipped["reason"]
    assert receiver.received == []


@pytest.mark.parametrize("address", ["http://[::1/hook", "http://hooks.example:port/hook"])
async def test_a_webhook_address_that_is_no_url_fails_the_message_saying_so(
        project: Path, start_api: StartApi, receiver: WebhookReceiver, address: str) -> None:
    message = await _webhook_to(project, start_api, address)
    assert message["status"] == "failed"
    assert "is not a valid URL" in str(message["skipped"])
    assert receiver.received == []


async def test_loopback_is_refused_unless_allowed_and_then_reached(
        project: Path, start_api: StartApi, receiver: WebhookReceiver) -> None:
    refused = await _webhook_to(project, start_api, f"{receiver.url}/hooks/crm")
    assert refused["status"] == "failed" and "127.0.0.1" in str(refused["skipped"])
    assert receiver.received == []  # no connection was attempted


async def test_an_allowed_loopback_receiver_gets_the_webhook(
        project: Path, start_api: StartApi, receiver: WebhookReceiver) -> None:
    message = await _webhook_to(project, start_api, f"{receiver.url}/hooks/crm", outbound_allow=["127.0.0.1/32"])
    assert message["status"] == "sent"
    [request] = receiver.received
    assert request.path == "/hooks/crm" and request.json["content"]["payload"]["customer"] == "Léa"
    assert request.headers["Host"] == receiver.url.removeprefix("http://")
    assert receiver.verified == [True]


def test_the_allow_list_takes_hosts_and_networks_and_names_a_bad_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    hosts, networks = parse_allowed(["hooks.internal", "10.0.0.0/8", "127.0.0.1"])
    assert hosts == {"hooks.internal"} and [str(n) for n in networks] == ["10.0.0.0/8", "127.0.0.1/32"]
    monkeypatch.setenv("OMNICANAL_OUTBOUND_ALLOW", "hooks.internal, 10.0.0.0/33")
    with pytest.raises(ConfigError, match=r"OMNICANAL_OUTBOUND_ALLOW.*10\.0\.0\.0/33"):
        load_settings()


async def test_the_policy_checks_every_address_a_name_resolves_to() -> None:
    strict, allowed = OutboundPolicy(), OutboundPolicy.of(["localhost"])
    assert "non-public" in getattr(await strict.address_of("localhost", 80), "reason", "")
    assert await allowed.address_of("localhost", 80) in ("127.0.0.1", "::1")
    assert await strict.address_of("localhost", 80, vouched=True) in ("127.0.0.1", "::1")
    assert await strict.address_of("8.8.8.8", 53) == "8.8.8.8"  # public, written as an address: no look-up


@pytest.mark.parametrize("address", [
    "::127.0.0.1",                             # IPv4-compatible
    "::ffff:0:7f00:1",                         # IPv4-translated
    "64:ff9b::a9fe:a9fe",                      # NAT64 to the metadata service
    "64:ff9b:1::a00:1",                        # NAT64, local-use prefix
    "2002:7f00:1::1",                          # 6to4 of 127.0.0.1
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",    # Teredo
    "fec0::1",                                 # site-local
])
async def test_an_ipv6_address_carrying_a_private_ipv4_one_is_refused(address: str) -> None:
    """Python's `is_global` judges these forms by their IPv6 prefix; the packets may still reach the IPv4 address
    inside (a NAT64 gateway, a 6to4 relay) or a site's own network."""
    blocked = await OutboundPolicy().address_of(address, 80)
    assert "non-public" in getattr(blocked, "reason", "")


@pytest.mark.parametrize("address", ["64:ff9b::808:808", "2002:808:808::1", "2606:4700:4700::1111"])
async def test_an_ipv6_address_carrying_a_public_ipv4_one_is_public(address: str) -> None:
    assert await OutboundPolicy().address_of(address, 80) == address
