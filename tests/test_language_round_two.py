"""The journey language's round-two forms through the running daemon and through `omnicanal simulate`: an
experiment with a holdout, keyed instances in parallel, a wait until a date from the data, and the global
control group — each as a user would run it."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

from conftest import StartApi, write_journey
from test_cli import run

EXPERIMENT = """
id: offer_test
trigger: {event: cart_abandoned}
goal: {event: order_placed, within: 1d}
steps:
  - id: offer_test
    split:
      - {weight: 50, goto: email_offer}
      - {weight: 50, holdout: true}
  - id: email_offer
    send: {template: welcome_offer, channels: [email]}
  - wait: 2d
"""
PICKUPS = """
id: pickup
trigger: {event: order_ready, key: "event.properties.order_id"}
exit_on: [{event: order_collected}]
steps:
  - wait: {at: "event.properties.pickup_deadline", offset: -1d, on_past: late, on_error: bad_date}
  - send: {template: welcome_offer, channels: [email]}
  - exit: {reason: reminded}
  - id: late
    exit: {reason: late}
  - id: bad_date
    exit: {reason: bad date}
"""
PROFILE = {"addresses": {"email": "x@example.com"}}


async def test_an_experiment_sends_only_to_its_arm_and_counts_the_holdouts_conversions(
    project: Path, start_api: StartApi
) -> None:
    write_journey(project, "offer_test", EXPERIMENT)
    api = await start_api(clock_speed=60.0)
    arms: dict[str, str] = {}
    for n in range(12):
        customer_id = f"x{n}"
        await api.put_customer(customer_id, PROFILE)
        await api.event("cart_abandoned", customer_id)
        entries = await api.wait_until(customer_id, lambda es: any(e["kind"] == "split" for e in es))
        arms[customer_id] = next(e["arm"] for e in entries if e["kind"] == "split")
        await api.event("order_placed", customer_id)
    await api.settled()
    assert set(arms.values()) == {"email_offer", "holdout"}  # 12 customers at 50/50: both arms taken
    for customer_id, arm in arms.items():
        messages = await api.messages(customer_id)
        assert [m["template"] for m in messages] == (["welcome_offer"] if arm == "email_offer" else [])
    stats = await api.request("GET", "/v1/journeys/offer_test/stats", 200)
    split = next(step for step in stats["steps"] if step["id"] == "offer_test")["arms"]
    assert sum(arm["entered"] for arm in split.values()) == 12
    assert split["holdout"]["converted"] == split["holdout"]["entered"]  # every holdout bought: counted


async def test_two_orders_in_parallel_each_with_its_date(project: Path, start_api: StartApi) -> None:
    write_journey(project, "pickup", PICKUPS)
    api = await start_api(clock_speed=3600.0)
    await api.put_customer("k1", PROFILE)
    now = (await api.request("GET", "/v1/journeys/pickup/stats", 200))["to"]
    moment = datetime.fromisoformat(now.replace("Z", "+00:00"))
    soon = (moment + timedelta(days=1, hours=1)).isoformat()
    for order_id, deadline in (("o1", soon), ("o2", soon), ("o3", "next tuesday")):
        await api.event("order_ready", "k1", properties={"order_id": order_id, "pickup_deadline": deadline})
    await api.event("order_collected", "k1", properties={"order_id": "o1"})  # only o1's instance exits
    entries = await api.wait_until("k1", lambda es: sum(e["kind"] == "journey" and e["status"] != "started"
                                                        for e in es) == 3, timeout=20)
    endings = sorted(e.get("reason") for e in entries if e["kind"] == "journey" and e["status"] != "started")
    assert endings == ["bad date", "exit_on order_collected", "reminded"]
    assert [m["template"] for m in await api.messages("k1")] == ["welcome_offer"]  # o2's reminder, one in all


def test_simulate_plays_the_new_forms(project: Path) -> None:
    write_journey(project, "pickup", PICKUPS)
    scenario = project / "pickup.scenario.yaml"
    scenario.write_text("""
start: 2027-03-25T09:00:00Z
customer: {addresses: {email: lea@example.com}, timezone: Europe/Paris}
events:
  - {at: 0s, name: order_ready, properties: {order_id: A, pickup_deadline: "2027-03-29T10:00:00+02:00"}}
  - {at: 1h, name: order_ready, properties: {order_id: B, pickup_deadline: "2027-03-20T10:00:00Z"}}
until: 5d
""", encoding="utf-8")
    result = run("simulate", "pickup", "--scenario", str(scenario), "--json", cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr
    entries = json.loads(result.stdout)
    ended = [(e.get("reason"), e["at"]) for e in entries if e["kind"] == "journey" and e["status"] != "started"]
    assert ("late", "2027-03-25T10:00:00.000Z") in ended  # B's date was already past
    # A: the day before Monday 10:00 in Paris is Sunday 10:00 — after the change to summer time: 08:00 UTC
    assert ("reminded", "2027-03-28T08:00:00.000Z") in ended
    assert [e["kind"] == "journey" and e.get("key") for e in entries if e.get("status") == "started"] == ["A", "B"]
