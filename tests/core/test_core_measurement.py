"""What the core counts for the funnel and for attribution: receipts, clicks and replies on the step and channel
that carried the message, reasons of suppressions and exits, conversions with their revenue credited to the
messages before them (any journey, any channel) by last touch, first touch and linear shares."""

from __future__ import annotations

import pytest
from harness import HOUR, Customer, flow, journey

from omnicanal.journey.attribution import KEPT

ABANDONED = flow("""
- id: push_it
  send: {template: offer, channels: [push]}
- wait: 1h
- id: mail_it
  send: {template: offer, channels: [email]}
- wait: 3d
""", """
goal: {event: order, within: 3d}
""")


def test_the_funnel_counts_each_status_per_step_and_channel() -> None:
    customer = Customer([ABANDONED])
    customer.event("go")
    [push] = customer.attempts
    customer.event("message.delivered", message_id=push.message_id, journey="j", step="push_it", channel="push")
    customer.event("message.clicked", message_id=push.message_id, journey="j", step="push_it", channel="push")
    stats = customer.stats["j"]
    assert stats["step:push_it:sent"] == stats["step:push_it:push:sent"] == stats["channel:push:sent"] == 1
    assert stats["step:push_it:delivered"] == stats["step:push_it:push:clicked"] == 1


def test_a_reply_is_counted_on_the_last_message_of_its_channel() -> None:
    customer = Customer([flow("- send: {template: offer, channels: [sms]}\n- wait: 1d")])
    customer.event("go")
    customer.event("message.received", channel="sms", body="oui")
    customer.event("message.received", channel="whatsapp", body="?")  # nothing went there: not counted
    assert customer.stats["j"]["step:1_send:sms:replied"] == 1
    assert "channel:whatsapp:replied" not in customer.stats["j"]


def test_suppressions_and_exits_are_counted_by_reason() -> None:
    customer = Customer([flow("""
- send: {template: offer, channels: [sms]}
- exit: {reason: done}
""")], profile={"addresses": {}})
    customer.event("go")
    stats = customer.stats["j"]
    assert stats["step:1_send:suppressed:no address"] == 1
    assert stats["exited:done"] == 1


def _converted(**order: object) -> Customer:
    customer = Customer([ABANDONED])
    customer.event("go")
    customer.pass_time(2 * HOUR)
    customer.event("order", **order)
    return customer


def test_a_conversion_credits_the_messages_before_it_by_each_model() -> None:
    customer = _converted(total=90.0, channel="store")
    [conversion] = customer.of_kind("conversion")
    push, email = (a.message_id for a in customer.attempts)
    assert (conversion["revenue"], conversion["where"]) == (90.0, "store")
    assert conversion["credits"] == {"last": {email: 1.0}, "first": {push: 1.0}, "linear": {push: 0.5, email: 0.5}}
    stats = customer.stats["j"]
    assert stats["converted:store"] == 1 and stats["revenue:store"] == 90.0
    assert stats["attr:last:store:j:mail_it:email:conversions"] == 1
    assert stats["attr:first:store:j:push_it:push:revenue"] == 90.0
    assert stats["attr:linear:store:j:push_it:push:revenue"] == stats["attr:linear:store:j:mail_it:email:revenue"] \
        == 45.0
    for model in ("last", "first", "linear"):  # each model shares out exactly one conversion and its revenue
        assert sum(v for k, v in stats.items() if k.startswith(f"attr:{model}:") and k.endswith(":revenue")) == 90


@pytest.mark.parametrize(("order", "revenue", "where"), [
    ({"total": 12}, 12.0, "unknown"),
    ({"total": "12"}, 0.0, "unknown"),  # text is no amount
    ({"total": float("inf"), "channel": "web"}, 0.0, "web"),
    ({"channel": "Store front!"}, 0.0, "other"),  # not a short name: counted apart, never in a counter's name
    ({"total": True, "channel": "app"}, 0.0, "app"),
])
def test_revenue_and_where_are_read_safely(order: dict[str, object], revenue: float, where: str) -> None:
    [conversion] = _converted(**order).of_kind("conversion")
    assert (conversion["revenue"], conversion["where"]) == (revenue, where)


