"""Exit rules (`exit_on`: an event ends a running instance at once) and goals (a conversion, once per instance,
within its window, attributed to the messages sent before it; it does not end the journey)."""

from __future__ import annotations

from typing import Any

import pytest
from harness import DAY, HOUR, Customer, flow, journey

PROMO = flow("""
- send: {template: offer, channels: [sms]}
- wait_for: {event: order, timeout: 3d}
- send: {template: offer, channels: [email]}
""", """
exit_on:
  - {event: unsubscribed}
  - {event: order_cancelled, where: "event.properties.reason == 'fraud'"}
""")


# -- exit_on ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "properties", "exits"), [
    ("unsubscribed", {}, True),
    ("unsubscribed", {"any": "thing"}, True),
    ("order_cancelled", {"reason": "fraud"}, True),
    ("order_cancelled", {"reason": "changed mind"}, False),
    ("order_cancelled", {}, False),
    ("order_placed", {}, False),
])
def test_exit_on_ends_the_instance_when_its_event_and_where_match(name: str, properties: dict[str, Any],
                                                                  exits: bool) -> None:
    customer = Customer([PROMO])
    customer.event("go")
    customer.event(name, **properties)
    assert (customer.instance("j") is None) is exits
    assert customer.milestones() == (["started", f"exited (exit_on {name})"] if exits else ["started"])


def test_exit_on_during_a_wait_removes_its_timer_and_nothing_more_is_sent() -> None:
    customer = Customer([PROMO])
    customer.event("go")
    [(instance_id, token)] = customer.timers
    changes = customer.event("unsubscribed")
    assert [(t.instance_id, t.token) for t in changes.old_timers] == [(instance_id, token)]
    assert changes.ended == {instance_id} and changes.saved == set()
    customer.pass_time(5 * DAY)
    assert customer.channels() == ["sms"]


def test_exit_on_only_ends_its_own_journey() -> None:
    other = journey("""
id: other
trigger: {event: go}
steps:
  - wait: 1d
  - send: {template: offer, channels: [push]}
""")
    customer = Customer([PROMO, other])
    customer.event("go")
    customer.event("unsubscribed")
    customer.pass_time(DAY)
    assert customer.channels() == ["sms", "push"]
    assert customer.instance("j") is None and customer.instance("other") is None


def test_exit_on_wins_over_a_wait_for_of_the_same_event() -> None:
    customer = Customer([flow("""
- wait_for: {event: unsubscribed}
- send: {template: offer, channels: [sms]}
""", "exit_on: [{event: unsubscribed}]")])
    customer.event("go")
    customer.event("unsubscribed")
    assert customer.sent() == [] and customer.milestones() == ["started", "exited (exit_on unsubscribed)"]


def test_an_exit_on_event_with_no_running_instance_does_nothing() -> None:
    customer = Customer([PROMO])
    changes = customer.event("unsubscribed")
    assert changes.ended == set() and customer.milestones() == []


def test_exit_on_that_fails_to_evaluate_is_recorded_and_does_not_exit() -> None:
    customer = Customer([flow("- wait: 1d", "exit_on: [{event: refund, where: \"event.properties.amount > 10\"}]")])
    customer.event("go")
    customer.event("refund", amount="ten")
    assert customer.instance("j") is not None
    assert [e.split(":")[0] for e in customer.errors()] == ["j.exit_on"]


def test_the_trigger_event_does_not_exit_the_instance_it_starts() -> None:
    customer = Customer([journey("""
id: j
trigger: {event: ping}
exit_on: [{event: ping}]
steps:
  - wait: 1d
""")])
    customer.event("ping")
    assert customer.milestones() == ["started"]
    customer.event("ping")
    assert customer.milestones() == ["started", "exited (exit_on ping)"]


# -- goal --------------------------------------------------------------------------------------------------------

GOAL = flow("""
- send: {template: offer, channels: [sms]}
- wait: 5d
- send: {template: offer, channels: [email]}
- wait: 5d
""", """
re_entry: always
goal: {event: order, where: "event.properties.total >= 20", within: 3d}
""")


def _conversions(customer: Customer) -> list[dict[str, Any]]:
    return customer.of_kind("conversion")


@pytest.mark.parametrize(("after", "converts"), [
    (0, True), (HOUR, True), (3 * DAY - 1, True), (3 * DAY, True), (3 * DAY + 1, False), (4 * DAY, False),
])
def test_a_goal_counts_within_its_window_from_entry(after: float, converts: bool) -> None:
    customer = Customer([GOAL])
    customer.event("go")
    customer.pass_time(after)
    changes = customer.event("order", total=30)
    assert len(_conversions(customer)) == int(converts)
    assert changes.stats["j"]["converted"] == int(converts)


@pytest.mark.parametrize(("properties", "converts"), [
    ({"total": 20}, True), ({"total": 19.99}, False), ({}, False),
])
def test_a_goal_counts_only_when_its_where_holds(properties: dict[str, Any], converts: bool) -> None:
    customer = Customer([GOAL])
    customer.event("go")
    customer.event("order", **properties)
    assert len(_conversions(customer)) == int(converts)


def test_a_goal_is_recorded_once_per_instance() -> None:
    customer = Customer([GOAL])
    customer.event("go")
    customer.event("order", total=30)
    customer.event("order", total=40)
    [conversion] = _conversions(customer)
    assert (conversion["journey"], conversion["event"], conversion["event_id"]) == ("j", "order", "evt_2")


