"""A worker that dies after the provider took a message but before the customer's commit: the work is applied
again (the next owner takes the pending entries), the message's claim says it went, and nothing is sent again —
even when the channel rules answer differently at the replay than they did before the crash.

The death is simulated in-process, as in test_faults.py's crash windows: the batch's writes (the commits) raise
instead of being sent, and the worker takes its pending entries again a second later, which is what the next
owner does after a SIGKILL. The journey clock is manual, so the replay falls exactly where the test says.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import Api, StartApi, write_journey
from faults_support import die_at_next_commit
from omnicanal.engine.clock import ManualClock

NIGHTLY = """
id: nightly
trigger: {event: go}
steps:
  - send: {template: welcome_offer, channels: [sms, email]}
  - wait: 1d
"""
EVENING = datetime(2027, 1, 15, 20, 59, tzinfo=UTC).timestamp()  # a minute before the quiet hours


async def killed_after_sending(project: Path, start_api: StartApi, monkeypatch: pytest.MonkeyPatch,
                               clock: ManualClock, customer_id: str, journey: str = NIGHTLY,
                               attributes: dict[str, object] | None = None) -> Api:
    """The daemon, on `clock`, with quiet hours from 21:00; `customer_id` (reachable by SMS and e-mail, with
    `attributes`) enters `journey` (triggered by `go`), and the worker dies after its first message went, before
    the commit. Returns once it died."""
    write_journey(project, journey.split("\n", 2)[1].removeprefix("id: "), journey)
    api = await start_api(clock=clock, quiet_hours="21:00-08:00")
    await api.put_customer(customer_id, {"addresses": {"sms": "+33612345678", "email": f"{customer_id}@example.com"},
                                         "attributes": attributes or {}})
    await api.settled()
    killed = die_at_next_commit(monkeypatch, api, sent=False)
    await api.event("go", customer_id)
    async with asyncio.timeout(10):
        while not killed:
            await asyncio.sleep(0.01)
    return api


async def outbox(api: Api, customer_id: str) -> list[str]:
    """The channel of every message the provider (the outbox connector) took for the customer."""
    page = await api.request("GET", f"/v1/outbox?customer_id={customer_id}", 200)
    return [message["channel"] for message in page["messages"]]


async def test_a_replay_that_falls_in_quiet_hours_sends_nothing_again(
    project: Path, start_api: StartApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = ManualClock(EVENING)
    api = await killed_after_sending(project, start_api, monkeypatch, clock, "n1")
    clock.advance_to(EVENING + 120)  # the replay comes at 21:01
    entries = await api.wait_until("n1", lambda es: any(e["kind"] == "message" for e in es))
    await api.settled()
    assert [(m.get("channel"), m["status"]) for m in entries if m["kind"] == "message"] == [("sms", "unknown")]
    assert (await api.runtime.customers.snapshot("n1", [])).claimed == frozenset()  # settled by the commit
    clock.advance_to(EVENING + 2 * 86400)  # past the morning (a held message would go at 08:00) and the wait
    await api.wait_until("n1", lambda es: any(e["kind"] == "journey" and e["status"] == "completed" for e in es))
    assert await outbox(api, "n1") == ["sms"]  # before: ["sms", "sms"], the second at 08:00


async def test_a_replay_after_the_consent_was_withdrawn_sends_on_no_other_channel(
    project: Path, start_api: StartApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A consent change is written at once (an atomic script, not queued behind the customer's work): the replay
    reads the new one. The SMS went before the crash; the e-mail must not go in its place."""
    api = await killed_after_sending(project, start_api, monkeypatch, ManualClock(EVENING - 3600), "n2")  # 19:59
    await api.put_customer("n2", {"consents": {"sms": {"marketing": False}}})
    entries = await api.wait_until("n2", lambda es: any(e["kind"] == "message" for e in es))
    await api.settled()
    assert [(m.get("channel"), m["status"]) for m in entries if m["kind"] == "message"] == [("sms", "unknown")]
    assert await outbox(api, "n2") == ["sms"]  # before: ["sms", "email"]


BRANCHING = """
id: branching
trigger: {event: go}
steps:
  - branch:
      - {when: "customer.vip", goto: vip}
      - {else: regular}
  - id: vip
    send: {template: welcome_offer, channels: [sms]}
  - exit: {reason: vip}
  - id: regular
    update: {vars: {regular: "true"}}
  - id: welcome
    send: {template: welcome_offer, channels: [sms]}
"""


async def test_a_replay_that_takes_another_branch_sends_no_second_message(
    project: Path, start_api: StartApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A profile change is written at once too: the replay's `branch` reads the new attribute and takes the other
    path. The offer went before the crash; the other path's message must not follow it."""
    api = await killed_after_sending(project, start_api, monkeypatch, ManualClock(EVENING - 3600), "n3",
                                     BRANCHING, {"vip": True})
    await api.put_customer("n3", {"attributes": {"vip": False}})
    entries = await api.wait_until("n3", lambda es: any(e["kind"] == "journey" and e["status"] == "completed"
                                                        for e in es))
    await api.settled()
    messages = [m for m in entries if m["kind"] == "message"]
    assert [(m["step"], m["status"]) for m in messages] == [("welcome", "suppressed")]
    assert messages[0]["skipped"][0]["reason"].startswith("replayed on another path: ")  # names the message sent
    assert await outbox(api, "n3") == ["sms"]  # before: ["sms", "sms"], the VIP's offer and then the other path's
    assert (await api.runtime.customers.snapshot("n3", [])).claimed == frozenset()  # settled by the commit
