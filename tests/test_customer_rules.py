"""The customer decides: consent, preference, caps, quiet hours and DST, digests, locales — through the API,
the journey files and `omnicanal simulate`, on real Redis."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import REDIS_URL, ROOT, StartApi, has_message, journey_ended, sent, write_journey
from omnicanal.engine.clock import ManualClock
from omnicanal.policy.caps import Cap
from omnicanal.store.keys import Keyspace
from omnicanal.store.schema import decode_messages
from omnicanal.store.sends import SendLog
from omnicanal.store.transport import open_transport

OMNICANAL = str(Path(sys.executable).with_name("omnicanal"))
EVERYWHERE = {"sms": "+33612345678", "whatsapp": "+33612345678", "email": "c@example.com", "push": ["tok-1"]}
CART = {"items": [{"sku": "SKU-1", "name": "Sneakers", "price": 89.0}], "total": 89.0}




async def test_an_opt_out_moves_the_send_to_the_next_channel(start_api: StartApi) -> None:
    api = await start_api(quiet_hours="off")
    await api.put_customer("c1", {"addresses": EVERYWHERE, "consents": {"push": False}})
    await api.event("cart_abandoned", "c1", properties=CART)
    entries = await api.wait_until("c1", has_message("cart_discount"))
    discount = next(e for e in entries if e.get("template") == "cart_discount")
    assert discount["channel"] == "sms"
    assert discount["skipped"] == [{"channel": "push", "reason": "no consent: marketing opted out (api)"}]
    profile = await api.request("GET", "/v1/customers/c1", 200)
    assert profile["consents"]["push"]["marketing"]["granted"] is False
    assert profile["consents"]["push"]["transactional"]["source"] == "api"


async def test_opt_in_channels_need_a_grant_for_marketing_only(project: Path, start_api: StartApi) -> None:
    write_journey(project, "notify", """
id: notify
trigger: {event: ping}
re_entry: always
steps:
  - send: {template: cart_discount, channels: [sms, email]}
  - send: {template: order_thanks, channels: [sms], purpose: transactional}
""")
    api = await start_api(quiet_hours="off", opt_in_channels=["sms", "email"])
    await api.put_customer("c2", {"addresses": EVERYWHERE, "consents": {"email": {"marketing": True}}})
    await api.event("ping", "c2", properties={**CART, "order_id": "A1", "channel": "web"})
    entries = await api.wait_until("c2", journey_ended("notify"))
    assert sent(entries) == [("cart_discount", "email"), ("order_thanks", "sms")]
    discount = next(e for e in entries if e.get("template") == "cart_discount")
    reason = "no consent: marketing on this channel needs an opt-in"
    assert discount["skipped"] == [{"channel": "sms", "reason": reason}]


async def test_the_customers_preference_reorders_the_steps_channels(start_api: StartApi) -> None:
    api = await start_api(quiet_hours="off")
    await api.put_customer("c3", {"addresses": EVERYWHERE, "channel_preference": ["email", "sms"]})
    await api.event("cart_abandoned", "c3", properties=CART)
    entries = await api.wait_until("c3", has_message("cart_discount"))
    assert sent(entries) == [("cart_discount", "email")]


async def test_a_channel_the_preference_names_twice_gets_the_message_once(project: Path,
                                                                         start_api: StartApi) -> None:
    """Each fallback goes to a channel not tried yet: a `channel_preference` naming e-mail twice (a PUT accepts
    it) does not send the same e-mail again an hour later, in place of the SMS."""
    write_journey(project, "twice", """
id: twice
trigger: {event: promo}
steps:
  - send: {template: welcome_offer, channels: [sms, email], fallback_after: 1h}
  - wait: 6h
""")
    api = await start_api(quiet_hours="off")
    await api.put_customer("dup", {"addresses": EVERYWHERE, "channel_preference": ["email", "sms", "email"]})
    await api.event("promo", "dup")
    entries = await api.wait_until("dup", journey_ended("twice"))
    assert sent(entries) == [("welcome_offer", "email"), ("welcome_offer", "sms")]


async def test_frequency_caps_hold_across_journeys_and_spare_transactional(project: Path,
                                                                          start_api: StartApi) -> None:
    write_journey(project, "promo", """
id: promo
trigger: {event: promo}
re_entry: always
steps:
  - send: {template: welcome_offer, channels: [email, sms]}
""")
    write_journey(project, "receipt", """