def test_a_goal_does_not_end_the_journey() -> None:
    customer = Customer([GOAL])
    customer.event("go")
    customer.event("order", total=30)
    assert customer.milestones() == ["started"]
    customer.pass_time(5 * DAY)
    assert customer.channels() == ["sms", "email"]


def test_a_conversion_is_attributed_to_the_messages_sent_before_it() -> None:
    customer = Customer([flow("""
- send: {template: offer, channels: [sms]}
- wait: 1d
- send: {template: offer, channels: [email]}
- wait: 1d
- send: {template: offer, channels: [push]}
- wait: 1d
""", "goal: {event: order}")])
    customer.event("go")
    customer.pass_time(DAY)
    customer.event("order")
    sms, email = (a.message_id for a in customer.attempts)
    [conversion] = _conversions(customer)
    assert conversion["attributed_to"] == [sms, email]
    customer.pass_time(DAY)
    assert _conversions(customer)[0]["attributed_to"] == [sms, email]  # the push came after


def test_a_conversion_before_any_message_is_attributed_to_none() -> None:
    customer = Customer([flow("""
- wait: 1d
- send: {template: offer, channels: [sms]}
""", "goal: {event: order}")])
    customer.event("go")
    customer.event("order")
    assert _conversions(customer)[0]["attributed_to"] == []


def test_an_instance_ending_on_its_windows_last_second_still_converts_then() -> None:
    customer = Customer([flow("- wait: 3d\n- send: {template: offer, channels: [sms]}",
                              "goal: {event: order, within: 3d}")])
    customer.event("go")
    customer.pass_time(3 * DAY)  # the wait ends on the window's last second, and the journey with it
    assert customer.milestones()[-1] == "completed"
    customer.event("order", total=30)  # the same second: still within the window, as for a running instance
    assert len(_conversions(customer)) == 1


def test_a_goal_after_the_instance_ended_is_not_a_conversion() -> None:
    customer = Customer([flow("- send: {template: offer, channels: [sms]}", "goal: {event: order}")])
    customer.event("go")
    customer.event("order")
    assert _conversions(customer) == []


def test_each_instance_converts_once_again_after_re_entry() -> None:
    customer = Customer([GOAL])
    customer.event("go")
    customer.event("order", total=30)
    customer.pass_time(10 * DAY)
    customer.event("go")
    customer.event("order", total=30)
    customer.event("order", total=30)
    assert len(_conversions(customer)) == 2
    assert customer.milestones() == ["started", "completed", "started"]


def test_an_event_that_is_goal_and_exit_is_a_conversion_then_an_exit() -> None:
    customer = Customer([flow("""
- send: {template: offer, channels: [sms]}
- wait: 3d
""", """
goal: {event: order}
exit_on: [{event: order}]
""")])
    customer.event("go")
    customer.event("order")
    assert customer.milestones() == ["started", "exited (exit_on order)"]
    [conversion] = _conversions(customer)
    assert conversion["attributed_to"] == [customer.attempts[0].message_id]


def test_an_event_that_is_goal_and_resumes_a_wait_for_does_both() -> None:
    customer = Customer([flow("""
- send: {template: offer, channels: [sms]}
- wait_for: {event: order}
- exit: {reason: bought}
""", "goal: {event: order}")])
    customer.event("go")
    customer.event("order")
    assert len(_conversions(customer)) == 1
    assert customer.milestones() == ["started", "exited (bought)"]


def test_a_goal_without_within_counts_at_any_time() -> None:
    customer = Customer([flow("- wait: 1000d", "goal: {event: order}")])
    customer.event("go")
    customer.pass_time(999 * DAY)
    customer.event("order")
    assert len(_conversions(customer)) == 1


CORRELATED = flow("""
- update: {vars: {cart: "event.properties.cart_id"}}
- send: {template: offer, channels: [sms, email], fallback_after: 1h}
- wait: 3d
""", """
goal: {event: order, where: "event.properties.cart_id == vars.cart"}
exit_on: [{event: cart_emptied, where: "event.properties.cart_id == vars.cart"}]
""")


@pytest.mark.parametrize(("cart", "matches"), [("K1", True), ("K2", False)])
def test_goal_and_exit_on_correlate_with_vars(cart: str, matches: bool) -> None:
    customer = Customer([CORRELATED])
    customer.event("go", cart_id="K1")
    customer.event("order", cart_id=cart)
    assert len(_conversions(customer)) == int(matches)
    customer.event("cart_emptied", cart_id=cart)
    assert (customer.instance("j") is None) is matches


def test_a_fallback_is_a_touchpoint_of_the_conversion() -> None:
    customer = Customer([CORRELATED])
    customer.event("go", cart_id="K1")
    customer.pass_time(HOUR)
    customer.event("order", cart_id="K1")
    assert customer.channels() == ["sms", "email"]
    assert _conversions(customer)[0]["attributed_to"] == [a.message_id for a in customer.attempts]


def test_a_new_trigger_can_replace_the_running_instance() -> None:
    """The "restart on every cart update" pattern: the event exits the running instance and starts a new one."""
    customer = Customer([journey("""
id: cart
trigger: {event: cart_updated}
re_entry: always
exit_on: [{event: cart_updated}]
steps:
  - wait: 1h
  - send: {template: echo, channels: [sms]}
""")])
    customer.event("cart_updated", order_id="first")
    customer.pass_time(HOUR / 2)
    customer.event("cart_updated", order_id="second")
    customer.pass_time(2 * HOUR)
    assert customer.milestones() == ["started", "exited (exit_on cart_updated)", "started", "completed"]
    assert [a.content["body"].split(" vars")[0] for a in customer.attempts] == ["cart_updated second"]
