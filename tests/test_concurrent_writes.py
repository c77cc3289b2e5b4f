"""Writes from outside a customer's ordered work — profile upserts and Twilio's receipts through the API — racing
each other and three workers applying the same customer's events: none of them is lost."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

from conftest import StartApi, write_journey
from omnicanal.channels import CHANNELS
from omnicanal.policy.consent import PURPOSES
from standins import TwilioStandIn
from test_channels_end_to_end import twilio_post

PHONE = "+33612345678"
PUTS = 50
FIRST_SENDS = 5
RECEIPTS = ("accepted", "scheduled", "sent", "delivered", "read")
"""Statuses Twilio reports, each racing the others for the same message (none asks for a fallback)."""


ADDRESSES: dict[str, Any] = {"email": "c1@example.com", "push": ["device-1"], "webhook": "https://crm.example/hook",
                             "messenger": "4242"}
CONSENTS = [(channel, purpose) for channel in sorted(set(CHANNELS) - {"sms"}) for purpose in PURPOSES]
"""Each (channel, purpose) one update decides (not sms marketing, which the racing pings are sent on)."""


def _put(n: int) -> dict[str, Any]:
    """A profile update touching its own attribute and, for the first ones, an address channel and a consent
    (channel and purpose) of its own."""
    put: dict[str, Any] = {"attributes": {f"a{n}": n}}
    if n < len(ADDRESSES):
        channel = list(ADDRESSES)[n]
        put["addresses"] = {channel: ADDRESSES[channel]}
    if n < len(CONSENTS):
        channel, purpose = CONSENTS[n]
        put["consents"] = {channel: {purpose: n % 2 == 0}}
    return put


async def test_profile_updates_receipts_and_events_racing_three_workers_all_land(
    project: Path, start_api: StartApi, twilio: TwilioStandIn
) -> None:
    (project / "templates" / "ping.yaml").write_text('en:\n  sms:\n    body: "ping {{ event.properties.n }}"\n')
    write_journey(project, "ping", "id: ping\ntrigger: {event: ping}\nre_entry: always\n"
                                   "steps:\n  - send: {template: ping, channels: [sms]}\n")
    apis = [await start_api(channels={"sms": "twilio_sms"}, worker_id=f"w{n}", partitions=6, lease_seconds=2)
            for n in range(3)]
    async with asyncio.timeout(10):  # fair share: 2 partitions each once all have looked
        while sorted(len(api.runtime.ownership.owned) for api in apis) != [2, 2, 2]:
            await asyncio.sleep(0.05)
    await apis[0].put_customer("c1", {"addresses": {"sms": PHONE}})
    for n in range(FIRST_SENDS):
        await apis[n % 3].event("ping", "c1", properties={"n": n})
    entries = await apis[0].wait_until("c1", lambda es: len([e for e in es if e.get("status") == "queued"])
                                       == FIRST_SENDS, timeout=20)
    sent = {e["message_id"]: await apis[0].runtime.customers.message("c1", e["message_id"])
            for e in entries if e["kind"] == "message"}
    sids = {str(record["provider_id"]): mid for mid, record in sent.items() if record}

    spread = itertools.cycle(apis)
    puts = [next(spread).put_customer("c1", _put(n)) for n in range(PUTS)]
    receipts = [twilio_post(next(spread), "/webhooks/twilio/status", {"MessageSid": sid, "MessageStatus": status},
                            twilio.auth_token) for sid in sids for status in RECEIPTS]
    events = [next(spread).event("ping" if n % 2 else "page_viewed", "c1", properties={"n": FIRST_SENDS + n})
              for n in range(20)]
    answers = await asyncio.gather(*puts, *receipts, *events)
    assert answers[PUTS:PUTS + len(receipts)] == [204] * len(receipts)
    await apis[0].settled()

    customer = await apis[1].request("GET", "/v1/customers/c1", 200)
    assert customer["attributes"] == {f"a{n}": n for n in range(PUTS)}
    assert customer["addresses"] == {"sms": PHONE, **ADDRESSES}
    assert {(channel, purpose): decision["granted"] for channel, decisions in customer["consents"].items()
            for purpose, decision in decisions.items()} == {pair: n % 2 == 0 for n, pair in enumerate(CONSENTS)}
    messages = {e["message_id"]: e for e in await apis[2].messages("c1")}
    assert len(messages) == FIRST_SENDS + 10 and len(sids) == FIRST_SENDS
    for mid in sids.values():
        statuses = [entry["status"] for entry in messages[mid]["status_history"]]
        assert statuses[:2] == ["sending", "queued"] and sorted(statuses[2:]) == sorted(RECEIPTS), statuses
