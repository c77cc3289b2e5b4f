"""A broadcast's start in the pure core: the journey starts whatever its trigger, once per customer, with the
broadcast's event, and what happened is said for the broadcast's counters (started, or skipped and why)."""

from __future__ import annotations

import dataclasses
from typing import Any

from harness import DAY, Customer, flow, journey

from omnicanal.journey.effects import StartJourney

SALE = flow("""
- send: {template: offer, channels: [sms], data: {code: "event.properties.code | default('none')"}}
- wait: 1d
""", head="re_entry: after 7d")


def start(customer: Customer, broadcast: str = "b1", journey: str = "j", **data: Any) -> str:
    """Apply the broadcast's start; returns what it says it did for the customer."""
    event = {"id": f"broadcast:{broadcast}", "name": "broadcast", "customer_id": customer.customer_id,
             "properties": {**data, "broadcast": broadcast}, "timestamp": "2027-01-15T08:00:00.000Z"}
    return customer.apply(StartJourney(journey, event)).broadcasts[broadcast]


def test_a_broadcast_starts_the_journey_whatever_its_trigger_with_its_own_event() -> None:
    customer = Customer([SALE])
    assert start(customer, code="HIVER") == "started"
    assert customer.sent() == [("offer", "sms")] and customer.attempts[0].content["body"].endswith("HIVER")
    event = customer.of_kind("event")[0]
    assert (event["name"], event["properties"]) == ("broadcast", {"code": "HIVER", "broadcast": "b1"})
    assert customer.milestones() == ["started"] and customer.stats["j"]["started"] == 1


def test_the_same_start_twice_applies_once_and_is_told_apart() -> None:
    customer = Customer([SALE])
    assert start(customer) == "started"
    customer.pass_time(2 * DAY)  # the journey completed: only the start's id stops a second one
    assert start(customer) == "duplicate"
    assert customer.sent() == [("offer", "sms")] and len(customer.of_kind("event")) == 1


def test_rules_of_the_journey_say_why_a_customer_is_skipped() -> None:
    customer = Customer([SALE])
    assert start(customer, "b1") == "started"
    assert start(customer, "b2") == "skipped:running"  # one instance per journey and customer
    customer.pass_time(2 * DAY)
    assert start(customer, "b3") == "skipped:re_entry"  # within the 7 days of re_entry: after 7d
    customer.pass_time(7 * DAY)
    assert start(customer, "b4") == "started"
    customer.context = dataclasses.replace(customer.context, paused=frozenset({"j"}))
    customer.pass_time(8 * DAY)
    assert start(customer, "b5") == "skipped:paused"
    assert customer.sent() == [("offer", "sms")] * 2


def test_a_journey_gone_since_the_broadcast_was_asked_for_is_said_on_the_timeline() -> None:
    customer = Customer([SALE])
    assert start(customer, journey="removed") == "skipped:unknown_journey"
    assert customer.state.instances == {} and "no journey 'removed' is loaded" in customer.errors()[0]


def test_the_trigger_condition_is_not_asked_the_audience_chose_the_customer() -> None:
    big_carts = journey("""
id: j
trigger: {event: cart, where: "event.properties.total > 100"}
steps:
  - send: {template: offer, channels: [sms]}
""")
    customer = Customer([big_carts])
    assert start(customer) == "started"  # a broadcast's event has no total: the trigger's where is not asked
    assert customer.sent() == [("offer", "sms")] and customer.errors() == []