id: receipt
trigger: {event: receipt}
re_entry: always
steps:
  - send: {template: order_thanks, channels: [email], purpose: transactional}
""")
    api = await start_api(quiet_hours="off", frequency_caps="2/1d,channel:1/4h")
    await api.put_customer("c4", {"addresses": EVERYWHERE})
    for n in range(4):
        await api.event("promo", "c4", properties={"n": n})
    await api.event("receipt", "c4", properties={**CART, "order_id": "R1", "channel": "web"})
    await api.settled()
    entries = await api.timeline("c4")
    assert sent(entries) == [("welcome_offer", "email"), ("welcome_offer", "sms"), ("order_thanks", "email")]
    capped = [e for e in entries if e["kind"] == "message" and e["status"] == "suppressed"]
    assert len(capped) == 2
    assert capped[0]["skipped"] == [{"channel": "email", "reason": "frequency cap 2/24h"},
                                    {"channel": "sms", "reason": "frequency cap 2/24h"}]


async def test_a_journey_cap_counts_its_sends_over_its_whole_period_whatever_other_journeys_cap(
        project: Path, start_api: StartApi) -> None:
    """`caps: [1/7d]` holds for seven days even when another journey with a shorter cap sends meanwhile: the sends
    record is shared, and the other journey's check used to drop what was older than its own (1h) period."""
    write_journey(project, "weekly", """
id: weekly
trigger: {event: weekly}
re_entry: always
caps: [1/7d]
steps:
  - send: {template: welcome_offer, channels: [email]}
""")
    write_journey(project, "hourly", """
id: hourly
trigger: {event: hourly}
re_entry: always
caps: [1/1h]
steps:
  - send: {template: welcome_offer, channels: [sms]}
""")
    clock = ManualClock(time.time())
    api = await start_api(clock=clock, quiet_hours="off")
    await api.put_customer("c7", {"addresses": EVERYWHERE})
    await api.event("weekly", "c7", properties={"n": 1})
    await api.settled()
    clock.advance_to(clock.now() + 2 * 86400)
    await api.event("hourly", "c7", properties={"n": 1})
    await api.settled()
    clock.advance_to(clock.now() + 86400)
    await api.event("weekly", "c7", properties={"n": 2})
    await api.settled()
    entries = await api.timeline("c7")
    assert sent(entries) == [("welcome_offer", "email"), ("welcome_offer", "sms")]
    capped = [e for e in entries if e["kind"] == "message" and e["status"] == "suppressed"]
    assert [e["skipped"] for e in capped] == [[{"channel": "email", "reason": "frequency cap journey:1/1w"}]]


async def test_the_cap_is_atomic_under_concurrent_senders() -> None:
    """Twenty senders on twenty connections race for a cap of 3: exactly 3 win."""
    keys = Keyspace("captest", 4)
    transports = [open_transport(REDIS_URL) for _ in range(20)]
    client = transports[0].client

    def record(at: float) -> dict[str, Any]:
        return {"status": "sending", "history": [{"status": "sending", "at": at}], "journey": "j"}

    try:
        racer = keys.customer("racer")
        await client.delete(racer.sends, racer.messages)
        caps = (Cap(3, 86400.0), Cap(2, 3600.0, "channel"))
        results = await asyncio.gather(*(
            SendLog(transport, keys).claim("racer", f"m{n}", record(1000.0 + n / 100), ("sms", "email")[n % 2], "j",
                                           1000.0 + n / 100, caps)
            for n, transport in enumerate(transports)
        ))
        admitted = [n for n, claim in enumerate(results) if claim.cap is None and claim.previous is None]
        assert len(admitted) == 3
        assert await client.zcard(racer.sends) == 3
        records = decode_messages(await client.hgetall(racer.messages))
        assert sorted(r["status"] for r in records.values()) == ["capped"] * 17 + ["sending"] * 3
        again = await SendLog(transports[0], keys).claim("racer", f"m{admitted[0]}", record(1001.0), "sms", "j",
                                                         1001.0, caps)
        assert again.previous == record(1000.0 + admitted[0] / 100)  # claimed once: a replay never sends again
    finally:
        await client.delete(racer.sends, racer.messages)
        for transport in transports:
            await transport.aclose()


