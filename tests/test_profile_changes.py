"""`PUT /v1/customers/{id}` that changes attributes appends `customer.updated` (#17.1, the API's half): journeys
triggered by a change start once per change, and a PUT that changes nothing starts nothing."""

from __future__ import annotations

from pathlib import Path

from conftest import StartApi, journey_ended, write_journey

GOLD_WELCOME = """\
id: gold_welcome
trigger: {event: customer.updated, where: "event.properties.changes.tier.to == 'gold'"}
re_entry: always
steps:
  - send: {template: welcome, channels: [email]}
"""


def _started(entries: list[dict[str, object]]) -> int:
    return sum(1 for e in entries if e["kind"] == "journey" and e["journey"] == "gold_welcome"
               and e["status"] == "started")


async def test_a_put_that_makes_a_customer_gold_starts_one_journey_and_the_same_put_again_none(
        project: Path, start_api: StartApi) -> None:
    write_journey(project, "gold_welcome", GOLD_WELCOME)
    api = await start_api()
    await api.put_customer("c1", {"attributes": {"tier": "silver", "first_name": "Léa"},
                                  "addresses": {"email": "lea@example.com"}})
    await api.put_customer("c1", {"attributes": {"tier": "gold"}})
    entries = await api.wait_until("c1", journey_ended("gold_welcome"))
    updates = [e for e in entries if e["kind"] == "event" and e["name"] == "customer.updated"]
    assert [u["properties"] for u in updates] == [
        {"changes": {"tier": {"from": None, "to": "silver"}, "first_name": {"from": None, "to": "Léa"}},
         "source": "api"},
        {"changes": {"tier": {"from": "silver", "to": "gold"}}, "source": "api"}]
    await api.put_customer("c1", {"attributes": {"tier": "gold", "first_name": "Léa"}})
    await api.settled()
    entries = await api.timeline("c1")
    assert _started(entries) == 1
    assert sum(1 for e in entries if e["kind"] == "event" and e["name"] == "customer.updated") == 2


async def test_a_removed_attribute_is_a_change_to_null(project: Path, start_api: StartApi) -> None:
    write_journey(project, "gold_welcome", GOLD_WELCOME)
    api = await start_api()
    await api.put_customer("c1", {"attributes": {"tier": "gold"}})
    await api.put_customer("c1", {"attributes": {"tier": None}})
    entries = await api.wait_until("c1", lambda es: sum(e["kind"] == "event" for e in es) == 2)
    changes = [e["properties"]["changes"] for e in entries if e["kind"] == "event"]
    assert changes == [{"tier": {"from": None, "to": "gold"}}, {"tier": {"from": "gold", "to": None}}]


async def test_no_event_when_no_journey_listens_to_customer_updated(start_api: StartApi) -> None:
    api = await start_api()
    await api.put_customer("c1", {"attributes": {"tier": "gold"}})
    await api.put_customer("c1", {"attributes": {"tier": "platinum"}})
    await api.settled()
    assert await api.timeline("c1") == []  # an appended event would be on the timeline once applied


WATCH_V1 = """\
id: gold_watch
trigger: {event: joined_club}
steps:
  - wait_for: {event: customer.updated, where: "event.properties.changes.tier.to == 'gold'", timeout: 30d}
  - send: {template: welcome, channels: [email]}
"""
WATCH_V2 = """\
id: gold_watch
trigger: {event: joined_club}
steps:
  - send: {template: welcome, channels: [email]}
"""


def journey_started(entries: list[dict[str, object]]) -> bool:
    return any(e["kind"] == "journey" and e["status"] == "started" for e in entries)


def _gold_watch_sent(entries: list[dict[str, object]]) -> bool:
    return any(e["kind"] == "message" and e["journey"] == "gold_watch" for e in entries)


async def test_an_instance_of_a_replaced_version_still_hears_the_change_it_waits_for(
        project: Path, start_api: StartApi) -> None:
    """In flight, an instance finishes on the version it began with: a new version that no longer listens to
    customer.updated (nor any other journey) must not keep the event from the instances of the older one — in
    the process that reloaded, and in one started after the change that never ran the older version."""
    write_journey(project, "gold_watch", WATCH_V1)
    first = await start_api()
    for customer_id in ("c1", "c2"):
        await first.put_customer(customer_id, {"addresses": {"email": f"{customer_id}@example.com"}})
        await first.event("joined_club", customer_id)
        await first.wait_until(customer_id, journey_started)
    write_journey(project, "gold_watch", WATCH_V2)
    assert await first.runtime.reload()
    await first.put_customer("c1", {"attributes": {"tier": "gold"}})
    await first.wait_until("c1", _gold_watch_sent)
    await first.runtime.stop()

    second = await start_api()
    await second.put_customer("c2", {"attributes": {"tier": "gold"}})
    await second.wait_until("c2", _gold_watch_sent)