def test_a_goal_can_say_where_its_revenue_is() -> None:
    customer = Customer([flow("- send: {template: offer, channels: [sms]}\n- wait: 1d", """
goal: {event: order, revenue: "event.properties.amount.value / 100"}
""")])
    customer.event("go")
    customer.event("order", amount={"value": 4250})
    assert customer.of_kind("conversion")[0]["revenue"] == 42.5


def test_messages_from_other_journeys_share_the_credit_and_old_ones_do_not() -> None:
    newsletter = journey("id: news\ntrigger: {event: newsletter}\nsteps:\n  - id: news\n"
                         "    send: {template: offer, channels: [email]}\n")
    customer = Customer([newsletter, ABANDONED])
    customer.event("newsletter")
    customer.event("go")
    customer.pass_time(2 * HOUR)
    customer.event("order", total=10)
    [conversion] = customer.of_kind("conversion")
    news = customer.attempts[0].message_id
    assert len(customer.attempts) == 3 and conversion["credits"]["first"] == {news: 1.0}
    assert set(conversion["credits"]["linear"]) == {a.message_id for a in customer.attempts}
    assert customer.stats["j"]["attr:first:unknown:news:news:email:revenue"] == 10


def test_touchpoints_outside_the_window_get_no_credit() -> None:
    customer = Customer([ABANDONED])
    customer.event("go")
    customer.pass_time(5 * 86400)  # the goal's window (3d) is over for the instance: no conversion at all
    customer.event("order", total=10)
    assert customer.of_kind("conversion") == []


def test_the_customers_touchpoints_are_bounded() -> None:
    customer = Customer([flow("- id: again\n  send: {template: offer, channels: [sms]}\n- wait: 1m\n- goto: again")])
    customer.event("go")
    customer.pass_time(3 * KEPT * 60)
    assert len(customer.state.touchpoints) == KEPT
    assert customer.state.touchpoints[-1]["m"] == customer.attempts[-1].message_id


REMINDED = flow("""
- id: push_it
  send: {template: offer, channels: [push]}
- wait: 2d
- id: mail_it
  send: {template: offer, channels: [email]}
""", """
goal: {event: order, within: 3d}
""")


def test_a_goal_met_after_the_journey_completed_still_converts_within_its_window() -> None:
    customer = Customer([REMINDED])
    customer.event("go")
    customer.pass_time(2 * 86400 + HOUR)  # the reminder went, the journey completed
    assert customer.milestones() == ["started", "completed"]
    customer.event("order", total=50, channel="web")
    [conversion] = customer.of_kind("conversion")
    push, email = (a.message_id for a in customer.attempts)
    assert conversion["attributed_to"] == [push, email] and conversion["where"] == "web"
    assert conversion["credits"]["last"] == {email: 1.0}
    customer.event("order", total=50)  # once per instance
    assert len(customer.of_kind("conversion")) == 1
    assert customer.state.watches == []


def test_after_the_window_an_ended_instance_no_longer_converts() -> None:
    customer = Customer([REMINDED])
    customer.event("go")
    customer.pass_time(4 * 86400)
    customer.event("order", total=50)
    assert customer.of_kind("conversion") == []
    assert customer.state.watches == []  # expired watches are dropped


def test_a_failed_instance_is_not_watched() -> None:
    customer = Customer([flow("- wait: {at: \"event.properties.when\"}", "goal: {event: order, within: 3d}")])
    customer.event("go", when="never")
    customer.event("order")
    assert customer.milestones() == ["started", "failed (1_wait: not a date)"]
    assert customer.of_kind("conversion") == []