def simulate(journey: str, scenario: dict[str, Any], tmp_path: Path, project: Path = ROOT,
             *env_pairs: tuple[str, str]) -> list[dict[str, Any]]:
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(scenario, allow_unicode=True), encoding="utf-8")
    env = {"PATH": "/usr/bin:/bin", "OMNICANAL_JOURNEYS_DIR": str(project / "journeys"),
           "OMNICANAL_TEMPLATES_DIR": str(project / "templates"), **dict(env_pairs)}
    result = subprocess.run([OMNICANAL, "simulate", journey, "--scenario", str(path), "--json"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout))


def at(entry: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(entry["at"].replace("Z", "+00:00"))


@pytest.mark.slow  # runs `omnicanal simulate` as a process
def test_quiet_hours_hold_marketing_across_a_dst_change(project: Path, tmp_path: Path) -> None:
    write_journey(project, "late", """
id: late
trigger: {event: ping}
steps:
  - wait: {until: "23:30"}
  - send: {template: welcome_offer, channels: [email]}
  - wait: {until: "02:30"}
  - send: {template: order_thanks, channels: [email], purpose: transactional}
""")
    scenario = {"start": "2027-03-27T12:00:00Z",  # Paris goes from +01:00 to +02:00 at 02:00 on the 28th
                "customer": {"addresses": {"email": "p@example.com"}, "timezone": "Europe/Paris", "locale": "fr"},
                "events": [{"at": "0s", "name": "ping",
                            "properties": {"order_id": "Z1", "channel": "web", "items": [], "total": 0}}],
                "until": "2d"}
    entries = simulate("late", scenario, tmp_path, project)
    offer = next(e for e in entries if e.get("template") == "welcome_offer" and e["status"] == "sent")
    held = next(e for e in entries if e.get("template") == "welcome_offer" and e["status"] == "held")
    assert at(held) == datetime(2027, 3, 27, 22, 30, tzinfo=UTC)    # 23:30 CET, inside quiet hours
    assert at(offer) == datetime(2027, 3, 28, 6, 0, tzinfo=UTC)     # 08:00 CEST, the first minute allowed
    thanks = next(e for e in entries if e.get("template") == "order_thanks")
    assert at(thanks) == datetime(2027, 3, 29, 0, 30, tzinfo=UTC)   # 02:30 CEST next night (none on the 28th)
    assert thanks["status"] == "sent"  # transactional: quiet hours do not apply


@pytest.mark.slow  # runs `omnicanal simulate` as a process
def test_a_channel_without_quiet_hours_goes_at_once(project: Path, tmp_path: Path) -> None:
    write_journey(project, "night", """
id: night
trigger: {event: ping}
steps:
  - send: {template: welcome_offer, channels: [sms, email]}
""")
    scenario = {"start": "2027-01-15T23:00:00Z",
                "customer": {"addresses": {"email": "n@example.com", "sms": "+33600000009"}, "timezone": "UTC"},
                "events": [{"at": "0s", "name": "ping"}], "until": "1d"}
    entries = simulate("night", scenario, tmp_path, project, ("OMNICANAL_QUIET_HOURS_BY_CHANNEL", "email=off"))
    [message] = [e for e in entries if e["kind"] == "message"]
    assert (message["channel"], message["status"]) == ("email", "sent")
    assert message["skipped"] == [{"channel": "sms", "reason": "quiet hours"}]


@pytest.mark.slow  # runs `omnicanal simulate` as a process
def test_a_digest_sends_one_message_listing_the_days_items(tmp_path: Path) -> None:
    scenario = {"customer": {"attributes": {"first_name": "Léa"}, "addresses": {"email": "l@example.com"},
                             "locale": "fr-CA", "timezone": "Europe/Paris"},
                "events": [{"at": at, "name": "product_viewed", "properties": properties} for at, properties in [
                    ("0s", {"name": "Robe", "price": 120, "sale_price": 90}),
                    ("1h", {"name": "Sac", "price": 200}),
                    ("2h", {"name": "Foulard", "price": 40, "sale_price": 30}),
                    ("3h", {"name": "Ceinture", "price": 50, "sale_price": 35}),
                ]], "until": "1d"}
    entries = simulate("browse_digest", scenario, tmp_path)
    [digest] = [e for e in entries if e["kind"] == "message"]
    assert digest["locale"] == "fr"  # fr-CA falls back to fr
    assert digest["content"]["subject"] == "3 articles que vous avez regardés sont en promotion"
    assert "Robe" in digest["content"]["text"] and "Foulard" in digest["content"]["text"]
    assert "Sac" not in digest["content"]["text"]
    assert at(digest) == datetime(2027, 1, 15, 17, 0, tzinfo=UTC)  # 18:00 in Paris
