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
